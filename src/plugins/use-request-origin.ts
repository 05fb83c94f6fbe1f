/**
 * Who may reach the server at all, checked for HTTP requests and WebSocket upgrades alike:
 * - bound to loopback, the `Host` header must name loopback too, which defeats DNS rebinding (a web
 *   page whose domain now resolves to 127.0.0.1 still sends its own domain as Host);
 * - a browser's `Origin`, when present, must be this server itself, so a page on another site cannot
 *   drive runboard from the user's browser (yoga's CSRF prevention covers forms and simple GETs);
 * - without an operator token, only loopback clients are served.
 */
import type { IncomingHttpHeaders, IncomingMessage } from 'node:http';
import { useCSRFPrevention } from '@graphql-yoga/plugin-csrf-prevention';
import { createGraphQLError, type Plugin } from 'graphql-yoga';
import { isLoopbackHost } from '../config.js';

export interface RequestOriginOptions {
  /** Whether the server listens on a loopback address only. */
  loopbackBind: boolean;
  /** Whether RUNBOARD_TOKEN is set. */
  tokenRequired: boolean;
}

function isLoopbackAddress(address: string | undefined): boolean {
  return !!address && (address === '::1' || address.startsWith('127.') || address.startsWith('::ffff:127.'));
}

function hostnameOf(hostHeader: string): string {
  return hostHeader.startsWith('[') ? hostHeader.slice(0, hostHeader.indexOf(']') + 1) : hostHeader.split(':')[0];
}

/**
 * Why a request's Host header or target cannot make a URL (`localhost:abc`, `127.0.0.1:99999`, `[::1`),
 * or null when they can. yoga builds its Request's URL from exactly these.
 */
export function malformedTarget(req: Pick<IncomingMessage, 'headers' | 'url'>): string | null {
  return URL.canParse(`http://${req.headers.host || 'localhost'}${req.url ?? '/'}`) ? null : 'malformed Host header or request target';
}

/** Why a request is refused, or null when it may proceed. */
export function refusal(headers: IncomingHttpHeaders, remoteAddress: string | undefined, options: RequestOriginOptions): string | null {
  const host = headers.host ?? '';
  if (!options.tokenRequired && !isLoopbackAddress(remoteAddress)) return 'only loopback clients are served without RUNBOARD_TOKEN';
  if (options.loopbackBind && !isLoopbackHost(hostnameOf(host))) return `Host "${host}" is not a loopback name`;
  const origin = headers.origin;
  if (origin !== undefined && origin !== 'null') {
    let originHost: string;
    try {
      originHost = new URL(origin).host;
    } catch {
      return `Origin "${origin}" is not a URL`;
    }
    if (originHost.toLowerCase() !== host.toLowerCase()) return `cross-site request from ${origin} refused`;
  } else if (origin === 'null') return 'requests from opaque origins are refused';
  return null;
}

/** Refuses HTTP requests that fail `refusal` with 403 FORBIDDEN. */
export function useRequestOrigin(options: RequestOriginOptions): Plugin {
  return {
    onRequest({ serverContext, endResponse, fetchAPI }) {
      // yoga on Node's HTTP server passes the IncomingMessage as `req`.
      const req = (serverContext as { req?: IncomingMessage } | undefined)?.req;
      if (!req) return;
      const reason = refusal(req.headers, req.socket.remoteAddress, options);
      if (!reason) return;
      const error = createGraphQLError(reason, { extensions: { code: 'FORBIDDEN' } });
      endResponse(new fetchAPI.Response(JSON.stringify({ errors: [{ message: error.message, extensions: error.extensions }] }), { status: 403, headers: { 'content-type': 'application/json' } }));
    },
  };
}

/**
 * yoga's CSRF prevention (a request must be preflighted: a JSON content type, or the
 * `x-graphql-yoga-csrf` header), with its 403 coded FORBIDDEN like every other refusal here.
 */
export function useCSRFRefusal(): Plugin {
  const { onRequestParse } = useCSRFPrevention();
  return {
    onRequestParse(payload) {
      try {
        return onRequestParse?.(payload);
      } catch (error) {
        throw createGraphQLError(`${(error as Error).message}: send a JSON content type or an x-graphql-yoga-csrf header`, { extensions: { code: 'FORBIDDEN', http: { status: 403 } } });
      }
    },
  };
}

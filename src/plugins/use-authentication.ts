/**
 * Bearer tokens. With RUNBOARD_TOKEN set, every GraphQL request needs `Authorization: Bearer <token>`
 * (HTTP) or `{ "authorization": "Bearer <token>" }` in graphql-ws's connection_init payload. A run's
 * agent authenticates the same way with its own token, which is valid only while its run is active.
 * Without RUNBOARD_TOKEN, a request with no token is the operator (loopback clients only, see
 * use-request-origin.ts); a token that matches nothing is always refused.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { Plugin } from 'graphql-yoga';
import type { Principal } from '../schema/auth.js';

export interface AuthenticationOptions {
  /** RUNBOARD_TOKEN; undefined when not set. */
  operatorToken?: string;
  /** The run an agent token belongs to, while that run is active (a database lookup, so any node answers it). */
  agentForToken(token: string): Promise<{ runId: string; cardId: string } | null>;
  /** Whether a path is served without a token (health checks, the board UI's page and assets). GraphiQL's page is public by its own rule below. @default /healthz and /readyz */
  isPublic?: (pathname: string) => boolean;
}

/** The principal for an `Authorization` value (header or connection_init field), or null when it is refused. */
export async function authenticate(authorization: unknown, options: AuthenticationOptions): Promise<Principal | null> {
  const token = typeof authorization === 'string' ? /^Bearer\s+(\S+)\s*$/i.exec(authorization)?.[1] : undefined;
  if (token === undefined) return options.operatorToken === undefined && authorization == null ? { kind: 'operator' } : null;
  if (options.operatorToken !== undefined && sameSecret(token, options.operatorToken)) return { kind: 'operator' };
  const agent = await options.agentForToken(token);
  return agent ? { kind: 'agent', ...agent } : null;
}

/** Compares secrets in constant time (digests first, so lengths leak nothing either). */
function sameSecret(given: string, expected: string): boolean {
  const digest = (value: string) => createHash('sha256').update(value).digest();
  return timingSafeEqual(digest(given), digest(expected));
}

/** The health checks' paths, public so supervisors need no token. */
export const HEALTH_PATHS: ReadonlySet<string> = new Set(['/healthz', '/readyz']);

/** Refuses unauthenticated HTTP requests with 401 before they are parsed. GraphiQL's HTML page is served to anyone who may reach the server. */
export function useAuthentication(options: AuthenticationOptions): Plugin {
  const isPublic = options.isPublic ?? ((pathname: string) => HEALTH_PATHS.has(pathname));
  return {
    async onRequest({ request, url, endResponse, fetchAPI }) {
      if (isPublic(url.pathname)) return;
      const wantsGraphiQL = request.method === 'GET' && (request.headers.get('accept') ?? '').includes('text/html') && !url.searchParams.has('query');
      if (wantsGraphiQL) return;
      if (await authenticate(request.headers.get('authorization') ?? undefined, options)) return;
      const body = { errors: [{ message: 'missing or wrong token: send Authorization: Bearer <token>', extensions: { code: 'UNAUTHENTICATED' } }] };
      endResponse(new fetchAPI.Response(JSON.stringify(body), { status: 401, headers: { 'content-type': 'application/json', 'www-authenticate': 'Bearer' } }));
    },
  };
}

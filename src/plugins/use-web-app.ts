/**
 * The board UI: serves the files `npm run build` puts in dist/web (web/ built by Vite) at `/` and
 * `/assets/*`. Those paths are public (`WebApp.serves` feeds useAuthentication's predicate), so the
 * page shell and its assets load without a token; the page then asks for one and sends it on every
 * API call, which still needs it.
 */
import { readdirSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { Plugin } from 'graphql-yoga';
import { PACKAGE_ROOT } from '../package-root.js';

export interface WebAppOptions {
  /** The built page's folder. @default <project>/dist/web (the same from dist/ and src/) */
  directory?: string;
}

/** Content types of what Vite emits. */
const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
};

/** Only this server: scripts, styles, fetch and the WebSocket (same origin); no outside request at all. */
const CONTENT_SECURITY_POLICY = "default-src 'self'; connect-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

/** The files of the built page, keyed by URL path; listed once at start, so no request names a path of its own. */
function listFiles(directory: string): Map<string, string> {
  const files = new Map<string, string>();
  const walk = (dir: string, prefix: string) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const full = path.join(dir, entry.name);
      if (entry.isDirectory()) walk(full, `${prefix}${entry.name}/`);
      else if (CONTENT_TYPES[path.extname(entry.name)]) files.set(`${prefix}${entry.name}`, full);
    }
  };
  try {
    walk(directory, '/');
  } catch {
    // Not built: `/` says so below.
  }
  return files;
}

/** The built page's files, listed once. */
export interface WebApp {
  readonly files: ReadonlyMap<string, string>;
  /** Whether a GET of this path is the page's (`/` always is, built or not): such paths need no token. */
  serves(pathname: string): boolean;
}

/** Lists the built page's files; a missing folder is an empty app whose `/` says how to build it. */
export function loadWebApp({ directory = path.join(PACKAGE_ROOT, 'dist', 'web') }: WebAppOptions = {}): WebApp {
  const files = listFiles(directory);
  return { files, serves: (pathname) => pathname === '/' || files.has(pathname) };
}

/** Serves the board UI at `/` (index.html) and its hashed assets (cached for good); everything else passes through. */
export function useWebApp({ files }: WebApp): Plugin {
  return {
    onRequest({ request, url, endResponse, fetchAPI }) {
      if (request.method !== 'GET' && request.method !== 'HEAD') return;
      const pathname = url.pathname === '/' ? '/index.html' : url.pathname;
      const file = files.get(pathname);
      if (!file) {
        if (url.pathname !== '/') return;
        const body = 'The board UI is not built: run `npm run build`. GraphiQL is at /graphql.\n';
        return endResponse(new fetchAPI.Response(body, { status: 503, headers: { 'content-type': 'text/plain; charset=utf-8' } }));
      }
      const immutable = pathname.startsWith('/assets/');
      const headers = {
        'content-type': CONTENT_TYPES[path.extname(file)]!,
        'cache-control': immutable ? 'public, max-age=31536000, immutable' : 'no-cache',
        'content-security-policy': CONTENT_SECURITY_POLICY,
        'x-content-type-options': 'nosniff',
      };
      if (request.method === 'HEAD') return endResponse(new fetchAPI.Response(null, { headers }));
      return readFile(file).then(
        (body) => endResponse(new fetchAPI.Response(body, { headers })),
        // Gone since start (a rebuild): the listing is stale, not the client's fault.
        () => endResponse(new fetchAPI.Response('The board UI changed on disk: restart runboard.\n', { status: 503, headers: { 'content-type': 'text/plain; charset=utf-8' } })),
      );
    },
  };
}

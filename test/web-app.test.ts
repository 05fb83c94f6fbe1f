/**
 * How the board UI's files are served (src/plugins/use-web-app.ts), over plain HTTP: the page and its
 * hashed assets with their caching and content-security headers, and nothing else from disk, whatever
 * the path says. Needs `npm run build` (dist/web).
 */
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { projectRoot, startTestServer, type TestServer } from './helpers/server.js';

let t: TestServer;
let root: string;
beforeAll(async () => {
  t = await startTestServer();
  root = t.url.replace(/\/graphql$/, '/');
});
afterAll(async () => {
  await t?.close();
});

test('/ is the page, never cached stale, allowed to reach only this server', async () => {
  const response = await fetch(root);
  expect(response.status).toBe(200);
  expect(response.headers.get('content-type')).toBe('text/html; charset=utf-8');
  expect(response.headers.get('cache-control')).toBe('no-cache');
  expect(response.headers.get('content-security-policy')).toContain("default-src 'self'");
  expect(response.headers.get('content-security-policy')).toContain("connect-src 'self'");
  expect(await response.text()).toContain('<div id="app">');
});

test('hashed assets are cached for good; HEAD answers without a body', async () => {
  const [script] = (await readdir(path.join(projectRoot, 'dist', 'web', 'assets'))).filter((name) => name.startsWith('index-') && name.endsWith('.js'));
  const response = await fetch(new URL(`/assets/${script}`, root));
  expect(response.status).toBe(200);
  expect(response.headers.get('content-type')).toBe('text/javascript; charset=utf-8');
  expect(response.headers.get('cache-control')).toContain('immutable');
  const head = await fetch(new URL(`/assets/${script}`, root), { method: 'HEAD' });
  expect(head.status).toBe(200);
  expect(await head.text()).toBe('');
});

test('paths outside the built page are not served from disk', async () => {
  for (const target of ['/package.json', '/assets/../package.json', '/%2e%2e/package.json', '/assets/%2e%2e%2f%2e%2e%2fpackage.json', '/web/index.html', '/src/server.ts']) {
    const response = await fetch(new URL(target, root));
    const body = await response.text();
    expect(response.status).toBe(404);
    expect(body).not.toContain('"name": "runboard"');
  }
  // GraphiQL stays at /graphql.
  const graphiql = await fetch(t.url, { headers: { accept: 'text/html' } });
  expect(await graphiql.text()).toContain('graphiql');
});

/** graphql-ws on the same path and port as HTTP, and a shutdown that closes its sockets. */
import { createClient, type Client } from 'graphql-ws';
import WebSocket from 'ws';
import { startTestServer, type TestServer } from './helpers/server.js';

let t: TestServer;
let client: Client;
let closeCode: number | undefined;
beforeAll(async () => {
  t = await startTestServer();
  client = createClient({
    url: t.url.replace(/^http/, 'ws'),
    webSocketImpl: WebSocket,
    retryAttempts: 0,
    lazy: false,
    onNonLazyError: () => {}, // the server closing at shutdown is what the last test checks
    on: { closed: (event) => (closeCode = (event as { code: number }).code) },
  });
});
afterAll(async () => {
  await client?.dispose();
  await t?.close();
});

function once<T = any>(query: string, variables?: Record<string, unknown>): Promise<{ data?: T; errors?: any[] }> {
  return new Promise((resolve, reject) => {
    let result: { data?: T; errors?: any[] } = {};
    client.subscribe({ query, variables }, { next: (value) => (result = value as typeof result), error: reject, complete: () => resolve(result) });
  });
}

test('queries and mutations work over graphql-ws, with the same error codes as HTTP', async () => {
  const created = await once(`mutation { createCard(input: { title: "over ws" }) { id title } }`);
  expect(created.data.createCard.title).toBe('over ws');
  const read = await once(`query($id: ID!) { card(id: $id) { title } }`, { id: created.data.createCard.id });
  expect(read.data).toEqual({ card: { title: 'over ws' } });
  const invalid = await once(`mutation { createCard(input: { title: "" }) { id } }`);
  expect(invalid.errors?.[0].extensions.code).toBe('BAD_USER_INPUT');
});

test('shutdown closes open sockets with "going away" and stops answering HTTP', async () => {
  const url = t.url;
  await t.server.close();
  await new Promise((resolve) => setTimeout(resolve, 50));
  expect(closeCode).toBe(1001);
  await expect(fetch(url, { method: 'POST' })).rejects.toThrow();
});

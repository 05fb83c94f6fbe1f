/**
 * The transport under abuse, through the real server and raw sockets: oversized WebSocket frames,
 * malformed Host headers, subscribers that never read, floods of idle connections, and the refusals
 * of the request limits and CSRF prevention, each with a code.
 */
import { request as httpRequest } from 'node:http';
import { connect, type Socket } from 'node:net';
import path from 'node:path';
import { encodeGlobalID } from '@pothos/plugin-relay';
import { execa } from 'execa';
import WebSocket from 'ws';
import { makeRepo, removeDirs, tempDir } from './helpers/repo.js';
import { projectRoot, startTestServer, type TestServer } from './helpers/server.js';

const MAX_BODY = 64 * 1024;
const MAX_CONNECTIONS = 20;
const STALL_MS = 1_500;

/** JSON log lines the server writes. */
function logSink() {
  const lines: string[] = [];
  return { lines, records: () => lines.map((line) => JSON.parse(line) as Record<string, any>), write: (line: string) => void lines.push(line) };
}

let t: TestServer;
const log = logSink();
beforeAll(async () => {
  t = await startTestServer({
    env: { RUNBOARD_MAX_BODY_BYTES: String(MAX_BODY), RUNBOARD_MAX_CONNECTIONS: String(MAX_CONNECTIONS) },
    logStream: log,
    connectionGuard: { stallTimeoutMs: STALL_MS, checkIntervalMs: 250, logIntervalMs: 0 },
  });
});
afterAll(() => t?.close());

const port = () => Number(new URL(t.url).port);

async function healthy(): Promise<void> {
  const response = await fetch(new URL('/healthz', t.url));
  expect(response.status).toBe(200);
  expect(await t.ok('mutation { createCard(input: { title: "still answering" }) { id } }')).toMatchObject({ createCard: { id: expect.any(String) } });
}

/** A raw graphql-ws socket; resolves once open. */
async function openWs(): Promise<WebSocket> {
  const ws = new WebSocket(t.url.replace(/^http/, 'ws'), 'graphql-transport-ws');
  await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
  return ws;
}
const closeCode = (ws: WebSocket) => new Promise<number>((resolve) => ws.once('close', (code) => resolve(code)));

/** One HTTP/1.1 request written by hand, so the Host header is exactly what we say. */
function rawRequest(path: string, host: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const request = httpRequest({ host: '127.0.0.1', port: port(), path, headers: { host } }, (response) => {
      let body = '';
      response.setEncoding('utf8').on('data', (chunk) => (body += chunk));
      response.on('end', () => resolve({ status: response.statusCode!, body }));
    });
    request.on('error', reject).end();
  });
}

test('a WebSocket frame over the body limit closes that socket with 1009, before and after connection_init; the server still answers', async () => {
  const oversized = JSON.stringify({ type: 'connection_init', payload: { padding: 'x'.repeat(MAX_BODY) } });
  const unauthenticated = await openWs();
  const closed = closeCode(unauthenticated);
  unauthenticated.send(oversized);
  expect(await closed).toBe(1009);

  const authenticated = await openWs();
  authenticated.send(JSON.stringify({ type: 'connection_init' }));
  await new Promise((resolve) => authenticated.once('message', resolve)); // connection_ack
  const closedToo = closeCode(authenticated);
  authenticated.send(JSON.stringify({ id: '1', type: 'subscribe', payload: { query: `{ cards { edges { node { id } } } } # ${'x'.repeat(MAX_BODY)}` } }));
  expect(await closedToo).toBe(1009);

  // A message under the limit is served as before.
  const fine = await openWs();
  fine.send(JSON.stringify({ type: 'connection_init', payload: { padding: 'x'.repeat(MAX_BODY / 2) } }));
  expect(JSON.parse(String(await new Promise((resolve) => fine.once('message', resolve))))).toEqual({ type: 'connection_ack' });
  fine.close();
  await healthy();
});

test('a malformed Host header gets a clean 400 with a code on every route, and is logged', async () => {
  for (const host of ['localhost:abc', '127.0.0.1:99999', '[::1']) {
    for (const path of ['/healthz', '/readyz', '/graphql']) {
      const { status, body } = await rawRequest(path, host);
      expect({ host, path, status }).toEqual({ host, path, status: 400 });
      expect(JSON.parse(body)).toEqual({ errors: [{ message: 'malformed Host header or request target', extensions: { code: 'BAD_REQUEST' } }] });
      expect(body).not.toContain(projectRoot);
    }
    expect(log.records()).toContainEqual(expect.objectContaining({ level: 40, host, msg: 'refused with 400: malformed Host header or request target' }));
  }
  await healthy();
});

test('an SSE subscriber that never reads is disconnected once its writes stay blocked, while events flow', async () => {
  const { db, eventLog } = t.server.orchestrator;
  const card = await db.client.card.create({ data: { title: 'flood', position: 0 } });
  const run = await db.client.run.create({ data: { cardId: card.id, prompt: 'flood', status: 'RUNNING' } });
  const query = 'subscription($id: ID!) { runEvents(runId: $id) { seq ... on AssistantTextEvent { text } } }';
  const body = JSON.stringify({ query, variables: { id: encodeGlobalID('Run', run.id) } });
  // A client that sends its subscription and then never reads a byte.
  const socket: Socket = connect(port(), '127.0.0.1');
  socket.pause();
  let ended = false;
  socket.on('close', () => (ended = true));
  socket.write(`POST /graphql HTTP/1.1\r\nHost: 127.0.0.1:${port()}\r\nContent-Type: application/json\r\nAccept: text/event-stream\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);

  const text = 'y'.repeat(4_000);
  const stalled = () => log.records().some((record) => record.stalled > 0);
  for (let batch = 0; batch < 200 && !stalled(); batch++) {
    await eventLog.append(run.id, Array.from({ length: 50 }, () => ({ type: 'assistant_text', data: { text } })));
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  expect(stalled()).toBe(true);
  // The server destroyed its end; once the client reads again it sees the stream cut short.
  socket.resume();
  let received = '';
  socket.setEncoding('utf8').on('data', (chunk) => (received += chunk));
  await new Promise<void>((resolve) => (ended ? resolve() : socket.once('close', () => resolve())));
  expect(received).toMatch(/^HTTP\/1.1 200/);
  expect(received).not.toMatch(/0\r\n\r\n$/); // no end of the chunked body: it was cut, not completed
  await healthy();
});

test('idle connections beyond the cap are closed, oldest first, and /healthz and the API keep answering', async () => {
  const sockets: Socket[] = [];
  const closed = new Set<Socket>();
  try {
    for (let i = 0; i < MAX_CONNECTIONS * 3; i++) {
      const socket = connect(port(), '127.0.0.1');
      socket.on('close', () => closed.add(socket)).on('error', () => undefined);
      await new Promise((resolve) => socket.once('connect', resolve));
      sockets.push(socket);
    }
    await healthy();
    await healthy();
    // The server keeps at most MAX_CONNECTIONS: the others were closed to make room, the oldest first.
    const deadline = Date.now() + 5_000;
    while (closed.size < sockets.length - MAX_CONNECTIONS && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
    expect(closed.size).toBeGreaterThanOrEqual(sockets.length - MAX_CONNECTIONS);
    expect(closed.has(sockets[0])).toBe(true);
    expect(closed.has(sockets.at(-1)!)).toBe(false);
  } finally {
    for (const socket of sockets) socket.destroy();
  }
});

describe('refusals carry a code', () => {
  const strict = { 'content-type': 'application/json', accept: 'application/graphql-response+json' };
  const post = async (query: string, headers: Record<string, string> = strict) => {
    const response = await fetch(t.url, { method: 'POST', headers, body: JSON.stringify({ query }) });
    return { status: response.status, body: (await response.json()) as any };
  };

  test('depth, alias and directive limits: QUERY_TOO_COMPLEX with HTTP 400, whatever the client accepts', async () => {
    let deep = 'id';
    for (let i = 0; i < 4; i++) deep = `runs(first: 1) { edges { node { card { ${deep} } } } }`;
    const queries = {
      depth: `{ cards(first: 1) { edges { node { ${deep} } } } }`,
      aliases: `{ ${Array.from({ length: 100 }, (_, i) => `a${i}: __typename`).join(' ')} }`,
      directives: `{ ${"... on Query @include(if: true) { __typename } ".repeat(60)} }`,
    };
    for (const [limit, query] of Object.entries(queries)) {
      for (const headers of [strict, { 'content-type': 'application/json' }]) {
        const { status, body } = await post(query, headers);
        expect({ limit, status, code: body.errors?.[0]?.extensions?.code }).toEqual({ limit, status: 400, code: 'QUERY_TOO_COMPLEX' });
        expect(body.errors[0].message).not.toMatch(/Syntax Error/);
        expect(body.data).toBeUndefined();
      }
    }
    expect((await post(`{ ${Array.from({ length: 30 }, (_, i) => `a${i}: __typename`).join(' ')} }`)).status).toBe(200);
  });

  test('git-backed fields weigh in the cost limit: diff and commits over 100 runs is refused', async () => {
    const { status, body } = await post('{ runs(first: 100) { edges { node { diff { patch } commits { sha } } } } }');
    expect(status).toBe(400);
    // 100 runs x (diff 1,000 + commits 1,000 + 100 commits x 1 + 3)
    expect(body.errors[0].extensions).toEqual({ code: 'QUERY_TOO_EXPENSIVE', cost: 210_301, maxCost: 50_000 });
    // 49 diffs fit; the repository's git call tips it over.
    const tipped = await post('{ repository { headSha } runs(first: 49) { edges { node { diff { patch } } } } }');
    expect(tipped.body.errors[0].extensions).toEqual({ code: 'QUERY_TOO_EXPENSIVE', cost: 50_149, maxCost: 50_000 });
    // One run's review, as the SDK asks for it, is well within the limit.
    const one = await post('{ runs(first: 5) { edges { node { diff { patch } commits { sha } } } } repository { headSha } }');
    expect(one.status).toBe(200);
  });

  test('node(id) of a type that is no node is BAD_USER_INPUT, not "has not been implemented"', async () => {
    for (const typename of ['Bogus', 'Commit']) {
      const { body } = await post(`{ node(id: "${encodeGlobalID(typename, '1')}") { id } }`);
      expect(body.errors[0]).toMatchObject({ extensions: { code: 'BAD_USER_INPUT', field: 'id' } });
      expect(body.errors[0].message).not.toMatch(/implemented/);
      const nodes = await post(`{ nodes(ids: ["${encodeGlobalID(typename, '1')}"]) { id } }`);
      expect(nodes.body.errors[0]).toMatchObject({ extensions: { code: 'BAD_USER_INPUT', field: 'ids' } });
    }
  });

  test('the CSRF refusal of a simple form POST is FORBIDDEN', async () => {
    const response = await fetch(t.url, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'query=%7B__typename%7D' });
    expect(response.status).toBe(403);
    expect(((await response.json()) as any).errors[0].extensions).toEqual({ code: 'FORBIDDEN' });
  });
});

describe('the runboard command\'s HOST', () => {
  const CLI = path.join(projectRoot, 'dist', 'cli.js');
  let repo: string;
  let dataDir: string;
  beforeAll(async () => {
    repo = await makeRepo();
    dataDir = await tempDir('runboard-data-');
  });
  afterAll(() => removeDirs(repo, dataDir));
  const start = (host: string, env: Record<string, string> = {}) =>
    execa('node', [CLI, '--repo', repo, '--data-dir', dataDir, '--port', '0', '--host', host], { reject: false, env: { LOG_LEVEL: 'warn', ...env }, timeout: 30_000 });

  test('a bracketed IPv6 address is served, not a crash at listen', async () => {
    const server = start('[::1]');
    let output = '';
    await new Promise<void>((resolve, reject) => {
      server.stdout!.on('data', (chunk: Buffer) => {
        output += chunk;
        if (output.includes('GraphiQL at')) resolve();
      });
      server.once('exit', () => reject(new Error(`exited early: ${output}`)));
    });
    const url = /GraphiQL at (\S+)/.exec(output)![1];
    expect(url).toMatch(/^http:\/\/\[::1\]:\d+\/graphql$/);
    expect((await fetch(new URL('/healthz', url))).status).toBe(200);
    server.kill('SIGTERM');
    expect((await server).exitCode).toBe(0);
  });

  test('a HOST that is not an address or name, or cannot be bound, is one line and exit 2', async () => {
    for (const [host, env] of [['[::1', {}], ['local host', {}], ['192.0.2.1', { RUNBOARD_TOKEN: 'a-token' }]] as const) {
      const result = await start(host, env);
      expect({ host, exitCode: result.exitCode }).toEqual({ host, exitCode: 2 });
      expect(result.stderr.trim().split('\n')).toEqual([expect.stringMatching(new RegExp(`^runboard: (invalid HOST|cannot listen on HOST) "${host.replace(/[[\].]/g, '\\$&')}"`))]);
    }
  });
});

/** Tokens, Host/Origin checks, the agent's narrow access, and request limits, over real HTTP and WebSocket. */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import path from 'node:path';
import { execa } from 'execa';
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';
import { makeRepo, removeDirs } from './helpers/repo.js';
import { runEvents, startAgentTestBed, waitForStatus, type AgentTestBed } from './helpers/runs.js';
import { projectRoot, startTestServer, type TestServer } from './helpers/server.js';

const TOKEN = 'operator-secret-token';

/** A POST with the given headers; returns status and parsed body. */
async function post(url: string, query: string, headers: Record<string, string> = {}, variables?: Record<string, unknown>) {
  const response = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify({ query, variables }) });
  return { status: response.status, body: (await response.json()) as any };
}

/** Opens a graphql-ws connection and runs one query; resolves with the result or rejects with the close event. */
function wsQuery(url: string, connectionParams: Record<string, unknown> | undefined, headers: Record<string, string> = {}): Promise<any> {
  class HeaderedWebSocket extends WebSocket {
    constructor(address: string, protocols?: string | string[]) {
      super(address, protocols, { headers });
    }
  }
  const client = createClient({ url: url.replace(/^http/, 'ws'), webSocketImpl: HeaderedWebSocket, connectionParams, retryAttempts: 0, lazy: true });
  return new Promise((resolve, reject) => {
    client.subscribe({ query: '{ cards { edges { node { id } } } }' }, { next: resolve, error: reject, complete: () => undefined });
  }).finally(() => client.dispose());
}

describe('with RUNBOARD_TOKEN', () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startTestServer({ env: { RUNBOARD_TOKEN: TOKEN } });
  });
  afterAll(() => t?.close());

  test('a missing or wrong token is refused over HTTP with UNAUTHENTICATED; the right one works', async () => {
    for (const headers of [{}, { authorization: 'Bearer wrong' }, { authorization: TOKEN }] as Record<string, string>[]) {
      const { status, body } = await post(t.url, '{ cards { edges { node { id } } } }', headers);
      expect(status).toBe(401);
      expect(body.errors[0].extensions.code).toBe('UNAUTHENTICATED');
      expect(JSON.stringify(body)).not.toContain(TOKEN);
    }
    const ok = await post(t.url, '{ cards { edges { node { id } } } }', { authorization: `Bearer ${TOKEN}` });
    expect(ok).toEqual({ status: 200, body: { data: { cards: { edges: [] } } } });
  });

  test('a missing or wrong token is refused over WebSocket; the right one works', async () => {
    for (const params of [undefined, { authorization: 'Bearer wrong' }]) {
      await expect(wsQuery(t.url, params)).rejects.toMatchObject({ code: 4401 });
    }
    expect(await wsQuery(t.url, { authorization: `Bearer ${TOKEN}` })).toEqual({ data: { cards: { edges: [] } } });
  });

  test('GraphiQL\'s page itself loads without a token, and never contains it', async () => {
    const page = await fetch(t.url, { headers: { accept: 'text/html' } });
    expect(page.status).toBe(200);
    const html = await page.text();
    expect(html).toContain('<title>runboard</title>');
    expect(html).not.toContain(TOKEN);
  });
});

describe('without a token, on loopback', () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startTestServer();
  });
  afterAll(() => t?.close());

  test('a foreign Host or Origin is refused with FORBIDDEN, on HTTP and WebSocket', async () => {
    const port = new URL(t.url).port;
    const query = '{ cards { edges { node { id } } } }';
    // fetch will not send a Host of our choosing; a DNS-rebinding page's browser does.
    const rebinding = await new Promise<{ status: number; body: any }>((resolve, reject) => {
      const request = httpRequest(t.url, { method: 'POST', headers: { host: `attacker.example:${port}`, 'content-type': 'application/json' } }, (response) => {
        let text = '';
        response.on('data', (chunk) => (text += chunk));
        response.on('end', () => resolve({ status: response.statusCode!, body: JSON.parse(text) }));
      });
      request.on('error', reject);
      request.end(JSON.stringify({ query }));
    });
    expect(rebinding.status).toBe(403);
    expect(rebinding.body.errors[0].extensions.code).toBe('FORBIDDEN');
    const crossSite = await post(t.url, query, { origin: 'https://attacker.example' });
    expect(crossSite.status).toBe(403);
    expect((await post(t.url, query, { origin: `http://127.0.0.1:${port}` })).status).toBe(200);
    // The upgrade itself is refused (HTTP 401 from verifyClient), so the socket closes before it opens.
    await expect(wsQuery(t.url, undefined, { origin: 'https://attacker.example' })).rejects.toMatchObject({ type: expect.stringMatching(/close|error/) });
    expect(await wsQuery(t.url, undefined, { origin: `http://127.0.0.1:${port}` })).toEqual({ data: { cards: { edges: [] } } });
  });

  test('a simple cross-site form POST is stopped by CSRF prevention', async () => {
    const response = await fetch(t.url, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'query=%7Bcards%7Bedges%7Bnode%7Bid%7D%7D%7D%7D' });
    expect(response.status).toBe(403);
  });

  test('depth and cost attacks are rejected before execution; oversized bodies too', async () => {
    // Refused during validation: errors and no `data` at all, so nothing executed.
    const strict = { accept: 'application/graphql-response+json' };
    let deep = 'id';
    for (let i = 0; i < 4; i++) deep = `runs(first: 1) { edges { node { card { ${deep} } } } }`;
    const depth = await post(t.url, `{ cards(first: 1) { edges { node { ${deep} } } } }`, strict);
    expect(depth.body.errors[0].message).toMatch(/depth limit of 12 exceeded/i);
    expect(depth.body.data).toBeUndefined();

    const expensive = await post(t.url, `{ cards(first: 100) { edges { node { runs(first: 100) { edges { node { events(first: 1000) { seq } } } } } } } }`, strict);
    expect(expensive.body.errors[0].extensions).toMatchObject({ code: 'QUERY_TOO_EXPENSIVE', maxCost: 50_000 });
    expect(expensive.body.data).toBeUndefined();

    const aliases = await post(t.url, `{ ${Array.from({ length: 40 }, (_, i) => `a${i}: repository { root }`).join(' ')} }`, strict);
    expect(aliases.body.errors[0].message).toMatch(/aliases/i);
    expect(aliases.body.data).toBeUndefined();

    // An ordinary board query is well within the limits.
    const board = await post(t.url, `{ cards(first: 50) { edges { node { title tags comments(first: 10) { edges { node { body } } } runs(first: 5) { edges { node { status events(first: 20) { seq } } } } } } } }`, strict);
    expect(board.status).toBe(200);

    const big = await post(t.url, `{ cards { edges { node { id } } } }`, {}, { padding: 'x'.repeat(2 * 1024 * 1024) });
    expect(big.status).toBe(413);

    // GraphiQL's introspection stays allowed.
    const introspection = await post(t.url, `{ __schema { types { name fields { name type { name ofType { name ofType { name ofType { name } } } } } } } }`);
    expect(introspection.status).toBe(200);
  });
});

describe('the agent\'s own token, inside a real run', () => {
  let bed: AgentTestBed;
  afterAll(() => bed?.close());

  test('the agent comments on its card, is refused mergeRun and other cards, and its token dies with the run', async () => {
    const curl = (body: object) => `curl -s "$RUNBOARD_URL" -H "Authorization: Bearer $RUNBOARD_RUN_TOKEN" -H 'content-type: application/json' -d '${JSON.stringify(body)}'`;
    let ids: { card: string; other: string; run: string } | undefined;
    bed = await startAgentTestBed((request) => {
      const step = request.toolResultCount;
      if (!ids) return { text: 'no ids' };
      const commands = [
        `echo "$RUNBOARD_RUN_TOKEN" > token.txt; ${curl({ query: 'mutation($c: ID!) { addComment(cardId: $c, author: "agent", body: "working on it") { id } }', variables: { c: ids.card } })}`,
        curl({ query: 'mutation($c: ID!) { moveCard(id: $c, column: REVIEW) { column } }', variables: { c: ids.card } }),
        curl({ query: 'mutation($r: ID!) { mergeRun(runId: $r) { ok } }', variables: { r: ids.run } }),
        curl({ query: 'mutation($c: ID!) { addComment(cardId: $c, author: "agent", body: "sneaky") { id } }', variables: { c: ids.other } }),
        curl({ query: '{ currentRun { id card { id } } }' }),
      ];
      return step < commands.length ? { toolCalls: [{ name: 'bash', arguments: { command: commands[step] } }] } : { text: 'Done.' };
    });
    const { t, model } = bed;
    const { createCard: card } = await t.ok(`mutation { createCard(input: { title: "Agent's card" }) { id } }`);
    const { createCard: other } = await t.ok(`mutation { createCard(input: { title: "Someone else's card" }) { id } }`);
    const { startRun: run } = await t.ok(`mutation($c: ID!) { startRun(input: { cardId: $c }) { id } }`, { c: card.id });
    ids = { card: card.id, other: other.id, run: run.id };
    const settled = await waitForStatus(t, run.id);
    expect(settled.status).toBe('SUCCEEDED');

    const outputs = model.requests.at(-1)!.messages.filter((m) => m.role === 'tool').map((m) => JSON.parse(String(m.content)));
    expect(outputs[0]).toMatchObject({ data: { addComment: { id: expect.any(String) } } });
    expect(outputs[1]).toEqual({ data: { moveCard: { column: 'REVIEW' } } });
    expect(outputs[2].errors[0].extensions.code).toBe('FORBIDDEN');
    expect(outputs[3].errors[0].extensions.code).toBe('FORBIDDEN');
    expect(outputs[4]).toEqual({ data: { currentRun: { id: run.id, card: { id: card.id } } } });

    const { card: after } = await t.ok(`query($c: ID!) { card(id: $c) { column comments { edges { node { author body } } } } }`, { c: card.id });
    expect(after).toEqual({ column: 'REVIEW', comments: { edges: [{ node: { author: expect.stringMatching(/^agent \(run [a-z0-9]{8}\)$/), body: 'working on it' } }] } });
    const { card: untouched } = await t.ok(`query($c: ID!) { card(id: $c) { comments { totalCount } } }`, { c: other.id });
    expect(untouched.comments.totalCount).toBe(0);
    const changes = (await runEvents(t, run.id)).filter((e) => e.type === 'board_change').map((e) => e.data.action);
    expect(changes).toEqual(['ADD_COMMENT', 'MOVE_CARD']);

    const token = (await readFile(path.join(settled.worktreePath, 'token.txt'), 'utf8')).trim();
    expect(token.length).toBeGreaterThan(20);
    const afterRun = await post(t.url, '{ cards { edges { node { id } } } }', { authorization: `Bearer ${token}` });
    expect(afterRun.status).toBe(401);
    expect(afterRun.body.errors[0].extensions.code).toBe('UNAUTHENTICATED');
  });
});

test('a non-loopback bind without a token refuses to start', async () => {
  const repo = await makeRepo();
  try {
    const result = await execa('node', [path.join(projectRoot, 'dist', 'cli.js'), '--repo', repo, '--host', '0.0.0.0', '--port', '0'], { reject: false, env: { RUNBOARD_TOKEN: '' } });
    expect(result.exitCode).toBe(2);
    expect(result.stderr.trim()).toMatch(/^runboard: .*0\.0\.0\.0.*RUNBOARD_TOKEN/);
    expect(existsSync(path.join(repo, '.runboard'))).toBe(false);
  } finally {
    await removeDirs(repo);
  }
});

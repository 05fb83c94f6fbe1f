/** Logs: one line per request and per run status change, JSON when not a terminal, and no secrets in them. */
import { encodeGlobalID } from '@pothos/plugin-relay';
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';
import { createLogger } from '../src/log.js';
import { startTestServer, type TestServer } from './helpers/server.js';

const TOKEN = 'tok-7f3a9c-secret';

/** A log destination that keeps every record, parsed (each write is one JSON line). */
function capture() {
  const lines: string[] = [];
  return { lines, records: () => lines.map((line) => JSON.parse(line)), write: (line: string) => void lines.push(line) };
}

let t: TestServer;
let log: ReturnType<typeof capture>;
beforeAll(async () => {
  log = capture();
  t = await startTestServer({ env: { RUNBOARD_TOKEN: TOKEN }, logStream: log });
});
afterAll(async () => {
  await t?.close();
});

async function post(query: string, variables?: Record<string, unknown>) {
  const response = await fetch(t.url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${TOKEN}` },
    body: JSON.stringify({ query, variables }),
  });
  return response.json();
}

const lineFor = (operation: string) => log.records().find((record) => record.operation === operation);

test('a request logs one line with its operation name, duration and outcome, and never the token or variables', async () => {
  await post(`mutation NewCardForLog($title: String!) { createCard(input: { title: $title }) { id } }`, { title: `title mentioning ${TOKEN}` });
  await post(`query BoardForLog { cards { edges { node { id } } } }`);
  const line = lineFor('BoardForLog');
  expect(line).toMatchObject({ level: 30, operation: 'BoardForLog', type: 'query', transport: 'http', outcome: 'ok', msg: expect.stringContaining('BoardForLog') });
  expect(typeof line.durationMs).toBe('number');
  expect(log.records().filter((record) => record.operation === 'BoardForLog')).toHaveLength(1);
  expect(lineFor('NewCardForLog')).toMatchObject({ type: 'mutation', outcome: 'ok' });
  expect(log.lines.join('\n')).not.toContain(TOKEN);
  expect(log.lines.join('\n')).not.toContain('title mentioning');
});

test('a failed request logs its error codes at info; expected errors are never logged at error level', async () => {
  await post(`mutation EmptyTitle { createCard(input: { title: "" }) { id } }`);
  await post(`query Unknown { nothing }`);
  expect(lineFor('EmptyTitle')).toMatchObject({ level: 30, outcome: 'error', codes: ['BAD_USER_INPUT'] });
  expect(lineFor('Unknown')).toMatchObject({ outcome: 'error', codes: ['GRAPHQL_VALIDATION_FAILED'] });
  expect(log.records().filter((record) => record.level >= 50)).toEqual([]);
});

test('operations over graphql-ws are logged too; a subscription when it ends', async () => {
  const client = createClient({ url: t.url.replace(/^http/, 'ws'), webSocketImpl: WebSocket, retryAttempts: 0, connectionParams: { authorization: `Bearer ${TOKEN}` } });
  const db = t.server.orchestrator.db.client;
  const card = await db.card.create({ data: { title: 'followed', position: 98 } });
  const run = await db.run.create({ data: { cardId: card.id, prompt: 'p', status: 'RUNNING' } });
  try {
    const operation = (query: string, variables?: Record<string, unknown>, onNext = () => {}) =>
      new Promise<void>((resolve, reject) => client.subscribe({ query, variables }, { next: onNext, error: reject, complete: resolve }));
    await operation(`query OverSocket { cards { edges { node { id } } } }`);
    let received!: () => void;
    const first = new Promise<void>((resolve) => (received = resolve));
    const following = operation(`subscription FollowForLog($id: ID!) { runEvents(runId: $id, untilSettled: true) { seq } }`, { id: encodeGlobalID('Run', run.id) }, () => received());
    await t.server.orchestrator.eventLog.append(run.id, [{ type: 'assistant_text', data: { text: 'hi' } }]);
    await first;
    expect(lineFor('FollowForLog')).toBeUndefined(); // still open
    await t.server.orchestrator.eventLog.append(run.id, [{ type: 'status', data: { status: 'SUCCEEDED' } }], { status: 'SUCCEEDED' });
    await following;
  } finally {
    await client.dispose();
  }
  expect(lineFor('OverSocket')).toMatchObject({ transport: 'ws', type: 'query', outcome: 'ok' });
  expect(lineFor('FollowForLog')).toMatchObject({ transport: 'ws', type: 'subscription', outcome: 'ok' });
});

test('a run status change logs one line with the run, its card and the status, never the prompt or agent output', async () => {
  const db = t.server.orchestrator.db.client;
  const card = await db.card.create({ data: { title: 'logged', position: 99 } });
  const run = await db.run.create({ data: { cardId: card.id, prompt: 'a private prompt', status: 'QUEUED' } });
  await t.server.orchestrator.eventLog.append(run.id, [{ type: 'assistant_text', data: { text: 'private agent output' } }]);
  await post(`mutation StopIt($id: ID!) { stopRun(runId: $id) { status } }`, { id: encodeGlobalID('Run', run.id) });
  const lines = log.records().filter((record) => record.runId === run.id);
  expect(lines).toEqual([expect.objectContaining({ level: 30, runId: run.id, cardId: card.id, status: 'STOPPED' })]);
  expect(log.lines.join('\n')).not.toMatch(/a private prompt|private agent output/);
});

test('LOG_LEVEL quiets request lines', async () => {
  const quiet = capture();
  const server = await startTestServer({ env: { LOG_LEVEL: 'warn' }, logStream: quiet });
  try {
    await server.ok(`query Quiet { cards { edges { node { id } } } }`);
  } finally {
    await server.close();
  }
  expect(quiet.lines).toEqual([]);
});

test('the logger redacts tokens and Authorization headers wherever a caller puts them', () => {
  const out = capture();
  const logger = createLogger({ destination: out });
  logger.info({ token: TOKEN, authorization: `Bearer ${TOKEN}`, headers: { authorization: `Bearer ${TOKEN}` }, env: { RUNBOARD_TOKEN: TOKEN }, config: { token: TOKEN } }, 'secrets');
  expect(out.lines.join('')).not.toContain(TOKEN);
  expect(out.records()[0]).toMatchObject({ token: '[redacted]', headers: { authorization: '[redacted]' }, config: { token: '[redacted]' } });
});

test('GraphiQL tells the person where to put the token only when one is required, and never embeds it', async () => {
  const page = async (url: string) => (await fetch(url, { headers: { accept: 'text/html' } })).text();
  const withToken = await page(t.url);
  expect(withToken).toContain('This server requires a token');
  expect(withToken).toContain('Authorization');
  expect(withToken).not.toContain(TOKEN);
  const open = await startTestServer();
  try {
    expect(await page(open.url)).not.toContain('requires a token');
  } finally {
    await open.close();
  }
});

/**
 * Finding 12 of the adversarial run: clients that drop right after subscribing to a long history must
 * stop costing replay work at once, and other clients keep being served. Measured against a full
 * replay of the same history in the same run (a ratio, not a time limit).
 */
import { encodeGlobalID } from '@pothos/plugin-relay';
import WebSocket from 'ws';
import { startTestServer, type TestServer } from './helpers/server.js';

const HISTORY = 20_000;
const STORM_CLIENTS = 12;

function capture() {
  const lines: string[] = [];
  return { records: () => lines.map((line) => JSON.parse(line)), write: (line: string) => void lines.push(line) };
}

let t: TestServer;
let log: ReturnType<typeof capture>;
let runId: string;
beforeAll(async () => {
  log = capture();
  t = await startTestServer({ logStream: log });
  const { db, eventLog } = t.server.orchestrator;
  const card = await db.client.card.create({ data: { title: 'long history', position: 0 } });
  const run = await db.client.run.create({ data: { cardId: card.id, prompt: 'p', status: 'RUNNING' } });
  for (let i = 0; i < HISTORY; i += 1_000) await eventLog.append(run.id, Array.from({ length: 1_000 }, (_, j) => ({ type: 'assistant_text' as const, data: { text: `chunk ${i + j}` } })));
  await eventLog.append(run.id, [{ type: 'status', data: { status: 'SUCCEEDED' } }], { status: 'SUCCEEDED' });
  runId = encodeGlobalID('Run', run.id);
}, 60_000);
afterAll(() => t?.close());

/** A raw graphql-ws client; resolves with how many `next` messages it saw, dropping the socket after `dropAfter` of them. */
function subscribe(operationName: string, dropAfter = Infinity): Promise<number> {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(t.url.replace(/^http/, 'ws'), 'graphql-transport-ws');
    let received = 0;
    socket.on('open', () => socket.send(JSON.stringify({ type: 'connection_init' })));
    socket.on('message', (raw) => {
      const message = JSON.parse(String(raw));
      if (message.type === 'connection_ack') {
        socket.send(JSON.stringify({ id: '1', type: 'subscribe', payload: { operationName, query: `subscription ${operationName}($id: ID!) { runEvents(runId: $id, untilSettled: true) { seq } }`, variables: { id: runId } } }));
      } else if (message.type === 'next' && ++received >= dropAfter) {
        socket.terminate(); // gone without a word, as a dropped network would leave it
        resolve(received);
      } else if (message.type === 'complete') {
        socket.close();
        resolve(received);
      } else if (message.type === 'error') reject(new Error(JSON.stringify(message.payload)));
    });
    socket.on('error', reject);
  });
}

/** The request log's line for a finished subscription (it is written when the subscription ends). */
async function durationOf(operation: string, count = 1): Promise<number[]> {
  for (let i = 0; i < 400; i++) {
    const lines = log.records().filter((record) => record.operation === operation);
    if (lines.length >= count) return lines.map((line) => line.durationMs);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`no log line for ${operation}`);
}

test('a client that drops mid-replay stops its replay at once; a storm of them does not hold up the server', async () => {
  expect(await subscribe('FullReplay')).toBe(HISTORY + 1);
  const [full] = await durationOf('FullReplay');

  const storm = Array.from({ length: STORM_CLIENTS }, () => subscribe('DroppedReplay', 1));
  const health = fetch(t.url.replace('/graphql', '/healthz'));
  await Promise.all(storm);
  expect((await health).status).toBe(200);
  const dropped = await durationOf('DroppedReplay', STORM_CLIENTS);
  // Each dropped replay ended after a page or so, not after sending the whole history into a dead socket.
  for (const duration of dropped) expect(duration).toBeLessThan(full / 3);
  // And a client that stays still gets everything, once.
  expect(await subscribe('AfterTheStorm')).toBe(HISTORY + 1);
});

/**
 * runEventBatches and boardEventBatches through the real server: history a list per message, then
 * live, once each across a drop and a resume, over graphql-ws and SSE; and their cost and input limits.
 */
import { createClient, type Client } from 'graphql-ws';
import WebSocket from 'ws';
import { followRunEventBatches, SubscriberTooSlowError } from '../src/orchestrator/event-stream.js';
import { makeActiveRun } from './helpers/events.js';
import { startTestServer, type TestServer } from './helpers/server.js';

let t: TestServer;
let client: Client;
beforeAll(async () => {
  t = await startTestServer();
  client = createClient({ url: t.url.replace(/^http/, 'ws'), webSocketImpl: WebSocket, retryAttempts: 0 });
});
afterAll(async () => {
  await client?.dispose();
  await t?.close();
});

const makeRun = () => makeActiveRun(t, 'batches');

/** Appends `count` text events, 100 per transaction. */
async function write(runId: string, count: number): Promise<void> {
  for (let done = 0; done < count; done += 100) {
    const events = Array.from({ length: Math.min(100, count - done) }, (_, i) => ({ type: 'assistant_text' as const, data: { text: `chunk ${done + i}` } }));
    await t.server.orchestrator.eventLog.append(runId, events);
  }
}
const settle = (runId: string) => t.server.orchestrator.eventLog.append(runId, [{ type: 'status', data: { status: 'SUCCEEDED' } }], { status: 'SUCCEEDED' });

const BATCHES = `subscription($id: ID!, $since: Int, $until: Boolean) { runEventBatches(runId: $id, since: $since, untilSettled: $until) { seq type } }`;
const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

/** Follows a subscription over graphql-ws, one entry of `messages` per message. */
function follow(query: string, variables: Record<string, unknown>, field: string) {
  const messages: { seq: number; type?: string }[][] = [];
  let errors: unknown;
  let resolveDone: () => void;
  const done = new Promise<void>((resolve) => (resolveDone = resolve));
  const stop = client.subscribe(
    { query, variables },
    {
      next: (result) => (result.errors ? (errors = result.errors) : messages.push((result.data as any)[field])),
      error: (error) => ((errors = error), resolveDone()),
      complete: () => resolveDone(),
    },
  );
  const until = async (what: string, ok: () => boolean) => {
    for (let i = 0; i < 500 && !ok(); i++) await new Promise((resolve) => setTimeout(resolve, 20));
    if (!ok()) throw new Error(`timed out waiting for ${what}; errors: ${JSON.stringify(errors)}`);
  };
  return { messages, stop, done, errors: () => errors, until, seqs: () => messages.flat().map((e) => e.seq) };
}

test('5,000 events replay in 3 messages, then live; a drop and a resume from the last seq lose and repeat nothing', async () => {
  const run = await makeRun();
  await write(run.id, 5_000);
  const first = follow(BATCHES, { id: run.globalId }, 'runEventBatches');
  await first.until('the history', () => first.seqs().at(-1) === 5_000);
  expect(first.messages.map((m) => m.length)).toEqual([2_000, 2_000, 1_000]);
  expect(first.seqs()).toEqual(range(1, 5_000));
  await write(run.id, 30); // live now
  await first.until('the live events', () => first.seqs().at(-1) === 5_030);
  expect(first.seqs()).toEqual(range(1, 5_030));
  expect(first.messages.slice(3).every((m) => m.length >= 1)).toBe(true);
  first.stop(); // the drop
  await write(run.id, 2_500); // missed while away
  const resumed = follow(BATCHES, { id: run.globalId, since: first.seqs().at(-1), until: true }, 'runEventBatches');
  await resumed.until('the missed history', () => resumed.seqs().at(-1) === 7_530);
  expect(resumed.messages.slice(0, 2).map((m) => m.length)).toEqual([2_000, 500]);
  await write(run.id, 10);
  await settle(run.id);
  await resumed.done; // untilSettled: the terminal status ends the stream
  expect(resumed.errors()).toBeUndefined();
  expect([...first.seqs(), ...resumed.seqs()]).toEqual(range(1, 7_541));
  expect(resumed.messages.flat().at(-1)).toEqual({ seq: 7_541, type: 'status' });
});

test('a settled run replays its history and ends; since past the end and a bad first are BAD_USER_INPUT', async () => {
  const run = await makeRun();
  await write(run.id, 50);
  await settle(run.id);
  const replay = follow(BATCHES, { id: run.globalId, since: 10, until: true }, 'runEventBatches');
  await replay.done;
  expect(replay.messages.map((m) => m.length)).toEqual([41]);
  expect(replay.seqs()).toEqual(range(11, 51));
  const past = follow(BATCHES, { id: run.globalId, since: 52 }, 'runEventBatches');
  await past.done;
  expect(past.errors()).toEqual([expect.objectContaining({ extensions: expect.objectContaining({ code: 'BAD_USER_INPUT', field: 'since' }) })]);
  const tooMany = follow(`subscription($id: ID!) { runEventBatches(runId: $id, first: 2001) { seq } }`, { id: run.globalId }, 'runEventBatches');
  await tooMany.done;
  expect(tooMany.errors()).toEqual([expect.objectContaining({ extensions: expect.objectContaining({ code: 'BAD_USER_INPUT', field: 'first' }) })]);
  const small = follow(`subscription($id: ID!) { runEventBatches(runId: $id, first: 20, untilSettled: true) { seq } }`, { id: run.globalId }, 'runEventBatches');
  await small.done;
  expect(small.messages.map((m) => m.length)).toEqual([20, 20, 11]);
});

test('over SSE each message is a list whose last seq is its id, and Last-Event-ID resumes after it', async () => {
  const run = await makeRun();
  await write(run.id, 2_300);
  await settle(run.id);
  const sse = async (headers: Record<string, string> = {}) => {
    const response = await fetch(t.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'text/event-stream', ...headers },
      body: JSON.stringify({ query: BATCHES, variables: { id: run.globalId, until: true } }),
    });
    const frames = (await response.text()).split('\n\n').filter((frame) => frame.startsWith('event: next'));
    return frames.map((frame) => {
      const lines = frame.split('\n');
      const batch = JSON.parse(lines.find((line) => line.startsWith('data: '))!.slice(6)).data.runEventBatches as { seq: number }[];
      return { id: lines.find((line) => line.startsWith('id: '))?.slice(4), seqs: batch.map((e) => e.seq) };
    });
  };
  const messages = await sse();
  expect(messages.map((m) => m.seqs.length)).toEqual([2_000, 301]);
  for (const message of messages) expect(message.id).toBe(String(message.seqs.at(-1)));
  expect(messages.flatMap((m) => m.seqs)).toEqual(range(1, 2_301));
  const resumed = await sse({ 'last-event-id': messages[0]!.id! });
  expect(resumed.flatMap((m) => m.seqs)).toEqual(range(2_001, 2_301));
});

test('boardEventBatches: history as lists, then live changes, once each across a drop and a resume', async () => {
  const since = await t.server.orchestrator.boardLog.lastSeq();
  for (let i = 0; i < 30; i++) await t.ok(`mutation($title: String!) { createCard(input: { title: $title }) { id } }`, { title: `card ${i}` });
  const query = `subscription($since: Int, $first: Int) { boardEventBatches(since: $since, first: $first) { seq type } }`;
  const first = follow(query, { since, first: 25 }, 'boardEventBatches');
  await first.until('the history', () => first.seqs().at(-1) === since + 30);
  expect(first.messages.map((m) => m.length)).toEqual([25, 5]);
  await t.ok(`mutation { createCard(input: { title: "live" }) { id } }`);
  await first.until('the live change', () => first.seqs().at(-1) === since + 31);
  first.stop();
  for (let i = 0; i < 3; i++) await t.ok(`mutation($title: String!) { createCard(input: { title: $title }) { id } }`, { title: `missed ${i}` });
  const resumed = follow(query, { since: first.seqs().at(-1) }, 'boardEventBatches');
  await resumed.until('the missed changes', () => resumed.seqs().at(-1) === since + 34);
  resumed.stop();
  expect(resumed.messages[0]).toHaveLength(3);
  expect([...first.seqs(), ...resumed.seqs()]).toEqual(range(since + 1, since + 34));
});

test('the cost limit prices a message at its largest batch, and a literal first lowers it', async () => {
  const run = await makeRun();
  const plans = (first: string) =>
    `subscription($id: ID!) { runEventBatches(runId: $id${first}) { seq type createdAt ... on PlanUpdatedEvent { entries { content status priority } } } }`;
  const tooExpensive = follow(plans(''), { id: run.globalId }, 'runEventBatches');
  await tooExpensive.done;
  expect(tooExpensive.errors()).toEqual([expect.objectContaining({ extensions: expect.objectContaining({ code: 'QUERY_TOO_EXPENSIVE' }) })]);
  const fits = follow(plans(', first: 1000, untilSettled: true'), { id: run.globalId }, 'runEventBatches');
  await write(run.id, 3);
  await settle(run.id);
  await fits.done;
  expect(fits.errors()).toBeUndefined();
  expect(fits.seqs()).toEqual([1, 2, 3, 4]);
});

test('a batched subscriber that falls too far behind is ended with the last seq of its last batch, and resuming loses nothing', async () => {
  const run = await makeRun();
  const { db, eventLog, bus } = t.server.orchestrator;
  const slow = await followRunEventBatches(db, eventLog, bus, run.id, { maxBuffered: 10 });
  await write(run.id, 5);
  const received: number[] = [];
  while (received.length < 5) received.push(...((await slow.next()).value as { seq: number }[]).map((e) => e.seq));
  for (let i = 0; i < 3; i++) await write(run.id, 10); // three publishes the slow one reads none of: 30 > 10 buffered
  await expect(slow.next()).rejects.toEqual(new SubscriberTooSlowError(5));
  await settle(run.id);
  const resumed = await followRunEventBatches(db, eventLog, bus, run.id, { since: 5, untilSettled: true });
  for await (const batch of resumed) received.push(...batch.map((e) => e.seq));
  expect(received).toEqual(range(1, 36));
});

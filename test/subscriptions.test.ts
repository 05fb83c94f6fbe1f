/** runEvents and runUpdated over a real graphql-ws socket and over SSE, with a concurrent writer. */
import { encodeGlobalID } from '@pothos/plugin-relay';
import { createClient, type Client } from 'graphql-ws';
import WebSocket from 'ws';
import { followRunEvents, SubscriberTooSlowError } from '../src/orchestrator/event-stream.js';
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

const makeRun = () => makeActiveRun(t, 'events');

/** Appends `count` events one transaction at a time, yielding to the event loop between them, then the terminal status. */
async function write(runId: string, count: number, terminal = true): Promise<void> {
  const log = t.server.orchestrator.eventLog;
  for (let i = 0; i < count; i++) {
    await log.append(runId, [{ type: 'assistant_text', data: { text: `chunk ${i}` } }]);
    if (i % 10 === 0) await new Promise((resolve) => setImmediate(resolve));
  }
  if (terminal) await log.append(runId, [{ type: 'status', data: { status: 'SUCCEEDED' } }], { status: 'SUCCEEDED' });
}

const RUN_EVENTS = `subscription($id: ID!, $since: Int) { runEvents(runId: $id, since: $since, untilSettled: true) { seq type ... on StatusChangedEvent { status } } }`;

/** Collects a graphql-ws subscription until it completes. */
function collect(query: string, variables: Record<string, unknown>, onEvent?: (seq: number) => void): Promise<{ events: any[]; errors: any[] }> {
  return new Promise((resolve, reject) => {
    const events: any[] = [];
    const errors: any[] = [];
    client.subscribe(
      { query, variables },
      {
        next: (result) => {
          if (result.errors) errors.push(...result.errors);
          if (result.data) {
            const event = (result.data as any).runEvents;
            events.push(event);
            onEvent?.(event.seq);
          }
        },
        error: reject,
        complete: () => resolve({ events, errors }),
      },
    );
  });
}

const seqs = (events: { seq: number }[]) => events.map((e) => e.seq);
const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

test('replay plus live across the boundary while a writer inserts: exactly seq 1..N, once each, in order', async () => {
  const run = await makeRun();
  await write(run.id, 150, false); // history before the subscriber arrives
  const writing = write(run.id, 350); // …and a writer still going while it replays
  const { events, errors } = await collect(RUN_EVENTS, { id: run.globalId });
  await writing;
  expect(errors).toEqual([]);
  expect(seqs(events)).toEqual(range(1, 501));
  expect(events.at(-1)).toEqual({ seq: 501, type: 'status', status: 'SUCCEEDED' });
});

test('resubscribing with since continues from there, and two subscribers each get every event', async () => {
  const run = await makeRun();
  const firstSubscriber = collect(RUN_EVENTS, { id: run.globalId });
  let resumed: Promise<{ events: any[] }> | undefined;
  const secondSubscriber = collect(RUN_EVENTS, { id: run.globalId }, (seq) => {
    // A client that "drops" at seq 40 and resubscribes from there.
    if (seq === 40) resumed = collect(RUN_EVENTS, { id: run.globalId, since: 40 });
  });
  await write(run.id, 99);
  const [a, b] = await Promise.all([firstSubscriber, secondSubscriber]);
  expect(seqs(a.events)).toEqual(range(1, 100));
  expect(seqs(b.events)).toEqual(range(1, 100));
  expect(seqs((await resumed!).events)).toEqual(range(41, 100));
  // A settled run replays its history and ends at once.
  expect(seqs((await collect(RUN_EVENTS, { id: run.globalId, since: 95 })).events)).toEqual(range(96, 100));
  expect((await collect(RUN_EVENTS, { id: run.globalId, since: 100 })).events).toEqual([]);
});

test('since past an active run\'s last seq is BAD_USER_INPUT at once, not a stream that never ends (finding 13)', async () => {
  const run = await makeRun();
  await write(run.id, 3, false);
  const result = await collect(RUN_EVENTS, { id: run.globalId, since: 10 }).catch((errors) => ({ events: [], errors }));
  expect(result.errors[0].extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'since' });
  // The same run followed from its real last seq ends with its terminal status, as untilSettled asks.
  const following = collect(RUN_EVENTS, { id: run.globalId, since: 3 });
  await write(run.id, 2);
  expect(seqs((await following).events)).toEqual([4, 5, 6]);
});

test('an unknown run is NOT_FOUND', async () => {
  const result = await collect(RUN_EVENTS, { id: encodeGlobalID('Run', 'nope') }).catch((errors) => ({ events: [], errors }));
  expect(result.errors[0].extensions.code).toBe('NOT_FOUND');
});

test.each([
  ['another type\'s id', encodeGlobalID('Card', 'x'), /is not of type: Run/],
  ['no global id at all', 'not-an-id', /Invalid global ID/],
])('a runId that is %s is BAD_USER_INPUT, for runEvents and runEventBatches', async (_case, id, message) => {
  for (const field of ['runEvents', 'runEventBatches']) {
    const result = await collect(`subscription($id: ID!) { ${field}(runId: $id) { seq } }`, { id }).catch((errors) => ({ events: [], errors }));
    expect(result.errors[0].extensions.code).toBe('BAD_USER_INPUT');
    expect(result.errors[0].message).toMatch(message);
  }
});

test('SSE transport: history then live, ended by the terminal event with untilSettled', async () => {
  const run = await makeRun();
  await write(run.id, 5, false);
  const response = await fetch(t.url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'text/event-stream' },
    body: JSON.stringify({ query: RUN_EVENTS, variables: { id: run.globalId, since: 2 } }),
  });
  expect(response.headers.get('content-type')).toMatch(/text\/event-stream/);
  const writing = write(run.id, 5);
  const text = await response.text(); // resolves when the server ends the stream
  await writing;
  const frames = text.split('\n\n').filter((frame) => frame.startsWith('event: next'));
  const events = frames.map((frame) => JSON.parse(frame.split('\n').find((line) => line.startsWith('data: '))!.slice(6)).data.runEvents);
  expect(seqs(events)).toEqual(range(3, 11));
  expect(text).toMatch(/event: complete/);
});

test('runUpdated tells a board about status changes of its card\'s runs', async () => {
  const run = await makeRun();
  const cardId = (await t.server.orchestrator.db.client.run.findUniqueOrThrow({ where: { id: run.id } })).cardId;
  const updates: string[] = [];
  const done = new Promise<void>((resolve, reject) => {
    const stop = client.subscribe(
      { query: `subscription($card: ID) { runUpdated(cardId: $card) { id status } }`, variables: { card: encodeGlobalID('Card', cardId) } },
      {
        next: (result) => {
          updates.push((result.data as any).runUpdated.status);
          if (updates.includes('STOPPED')) {
            stop();
            resolve();
          }
        },
        error: reject,
        complete: () => undefined,
      },
    );
  });
  await new Promise((resolve) => setTimeout(resolve, 100)); // let the subscription start
  await t.server.orchestrator.db.client.run.update({ where: { id: run.id }, data: { status: 'QUEUED' } });
  const stopped = await t.ok(`mutation($id: ID!) { stopRun(runId: $id) { status } }`, { id: run.globalId });
  expect(stopped.stopRun.status).toBe('STOPPED');
  await done;
  expect(updates).toEqual(['STOPPED']);
});

test('a subscriber that falls too far behind is ended with the seq to resume from, and loses nothing', async () => {
  const run = await makeRun();
  const { db, eventLog, bus } = t.server.orchestrator;
  const fast = collect(RUN_EVENTS, { id: run.globalId });
  const slow = await followRunEvents(db, eventLog, bus, run.id, { maxBuffered: 10 });
  await write(run.id, 5, false);
  const received: number[] = [];
  for (let i = 0; i < 5; i++) received.push((await slow.next()).value!.seq);
  await write(run.id, 50); // the slow subscriber reads none of these while they are written
  await expect(slow.next()).rejects.toEqual(new SubscriberTooSlowError(5));
  // Other subscribers were not held back, and resuming from the given seq loses nothing.
  expect(seqs((await fast).events)).toEqual(range(1, 56));
  const resumed = await followRunEvents(db, eventLog, bus, run.id, { since: 5, untilSettled: true });
  for await (const event of resumed) received.push(event.seq);
  expect(received).toEqual(range(1, 56));
});

test('a client that unsubscribes from a quiet run or card leaves no listener behind', async () => {
  const run = await makeRun();
  const cardId = (await t.server.orchestrator.db.client.run.findUniqueOrThrow({ where: { id: run.id } })).cardId;
  const bus = t.server.orchestrator.bus;
  const stops = [
    client.subscribe({ query: RUN_EVENTS, variables: { id: run.globalId } }, { next: () => undefined, error: () => undefined, complete: () => undefined }),
    client.subscribe({ query: `subscription($c: ID) { runUpdated(cardId: $c) { id } }`, variables: { c: encodeGlobalID('Card', cardId) } }, { next: () => undefined, error: () => undefined, complete: () => undefined }),
  ];
  const listening = () => bus.listenerCount('run-events', run.id) + bus.listenerCount('run-updated', cardId);
  for (let i = 0; i < 100 && listening() < 2; i++) await new Promise((resolve) => setTimeout(resolve, 20));
  expect(listening()).toBe(2);
  for (const stop of stops) stop();
  for (let i = 0; i < 100 && listening() > 0; i++) await new Promise((resolve) => setTimeout(resolve, 20));
  expect(listening()).toBe(0);
});

test('appends made in the same turn share a commit, yet one that fails rolls back alone and the rest are published in order', async () => {
  const runs = await Promise.all([makeRun(), makeRun(), makeRun()]);
  const { eventLog, bus } = t.server.orchestrator;
  const published: string[] = [];
  const stops = runs.map((run) => bus.subscribe('run-events', run.id, (event) => published.push(`${run.id}:${event.seq}`)));
  try {
    // All in one synchronous turn: they land in one group.
    const appends = [
      eventLog.append(runs[0]!.id, [{ type: 'assistant_text', data: { text: 'a' } }]),
      eventLog.append('no-such-run', [{ type: 'assistant_text', data: { text: 'lost' } }]),
      eventLog.append(runs[1]!.id, [{ type: 'assistant_text', data: { text: 'b' } }, { type: 'assistant_text', data: { text: 'c' } }]),
      eventLog.append(runs[2]!.id, [{ type: 'assistant_text', data: { text: 'd' } }]),
    ];
    const outcomes = await Promise.allSettled(appends);
    expect(outcomes.map((o) => o.status)).toEqual(['fulfilled', 'rejected', 'fulfilled', 'fulfilled']);
    expect((outcomes[1] as PromiseRejectedResult).reason.constructor.name).toBe('NotFoundError');
    expect(published).toEqual([`${runs[0]!.id}:1`, `${runs[1]!.id}:1`, `${runs[1]!.id}:2`, `${runs[2]!.id}:1`]);
    for (const run of runs) expect((await eventLog.read(run.id)).map((e) => e.seq)).toEqual(run === runs[1] ? [1, 2] : [1]);
  } finally {
    for (const stop of stops) stop();
  }
});

test('a group with a failing append keeps its place: a later group, queued while it waited for the write lock, gets the later seqs', async () => {
  const run = await makeRun();
  const { eventLog, db } = t.server.orchestrator;
  let release!: () => void;
  const held = new Promise<void>((resolve) => (release = resolve));
  const holding = db.write(() => held); // another writer holds the lock while both groups queue
  const first = [eventLog.append(run.id, [{ type: 'assistant_text', data: { text: 'first' } }]), eventLog.append('no-such-run', [{ type: 'assistant_text', data: { text: 'lost' } }])];
  await new Promise((resolve) => setImmediate(resolve)); // the first group is made and waits for the lock
  const second = eventLog.append(run.id, [{ type: 'assistant_text', data: { text: 'second' } }]);
  await new Promise((resolve) => setImmediate(resolve));
  release();
  await holding;
  const [outcomes, after] = await Promise.all([Promise.allSettled(first), second]);
  expect(outcomes.map((outcome) => outcome.status)).toEqual(['fulfilled', 'rejected']);
  expect((await eventLog.read(run.id)).map((event) => [event.seq, (event.data as { text: string }).text])).toEqual([[1, 'first'], [2, 'second']]);
  expect(after[0]!.seq).toBe(2);
});

test('event ids are UUIDv7s in the order they were written, past 4,096 in one millisecond and with the clock going back', async () => {
  const run = await makeRun();
  const { eventLog, db } = t.server.orchestrator;
  // The clock stands still for the first append (5,000 ids in one millisecond: the counter overflows),
  // then goes back a second for the next: ids must stay in order all the same.
  const realNow = Date.now;
  const frozen = realNow() + 60_000;
  Date.now = () => frozen;
  try {
    await eventLog.append(run.id, Array.from({ length: 5_000 }, (_, i) => ({ type: 'assistant_text' as const, data: { text: `${i}` } })));
    Date.now = () => frozen - 1_000;
    await eventLog.append(run.id, [{ type: 'assistant_text', data: { text: 'clock back' } }]);
  } finally {
    Date.now = realNow;
  }
  await eventLog.append(run.id, [{ type: 'assistant_text', data: { text: 'later' } }]);
  const ids = (await db.client.runEvent.findMany({ where: { runId: run.id }, orderBy: { seq: 'asc' }, select: { id: true } })).map((row) => row.id);
  expect(ids).toHaveLength(5_002);
  expect(new Set(ids.map((id) => id.slice(0, 13))).size).toBeGreaterThan(1); // the overflow borrowed the next millisecond
  for (const id of ids) expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  expect([...ids].sort()).toEqual(ids);
  expect(new Set(ids).size).toBe(ids.length);
});

test('an event whose data is over 16 KiB of JSON is kept as a preview with its size; one just under is kept whole', async () => {
  const run = await makeRun();
  const { eventLog } = t.server.orchestrator;
  const under = 'a'.repeat(16_384 - '{"text":""}'.length); // exactly the limit, in bytes
  const over = 'é'.repeat(8_200); // 8,200 characters, 16,400 bytes of UTF-8
  const [kept, cut] = await eventLog.append(run.id, [
    { type: 'assistant_text', data: { text: under } },
    { type: 'assistant_text', data: { text: over } },
  ]);
  expect(kept).toMatchObject({ type: 'assistant_text', data: { text: under } });
  expect(cut).toMatchObject({ type: 'unrecognized', data: { originalType: 'assistant_text' } });
  const stored = await eventLog.read(run.id);
  expect(stored.map((event) => event.type)).toEqual(['assistant_text', 'unrecognized']);
  expect((stored[0]!.data as { text: string }).text).toBe(under);
  expect(stored[1]!.data).toEqual(cut!.data);
  expect((stored[1]!.data as { preview: string }).preview).toBe(`${JSON.stringify({ text: over }).slice(0, 4_096)}…`); // the first quarter of the limit, in characters
  const row = await t.server.orchestrator.db.client.runEvent.findFirstOrThrow({ where: { runId: run.id, seq: 2 } });
  expect(JSON.parse(row.data)).toMatchObject({ truncated: true, originalBytes: 16_411 }); // 8,200 × 2 bytes + {"text":""}
});

/**
 * The cluster bus and run control on a real Redis, with two "nodes" in this process sharing one real
 * SQLite store (each with its own connections, logs and Redis link): a run's events and the board log
 * followed on node B are gapless and exactly once for what node A appends, including right as the
 * follow starts; lost, repeated and reordered doorbells lose and repeat nothing; run-updated crosses;
 * run commands reach the node that serves the run, and its errors come back as the same class.
 */
import path from 'node:path';
import { Redis } from 'ioredis';
import { createClusterBus, storeReaders, RedisBus, RedisLink, type ClusterBus, type LogStore, type SequencedReaders } from '../src/cluster/index.js';
import { createLogger } from '../src/log.js';
import { createLogs } from '../src/orchestrator/logs.js';
import { Database } from '../src/orchestrator/db.js';
import { ConflictError, ForbiddenError, fromWireError, InvalidInputError, NotFoundError, RunboardError, TimeoutError, toWireError } from '../src/orchestrator/errors.js';
import type { EventLog } from '../src/orchestrator/event-log.js';
import { followBoardEvents, followRunEvents } from '../src/orchestrator/event-stream.js';
import type { Topics } from '../src/orchestrator/index.js';
import { InMemoryPubSub, type PubSub } from '../src/orchestrator/pubsub.js';
import { LocalRunControl, type RunCommand } from '../src/orchestrator/run-control.js';
import { removeDirs, tempDir } from './helpers/repo.js';
import { startServices, type Services } from './helpers/services.js';

const logger = createLogger({ level: 'silent' });
let services: Services;
let dir: string;
let dbFile: string;
/** Everything a test opened, closed after it. */
let opened: (() => Promise<void>)[] = [];
let prefixes = 0;

beforeAll(async () => {
  services = await startServices();
  dir = await tempDir('runboard-bus-');
  dbFile = `file:${path.join(dir, 'runboard.db')}`;
}, 30_000);
afterAll(async () => {
  await services?.stop();
  await removeDirs(dir);
});
afterEach(async () => {
  for (const close of opened.reverse()) await close();
  opened = [];
});

/** One node: its own database connections, logs and cluster bus over the shared store and Redis. */
interface Node extends LogStore {
  cluster: ClusterBus;
  bus: PubSub<Topics>;
  /** Entries the relays read from the store, per topic. */
  relayed: { 'run-events': number; 'board-events': number };
}

/** Nodes made by one call share a channel prefix: they are one deployment. */
async function cluster(count: number, options: { pollMs?: number; runControlTimeoutMs?: number } = {}): Promise<Node[]> {
  const channelPrefix = `test${++prefixes}:`;
  const nodes: Node[] = [];
  for (let i = 0; i < count; i++) {
    const db = await Database.open({ url: dbFile });
    let store!: LogStore;
    const relayed = { 'run-events': 0, 'board-events': 0 };
    const readers = countReads(storeReaders(() => store), relayed);
    const node = await createClusterBus({ redisUrl: services.redisUrl, nodeId: `node-${i}`, logger, readers, channelPrefix, ...options });
    store = { db, ...createLogs(db, node.bus) };
    opened.push(async () => {
      await node.close();
      await db.close();
    });
    nodes.push({ ...store, cluster: node, bus: node.bus, relayed });
  }
  return nodes;
}

function countReads(readers: SequencedReaders<Topics>, counts: Node['relayed']): SequencedReaders<Topics> {
  const runs = readers['run-events']!;
  const board = readers['board-events']!;
  return {
    'run-events': { ...runs, read: async (key, after, limit) => tally(counts, 'run-events', await runs.read(key, after, limit)) },
    'board-events': { ...board, read: async (key, after, limit) => tally(counts, 'board-events', await board.read(key, after, limit)) },
  };
}
function tally<T>(counts: Node['relayed'], topic: keyof Node['relayed'], entries: T[]): T[] {
  counts[topic] += entries.length;
  return entries;
}

/** A log on the shared store that rings no doorbell: its events reach followers only by the next doorbell or poll. */
async function silentLog(): Promise<EventLog> {
  const db = await Database.open({ url: dbFile });
  opened.push(() => db.close());
  const bus = new InMemoryPubSub<Topics>();
  return createLogs(db, bus).eventLog;
}

async function makeRun(node: Node): Promise<{ runId: string; cardId: string }> {
  const card = await node.db.client.card.create({ data: { title: 'bus', position: 0 } });
  const run = await node.db.client.run.create({ data: { cardId: card.id, prompt: 'p', status: 'RUNNING' } });
  return { runId: run.id, cardId: card.id };
}

const text = (i: number) => [{ type: 'assistant_text' as const, data: { text: `chunk ${i}` } }];
const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

/** The next `count` entries of a stream, failing after `ms` without them. */
async function take<T>(stream: AsyncGenerator<T>, count: number, ms = 10_000): Promise<T[]> {
  const got: T[] = [];
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`only ${got.length} of ${count} entries came`)), ms)));
  try {
    while (got.length < count) {
      const step = await Promise.race([stream.next(), timeout]);
      if (step.done) break;
      got.push(step.value);
    }
  } finally {
    clearTimeout(timer);
  }
  return got;
}

const seqs = (events: readonly { seq: number }[]) => events.map((event) => event.seq);

test('a follow on node B of events node A appends, some right as it starts, is gapless and exactly once (200 times)', async () => {
  const [a, b] = await cluster(2);
  for (let round = 0; round < 200; round++) {
    const { runId } = await makeRun(a);
    await a.eventLog.append(runId, text(0));
    // Appends racing the subscription: before, during and after Redis confirms it.
    const appending = (async () => {
      for (let i = 1; i < 8; i++) await a.eventLog.append(runId, text(i));
    })();
    const stream = await followRunEvents(b.db, b.eventLog, b.bus, runId);
    const events = await take(stream, 8);
    await appending;
    await a.eventLog.append(runId, text(8));
    events.push(...(await take(stream, 1)));
    await stream.return(undefined);
    expect(seqs(events)).toEqual(range(1, 9));
    expect(events[8]!.createdAt).toBeInstanceOf(Date);
  }
  // Every relay was dropped with its last listener.
  expect((b.bus as RedisBus<Topics>).streamCount).toBe(0);
  // Not only each round's last event came live: the racing ones did too, some of the time.
  expect(b.relayed['run-events']).toBeGreaterThan(200);
}, 120_000); // 200 rounds on 2 shared cores

test('a node reads each event once for all its followers, and followers joining mid-stream lose and repeat nothing', async () => {
  const [a, b] = await cluster(2);
  const { runId } = await makeRun(a);
  const first = await followRunEvents(b.db, b.eventLog, b.bus, runId);
  const second = await followRunEvents(b.db, b.eventLog, b.bus, runId);
  for (let i = 0; i < 20; i++) await a.eventLog.append(runId, text(i));
  const late = await followRunEvents(b.db, b.eventLog, b.bus, runId, { since: 5 });
  for (let i = 20; i < 50; i++) await a.eventLog.append(runId, text(i));
  expect(seqs(await take(first, 50))).toEqual(range(1, 50));
  expect(seqs(await take(second, 50))).toEqual(range(1, 50));
  expect(seqs(await take(late, 45))).toEqual(range(6, 50));
  // The relay read rows after its cursor only: each event once, not once per follower (history reads are the followers' own).
  expect(b.relayed['run-events']).toBeLessThanOrEqual(50);
  for (const stream of [first, second, late]) await stream.return(undefined);
});

test('events whose doorbell never rang arrive with the next doorbell, in order', async () => {
  const [a, b] = await cluster(2, { pollMs: 600_000 });
  const silent = await silentLog();
  const { runId } = await makeRun(a);
  const stream = await followRunEvents(b.db, b.eventLog, b.bus, runId);
  await a.eventLog.append(runId, text(1));
  expect(seqs(await take(stream, 1))).toEqual([1]);
  for (let i = 2; i <= 4; i++) await silent.append(runId, text(i)); // published on nobody's bus
  await a.eventLog.append(runId, text(5));
  expect(seqs(await take(stream, 4))).toEqual([2, 3, 4, 5]);
  await stream.return(undefined);
});

test('events whose doorbell never rang, and no other comes, arrive with the safety poll', async () => {
  const [a, b] = await cluster(2, { pollMs: 200 });
  const silent = await silentLog();
  const { runId } = await makeRun(a);
  const stream = await followRunEvents(b.db, b.eventLog, b.bus, runId);
  await a.eventLog.append(runId, text(1));
  expect(seqs(await take(stream, 1))).toEqual([1]);
  for (let i = 2; i <= 4; i++) await silent.append(runId, text(i));
  expect(seqs(await take(stream, 3))).toEqual([2, 3, 4]);
  await stream.return(undefined);
});

test('repeated, stale, early and malformed doorbells repeat and lose nothing', async () => {
  const [a, b] = await cluster(2, { pollMs: 600_000 });
  const { runId } = await makeRun(a);
  const stream = await followRunEvents(b.db, b.eventLog, b.bus, runId);
  const raw = new Redis(services.redisUrl);
  opened.push(async () => void (await raw.quit()));
  const channel = `test${prefixes}:run-events:${runId}`;
  for (let i = 1; i <= 5; i++) await a.eventLog.append(runId, text(i));
  expect(seqs(await take(stream, 5))).toEqual(range(1, 5));
  for (const message of ['{"k":"x","s":1}', '{"k":"x","s":5}', '{"k":"x","s":99}', 'not json', '{}']) await raw.publish(channel, message);
  for (let i = 6; i <= 8; i++) await a.eventLog.append(runId, text(i));
  expect(seqs(await take(stream, 3))).toEqual(range(6, 8));
  await stream.return(undefined);
});

test("doorbells rung while a node's subscriber connection was away are made up for when it is back", async () => {
  const [a, b] = await cluster(2, { pollMs: 600_000 });
  const { runId } = await makeRun(a);
  const stream = await followRunEvents(b.db, b.eventLog, b.bus, runId);
  await a.eventLog.append(runId, text(1));
  expect(seqs(await take(stream, 1))).toEqual([1]);
  const raw = new Redis(services.redisUrl);
  opened.push(async () => void (await raw.quit()));
  await raw.client('KILL', 'TYPE', 'pubsub'); // every subscriber connection, both nodes'
  for (let i = 2; i <= 4; i++) await a.eventLog.append(runId, text(i)); // doorbells to nobody, or to the reconnected node
  expect(seqs(await take(stream, 3))).toEqual([2, 3, 4]);
  await a.eventLog.append(runId, text(5)); // and it is subscribed again
  expect(seqs(await take(stream, 1))).toEqual([5]);
  await stream.return(undefined);
});

test('board events appended on node A reach a board follower on node B once each, keyed by card', async () => {
  const [a, b] = await cluster(2);
  const start = await b.boardLog.lastSeq();
  const board = await followBoardEvents(b.boardLog, b.bus, start);
  const { runId, cardId } = await makeRun(a);
  const perCard: unknown[] = [];
  const unsubscribe = b.bus.subscribe('board-events', cardId, (entry) => perCard.push(entry.seq));
  await b.bus.ready('board-events', cardId);
  await a.eventLog.append(runId, [{ type: 'status', data: { status: 'SUCCEEDED' } }], { status: 'SUCCEEDED' });
  const [changed] = await take(board, 1);
  expect(changed).toMatchObject({ seq: start + 1, type: 'run_status_changed', cardId, data: { runId, status: 'SUCCEEDED' } });
  expect(changed!.createdAt).toBeInstanceOf(Date);
  // The follower may have found it in history before the relay delivered it live.
  for (let i = 0; i < 500 && perCard.length < 1; i++) await new Promise((resolve) => setTimeout(resolve, 10));
  expect(perCard).toEqual([start + 1]);
  unsubscribe();
  await board.return(undefined);
});

test('run-updated crosses nodes whole, to its card and to "*" listeners, once each', async () => {
  const [a, b] = await cluster(2);
  const got: Record<string, string[]> = { mine: [], other: [], all: [] };
  const offs = [
    b.bus.subscribe('run-updated', 'card-1', (u) => got.mine!.push(u.runId)),
    b.bus.subscribe('run-updated', 'card-2', (u) => got.other!.push(u.runId)),
    b.bus.subscribe('run-updated', '*', (u) => got.all!.push(u.runId)),
  ];
  await b.bus.ready('run-updated', '*');
  a.bus.publish('run-updated', 'card-1', { runId: 'r1', cardId: 'card-1', status: 'RUNNING' });
  a.bus.publish('run-updated', 'card-2', { runId: 'r2', cardId: 'card-2', status: 'FAILED' });
  for (let i = 0; i < 500 && got.all!.length < 2; i++) await new Promise((resolve) => setTimeout(resolve, 10));
  expect(got).toEqual({ mine: ['r1'], other: ['r2'], all: ['r1', 'r2'] });
  for (const off of offs) off();
});

test('a whole payload keeps its Dates across nodes', async () => {
  type DatedTopics = { dated: { at: Date; nested: { when: Date }[] } };
  const channelPrefix = `dated${++prefixes}:`;
  const links = [0, 1].map((i) => new RedisLink({ url: services.redisUrl, nodeId: `dated-${i}`, logger, channelPrefix }));
  const [sender, receiver] = links.map((link) => new RedisBus<DatedTopics>({ link, readers: {}, logger }));
  opened.push(async () => {
    await Promise.all([sender!.close(), receiver!.close()]);
    await Promise.all(links.map((link) => link.close()));
  });
  const received: DatedTopics['dated'][] = [];
  receiver!.subscribe('dated', 'k', (payload) => received.push(payload));
  await receiver!.ready('dated', 'k');
  const at = new Date('2026-12-01T08:00:00.123Z');
  sender!.publish('dated', 'k', { at, nested: [{ when: at }] });
  for (let i = 0; i < 500 && received.length < 1; i++) await new Promise((resolve) => setTimeout(resolve, 10));
  expect(received[0]!.at).toEqual(at);
  expect(received[0]!.at).toBeInstanceOf(Date);
  expect(received[0]!.nested[0]!.when).toBeInstanceOf(Date);
});

describe('run control', () => {
  const message: RunCommand = { kind: 'message', text: 'hello', mode: 'STEER' };

  test('a command sent from node A reaches the handler node B serves, and its result comes back', async () => {
    const [a, b] = await cluster(2);
    const seen: unknown[] = [];
    const release = await b.cluster.control.serve('run-1', async (command) => {
      seen.push(command);
      return { ok: true, at: new Date('2026-12-01T00:00:00Z') };
    });
    expect(await a.cluster.control.send('run-1', message)).toEqual({ delivered: true, result: { ok: true, at: new Date('2026-12-01T00:00:00Z') } });
    expect(await a.cluster.control.send('run-1', { kind: 'stop' })).toEqual({ delivered: true, result: { ok: true, at: expect.any(Date) } });
    expect(await b.cluster.control.send('run-1', { kind: 'uncommitted' })).toMatchObject({ delivered: true }); // from the owner's own node too
    expect(seen).toEqual([message, { kind: 'stop' }, { kind: 'uncommitted' }]);
    await release();
  });

  test('nobody serving the run: not delivered; after release(), not delivered either', async () => {
    const [a, b] = await cluster(2);
    expect(await a.cluster.control.send('run-2', { kind: 'stop' })).toEqual({ delivered: false });
    const release = await b.cluster.control.serve('run-2', async () => 'stopped');
    expect(await a.cluster.control.send('run-2', { kind: 'stop' })).toEqual({ delivered: true, result: 'stopped' });
    await release();
    await release(); // idempotent
    expect(await a.cluster.control.send('run-2', { kind: 'stop' })).toEqual({ delivered: false });
    await expect(b.cluster.control.serve('run-2', async () => 'again')).resolves.toBeInstanceOf(Function);
  });

  test("the handler's errors come back as the same RunboardError class, category and message", async () => {
    const [a, b] = await cluster(2);
    const release = await b.cluster.control.serve('run-3', async (command) => {
      if (command.kind === 'stop') throw new ConflictError('run run-3 is merging', ['src/a.ts']);
      if (command.kind === 'uncommitted') throw new NotFoundError('Worktree', 'run-3');
      throw new Error('disk on fire');
    });
    const conflict = await a.cluster.control.send('run-3', { kind: 'stop' }).catch((error: unknown) => error);
    expect(conflict).toBeInstanceOf(ConflictError);
    expect(conflict).toMatchObject({ category: 'conflict', message: 'run run-3 is merging', paths: ['src/a.ts'] });
    const missing = await a.cluster.control.send('run-3', { kind: 'uncommitted' }).catch((error: unknown) => error);
    expect(missing).toBeInstanceOf(NotFoundError);
    expect(missing).toMatchObject({ category: 'not_found', kind: 'Worktree', id: 'run-3', message: 'Worktree run-3 not found' });
    // A server fault stays one: category internal, which the schema masks.
    await expect(a.cluster.control.send('run-3', message)).rejects.toMatchObject({ category: 'internal' });
    await release();
  });

  test('an owner that does not answer in time: TimeoutError', async () => {
    const [a, b] = await cluster(2, { runControlTimeoutMs: 300 });
    const release = await b.cluster.control.serve('run-4', () => new Promise(() => {}));
    const error = await a.cluster.control.send('run-4', { kind: 'stop' }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TimeoutError);
    expect(error).toMatchObject({ category: 'timeout' });
    await release();
  });

  test('the wire form of errors keeps class, category, message and fields; anything unknown is internal', () => {
    const cases: [Error, new (...args: never[]) => Error][] = [
      [new InvalidInputError('text must not be empty', 'text'), InvalidInputError],
      [new NotFoundError('Run', 'r1'), NotFoundError],
      [new ConflictError('dirty', ['a', 'b']), ConflictError],
      [new ForbiddenError('not your card'), ForbiddenError],
      [new TimeoutError('too slow'), TimeoutError],
    ];
    for (const [error, type] of cases) {
      const back = fromWireError(JSON.parse(JSON.stringify(toWireError(error))));
      expect(back).toBeInstanceOf(type);
      expect({ ...back, message: back.message }).toEqual({ ...error, message: error.message });
    }
    expect(fromWireError(toWireError(new RangeError('boom')))).toMatchObject({ category: 'internal', message: 'boom' });
    expect(fromWireError({ category: 'no such' as never, message: 'x' })).toMatchObject({ category: 'internal', message: 'x' });
    expect(fromWireError({ category: 'unauthenticated', message: 'who?' })).toBeInstanceOf(RunboardError);
  });

  test('LocalRunControl: the same contract in one process', async () => {
    const control = new LocalRunControl();
    expect(await control.send('r', { kind: 'stop' })).toEqual({ delivered: false });
    const release = await control.serve('r', async (command) => command.kind);
    await expect(control.serve('r', async () => null)).rejects.toBeInstanceOf(ConflictError);
    expect(await control.send('r', { kind: 'uncommitted' })).toEqual({ delivered: true, result: 'uncommitted' });
    await release();
    expect(await control.send('r', { kind: 'stop' })).toEqual({ delivered: false });
    await control.close();
  });
});

test('createClusterBus refuses a Redis that does not answer', async () => {
  await expect(createClusterBus({ redisUrl: 'redis://127.0.0.1:1', nodeId: 'x', logger, readers: {}, connectTimeoutMs: 500 })).rejects.toThrow();
});

// The relays' state per stream stays bounded by local listeners.
test('followers leaving drop the relay and its Redis subscription', async () => {
  const [a, b] = await cluster(2);
  const { runId } = await makeRun(a);
  const streams = await Promise.all([1, 2, 3].map(() => followRunEvents(b.db, b.eventLog, b.bus, runId)));
  await a.eventLog.append(runId, text(1));
  for (const stream of streams) expect(seqs(await take(stream, 1))).toEqual([1]);
  const bus = b.bus as RedisBus<Topics>;
  expect(bus.streamCount).toBe(1);
  for (const stream of streams) await stream.return(undefined);
  expect(bus.streamCount).toBe(0);
  expect(bus.listenerCount('run-events', runId)).toBe(0);
  // And a new follower starts afresh, from history.
  await a.eventLog.append(runId, text(2));
  const again = await followRunEvents(b.db, b.eventLog, b.bus, runId);
  await a.eventLog.append(runId, text(3));
  expect(seqs(await take(again, 3))).toEqual([1, 2, 3]);
  await again.return(undefined);
});

/**
 * Fan-out once (use-shared-subscriptions.ts): subscribers of one document get the same bytes, exactly
 * once across the replay -> live hand-over, and a subscriber that stops reading is still cut with the
 * seq to resume from. Raw graphql-transport-ws clients, so the test sees the frames as sent.
 */
import type { AddressInfo, Socket } from 'node:net';
import WebSocket, { WebSocketServer } from 'ws';
import { followRunEvents, HAND_OVER_LIVE, SubscriberTooSlowError, type HandsOverLive, type LiveDelivery } from '../src/orchestrator/event-stream.js';
import type { RunEvent, RunEventDataByType, RunEventInput } from '../src/orchestrator/run-events.js';
import { fanOutCounters, graphqlWsNext, utf8Bytes } from '../src/plugins/use-shared-subscriptions.js';
import { makeActiveRun, RUN_EVENT_FIELDS } from './helpers/events.js';
import { startTestServer, type TestServer } from './helpers/server.js';

let t: TestServer;
beforeAll(async () => {
  t = await startTestServer();
});
afterAll(async () => {
  await t?.close();
});

const FOLLOW = `subscription($id: ID!, $since: Int) { runEvents(runId: $id, since: $since, untilSettled: true) { seq type ... on AssistantTextEvent { text } } }`;

/** One connection with one subscription (id "1" on every connection, so frames can be compared whole). */
interface RawSubscriber {
  readonly socket: WebSocket;
  /** Every frame after connection_ack, as text. */
  readonly frames: string[];
  /** Resolves once the server completes the subscription. */
  readonly completed: Promise<void>;
}

async function subscribe(variables: Record<string, unknown>, onFrame?: (frame: string) => void, query = FOLLOW): Promise<RawSubscriber> {
  const socket = new WebSocket(t.url.replace(/^http/, 'ws'), 'graphql-transport-ws');
  const frames: string[] = [];
  let complete!: () => void;
  const completed = new Promise<void>((resolve) => (complete = resolve));
  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject);
    socket.on('message', (data) => {
      const frame = String(data);
      const type = (JSON.parse(frame) as { type: string }).type;
      if (type === 'connection_ack') return resolve();
      if (type === 'ping') return socket.send('{"type":"pong"}');
      frames.push(frame);
      onFrame?.(frame);
      if (type === 'complete' || type === 'error') complete();
    });
    socket.once('open', () => socket.send(JSON.stringify({ type: 'connection_init', payload: {} })));
  });
  socket.send(JSON.stringify({ id: '1', type: 'subscribe', payload: { query, variables } }));
  return { socket, frames, completed };
}

const payloadOf = (frame: string) => (JSON.parse(frame) as { payload?: { data?: { runEvents: { seq: number } }; errors?: { extensions: Record<string, unknown> }[] } }).payload;
const seqsOf = (frames: string[]) => frames.flatMap((frame) => payloadOf(frame)?.data?.runEvents.seq ?? []);
const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

/**
 * Appends `count` texts, `perAppend` to a transaction (published together, so live subscribers also
 * see bursts), yielding between appends, then (unless told) the terminal status.
 */
async function write(runId: string, count: number, { text = 'chunk', terminal = true, perAppend = 1 } = {}): Promise<void> {
  const log = t.server.orchestrator.eventLog;
  for (let i = 0; i < count; i += perAppend) {
    const texts = Array.from({ length: Math.min(perAppend, count - i) }, (_, j) => ({ type: 'assistant_text' as const, data: { text: `${text} ${i + j}` } }));
    await log.append(runId, texts);
    if (i % 10 === 0) await new Promise((resolve) => setImmediate(resolve));
  }
  if (terminal) await log.append(runId, [{ type: 'status', data: { status: 'SUCCEEDED' } }], { status: 'SUCCEEDED' });
}

test('subscribers of one document get byte-identical frames, each event once, across the replay -> live hand-over', async () => {
  const run = await makeActiveRun(t, 'shared');
  await write(run.id, 400, { terminal: false, perAppend: 20 }); // history before anyone subscribes
  const before = { ...fanOutCounters };
  const writing = write(run.id, 600, { perAppend: 5 }); // …and a writer still going while they replay
  const fromStart = await Promise.all(Array.from({ length: 5 }, () => subscribe({ id: run.globalId })));
  const fromFifty = await subscribe({ id: run.globalId, since: 50 }); // another since shares the live results too
  await writing;
  await Promise.all([...fromStart, fromFifty].map((subscriber) => subscriber.completed));

  const [first] = fromStart;
  expect(seqsOf(first.frames)).toEqual(range(1, 1_001));
  expect(JSON.parse(first.frames.at(-1)!)).toEqual({ id: '1', type: 'complete' });
  for (const other of fromStart) expect(other.frames).toEqual(first.frames); // byte for byte, replayed or live
  expect(fromFifty.frames).toEqual(first.frames.slice(50));
  // Live events went straight from the publish, executed once for all six subscribers rather than once each.
  const sent = fanOutCounters.sentDirectly - before.sentDirectly;
  const executed = fanOutCounters.executed - before.executed;
  const delivered = [...fromStart, fromFifty].reduce((sum, subscriber) => sum + seqsOf(subscriber.frames).length, 0);
  expect(sent).toBeGreaterThan(0);
  expect(executed).toBeLessThanOrEqual(delivered - sent + 601); // history once per subscriber, each live event once
  for (const subscriber of [...fromStart, fromFifty]) subscriber.socket.close();
});

/** One event of every kind, with every field its kind may have. */
const EVERY_KIND = {
  status: { status: 'RUNNING', reason: 'r', error: 'e', refinedFrom: 'run-0' },
  user_message: { mode: 'STEER', text: 'steer "quoted" \\ \u2028' },
  message_delivered: { text: 'delivered' },
  assistant_text: { text: 'é😀\n' },
  thinking: { text: 'hmm' },
  tool_start: { toolCallId: 'c1', tool: 'bash', args: { command: ['ls', '-la'], nested: { n: 1.5, none: null } } },
  tool_progress: { toolCallId: 'c1', tool: 'bash', output: 'partial' },
  tool_end: { toolCallId: 'c1', tool: 'bash', isError: false, output: 'done' },
  usage: { input: 10, output: 20, cacheRead: 1, cacheWrite: 2, totalTokens: 33, cost: 0.0125 },
  model_error: { message: 'boom' },
  queue: { steering: 1, followUp: 2 },
  retry: { attempt: 1, maxAttempts: null, delayMs: 500, error: 'later' },
  retry_end: { success: true, attempt: null, error: null },
  agent_start: {},
  agent_end: {},
  compaction: { phase: 'end', reason: null },
  plan_updated: { entries: [{ content: 'a', status: 'in_progress', priority: 'high' }, { content: 'b', status: 'pending', priority: null }] },
  stderr: { line: 'warn' },
  warning: { message: 'careful' },
  worktree_removed: { branchDeleted: true, unmergedCommits: 0 },
  merge: { ok: false, sha: null, strategy: 'SQUASH', conflictingPaths: ['a.txt', 'b/c.txt'], message: 'conflict', interrupted: true },
  board_change: { action: 'updateCard', description: null, column: 'REVIEW', position: 2, tags: ['x'] },
  playtest_start: { command: 'cargo run', pid: null },
  playtest_output: { stream: 'stderr', line: 'out' },
  playtest_dropped: { count: 3 },
  playtest_exit: { exitCode: null, signal: 'SIGTERM', droppedLines: 0, stopped: true, reason: 'stopped' },
  unrecognized: { originalType: 'x', preview: '{}' },
} satisfies { [T in keyof RunEventDataByType]: RunEventDataByType[T] };

/** The run's events as graphql-js executes them (a query: no subscription path), each as JSON. */
async function byGraphqlJs(runId: string, selection: string): Promise<string[]> {
  const { node } = await t.ok(`query($id: ID!) { node(id: $id) { ... on Run { events(first: 100) ${selection} } } } ${RUN_EVENT_FIELDS}`, { id: runId });
  return (node.events as unknown[]).map((event) => JSON.stringify(event));
}

test('live, replayed and batched events, executed by the compiled document, read as graphql-js makes them, for every kind', async () => {
  const run = await makeActiveRun(t, 'every kind');
  const query = `subscription($id: ID!) { runEvents(runId: $id, untilSettled: true) { __typename ...RunEventFields } } ${RUN_EVENT_FIELDS}`;
  const before = { ...fanOutCounters };
  const live = await Promise.all([1, 2].map(() => subscribe({ id: run.globalId }, undefined, query)));
  await new Promise((resolve) => setTimeout(resolve, 100)); // caught up on the empty history: handed over
  for (const [type, data] of Object.entries(EVERY_KIND)) {
    await t.server.orchestrator.eventLog.append(run.id, [{ type, data } as RunEventInput]);
    await t.server.orchestrator.eventLog.append(run.id, [{ type: 'unknown_kind', data: { x: 1 } } as unknown as RunEventInput]); // reads as unrecognized
  }
  await t.server.orchestrator.eventLog.append(run.id, [{ type: 'status', data: { status: 'SUCCEEDED' } }], { status: 'SUCCEEDED' });
  await Promise.all(live.map((subscriber) => subscriber.completed));
  const replayed = await subscribe({ id: run.globalId }, undefined, query);
  await replayed.completed;
  const compiledBefore = fanOutCounters.compiled;
  const batched = await subscribe({ id: run.globalId }, undefined, `subscription($id: ID!) { runEventBatches(runId: $id, untilSettled: true, first: 100) { __typename ...RunEventFields } } ${RUN_EVENT_FIELDS}`);
  await batched.completed;

  const kinds = Object.keys(EVERY_KIND).length;
  expect(compiledBefore - before.compiled).toBe(1); // one document, compiled once for live and replay
  expect(fanOutCounters.compiled - compiledBefore).toBe(1); // and the batches' document
  expect(fanOutCounters.sentDirectly - before.sentDirectly).toBe(2 * (2 * kinds + 1)); // every live frame went straight from the publish
  expect(live[0].frames).toHaveLength(2 * kinds + 2); // each event, then complete
  expect(payloadOf(live[0].frames[0])).toMatchObject({ data: { runEvents: { __typename: 'StatusChangedEvent', seq: 1, status: 'RUNNING' } } });
  for (const subscriber of [live[1], replayed]) expect(subscriber.frames).toEqual(live[0].frames);
  const expected = await byGraphqlJs(run.globalId, '{ __typename ...RunEventFields }');
  expect(live[0].frames.slice(0, -1).map((frame) => JSON.stringify(payloadOf(frame)?.data?.runEvents))).toEqual(expected);
  const batches = batched.frames.slice(0, -1).map((frame) => (JSON.parse(frame) as { payload: { data: { runEventBatches: unknown[] } } }).payload.data.runEventBatches);
  expect(batches.flat().map((event) => JSON.stringify(event))).toEqual(expected);
  for (const subscriber of [...live, replayed, batched]) subscriber.socket.close();
});

test('an event whose live result has errors reaches live subscribers as graphql-js makes and masks it for a replay', async () => {
  const run = await makeActiveRun(t, 'bad usage');
  const query = `subscription($id: ID!) { runEvents(runId: $id, untilSettled: true) { seq ... on UsageEvent { inputTokens costUsd } } }`;
  const live = await subscribe({ id: run.globalId }, undefined, query);
  await new Promise((resolve) => setTimeout(resolve, 100)); // caught up on the empty history: handed over
  const { eventLog } = t.server.orchestrator;
  const before = fanOutCounters.executed;
  // A row with the fields usage requires, of the wrong types: Int and Float cannot serialize them.
  await eventLog.append(run.id, [{ type: 'usage', data: { input: 'many', output: 1, cacheRead: 0, cacheWrite: 0, totalTokens: 1, cost: 'free' } } as unknown as RunEventInput]);
  await eventLog.append(run.id, [{ type: 'status', data: { status: 'SUCCEEDED' } }], { status: 'SUCCEEDED' });
  await live.completed;
  expect(fanOutCounters.executed - before).toBe(2); // usage once (compiled, made again by graphql-js for its errors, declined, its result reused by the stream); then the status
  const replayed = await subscribe({ id: run.globalId }, undefined, query);
  await replayed.completed;
  expect(payloadOf(live.frames[0]!)?.errors?.length).toBeGreaterThan(0);
  expect(live.frames).toEqual(replayed.frames);
  // A batch with that event: graphql-js's masked errors, at the event's index in the list.
  const batched = await subscribe({ id: run.globalId }, undefined, query.replace('runEvents(runId: $id,', 'runEventBatches(runId: $id, first: 10,'));
  await batched.completed;
  type Payload = { data: null; errors: { message: string; path: unknown[]; locations?: unknown[] }[] };
  const [batch] = batched.frames.map((frame) => (JSON.parse(frame) as { payload: Payload }).payload);
  const replayedErrors = (JSON.parse(replayed.frames[0]!) as { payload: Payload }).payload.errors;
  expect(batch!.data).toBeNull(); // the non-null list of non-null events takes the errors' null up to the root
  // Not their locations: the batch's document is another text.
  const placed = (errors: Payload['errors'], path: (error: Payload['errors'][number]) => unknown[]) => errors.map(({ locations, ...error }) => ({ ...error, path: path(error), located: (locations as unknown[]).length }));
  expect(placed(batch!.errors, (error) => error.path)).toEqual(placed(replayedErrors, (error) => ['runEventBatches', 0, ...error.path.slice(1)]));
  for (const subscriber of [live, replayed, batched]) subscriber.socket.close();
});

test('a subscriber that stops reading is cut with resumeFrom, while the others get everything; resuming loses nothing', async () => {
  const run = await makeActiveRun(t, 'slow');
  const big = 'x'.repeat(15_000); // large events fill the socket's buffers quickly
  const fast = await subscribe({ id: run.globalId });
  let caughtUp!: () => void;
  const firstEvent = new Promise<void>((resolve) => (caughtUp = resolve));
  const slow = await subscribe({ id: run.globalId }, () => caughtUp());
  await write(run.id, 1, { terminal: false });
  await firstEvent; // the slow one is live, fed from the publish…
  slow.socket.pause(); // …and stops reading
  await write(run.id, 1_000, { text: big });
  slow.socket.resume();
  await Promise.all([fast.completed, slow.completed]);

  expect(seqsOf(fast.frames)).toEqual(range(1, 1_002));
  const cut = payloadOf(slow.frames.at(-2)!)!;
  expect(cut.errors?.[0]?.extensions).toMatchObject({ code: 'SUBSCRIBER_TOO_SLOW' });
  const resumeFrom = cut.errors![0]!.extensions.resumeFrom as number;
  const received = seqsOf(slow.frames);
  expect(received).toEqual(range(1, resumeFrom));
  expect(resumeFrom).toBeLessThan(1_002);
  const resumed = await subscribe({ id: run.globalId, since: resumeFrom });
  await resumed.completed;
  expect([...received, ...seqsOf(resumed.frames)]).toEqual(range(1, 1_002));
  for (const subscriber of [fast, slow, resumed]) subscriber.socket.close();
});

test('the hand-over: only a pull that finds nothing buffered hands live events to the sink; declined ones come back through the stream', async () => {
  const run = await makeActiveRun(t, 'hand-over');
  const { db, eventLog, bus } = t.server.orchestrator;
  const text = (n: number) => Array.from({ length: n }, () => ({ type: 'assistant_text' as const, data: { text: 'x' } }));
  await eventLog.append(run.id, text(5));
  const sunk: number[] = [];
  let answer: LiveDelivery = 'sent';
  const follow = (await followRunEvents(db, eventLog, bus, run.id, { untilSettled: true })) as AsyncGenerator<RunEvent> & HandsOverLive<RunEvent>;
  follow[HAND_OVER_LIVE]({
    shareKey: 'hand-over',
    prepare: (event) => event,
    send: (event) => {
      if (answer === 'sent') sunk.push(event.seq);
      return answer;
    },
  });
  const pulled: number[] = [];
  const pull = async () => pulled.push((await follow.next()).value!.seq);
  for (let i = 0; i < 5; i++) await pull(); // the history
  await eventLog.append(run.id, text(3)); // 6-8 wait in the buffer
  await pull(); // 6: something was buffered, so no hand-over…
  await eventLog.append(run.id, text(1)); // …and 9 is buffered behind 7 and 8, not sent ahead of them
  for (let i = 0; i < 3; i++) await pull();
  expect([pulled, sunk]).toEqual([[1, 2, 3, 4, 5, 6, 7, 8, 9], []]);
  const ending = follow.next(); // finds nothing buffered: hands over
  await eventLog.append(run.id, text(2));
  expect(sunk).toEqual([10, 11]);
  answer = 'declined';
  await eventLog.append(run.id, text(1)); // declined: 12 comes through the stream…
  expect((await ending).value.seq).toBe(12);
  answer = 'sent';
  const last = follow.next(); // …and the next pull hands over again
  await eventLog.append(run.id, [{ type: 'status', data: { status: 'SUCCEEDED' } }], { status: 'SUCCEEDED' });
  expect(sunk).toEqual([10, 11, 13]);
  expect(await last).toEqual({ done: true, value: undefined }); // the terminal status ends the stream

  const other = await makeActiveRun(t, 'cut');
  await eventLog.append(other.id, text(1));
  const cut = (await followRunEvents(db, eventLog, bus, other.id)) as AsyncGenerator<RunEvent> & HandsOverLive<RunEvent>;
  let room = 2;
  cut[HAND_OVER_LIVE]({ shareKey: 'cut', prepare: (event) => event, send: () => (room-- > 0 ? 'sent' : 'full') });
  expect((await cut.next()).value!.seq).toBe(1);
  const cutting = cut.next(); // finds nothing buffered: hands over
  await eventLog.append(other.id, text(5)); // 2 and 3 are sent, then the sink is full
  await expect(cutting).rejects.toEqual(new SubscriberTooSlowError(3));
});

test('caught-up follows of one run and share key are fed by one listener, each entry prepared once; one that declines listens for itself again', async () => {
  const run = await makeActiveRun(t, 'group');
  const { db, eventLog, bus } = t.server.orchestrator;
  const text = (n: number) => Array.from({ length: n }, () => ({ type: 'assistant_text' as const, data: { text: 'x' } }));
  const listeners = () => bus.listenerCount('run-events', run.id);
  const settle = () => new Promise((resolve) => setImmediate(resolve));
  await eventLog.append(run.id, text(2));
  let prepared = 0;
  const answers: LiveDelivery[] = ['sent', 'sent', 'sent'];
  const sunk: number[][] = [[], [], []];
  const follows = (await Promise.all(answers.map(() => followRunEvents(db, eventLog, bus, run.id, { untilSettled: true })))) as (AsyncGenerator<RunEvent> & HandsOverLive<RunEvent>)[];
  follows.forEach((follow, i) =>
    follow[HAND_OVER_LIVE]({
      shareKey: 'group',
      prepare: (event) => (prepared++, event),
      send: (event) => {
        if (answers[i] === 'sent') sunk[i]!.push(event.seq);
        return answers[i]!;
      },
    }),
  );
  for (const follow of follows) expect([(await follow.next()).value!.seq, (await follow.next()).value!.seq]).toEqual([1, 2]); // the history
  expect(listeners()).toBe(3); // each follow its own
  let pending = follows.map((follow) => follow.next()); // each finds nothing buffered: hands over
  await settle();
  expect(listeners()).toBe(1); // the group's alone

  await eventLog.append(run.id, text(3));
  expect([sunk, prepared]).toEqual([[[3, 4, 5], [3, 4, 5], [3, 4, 5]], 3]); // each entry prepared once for all three
  answers[1] = 'declined';
  await eventLog.append(run.id, text(1));
  expect((await pending[1]).value!.seq).toBe(6); // declined: through its stream…
  expect([sunk.map((seqs) => seqs.at(-1)), listeners()]).toEqual([[6, 5, 6], 2]); // …listening for itself again
  answers[1] = 'sent';
  await eventLog.append(run.id, text(1)); // 7 waits in its buffer, behind nothing: the next pull takes it…
  pending[1] = follows[1]!.next();
  expect((await pending[1]).value!.seq).toBe(7);
  pending[1] = follows[1]!.next(); // …and the one after hands over again
  await settle();
  expect(listeners()).toBe(1);
  await eventLog.append(run.id, [{ type: 'status', data: { status: 'SUCCEEDED' } }], { status: 'SUCCEEDED' });
  expect(await Promise.all(pending)).toEqual(answers.map(() => ({ done: true, value: undefined }))); // the terminal status ends them all
  expect([sunk, prepared]).toEqual([[[3, 4, 5, 6, 7, 8], [3, 4, 5, 8], [3, 4, 5, 6, 7, 8]], 6]);
  expect(listeners()).toBe(0); // nothing left behind
});

test.each([
  ['written straight to the socket, at every frame length (7-bit, 16-bit and 64-bit)', false],
  ['sent through ws on a socket that negotiated compression', true],
])('a message %s arrives whole and after ws’s own earlier writes', async (_, perMessageDeflate) => {
  const wss = new WebSocketServer({ port: 0, host: '127.0.0.1', perMessageDeflate });
  const accepted = new Promise<[WebSocket, Socket]>((resolve) => wss.once('connection', (socket, request) => resolve([socket, request.socket])));
  await new Promise((resolve) => wss.once('listening', resolve));
  const client = new WebSocket(`ws://127.0.0.1:${(wss.address() as AddressInfo).port}`);
  const received: string[] = [];
  const all = new Promise<void>((resolve) => {
    client.on('message', (data, binary) => void (received.push(`${binary}:${String(data)}`), received.length === 5 && resolve()));
    client.once('close', () => resolve()); // a malformed stream makes ws close it: compare what came
  });
  const [socket, raw] = await accepted;
  expect(socket.extensions !== '').toBe(perMessageDeflate);
  const next = graphqlWsNext(socket, raw, 'sub-1');
  const payloads = [1, 100, 300, 70_000].map((size) => JSON.stringify({ data: { text: 'é'.repeat(size) } }));
  socket.send('{"type":"ping"}'); // compressed, ws may still hold it while the writer is called
  for (const payload of payloads) expect(next(utf8Bytes(payload))).toBe('sent');
  await all;
  expect(received).toEqual(['false:{"type":"ping"}', ...payloads.map((payload) => `false:{"id":"sub-1","type":"next","payload":${payload}}`)]);
  client.close();
  await new Promise((resolve) => wss.close(resolve));
});

test('frames arrive intact on a socket that stopped reading, interleaved with one that reads', async () => {
  const wss = new WebSocketServer({ port: 0, host: '127.0.0.1', perMessageDeflate: false });
  const accepted: [WebSocket, Socket][] = [];
  const both = new Promise<void>((resolve) => wss.on('connection', (socket, request) => void (accepted.push([socket, request.socket]), accepted.length === 2 && resolve())));
  await new Promise((resolve) => wss.once('listening', resolve));
  const url = `ws://127.0.0.1:${(wss.address() as AddressInfo).port}`;
  const clients = [new WebSocket(url), new WebSocket(url)];
  const received: string[][] = [[], []];
  clients.forEach((client, i) => client.on('message', (data) => void received[i].push(String(data))));
  await Promise.all(clients.map((client) => new Promise((resolve) => client.once('open', resolve))));
  await both;
  try {
    const slow = clients[1] as WebSocket & { _socket: Socket };
    slow._socket.pause(); // its kernel buffers fill, and the server's writes to it start to wait
    const writers = accepted.map(([socket, raw], i) => graphqlWsNext(socket, raw, `sub-${i}`, 64 * 1024 * 1024));
    // 9 MB to a socket that does not read: more than its kernel buffers take, so Node keeps the rest of a frame and queues the next.
    const payloads = Array.from({ length: 700 }, (_, n) => JSON.stringify({ data: { n, text: String.fromCharCode(97 + (n % 26)).repeat(10_000 + n * 8) } }));
    for (const payload of payloads) {
      for (const write of writers) expect(write(utf8Bytes(payload))).toBe('sent');
      await new Promise((resolve) => setImmediate(resolve)); // a new turn: a socket's first write of a turn is not corked
    }
    expect(accepted[1]![1].writableLength).toBeGreaterThan(0); // the slow socket really had writes waiting
    slow._socket.resume();
    // A frame cut or overwritten while it waited breaks the stream: ws then waits for bytes that never come, or closes it.
    for (let i = 0; i < 500 && received[1].length < payloads.length; i++) await new Promise((resolve) => setTimeout(resolve, 20));
    received.forEach((frames, i) => expect(frames).toEqual(payloads.map((payload) => `{"id":"sub-${i}","type":"next","payload":${payload}}`)));
  } finally {
    for (const client of clients) client.terminate();
    for (const [socket] of accepted) socket.terminate();
    await new Promise((resolve) => wss.close(resolve));
  }
});

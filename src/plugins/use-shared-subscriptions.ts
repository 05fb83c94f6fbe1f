/**
 * Fan-out once, not per subscriber. Many clients follow the same run with the same document; each
 * live event is then executed once per distinct (document, operation, variables other than `since`),
 * serialized once, and the same bytes go to every subscriber that shares them.
 *
 * - Execution: for the root fields in `fields`, the plugin replaces yoga's subscribe with one that
 *   maps each source event through a memo keyed by the event object (the bus hands every listener the
 *   same one) and the sharing key. Over SSE and for history the results then flow as before.
 * - Events are executed by the document compiled with graphql-jit (with the first event of a text,
 *   kept for the most recently used texts): graphql-js builds an execution context and coerces the
 *   variables for every event, which measured 40 µs an event in the loaded server (0.3 µs compiled, in
 *   a loop). A compiled result with errors is made again by graphql-js, so errors are always made by
 *   graphql-js (and a live one is declined, to be masked). graphql-jit's own subscribe is not used (it
 *   passes wrong arguments to the root field, graphql-jit#183): source streams stay graphql-js's.
 *   Fields in `compiledFields` (lists of events) are executed so too, without sharing.
 * - Delivery: a transport that can write a prepared `next` message puts a LiveWriter in the context
 *   (graphql-ws does, see graphqlWsNext). Once a follow has caught up (event-stream.ts, HAND_OVER_LIVE),
 *   it joins the fan-out group of its run and sharing key: one listener for the group executes each
 *   event once and hands the bytes to every member's writer. No listener, async iterator chain,
 *   JSON.stringify or wait for the write per subscriber; the writes of one tick are corked. A result
 *   with errors is declined, and takes the usual path, where errors are masked.
 *
 * Sharing relies on the bus handing every listener the same event object; a bus that gives each
 * follower its own copy still works, with one execution per subscriber.
 *
 * A shared field's result must not depend on who asks (its selection resolves from the event alone):
 * it is executed with the context of whichever subscriber came first. Authorization stays in the
 * field's `subscribe`, which runs for every subscriber.
 */
import type { Writable } from 'node:stream';
import { createSourceEventStream, execute, getOperationAST, Kind, print, visit, type DocumentNode, type ExecutionArgs, type ExecutionResult, type FieldNode } from 'graphql';
import type { CompiledQuery } from 'graphql-jit';
import { isAsyncIterable, type Plugin } from 'graphql-yoga';
import WebSocket from 'ws';
import { HAND_OVER_LIVE, type HandsOverLive, type LiveDelivery, type LiveSink } from '../orchestrator/event-stream.js';
import { setMostRecent } from '../orchestrator/recent.js';

/** Sends one serialized `next` payload (an ExecutionResult's JSON) to one subscriber; never throws. */
export type LiveWriter = (payload: Utf8Bytes) => LiveDelivery;

/** What a transport adds to a subscription's context to take shared results directly. */
export interface SharedSubscriptionContext {
  /** Absent over SSE: results go through yoga's own writer. */
  liveNext?: LiveWriter;
}

export interface SharedSubscriptionsOptions {
  /** Root subscription fields whose events are shared; each resolves its selection from the event alone. @default ['runEvents'] */
  fields?: readonly string[];
  /**
   * Root subscription fields whose steps (lists of events, say) are executed by the compiled document
   * too, but not shared: each subscriber's steps are its own objects. @default ['runEventBatches']
   */
  compiledFields?: readonly string[];
  /** The argument left out of the sharing key: it picks where a follow starts, not what an event looks like. @default 'since' */
  startArgument?: string;
}

/**
 * Bytes one WebSocket may have waiting to be written before a shared subscription on it is cut as
 * too slow (SUBSCRIBER_TOO_SLOW with resumeFrom): about a thousand typical events.
 * @default 1_048_576 // bytes
 */
export const MAX_SOCKET_BUFFERED_BYTES = 1_048_576;

/** What the shared path did since start, per process (diagnostics, and tests that check it was taken). */
export const fanOutCounters = {
  /** Event results computed: once per event and sharing key for live events, once per subscriber for history. */
  executed: 0,
  /** Messages written straight from a publish. */
  sentDirectly: 0,
  /** Documents compiled (graphql-jit) to execute live events. */
  compiled: 0,
};

/**
 * Shares the execution of `fields`' events between subscribers (once per event and sharing key, not
 * per subscriber), and hands caught-up subscriptions to the context's LiveWriter when the transport
 * gives one. A shared field should decode its arguments in `subscribe`, not through argument mappers,
 * which Pothos also runs in `resolve`: for every event (runEvents decodes its run id so).
 */
export function useSharedSubscriptions({ fields = ['runEvents'], compiledFields = ['runEventBatches'], startArgument = 'since' }: SharedSubscriptionsOptions = {}): Plugin {
  const shared = new Set(fields);
  const compiled = new Set(compiledFields);
  return {
    onSubscribe({ args, setSubscribeFn }) {
      const field = soleRootField(args);
      if (!field) return;
      if (shared.has(field.name.value)) {
        const key = sharingKey(args, field, startArgument);
        setSubscribeFn((subscribeArgs) => subscribeCompiled(subscribeArgs, key));
      } else if (compiled.has(field.name.value)) setSubscribeFn((subscribeArgs) => subscribeCompiled(subscribeArgs, null));
    },
  };
}

/**
 * A writer of graphql-ws `next` messages for subscription `id` on `socket` (`raw` is its TCP socket,
 * corked for the rest of the tick): the same bytes graphql-ws's own stringifyMessage would send, as a
 * text frame. The payload comes encoded once for all its subscribers (Utf8Bytes); each puts it behind
 * its own id and the frame's header, written to `raw` in one call: ws's send would make a header and a
 * message apart and write each. The frame is a string of one-byte characters, which Node copies
 * straight into the write (a Buffer per frame measured 0.3 µs more per delivery, and needed a slab to
 * keep the allocator out of it). ws writes nothing out of turn without compression (its sender queues
 * only while it deflates or reads a Blob), so a socket that negotiated an extension goes through `send`.
 * 'full' once more than `maxBufferedBytes` wait to be written; 'declined' when the socket is not open.
 */
export function graphqlWsNext(socket: WebSocket, raw: Writable, id: string, maxBufferedBytes = MAX_SOCKET_BUFFERED_BYTES): LiveWriter {
  const prefix = utf8Bytes(`{"id":${JSON.stringify(id)},"type":"next","payload":`);
  const viaSend = socket.extensions !== ''; // negotiated in the handshake, before any subscription
  let lastTurn = -1;
  return (payload) => {
    if (socket.readyState !== WebSocket.OPEN) return 'declined';
    // Without an extension ws queues nothing of its own, so the TCP socket's buffer is all of it (and
    // reading it there spares a load of ws's sender per delivery).
    if ((viaSend ? socket.bufferedAmount : raw.writableLength) > maxBufferedBytes) return 'full';
    const message = prefix + payload + '}';
    if (viaSend) socket.send(Buffer.from(message, 'latin1'), { binary: false });
    else lastTurn = writeInTurn(raw, textFrameHeader(message.length) + message, lastTurn);
    fanOutCounters.sentDirectly++;
    return 'sent';
  };
}

/**
 * UTF-8 bytes held as a string of one-byte characters (latin1): how a payload is handed to LiveWriters,
 * and written. Most JSON is ASCII, whose characters are its bytes already.
 */
export type Utf8Bytes = string & { readonly utf8Bytes: unique symbol };

/** `text`'s UTF-8 encoding as Utf8Bytes. */
export function utf8Bytes(text: string): Utf8Bytes {
  return (Buffer.byteLength(text) === text.length ? text : Buffer.from(text).toString('latin1')) as Utf8Bytes;
}

/** The header of a final, unmasked text frame (what a server sends) of `length` bytes, as one-byte characters (RFC 6455 §5.2). */
function textFrameHeader(length: number): string {
  if (length < 126) return String.fromCharCode(0x81, length); // FIN, opcode 1 (text); the length
  if (length < 65_536) return String.fromCharCode(0x81, 126, length >>> 8, length & 0xff);
  // A 64-bit length, of which a string (under 2^32 characters) needs the low 32 bits.
  return String.fromCharCode(0x81, 127, 0, 0, 0, 0, length >>> 24, (length >>> 16) & 0xff, (length >>> 8) & 0xff, length & 0xff);
}

/**
 * Writes of one turn of the event loop to one socket go out in one syscall: the first is written at
 * once (most turns carry one event per socket, and corking it would only delay it and cost a
 * buffered entry), a second corks the socket until the turn ends. One nextTick ends the turn for
 * every socket: an event reaches many in one turn.
 */
let turn = 0;
let turnEnding = false;
let corked: Writable[] = [];

/** Writes `chunk` (one-byte characters) to `stream`, corking it if this turn wrote to it already (`lastTurn`); answers this turn. */
function writeInTurn(stream: Writable, chunk: string, lastTurn: number): number {
  if (!turnEnding) {
    turnEnding = true;
    process.nextTick(endTurn);
  }
  if (lastTurn === turn && stream.writableCorked === 0) {
    stream.cork();
    corked.push(stream);
  }
  stream.write(chunk, 'latin1');
  return turn;
}

function endTurn(): void {
  turn += 1;
  turnEnding = false;
  const streams = corked;
  corked = [];
  for (const stream of streams) stream.uncork();
}

/** Printed documents, so that equal texts parsed twice still share. */
const printed = new WeakMap<DocumentNode, string>();

/** The root field of a subscription that selects one field, or null. */
function soleRootField(args: ExecutionArgs): FieldNode | null {
  const operation = getOperationAST(args.document, args.operationName);
  if (operation?.operation !== 'subscription' || operation.selectionSet.selections.length !== 1) return null;
  const [field] = operation.selectionSet.selections;
  return field?.kind === Kind.FIELD ? field : null;
}

/**
 * What subscriptions of a shared `field` that may share results have in common. Its start argument's
 * variable is left out, unless the document uses that variable anywhere else.
 */
function sharingKey(args: ExecutionArgs, field: FieldNode, startArgument: string): string {
  const start = field.arguments?.find((argument) => argument.name.value === startArgument)?.value;
  const variables: Record<string, unknown> = { ...args.variableValues };
  if (start?.kind === Kind.VARIABLE && uses(args.document, start.name.value) === 1) delete variables[start.name.value];
  return interned(`${args.operationName ?? ''}\n${JSON.stringify(variables)}\n${printedOf(args.document)}`);
}

/**
 * Sharing keys, one string per text. Every delivery compares its subscriber's key with those of the
 * event's results: keys held as one string compare by pointer, not by their text (the whole document),
 * which measured 0.2 µs a delivery. The most recently used last; a key evicted while in use still
 * compares equal, only slower. @default 1_024
 */
const MAX_INTERNED_KEYS = 1_024;
const internedKeys = new Map<string, string>();

function interned(key: string): string {
  const known = internedKeys.get(key) ?? key;
  setMostRecent(internedKeys, known, known, MAX_INTERNED_KEYS);
  return known;
}

/** The document's text, printed once per document. */
function printedOf(document: DocumentNode): string {
  let text = printed.get(document);
  if (text === undefined) printed.set(document, (text = print(document)));
  return text;
}

/** How many times the document refers to variable `name`. */
function uses(document: DocumentNode, name: string): number {
  let count = 0;
  visit(document, { Variable: (node) => void (node.name.value === name && count++) });
  return count - 1; // its definition
}

/** One event's result for one sharing key, and its JSON (Utf8Bytes) once a subscriber needed it. */
interface SharedResult {
  readonly key: string;
  readonly result: ExecutionResult | Promise<ExecutionResult>;
  json?: Utf8Bytes;
  /** The event's result for another sharing key. */
  readonly next: SharedResult | undefined;
}

/** Results of one event, a short list by sharing key; keyed by the event object, so they go when it does. */
const results = new WeakMap<object, SharedResult>();

/** How one subscription's events become results: graphql-js's execute, or a compiled document's. */
type EventExecutor = (event: unknown) => ExecutionResult | Promise<ExecutionResult>;

/** The result made for this event and sharing key already, if any. */
function sharedResult(event: object, key: string): SharedResult | undefined {
  let shared = results.get(event);
  while (shared && shared.key !== key) shared = shared.next;
  return shared;
}

/**
 * A live event's result for this sharing key: the one made for it already, else a new one by `live`,
 * kept for the streams that pull it (a declined event comes back through each member's stream).
 */
function executeLive(key: string, event: object, live: EventExecutor): SharedResult {
  const made = sharedResult(event, key);
  if (made) return made;
  fanOutCounters.executed++;
  const shared: SharedResult = { key, result: live(event), next: results.get(event) };
  results.set(event, shared);
  return shared;
}

/**
 * An event pulled through the stream (mostly history, which each subscriber reads for itself): the
 * live result made for it already (one the writer declined, say), else a new one, not kept, as keeping
 * them costs more (an entry per event for the collector) than it saves.
 */
function executeOnce(key: string, event: unknown, run: EventExecutor): ExecutionResult | Promise<ExecutionResult> {
  const made = event !== null && typeof event === 'object' ? sharedResult(event, key)?.result : undefined;
  if (made) return made;
  fanOutCounters.executed++;
  return run(event);
}

function executeEvent(args: ExecutionArgs, event: unknown): ExecutionResult | Promise<ExecutionResult> {
  return execute({ ...args, rootValue: event });
}

/**
 * graphql-jit, loaded with the first subscription that executes by it: its modules cost start-up time
 * that a command without followers never uses. null if it cannot be loaded: events then take graphql-js.
 */
let graphqlJit: Promise<typeof import('graphql-jit') | null> | undefined;
/**
 * Documents compiled for events, by operation name and printed text (so equal texts parsed twice
 * share), the most recently used last; null where graphql-jit cannot compile one.
 * @default 256
 */
const MAX_COMPILED_DOCUMENTS = 256;
const compiledDocuments = new Map<string, CompiledQuery | null>();

/**
 * How one subscription's events become results: by its document compiled with graphql-jit (with its
 * first event; a subscription that never gets one costs no compilation), or graphql-js's execute where
 * graphql-jit cannot compile it. A compiled result with errors is made again by graphql-js, so errors
 * always read as graphql-js makes them. graphql-js spent 1.6 µs an event of a batched replay, a
 * quarter of the server's CPU.
 */
async function eventExecutor(args: ExecutionArgs): Promise<EventExecutor> {
  const jit = await (graphqlJit ??= import('graphql-jit').catch(() => null));
  const plain: EventExecutor = (event) => executeEvent(args, event);
  if (!jit) return plain;
  let compiled: EventExecutor | null | undefined;
  return (event) => {
    if (compiled === undefined) compiled = compiledExecutor(jit, args);
    if (!compiled) return plain(event);
    const result = compiled(event);
    if (result instanceof Promise) return result.then((made) => (made.errors ? plain(event) : made));
    return result.errors ? plain(event) : result;
  };
}

function compiledExecutor({ compileQuery, isCompiledQuery }: typeof import('graphql-jit'), args: ExecutionArgs): EventExecutor | null {
  const key = `${args.operationName ?? ''}\n${printedOf(args.document)}`;
  let compiled = compiledDocuments.get(key);
  if (compiled === undefined) {
    try {
      const made = compileQuery(args.schema, args.document, args.operationName ?? undefined);
      compiled = isCompiledQuery(made) ? made : null;
    } catch {
      compiled = null;
    }
    if (compiled) fanOutCounters.compiled++;
  }
  setMostRecent(compiledDocuments, key, compiled, MAX_COMPILED_DOCUMENTS);
  if (!compiled) return null;
  const { query } = compiled;
  return (event) => query(event, args.contextValue, args.variableValues) as ExecutionResult | Promise<ExecutionResult>;
}

/**
 * graphql-js's subscribe, with each step executed by eventExecutor. With a sharing key, results are
 * shared, and a caught-up follow is handed to the context's writer; a result with errors is declined,
 * to take the usual path, where yoga masks it.
 */
async function subscribeCompiled(args: ExecutionArgs, key: string | null): Promise<ExecutionResult | AsyncGenerator<ExecutionResult>> {
  const source = await createSourceEventStream(args);
  if (!isAsyncIterable(source)) return source;
  const run = await eventExecutor(args);
  if (key === null) return mapResults(source[Symbol.asyncIterator](), run);
  const writer = (args.contextValue as SharedSubscriptionContext | undefined)?.liveNext;
  if (writer && HAND_OVER_LIVE in source) {
    (source as HandsOverLive<object>)[HAND_OVER_LIVE]({
      shareKey: key,
      // Once per event for every follow of the run with this key (event-stream.ts's fan-out group).
      prepare: (event) => {
        const shared = executeLive(key, event, run);
        const { result } = shared;
        if (result instanceof Promise || result.errors) return null;
        return (shared.json ??= utf8Bytes(JSON.stringify(result)));
      },
      send: writer,
    } satisfies LiveSink<object, Utf8Bytes>);
  }
  return mapResults(source[Symbol.asyncIterator](), (event) => executeOnce(key, event, run));
}

/** Each event of `source` as its result. `return()` reaches the source at once, even while a `next()` waits. */
function mapResults(source: AsyncIterator<unknown>, map: (event: unknown) => ExecutionResult | Promise<ExecutionResult>): AsyncGenerator<ExecutionResult> {
  const done = (value?: unknown): IteratorResult<ExecutionResult> => ({ done: true, value });
  return {
    async next() {
      const step = await source.next();
      return step.done ? done(step.value) : { done: false, value: await map(step.value) };
    },
    return: async (value?: unknown) => {
      await source.return?.(value);
      return done(value);
    },
    throw: async (error: unknown) => {
      await source.return?.();
      throw error;
    },
    [Symbol.asyncIterator]() {
      return this;
    },
    [Symbol.asyncDispose]: async () => void (await source.return?.()),
  } as AsyncGenerator<ExecutionResult>;
}

/**
 * Following a sequenced log from any seq (a run's events, the board's changes): replay the persisted
 * history, then go live, exactly once.
 *
 * The live subscription is opened *before* the history is read, so an entry written during the
 * replay is caught by one or the other; anything with `seq <= lastSent` is dropped, so the
 * boundary delivers each entry once. Live entries wait in a bounded buffer: a subscriber that falls
 * further behind is ended with the seq to resume from, and loses nothing because history is durable.
 */
import type { BoardEventRecord, BoardLog, BoardLogTopics } from './board-log.js';
import type { Database } from './db.js';
import { InvalidInputError, NotFoundError, RunboardError } from './errors.js';
import { MAX_EVENTS_PER_READ, type EventLog, type RunEventTopics } from './event-log.js';
import { Semaphore } from './lock.js';
import { feed, type PubSub } from './pubsub.js';
import type { RunEvent } from './run-events.js';
import { isActive, type RunStatus } from './run-status.js';
import type { RunTopics } from './runs.js';

/** Live entries one subscriber may have waiting before it is ended as too slow. @default 1_000 */
export const MAX_BUFFERED_EVENTS = 1_000;
/** Entries read per history page. @default 500 */
const REPLAY_PAGE = Math.min(500, MAX_EVENTS_PER_READ);
/**
 * History pages being sent at once, across all subscribers. A reconnect storm then costs a bounded
 * amount of work at a time instead of replaying into every connection, gone or not, at once.
 * @default 8
 */
export const MAX_CONCURRENT_REPLAY_PAGES = 8;
const replayPages = new Semaphore(MAX_CONCURRENT_REPLAY_PAGES);
/** Longest a page holds its slot: a consumer that stops reading mid-page gives it up. @default 1_000 // ms */
const REPLAY_SLOT_MS = 1_000;

/** A subscriber fell more than MAX_BUFFERED_EVENTS behind; it resubscribes with `since: resumeFrom`. */
export class SubscriberTooSlowError extends RunboardError {
  readonly category = 'subscriber_too_slow';
  constructor(readonly resumeFrom: number) {
    super(`subscriber fell too far behind; resubscribe with since: ${resumeFrom} to continue without loss`);
  }
}

/**
 * The only events a run follow's `isOver` looks at (the others neither end it nor change what it knows):
 * its `mayEnd`, and its own first test, so the stream and a fan-out group skip the same ones.
 */
const changesSettling = (event: RunEvent) => event.type === 'status' || event.type === 'playtest_start' || event.type === 'playtest_exit';

/** A `status` event that ends a run. */
export function isTerminalEvent(event: RunEvent): boolean {
  return event.type === 'status' && !isActive(event.data.status);
}

/** What `followLog` needs to know about one log. */
export interface LogSource<Entry extends { readonly seq: number }> {
  /** Entries with seq > since, oldest first, at most `limit`. */
  read(since: number, limit: number): Promise<Entry[]>;
  /** Subscribes at once to entries as they are published (after commit); returns the unsubscribe. */
  listen(listener: (entry: Entry) => void): () => void;
  /**
   * Resolves once that subscription is live (see PubSub.ready); the history is read only after it.
   * Absent: live as soon as `listen` returns.
   */
  ready?(): Promise<void>;
  /**
   * Whether the stream is over once `entry` has been seen (delivered, or skipped as already sent),
   * or, with `null`, once the history is sent. Absent: the stream runs until the consumer leaves.
   */
  readonly isOver?: (entry: Entry | null) => boolean;
  /**
   * False for entries `isOver` need not see: they neither end the stream nor change what it knows. A
   * fan-out group then skips the call for them. Absent: every entry.
   */
  readonly mayEnd?: (entry: Entry) => boolean;
  /**
   * Names the log across follows: its name on `bus` (a run's id, say). Follows of one channel whose
   * sinks share a key are fed by one fan-out group (LiveSink). Absent: a follow's group is its own.
   */
  readonly channel?: { readonly bus: object; readonly name: string };
}

/** What a LiveSink did with one entry. */
export type LiveDelivery = 'sent' | 'declined' | 'full';

/**
 * Takes caught-up followers' live entries straight from the publish: synchronously, in seq order, each
 * once, with no async step per subscriber. The follows of one log (LogSource.channel) whose sinks have
 * the same `shareKey` are one fan-out group: the group alone listens to the log, `prepare`s each entry
 * once (with the sink of whichever member came first) and hands the result to every member's `send`,
 * so a delivery costs little more than its write. Both are called without `this`.
 *
 * `send` answers 'sent' once the entry is on its way; 'declined' to have this entry, and the ones after
 * it, go through the member's stream as usual (the follow hands over again once caught up); 'full'
 * when its consumer is too far behind: the follow then ends with SubscriberTooSlowError from the last
 * entry sent. `prepare` answering null declines the entry for every member. A throw counts as declined.
 */
export interface LiveSink<Entry, Prepared = unknown> {
  readonly shareKey: string;
  readonly prepare: (entry: Entry) => Prepared | null;
  readonly send: (prepared: Prepared) => LiveDelivery;
}

/** The method of a follow (followLog, followLogBatches) that hands its live entries to a sink once it has caught up. */
export const HAND_OVER_LIVE = Symbol('runboard.handOverLive');

/**
 * A follow that can hand over: from the first pull that finds nothing buffered, live entries go to
 * the sink instead of the stream, until it declines one. A pull means everything yielded before it
 * was consumed, so the sink's entries come after them. The stream itself then only ends: after
 * `isOver`, when the sink is full (SubscriberTooSlowError), or when the consumer leaves.
 */
export interface HandsOverLive<Entry> {
  [HAND_OVER_LIVE](sink: LiveSink<Entry, any>): void;
}

/** Most entries one message of a batched follow carries. @default 2_000 */
export const MAX_BATCH = 2_000;

/** How many entries each step of `followLogBatches` may hold. */
export interface BatchSizes {
  /** History entries per step (read in pages of REPLAY_PAGE). */
  history: number;
  /** Live entries per step: at most this many of those buffered when the consumer pulls. */
  live: number;
}

/**
 * Batches for a client that takes a list per message: up to `max` entries of history or of what is
 * buffered. InvalidInputError (on `first`, the API's name for it) unless 1 to MAX_BATCH.
 */
export function perMessage(max = MAX_BATCH): BatchSizes {
  if (!Number.isInteger(max) || max < 1 || max > MAX_BATCH) throw new InvalidInputError(`first must be 1 to ${MAX_BATCH} events per message`, 'first');
  return { history: max, live: max };
}

/** Batches for `followLog`, which hands entries out one at a time: a read page of history, one live entry. */
const ONE_BY_ONE: BatchSizes = { history: REPLAY_PAGE, live: 1 };

/**
 * Every entry with seq > since, in order, once each: history first, then live, until `isOver` says
 * so or the consumer leaves. Throws SubscriberTooSlowError (with the resume seq) when the consumer
 * falls more than `maxBuffered` live entries behind.
 */
export function followLog<Entry extends { readonly seq: number }>(source: LogSource<Entry>, since: number, maxBuffered = MAX_BUFFERED_EVENTS): AsyncGenerator<Entry> & HandsOverLive<Entry> {
  return oneByOne(followLogBatches(source, since, maxBuffered, ONE_BY_ONE));
}

/**
 * `followLog` a list at a time: the history in batches of up to `sizes.history` entries, then, live,
 * whatever is buffered when the consumer pulls (up to `sizes.live`). The same order, exactly-once,
 * end and too-slow rules; never an empty batch. A batch's last seq is where a consumer resumes from.
 */
export function followLogBatches<Entry extends { readonly seq: number }>(
  source: LogSource<Entry>,
  since: number,
  maxBuffered = MAX_BUFFERED_EVENTS,
  sizes: BatchSizes = perMessage(),
): AsyncGenerator<Entry[]> & HandsOverLive<Entry> {
  const member: LiveMember<Entry> = {
    lastSent: since,
    over: false,
    overflowed: false,
    buffer: [],
    sink: null,
    send: null,
    group: null,
    notify: () => undefined,
    isOver: source.isOver,
    mayEnd: source.mayEnd,
    unlisten: null,
    listen: null,
  };
  const { buffer, isOver } = member;
  const stream = feed<Entry[]>(
    (notify) => {
      member.notify = notify;
      // The follow's own listener, while it is not in a fan-out group: it buffers for the stream.
      const listen = () => {
        member.unlisten = source.listen((entry) => {
          if (member.overflowed || member.over) return;
          if (buffer.length >= maxBuffered) {
            member.overflowed = true;
            buffer.length = 0; // free the memory now; the subscriber resumes from history
          } else buffer.push(entry);
          notify();
        });
      };
      member.listen = listen;
      listen();
      return () => {
        member.listen = null; // the consumer left: no listener again
        member.group?.leave(member);
        member.unlisten?.();
        member.unlisten = null;
      };
    },
    async function* (control) {
      // A shared bus confirms the subscription later: reading history before that would miss what is
      // published in between (neither in the history read nor delivered live).
      if (source.ready) await source.ready();
      // History, a batch of read pages at a time, until a page comes back short.
      for (let more = true; more; ) {
        const release = await replayPages.acquire(REPLAY_SLOT_MS);
        try {
          if (control.closed) return;
          const batch: Entry[] = [];
          while (more && batch.length < sizes.history) {
            const limit = Math.min(REPLAY_PAGE, sizes.history - batch.length);
            const page = await source.read(member.lastSent, limit);
            for (const entry of page) {
              member.lastSent = entry.seq;
              batch.push(entry);
              if (isOver?.(entry)) member.over = true;
            }
            more = page.length === limit;
          }
          if (batch.length > 0) yield batch;
        } finally {
          release();
        }
        // A client that left mid-replay is only noticed by I/O callbacks: let them run between batches.
        if (more) await new Promise((resolve) => setImmediate(resolve));
      }
      if (member.over || isOver?.(null)) return;
      // Live.
      for (;;) {
        if (control.closed || member.over) return;
        if (member.overflowed) throw new SubscriberTooSlowError(member.lastSent);
        if (buffer.length === 0) {
          // Caught up, and everything yielded so far consumed: the sink's group takes it from here.
          if (member.sink && !member.group) LiveGroup.join(member, source);
          await control.wait();
          continue;
        }
        const batch: Entry[] = [];
        let ends = false;
        for (const entry of buffer.splice(0, sizes.live)) {
          if (entry.seq > member.lastSent) {
            member.lastSent = entry.seq;
            batch.push(entry);
          }
          // Also when skipped: a terminal event replayed earlier still ends the stream.
          if (isOver?.(entry)) {
            ends = true;
            break;
          }
        }
        if (batch.length > 0) yield batch;
        if (ends) return;
      }
    },
  );
  return Object.assign(stream, {
    [HAND_OVER_LIVE]: (sink: LiveSink<Entry>) => {
      member.sink = sink;
      member.send = sink.send;
    },
  });
}

/** A follow as its fan-out group sees it: the state its stream and the group share. */
interface LiveMember<Entry extends { readonly seq: number }> {
  /** The seq of the last entry yielded or sent. */
  lastSent: number;
  /** `isOver` said so: the stream ends. */
  over: boolean;
  /** Fell too far behind: the stream ends with SubscriberTooSlowError. */
  overflowed: boolean;
  /** Live entries for the stream to yield. */
  readonly buffer: Entry[];
  sink: LiveSink<Entry> | null;
  /** The sink's `send`, read once: the group calls it for every delivery. */
  send: LiveSink<Entry>['send'] | null;
  group: LiveGroup<Entry> | null;
  /** Wakes the stream. */
  notify: () => void;
  readonly isOver: LogSource<Entry>['isOver'];
  readonly mayEnd: LogSource<Entry>['mayEnd'];
  /** Unsubscribes the follow's own listener, while it has one (out of a group). */
  unlisten: (() => void) | null;
  /** Subscribes the follow's own listener again; null once its consumer has left. */
  listen: (() => void) | null;
}

/** Fan-out groups by bus, then by channel name and share key: servers in one process never share one. */
const liveGroups = new WeakMap<object, Map<string, LiveGroup<{ readonly seq: number }>>>();

/**
 * The follows of one log handed over to sinks of one key (see LiveSink). While in the group, a
 * member's only listener on the log is the group's: one call per entry for all of them, not one per
 * member. A member that leaves (declined, full, over, or gone) listens for itself again, subscribed
 * before the group may unsubscribe, so a shared bus never drops the log in between.
 */
class LiveGroup<Entry extends { readonly seq: number }> {
  /** Replaced, not changed, when a member joins or leaves: a publish walks the members it began with. */
  private members: LiveMember<Entry>[] = [];
  private readonly prepare: LiveSink<Entry>['prepare'];
  private readonly unlisten: () => void;

  private constructor(
    /** Where the group is registered; null: it is its member's alone. */
    private readonly registry: { readonly groups: Map<string, LiveGroup<{ readonly seq: number }>>; readonly key: string } | null,
    source: LogSource<Entry>,
    sink: LiveSink<Entry>,
  ) {
    this.prepare = sink.prepare;
    this.unlisten = source.listen((entry) => this.publish(entry));
  }

  /** Moves a caught-up follow (nothing buffered, everything yielded consumed) from its own listener into its group. */
  static join<Entry extends { readonly seq: number }>(member: LiveMember<Entry>, source: LogSource<Entry>): void {
    const sink = member.sink!;
    const { channel } = source;
    let registry: LiveGroup<Entry>['registry'] = null;
    if (channel) {
      let groups = liveGroups.get(channel.bus);
      if (!groups) liveGroups.set(channel.bus, (groups = new Map()));
      registry = { groups, key: `${channel.name}\n${sink.shareKey}` };
    }
    let group = registry?.groups.get(registry.key) as LiveGroup<Entry> | undefined;
    if (!group) {
      group = new LiveGroup(registry, source, sink);
      registry?.groups.set(registry.key, group as unknown as LiveGroup<{ readonly seq: number }>);
    }
    group.members = [...group.members, member];
    member.group = group;
    member.unlisten?.(); // once the group listens
    member.unlisten = null;
  }

  /** Takes a member out, back to its own listener unless its consumer has left. */
  leave(member: LiveMember<Entry>): void {
    if (member.group !== this) return;
    member.group = null;
    member.listen?.(); // before the group may stop listening
    this.members = this.members.filter((other) => other !== member);
    if (this.members.length > 0) return;
    this.registry?.groups.delete(this.registry.key);
    this.unlisten();
  }

  private publish(entry: Entry): void {
    let prepared: unknown = null;
    let preparedYet = false;
    for (const member of this.members) {
      if (member.group !== this) continue; // left during this publish
      if (entry.seq > member.lastSent) {
        if (!preparedYet) {
          preparedYet = true;
          try {
            prepared = this.prepare(entry);
          } catch {
            prepared = null;
          }
        }
        let delivery: LiveDelivery = 'declined';
        if (prepared !== null) {
          try {
            delivery = member.send!(prepared);
          } catch {
            delivery = 'declined';
          }
        }
        if (delivery === 'full') {
          member.overflowed = true;
          this.end(member);
          continue;
        }
        if (delivery === 'declined') {
          // Through the stream: this entry now (the member's own listener, just subscribed, gets the next ones).
          this.leave(member);
          member.buffer.push(entry);
          member.notify();
          continue;
        }
        member.lastSent = entry.seq;
      }
      // Also when skipped, as in the stream: a terminal entry sent before still ends it.
      const isOver = member.isOver;
      if (isOver !== undefined && (member.mayEnd === undefined || member.mayEnd(entry)) && isOver(entry)) {
        member.over = true;
        this.end(member);
      }
    }
  }

  /** A member whose stream ends (over, or too slow): out of the group, and its stream woken to end. */
  private end(member: LiveMember<Entry>): void {
    this.leave(member);
    member.notify();
  }
}

/**
 * The entries of a stream of batches, one at a time. A plain iterator, not a generator: `return()`
 * must reach the batches at once even while a `next()` waits for live entries.
 */
function oneByOne<T>(batches: AsyncGenerator<T[]> & HandsOverLive<T>): AsyncGenerator<T> & HandsOverLive<T> {
  let batch: T[] = [];
  let index = 0;
  const leave = async <R>(value: R): Promise<IteratorResult<T, R>> => {
    batch = [];
    await batches.return(undefined);
    return { done: true, value };
  };
  return {
    async next() {
      while (index >= batch.length) {
        const step = await batches.next();
        if (step.done) return { done: true, value: undefined };
        [batch, index] = [step.value, 0];
      }
      return { done: false, value: batch[index++]! };
    },
    return: leave,
    async throw(error: unknown) {
      await batches.return(undefined);
      throw error;
    },
    [Symbol.asyncIterator]() {
      return this;
    },
    [Symbol.asyncDispose]: async () => void (await leave(undefined)),
    [HAND_OVER_LIVE]: (sink: LiveSink<T>) => batches[HAND_OVER_LIVE](sink),
  } as AsyncGenerator<T> & HandsOverLive<T>;
}

export interface FollowRunOptions {
  /** Deliver events with seq > since. @default 0 */
  since?: number;
  /** End after the run's terminal status (and a running playtest's exit) instead of staying open. @default false */
  untilSettled?: boolean;
  /** @default MAX_BUFFERED_EVENTS */
  maxBuffered?: number;
}

/** A batched follow's options: `perMessage` is the most entries in one batch, 1 to MAX_BATCH. */
export interface FollowBatchOptions {
  /** @default MAX_BATCH */
  perMessage?: number;
}

/**
 * Every event of `runId` with seq > since, in order, once each: history first, then live. By default
 * it stays open after the run settles (a playtest, a merge and a worktree removal come later). With
 * `untilSettled`, it ends once the run has settled (its terminal status seen, or settled before we
 * subscribed) and nothing else writes for it: a playtest keeps it open until its playtest_exit.
 * NotFoundError for an unknown run and InvalidInputError for a `since` past its last seq, both thrown
 * before the first event.
 */
export function followRunEvents(db: Database, eventLog: EventLog, bus: PubSub<RunEventTopics>, runId: string, options: FollowRunOptions = {}): Promise<AsyncGenerator<RunEvent>> {
  return openRunEvents(db, eventLog, bus, runId, options, followLog);
}

/** `followRunEvents` a list at a time (see followLogBatches): for clients that take a batch per message. */
export async function followRunEventBatches(
  db: Database,
  eventLog: EventLog,
  bus: PubSub<RunEventTopics>,
  runId: string,
  options: FollowRunOptions & FollowBatchOptions = {},
): Promise<AsyncGenerator<RunEvent[]>> {
  const sizes = perMessage(options.perMessage);
  return openRunEvents(db, eventLog, bus, runId, options, (source, since, maxBuffered) => followLogBatches(source, since, maxBuffered, sizes));
}

/** How a follow of one log is opened: one entry, or one batch, per step. */
type Follow<Entry extends { readonly seq: number }, Step> = (source: LogSource<Entry>, since: number, maxBuffered?: number) => AsyncGenerator<Step>;

async function openRunEvents<Step>(
  db: Database,
  eventLog: EventLog,
  bus: PubSub<RunEventTopics>,
  runId: string,
  options: FollowRunOptions,
  follow: Follow<RunEvent, Step>,
): Promise<AsyncGenerator<Step>> {
  const since = options.since ?? 0;
  if (!Number.isInteger(since) || since < 0) throw new InvalidInputError('since must be a seq: 0 or more', 'since');
  // Whether the run has settled and a playtest (which may run on another node) still writes for it: as the
  // run's row said when the follow opened, then as the events after that row's lastSeq say.
  let settled = false;
  let playtestRunning = false;
  let stateSeq = Infinity;
  const observe = (event: RunEvent) => {
    if (event.seq <= stateSeq) return;
    stateSeq = event.seq;
    if (isTerminalEvent(event)) settled = true;
    else if (event.type === 'playtest_start') playtestRunning = true;
    else if (event.type === 'playtest_exit') playtestRunning = false;
  };
  const source: LogSource<RunEvent> = {
    channel: { bus, name: `run-events:${runId}` },
    read: (after, limit) => eventLog.read(runId, after, limit),
    listen: (listener) => bus.subscribe('run-events', runId, listener),
    ready: () => bus.ready('run-events', runId),
    isOver: options.untilSettled
      ? (event) => {
          if (event) {
            if (!changesSettling(event)) return false; // what mayEnd tells a fan-out group: both paths see the same entries
            observe(event);
          }
          return (event === null || isTerminalEvent(event) || event.type === 'playtest_exit') && settled && !playtestRunning;
        }
      : undefined,
    mayEnd: options.untilSettled ? changesSettling : undefined,
  };
  // Subscribes at once: whatever is written from now on is caught by the stream, or by its replay.
  const stream = follow(source, since, options.maxBuffered);
  const run = await db.client.run.findUnique({ where: { id: runId }, select: { status: true, lastSeq: true, playtestStartedAt: true, playtestEndedAt: true } });
  if (!run || since > run.lastSeq) {
    await stream.return(undefined);
    if (!run) throw new NotFoundError('Run', runId);
    throw new InvalidInputError(`since ${since} is past run ${runId}'s last seq ${run.lastSeq}`, 'since');
  }
  // Read before the stream's first step; the row is written with the events up to its lastSeq.
  settled = !isActive(run.status as RunStatus);
  playtestRunning = run.playtestStartedAt !== null && run.playtestEndedAt === null;
  stateSeq = run.lastSeq;
  return stream;
}

/**
 * Every board event with seq > since, in order, once each: history first, then live, until the
 * consumer leaves. InvalidInputError for a `since` past the log's last seq, before the first event.
 */
export function followBoardEvents(boardLog: BoardLog, bus: PubSub<BoardLogTopics>, since: number, maxBuffered?: number): Promise<AsyncGenerator<BoardEventRecord>> {
  return openBoardEvents(boardLog, bus, since, maxBuffered, followLog);
}

/** `followBoardEvents` a list at a time (see followLogBatches): for clients that take a batch per message. */
export async function followBoardEventBatches(
  boardLog: BoardLog,
  bus: PubSub<BoardLogTopics>,
  since: number,
  { perMessage: max, maxBuffered }: FollowBatchOptions & { maxBuffered?: number } = {},
): Promise<AsyncGenerator<BoardEventRecord[]>> {
  const sizes = perMessage(max);
  return openBoardEvents(boardLog, bus, since, maxBuffered, (source, after, buffered) => followLogBatches(source, after, buffered, sizes));
}

async function openBoardEvents<Step>(boardLog: BoardLog, bus: PubSub<BoardLogTopics>, since: number, maxBuffered: number | undefined, follow: Follow<BoardEventRecord, Step>): Promise<AsyncGenerator<Step>> {
  if (!Number.isInteger(since) || since < 0) throw new InvalidInputError('since must be a seq: 0 or more', 'since');
  const source: LogSource<BoardEventRecord> = {
    read: (after, limit) => boardLog.read(after, limit),
    listen: (listener) => bus.subscribe('board-events', '*', listener),
    ready: () => bus.ready('board-events', '*'),
  };
  const stream = follow(source, since, maxBuffered);
  const lastSeq = await boardLog.lastSeq();
  if (since > lastSeq) {
    await stream.return(undefined);
    throw new InvalidInputError(`since ${since} is past the board log's last seq ${lastSeq}`, 'since');
  }
  return stream;
}

/**
 * Ids of runs as their status changes, for one card or all (null). Updates not yet read are
 * coalesced per run, so a slow reader holds at most one entry per run.
 */
export function followRunUpdates(bus: PubSub<RunTopics>, cardId: string | null): AsyncGenerator<string> {
  const pending = new Set<string>();
  return feed<string>(
    (notify) =>
      bus.subscribe('run-updated', cardId ?? '*', (update) => {
        pending.delete(update.runId); // re-added at the end: order by latest change
        pending.add(update.runId);
        notify();
      }),
    async function* (control) {
      while (!control.closed) {
        const [next] = pending;
        if (next === undefined) {
          await control.wait();
          continue;
        }
        pending.delete(next);
        yield next;
      }
    },
  );
}

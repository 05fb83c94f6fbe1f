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
   * Whether the stream is over once `entry` has been seen (delivered, or skipped as already sent),
   * or, with `null`, once the history is sent. Absent: the stream runs until the consumer leaves.
   */
  isOver?(entry: Entry | null): boolean;
}

/**
 * Every entry with seq > since, in order, once each: history first, then live, until `isOver` says
 * so or the consumer leaves. Throws SubscriberTooSlowError (with the resume seq) when the consumer
 * falls more than `maxBuffered` live entries behind.
 */
export function followLog<Entry extends { readonly seq: number }>(source: LogSource<Entry>, since: number, maxBuffered = MAX_BUFFERED_EVENTS): AsyncGenerator<Entry> {
  const buffer: Entry[] = [];
  let overflowed = false;
  return feed<Entry>(
    (notify) =>
      source.listen((entry) => {
        if (overflowed) return;
        if (buffer.length >= maxBuffered) {
          overflowed = true;
          buffer.length = 0; // free the memory now; the subscriber resumes from history
        } else buffer.push(entry);
        notify();
      }),
    async function* (control) {
      let lastSent = since;
      let over = false;
      // History, page by page, until a page comes back short.
      for (;;) {
        const release = await replayPages.acquire(REPLAY_SLOT_MS);
        try {
          if (control.closed) return;
          const page = await source.read(lastSent, REPLAY_PAGE);
          for (const entry of page) {
            lastSent = entry.seq;
            yield entry;
            if (source.isOver?.(entry)) over = true;
          }
          if (page.length < REPLAY_PAGE) break;
        } finally {
          release();
        }
        // A client that left mid-replay is only noticed by I/O callbacks: let them run between pages.
        await new Promise((resolve) => setImmediate(resolve));
      }
      if (over || source.isOver?.(null)) return;
      // Live.
      for (;;) {
        if (control.closed) return;
        if (overflowed) throw new SubscriberTooSlowError(lastSent);
        const entry = buffer.shift();
        if (!entry) {
          await control.wait();
          continue;
        }
        if (entry.seq > lastSent) {
          lastSent = entry.seq;
          yield entry;
        }
        if (source.isOver?.(entry)) return; // also when skipped: a terminal event replayed earlier still ends the stream
      }
    },
  );
}

export interface FollowRunOptions {
  /** Deliver events with seq > since. @default 0 */
  since?: number;
  /** End after the run's terminal status (and a running playtest's exit) instead of staying open. @default false */
  untilSettled?: boolean;
  /** Something other than the agent still writes events for a settled run (a playtest). */
  stillWriting?: (runId: string) => boolean;
  /** @default MAX_BUFFERED_EVENTS */
  maxBuffered?: number;
}

/**
 * Every event of `runId` with seq > since, in order, once each: history first, then live. By default
 * it stays open after the run settles (a playtest, a merge and a worktree removal come later). With
 * `untilSettled`, it ends once the run has settled (its terminal status seen, or settled before we
 * subscribed) and nothing else writes for it: a playtest keeps it open until its playtest_exit.
 * NotFoundError for an unknown run and InvalidInputError for a `since` past its last seq, both thrown
 * before the first event.
 */
export async function followRunEvents(
  db: Database,
  eventLog: EventLog,
  bus: PubSub<RunEventTopics>,
  runId: string,
  options: FollowRunOptions = {},
): Promise<AsyncGenerator<RunEvent>> {
  const since = options.since ?? 0;
  if (!Number.isInteger(since) || since < 0) throw new InvalidInputError('since must be a seq: 0 or more', 'since');
  let settled = false;
  const finished = () => settled && !options.stillWriting?.(runId);
  const source: LogSource<RunEvent> = {
    read: (after, limit) => eventLog.read(runId, after, limit),
    listen: (listener) => bus.subscribe('run-events', runId, listener),
    isOver: options.untilSettled
      ? (event) => {
          if (event && isTerminalEvent(event)) settled = true;
          return (event === null || isTerminalEvent(event) || event.type === 'playtest_exit') && finished();
        }
      : undefined,
  };
  // Subscribes at once: whatever is written from now on is caught by the stream, or by its replay.
  const stream = followLog(source, since, options.maxBuffered);
  const run = await db.client.run.findUnique({ where: { id: runId }, select: { status: true, lastSeq: true } });
  if (!run || since > run.lastSeq) {
    await stream.return(undefined);
    if (!run) throw new NotFoundError('Run', runId);
    throw new InvalidInputError(`since ${since} is past run ${runId}'s last seq ${run.lastSeq}`, 'since');
  }
  settled = !isActive(run.status as RunStatus); // read before the stream's first step
  return stream;
}

/**
 * Every board event with seq > since, in order, once each: history first, then live, until the
 * consumer leaves. InvalidInputError for a `since` past the log's last seq, before the first event.
 */
export async function followBoardEvents(boardLog: BoardLog, bus: PubSub<BoardLogTopics>, since: number, maxBuffered?: number): Promise<AsyncGenerator<BoardEventRecord>> {
  if (!Number.isInteger(since) || since < 0) throw new InvalidInputError('since must be a seq: 0 or more', 'since');
  const stream = followLog<BoardEventRecord>({ read: (after, limit) => boardLog.read(after, limit), listen: (listener) => bus.subscribe('board-events', '*', listener) }, since, maxBuffered);
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

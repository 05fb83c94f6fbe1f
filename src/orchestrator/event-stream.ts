/**
 * Following a run's events from any seq: replay the persisted history, then go live, exactly once.
 *
 * The live subscription is opened *before* the history is read, so an event written during the
 * replay is caught by one or the other; anything with `seq <= lastSent` is dropped, so the
 * boundary delivers each event once. Live events wait in a bounded buffer: a subscriber that falls
 * further behind is ended with the seq to resume from, and loses nothing because history is durable.
 */
import type { Database } from './db.js';
import { NotFoundError, RunboardError } from './errors.js';
import { MAX_EVENTS_PER_READ, type EventLog, type RunEventRecord, type RunEventTopics } from './event-log.js';
import { feed, type PubSub } from './pubsub.js';
import { isActive, type RunStatus } from './run-status.js';
import type { RunTopics } from './runs.js';

/** Live events one subscriber may have waiting before it is ended as too slow. @default 1_000 */
export const MAX_BUFFERED_EVENTS = 1_000;
/** Events read per history page. @default 500 */
const REPLAY_PAGE = Math.min(500, MAX_EVENTS_PER_READ);

/** A subscriber fell more than MAX_BUFFERED_EVENTS behind; it resubscribes with `since: resumeFrom`. */
export class SubscriberTooSlowError extends RunboardError {
  readonly category = 'subscriber_too_slow';
  constructor(readonly resumeFrom: number) {
    super(`subscriber fell too far behind; resubscribe with since: ${resumeFrom} to continue without loss`);
  }
}

/** A `status` event that ends a run. */
export function isTerminalEvent(event: Pick<RunEventRecord, 'type' | 'data'>): boolean {
  return event.type === 'status' && !isActive(event.data.status as RunStatus);
}

export interface FollowOptions {
  /** Deliver events with seq > since. @default 0 */
  since?: number;
  /** Something other than the agent still writes events for a settled run (a playtest): keep the stream open. */
  stillWriting?: (runId: string) => boolean;
  /** @default MAX_BUFFERED_EVENTS */
  maxBuffered?: number;
}

/**
 * Every event of `runId` with seq > since, in order, once each: history first, then live. Ends once
 * the run has settled (its terminal status event delivered, or settled before we subscribed and its
 * history sent) and nothing else writes for it: a playtest keeps the stream open until playtest_exit.
 * NotFoundError for an unknown run, thrown before the first event.
 */
export async function followRunEvents(
  db: Database,
  eventLog: EventLog,
  bus: PubSub<RunEventTopics>,
  runId: string,
  options: FollowOptions = {},
): Promise<AsyncGenerator<RunEventRecord>> {
  const maxBuffered = options.maxBuffered ?? MAX_BUFFERED_EVENTS;
  const buffer: RunEventRecord[] = [];
  let overflowed = false;
  let settled = false;
  // Subscribes at once: whatever is written from now on is caught here, or by the replay below.
  const stream = feed<RunEventRecord>(
    (notify) =>
      bus.subscribe('run-events', runId, (event) => {
        if (overflowed) return;
        if (buffer.length >= maxBuffered) {
          overflowed = true;
          buffer.length = 0; // free the memory now; the subscriber resumes from history
        } else buffer.push(event);
        notify();
      }),
    async function* (control) {
      let lastSent = Math.max(0, options.since ?? 0);
      let ended = settled;
      const finished = () => ended && !options.stillWriting?.(runId);
      // History, page by page, until a page comes back short.
      for (;;) {
        const page = await eventLog.read(runId, lastSent, REPLAY_PAGE);
        for (const event of page) {
          lastSent = event.seq;
          yield event;
          if (isTerminalEvent(event)) ended = true;
        }
        if (page.length < REPLAY_PAGE) break;
      }
      if (finished()) return;
      // Live.
      for (;;) {
        if (control.closed) return;
        if (overflowed) throw new SubscriberTooSlowError(lastSent);
        const event = buffer.shift();
        if (!event) {
          await control.wait();
          continue;
        }
        if (event.seq <= lastSent) continue; // already replayed
        lastSent = event.seq;
        yield event;
        if (isTerminalEvent(event)) ended = true;
        if ((isTerminalEvent(event) || event.type === 'playtest_exit') && finished()) return;
      }
    },
  );
  const run = await db.client.run.findUnique({ where: { id: runId }, select: { status: true } });
  if (!run) {
    await stream.return(undefined);
    throw new NotFoundError('Run', runId);
  }
  settled = !isActive(run.status as RunStatus); // read before the stream's first step
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

/** Live views: a run's event stream from any seq, and run status changes for a board. */
import { PothosValidationError } from '@pothos/core';
import { decodeGlobalID } from '@pothos/plugin-relay';
import { HAND_OVER_LIVE, MAX_BATCH, SubscriberTooSlowError, type HandsOverLive } from '../orchestrator/event-stream.js';
import { requireCardAccess, requireRunAccess } from './auth.js';
import { builder } from './builder.js';
import { Card } from './card.js';
import { Run } from './run.js';
import { RunEventInterface } from './run-events.js';

builder.subscriptionFields((t) => ({
  runEvents: t.field({
    type: RunEventInterface,
    description: `Every event of a run with seq > since, in seq order, each exactly once: first the persisted history, then live events as they are written.

By default the stream stays open after the run settles, until you leave: a playtest's output, a merge and a worktree removal come later. With \`untilSettled: true\` it ends after the run's terminal StatusChangedEvent (SUCCEEDED, FAILED, STOPPED or INTERRUPTED), and after a running playtest's PlaytestExitedEvent; for a run already settled, once the history after \`since\` is sent. A refinement is a new run: follow the run that startRun(refineRunId) returns, or watch runUpdated for the card.

If the connection drops, resubscribe with the last seq you received as \`since\`: nothing is lost or repeated. Over SSE every message carries \`id: <seq>\`, and an EventSource that reconnects with \`Last-Event-ID\` continues after that seq. A subscriber that falls more than 1,000 events behind (over WebSocket, once live: that has more than 1 MiB of messages waiting on its connection) is ended with a SUBSCRIBER_TOO_SLOW error whose \`extensions.resumeFrom\` is the seq to resubscribe with. NOT_FOUND for an unknown run; BAD_USER_INPUT for a \`since\` past the run's lastSeq.`,
    args: {
      runId: t.arg.id({ required: true }),
      since: t.arg.int({ defaultValue: 0 }),
      untilSettled: t.arg.boolean({ defaultValue: false }),
    },
    subscribe: async (_root, { runId: globalId, since, untilSettled }, ctx) => {
      const runId = runIdOf(globalId);
      requireRunAccess(ctx, runId);
      return endWithError(await ctx.orchestrator.followRunEvents(runId, ctx.lastEventId ?? since ?? 0, untilSettled ?? false));
    },
    resolve: (event) => {
      if (event instanceof Error) throw event;
      return event;
    },
  }),
  runEventBatches: t.field({
    type: [RunEventInterface],
    // The cost limit prices a message at its largest batch; a literal `first` prices it lower.
    extensions: { listSize: MAX_BATCH },
    description: `runEvents a list at a time, for catching up: the history in lists of up to \`first\` events (at most ${MAX_BATCH.toLocaleString('en')}) per message, then the live events waiting when each message is sent. The same since, order, exactly-once, untilSettled, SUBSCRIBER_TOO_SLOW and error rules as runEvents; a list is never empty. Resubscribe with the last seq of the last list as \`since\`; over SSE a message's \`id\` is that seq. BAD_USER_INPUT for a \`first\` outside 1 to ${MAX_BATCH}.`,
    args: {
      runId: t.arg.id({ required: true }),
      since: t.arg.int({ defaultValue: 0 }),
      untilSettled: t.arg.boolean({ defaultValue: false }),
      first: t.arg.int({ defaultValue: MAX_BATCH, description: `The most events in one message, 1 to ${MAX_BATCH}.` }),
    },
    subscribe: async (_root, { runId: globalId, since, untilSettled, first }, ctx) => {
      const runId = runIdOf(globalId);
      requireRunAccess(ctx, runId);
      return endWithError(await ctx.orchestrator.followRunEventBatches(runId, ctx.lastEventId ?? since ?? 0, untilSettled ?? false, first ?? undefined));
    },
    resolve: (batch) => {
      if (batch instanceof Error) throw batch;
      return batch;
    },
  }),
  runUpdated: t.prismaField({
    type: Run,
    description: 'A run whenever its status changes (and when it is merged), for one card or, without cardId, for every card. Updates of one run that arrive faster than they are read are coalesced to the latest.',
    args: { cardId: t.arg.globalID({ for: Card }) },
    subscribe: (_root, { cardId }, ctx) => {
      requireCardAccess(ctx, cardId?.id);
      return ctx.orchestrator.followRunUpdates(cardId?.id ?? null);
    },
    resolve: (query, runId, _args, ctx) => ctx.prisma.run.findUniqueOrThrow({ ...query, where: { id: runId } }),
  }),
}));

/**
 * A run's database id from the global id a follow names, decoded in `subscribe`: once per
 * subscription, with the errors `t.arg.globalID({ for: Run })` gives. That argument type would also
 * decode it in `resolve` (Pothos maps arguments for both), which a follow's execution runs for every
 * event.
 */
function runIdOf(globalId: string | number): string {
  const { typename, id } = decodeGlobalID(String(globalId));
  if (typename !== 'Run') throw new PothosValidationError(`ID: ${globalId} is not of type: Run`);
  return id;
}

/**
 * A stream that ends in SubscriberTooSlowError yields the error as its last item, so the client gets
 * a GraphQL error with its resume seq and a clean completion instead of a dropped socket. A plain
 * iterator, not a generator: `return()` must reach the stream at once when the client leaves.
 */
export function endWithError<T>(stream: AsyncGenerator<T>): AsyncIterableIterator<T | SubscriberTooSlowError> {
  let ended = false;
  return {
    async next() {
      if (ended) return { done: true, value: undefined };
      try {
        return await stream.next();
      } catch (error) {
        if (!(error instanceof SubscriberTooSlowError)) throw error;
        ended = true;
        return { done: false, value: error };
      }
    },
    return: (value?: unknown) => stream.return(value as T) as Promise<IteratorResult<T | SubscriberTooSlowError>>,
    [Symbol.asyncIterator]() {
      return this;
    },
    // Kept for use-shared-subscriptions: a too-slow sink ends the stream through `next` above all the same.
    ...(HAND_OVER_LIVE in stream ? { [HAND_OVER_LIVE]: (stream as AsyncGenerator<T> & HandsOverLive<T>)[HAND_OVER_LIVE] } : {}),
  };
}

/**
 * The board log (orchestrator/board-log.ts) mapped once to GraphQL: the `BoardEvent` interface, one
 * object type per kind, and the `boardEvents` subscription a UI stays current with.
 */
import { encodeGlobalID } from '@pothos/plugin-relay';
import type { BoardEventRecord, BoardEventType } from '../orchestrator/board-log.js';
import { builder } from './builder.js';
import { Card, CardColumnEnum } from './card.js';
import { ReferenceKindEnum } from './reference.js';
import { MergeStrategyEnum } from './run-events.js';
import { RunStatusEnum } from './run.js';
import { MAX_BATCH } from '../orchestrator/event-stream.js';
import { endWithError } from './subscriptions.js';

type BoardEventOf<T extends BoardEventType> = Extract<BoardEventRecord, { type: T }>;

const globalId = (type: string, id: string | null) => (id ? encodeGlobalID(type, id) : null);

export const BoardEventInterface = builder.interfaceRef<BoardEventRecord>('BoardEvent').implement({
  description: 'One change to the board, with a global `seq` (1, 2, 3… across the whole board), written in the same transaction as the change.',
  fields: (t) => ({
    seq: t.exposeInt('seq'),
    type: t.exposeString('type', { description: 'The stored kind, snake_case (e.g. `card_moved`).' }),
    createdAt: t.expose('createdAt', { type: 'DateTime' }),
    cardId: t.field({ type: 'ID', nullable: true, description: 'The card\'s global id (it may have been deleted since).', resolve: (event) => globalId('Card', event.cardId) }),
    card: t.field({
      type: Card,
      nullable: true,
      description: 'The card as it is now; null once deleted.',
      resolve: (event, _args, ctx) => (event.cardId ? ctx.prisma.card.findUnique({ where: { id: event.cardId } }) : null),
    }),
    actorRunId: t.field({ type: 'ID', nullable: true, description: 'The run whose agent made the change; null when a person (or runboard itself) did.', resolve: (event) => globalId('Run', event.actorRunId) }),
  }),
  resolveType: (event) => BOARD_EVENT_OBJECTS[event.type].name,
});

function boardEventObject<T extends BoardEventType>(name: string, description: string) {
  // tsc cannot see that BoardEventOf<T> extends BoardEventRecord for a generic T; every T does.
  return builder.objectRef<BoardEventOf<T>>(name).implement({ description, interfaces: [BoardEventInterface] as never });
}

const object = {
  card_created: boardEventObject<'card_created'>('CardCreatedBoardEvent', 'A card was created at `position` in `column`; the cards from there on moved down by one.'),
  card_updated: boardEventObject<'card_updated'>('CardUpdatedBoardEvent', 'A card\'s title or description changed.'),
  card_moved: boardEventObject<'card_moved'>('CardMovedBoardEvent', 'A card moved; positions closed behind it and opened where it went.'),
  card_deleted: boardEventObject<'card_deleted'>('CardDeletedBoardEvent', 'A card was deleted; the cards after it moved up by one.'),
  card_tags_changed: boardEventObject<'card_tags_changed'>('CardTagsChangedBoardEvent', 'A card\'s tags changed; `tags` is the whole list after the change.'),
  reference_added: boardEventObject<'reference_added'>('ReferenceAddedBoardEvent', 'A reference was added to a card.'),
  reference_removed: boardEventObject<'reference_removed'>('ReferenceRemovedBoardEvent', 'A reference was removed from a card.'),
  comment_added: boardEventObject<'comment_added'>('CommentAddedBoardEvent', 'A comment was added to a card.'),
  comment_deleted: boardEventObject<'comment_deleted'>('CommentDeletedBoardEvent', 'A comment was deleted.'),
  run_status_changed: boardEventObject<'run_status_changed'>('RunStatusChangedBoardEvent', 'A run of the card changed status (the first is QUEUED: a run started).'),
  run_merged: boardEventObject<'run_merged'>('RunMergedBoardEvent', 'A run of the card was merged into the main checkout.'),
};

/** Every kind's GraphQL type; keyed by the vocabulary, so a new kind must be mapped here. */
const BOARD_EVENT_OBJECTS: { readonly [T in BoardEventType]: { readonly name: string } } = object;

builder.objectFields(object.card_created, (t) => ({
  title: t.string({ resolve: (e) => e.data.title }),
  column: t.field({ type: CardColumnEnum, resolve: (e) => e.data.column }),
  position: t.int({ resolve: (e) => e.data.position }),
}));
builder.objectFields(object.card_updated, (t) => ({
  fields: t.stringList({ description: 'The fields that changed: `title`, `description`.', resolve: (e) => e.data.fields }),
  title: t.string({ description: 'The title after the change.', resolve: (e) => e.data.title }),
}));
builder.objectFields(object.card_moved, (t) => ({
  fromColumn: t.field({ type: CardColumnEnum, resolve: (e) => e.data.fromColumn }),
  fromPosition: t.int({ resolve: (e) => e.data.fromPosition }),
  column: t.field({ type: CardColumnEnum, resolve: (e) => e.data.column }),
  position: t.int({ resolve: (e) => e.data.position }),
}));
builder.objectFields(object.card_deleted, (t) => ({
  column: t.field({ type: CardColumnEnum, resolve: (e) => e.data.column }),
  position: t.int({ resolve: (e) => e.data.position }),
}));
builder.objectFields(object.card_tags_changed, (t) => ({ tags: t.stringList({ resolve: (e) => e.data.tags }) }));
builder.objectFields(object.reference_added, (t) => ({
  referenceId: t.id({ resolve: (e) => encodeGlobalID('CardReference', e.data.referenceId) }),
  kind: t.field({ type: ReferenceKindEnum, resolve: (e) => e.data.kind }),
  target: t.string({ resolve: (e) => e.data.target }),
}));
builder.objectFields(object.reference_removed, (t) => ({ referenceId: t.id({ resolve: (e) => encodeGlobalID('CardReference', e.data.referenceId) }) }));
builder.objectFields(object.comment_added, (t) => ({
  commentId: t.id({ resolve: (e) => encodeGlobalID('Comment', e.data.commentId) }),
  author: t.string({ resolve: (e) => e.data.author }),
}));
builder.objectFields(object.comment_deleted, (t) => ({ commentId: t.id({ resolve: (e) => encodeGlobalID('Comment', e.data.commentId) }) }));
builder.objectFields(object.run_status_changed, (t) => ({
  runId: t.id({ resolve: (e) => encodeGlobalID('Run', e.data.runId) }),
  status: t.field({ type: RunStatusEnum, resolve: (e) => e.data.status }),
}));
builder.objectFields(object.run_merged, (t) => ({
  runId: t.id({ resolve: (e) => encodeGlobalID('Run', e.data.runId) }),
  mergedSha: t.string({ resolve: (e) => e.data.sha }),
  strategy: t.field({ type: MergeStrategyEnum, resolve: (e) => (e.data.strategy === 'SQUASH' ? 'SQUASH' : 'MERGE') }),
}));

builder.queryField('boardSeq', (t) =>
  t.int({
    description: 'The seq of the board\'s latest change (0 before any). Read it before loading the board, then follow `boardEvents(since: boardSeq)`: whatever changes in between is replayed, and the history before it is not.',
    resolve: (_root, _args, ctx) => ctx.orchestrator.boardLog.lastSeq(),
  }),
);

builder.subscriptionField('boardEvents', (t) =>
  t.field({
    type: BoardEventInterface,
    description: `Every change to the board with seq > since, in seq order, each exactly once: first the persisted history, then live changes, until you leave. Cards created, updated, moved and deleted, tags, references, comments, and runs changing status or being merged; a UI that applies them needs nothing else to stay current.

If the connection drops, resubscribe with the last seq you received as \`since\` (over SSE, an EventSource does it by itself with \`Last-Event-ID\`). A subscriber more than 1,000 events behind is ended with SUBSCRIBER_TOO_SLOW and \`extensions.resumeFrom\`. BAD_USER_INPUT for a \`since\` past the board's last seq.`,
    args: { since: t.arg.int({ defaultValue: 0 }) },
    subscribe: async (_root, { since }, ctx) => endWithError(await ctx.orchestrator.followBoardEvents(ctx.lastEventId ?? since ?? 0)),
    resolve: (event) => {
      if (event instanceof Error) throw event;
      return event;
    },
  }),
);

builder.subscriptionField('boardEventBatches', (t) =>
  t.field({
    type: [BoardEventInterface],
    // The cost limit prices a message at its largest batch; a literal `first` prices it lower.
    extensions: { listSize: MAX_BATCH },
    description: `boardEvents a list at a time, for catching up: the history in lists of up to \`first\` changes (at most ${MAX_BATCH.toLocaleString('en')}) per message, then the live changes waiting when each message is sent. The same since, order, exactly-once, SUBSCRIBER_TOO_SLOW and error rules as boardEvents; a list is never empty. Resubscribe with the last seq of the last list as \`since\`; over SSE a message's \`id\` is that seq. BAD_USER_INPUT for a \`first\` outside 1 to ${MAX_BATCH}.`,
    args: {
      since: t.arg.int({ defaultValue: 0 }),
      first: t.arg.int({ defaultValue: MAX_BATCH, description: `The most changes in one message, 1 to ${MAX_BATCH}.` }),
    },
    subscribe: async (_root, { since, first }, ctx) => endWithError(await ctx.orchestrator.followBoardEventBatches(ctx.lastEventId ?? since ?? 0, first ?? undefined)),
    resolve: (batch) => {
      if (batch instanceof Error) throw batch;
      return batch;
    },
  }),
);

/**
 * The run event vocabulary (orchestrator/run-events.ts) mapped once to GraphQL: the `RunEvent`
 * interface and one object type per kind. `RUN_EVENT_OBJECTS` is keyed by every kind, so tsc refuses
 * a kind without its GraphQL type.
 */
import { encodeGlobalID } from '@pothos/plugin-relay';
import { MAX_EVENT_DATA_BYTES } from '../orchestrator/event-log.js';
import type { RunEvent, RunEventOf, RunEventType } from '../orchestrator/run-events.js';
import { builder } from './builder.js';
import { CardColumnEnum } from './card.js';
import { RunStatusEnum } from './run.js';

export const RunEventInterface = builder.interfaceRef<RunEvent>('RunEvent').implement({
  description: `One entry of a run's event log, persisted before anyone sees it. \`seq\` is 1, 2, 3… per run with no gaps. Each kind is its own type: select \`__typename\` and the fields of the kinds you need. Payloads are capped at ${MAX_EVENT_DATA_BYTES / 1024} KiB; an event whose payload was cut, or that this server does not recognise, arrives as UnrecognizedEvent.`,
  fields: (t) => ({
    seq: t.exposeInt('seq'),
    runId: t.field({ type: 'ID', description: 'The run\'s global id.', resolve: (event) => encodeGlobalID('Run', event.runId) }),
    type: t.exposeString('type', { description: 'The stored kind, snake_case (e.g. `assistant_text`); `unrecognized` for UnrecognizedEvent.' }),
    createdAt: t.expose('createdAt', { type: 'DateTime' }),
  }),
  resolveType: (event) => RUN_EVENT_OBJECTS[event.type].name,
});

/** mergeRun's strategies; here because merge events carry one. */
export const MergeStrategyEnum = builder.enumType('MergeStrategy', {
  values: {
    MERGE: { description: 'A merge commit (`git merge --no-ff`).' },
    SQUASH: { description: 'One ordinary commit with all of the run\'s changes.' },
  },
});

const UserMessageModeEnum = builder.enumType('UserMessageMode', {
  values: { PROMPT: { description: 'The run\'s first message.' }, STEER: {}, FOLLOW_UP: {} },
});
const CompactionPhaseEnum = builder.enumType('CompactionPhase', { values: { START: { value: 'start' }, END: { value: 'end' } } as const });
const PlaytestStreamEnum = builder.enumType('PlaytestStream', { values: { STDOUT: { value: 'stdout' }, STDERR: { value: 'stderr' } } as const });
const PlanEntryStatusEnum = builder.enumType('PlanEntryStatus', { values: { PENDING: { value: 'pending' }, IN_PROGRESS: { value: 'in_progress' }, COMPLETED: { value: 'completed' } } as const });
const PlanEntryPriorityEnum = builder.enumType('PlanEntryPriority', { values: { HIGH: { value: 'high' }, MEDIUM: { value: 'medium' }, LOW: { value: 'low' } } as const });
const BoardChangeActionEnum = builder.enumType('BoardChangeAction', {
  values: {
    ADD_COMMENT: { value: 'addComment' },
    UPDATE_CARD: { value: 'updateCard' },
    ADD_CARD_TAGS: { value: 'addCardTags' },
    REMOVE_CARD_TAGS: { value: 'removeCardTags' },
    MOVE_CARD: { value: 'moveCard' },
  } as const,
});

const PlanEntry = builder.objectRef<RunEventOf<'plan_updated'>['data']['entries'][number]>('PlanEntry').implement({
  fields: (t) => ({
    content: t.exposeString('content'),
    status: t.field({ type: PlanEntryStatusEnum, resolve: (entry) => entry.status }),
    priority: t.field({ type: PlanEntryPriorityEnum, nullable: true, resolve: (entry) => entry.priority ?? null }),
  }),
});

/** One object type implementing RunEvent, for events of kind `T`. */
function eventObject<T extends RunEventType>(name: string, description: string) {
  // tsc cannot see that RunEventOf<T> extends RunEvent for a generic T; every T does.
  return builder.objectRef<RunEventOf<T>>(name).implement({ description, interfaces: [RunEventInterface] as never });
}

const object = {
  status: eventObject<'status'>('StatusChangedEvent', 'A status transition; the first event of every run, and the last status event is the run\'s outcome.'),
  user_message: eventObject<'user_message'>('UserMessageSentEvent', 'A message runboard sent to the agent.'),
  message_delivered: eventObject<'message_delivered'>('MessageDeliveredEvent', 'A message reached the agent\'s conversation (a steer arrives at its next model request).'),
  assistant_text: eventObject<'assistant_text'>('AssistantTextEvent', 'Answer text, coalesced; concatenated in seq order the texts are the answer.'),
  thinking: eventObject<'thinking'>('ThinkingEvent', 'Reasoning text, coalesced.'),
  tool_start: eventObject<'tool_start'>('ToolStartedEvent', 'The agent called a tool.'),
  tool_progress: eventObject<'tool_progress'>('ToolProgressEvent', 'A running tool\'s output so far (its tail), throttled.'),
  tool_end: eventObject<'tool_end'>('ToolEndedEvent', 'A tool finished.'),
  usage: eventObject<'usage'>('UsageEvent', 'Tokens and cost of one model answer.'),
  model_error: eventObject<'model_error'>('ModelErrorEvent', 'A model request failed.'),
  queue: eventObject<'queue'>('QueueChangedEvent', 'How many messages wait in the agent\'s own queue.'),
  retry: eventObject<'retry'>('RetryStartedEvent', 'The agent will retry a failed model request.'),
  retry_end: eventObject<'retry_end'>('RetryEndedEvent', 'The agent stopped retrying.'),
  agent_start: eventObject<'agent_start'>('AgentStartedEvent', 'The agent began working.'),
  agent_end: eventObject<'agent_end'>('AgentEndedEvent', 'The agent stopped working (it may start again on a queued message).'),
  compaction: eventObject<'compaction'>('CompactionEvent', 'The agent compacted its context.'),
  plan_updated: eventObject<'plan_updated'>('PlanUpdatedEvent', 'The agent\'s plan as it now stands.'),
  stderr: eventObject<'stderr'>('StderrEvent', 'A line the agent process wrote to stderr.'),
  warning: eventObject<'warning'>('WarningEvent', 'Something runboard wants the reader to know (lines not recorded, a failed cleanup).'),
  worktree_removed: eventObject<'worktree_removed'>('WorktreeRemovedEvent', 'cleanupOnFinish removed the run\'s worktree.'),
  merge: eventObject<'merge'>('MergeEvent', 'The outcome of mergeRun.'),
  board_change: eventObject<'board_change'>('AgentBoardChangeEvent', 'Something the run\'s agent changed on its card through the API; the fields its action touched are set.'),
  playtest_start: eventObject<'playtest_start'>('PlaytestStartedEvent', 'startPlaytest started the playtest command in the run\'s worktree.'),
  playtest_output: eventObject<'playtest_output'>('PlaytestOutputEvent', 'One line of playtest output (capped at 1,000 characters).'),
  playtest_dropped: eventObject<'playtest_dropped'>('PlaytestDroppedEvent', 'Output lines dropped by the rate limit since the last report.'),
  playtest_exit: eventObject<'playtest_exit'>('PlaytestExitedEvent', 'The playtest ended.'),
  unrecognized: eventObject<'unrecognized'>('UnrecognizedEvent', 'Anything else: something an agent said that has no kind of its own, or a stored event this server cannot read as its kind (its payload was cut, say).'),
};

/** Every kind's GraphQL type; keyed by the vocabulary, so a new kind must be mapped here. */
export const RUN_EVENT_OBJECTS: { readonly [T in RunEventType]: { readonly name: string } } = object;

builder.objectFields(object.status, (t) => ({
  status: t.field({ type: RunStatusEnum, resolve: (e) => e.data.status }),
  reason: t.string({ nullable: true, resolve: (e) => e.data.reason ?? null }),
  error: t.string({ nullable: true, resolve: (e) => e.data.error ?? null }),
  refinedFrom: t.field({ type: 'ID', nullable: true, description: 'For a refinement\'s QUEUED: the global id of the run it continues.', resolve: (e) => (e.data.refinedFrom ? encodeGlobalID('Run', e.data.refinedFrom) : null) }),
}));
builder.objectFields(object.user_message, (t) => ({
  mode: t.field({ type: UserMessageModeEnum, resolve: (e) => e.data.mode }),
  text: t.string({ resolve: (e) => e.data.text }),
}));
builder.objectFields(object.message_delivered, (t) => ({ text: t.string({ resolve: (e) => e.data.text }) }));
builder.objectFields(object.assistant_text, (t) => ({ text: t.string({ resolve: (e) => e.data.text }) }));
builder.objectFields(object.thinking, (t) => ({ text: t.string({ resolve: (e) => e.data.text }) }));
builder.objectFields(object.tool_start, (t) => ({
  toolCallId: t.string({ resolve: (e) => e.data.toolCallId }),
  tool: t.string({ resolve: (e) => e.data.tool }),
  args: t.field({ type: 'JSON', nullable: true, description: 'The arguments as the agent gave them, or a JSON preview string when over 2,000 characters.', resolve: (e) => e.data.args ?? null }),
}));
builder.objectFields(object.tool_progress, (t) => ({
  toolCallId: t.string({ resolve: (e) => e.data.toolCallId }),
  tool: t.string({ resolve: (e) => e.data.tool }),
  output: t.string({ resolve: (e) => e.data.output }),
}));
builder.objectFields(object.tool_end, (t) => ({
  toolCallId: t.string({ resolve: (e) => e.data.toolCallId }),
  tool: t.string({ resolve: (e) => e.data.tool }),
  isError: t.boolean({ resolve: (e) => e.data.isError }),
  output: t.string({ description: 'The output\'s tail, capped at 4,000 characters.', resolve: (e) => e.data.output }),
}));
builder.objectFields(object.usage, (t) => ({
  inputTokens: t.int({ resolve: (e) => e.data.input }),
  outputTokens: t.int({ resolve: (e) => e.data.output }),
  cacheReadTokens: t.int({ resolve: (e) => e.data.cacheRead ?? 0 }),
  cacheWriteTokens: t.int({ resolve: (e) => e.data.cacheWrite ?? 0 }),
  totalTokens: t.int({ resolve: (e) => e.data.totalTokens }),
  costUsd: t.float({ description: 'In US dollars, as the agent reports it (0 when it does not).', resolve: (e) => e.data.cost }),
}));
builder.objectFields(object.model_error, (t) => ({ message: t.string({ resolve: (e) => e.data.message }) }));
builder.objectFields(object.queue, (t) => ({
  steering: t.int({ resolve: (e) => e.data.steering }),
  followUp: t.int({ resolve: (e) => e.data.followUp }),
}));
builder.objectFields(object.retry, (t) => ({
  attempt: t.int({ nullable: true, resolve: (e) => e.data.attempt ?? null }),
  maxAttempts: t.int({ nullable: true, resolve: (e) => e.data.maxAttempts ?? null }),
  delayMs: t.int({ nullable: true, resolve: (e) => e.data.delayMs ?? null }),
  error: t.string({ nullable: true, resolve: (e) => e.data.error || null }),
}));
builder.objectFields(object.retry_end, (t) => ({
  success: t.boolean({ resolve: (e) => e.data.success }),
  attempt: t.int({ nullable: true, resolve: (e) => e.data.attempt ?? null }),
  error: t.string({ nullable: true, resolve: (e) => e.data.error ?? null }),
}));
builder.objectFields(object.compaction, (t) => ({
  phase: t.field({ type: CompactionPhaseEnum, resolve: (e) => e.data.phase }),
  reason: t.string({ nullable: true, resolve: (e) => e.data.reason ?? null }),
}));
builder.objectFields(object.plan_updated, (t) => ({
  // A plan is a short list inside one capped event: priced as 10 entries, not a page of 100 (plugins/use-limits.ts).
  entries: t.field({ type: [PlanEntry], extensions: { listSize: 10 }, resolve: (e) => e.data.entries }),
}));
builder.objectFields(object.stderr, (t) => ({ line: t.string({ resolve: (e) => e.data.line }) }));
builder.objectFields(object.warning, (t) => ({ message: t.string({ resolve: (e) => e.data.message }) }));
builder.objectFields(object.worktree_removed, (t) => ({
  branchDeleted: t.boolean({ resolve: (e) => e.data.branchDeleted }),
  unmergedCommits: t.int({ resolve: (e) => e.data.unmergedCommits }),
}));
builder.objectFields(object.merge, (t) => ({
  ok: t.boolean({ resolve: (e) => e.data.ok }),
  mergedSha: t.string({ nullable: true, resolve: (e) => e.data.sha ?? null }),
  strategy: t.field({ type: MergeStrategyEnum, resolve: (e) => e.data.strategy }),
  conflictingPaths: t.stringList({ description: 'At most 100.', resolve: (e) => e.data.conflictingPaths ?? [] }),
  message: t.string({ resolve: (e) => e.data.message ?? '' }),
  interrupted: t.boolean({
    description: 'The server stopped while this merge was updating main; the next start left main merged (ok) or as it was, and recorded this.',
    resolve: (e) => e.data.interrupted ?? false,
  }),
}));
builder.objectFields(object.board_change, (t) => ({
  action: t.field({ type: BoardChangeActionEnum, resolve: (e) => e.data.action }),
  commentId: t.field({ type: 'ID', nullable: true, resolve: (e) => (e.data.commentId ? encodeGlobalID('Comment', e.data.commentId) : null) }),
  body: t.string({ nullable: true, description: 'A comment\'s body (its first 2,000 characters).', resolve: (e) => e.data.body ?? null }),
  description: t.string({ nullable: true, resolve: (e) => e.data.description ?? null }),
  column: t.field({ type: CardColumnEnum, nullable: true, resolve: (e) => (e.data.column as (typeof CardColumnEnum)['$inferType'] | undefined) ?? null }),
  position: t.int({ nullable: true, resolve: (e) => e.data.position ?? null }),
  tags: t.stringList({ nullable: true, resolve: (e) => e.data.tags ?? null }),
}));
builder.objectFields(object.playtest_start, (t) => ({
  command: t.string({ resolve: (e) => e.data.command }),
  pid: t.int({ nullable: true, resolve: (e) => e.data.pid ?? null }),
}));
builder.objectFields(object.playtest_output, (t) => ({
  stream: t.field({ type: PlaytestStreamEnum, resolve: (e) => e.data.stream }),
  line: t.string({ resolve: (e) => e.data.line }),
}));
builder.objectFields(object.playtest_dropped, (t) => ({ count: t.int({ resolve: (e) => e.data.count }) }));
builder.objectFields(object.playtest_exit, (t) => ({
  exitCode: t.int({ nullable: true, resolve: (e) => e.data.exitCode ?? null }),
  signal: t.string({ nullable: true, resolve: (e) => e.data.signal ?? null }),
  droppedLines: t.int({ resolve: (e) => e.data.droppedLines ?? 0 }),
  stopped: t.boolean({ description: 'stopPlaytest (or the server stopping) ended it.', resolve: (e) => e.data.stopped }),
  reason: t.string({ nullable: true, resolve: (e) => e.data.reason ?? null }),
  error: t.string({ nullable: true, description: 'Why the command could not start.', resolve: (e) => e.data.error ?? null }),
}));
builder.objectFields(object.unrecognized, (t) => ({
  originalType: t.string({ resolve: (e) => e.data.originalType }),
  preview: t.string({ description: 'The payload as JSON, at most 2,000 characters.', resolve: (e) => e.data.preview }),
}));

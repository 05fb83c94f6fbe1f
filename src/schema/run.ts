import { encodeGlobalID } from '@pothos/plugin-relay';
import { MAX_EVENTS_PER_READ } from '../orchestrator/event-log.js';
import { builder } from './builder.js';
import { Card } from './card.js';
import { orNotFound } from './errors.js';
import { RunEventInterface } from './run-events.js';

export const RunStatusEnum = builder.enumType('RunStatus', {
  values: {
    QUEUED: { description: 'Waiting for a free slot (RUNBOARD_MAX_CONCURRENT_RUNS); runs start in order.' },
    STARTING: { description: 'Creating the worktree and spawning the agent.' },
    RUNNING: { description: 'The agent is working.' },
    SUCCEEDED: { description: 'The agent finished its work with nothing pending.' },
    FAILED: { description: 'The agent or the model failed; see `error`, `exitCode`, `exitSignal`.' },
    STOPPED: { description: 'Stopped by a person (stopRun).' },
    INTERRUPTED: { description: 'The server stopped while the run was active. Its worktree is kept, so it can be refined.' },
  },
});

export const Run = builder.prismaNode('Run', {
  id: { field: 'id' },
  nullable: true, // node(id) answers null for an unknown id, as Relay expects
  description: 'One agent working one card in one worktree.',
  fields: (t) => ({
    card: t.relation('card'),
    status: t.expose('status', { type: RunStatusEnum }),
    prompt: t.exposeString('prompt', { description: 'The first message the agent received.' }),
    agent: t.exposeString('agent', { description: 'The configured agent it runs (see Query.agents).' }),
    agentCommand: t.exposeString('agentCommand', { description: 'The agent\'s command line, for display.' }),
    useWorktree: t.exposeBoolean('useWorktree', { description: 'False for a run that worked in the main checkout.' }),
    cleanupOnFinish: t.exposeBoolean('cleanupOnFinish'),
    branch: t.exposeString('branch', { nullable: true, description: 'The run\'s own branch; null for a run in the main checkout.' }),
    baseBranch: t.exposeString('baseBranch', { nullable: true, description: 'The main checkout\'s branch when the worktree was made.' }),
    baseSha: t.exposeString('baseSha', { nullable: true, description: 'The commit the branch started from.' }),
    worktreePath: t.exposeString('worktreePath', { nullable: true }),
    ownsWorktree: t.exposeBoolean('ownsWorktree', { description: 'False for a refinement, which works in its owner\'s worktree and never removes it.' }),
    worktreeMissing: t.exposeBoolean('worktreeMissing', { description: 'The worktree no longer exists: removed by cleanupOnFinish, or found deleted behind runboard\'s back.' }),
    agentSession: t.exposeString('agentSession', { nullable: true, description: 'The agent\'s session, resumed by a refinement: pi\'s session file, Codex\'s thread file, or the session id of other agents.' }),
    sessionFile: t.exposeString('agentSession', { nullable: true, deprecationReason: 'Use agentSession: not every agent keeps its session in a file.' }),
    refinedFrom: t.relation('refinedFrom', { nullable: true }),
    refinements: t.relation('refinements', { query: { orderBy: [{ createdAt: 'asc' }, { id: 'asc' }] } }),
    exitCode: t.exposeInt('exitCode', { nullable: true, description: 'Set when a FAILED run\'s agent exited by itself.' }),
    exitSignal: t.exposeString('exitSignal', { nullable: true }),
    error: t.exposeString('error', { nullable: true, description: 'Why a run FAILED: the model error, or how the agent exited with its last stderr lines.' }),
    mergedSha: t.exposeString('mergedSha', { nullable: true, description: 'The commit `mergeRun` made on the main checkout.' }),
    lastSeq: t.exposeInt('lastSeq', { description: 'The highest event seq so far (0 before the first event).' }),
    createdAt: t.expose('createdAt', { type: 'DateTime' }),
    startedAt: t.expose('startedAt', { type: 'DateTime', nullable: true }),
    endedAt: t.expose('endedAt', { type: 'DateTime', nullable: true }),
    events: t.field({
      type: [RunEventInterface],
      description: `Events with seq > since, oldest first, at most \`first\` (max ${MAX_EVENTS_PER_READ}). Page by passing the last seq seen as \`since\`.`,
      args: {
        since: t.arg.int({ defaultValue: 0 }),
        first: t.arg.int({ defaultValue: 100 }),
      },
      select: { id: true },
      resolve: (run, { since, first }, ctx) => ctx.orchestrator.eventLog.read(run.id, since ?? 0, first ?? 100),
    }),
  }),
});

builder.queryFields((t) => ({
  currentRun: t.prismaField({
    type: Run,
    nullable: true,
    description: 'For an agent calling with its run token: its own run (and through it, its card). Null for the operator.',
    resolve: (query, _root, _args, ctx) => (ctx.principal.kind === 'agent' ? ctx.prisma.run.findUnique({ ...query, where: { id: ctx.principal.runId } }) : null),
  }),
  run: t.prismaField({
    type: Run,
    description: 'One run. Unknown ids are NOT_FOUND.',
    args: { id: t.arg.globalID({ for: Run, required: true }) },
    resolve: (query, _root, { id }, ctx) => orNotFound('Run', id.id, ctx.prisma.run.findUnique({ ...query, where: { id: id.id } })),
  }),
  runs: t.prismaConnection({
    type: Run,
    cursor: 'id',
    description: 'Runs, newest first, optionally for one card and in one status.',
    args: {
      cardId: t.arg.globalID({ for: Card }),
      status: t.arg({ type: RunStatusEnum }),
    },
    resolve: (query, _root, { cardId, status }, ctx) =>
      ctx.prisma.run.findMany({ ...query, where: { cardId: cardId?.id, status: status ?? undefined }, orderBy: [{ createdAt: 'desc' }, { id: 'desc' }] }),
  }),
}));

const StartRunInput = builder.inputType('StartRunInput', {
  fields: (t) => ({
    cardId: t.globalID({ for: Card, required: true }),
    prompt: t.string({ description: 'Defaults to the card\'s agentPrompt. Required for a refinement: it is the feedback.' }),
    useWorktree: t.boolean({ defaultValue: true, description: 'False works in the main checkout; at most one such run may be active.' }),
    cleanupOnFinish: t.boolean({ defaultValue: false, description: 'Remove the run\'s own worktree when it settles; a branch with unmerged commits is kept.' }),
    refineRunId: t.globalID({ for: Run, description: 'Continue this settled run\'s agent session in its worktree. CONFLICT says why a run cannot be refined, or when `agent` names another agent than the refined run\'s.' }),
    agent: t.string({ description: 'The agent to run, by name (see Query.agents). Defaults to a refinement\'s own agent, else the default agent. BAD_USER_INPUT, naming the installed agents, when unknown or not installed.' }),
  }),
});

const MessageModeEnum = builder.enumType('MessageMode', {
  values: {
    STEER: { description: 'Delivered at the agent\'s next model request (a running tool or answer is not cut).' },
    FOLLOW_UP: { description: 'Delivered when the agent would otherwise stop.' },
  },
});

builder.mutationFields((t) => ({
  startRun: t.prismaField({
    type: Run,
    description: 'Starts an agent on a card in a new worktree (QUEUED until a slot is free).',
    args: { input: t.arg({ type: StartRunInput, required: true }) },
    resolve: async (query, _root, { input }, ctx) => {
      const id = await ctx.orchestrator.runs.start({ ...input, cardId: input.cardId.id, refineRunId: input.refineRunId?.id });
      return ctx.prisma.run.findUniqueOrThrow({ ...query, where: { id } });
    },
  }),
  sendRunMessage: t.prismaField({
    type: Run,
    description: 'Steers or follows up an active run. CONFLICT when the run is not active.',
    args: {
      runId: t.arg.globalID({ for: Run, required: true }),
      text: t.arg.string({ required: true }),
      mode: t.arg({ type: MessageModeEnum, required: true }),
    },
    resolve: async (query, _root, { runId, text, mode }, ctx) => {
      await ctx.orchestrator.runs.sendMessage(runId.id, text, mode);
      return ctx.prisma.run.findUniqueOrThrow({ ...query, where: { id: runId.id } });
    },
  }),
  stopRun: t.prismaField({
    type: Run,
    description: 'Aborts the agent, ends its process tree (SIGKILL after a grace period) and returns the STOPPED run. CONFLICT when not active.',
    args: { runId: t.arg.globalID({ for: Run, required: true }) },
    resolve: async (query, _root, { runId }, ctx) => {
      await ctx.orchestrator.runs.stop(runId.id);
      return ctx.prisma.run.findUniqueOrThrow({ ...query, where: { id: runId.id } });
    },
  }),
  deleteRun: t.field({
    type: 'ID',
    description: 'Deletes a settled run and its events, and its worktree if it owns it (a branch with unmerged commits is kept). CONFLICT while active.',
    args: { runId: t.arg.globalID({ for: Run, required: true }) },
    resolve: async (_root, { runId }, ctx) => {
      await ctx.orchestrator.runs.delete(runId.id);
      return encodeGlobalID('Run', runId.id);
    },
  }),
}));

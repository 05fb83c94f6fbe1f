import { builder } from './builder.js';

export const RunStatusEnum = builder.enumType('RunStatus', {
  values: {
    QUEUED: { description: 'Waiting for a free slot.' },
    STARTING: { description: 'Creating the worktree and spawning the agent.' },
    RUNNING: { description: 'The agent is working.' },
    SUCCEEDED: { description: 'The agent finished its work.' },
    FAILED: { description: 'The agent or the model failed; see `error`.' },
    STOPPED: { description: 'Stopped by a person.' },
    INTERRUPTED: { description: 'The server stopped while the run was active.' },
  },
});

export const Run = builder.prismaNode('Run', {
  id: { field: 'id' },
  nullable: true, // node(id) answers null for an unknown id, as Relay expects
  description: 'One agent working one card in one worktree.',
  fields: (t) => ({
    card: t.relation('card'),
    status: t.expose('status', { type: RunStatusEnum }),
    prompt: t.exposeString('prompt'),
    branch: t.exposeString('branch', { nullable: true, description: 'The run\'s own branch; null for a run in the main checkout.' }),
    baseBranch: t.exposeString('baseBranch', { nullable: true, description: 'The main checkout\'s branch when the worktree was made.' }),
    baseSha: t.exposeString('baseSha', { nullable: true, description: 'The commit the branch started from.' }),
    worktreePath: t.exposeString('worktreePath', { nullable: true }),
    ownsWorktree: t.exposeBoolean('ownsWorktree', { description: 'False for a refinement, which works in its owner\'s worktree.' }),
    worktreeMissing: t.exposeBoolean('worktreeMissing', { description: 'The worktree was found deleted behind runboard\'s back (checked at start-up and whenever runboard reads it).' }),
    mergedSha: t.exposeString('mergedSha', { nullable: true, description: 'The commit `mergeRun` made on the main checkout.' }),
    createdAt: t.expose('createdAt', { type: 'DateTime' }),
    startedAt: t.expose('startedAt', { type: 'DateTime', nullable: true }),
    endedAt: t.expose('endedAt', { type: 'DateTime', nullable: true }),
  }),
});

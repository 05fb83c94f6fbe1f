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
    branch: t.exposeString('branch', { nullable: true }),
    createdAt: t.expose('createdAt', { type: 'DateTime' }),
    startedAt: t.expose('startedAt', { type: 'DateTime', nullable: true }),
    endedAt: t.expose('endedAt', { type: 'DateTime', nullable: true }),
  }),
});

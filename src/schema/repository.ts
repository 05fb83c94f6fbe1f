import * as git from '../orchestrator/git.js';
import { builder, GIT_FIELD } from './builder.js';

const RepositoryStateEnum = builder.enumType('RepositoryState', {
  description: 'An operation left half done in the main checkout.',
  values: ['CLEAN', 'MERGING', 'REBASING', 'CHERRY_PICKING', 'REVERTING'] as const,
});

const DirtyPaths = builder.objectRef<git.DirtyPaths>('DirtyPaths').implement({
  description: `Changed paths of the main checkout; each list holds at most ${git.MAX_LISTED_PATHS}, the counts are complete.`,
  fields: (t) => ({
    staged: t.exposeStringList('staged'),
    unstaged: t.exposeStringList('unstaged'),
    untracked: t.exposeStringList('untracked', { description: 'An untracked directory is listed once, as `dir/`.' }),
    conflicted: t.exposeStringList('conflicted'),
    stagedCount: t.int({ resolve: (d) => d.counts.staged }),
    unstagedCount: t.int({ resolve: (d) => d.counts.unstaged }),
    untrackedCount: t.int({ resolve: (d) => d.counts.untracked }),
    conflictedCount: t.int({ resolve: (d) => d.counts.conflicted }),
  }),
});

const Repository = builder.objectRef<git.RepositoryStatus>('Repository').implement({
  description: 'The main checkout runboard orchestrates, read live from git.',
  fields: (t) => ({
    root: t.exposeString('root'),
    branch: t.exposeString('branch', { nullable: true, description: 'Null when HEAD is detached.' }),
    headSha: t.exposeString('headSha'),
    state: t.expose('state', { type: RepositoryStateEnum }),
    isDirty: t.boolean({
      description: 'Tracked files are changed or conflicted (untracked files alone do not count).',
      resolve: ({ dirty: { counts } }) => counts.staged + counts.unstaged + counts.conflicted > 0,
    }),
    dirty: t.expose('dirty', { type: DirtyPaths }),
  }),
});

builder.queryField('repository', (t) =>
  t.field({ ...GIT_FIELD, type: Repository, resolve: (_root, _args, ctx) => ctx.orchestrator.workspaces.repositoryStatus() }),
);

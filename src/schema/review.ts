/** What a run has done, straight from git: commits, diffs, uncommitted work, and merging it. */
import * as git from '../orchestrator/git.js';
import { WORKSPACE_SELECT } from '../orchestrator/workspaces.js';
import { builder, GIT_FIELD } from './builder.js';
import { MergeStrategyEnum } from './run-events.js';
import { Run } from './run.js';

const Commit = builder.objectRef<git.CommitInfo>('Commit').implement({
  fields: (t) => ({
    sha: t.exposeString('sha'),
    shortSha: t.string({ resolve: (c) => c.sha.slice(0, 12) }),
    subject: t.exposeString('subject'),
    body: t.exposeString('body'),
    authorName: t.exposeString('authorName'),
    authorEmail: t.exposeString('authorEmail'),
    authoredAt: t.expose('authoredAt', { type: 'DateTime' }),
  }),
});

const FileChangeStatusEnum = builder.enumType('FileChangeStatus', {
  values: ['ADDED', 'MODIFIED', 'DELETED', 'RENAMED', 'COPIED', 'TYPE_CHANGED'] as const,
});

const FileChange = builder.objectRef<git.FileChange>('FileChange').implement({
  fields: (t) => ({
    path: t.exposeString('path'),
    previousPath: t.exposeString('previousPath', { nullable: true, description: 'The source of a rename or copy.' }),
    status: t.expose('status', { type: FileChangeStatusEnum }),
    additions: t.exposeInt('additions'),
    deletions: t.exposeInt('deletions'),
    binary: t.exposeBoolean('binary', { description: 'Binary files count no added or deleted lines.' }),
  }),
});

const DiffStat = builder.objectRef<git.DiffTotals>('DiffStat').implement({
  fields: (t) => ({
    filesChanged: t.exposeInt('filesChanged'),
    insertions: t.exposeInt('insertions'),
    deletions: t.exposeInt('deletions'),
  }),
});

/** What Diff and UncommittedChanges share: the files, their totals, and a capped patch. */
const Changes = builder.interfaceRef<git.DiffResult>('Changes').implement({
  fields: (t) => ({
    stat: t.expose('totals', { type: DiffStat }),
    files: t.expose('files', { type: [FileChange] }),
    patch: t.exposeString('patch', { description: 'Unified diff, cut at a line boundary to fit `maxBytes`.' }),
    truncated: t.exposeBoolean('truncated'),
    patchBytes: t.exposeInt('patchBytes', { description: 'UTF-8 length of `patch`.' }),
  }),
});

const Diff = builder.objectRef<git.DiffResult>('Diff').implement({
  description: 'A run\'s committed changes.',
  interfaces: [Changes],
  isTypeOf: (value) => !('untrackedOmitted' in (value as object)),
});

const UncommittedChanges = builder.objectRef<git.UncommittedChanges>('UncommittedChanges').implement({
  description: `Work in the worktree not yet committed. Untracked files are listed (at most ${git.MAX_LISTED_PATHS}) but not in the patch.`,
  interfaces: [Changes],
  isTypeOf: (value) => 'untrackedOmitted' in (value as object),
  fields: (t) => ({
    untrackedOmitted: t.exposeInt('untrackedOmitted'),
  }),
});

const FileDiff = builder.objectRef<git.FileDiff>('FileDiff').implement({
  fields: (t) => ({
    file: t.expose('file', { type: FileChange }),
    patch: t.exposeString('patch'),
    truncated: t.exposeBoolean('truncated'),
    patchBytes: t.exposeInt('patchBytes'),
  }),
});

const AheadBehind = builder.objectRef<{ ahead: number; behind: number }>('AheadBehind').implement({
  fields: (t) => ({
    ahead: t.exposeInt('ahead', { description: 'Commits on the run\'s branch that its base branch lacks.' }),
    behind: t.exposeInt('behind', { description: 'Commits the base branch gained since the run started.' }),
  }),
});

const MAX_BYTES = { description: `Patch size cap in bytes. Default ${git.DEFAULT_PATCH_BYTES} (1 MiB), at most ${git.MAX_PATCH_BYTES} (16 MiB).` };

builder.prismaObjectFields(Run, (t) => ({
  commits: t.field({
    ...GIT_FIELD,
    type: [Commit],
    nullable: true,
    description: `Commits on the run's branch since it started, newest first. Null for a run without a branch of its own.`,
    args: { first: t.arg.int({ defaultValue: 100, description: `At most ${git.MAX_COMMITS}.` }) },
    select: WORKSPACE_SELECT,
    resolve: (run, { first }, ctx) => ctx.orchestrator.workspaces.commits(run, first ?? undefined),
  }),
  aheadBehind: t.field({
    ...GIT_FIELD,
    type: AheadBehind,
    nullable: true,
    select: WORKSPACE_SELECT,
    resolve: (run, _args, ctx) => ctx.orchestrator.workspaces.aheadBehind(run),
  }),
  diff: t.field({
    ...GIT_FIELD,
    type: Diff,
    nullable: true,
    description: 'The run\'s committed changes against the commit it started from (so later commits on main never show).',
    args: { maxBytes: t.arg.int(MAX_BYTES) },
    select: WORKSPACE_SELECT,
    resolve: (run, { maxBytes }, ctx) => ctx.orchestrator.workspaces.diff(run, maxBytes),
  }),
  fileDiff: t.field({
    ...GIT_FIELD,
    type: FileDiff,
    nullable: true,
    description: 'The patch of one file of `diff`, by its path (or, for a rename, its previous path). NOT_FOUND if the run did not change it.',
    args: { path: t.arg.string({ required: true }), maxBytes: t.arg.int(MAX_BYTES) },
    select: WORKSPACE_SELECT,
    resolve: (run, { path, maxBytes }, ctx) => ctx.orchestrator.workspaces.fileDiff(run, path, maxBytes),
  }),
  uncommitted: t.field({
    ...GIT_FIELD,
    type: UncommittedChanges,
    nullable: true,
    description: 'Uncommitted work in the run\'s worktree. Null when it has none of its own or the worktree is gone (see `worktreeMissing`).',
    args: { maxBytes: t.arg.int(MAX_BYTES) },
    select: WORKSPACE_SELECT,
    resolve: (run, { maxBytes }, ctx) => ctx.orchestrator.workspaces.uncommitted(run, maxBytes),
  }),
  uncommittedUnavailable: t.string({
    ...GIT_FIELD,
    nullable: true,
    description: 'Why `uncommitted` is null: the run has no worktree of its own, its worktree is gone, or (in a cluster) no worker holds the run, so its uncommitted work is on a disk no node can read. Null when `uncommitted` answers.',
    select: WORKSPACE_SELECT,
    resolve: (run, _args, ctx) => ctx.orchestrator.workspaces.uncommittedUnavailable(run),
  }),
}));

const MergeRunResult = builder.objectRef<{ ok: boolean; sha: string | null; conflictingPaths: string[]; message: string; runId: string }>('MergeRunResult').implement({
  description: 'When `ok` is false the main checkout was not touched.',
  fields: (t) => ({
    ok: t.exposeBoolean('ok'),
    mergedSha: t.exposeString('sha', { nullable: true }),
    conflictingPaths: t.exposeStringList('conflictingPaths'),
    message: t.exposeString('message'),
    run: t.prismaField({
      type: Run,
      resolve: (query, result, _args, ctx) => ctx.prisma.run.findUniqueOrThrow({ ...query, where: { id: result.runId } }),
    }),
  }),
});

builder.mutationField('mergeRun', (t) =>
  t.field({
    type: MergeRunResult,
    description:
      'Merges a settled run\'s branch into the main checkout, which must be on the branch the run started from. CONFLICT, naming the files, when main has uncommitted changes to tracked files or is mid-operation, or the run\'s worktree has uncommitted changes; CONFLICT, having changed nothing, when another git process holds main\'s lock ("repository busy") or a file the merge writes changed meanwhile. A conflicting merge returns ok: false with the paths, and main is never touched.',
    args: {
      runId: t.arg.globalID({ for: Run, required: true }),
      strategy: t.arg({ type: MergeStrategyEnum, defaultValue: 'MERGE', required: true }),
    },
    resolve: (_root, { runId, strategy }, ctx) => ctx.orchestrator.mergeRun(runId.id, strategy),
  }),
);

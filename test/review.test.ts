/** A run's work read from git and merged, over GraphQL, on real repositories. Runs are made through the orchestrator's own API. */
import { existsSync } from 'node:fs';
import { readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { encodeGlobalID } from '@pothos/plugin-relay';
import { git, makeRepo, removeDirs, tempDir } from './helpers/repo.js';
import { startTestServer, type TestServer } from './helpers/server.js';

let t: TestServer;
beforeAll(async () => {
  t = await startTestServer();
});
afterAll(() => t?.close());

/** A card and a settled run with its own worktree, as startRun will make them. */
async function runWithWorktree(title: string, server = t) {
  const { createCard } = await server.ok(`mutation($title: String!) { createCard(input: { title: $title, description: "Make it so." }) { id } }`, { title });
  const cardId = Buffer.from(createCard.id, 'base64').toString().split(':')[1];
  const run = await server.server.orchestrator.db.client.run.create({ data: { cardId, prompt: 'p', status: 'SUCCEEDED' } });
  const worktree = await server.server.orchestrator.workspaces.create(run.id);
  return { runId: encodeGlobalID('Run', run.id), dbId: run.id, worktree };
}

async function commitIn(dir: string, files: Record<string, string>, message: string) {
  for (const [name, content] of Object.entries(files)) await writeFile(path.join(dir, name), content);
  await git(dir, 'add', '-A');
  await git(dir, 'commit', '-q', '-m', message);
}

const RUN_REVIEW = `query($id: ID!, $max: Int) { node(id: $id) { ... on Run {
  branch baseBranch worktreePath ownsWorktree worktreeMissing mergedSha
  commits { sha subject body authorName }
  aheadBehind { ahead behind }
  diff(maxBytes: $max) { stat { filesChanged insertions deletions } files { path previousPath status additions deletions binary } patch truncated }
  uncommitted { stat { filesChanged } files { path status } }
} } }`;

test('a run\'s branch, commits, diff and uncommitted work come from git', async () => {
  const { runId, worktree } = await runWithWorktree('Add a jump --upload-pack=x');
  expect(worktree.path.startsWith(path.join(t.dataDir, 'worktrees') + path.sep)).toBe(true);
  await commitIn(worktree.path, { 'jump.txt': 'jump\nhigher\n' }, 'Add jump\n\nBecause players asked.');
  await writeFile(path.join(worktree.path, 'notes.txt'), 'not committed\n');

  const { node } = await t.ok(RUN_REVIEW, { id: runId });
  expect(node.branch).toMatch(/^runboard\/add-a-jump-upload-pack-x-[a-z0-9]{1,8}$/);
  expect(node).toMatchObject({ baseBranch: 'main', worktreePath: worktree.path, ownsWorktree: true, worktreeMissing: false, mergedSha: null });
  expect(node.commits).toEqual([{ sha: expect.stringMatching(/^[0-9a-f]{40}$/), subject: 'Add jump', body: 'Because players asked.', authorName: 'Test User' }]);
  expect(node.aheadBehind).toEqual({ ahead: 1, behind: 0 });
  expect(node.diff.stat).toEqual({ filesChanged: 1, insertions: 2, deletions: 0 });
  expect(node.diff.files).toEqual([{ path: 'jump.txt', previousPath: null, status: 'ADDED', additions: 2, deletions: 0, binary: false }]);
  expect(node.diff.patch).toContain('+higher');
  expect(node.uncommitted).toEqual({ stat: { filesChanged: 1 }, files: [{ path: 'notes.txt', status: 'ADDED' }] });

  const small = await t.ok(RUN_REVIEW, { id: runId, max: 40 });
  expect(small.node.diff.truncated).toBe(true);
  expect(Buffer.byteLength(small.node.diff.patch)).toBeLessThanOrEqual(40);
  const tooBig = await t.gql(RUN_REVIEW, { id: runId, max: 1 << 30 });
  expect(tooBig.errors?.[0].extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'maxBytes' });

  const file = await t.ok(`query($id: ID!) { node(id: $id) { ... on Run { fileDiff(path: "jump.txt") { file { status } patch } } } }`, { id: runId });
  expect(file.node.fileDiff.patch).toMatch(/^diff --git a\/jump.txt b\/jump.txt/);
  const outside = await t.gql(`query($id: ID!) { node(id: $id) { ... on Run { fileDiff(path: "../../etc/passwd") { patch } } } }`, { id: runId });
  expect(outside.errors?.[0].extensions?.code).toBe('BAD_USER_INPUT');
});

test('mergeRun merges into main and records the commit; refusals are CONFLICT and leave main alone', async () => {
  const { runId, dbId, worktree } = await runWithWorktree('Feature one');
  await commitIn(worktree.path, { 'feature.txt': 'one\n' }, 'Feature one');
  const MERGE = `mutation($id: ID!, $s: MergeStrategy!) { mergeRun(runId: $id, strategy: $s) { ok mergedSha conflictingPaths message run { mergedSha } } }`;

  await writeFile(path.join(t.repo, 'README.md'), 'edited on main\n');
  const dirty = await t.gql(MERGE, { id: runId, s: 'MERGE' });
  expect(dirty.errors?.[0].extensions).toMatchObject({ code: 'CONFLICT', paths: ['README.md'] });
  await git(t.repo, 'checkout', '--', 'README.md');

  await t.server.orchestrator.db.client.run.update({ where: { id: dbId }, data: { status: 'RUNNING' } });
  expect((await t.gql(MERGE, { id: runId, s: 'MERGE' })).errors?.[0].extensions?.code).toBe('CONFLICT');
  await t.server.orchestrator.db.client.run.update({ where: { id: dbId }, data: { status: 'SUCCEEDED' } });

  const { mergeRun } = await t.ok(MERGE, { id: runId, s: 'MERGE' });
  expect(mergeRun).toMatchObject({ ok: true, conflictingPaths: [] });
  expect(mergeRun.run.mergedSha).toBe(mergeRun.mergedSha);
  expect(await readFile(path.join(t.repo, 'feature.txt'), 'utf8')).toBe('one\n');
  expect(await git(t.repo, 'rev-parse', 'HEAD')).toBe(mergeRun.mergedSha);
  expect((await git(t.repo, 'log', '-1', '--format=%P')).split(' ')).toHaveLength(2);
  expect(await git(t.repo, 'log', '-1', '--format=%B')).toContain('Merge "Feature one"');
  const { run: logged } = await t.ok(`query($id: ID!) { run(id: $id) { events { __typename ... on MergeEvent { ok mergedSha strategy } } } }`, { id: runId });
  expect(logged.events.at(-1)).toEqual({ __typename: 'MergeEvent', ok: true, mergedSha: mergeRun.mergedSha, strategy: 'MERGE' });

  const { repository } = await t.ok(`{ repository { root branch headSha state isDirty dirty { untrackedCount } } }`);
  expect(repository).toMatchObject({ branch: 'main', headSha: mergeRun.mergedSha, state: 'CLEAN', isDirty: false });
  // The run's diff still shows its own work after the merge.
  const after = await t.ok(RUN_REVIEW, { id: runId });
  expect(after.node.diff.files.map((f: { path: string }) => f.path)).toEqual(['feature.txt']);
  expect(after.node.aheadBehind.ahead).toBe(0);
});

test('mergeRun refuses when main has another branch checked out than the run started from', async () => {
  const { runId, worktree } = await runWithWorktree('Other branch');
  await commitIn(worktree.path, { 'other.txt': 'x\n' }, 'Other');
  await git(t.repo, 'checkout', '-q', '-b', 'experiment');
  try {
    const refused = await t.gql(`mutation($id: ID!) { mergeRun(runId: $id) { ok } }`, { id: runId });
    expect(refused.errors?.[0].extensions?.code).toBe('CONFLICT');
    expect(refused.errors?.[0].message).toMatch(/experiment checked out, but the run started from main/);
  } finally {
    await git(t.repo, 'checkout', '-q', 'main');
  }
});

test('a conflicting merge is aborted with main byte-for-byte as it was', async () => {
  const { runId, worktree } = await runWithWorktree('Conflicting change');
  await commitIn(worktree.path, { 'README.md': 'from the run\n' }, 'Run edits README');
  await commitIn(t.repo, { 'README.md': 'from main\n' }, 'Main edits README');
  await writeFile(path.join(t.repo, 'scratch.txt'), 'untracked, must survive\n');
  const before = { head: await git(t.repo, 'rev-parse', 'HEAD'), status: await git(t.repo, 'status', '--porcelain=v2', '--branch') };

  const { node } = await t.ok(`query($id: ID!) { node(id: $id) { ... on Run { aheadBehind { ahead behind } diff { files { path } } } } }`, { id: runId });
  expect(node.aheadBehind).toEqual({ ahead: 1, behind: 1 });
  expect(node.diff.files).toEqual([{ path: 'README.md' }]);

  const { mergeRun } = await t.ok(`mutation($id: ID!) { mergeRun(runId: $id, strategy: SQUASH) { ok mergedSha conflictingPaths message } }`, { id: runId });
  expect(mergeRun).toMatchObject({ ok: false, mergedSha: null, conflictingPaths: ['README.md'] });
  expect(await git(t.repo, 'rev-parse', 'HEAD')).toBe(before.head);
  expect(await git(t.repo, 'status', '--porcelain=v2', '--branch')).toBe(before.status);
  expect(await readFile(path.join(t.repo, 'README.md'), 'utf8')).toBe('from main\n');
  expect(await readFile(path.join(t.repo, 'scratch.txt'), 'utf8')).toBe('untracked, must survive\n');
  await rm(path.join(t.repo, 'scratch.txt'));
});

test('a worktree deleted behind runboard\'s back is reported, and flagged again after a restart', async () => {
  const repo = await makeRepo();
  const dataDir = await tempDir();
  let server = await startTestServer({ repo, dataDir });
  try {
    const { runId, worktree } = await runWithWorktree('Vanishing', server);
    await commitIn(worktree.path, { 'v.txt': 'v\n' }, 'Vanishing work');
    await rm(worktree.path, { recursive: true, force: true });

    const { node } = await server.ok(RUN_REVIEW, { id: runId });
    expect(node.uncommitted).toBeNull();
    const flagged = await server.ok(`query($id: ID!) { node(id: $id) { ... on Run { worktreeMissing } } }`, { id: runId });
    expect(flagged.node.worktreeMissing).toBe(true);
    expect(node.commits.map((c: { subject: string }) => c.subject)).toEqual(['Vanishing work']);

    await server.server.orchestrator.db.client.run.updateMany({ data: { worktreeMissing: false } });
    await server.close();
    server = await startTestServer({ repo, dataDir });
    const restarted = await server.ok(`query($id: ID!) { node(id: $id) { ... on Run { worktreeMissing } } }`, { id: runId });
    expect(restarted.node.worktreeMissing).toBe(true);
    expect(await git(repo, 'worktree', 'list', '--porcelain')).not.toContain(worktree.path);
    expect(existsSync(worktree.path)).toBe(false);
  } finally {
    await server.close();
    await removeDirs(repo, dataDir);
  }
});

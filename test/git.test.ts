/**
 * git.ts against real repositories in a temp directory. Repositories are shared within a describe
 * where the tests only read, or where each test leaves main as it found it.
 */
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { spawn } from 'node:child_process';
import { openSync, closeSync } from 'node:fs';
import { ConflictError, InvalidInputError, NotFoundError, ReadTimeoutError } from '../src/orchestrator/errors.js';
import {
  DEFAULT_PATCH_BYTES,
  MAX_PATCH_BYTES,
  aheadBehind,
  branchNameFor,
  commitsAhead,
  createWorktree,
  diff,
  fileDiff,
  finishInterruptedMerge,
  reviewRead,
  listWorktrees,
  merge,
  openRepository,
  reconcileWorktrees,
  pruneWorktrees,
  removeWorktree,
  repositoryStatus,
  uncommittedChanges,
  validateBranchName,
  worktreeExists,
  type CreatedWorktree,
  type FileChange,
  type MergePlan,
} from '../src/orchestrator/git.js';

let tmp: string;
const savedEnv = { GIT_CONFIG_GLOBAL: process.env.GIT_CONFIG_GLOBAL, GIT_CONFIG_NOSYSTEM: process.env.GIT_CONFIG_NOSYSTEM };
beforeAll(async () => {
  // No global or system config: identities, hooks and aliases come only from what the tests set.
  process.env.GIT_CONFIG_GLOBAL = '/dev/null';
  process.env.GIT_CONFIG_NOSYSTEM = '1';
  tmp = await fs.realpath(await fs.mkdtemp(path.join(os.tmpdir(), 'runboard-git-')));
});
afterAll(async () => {
  await fs.rm(tmp, { recursive: true, force: true });
  for (const [name, value] of Object.entries(savedEnv)) {
    if (value === undefined) delete process.env[name];
    else process.env[name] = value;
  }
});

/** Runs git for the test itself (setting up and inspecting), not through the module under test. */
async function git(cwd: string, ...args: string[]): Promise<string> {
  return (await execa('git', args, { cwd, stripFinalNewline: false })).stdout;
}

async function writeFiles(root: string, files: Record<string, string | Buffer>): Promise<void> {
  for (const [name, content] of Object.entries(files)) {
    await fs.mkdir(path.dirname(path.join(root, name)), { recursive: true });
    await fs.writeFile(path.join(root, name), content);
  }
}

/** Writes and stages `files` (untracked files elsewhere stay untracked) and commits with a fixed author. */
async function commitAll(cwd: string, message: string, files: Record<string, string | Buffer> = {}): Promise<string> {
  await writeFiles(cwd, files);
  await git(cwd, 'add', '-A', '--', ...Object.keys(files));
  await git(cwd, '-c', 'user.name=Test Person', '-c', 'user.email=test@example.com', 'commit', '-q', '-m', message);
  return (await git(cwd, 'rev-parse', 'HEAD')).trim();
}

async function makeRepo(name: string, files: Record<string, string | Buffer>, { identity = true } = {}): Promise<string> {
  const root = path.join(tmp, name);
  await fs.mkdir(root);
  await git(root, 'init', '-q', '-b', 'main');
  if (identity) {
    await git(root, 'config', 'user.name', 'Test Person');
    await git(root, 'config', 'user.email', 'test@example.com');
  }
  await commitAll(root, 'initial', files);
  return root;
}

/** Everything a merge could disturb in a checkout: HEAD, status, and every file outside .git. */
async function snapshot(root: string) {
  const files: Record<string, string> = {};
  for (const entry of await fs.readdir(root, { recursive: true, withFileTypes: true })) {
    const full = path.join(entry.parentPath, entry.name);
    const relative = path.relative(root, full);
    if (entry.isFile() && !relative.startsWith('.git' + path.sep)) files[relative] = await fs.readFile(full, 'utf8');
  }
  return {
    head: (await git(root, 'rev-parse', 'HEAD')).trim(),
    status: await git(root, 'status', '--porcelain=v2', '--branch', '--untracked-files=all'),
    files,
  };
}

const parentCount = async (cwd: string) => (await git(cwd, 'rev-list', '--parents', '-n', '1', 'HEAD')).trim().split(' ').length - 1;
const byPath = (files: FileChange[], p: string) => files.find((f) => f.path === p);

describe('openRepository', () => {
  it('returns the top level, branch and HEAD from any directory inside', async () => {
    const root = await makeRepo('open', { 'src/a.txt': 'a\n' });
    const info = await openRepository(path.join(root, 'src'));
    expect(info).toEqual({ root, branch: 'main', headSha: expect.stringMatching(/^[0-9a-f]{40}$/) });
    // Detached: no branch, the same commit; and a file named HEAD does not confuse it.
    await git(root, 'checkout', '-q', '--detach');
    await fs.writeFile(path.join(root, 'HEAD'), 'not a ref\n');
    await expect(openRepository(root)).resolves.toEqual({ root, branch: null, headSha: info.headSha });
  });

  it('refuses a missing path, a plain directory and an empty repository with one clear line', async () => {
    const plain = path.join(tmp, 'plain');
    await fs.mkdir(plain);
    await expect(openRepository(plain)).rejects.toThrow(new InvalidInputError(`${plain} is not a git repository`));
    await expect(openRepository(path.join(tmp, 'nowhere'))).rejects.toThrow(`${path.join(tmp, 'nowhere')} does not exist`);
    const empty = path.join(tmp, 'empty');
    await fs.mkdir(empty);
    await git(empty, 'init', '-q');
    await expect(openRepository(empty)).rejects.toThrow(new InvalidInputError(`${empty} has no commits yet`));
  });
});

describe('branch names', () => {
  const hostileTitles = [
    '--upload-pack=x',
    '../../etc/passwd',
    'x'.repeat(300),
    'Исправить баг',
    '修复登录错误',
    '🔥🚀',
    '',
    'Crème brûlée: fix “quotes”.lock',
  ];

  it('makes safe, valid branch names from hostile titles and run ids', async () => {
    for (const [i, title] of hostileTitles.entries()) {
      for (const runId of [`run-${i}`, '--X/../y!!ABCDEF0123456789']) {
        const name = branchNameFor(title, runId);
        expect(name).toMatch(/^runboard\/[a-z0-9]+(-[a-z0-9]+)*-[a-z0-9]{1,8}$/);
        expect(name.length).toBeLessThanOrEqual(60);
        expect(name).not.toContain('..');
        await expect(execa('git', ['check-ref-format', '--branch', name])).resolves.toMatchObject({ exitCode: 0 });
        await expect(validateBranchName(name)).resolves.toBeUndefined();
      }
    }
    expect(branchNameFor('Crème brûlée', 'cm9abc12345678')).toBe('runboard/creme-brulee-12345678');
    expect(branchNameFor('修复', 'r1')).toBe('runboard/card-r1');
    expect(() => branchNameFor('title', '!!!')).toThrow(InvalidInputError);
  });

  it('rejects invalid branch names', async () => {
    for (const bad of ['', '-x', '--upload-pack=x', 'a..b', 'a b', 'a\nb', '@{-1}', 'x.lock', 'x/', 'a~1']) {
      await expect(validateBranchName(bad)).rejects.toThrow(InvalidInputError);
    }
  });

  it('puts every worktree under worktreesDir', async () => {
    const repoRoot = await makeRepo('names', { 'a.txt': 'a\n' });
    const worktreesDir = path.join(tmp, 'names-worktrees');
    for (const [i, title] of hostileTitles.entries()) {
      const wt = await createWorktree({ repoRoot, worktreesDir, title, runId: `run${i}` });
      expect(path.dirname(wt.path)).toBe(worktreesDir);
      expect(wt).toMatchObject({ baseBranch: 'main', branch: branchNameFor(title, `run${i}`) });
      expect(await worktreeExists(wt.path)).toBe(true);
      await expect(removeWorktree({ repoRoot, path: wt.path, branch: wt.branch })).resolves.toEqual({
        worktreeRemoved: true,
        branchDeleted: true,
        unmergedCommits: 0,
      });
    }
    expect(await listWorktrees(repoRoot)).toHaveLength(1);
  });
});

describe("what a run's branch did", () => {
  let repoRoot: string;
  let wt: CreatedWorktree;
  let range: { repoRoot: string; branch: string; base: string };
  const unicodeName = 'ünïcödé.txt';

  beforeAll(async () => {
    repoRoot = await makeRepo('diff', {
      'keep.txt': 'keep\n',
      'modify.txt': 'one\ntwo\nthree\n',
      'delete.txt': 'gone soon\nbye\n',
      'rename-me.txt': Array.from({ length: 10 }, (_, i) => `line ${i}\n`).join(''),
    });
    wt = await createWorktree({ repoRoot, worktreesDir: path.join(tmp, 'diff-worktrees'), title: 'Diff card', runId: 'run00001' });
    await git(wt.path, 'rm', '-q', 'delete.txt');
    await git(wt.path, 'mv', 'rename-me.txt', 'renamed.txt');
    await commitAll(wt.path, 'Add things\n\nBody line one\n\nBody line two', {
      'added.txt': 'a\nb\n',
      'modify.txt': 'one\nTWO\nthree\nfour\n',
      'blob.bin': Buffer.from([0, 1, 2, 0, 255, 254]),
      [unicodeName]: `${'é'.repeat(500)}\n`,
    });
    await commitAll(wt.path, 'Second commit', { 'second.txt': 'second\n' });
    // main moves on after the branch started: none of this may show up in the run's diff.
    await commitAll(repoRoot, 'Main moves on', { 'main-only.txt': 'main\n' });
    range = { repoRoot, branch: wt.branch, base: 'main' };
  });

  it('lists added, modified, deleted, renamed and binary files against the merge base', async () => {
    const result = await diff(range);
    const expected: FileChange[] = [
      { path: 'added.txt', previousPath: null, status: 'ADDED', additions: 2, deletions: 0, binary: false },
      { path: 'blob.bin', previousPath: null, status: 'ADDED', additions: 0, deletions: 0, binary: true },
      { path: 'delete.txt', previousPath: null, status: 'DELETED', additions: 0, deletions: 2, binary: false },
      { path: 'modify.txt', previousPath: null, status: 'MODIFIED', additions: 2, deletions: 1, binary: false },
      { path: 'renamed.txt', previousPath: 'rename-me.txt', status: 'RENAMED', additions: 0, deletions: 0, binary: false },
      { path: 'second.txt', previousPath: null, status: 'ADDED', additions: 1, deletions: 0, binary: false },
      { path: unicodeName, previousPath: null, status: 'ADDED', additions: 1, deletions: 0, binary: false },
    ];
    expect([...result.files].sort((a, b) => a.path.localeCompare(b.path))).toEqual(expected);
    expect(result.totals).toEqual({ filesChanged: 7, insertions: 6, deletions: 3 });
    expect(result.patch).toContain('diff --git a/modify.txt b/modify.txt');
    expect(result.patch).toContain('+TWO');
    expect(result.patch).toContain('rename from rename-me.txt');
    expect(result.patch).not.toContain('main-only');
    expect(result).toMatchObject({ truncated: false, patchBytes: Buffer.byteLength(result.patch) });
  });

  it('lists the commits since the merge base, newest first, with subject, body and author', async () => {
    const { commits, truncated } = await commitsAhead(range);
    expect(truncated).toBe(false);
    expect(commits.map((c) => c.subject)).toEqual(['Second commit', 'Add things']);
    expect(commits[1]).toMatchObject({
      body: 'Body line one\n\nBody line two',
      authorName: 'Test Person',
      authorEmail: 'test@example.com',
    });
    expect(commits[1].sha).toMatch(/^[0-9a-f]{40}$/);
    expect(Math.abs(commits[1].authoredAt.getTime() - Date.now())).toBeLessThan(10 * 60_000);
    const capped = await commitsAhead({ ...range, limit: 1 });
    expect(capped).toMatchObject({ truncated: true, commits: [{ subject: 'Second commit' }] });
  });

  it('counts ahead and behind', async () => {
    await expect(aheadBehind(range)).resolves.toEqual({ ahead: 2, behind: 1 });
  });

  it('truncates the patch at maxBytes, never inside a character', async () => {
    const full = (await diff(range)).patch;
    const cut = await diff({ ...range, maxBytes: 300 });
    expect(cut.truncated).toBe(true);
    expect(cut.patchBytes).toBeLessThanOrEqual(300);
    expect(Buffer.byteLength(cut.patch)).toBe(cut.patchBytes);
    expect(full.startsWith(cut.patch)).toBe(true);
    // "diff --git a/" is 13 bytes; the multi-byte letters of the file name follow.
    const fullFile = (await fileDiff({ ...range, path: unicodeName })).patch;
    for (let maxBytes = 13; maxBytes <= 24; maxBytes++) {
      const { patch, truncated } = await fileDiff({ ...range, path: unicodeName, maxBytes });
      expect(truncated).toBe(true);
      expect(Buffer.byteLength(patch)).toBeLessThanOrEqual(maxBytes);
      expect(patch).not.toContain('\uFFFD');
      expect(fullFile.startsWith(patch)).toBe(true);
    }
  });

  it('validates maxBytes', async () => {
    for (const maxBytes of [0, -1, 1.5, Number.NaN, MAX_PATCH_BYTES + 1]) {
      await expect(diff({ ...range, maxBytes })).rejects.toThrow(InvalidInputError);
    }
    await expect(diff({ ...range, maxBytes: MAX_PATCH_BYTES })).resolves.toMatchObject({ truncated: false });
    expect(DEFAULT_PATCH_BYTES).toBe(1024 * 1024);
  });

  it('gives the patch of one file, found by its new or old path', async () => {
    const modified = await fileDiff({ ...range, path: 'modify.txt' });
    expect(modified.file.status).toBe('MODIFIED');
    expect(modified.patch).toContain('+TWO');
    expect(modified.patch).not.toContain('added.txt');
    const renamed = await fileDiff({ ...range, path: 'rename-me.txt' });
    expect(renamed.file).toMatchObject({ status: 'RENAMED', path: 'renamed.txt' });
    expect(renamed.patch).toContain('rename to renamed.txt');
  });

  it('refuses unsafe paths and unknown branches', async () => {
    for (const bad of ['../x', '/etc/passwd', 'a/../../b', '..\\x', 'C:\\x', '']) {
      await expect(fileDiff({ ...range, path: bad })).rejects.toThrow(InvalidInputError);
    }
    await expect(fileDiff({ ...range, path: 'keep.txt' })).rejects.toThrow(NotFoundError);
    await expect(fileDiff({ ...range, path: ':!keep.txt' })).rejects.toThrow(NotFoundError);
    await expect(diff({ ...range, branch: 'runboard/nope-1' })).rejects.toThrow(NotFoundError);
    await expect(diff({ ...range, branch: '--upload-pack=x' })).rejects.toThrow(InvalidInputError);
    await expect(commitsAhead({ ...range, base: '--all' })).rejects.toThrow(InvalidInputError);
  });

  it('reports uncommitted changes in a worktree, untracked files included', async () => {
    const worktreesDir = path.join(tmp, 'diff-worktrees');
    const other = await createWorktree({ repoRoot, worktreesDir, title: 'Uncommitted', runId: 'run00002' });
    await writeFiles(other.path, {
      'keep.txt': 'kept\nmore\n',
      'staged.txt': 'staged\n',
      'notes.txt': '1\n2\n3',
      'data.bin': Buffer.from([1, 0, 2]),
    });
    await git(other.path, 'add', 'staged.txt');
    const changes = await uncommittedChanges(other.path);
    expect(byPath(changes.files, 'keep.txt')).toMatchObject({ status: 'MODIFIED', additions: 2, deletions: 1 });
    expect(byPath(changes.files, 'staged.txt')).toMatchObject({ status: 'ADDED', additions: 1 });
    expect(byPath(changes.files, 'notes.txt')).toMatchObject({ status: 'ADDED', additions: 3, binary: false });
    expect(byPath(changes.files, 'data.bin')).toMatchObject({ status: 'ADDED', binary: true });
    expect(changes.totals).toEqual({ filesChanged: 4, insertions: 6, deletions: 1 });
    expect(changes.patch).toContain('+kept');
    expect(changes.patch).not.toContain('notes.txt');
    expect(changes.untrackedOmitted).toBe(0);
  });
});

describe('a worktree deleted behind runboard’s back', () => {
  it('is reported missing, its branch still answers, and cleanup tolerates it', async () => {
    const repoRoot = await makeRepo('deleted', { 'a.txt': 'a\n' });
    const worktreesDir = path.join(tmp, 'deleted-worktrees');
    const first = await createWorktree({ repoRoot, worktreesDir, title: 'First', runId: 'run1' });
    const second = await createWorktree({ repoRoot, worktreesDir, title: 'Second', runId: 'run2' });
    for (const wt of [first, second]) {
      await commitAll(wt.path, `work in ${wt.branch}`, { 'b.txt': 'b\n' });
      await fs.rm(wt.path, { recursive: true, force: true });
    }

    expect(await worktreeExists(first.path)).toBe(false);
    await expect(uncommittedChanges(first.path)).rejects.toThrow(NotFoundError);
    const range = { repoRoot, branch: first.branch, base: 'main' };
    expect((await diff(range)).files.map((f) => f.path)).toEqual(['b.txt']);
    expect((await commitsAhead(range)).commits).toHaveLength(1);
    expect((await listWorktrees(repoRoot)).filter((w) => w.prunable).map((w) => w.path).sort()).toEqual([first.path, second.path]);

    // reconcileWorktrees answers and forgets git's records of the gone ones (a prune, as git listed some).
    expect(await reconcileWorktrees(repoRoot)).toEqual(new Set([await fs.realpath(repoRoot)]));
    expect((await listWorktrees(repoRoot)).map((w) => w.path)).toEqual([repoRoot]);
    await pruneWorktrees(repoRoot); // nothing left to forget: a no-op
    expect((await listWorktrees(repoRoot)).map((w) => w.path)).toEqual([repoRoot]);
    await expect(removeWorktree({ repoRoot, path: first.path, branch: first.branch })).resolves.toEqual({
      worktreeRemoved: false,
      branchDeleted: false,
      unmergedCommits: 1,
    });

    // Deleted but still registered: removeWorktree prunes the registration.
    const third = await createWorktree({ repoRoot, worktreesDir, title: 'Third', runId: 'run3' });
    await fs.rm(third.path, { recursive: true, force: true });
    await expect(removeWorktree({ repoRoot, path: third.path, branch: third.branch, keepBranchIfUnmerged: false })).resolves.toEqual({
      worktreeRemoved: true,
      branchDeleted: true,
      unmergedCommits: 0,
    });
    expect(await listWorktrees(repoRoot)).toHaveLength(1);
    // The kept branch still blocks a second worktree for the same run.
    await expect(createWorktree({ repoRoot, worktreesDir, title: 'First', runId: 'run1' })).rejects.toThrow(ConflictError);
  });
});

describe('merge', () => {
  let repoRoot: string;
  const worktreesDir = () => path.join(tmp, 'merge-worktrees');
  let runCount = 0;
  /** A worktree with one commit per entry of `commits`. */
  async function runWith(...commits: Array<Record<string, string>>): Promise<CreatedWorktree> {
    runCount += 1;
    const wt = await createWorktree({ repoRoot, worktreesDir: worktreesDir(), title: `Run ${runCount}`, runId: `run${runCount}` });
    for (const [i, files] of commits.entries()) await commitAll(wt.path, `step ${i + 1}`, files);
    return wt;
  }

  beforeAll(async () => {
    repoRoot = await makeRepo('merge', { 'shared.txt': 'base\n', 'README.md': '# merge\n' });
    // An untracked file in main must survive everything below and never block a merge.
    await writeFiles(repoRoot, { 'untracked-notes.txt': 'mine\n' });
  });

  it('refuses when main has uncommitted changes to tracked files, naming them', async () => {
    const wt = await runWith({ 'feature.txt': 'feature\n' });
    await writeFiles(repoRoot, { 'README.md': '# edited\n' });
    const attempt = merge({ repoRoot, worktreePath: wt.path, branch: wt.branch, strategy: 'MERGE' });
    await expect(attempt).rejects.toThrow(ConflictError);
    await expect(attempt).rejects.toMatchObject({ paths: ['README.md'] });
    await git(repoRoot, 'checkout', '--', 'README.md');
  });

  it("refuses when the run's worktree has uncommitted changes", async () => {
    const wt = await runWith({ 'feature2.txt': 'feature\n' });
    await writeFiles(wt.path, { 'scratch.txt': 'wip\n' });
    const attempt = merge({ repoRoot, worktreePath: wt.path, branch: wt.branch, strategy: 'MERGE' });
    await expect(attempt).rejects.toMatchObject({ name: 'ConflictError', paths: ['scratch.txt'] });
  });

  it('merges with --no-ff into a two-parent merge commit, then reports the branch as merged', async () => {
    const wt = await runWith({ 'merged.txt': 'merged\n' }, { 'merged.txt': 'merged twice\n' });
    const result = await merge({ repoRoot, worktreePath: wt.path, branch: wt.branch, strategy: 'MERGE', message: 'Merge run 1' });
    expect(result).toMatchObject({ ok: true, conflictingPaths: [] });
    expect(result.sha).toBe((await git(repoRoot, 'rev-parse', 'HEAD')).trim());
    expect(await parentCount(repoRoot)).toBe(2);
    expect(await git(repoRoot, 'log', '-1', '--format=%s')).toBe('Merge run 1\n');
    expect(await fs.readFile(path.join(repoRoot, 'merged.txt'), 'utf8')).toBe('merged twice\n');
    expect(await fs.readFile(path.join(repoRoot, 'untracked-notes.txt'), 'utf8')).toBe('mine\n');

    const before = await snapshot(repoRoot);
    const again = await merge({ repoRoot, branch: wt.branch, strategy: 'MERGE' });
    expect(again).toMatchObject({ ok: false, sha: null, message: expect.stringContaining('already merged') });
    expect(await snapshot(repoRoot)).toEqual(before);
    await expect(removeWorktree({ repoRoot, path: wt.path, branch: wt.branch })).resolves.toEqual({
      worktreeRemoved: true,
      branchDeleted: true,
      unmergedCommits: 0,
    });
  });

  it('squashes into one single-parent commit; the branch then counts as unmerged and is kept', async () => {
    const wt = await runWith({ 'squashed.txt': 'one\n' }, { 'squashed.txt': 'two\n' });
    const result = await merge({ repoRoot, worktreePath: wt.path, branch: wt.branch, strategy: 'SQUASH', message: 'Squash run' });
    expect(result).toMatchObject({ ok: true });
    expect(await parentCount(repoRoot)).toBe(1);
    expect(await git(repoRoot, 'log', '-1', '--format=%s%n%an')).toBe('Squash run\nTest Person\n');
    expect(await fs.readFile(path.join(repoRoot, 'squashed.txt'), 'utf8')).toBe('two\n');
    expect((await repositoryStatus(repoRoot)).dirty.counts).toEqual({ staged: 0, unstaged: 0, untracked: 1, conflicted: 0 });

    await expect(removeWorktree({ repoRoot, path: wt.path, branch: wt.branch })).resolves.toEqual({
      worktreeRemoved: true,
      branchDeleted: false,
      unmergedCommits: 2,
    });
    await expect(removeWorktree({ repoRoot, path: wt.path, branch: wt.branch, keepBranchIfUnmerged: false })).resolves.toEqual({
      worktreeRemoved: false,
      branchDeleted: true,
      unmergedCommits: 2,
    });
  });

  it('aborts a conflicting merge or squash and leaves main byte-for-byte unchanged', async () => {
    const wt = await runWith({ 'shared.txt': 'theirs\n', 'clean-addition.txt': 'new\n' });
    await commitAll(repoRoot, 'ours', { 'shared.txt': 'ours\n' });
    const before = await snapshot(repoRoot);
    expect(before.files['untracked-notes.txt']).toBe('mine\n');
    for (const strategy of ['MERGE', 'SQUASH'] as const) {
      const result = await merge({ repoRoot, worktreePath: wt.path, branch: wt.branch, strategy });
      expect(result).toMatchObject({ ok: false, sha: null, conflictingPaths: ['shared.txt'] });
      expect(result.message).toContain('conflict');
      expect(await snapshot(repoRoot)).toEqual(before);
      expect((await repositoryStatus(repoRoot)).state).toBe('CLEAN');
      for (const leftover of ['MERGE_HEAD', 'MERGE_MSG', 'SQUASH_MSG']) {
        await expect(fs.access(path.join(repoRoot, '.git', leftover))).rejects.toThrow();
      }
    }

    // A merge someone left half done: status shows it, and merge refuses to start another.
    await execa('git', ['merge', wt.branch], { cwd: repoRoot, reject: false });
    const status = await repositoryStatus(repoRoot);
    expect(status).toMatchObject({ state: 'MERGING', branch: 'main' });
    expect(status.dirty.conflicted).toEqual(['shared.txt']);
    expect(status.dirty.staged).toEqual(['clean-addition.txt']);
    expect(status.dirty.untracked).toEqual(['untracked-notes.txt']);
    await expect(merge({ repoRoot, branch: wt.branch, strategy: 'MERGE' })).rejects.toThrow(/MERGING/);
    await git(repoRoot, 'merge', '--abort');
    expect(await snapshot(repoRoot)).toEqual(before);
  });

  it('leaves main byte-for-byte unchanged through 100 conflicting merges in a row', async () => {
    const wt = await runWith({ 'shared.txt': 'theirs again\n' });
    await commitAll(repoRoot, 'ours again', { 'shared.txt': 'ours again\n' });
    const before = await snapshot(repoRoot);
    for (let i = 0; i < 100; i++) {
      const result = await merge({ repoRoot, worktreePath: wt.path, branch: wt.branch, strategy: i % 2 ? 'SQUASH' : 'MERGE' });
      expect(result).toMatchObject({ ok: false, conflictingPaths: ['shared.txt'] });
    }
    expect(await snapshot(repoRoot)).toEqual(before);
  }, 120_000);

  it('refuses before touching anything when an untracked file is in the way', async () => {
    const wt = await runWith({ 'untracked-notes.txt': 'theirs\n' });
    const before = await snapshot(repoRoot);
    await expect(merge({ repoRoot, branch: wt.branch, strategy: 'MERGE' })).rejects.toMatchObject({
      name: 'ConflictError',
      paths: ['untracked-notes.txt'],
    });
    expect(await snapshot(repoRoot)).toEqual(before);
  });

  it('refuses when the branch would overwrite an ignored file in main', async () => {
    await commitAll(repoRoot, 'ignore .env', { '.gitignore': '.env\n' });
    await writeFiles(repoRoot, { '.env': 'SECRET=mine\n' });
    const wt = await createWorktree({ repoRoot, worktreesDir: worktreesDir(), title: 'env', runId: 'runenv' });
    await writeFiles(wt.path, { '.env': 'SECRET=agent\n' });
    await git(wt.path, 'add', '-f', '.env');
    await commitAll(wt.path, 'commit an ignored file');
    const before = await snapshot(repoRoot);
    const attempt = merge({ repoRoot, branch: wt.branch, strategy: 'MERGE' });
    await expect(attempt).rejects.toMatchObject({ name: 'ConflictError', paths: ['.env'] });
    expect(await snapshot(repoRoot)).toEqual(before);
    expect(before.files['.env']).toBe('SECRET=mine\n');
  });

  it('reports a squash that changes nothing and leaves main unchanged', async () => {
    const wt = await runWith({ 'same.txt': 'same\n' });
    await commitAll(repoRoot, 'same change on main', { 'same.txt': 'same\n' });
    const before = await snapshot(repoRoot);
    const result = await merge({ repoRoot, branch: wt.branch, strategy: 'SQUASH' });
    expect(result).toMatchObject({ ok: false, sha: null, message: expect.stringContaining('changes nothing') });
    expect(await snapshot(repoRoot)).toEqual(before);
    await expect(fs.access(path.join(repoRoot, '.git', 'SQUASH_MSG'))).rejects.toThrow();
  });

  it('serializes concurrent merges into the same checkout', async () => {
    const [a, b] = [await runWith({ 'concurrent-a.txt': 'a\n' }), await runWith({ 'concurrent-b.txt': 'b\n' })];
    const results = await Promise.all([a, b].map((wt) => merge({ repoRoot, branch: wt.branch, strategy: 'MERGE' })));
    expect(results.map((r) => r.ok)).toEqual([true, true]);
    await expect(fs.readFile(path.join(repoRoot, 'concurrent-a.txt'), 'utf8')).resolves.toBe('a\n');
    await expect(fs.readFile(path.join(repoRoot, 'concurrent-b.txt'), 'utf8')).resolves.toBe('b\n');
  });

  it('commits as runboard only when the repository has no identity', async () => {
    const anonymous = await makeRepo('no-identity', { 'a.txt': 'a\n' }, { identity: false });
    const worktreesDir = path.join(tmp, 'no-identity-worktrees');
    const wt = await createWorktree({ repoRoot: anonymous, worktreesDir, title: 'x', runId: 'r1' });
    await commitAll(wt.path, 'work', { 'b.txt': 'b\n' });
    await expect(merge({ repoRoot: anonymous, branch: wt.branch, strategy: 'MERGE' })).resolves.toMatchObject({ ok: true });
    expect(await git(anonymous, 'log', '-1', '--format=%an <%ae>')).toBe('runboard <runboard@localhost>\n');
  });
});

describe('a merge interrupted while it updated main', () => {
  let repoRoot: string;
  let branch: string;
  beforeAll(async () => {
    repoRoot = await makeRepo('interrupted', { 'a.txt': 'a\n', 'b.txt': 'b\n', 'c.txt': 'c\n' });
    const wt = await createWorktree({ repoRoot, worktreesDir: path.join(tmp, 'interrupted-worktrees'), title: 'x', runId: 'r1' });
    await commitAll(wt.path, 'run', { 'a.txt': 'A\n', 'b.txt': 'B\n', 'c.txt': 'C\n', 'new/d.txt': 'D\n' });
    branch = wt.branch;
  });

  /** The plan merge() would carry out, taken from its `beforeUpdate` and then refused, so main is untouched. */
  async function planOnly(): Promise<MergePlan> {
    let plan: MergePlan | undefined;
    const refuse = async (p: MergePlan) => {
      plan = p;
      throw new Error('stop before main is touched');
    };
    await expect(merge({ repoRoot, branch, strategy: 'MERGE', beforeUpdate: refuse })).rejects.toThrow('stop before main is touched');
    return plan!;
  }

  it('leaves main untouched when the plan cannot be recorded', async () => {
    const before = await snapshot(repoRoot);
    const plan = await planOnly();
    expect(plan).toMatchObject({ repoRoot, into: 'main', preHead: before.head });
    expect(await snapshot(repoRoot)).toEqual(before);
  });

  it('puts back exactly the files git wrote, removes the stale lock, and leaves someone else\'s edit alone', async () => {
    const before = await snapshot(repoRoot);
    const plan = await planOnly();
    // What a killed `merge --ff-only` leaves: its index lock, some files written, one cut off empty, a new directory.
    await writeFiles(repoRoot, { '.git/index.lock': 'half an index', 'a.txt': 'A\n', 'b.txt': '', 'new/d.txt': 'D\n' });
    await writeFiles(repoRoot, { 'c.txt': 'edited by the user meanwhile\n' });
    const outcome = await finishInterruptedMerge(plan, { removeStaleLock: true });
    expect(outcome).toMatchObject({ state: 'RESTORED', keptPaths: ['c.txt'] });
    await expect(fs.access(path.join(repoRoot, '.git', 'index.lock'))).rejects.toThrow();
    const after = await snapshot(repoRoot);
    expect(after.head).toBe(before.head);
    expect(after.files).toEqual({ ...before.files, 'c.txt': 'edited by the user meanwhile\n' });
    expect(await git(repoRoot, 'status', '--porcelain')).toBe(' M c.txt\n');
    await git(repoRoot, 'checkout', '--', 'c.txt');
    expect(await snapshot(repoRoot)).toEqual(before);
  });

  it('reports BUSY and touches nothing while a live process holds the lock, or when asked not to remove one', async () => {
    const plan = await planOnly();
    const lock = path.join(repoRoot, '.git', 'index.lock');
    const fd = openSync(lock, 'w');
    const holder = spawn('sleep', ['30'], { stdio: ['ignore', fd, 'ignore'] });
    closeSync(fd);
    try {
      await expect(finishInterruptedMerge(plan, { removeStaleLock: true })).resolves.toMatchObject({ state: 'BUSY' });
      await expect(fs.access(lock)).resolves.toBeUndefined();
    } finally {
      holder.kill('SIGKILL');
    }
    await expect(finishInterruptedMerge(plan)).resolves.toMatchObject({ state: 'BUSY' });
    await fs.rm(lock);
  });

  it('reports MERGED once the branch reached the merge commit', async () => {
    const plan = await planOnly();
    await git(repoRoot, 'merge', '-q', '--ff-only', plan.mergeSha);
    await expect(finishInterruptedMerge(plan)).resolves.toMatchObject({ state: 'MERGED' });
    expect((await git(repoRoot, 'rev-parse', 'HEAD')).trim()).toBe(plan.mergeSha);
  });
});

describe('review reads', () => {
  it('end in ReadTimeoutError once their budget is spent, waiting included', async () => {
    const repoRoot = await makeRepo('budget', { 'a.txt': 'a\n' });
    const wt = await createWorktree({ repoRoot, worktreesDir: path.join(tmp, 'budget-worktrees'), title: 'x', runId: 'r1' });
    const slow = reviewRead('a diff on a tiny budget', () => diff({ repoRoot, branch: wt.branch, base: 'main' }), 1);
    await expect(slow).rejects.toThrow(ReadTimeoutError);
    await expect(slow).rejects.toThrow(/^reading a diff on a tiny budget took longer than 1 ms/);
    await expect(diff({ repoRoot, branch: wt.branch, base: 'main' })).resolves.toMatchObject({ files: [] });
  });
});

/**
 * An agent shares the repository's `.git` with the main checkout, so it can name programs there:
 * hooks, fsmonitor, filters, merge and diff drivers, textconv, an external diff, pagers, editors,
 * gpg, and config it includes from elsewhere. runboard's own git commands must run none of them.
 * Each vector here is a real script that records its name when run; the server is driven through
 * everything that runs git (repository, review fields, startRun, mergeRun, deleting a run), then
 * plain git shows every vector was live.
 */
import { chmod, mkdir, readFile, utimes, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { OPERATOR } from '../src/orchestrator/actor.js';
import { encodeGlobalID } from '@pothos/plugin-relay';
import { git, removeDirs, tempDir } from './helpers/repo.js';
import { startAgentTestBed, startRun, waitForStatus, type AgentTestBed } from './helpers/runs.js';

let bed: AgentTestBed;
let scripts: string;
const markerFile = () => path.join(scripts, 'ran.log');
beforeAll(async () => {
  bed = await startAgentTestBed(() => ({ text: 'Done.' }));
  scripts = await tempDir('runboard-evil-');
});
afterAll(async () => {
  await bed?.close();
  await removeDirs(scripts);
});

/** Names of the programs that ran since the log was last cleared. */
async function ran(): Promise<string[]> {
  const text = await readFile(markerFile(), 'utf8').catch(() => '');
  return [...new Set(text.split('\n').filter(Boolean))].sort();
}

/** An executable that records `name`, then does `then` (a filter passes stdin through, textconv prints its file). */
async function program(name: string, then = 'exit 0'): Promise<string> {
  const file = path.join(scripts, name);
  await writeFile(file, `#!/bin/sh\necho ${name} >> '${markerFile()}'\n${then}\n`);
  await chmod(file, 0o755);
  return file;
}

async function commitIn(dir: string, files: Record<string, string>, message: string) {
  for (const [name, content] of Object.entries(files)) await writeFile(path.join(dir, name), content);
  await git(dir, 'add', '-A');
  await git(dir, 'commit', '-q', '-m', message);
}

async function settledRun(title: string, files: Record<string, string>) {
  const { orchestrator } = bed.t.server;
  const cardId = await orchestrator.board.createCard(OPERATOR, { title });
  const run = await orchestrator.db.client.run.create({ data: { cardId, prompt: 'p', status: 'SUCCEEDED' } });
  const worktree = await orchestrator.workspaces.create(run.id);
  await commitIn(worktree.path, files, title);
  return { id: encodeGlobalID('Run', run.id), worktree: worktree.path };
}

const HOOKS = ['post-checkout', 'post-merge', 'pre-merge-commit', 'pre-commit', 'prepare-commit-msg', 'commit-msg', 'post-commit', 'reference-transaction', 'post-index-change', 'pre-auto-gc', 'post-rewrite'];

test('runboard\'s git commands run none of the programs a repository\'s .git names', async () => {
  const { t } = bed;
  const repo = t.repo;
  await commitIn(repo, { 'data.txt': 'data\n', 'shared.txt': 'base\n' }, 'More files');
  const clean = await settledRun('Clean change', { 'data.txt': 'data from the run\n', 'added.bin': 'binary-ish\n' });
  const conflicting = await settledRun('Conflicting change', { 'shared.txt': 'theirs\n' });
  await commitIn(repo, { 'shared.txt': 'ours\n' }, 'Main changes shared.txt');

  // What an agent can write from its worktree: the shared config, a file it includes, hooks, attributes.
  const gitDir = path.join(repo, '.git');
  const included = path.join(scripts, 'included.config');
  await writeFile(included, [
    `[filter "y"]\n\tclean = ${await program('included-filter-clean', 'exec cat')}\n\tsmudge = ${await program('included-filter-smudge', 'exec cat')}\n\trequired = true\n`,
    // A name with "=" in it, which `-c name=value` would misread.
    `[filter "q=r"]\n\tclean = ${await program('equals-filter-clean', 'exec cat')}\n\tsmudge = ${await program('equals-filter-smudge', 'exec cat')}\n`,
  ].join(''));
  const config: [string, string][] = [
    ['core.fsmonitor', await program('fsmonitor')],
    ['diff.external', await program('diff-external')],
    ['diff.x.command', await program('diff-command')],
    ['diff.x.textconv', await program('textconv', 'exec cat "$1"')],
    ['filter.x.clean', await program('filter-clean', 'exec cat')],
    ['filter.x.smudge', await program('filter-smudge', 'exec cat')],
    ['filter.x.process', await program('filter-process')],
    ['filter.x.required', 'true'],
    ['merge.x.driver', await program('merge-driver')],
    ['core.pager', await program('pager', 'exec cat')],
    ['core.editor', await program('editor')],
    ['sequence.editor', await program('sequence-editor')],
    ['gpg.program', await program('gpg')],
    ['commit.gpgSign', 'true'],
    ['log.showSignature', 'true'],
    ['include.path', included],
  ];
  for (const [key, value] of config) await git(repo, 'config', key, value);
  await mkdir(path.join(gitDir, 'info'), { recursive: true });
  await writeFile(path.join(gitDir, 'info', 'attributes'), '* diff=x merge=x filter=x\ndata.txt filter=y\nREADME.md filter=q=r\n');
  for (const hook of HOOKS) await program(hook, 'cat > /dev/null; exit 0').then((file) => writeFile(path.join(gitDir, 'hooks', hook), `#!/bin/sh\nexec '${file}' "$@"\n`, { mode: 0o755 }));
  // Changed timestamps make git re-read (and so filter) the tracked files when it checks status.
  const past = new Date(Date.now() - 60_000);
  for (const file of ['data.txt', 'shared.txt', 'README.md']) await utimes(path.join(repo, file), past, past);
  await utimes(path.join(clean.worktree, 'data.txt'), past, past);
  await writeFile(path.join(clean.worktree, 'data.txt'), 'data from the run\n'); // same content, new mtime

  const { repository } = await t.ok(`{ repository { branch state isDirty } }`);
  expect(repository).toEqual({ branch: 'main', state: 'CLEAN', isDirty: false });
  const review = await t.ok(`query($id: ID!) { node(id: $id) { ... on Run {
    commits { subject } aheadBehind { ahead } diff { patch files { path } } fileDiff(path: "data.txt") { patch } uncommitted { files { path } }
  } } }`, { id: clean.id });
  expect(review.node.commits).toEqual([{ subject: 'Clean change' }]);
  expect(review.node.diff.patch).toContain('+data from the run');
  expect(review.node.fileDiff.patch).toContain('-data');
  expect(review.node.uncommitted.files).toEqual([]);

  const started = await startRun(t, 'A run started with all of it in place');
  expect(await waitForStatus(t, started)).toMatchObject({ status: 'SUCCEEDED', branch: expect.stringMatching(/^runboard\//) });

  const MERGE = `mutation($id: ID!, $s: MergeStrategy!) { mergeRun(runId: $id, strategy: $s) { ok conflictingPaths } }`;
  expect((await t.ok(MERGE, { id: conflicting.id, s: 'MERGE' })).mergeRun).toEqual({ ok: false, conflictingPaths: ['shared.txt'] });
  expect((await t.ok(MERGE, { id: clean.id, s: 'SQUASH' })).mergeRun).toEqual({ ok: true, conflictingPaths: [] });
  expect(await readFile(path.join(repo, 'data.txt'), 'utf8')).toBe('data from the run\n');
  await t.ok(`mutation($id: ID!) { deleteRun(runId: $id) }`, { id: started });

  expect(await ran()).toEqual([]);

  // The same operations in plain git run them (and fail, some of them, on these scripts): every vector above was live.
  const plainGit = (...args: string[]) => git(repo, ...args).catch(() => undefined);
  const earlier = new Date(Date.now() - 120_000);
  for (const file of ['data.txt', 'shared.txt', 'README.md']) await utimes(path.join(repo, file), earlier, earlier);
  await plainGit('status');
  await git(repo, 'config', '--unset', 'filter.x.process'); // a process filter that speaks no protocol stops git: now see the rest
  await plainGit('status');
  await plainGit('diff', 'HEAD~1', 'HEAD');
  await plainGit('log', '-p', '-1', '--no-ext-diff');
  await plainGit('merge-tree', '--write-tree', 'HEAD', await git(conflicting.worktree, 'rev-parse', 'HEAD'));
  await plainGit('commit', '-q', '--allow-empty', '-m', 'plain git');
  await plainGit('update-ref', 'refs/heads/plain', 'HEAD');
  await git(repo, 'config', '--unset', 'diff.x.command'); // the attribute's driver comes before diff.external
  await plainGit('diff', 'HEAD~1', 'HEAD');
  expect(await ran()).toEqual(expect.arrayContaining([
    'fsmonitor', 'filter-process', 'filter-clean', 'filter-smudge', 'included-filter-clean', 'included-filter-smudge', 'equals-filter-clean', 'merge-driver',
    'diff-command', 'diff-external', 'textconv', 'gpg', 'pre-commit', 'prepare-commit-msg', 'commit-msg', 'post-index-change', 'reference-transaction',
  ]));
}, 60_000);

/**
 * Git across machines through a remote of record (RemoteWorkspaces), on real repositories: a bare
 * "remote" and two nodes, each with its own data dir (its clone and worktrees), sharing only the
 * database, as cluster nodes share Postgres. The cluster lock is an in-process mutex here.
 */
import { existsSync } from 'node:fs';
import { readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Database } from '../src/orchestrator/db.js';
import { ConflictError } from '../src/orchestrator/errors.js';
import { KeyedMutex } from '../src/orchestrator/lock.js';
import { RemoteWorkspaces, type OwnerAnswer } from '../src/orchestrator/remote-workspaces.js';
import { WORKSPACE_SELECT, type MergeRunResult } from '../src/orchestrator/workspaces.js';
import { createAgentCatalog } from '../src/agents/index.js';
import { Orchestrator } from '../src/orchestrator/index.js';
import { makePiEnvironment, startModelServer } from './helpers/model-server.js';
import { git, makeRepo, removeDirs, tempDir } from './helpers/repo.js';
import { waitFor } from './helpers/runs.js';

/** Each test runs dozens of git commands, several over the remote; a busy machine makes that slow. */
const SLOW = 120_000;
const dirs: string[] = [];
let db: Database;
let remote: string;
/** Runs that `serve` marks live on a node, as RunControl would route the 'uncommitted' command. */
const owners = new Map<string, RemoteWorkspaces>();
const locks = new KeyedMutex();
/** Most merges ever inside the cluster lock at once. */
let mostHolders = 0;
let holders = 0;
const withLock = <T>(name: string, fn: () => Promise<T>) =>
  locks.run(name, async () => {
    mostHolders = Math.max(mostHolders, ++holders);
    try {
      return await fn();
    } finally {
      holders--;
    }
  });
const askOwner = async (runId: string, maxBytes: number | null): Promise<OwnerAnswer> => {
  const owner = owners.get(runId);
  return owner ? { delivered: true, result: JSON.parse(JSON.stringify(await owner.uncommittedHere(runId, maxBytes))) } : { delivered: false };
};

async function node(name: string, lock = withLock, publishThrottleMs = 100): Promise<RemoteWorkspaces> {
  const dataDir = path.join(await tempDir(`runboard-node-${name}-`), 'data');
  dirs.push(path.dirname(dataDir));
  // Every review read fetches (no throttle), so a push shows at once.
  return RemoteWorkspaces.open({ db, dataDir, remote, withLock: lock, askOwner, reviewFetchThrottleMs: 0, publishThrottleMs });
}

beforeAll(async () => {
  const seed = await makeRepo({ 'README.md': '# game\n', 'src/main.rs': 'fn main() {}\n' });
  const root = await tempDir('runboard-remote-');
  remote = path.join(root, 'origin.git');
  await git(root, 'clone', '-q', '--bare', seed, remote);
  const dbDir = await tempDir('runboard-db-');
  dirs.push(seed, root, dbDir);
  db = await Database.open({ url: `file:${path.join(dbDir, 'runboard.db')}` });
}, SLOW);
afterAll(async () => {
  await db?.close();
  await removeDirs(...dirs);
}, SLOW);

/** A card and a run row, as startRun makes them; `status` SUCCEEDED unless said. */
async function newRun(title: string, status: 'SUCCEEDED' | 'RUNNING' = 'SUCCEEDED', refine?: string) {
  const card = await db.client.card.create({ data: { title, position: 0 } });
  const from = refine ? await db.client.run.findUniqueOrThrow({ where: { id: refine }, select: { branch: true, baseBranch: true, baseSha: true, worktreePath: true } }) : {};
  const run = await db.client.run.create({ data: { cardId: card.id, prompt: 'p', status, ...from, ...(refine ? { refinedFromId: refine } : {}) } });
  return run.id;
}

const ref = (runId: string) => db.client.run.findUniqueOrThrow({ where: { id: runId }, select: WORKSPACE_SELECT });

/** Writes `files` in a worktree and commits them, as an agent would. */
async function commitIn(dir: string, files: Record<string, string>, message: string): Promise<string> {
  for (const [name, content] of Object.entries(files)) await writeFile(path.join(dir, name), content);
  await git(dir, 'add', '-A');
  await git(dir, '-c', 'user.name=Agent', '-c', 'user.email=agent@example.com', 'commit', '-q', '-m', message);
  return git(dir, 'rev-parse', 'HEAD');
}

/** Two settled runs, one made on each node, each with `files` committed and pushed. */
async function publishedRuns(a: RemoteWorkspaces, b: RemoteWorkspaces, [title1, files1]: [string, Record<string, string>], [title2, files2]: [string, Record<string, string>]) {
  const [one, two] = [await newRun(title1), await newRun(title2)];
  await commitIn((await a.create(one)).path, files1, title1);
  await commitIn((await b.create(two)).path, files2, title2);
  await Promise.all([a.publishBranch(one), b.publishBranch(two)]);
  return [one, two];
}

const remoteSha = (branch: string) => git(remote, 'rev-parse', `refs/heads/${branch}`).catch(() => null);

/** Polls until `check` holds (a background push); fails after `ms`. */
async function eventually(check: () => Promise<boolean>, ms = 10_000): Promise<void> {
  const until = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > until) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

test('a worktree commit is pushed and the other node reviews it from the branch as pushed', async () => {
  const [a, b] = [await node('a'), await node('b')];
  expect(a.baseBranch).toBe('main');
  const runId = await newRun('Add a jump', 'RUNNING');
  const created = await a.create(runId);
  expect(created.path.startsWith(a.worktreesDir + path.sep)).toBe(true);
  expect(created.baseBranch).toBe('main');
  // Pushed at once: the other node already sees the branch, with nothing on it yet.
  expect(await remoteSha(created.branch)).toBe(created.baseSha);
  expect(await b.commits(await ref(runId))).toEqual([]);

  const first = await commitIn(created.path, { 'jump.rs': 'fn jump() {}\n' }, 'Add jump');
  a.publishSoon(runId); // as the run does on agent activity: pushed within the throttle
  await eventually(async () => (await remoteSha(created.branch)) === first);
  // A commit not pushed yet is not what review shows: the branch as pushed is.
  const second = await commitIn(created.path, { 'jump.rs': 'fn jump() { fly() }\n' }, 'Jump higher');
  expect((await b.commits(await ref(runId)))!.map((c) => c.sha)).toEqual([first]);
  await a.publishBranch(runId); // as the run does when it settles
  expect(await remoteSha(created.branch)).toBe(second);

  const run = await ref(runId);
  expect((await b.commits(run))!.map((c) => c.subject)).toEqual(['Jump higher', 'Add jump']);
  const diff = (await b.diff(run))!;
  expect(diff.files).toEqual([{ path: 'jump.rs', previousPath: null, status: 'ADDED', additions: 1, deletions: 0, binary: false }]);
  expect(diff.patch).toContain('+fn jump() { fly() }');
  expect((await b.fileDiff(run, 'jump.rs'))!.patch).toContain('fly()');
  expect(await b.aheadBehind(run)).toEqual({ ahead: 2, behind: 0 });
  expect(await b.repositoryStatus()).toMatchObject({ branch: 'main', headSha: created.baseSha, state: 'CLEAN' });
  // Node b has no directory of node a's: nothing was shared but the remote.
  expect(existsSync(path.join(b.worktreesDir, path.basename(created.path)))).toBe(false);

  // Uncommitted work: from the worker that holds the run, else unavailable (null) on other nodes.
  await writeFile(path.join(created.path, 'notes.txt'), 'not committed\n');
  owners.set(runId, a);
  const held = await b.uncommitted(run);
  expect(held?.files).toEqual([{ path: 'notes.txt', previousPath: null, status: 'ADDED', additions: 1, deletions: 0, binary: false }]);
  expect(await b.uncommittedUnavailable(run)).toBeNull();
  owners.delete(runId);
  expect(await b.uncommitted(run)).toBeNull();
  expect(await b.uncommittedUnavailable(run)).toMatch(/^no worker holds the run now/);
  expect((await a.uncommitted(run))?.files.map((f) => f.path)).toEqual(['notes.txt']); // a's own worktree
}, SLOW);

test('agent activity pushes the branch at once, and activity while that throttles is pushed when it is over', async () => {
  const a = await node('a', withLock, 1_000);
  const runId = await newRun('Throttled', 'RUNNING');
  const { path: worktree, branch } = await a.create(runId);
  const one = await commitIn(worktree, { 'one.txt': '1\n' }, 'One');
  a.publishSoon(runId);
  await eventually(async () => (await remoteSha(branch)) === one);
  const two = await commitIn(worktree, { 'two.txt': '2\n' }, 'Two');
  a.publishSoon(runId);
  a.publishSoon(runId);
  await eventually(async () => (await remoteSha(branch)) === two);
  a.close();
}, SLOW);

test('an amended commit replaces the pushed one, but a push over another node\'s newer push is refused', async () => {
  const [a, b] = [await node('a'), await node('b')];
  const runId = await newRun('Amend', 'RUNNING');
  const { path: worktree, branch } = await a.create(runId);
  await commitIn(worktree, { 'a.txt': 'one\n' }, 'One');
  await a.publishBranch(runId);
  await git(worktree, '-c', 'user.name=Agent', '-c', 'user.email=agent@example.com', 'commit', '-q', '--amend', '-m', 'One, amended');
  await a.publishBranch(runId);
  expect(await remoteSha(branch)).toBe(await git(worktree, 'rev-parse', 'HEAD'));

  // Node b continues the branch (a refine) and pushes; node a's stale copy must not overwrite it.
  const refineId = await newRun('Amend', 'RUNNING', runId);
  const there = await b.worktreeFor(refineId);
  const newer = await commitIn(there, { 'b.txt': 'two\n' }, 'Two');
  await b.publishBranch(refineId);
  await git(worktree, '-c', 'user.name=Agent', '-c', 'user.email=agent@example.com', 'commit', '-q', '--amend', '-m', 'One, amended again');
  await expect(a.publishBranch(runId)).rejects.toThrow(ConflictError);
  expect(await remoteSha(branch)).toBe(newer);
}, SLOW);

test('two merges at once are serialized cluster-wide and both land', async () => {
  const [a, b] = [await node('a'), await node('b')];
  const [one, two] = await publishedRuns(a, b, ['Feature one', { 'one.txt': '1\n' }], ['Feature two', { 'two.txt': '2\n' }]);
  const before = await remoteSha('main');

  mostHolders = 0;
  const [r1, r2] = await Promise.all([a.merge(one, 'MERGE'), b.merge(two, 'SQUASH')]);
  expect(mostHolders).toBe(1);
  expect([r1.ok, r2.ok]).toEqual([true, true]);
  const main = (await remoteSha('main'))!;
  expect([r1.sha, r2.sha]).toContain(main);
  // Both changes are on the remote's main, on top of what it was.
  expect(await git(remote, 'show', `${main}:one.txt`)).toBe('1');
  expect(await git(remote, 'show', `${main}:two.txt`)).toBe('2');
  await git(remote, 'merge-base', '--is-ancestor', before!, main);
  expect((await db.client.run.findUniqueOrThrow({ where: { id: one } })).mergedSha).toBe(r1.sha);
  // Merging again: nothing to do, and the remote stays.
  expect(await a.merge(one, 'MERGE')).toMatchObject({ ok: false, message: expect.stringContaining('already merged') });
  expect(await remoteSha('main')).toBe(main);
}, SLOW);

test('without the cluster lock, a merge whose push loses the race re-merges onto the winner, or changes nothing', async () => {
  const noLock = <T>(_name: string, fn: () => Promise<T>) => fn();
  const [a, b] = [await node('a', noLock), await node('b', noLock)];
  const [one, two] = await publishedRuns(a, b, ['Race one', { 'race-one.txt': '1\n' }], ['Race two', { 'race-two.txt': '2\n' }]);
  const before = (await remoteSha('main'))!;
  // Usually both land (the loser refetches and merges onto the winner); if the remote moved again
  // before its second push, it is a CONFLICT that pushed nothing.
  const results = await Promise.all([a.merge(one, 'MERGE').catch((e: unknown) => e), b.merge(two, 'MERGE').catch((e: unknown) => e)]);
  const landed = results.filter((r) => !(r instanceof Error) && (r as MergeRunResult).ok);
  for (const r of results) if (!landed.includes(r)) expect(r).toBeInstanceOf(ConflictError);
  expect(landed.length).toBeGreaterThan(0);
  const main = (await remoteSha('main'))!;
  await git(remote, 'merge-base', '--is-ancestor', before, main);
  for (const [r, file] of [[results[0], 'race-one.txt'], [results[1], 'race-two.txt']] as const) {
    const shown = await git(remote, 'show', `${main}:${file}`).catch(() => null);
    expect(shown).toBe(landed.includes(r) ? (file === 'race-one.txt' ? '1' : '2') : null);
  }
}, SLOW);

test('of two conflicting merges at once one lands, and the other leaves the remote\'s base as the first left it', async () => {
  const [a, b] = [await node('a'), await node('b')];
  const [one, two] = await publishedRuns(a, b, ['Readme one', { 'README.md': '# one\n' }], ['Readme two', { 'README.md': '# two\n' }]);
  const results = await Promise.all([a.merge(one, 'MERGE'), b.merge(two, 'MERGE')]);
  const landed = results.filter((r) => r.ok);
  const refused = results.filter((r) => !r.ok);
  expect(landed).toHaveLength(1);
  expect(refused).toEqual([expect.objectContaining({ ok: false, sha: null, conflictingPaths: ['README.md'], message: expect.stringContaining('main was not touched') })]);
  expect(await remoteSha('main')).toBe(landed[0].sha);
}, SLOW);

test('a conflicting merge leaves the remote\'s base branch unchanged', async () => {
  const a = await node('a');
  const runId = await newRun('Conflicts');
  const { path: worktree } = await a.create(runId);
  await commitIn(worktree, { 'src/main.rs': 'fn main() { run() }\n' }, 'Run');
  await a.publishBranch(runId);
  // Uncommitted work in this node's worktree would not be merged: refused, as with the main checkout.
  await writeFile(path.join(worktree, 'draft.txt'), 'draft\n');
  await expect(a.merge(runId, 'MERGE')).rejects.toMatchObject({ category: 'conflict', paths: ['draft.txt'] });
  await rm(path.join(worktree, 'draft.txt'));
  // Someone pushes to main directly meanwhile, changing the same line.
  const elsewhere = await tempDir('runboard-elsewhere-');
  dirs.push(elsewhere);
  await git(elsewhere, 'clone', '-q', remote, 'c');
  const checkout = path.join(elsewhere, 'c');
  await commitIn(checkout, { 'src/main.rs': 'fn main() { walk() }\n' }, 'Walk');
  await git(checkout, 'push', '-q', 'origin', 'main');
  const refsBefore = await git(remote, 'for-each-ref');

  const result = await a.merge(runId, 'MERGE');
  expect(result).toMatchObject({ ok: false, sha: null, conflictingPaths: ['src/main.rs'] });
  expect(await git(remote, 'for-each-ref')).toBe(refsBefore);
  expect((await db.client.run.findUniqueOrThrow({ where: { id: runId } })).mergedSha).toBeNull();
}, SLOW);

test('a refine on the other node re-creates the worktree from the pushed branch, and the first node catches up', async () => {
  const [a, b] = [await node('a'), await node('b')];
  const runId = await newRun('Refine me');
  const created = await a.create(runId);
  await commitIn(created.path, { 'level.txt': 'level 1\n' }, 'Level 1');
  await a.publishBranch(runId);
  expect(await b.canRefineIn(await ref(runId))).toBe(true);

  const refineId = await newRun('Refine me', 'RUNNING', runId);
  const there = await b.worktreeFor(refineId);
  expect(there.startsWith(b.worktreesDir + path.sep)).toBe(true);
  expect(await readFile(path.join(there, 'level.txt'), 'utf8')).toBe('level 1\n');
  expect(await git(there, 'rev-parse', '--abbrev-ref', 'HEAD')).toBe(created.branch);
  expect((await ref(refineId)).worktreePath).toBe(there); // the row names the worktree of the node that works in it
  const level2 = await commitIn(there, { 'level.txt': 'level 2\n' }, 'Level 2');
  await b.publishBranch(refineId);
  expect(await remoteSha(created.branch)).toBe(level2);

  // A later refine on node a finds its old worktree behind, and brings it forward.
  const again = await newRun('Refine me', 'RUNNING', refineId);
  expect(await a.worktreeFor(again)).toBe(created.path);
  expect(await readFile(path.join(created.path, 'level.txt'), 'utf8')).toBe('level 2\n');
  // And a node with no copy of it at all makes one too.
  const c = await node('c');
  expect(await readFile(path.join(await c.worktreeFor(again), 'level.txt'), 'utf8')).toBe('level 2\n');
}, SLOW);

test('a node reopens its clone, and refuses a directory that is not its clone', async () => {
  const a = await node('a');
  const again = await RemoteWorkspaces.open({ db, dataDir: path.dirname(a.worktreesDir), remote, withLock, askOwner });
  expect(again.baseBranch).toBe('main');
  const other = await makeRepo();
  dirs.push(other);
  await expect(RemoteWorkspaces.open({ db, dataDir: path.dirname(a.worktreesDir), remote: other, withLock })).rejects.toThrow(/is a clone of/);
}, SLOW);

test('runs on two workers: the agent\'s commit reaches the remote, and a refine on the other worker continues the pushed branch', async () => {
  // The agent commits a file named by the prompt, then says it is done.
  const model = await startModelServer((request) => {
    if (request.messages.at(-1)?.role === 'tool') return { text: 'Done.' };
    const file = request.lastUserText?.includes('more') ? 'more.txt' : 'first.txt';
    const command = `echo hi > ${file} && git add -A && git -c user.name=Agent -c user.email=agent@example.com commit -q -m "Add ${file}"`;
    return { toolCalls: [{ name: 'bash', arguments: { command } }] };
  });
  const pi = await makePiEnvironment(model);
  const agents = createAgentCatalog({ piArgs: pi.args, agentEnv: pi.env });
  const worker = async (name: string) => {
    const workspaces = await node(name);
    const dataDir = path.dirname(workspaces.worktreesDir);
    const orchestrator = new Orchestrator({ db, repository: await workspaces.repositoryInfo(), dataDir, agents, agentEnv: pi.env, workspaces });
    await orchestrator.start(); // the queue drives runs once started (both start before any run exists)
    return orchestrator;
  };
  const [a, b] = [await worker('a'), await worker('b')];
  const settled = (runId: string) =>
    waitFor(`run ${runId} to settle`, async () => {
      const run = await db.client.run.findUniqueOrThrow({ where: { id: runId } });
      return ['SUCCEEDED', 'FAILED', 'STOPPED', 'INTERRUPTED'].includes(run.status) ? run : undefined;
    }, 60_000);
  try {
    const card = await db.client.card.create({ data: { title: 'Two workers', position: 0 } });
    const first = await settled(await a.runs.start({ cardId: card.id }));
    expect(first).toMatchObject({ status: 'SUCCEEDED', error: null });
    expect(await git(remote, 'log', '-1', '--format=%s', first.branch!)).toBe('Add first.txt');

    // Worker a stops taking runs; the refine goes to worker b, which has never seen the worktree. On
    // another machine worker a's directories would not exist: nor do they here.
    await a.runs.shutdown();
    await rm(first.worktreePath!, { recursive: true });
    // pi's session names the directory it ran in, and pi refuses to resume it elsewhere. Moving a
    // session between workers is not git's part (the run queue's session snapshot is): here the
    // session file is where pi left it, pointed at the directory worker b will use.
    const [header, ...rest] = (await readFile(first.agentSession!, 'utf8')).split('\n');
    const session = JSON.parse(header);
    expect(session.cwd).toBe(first.worktreePath);
    session.cwd = path.join(b.workspaces.worktreesDir, path.basename(first.worktreePath!));
    await writeFile(first.agentSession!, [JSON.stringify(session), ...rest].join('\n'));
    const refine = await settled(await b.runs.start({ cardId: card.id, refineRunId: first.id, prompt: 'Add more' }));
    expect(refine).toMatchObject({ status: 'SUCCEEDED', error: null, branch: first.branch });
    expect(refine.worktreePath!.startsWith(b.workspaces.worktreesDir + path.sep)).toBe(true);
    expect(await readFile(path.join(refine.worktreePath!, 'first.txt'), 'utf8')).toBe('hi\n');
    expect(await git(remote, 'log', '--format=%s', `${first.baseSha}..${first.branch}`)).toBe('Add more.txt\nAdd first.txt');
    // Worker a reviews the run from the branch as pushed.
    expect((await a.workspaces.commits(await ref(first.id)))!.map((c) => c.subject)).toEqual(['Add more.txt', 'Add first.txt']);
  } finally {
    await Promise.all([a.runs.shutdown(), b.runs.shutdown()]);
    await model.close();
    await pi.cleanup();
  }
}, SLOW);

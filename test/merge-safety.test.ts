/**
 * mergeRun under interference, over HTTP against real repositories: a user editing main while a merge
 * runs, another git process holding main's index lock, and the server killed in the middle of a merge.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { OPERATOR } from '../src/orchestrator/actor.js';
import { encodeGlobalID } from '@pothos/plugin-relay';
import { makePiEnvironment, startModelServer } from './helpers/model-server.js';
import { git, makeRepo, removeDirs, tempDir } from './helpers/repo.js';
import { runEvents, startRun, waitFor, waitForStatus } from './helpers/runs.js';
import { spawnServer, startTestServer, type TestServer } from './helpers/server.js';

const MERGE = `mutation($id: ID!, $s: MergeStrategy!) { mergeRun(runId: $id, strategy: $s) { ok mergedSha conflictingPaths message } }`;

/** A card and a settled run with its own worktree, as startRun makes them, with `files` committed on its branch. */
async function settledRun(t: TestServer, title: string, files: Record<string, string>) {
  const cardId = await t.server.orchestrator.board.createCard(OPERATOR, { title });
  const run = await t.server.orchestrator.db.client.run.create({ data: { cardId, prompt: 'p', status: 'SUCCEEDED' } });
  const worktree = await t.server.orchestrator.workspaces.create(run.id);
  await commitIn(worktree.path, files, title);
  return { runId: encodeGlobalID('Run', run.id), dbId: run.id };
}

async function commitIn(dir: string, files: Record<string, string>, message: string) {
  for (const [name, content] of Object.entries(files)) {
    await mkdir(path.dirname(path.join(dir, name)), { recursive: true });
    await writeFile(path.join(dir, name), content);
  }
  await git(dir, 'add', '-A');
  await git(dir, 'commit', '-q', '-m', message);
}

/** HEAD, status and every file outside .git: what a merge that does not happen must leave alone. */
function snapshot(root: string) {
  const files: Record<string, string> = {};
  for (const entry of readdirSync(root, { recursive: true, withFileTypes: true })) {
    const full = path.join(entry.parentPath, entry.name);
    const relative = path.relative(root, full);
    if (entry.isFile() && relative.split(path.sep)[0] !== '.git') files[relative] = readFileSync(full, 'utf8');
  }
  return files;
}
const headAndStatus = async (repo: string) => ({ head: await git(repo, 'rev-parse', 'HEAD'), status: await git(repo, 'status', '--porcelain=v2', '--branch', '--untracked-files=all') });

test('a conflicting merge never touches main: an edit saved while it runs survives every time', async () => {
  const t = await startTestServer();
  try {
    await commitIn(t.repo, { 'notes.txt': 'tracked notes\n' }, 'Add notes');
    const { runId } = await settledRun(t, 'Conflicts', { 'README.md': 'from the run\n' });
    await commitIn(t.repo, { 'README.md': 'from main\n' }, 'Main edits README');
    const head = await git(t.repo, 'rev-parse', 'HEAD');
    const notes = path.join(t.repo, 'notes.txt');
    // How long one merge takes on this machine now, so the saves below spread over its whole length.
    const started = Date.now();
    expect((await t.ok(MERGE, { id: runId, s: 'MERGE' })).mergeRun.ok).toBe(false);
    const mergeMs = Date.now() - started;
    let conflicts = 0;
    for (let attempt = 0; attempt < 30; attempt++) {
      // The user saves notes.txt at some moment while the merge runs (before, during or after its checks).
      const saved = `edited during attempt ${attempt}\n`;
      const merging = t.gql(MERGE, { id: runId, s: attempt % 2 ? 'SQUASH' : 'MERGE' });
      await new Promise((resolve) => setTimeout(resolve, ((attempt % 10) / 10) * mergeMs * 1.2));
      await writeFile(notes, saved);
      const answer = await merging;
      expect(await readFile(notes, 'utf8')).toBe(saved);
      expect(await git(t.repo, 'rev-parse', 'HEAD')).toBe(head);
      if (answer.errors) {
        // The edit landed before the merge looked at main: refused, naming it.
        expect(answer.errors[0].extensions).toMatchObject({ code: 'CONFLICT', paths: ['notes.txt'] });
      } else {
        conflicts += 1;
        expect(answer.data.mergeRun).toMatchObject({ ok: false, mergedSha: null, conflictingPaths: ['README.md'], message: expect.stringContaining('main was not touched') });
      }
      await git(t.repo, 'checkout', '--', 'notes.txt');
    }
    expect(conflicts).toBeGreaterThan(0); // the merge itself ran, not only the refusal
    expect(await readFile(path.join(t.repo, 'README.md'), 'utf8')).toBe('from main\n');
  } finally {
    await t.close();
  }
});

test('a clean merge never overwrites an edit saved while it runs: it merges around it or refuses, naming the file', async () => {
  const t = await startTestServer();
  try {
    await commitIn(t.repo, { 'notes.txt': 'tracked notes\n' }, 'Add notes');
    const { runId } = await settledRun(t, 'Changes notes', { 'notes.txt': 'notes from the run\n', 'feature.txt': 'feature\n' });
    const head = await git(t.repo, 'rev-parse', 'HEAD');
    const notes = path.join(t.repo, 'notes.txt');
    const started = Date.now();
    expect((await t.ok(MERGE, { id: runId, s: 'MERGE' })).mergeRun.ok).toBe(true);
    const mergeMs = Date.now() - started;
    await git(t.repo, 'reset', '-q', '--hard', head);
    // git checks a file is unchanged, then writes it, with no lock on the file itself: a save that lands in
    // that instant (microseconds, wider on a loaded machine) can interleave with git's write, as it would
    // with a plain `git merge`. Such a race is counted, and must stay rare; every other save must survive.
    let raced = 0;
    for (let attempt = 0; attempt < 20; attempt++) {
      const saved = `edited during attempt ${attempt}\n`;
      const merging = t.gql(MERGE, { id: runId, s: 'MERGE' });
      await new Promise((resolve) => setTimeout(resolve, ((attempt % 10) / 10) * mergeMs * 1.2));
      await writeFile(notes, saved);
      const answer = await merging;
      if ((await readFile(notes, 'utf8')) !== saved) {
        raced += 1;
        expect(answer.data?.mergeRun).toMatchObject({ ok: true }); // only git's own write of the file can race the save
        await git(t.repo, 'reset', '-q', '--hard', head);
        continue;
      }
      if (answer.errors) {
        expect(answer.errors[0].extensions).toMatchObject({ code: 'CONFLICT', paths: ['notes.txt'] });
        expect(await git(t.repo, 'rev-parse', 'HEAD')).toBe(head);
      } else {
        // Merged before the edit landed: the edit is now a change on top of the merge.
        expect(answer.data.mergeRun).toMatchObject({ ok: true });
        expect(await git(t.repo, 'rev-parse', 'HEAD')).toBe(answer.data.mergeRun.mergedSha);
      }
      await git(t.repo, 'reset', '-q', '--hard', head); // the test's own reset, between attempts
    }
    expect(raced).toBeLessThanOrEqual(2);
  } finally {
    await t.close();
  }
});

test('while another git process holds the index lock, a merge answers CONFLICT "repository busy", leaves main as it was, and is logged', async () => {
  const lines: string[] = [];
  const t = await startTestServer({ logStream: { write: (line: string) => void lines.push(line) } });
  try {
    const { runId } = await settledRun(t, 'Locked out', { 'feature.txt': 'feature\n', 'README.md': '# changed by the run\n' });
    const before = { ...(await headAndStatus(t.repo)), files: snapshot(t.repo) };
    const lock = path.join(t.repo, '.git', 'index.lock');
    await writeFile(lock, ''); // what a running `git add` or an editor's git integration holds

    const busy = await t.gql(`mutation MergeWhileLocked($id: ID!) { mergeRun(runId: $id) { ok } }`, { id: runId });
    expect(busy.errors?.[0].extensions?.code).toBe('CONFLICT');
    expect(busy.errors?.[0].message).toMatch(/^repository busy: another git process holds a lock .*index\.lock.*nothing was changed/);
    expect(existsSync(lock)).toBe(true); // not ours to remove
    expect({ ...(await headAndStatus(t.repo)), files: snapshot(t.repo) }).toEqual(before);
    const logged = lines.map((line) => JSON.parse(line)).find((record) => record.operation === 'MergeWhileLocked');
    expect(logged).toMatchObject({ outcome: 'error', codes: ['CONFLICT'] });

    const { run } = await t.ok(`query($id: ID!) { run(id: $id) { mergedSha } }`, { id: runId });
    expect(run.mergedSha).toBeNull();
    await removeDirs(lock);
    const { mergeRun } = await t.ok(MERGE, { id: runId, s: 'MERGE' });
    expect(mergeRun).toMatchObject({ ok: true });
    expect(await readFile(path.join(t.repo, 'feature.txt'), 'utf8')).toBe('feature\n');
    expect(await git(t.repo, 'status', '--porcelain')).toBe('');
  } finally {
    await t.close();
  }
});

/** Pids of processes whose parent is `parent` and whose arguments include every one of `args`. */
function childrenRunning(parent: number, args: string[]): number[] {
  const found: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) !== parent) continue;
      const argv = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0');
      if (args.every((arg) => argv.includes(arg))) found.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return found;
}

test('a server killed while a merge updates main: the restart finds it and leaves main merged or exactly as it was', async () => {
  const repo = await makeRepo({ 'README.md': '# big merge\n', 'notes.txt': 'notes\n' });
  const dataDir = await tempDir();
  const model = await startModelServer(() => ({ text: 'Done.' }));
  const pi = await makePiEnvironment(model);
  const env = { ...pi.env, RUNBOARD_REPO: repo, RUNBOARD_DATA_DIR: dataDir, RUNBOARD_AGENT_ARGS: pi.args.join(' ') };
  let server = await spawnServer(env);
  try {
    const runId = await startRun(server.t as TestServer, 'Big change');
    const { worktreePath } = await waitForStatus(server.t as TestServer, runId, ['SUCCEEDED']);
    // Enough files that updating main takes a while, so the kill lands inside it.
    const files: Record<string, string> = {};
    for (let i = 0; i < 3000; i++) files[`big/${i % 30}/file-${i}.txt`] = `${'x'.repeat(4000)} ${i}\n`;
    await commitIn(worktreePath, files, 'Add many files');
    const before = { ...(await headAndStatus(repo)), files: snapshot(repo) };

    const merging = server.t.gql(MERGE, { id: runId, s: 'MERGE' });
    const serverPid = server.child.pid!;
    const gitPid = await waitFor('git to start updating main', async () => childrenRunning(serverPid, ['merge', '--ff-only'])[0], 30_000);
    process.kill(serverPid, 'SIGKILL'); // a crash: the server and the git it runs die together
    process.kill(gitPid, 'SIGKILL');
    await server.child;
    await merging.catch(() => undefined);

    server = await spawnServer(env);
    const events = await runEvents(server.t as TestServer, runId);
    const recovered = events.at(-1)!;
    expect(recovered).toMatchObject({ type: 'merge', data: { interrupted: true, message: expect.any(String) } });
    expect(existsSync(path.join(repo, '.git', 'index.lock'))).toBe(false);
    expect(existsSync(path.join(dataDir, 'merge-in-progress.json'))).toBe(false);
    const { run } = await server.t.ok(`query($id: ID!) { run(id: $id) { mergedSha } }`, { id: runId });
    if (recovered.data.ok) {
      // git had moved the branch before it died: main is fully merged and the run says so.
      expect(run.mergedSha).toBe(recovered.data.mergedSha);
      expect(await git(repo, 'rev-parse', 'HEAD')).toBe(recovered.data.mergedSha);
      expect(await git(repo, 'status', '--porcelain')).toBe('');
      expect(snapshot(repo)).toEqual({ ...before.files, ...files });
    } else {
      expect(run.mergedSha).toBeNull();
      expect({ ...(await headAndStatus(repo)), files: snapshot(repo) }).toEqual(before);
      const { mergeRun } = await server.t.ok(MERGE, { id: runId, s: 'MERGE' });
      expect(mergeRun).toMatchObject({ ok: true });
      expect(snapshot(repo)).toEqual({ ...before.files, ...files });
    }
  } finally {
    server.child.kill('SIGTERM');
    await server.child;
    await model.close();
    await pi.cleanup();
    await removeDirs(repo, dataDir);
  }
}, 120_000);

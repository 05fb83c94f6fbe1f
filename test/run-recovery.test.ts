/** Restart recovery with real server processes, and the concurrency queue. */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { makePiEnvironment, startModelServer, type ModelServer } from './helpers/model-server.js';
import { makeRepo, removeDirs, tempDir } from './helpers/repo.js';
import { alive, runEvents, startAgentTestBed, startRun, waitFor, waitForStatus } from './helpers/runs.js';
import { spawnServer, type TestServer } from './helpers/server.js';

test('a run left RUNNING by a crashed server becomes INTERRUPTED on restart, its leftover processes ended and its worktree kept', async () => {
  const repo = await makeRepo();
  const dataDir = await tempDir();
  const pidFile = path.join(dataDir, 'tool.pid');
  const model: ModelServer = await startModelServer(() => ({ toolCalls: [{ name: 'bash', arguments: { command: `echo $$ > ${pidFile}; exec sleep 60` } }] }));
  const pi = await makePiEnvironment(model);
  const env = { ...pi.env, RUNBOARD_REPO: repo, RUNBOARD_DATA_DIR: dataDir, RUNBOARD_AGENT_ARGS: pi.args.join(' ') };
  let second: Awaited<ReturnType<typeof spawnServer>> | undefined;
  try {
    const first = await spawnServer(env);
    const runId = await startRun(first.t as TestServer, 'Outlive the server');
    const toolPid = await waitFor('the tool to start', async () => (existsSync(pidFile) ? Number((await readFile(pidFile, 'utf8')).trim()) || undefined : undefined));
    const { run } = await first.t.ok(`query($id: ID!) { run(id: $id) { status worktreePath } }`, { id: runId });
    expect(run.status).toBe('RUNNING');

    first.child.kill('SIGKILL'); // a crash: no graceful shutdown
    await first.child;
    expect(alive(toolPid)).toBe(true); // pi's tool outlives its server

    second = await spawnServer(env);
    const recovered = await waitForStatus(second.t as TestServer, runId, ['INTERRUPTED']);
    expect(recovered.endedAt).not.toBeNull();
    expect(alive(toolPid)).toBe(false);
    expect(existsSync(run.worktreePath)).toBe(true);
    const events = await runEvents(second.t as TestServer, runId);
    expect(events.at(-1)).toMatchObject({ type: 'status', data: { status: 'INTERRUPTED', reason: expect.stringMatching(/server stopped/) } });
    expect(events.map((e) => e.seq)).toEqual(events.map((_, i) => i + 1));
  } finally {
    second?.child.kill('SIGTERM');
    await second?.child;
    await model.close();
    await pi.cleanup();
    await removeDirs(repo, dataDir);
  }
});

test('runs beyond RUNBOARD_MAX_CONCURRENT_RUNS wait QUEUED and start in order', async () => {
  let release!: () => void;
  const gate = new Promise<void>((resolve) => (release = resolve));
  const bed = await startAgentTestBed(async () => {
    await gate;
    return { text: 'done' };
  }, { RUNBOARD_MAX_CONCURRENT_RUNS: '1' });
  try {
    const { t } = bed;
    const a = await startRun(t, 'first');
    const b = await startRun(t, 'second');
    const c = await startRun(t, 'third');
    await waitForStatus(t, a, ['RUNNING']);
    for (const id of [b, c]) expect((await t.ok(`query($id: ID!) { run(id: $id) { status } }`, { id })).run.status).toBe('QUEUED');
    release();
    const runs = [await waitForStatus(t, a), await waitForStatus(t, b), await waitForStatus(t, c)];
    expect(runs.map((r) => r.status)).toEqual(['SUCCEEDED', 'SUCCEEDED', 'SUCCEEDED']);
    const starts = runs.map((r) => Date.parse(r.startedAt));
    const ends = runs.map((r) => Date.parse(r.endedAt));
    expect(starts[1]).toBeGreaterThanOrEqual(ends[0]);
    expect(starts[2]).toBeGreaterThanOrEqual(ends[1]);
  } finally {
    release();
    await bed.close();
  }
});

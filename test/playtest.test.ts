/** Playtests over real HTTP and WebSocket, with a real command that starts a child process. */
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { encodeGlobalID } from '@pothos/plugin-relay';
import BetterSqlite3 from 'better-sqlite3';
import { execa } from 'execa';
import { createClient, type Client } from 'graphql-ws';
import WebSocket from 'ws';
import { makeRepo, removeDirs, tempDir } from './helpers/repo.js';
import { RUN_EVENT_FIELDS, withData, type TestRunEvent } from './helpers/events.js';
import { alive, runEvents, waitFor } from './helpers/runs.js';
import { projectRoot, startTestServer, type TestServer } from './helpers/server.js';

const COMMAND = `${process.execPath} ${path.join(projectRoot, 'test', 'fixtures', 'playtest.mjs')}`;
const env = { RUNBOARD_PLAYTEST_COMMAND: COMMAND };

let t: TestServer;
let client: Client;
beforeAll(async () => {
  t = await startTestServer({ env });
  client = createClient({ url: t.url.replace(/^http/, 'ws'), webSocketImpl: WebSocket, retryAttempts: 0 });
});
afterAll(async () => {
  await client?.dispose();
  await t?.close();
});

/** A settled run with its own worktree, whose playtest runs in `mode` (see fixtures/playtest.mjs). */
async function settledRun(mode: string, server = t): Promise<{ id: string; dbId: string; worktree: string }> {
  const db = server.server.orchestrator.db.client;
  const card = await db.card.create({ data: { title: `playtest ${mode}`, position: 0 } });
  const run = await db.run.create({ data: { cardId: card.id, prompt: 'p', status: 'SUCCEEDED' } });
  const worktree = await server.server.orchestrator.workspaces.create(run.id);
  await writeFile(path.join(worktree.path, '.playtest-mode'), mode);
  return { id: encodeGlobalID('Run', run.id), dbId: run.id, worktree: worktree.path };
}

const START = `mutation($id: ID!) { startPlaytest(runId: $id) { playtest { running command } } }`;
const STOP = `mutation($id: ID!) { stopPlaytest(runId: $id) { playtest { running exitCode signal endedAt } } }`;
const PLAYTEST = `query($id: ID!) { run(id: $id) { playtest { running exitCode signal } } }`;

/** The pids the game script printed, once both are known. */
async function gamePids(runId: string): Promise<{ parent: number; child: number }> {
  return waitFor('the game to print its pids', async () => {
    const lines = (await runEvents(t, runId)).filter((e) => e.type === 'playtest_output').map((e) => e.data.line as string);
    const parent = lines.find((l) => l.startsWith('parent '));
    const child = lines.find((l) => l.startsWith('child '));
    return parent && child ? { parent: Number(parent.split(' ')[1]), child: Number(child.split(' ')[1]) } : undefined;
  });
}

test('output arrives through runEvents, even for a settled run, until the playtest exits', async () => {
  const run = await settledRun('exit 0');
  const lastSeq = (await t.ok(`query($id: ID!) { run(id: $id) { lastSeq } }`, { id: run.id })).run.lastSeq;
  const started = await t.ok(START, { id: run.id });
  expect(started.startPlaytest.playtest).toEqual({ running: true, command: COMMAND });
  const events: TestRunEvent[] = [];
  const followed = new Promise<void>((resolve, reject) =>
    client.subscribe(
      { query: `subscription($id: ID!, $since: Int) { runEvents(runId: $id, since: $since, untilSettled: true) { ...RunEventFields } } ${RUN_EVENT_FIELDS}`, variables: { id: run.id, since: lastSeq } },
      { next: (result) => void events.push(withData((result.data as any).runEvents)), error: reject, complete: resolve },
    ),
  );
  await followed; // ends with playtest_exit, since the run itself is settled
  expect(events.map((e) => e.type)).toEqual(['playtest_start', 'playtest_output', 'playtest_output', 'playtest_output', 'playtest_exit']);
  expect(events.filter((e) => e.type === 'playtest_output').map((e) => e.data)).toEqual(
    expect.arrayContaining([{ stream: 'STDOUT', line: 'building…' }, { stream: 'STDERR', line: 'warning: unused variable' }, { stream: 'STDOUT', line: 'done' }]),
  );
});

test('the exit code is recorded when the command ends by itself', async () => {
  const run = await settledRun('exit 3');
  await t.ok(START, { id: run.id });
  const playtest = await waitFor('the playtest to exit', async () => {
    const { run: current } = await t.ok(PLAYTEST, { id: run.id });
    return current.playtest.running ? undefined : current.playtest;
  });
  expect(playtest).toEqual({ running: false, exitCode: 3, signal: null });
  expect((await runEvents(t, run.id)).at(-1)).toMatchObject({ type: 'playtest_exit', data: { exitCode: 3, stopped: false, droppedLines: 0 } });
});

test('a second start is refused, and stop ends both the parent and the child it started', async () => {
  const run = await settledRun('game');
  await t.ok(START, { id: run.id });
  const again = await t.gql(START, { id: run.id });
  expect(again.errors?.[0].extensions?.code).toBe('CONFLICT');
  const { parent, child } = await gamePids(run.id);
  expect(alive(parent) && alive(child)).toBe(true);

  const { stopPlaytest } = await t.ok(STOP, { id: run.id });
  expect(stopPlaytest.playtest).toMatchObject({ running: false, exitCode: null, signal: 'SIGTERM' });
  expect(alive(parent)).toBe(false);
  expect(alive(child)).toBe(false);
  expect((await t.gql(STOP, { id: run.id })).errors?.[0].extensions?.code).toBe('CONFLICT');
});

test('deleting a run stops its playtest', async () => {
  const run = await settledRun('game');
  await t.ok(START, { id: run.id });
  const { parent, child } = await gamePids(run.id);
  await t.ok(`mutation($id: ID!) { deleteRun(runId: $id) }`, { id: run.id });
  expect([alive(parent), alive(child)]).toEqual([false, false]);
});

test('a flood of output is rate-limited, with the dropped lines counted', async () => {
  const run = await settledRun('flood');
  await t.ok(START, { id: run.id });
  await waitFor('the flood to end', async () => ((await t.ok(PLAYTEST, { id: run.id })).run.playtest.running ? undefined : true));
  const events = await runEvents(t, run.id);
  const output = events.filter((e) => e.type === 'playtest_output');
  const exit = events.find((e) => e.type === 'playtest_exit')!;
  expect(output.length).toBeLessThanOrEqual(200);
  expect(output.length + exit.data.droppedLines).toBe(10_000);
  const reported = events.filter((e) => e.type === 'playtest_dropped').reduce((sum, e) => sum + e.data.count, 0);
  expect(reported).toBe(exit.data.droppedLines);
  expect(output[0].data.line).toBe('line 0'); // the first burst gets through
});

test('a run without its worktree cannot be playtested', async () => {
  const run = await settledRun('exit 0');
  await removeDirs(run.worktree);
  const refused = await t.gql(START, { id: run.id });
  expect(refused.errors?.[0]).toMatchObject({ extensions: { code: 'CONFLICT' }, message: expect.stringMatching(/no worktree/) });
});

test('server shutdown, and a restart after a crash, leave no playtest process behind', async () => {
  const repo = await makeRepo();
  const dataDir = await tempDir();
  const first = await startTestServer({ repo, dataDir, env });
  const run = await settledRun('game', first);
  await first.ok(START, { id: run.id });
  const pids = await waitFor('the game to start', async () => {
    const lines = (await runEvents(first, run.id)).filter((e) => e.type === 'playtest_output').map((e) => e.data.line as string);
    const found = lines.filter((l) => /^(parent|child) \d+$/.test(l)).map((l) => Number(l.split(' ')[1]));
    return found.length === 2 ? found : undefined;
  });
  await first.close();
  expect(pids.map(alive)).toEqual([false, false]);

  // A server that dies mid-playtest leaves the row open and the process running; the process carries the run id.
  const leftover = execa(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { env: { RUNBOARD_PLAYTEST_RUN_ID: run.dbId }, detached: true, reject: false }); // its own group, as playtests are
  await waitFor('the leftover to start', async () => (leftover.pid && alive(leftover.pid) ? true : undefined));
  const sqlite = new BetterSqlite3(path.join(dataDir, 'runboard.db'));
  sqlite.prepare('UPDATE "Run" SET "playtestEndedAt" = NULL WHERE "id" = ?').run(run.dbId);
  sqlite.close();
  const second = await startTestServer({ repo, dataDir, env });
  try {
    expect((await leftover).signal).toBe('SIGTERM');
    expect((await second.ok(PLAYTEST, { id: run.id })).run.playtest.running).toBe(false);
    expect((await runEvents(second, run.id)).at(-1)).toMatchObject({ type: 'playtest_exit', data: { stopped: true } });
  } finally {
    leftover.kill('SIGKILL');
    await second.close();
    await removeDirs(repo, dataDir);
  }
});

/**
 * Runs owned by workers through the BullMQ queue (issue 15): two nodes of role all on a throwaway
 * Postgres and Redis and a bare remote, each with its own data dir; node A in this process, node B in a
 * child process so that it can be SIGKILLed. Agents are the real pi against the scripted model server.
 * Steering and stopping through a node that does not drive the run: test/cluster.test.ts.
 */
import { existsSync } from 'node:fs';
import { readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { decodeGlobalID } from '@pothos/plugin-relay';
import { execa, type ResultPromise } from 'execa';
import { loadConfig } from '../src/config.js';
import { hashAgentToken } from '../src/orchestrator/runs.js';
import { startServer, type RunboardServer } from '../src/server.js';
import { makePiEnvironment, startModelServer, type ModelServer, type PiEnvironment } from './helpers/model-server.js';
import { makeRemote } from './helpers/cluster.js';
import { removeDirs, tempDir } from './helpers/repo.js';
import { alive, runEvents, runProcesses, waitFor, SETTLED } from './helpers/runs.js';
import { graphqlClient, projectRoot, type GraphQLClient, type TestServer } from './helpers/server.js';
import { startServices, type Services } from './helpers/services.js';

/** Short, so a dead worker's runs are swept within seconds; long enough for a loaded 2-core machine. */
const LEASE_MS = 4_000;

type TestNode = GraphQLClient;
const client = (url: string): TestNode => graphqlClient(url);

let services: Services;
let model: ModelServer;
let pi: PiEnvironment;
let repo: string;
let shared: string;
let dirs: string[] = [];
let serverA: RunboardServer;
let a: TestNode;
let childB: ResultPromise | undefined;
let b: TestNode;

beforeAll(async () => {
  services = await startServices();
  model = await startModelServer(() => ({ text: 'done' }));
  pi = await makePiEnvironment(model);
  repo = await makeRemote();
  shared = await tempDir('runboard-shared-');
  const [dirA, dirB] = [await tempDir('runboard-node-a-'), await tempDir('runboard-node-b-')];
  dirs = [shared, dirA, dirB];
  const env = { DATABASE_URL: services.databaseUrl, REDIS_URL: services.redisUrl, RUNBOARD_LEASE_MS: String(LEASE_MS), RUNBOARD_AGENT_ARGS: pi.args.join(' '), RUNBOARD_MAX_CONCURRENT_RUNS: '1' };

  serverA = await startServer(loadConfig(['--port', '0', '--repo', repo, '--data-dir', dirA, '--node-id', 'node-a'], env), { agentEnv: pi.env });
  a = client(serverA.url);

  childB = execa('node', ['--import', 'tsx', path.join(projectRoot, 'test/helpers/cluster-node.ts')], {
    cwd: projectRoot,
    env: { ...env, ...pi.env, RUNBOARD_REPO: repo, RUNBOARD_DATA_DIR: dirB, RUNBOARD_NODE_ID: 'node-b' },
    reject: false,
  });
  const url = await new Promise<string>((resolve, reject) => {
    childB!.stdout!.on('data', (chunk: Buffer) => {
      const match = /LISTENING (\S+)/.exec(chunk.toString());
      if (match) resolve(match[1]!);
    });
    void childB!.then((result) => reject(new Error(`node B exited: ${result.stderr}`)));
  });
  b = client(url);
}, 120_000);

afterAll(async () => {
  if (childB && childB.exitCode === null && childB.signalCode === null) {
    childB.kill('SIGTERM');
    await childB;
  }
  await serverA?.close();
  await model?.close();
  await pi?.cleanup();
  await services?.stop();
  await removeDirs(path.dirname(repo), ...dirs);
}, 60_000);

async function startRun(node: TestNode, title: string, extra: Record<string, unknown> = {}): Promise<string> {
  const { createCard } = await node.ok(`mutation($title: String!) { createCard(input: { title: $title }) { id } }`, { title });
  const { startRun: run } = await node.ok(`mutation($input: StartRunInput!) { startRun(input: $input) { id } }`, { input: { cardId: createCard.id, ...extra } });
  return run.id;
}

async function statusOf(node: TestNode, runId: string): Promise<any> {
  return (await node.ok(`query($id: ID!) { run(id: $id) { id status worktreePath error } }`, { id: runId })).run;
}

function waitForStatus(node: TestNode, runId: string, statuses: string[], timeoutMs = 60_000): Promise<any> {
  return waitFor(`run ${runId} to be ${statuses.join('/')}`, async () => {
    const run = await statusOf(node, runId);
    return statuses.includes(run.status) ? run : undefined;
  }, timeoutMs);
}

/** Node id -> ids of the runs it holds, from Query.cluster. */
async function holders(node: TestNode): Promise<Record<string, string[]>> {
  const { cluster } = await node.ok(`{ cluster { nodes { id role alive heartbeatAt runs { id status } } } }`);
  return Object.fromEntries(cluster.nodes.map((n: any) => [n.id, n.runs.map((r: any) => r.id)]));
}

test('runs spread over both workers, each running at most RUNBOARD_MAX_CONCURRENT_RUNS (1) at once', async () => {
  let release!: () => void;
  const gate = new Promise<void>((resolve) => (release = resolve));
  model.setScript(async () => {
    await gate;
    return { text: 'done' };
  });
  try {
    const ids = [await startRun(a, 'one'), await startRun(b, 'two'), await startRun(a, 'three')];
    const running = await waitFor('two runs to be RUNNING', async () => {
      const runs = await Promise.all(ids.map((id) => statusOf(a, id)));
      const busy = runs.filter((run) => run.status === 'RUNNING').map((run) => run.id);
      return busy.length === 2 ? busy : undefined;
    }, 60_000);
    const held = await holders(b);
    expect(held['node-a']).toHaveLength(1);
    expect(held['node-b']).toHaveLength(1);
    expect([...held['node-a']!, ...held['node-b']!].sort()).toEqual([...running].sort());
    const waiting = ids.find((id) => !running.includes(id))!;
    expect((await statusOf(a, waiting)).status).toBe('QUEUED'); // both workers are full
    release();
    for (const id of ids) expect((await waitForStatus(a, id, SETTLED)).status).toBe('SUCCEEDED');
    expect(await holders(a)).toEqual({ 'node-a': [], 'node-b': [] });
  } finally {
    release();
  }
}, 180_000);

test('an agent token is stored hashed, works on either node while its run is active, and dies with the run', async () => {
  let release!: () => void;
  const gate = new Promise<void>((resolve) => (release = resolve));
  model.setScript(async (request) => {
    if (request.toolResultCount === 0) return { toolCalls: [{ name: 'bash', arguments: { command: 'echo "$RUNBOARD_RUN_TOKEN" > token.txt' } }] };
    await gate;
    return { text: 'done' };
  });
  try {
    const runId = await startRun(a, 'token');
    const run = await waitForStatus(a, runId, ['RUNNING']);
    const tokenFile = path.join(run.worktreePath, 'token.txt');
    await waitFor('the agent to write its token', async () => (existsSync(tokenFile) && (await readFile(tokenFile, 'utf8')).trim() ? true : undefined));
    const token = (await readFile(tokenFile, 'utf8')).trim();
    const own = `query($id: ID!) { run(id: $id) { id status } }`;
    for (const node of [a, b]) expect((await node.gql(own, { id: runId }, token)).data?.run.status).toBe('RUNNING');
    const stored = await serverA.orchestrator.db.client.run.findUniqueOrThrow({ where: { id: decodeGlobalID(runId).id }, select: { agentTokenHash: true } });
    expect(stored.agentTokenHash).toBe(hashAgentToken(token)); // only its hash is stored

    release();
    expect((await waitForStatus(a, runId, SETTLED)).status).toBe('SUCCEEDED');
    for (const node of [a, b]) expect((await node.gql(own, { id: runId }, token)).status).toBe(401);
  } finally {
    release();
  }
}, 180_000);

test('a refine on a node whose disk lacks the session restores it from the database and sees the earlier conversation', async () => {
  let release!: () => void;
  const gate = new Promise<void>((resolve) => (release = resolve));
  model.setScript(async (request) => {
    if (request.lastUserText?.includes('second thoughts')) return { text: 'refined' };
    await gate;
    return { text: 'first answer' };
  });
  try {
    const ids = [await startRun(a, 'remember one'), await startRun(a, 'remember two')];
    const held = await waitFor('each node to hold one run', async () => {
      const now = await holders(a);
      return now['node-a']?.length === 1 && now['node-b']?.length === 1 ? now : undefined;
    }, 60_000);
    release();
    for (const id of ids) expect((await waitForStatus(a, id, SETTLED)).status).toBe('SUCCEEDED');
    const onB = held['node-b']![0]!;
    const { run } = await a.ok(`query($id: ID!) { run(id: $id) { agentSession card { id } } }`, { id: onB });
    expect(run.agentSession).toContain('runboard-node-b-');
    const stored = await serverA.orchestrator.db.client.agentSessionFile.findMany({ where: { runId: decodeGlobalID(onB).id } });
    expect(stored).toHaveLength(1);
    await rm(run.agentSession); // as if node B were another machine
    const before = model.requests.length;
    const { startRun: refine } = await a.ok(`mutation($input: StartRunInput!) { startRun(input: $input) { id } }`, { input: { cardId: run.card.id, refineRunId: onB, prompt: 'second thoughts' } });
    expect((await waitForStatus(a, refine.id, SETTLED)).status).toBe('SUCCEEDED');
    const asked = model.requests.slice(before).find((request) => request.lastUserText?.includes('second thoughts'));
    expect(JSON.stringify(asked?.messages)).toContain('first answer');
  } finally {
    release();
  }
}, 180_000);

test('a SIGKILLed worker loses its lease: its run becomes INTERRUPTED with no process left, the other node\'s run is untouched, and a refine continues it elsewhere', async () => {
  const pids = await tempDir('runboard-pids-');
  dirs.push(pids);
  model.setScript((request) => {
    if (request.lastUserText?.includes('carry on')) return { text: 'continued' };
    if (request.toolResultCount === 0) return { toolCalls: [{ name: 'bash', arguments: { command: `echo $$ > ${pids}/$RUNBOARD_RUN_ID.pid; exec sleep 120` } }] };
    return { text: 'done' };
  });
  const ids = [await startRun(a, 'outlive one'), await startRun(a, 'outlive two')];
  for (const id of ids) await waitForStatus(a, id, ['RUNNING']);
  const held = await waitFor('each node to hold one run', async () => {
    const now = await holders(a);
    return now['node-a']?.length === 1 && now['node-b']?.length === 1 ? now : undefined;
  });
  const [onA, onB] = [held['node-a']![0]!, held['node-b']![0]!];
  const pidFile = path.join(pids, `${decodeGlobalID(onB).id}.pid`);
  const toolPid = await waitFor('node B\'s tool to start', async () => (existsSync(pidFile) ? Number((await readFile(pidFile, 'utf8')).trim()) || undefined : undefined));
  expect(alive(toolPid)).toBe(true);

  childB!.kill('SIGKILL'); // no shutdown: the lease just stops being renewed
  await childB;
  const interrupted = await waitForStatus(a, onB, ['INTERRUPTED'], 4 * LEASE_MS + 20_000);
  expect(interrupted.status).toBe('INTERRUPTED');
  await waitFor('node B\'s run to have no process left', async () => (runProcesses(onB).length === 0 ? true : undefined), 10_000);
  const events = await runEvents({ ok: a.ok } as TestServer, onB);
  expect(events.at(-1)).toMatchObject({ type: 'status', data: { status: 'INTERRUPTED', reason: expect.stringMatching(/lease expired/) } });
  expect(events.map((e) => e.seq)).toEqual(events.map((_, i) => i + 1));
  expect((await statusOf(a, onA)).status).toBe('RUNNING'); // a live node's run is never touched
  const { cluster } = await a.ok(`{ cluster { nodes { id alive } } }`);
  expect(cluster.nodes).toEqual(expect.arrayContaining([{ id: 'node-b', alive: false }, { id: 'node-a', alive: true }]));

  await a.ok(`mutation($id: ID!) { stopRun(runId: $id) { id } }`, { id: onA });
  expect((await waitForStatus(a, onA, SETTLED)).status).toBe('STOPPED');
  expect(runProcesses(onA)).toEqual([]);

  const { run: { card } } = await a.ok(`query($id: ID!) { run(id: $id) { card { id } } }`, { id: onB });
  const { startRun: refine } = await a.ok(`mutation($input: StartRunInput!) { startRun(input: $input) { id } }`, { input: { cardId: card.id, refineRunId: onB, prompt: 'carry on' } });
  expect((await waitForStatus(a, refine.id, SETTLED)).status).toBe('SUCCEEDED');
  expect((await holders(a))['node-b']).toEqual([]);
}, 240_000);

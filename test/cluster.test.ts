/**
 * A cluster on one machine: 3 API nodes and 2 workers as separate processes of the bundle, each with its
 * own data directory, on a throwaway Postgres and Redis and a bare git remote of record (issue 15).
 * Runs use the real pi against the scripted model server.
 */
import { decodeGlobalID } from '@pothos/plugin-relay';
import { createClient, type Client } from 'graphql-ws';
import { existsSync } from 'node:fs';
import pg from 'pg';
import WebSocket from 'ws';
import { commitToRemote, startCluster, type ClusterNode, type TestCluster } from './helpers/cluster.js';
import { makePiEnvironment, startModelServer, type ModelReply, type ModelRequest, type ModelServer, type PiEnvironment } from './helpers/model-server.js';
import { git } from './helpers/repo.js';
import { alive, runProcesses, SETTLED, waitFor } from './helpers/runs.js';
import { processesWithEnv } from '../src/orchestrator/processes.js';
import { PLAYTEST_RUN_ID_VARIABLE } from '../src/orchestrator/playtest.js';
import { startServices, type Services } from './helpers/services.js';

// Long enough that heartbeats delayed by a loaded machine (the whole suite on 2 cores) never look like a death.
const LEASE_MS = 10_000;
const GIT_IDENTITY = { GIT_AUTHOR_NAME: 'Cluster Test', GIT_AUTHOR_EMAIL: 'cluster@example.com', GIT_COMMITTER_NAME: 'Cluster Test', GIT_COMMITTER_EMAIL: 'cluster@example.com' };

/** The case a run plays, from the marker in its card title (it is in the prompt). */
function caseOf(request: ModelRequest): string {
  const first = JSON.stringify(request.messages.find((m) => m.role === 'user')?.content ?? '');
  return /\[case:([a-z-]+)\]/.exec(first)?.[1] ?? 'unknown';
}

/** What the scripted model does for each case. */
function script(request: ModelRequest): ModelReply {
  const steps = request.toolResultCount;
  switch (caseOf(request)) {
    case 'stream': // a few slow steps: long enough to kill a node while subscribers follow
      if (steps < 4) return { toolCalls: [{ name: 'bash', arguments: { command: `echo step ${steps}` } }], delayMs: 250 };
      return { text: 'Finished streaming.', chunkSize: 4, delayMs: 20 };
    case 'steer': // waits for a steer, then stops asking
      if (request.messages.some((m) => JSON.stringify(m.content).includes('STEERED'))) return { text: 'I was steered.' };
      return { toolCalls: [{ name: 'bash', arguments: { command: 'sleep 1' } }], delayMs: 100 };
    case 'long': // commits, then works for a long time
      if (request.lastUserText?.includes('[refine]')) return refineStep(request);
      if (steps === 0) return { toolCalls: [{ name: 'bash', arguments: { command: 'echo hello > hello.txt && git add -A && git commit -qm "agent: add hello"' } }] };
      return { toolCalls: [{ name: 'bash', arguments: { command: 'sleep 600' } }] };
    case 'play':
    case 'merge-a':
    case 'merge-b':
    case 'merge-c': {
      const file = caseOf(request) === 'merge-c' ? 'README.md' : `${caseOf(request)}.txt`;
      if (steps === 0) return { toolCalls: [{ name: 'bash', arguments: { command: `echo ${caseOf(request)} > ${file} && git add -A && git commit -qm "agent: ${caseOf(request)}"` } }] };
      return { text: 'Committed.' };
    }
    default:
      return { text: 'ok' };
  }
}

/** The refinement reads the log of the branch it continues, then answers. */
function refineStep(request: ModelRequest): ModelReply {
  if (request.toolResults.some((r) => r.includes('agent: add hello'))) return { text: 'Refined.' };
  return { toolCalls: [{ name: 'bash', arguments: { command: 'git log --oneline' } }] };
}

/** Prints what the agent committed and where it runs, then plays until stopped. */
const PLAYTEST = `${process.execPath} -e "const fs = require('fs'); console.log(fs.existsSync('play.txt') ? fs.readFileSync('play.txt', 'utf8').trim() : 'nothing to play'); console.log(process.cwd()); setInterval(() => {}, 1000)"`;

let services: Services;
let model: ModelServer;
let pi: PiEnvironment;
let cluster: TestCluster;
let api: ClusterNode[];

beforeAll(async () => {
  services = await startServices();
  model = await startModelServer(script);
  pi = await makePiEnvironment(model);
  cluster = await startCluster({
    databaseUrl: services.databaseUrl,
    redisUrl: services.redisUrl,
    leaseMs: LEASE_MS,
    // A worker machine has a git identity, as any machine that commits does; the agents' and merges' commits use it.
    env: { ...pi.env, ...GIT_IDENTITY, RUNBOARD_AGENT_ARGS: pi.args.join(' '), RUNBOARD_MAX_CONCURRENT_RUNS: '12', RUNBOARD_PLAYTEST_COMMAND: PLAYTEST },
  });
  // The first node migrates; the others start at once and find the schema ready (or wait on the lock).
  api = await Promise.all(['api-1', 'api-2', 'api-3'].map((id) => cluster.start(id, 'api')));
  await Promise.all(['worker-1', 'worker-2'].map((id) => cluster.start(id, 'worker')));
}, 120_000);

afterAll(async () => {
  await cluster?.close();
  await model?.close();
  await pi?.cleanup();
  await services?.stop();
}, 60_000);

async function startRun(node: ClusterNode, title: string, extra: Record<string, unknown> = {}): Promise<string> {
  const { createCard } = await node.ok(`mutation($title: String!) { createCard(input: { title: $title }) { id } }`, { title });
  const { startRun: run } = await node.ok(`mutation($input: StartRunInput!) { startRun(input: $input) { id } }`, { input: { cardId: createCard.id, ...extra } });
  return run.id;
}

async function runOf(node: ClusterNode, id: string): Promise<{ status: string; lastSeq: number; branch: string | null; error: string | null }> {
  const { run } = await node.ok(`query($id: ID!) { run(id: $id) { status lastSeq branch error } }`, { id });
  return run;
}

function waitForStatus(node: ClusterNode, id: string, statuses: string[], timeoutMs = 60_000) {
  return waitFor(`run ${id} to be ${statuses.join('/')}`, async () => {
    const run = await runOf(node, id);
    return statuses.includes(run.status) ? run : undefined;
  }, timeoutMs);
}

/** Which node holds a run, from Query.cluster. */
async function ownerOf(node: ClusterNode, runId: string): Promise<string | undefined> {
  const { cluster: info } = await node.ok(`{ cluster { nodes { id role heartbeatAt runs { id } } } }`);
  return info.nodes.find((n: { runs: { id: string }[] }) => n.runs.some((r) => r.id === runId))?.id;
}

const RUN_EVENTS = `subscription($id: ID!, $since: Int) { runEvents(runId: $id, since: $since, untilSettled: true) { seq } }`;

/**
 * Follows a run's events on `nodes[0]`; when that node's socket dies, resubscribes on the next node
 * with `since` = the last seq received. Resolves with every seq received, in order.
 */
function follow(nodes: ClusterNode[], runId: string, clients: Client[]): Promise<number[]> {
  const seqs: number[] = [];
  return new Promise((resolve, reject) => {
    const attempt = (index: number) => {
      const node = nodes[index % nodes.length]!;
      const client = createClient({ url: node.url.replace(/^http/, 'ws'), webSocketImpl: WebSocket, retryAttempts: 0, lazy: true });
      clients.push(client);
      client.subscribe<{ runEvents: { seq: number } }>(
        { query: RUN_EVENTS, variables: { id: runId, since: seqs.at(-1) ?? 0 } },
        {
          next: (result) => {
            if (result.errors) return reject(new Error(JSON.stringify(result.errors)));
            seqs.push(result.data!.runEvents.seq);
          },
          error: () => {
            void client.dispose();
            if (index > 10) reject(new Error(`run ${runId}: gave up resubscribing`));
            else attempt(index + 1);
          },
          complete: () => resolve(seqs),
        },
      );
    };
    attempt(0);
  });
}

/** How many session files of a run (its global id) the database holds. */
async function storedSessionFiles(runId: string): Promise<number> {
  const client = new pg.Client({ connectionString: services.databaseUrl });
  await client.connect();
  try {
    const { rows } = await client.query<{ count: string }>('SELECT count(*) FROM "AgentSessionFile" WHERE "runId" = $1', [decodeGlobalID(runId).id]);
    return Number(rows[0]!.count);
  } finally {
    await client.end();
  }
}

const gapless = (last: number) => Array.from({ length: last }, (_, i) => i + 1);

test('20 concurrent runs, 200 subscribers over 3 API nodes; one API node SIGKILLed mid-stream loses and repeats nothing', async () => {
  const runIds = await Promise.all(Array.from({ length: 20 }, (_, i) => startRun(api[i % 3]!, `[case:stream] run ${i}`)));
  const clients: Client[] = [];
  try {
    const followers = runIds.flatMap((runId, r) => Array.from({ length: 10 }, (_, s) => {
      const first = (r + s) % 3;
      return follow([api[first]!, api[(first + 1) % 3]!, api[(first + 2) % 3]!], runId, clients).then((seqs) => ({ runId, seqs }));
    }));
    // Mid-stream: once some run has events, the third API node dies without a word.
    try {
      await waitFor('events to flow', async () => ((await Promise.all(runIds.slice(0, 5).map((id) => runOf(api[0]!, id)))).some((run) => run.lastSeq > 3) ? true : undefined), 90_000);
    } catch (error) {
      const runs = await Promise.all(runIds.map((id) => runOf(api[0]!, id)));
      console.log(JSON.stringify(runs), cluster.nodes.filter((n) => n.role === 'worker').map((n) => n.logs.slice(-20).join('\n')).join('\n----\n'));
      throw error;
    }
    await cluster.kill(api[2]!, 'SIGKILL');
    const results = await Promise.all(followers);
    for (const runId of runIds) {
      const run = await waitForStatus(api[0]!, runId, SETTLED);
      expect([run.status, run.error]).toEqual(['SUCCEEDED', null]);
    }
    for (const { runId, seqs } of results) {
      const { lastSeq } = await runOf(api[0]!, runId);
      expect(seqs).toEqual(gapless(lastSeq));
    }
  } finally {
    await Promise.all(clients.map((client) => client.dispose()));
    api[2] = await cluster.start('api-3b', 'api'); // the later tests use three API nodes again
  }

}, 300_000); // twenty agents start at once on 2 cores, and each may take the agents' 60 s start

test('steer and stop sent to a node that does not own the run reach its worker', async () => {
  const runId = await startRun(api[0]!, '[case:steer] steer me');
  await waitForStatus(api[1]!, runId, ['RUNNING']);
  const owner = await waitFor('an owner', () => ownerOf(api[1]!, runId));
  expect(owner).toMatch(/^worker-/);
  // A cluster has no main checkout to work in.
  const { createCard } = await api[1]!.ok(`mutation { createCard(input: { title: "no worktree" }) { id } }`);
  const refused = await api[1]!.gql(`mutation($id: ID!) { startRun(input: { cardId: $id, useWorktree: false }) { id } }`, { id: createCard.id });
  expect(refused.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
  await api[1]!.ok(`mutation($id: ID!) { sendRunMessage(runId: $id, text: "STEERED: change course", mode: STEER) { id } }`, { id: runId });
  await waitFor('the steer to reach the model', async () => (model.requests.some((r) => caseOf(r) === 'steer' && JSON.stringify(r.messages).includes('STEERED')) ? true : undefined));
  // The agent answered; now stop it from the third node.
  const second = await startRun(api[0]!, '[case:steer] stop me');
  await waitForStatus(api[2]!, second, ['RUNNING']);
  await api[2]!.ok(`mutation($id: ID!) { stopRun(runId: $id) { id } }`, { id: second });
  expect((await waitForStatus(api[0]!, second, SETTLED)).status).toBe('STOPPED');
  expect(runProcesses(second)).toEqual([]);
}, 180_000);

test('two merges at once are serialized; a conflicting one leaves the remote base unchanged', async () => {
  const [a, b] = await Promise.all([startRun(api[0]!, '[case:merge-a] a'), startRun(api[1]!, '[case:merge-b] b')]);
  await Promise.all([waitForStatus(api[0]!, a, ['SUCCEEDED']), waitForStatus(api[0]!, b, ['SUCCEEDED'])]);
  const MERGE = `mutation($id: ID!) { mergeRun(runId: $id) { ok mergedSha conflictingPaths message } }`;
  const [ma, mb] = await Promise.all([api[0]!.ok(MERGE, { id: a }), api[1]!.ok(MERGE, { id: b })]);
  expect([ma.mergeRun, mb.mergeRun]).toEqual([expect.objectContaining({ ok: true }), expect.objectContaining({ ok: true })]);
  const files = await git(cluster.remote, 'ls-tree', '--name-only', 'main');
  expect(files.split('\n')).toEqual(expect.arrayContaining(['merge-a.txt', 'merge-b.txt']));

  const c = await startRun(api[2]!, '[case:merge-c] c');
  await waitForStatus(api[0]!, c, ['SUCCEEDED']);
  const moved = await commitToRemote(cluster.remote, 'README.md', 'someone else\n');
  const mc = await api[2]!.ok(MERGE, { id: c });
  expect(mc.mergeRun.ok).toBe(false);
  expect(mc.mergeRun.conflictingPaths).toEqual(['README.md']);
  expect(await git(cluster.remote, 'rev-parse', 'main')).toBe(moved);
}, 180_000);

test('a playtest started and stopped through API nodes runs on the worker that holds the worktree; deleting the card removes it there', async () => {
  const runId = await startRun(api[0]!, '[case:play] something to play');
  await waitForStatus(api[0]!, runId, ['SUCCEEDED']);
  const { startPlaytest } = await api[1]!.ok(`mutation($id: ID!) { startPlaytest(runId: $id) { playtest { running } } }`, { id: runId });
  expect(startPlaytest.playtest).toEqual({ running: true });
  const again = await api[2]!.gql(`mutation($id: ID!) { startPlaytest(runId: $id) { id } }`, { id: runId });
  expect(again.errors?.[0]?.extensions?.code).toBe('CONFLICT');

  // Followed on a third node, which runs nothing: the stream stays open while the playtest writes, and ends after its exit.
  const lines: string[] = [];
  const client = createClient({ url: api[2]!.url.replace(/^http/, 'ws'), webSocketImpl: WebSocket, retryAttempts: 0 });
  const followed = new Promise<string[]>((resolve, reject) => {
    client.subscribe<any>(
      { query: `subscription($id: ID!) { runEvents(runId: $id, untilSettled: true) { type ... on PlaytestOutputEvent { line } ... on PlaytestExitedEvent { stopped } } }`, variables: { id: runId } },
      { next: ({ data }) => void lines.push(data.runEvents.line ?? data.runEvents.type + (data.runEvents.stopped ? ':stopped' : '')), error: reject, complete: () => resolve(lines) },
    );
  });
  await waitFor('the playtest output', async () => (lines.length >= 2 && lines.some((l) => l.startsWith('/')) ? true : undefined));
  const [played, cwd] = lines.filter((l) => l === 'play' || l.startsWith('/'));
  expect(played).toBe('play');
  const holder = cluster.nodes.find((node) => cwd!.startsWith(node.dataDir + '/'))!;
  expect(holder.role).toBe('worker');

  await api[0]!.ok(`mutation($id: ID!) { stopPlaytest(runId: $id) { id } }`, { id: runId });
  expect((await followed).at(-1)).toBe('playtest_exit:stopped');
  await client.dispose();
  const { run } = await api[1]!.ok(`query($id: ID!) { run(id: $id) { playtest { running signal } card { id } } }`, { id: runId });
  expect(run.playtest).toEqual({ running: false, signal: 'SIGTERM' });
  const stopAgain = await api[1]!.gql(`mutation($id: ID!) { stopPlaytest(runId: $id) { id } }`, { id: runId });
  expect(stopAgain.errors?.[0]?.extensions?.code).toBe('CONFLICT');

  expect(existsSync(cwd!)).toBe(true);
  await api[2]!.ok(`mutation($id: ID!) { deleteCard(id: $id) }`, { id: run.card.id });
  expect(existsSync(cwd!)).toBe(false);
}, 180_000);

test('a SIGKILLed worker loses its runs within the lease, leaves no process, and a refine continues on the other worker', async () => {
  const runId = await startRun(api[0]!, '[case:long] work long');
  await waitFor('the agent to sleep', async () => (model.requests.some((r) => caseOf(r) === 'long' && r.toolResultCount === 1) ? true : undefined));
  const owner = (await waitFor('an owner', () => ownerOf(api[0]!, runId)))!;
  // What the worker publishes as it goes: the agent's commit on the remote, its session in the database.
  await waitFor('the commit on the remote', async () => ((await git(cluster.remote, 'log', '--all', '--format=%s')).includes('agent: add hello') ? true : undefined));
  await waitFor('the session stored', async () => ((await storedSessionFiles(runId)) > 0 ? true : undefined));
  // A playtest in the worktree as well: it dies with its worker too, and is recorded as ended.
  await api[2]!.ok(`mutation($id: ID!) { startPlaytest(runId: $id) { id } }`, { id: runId });
  await waitFor('the playtest process', async () => (processesWithEnv(PLAYTEST_RUN_ID_VARIABLE, decodeGlobalID(runId).id).filter(alive).length ? true : undefined));
  const victim = cluster.nodes.find((n) => n.id === owner)!;
  const killedAt = Date.now();
  await cluster.kill(victim, 'SIGKILL');
  const run = await waitForStatus(api[1]!, runId, ['INTERRUPTED'], 4 * LEASE_MS + 10_000);
  expect(Date.now() - killedAt).toBeLessThan(3 * LEASE_MS + 5_000);
  expect(run.status).toBe('INTERRUPTED');
  await waitFor('no process of the run', async () => (runProcesses(runId).length === 0 ? true : undefined), 10_000);
  await waitFor('the playtest recorded as ended', async () => ((await api[0]!.ok(`query($id: ID!) { run(id: $id) { playtest { running } } }`, { id: runId })).run.playtest.running ? undefined : true), 2 * LEASE_MS);
  expect(processesWithEnv(PLAYTEST_RUN_ID_VARIABLE, decodeGlobalID(runId).id).filter(alive)).toEqual([]);

  const { run: card } = await api[1]!.ok(`query($id: ID!) { run(id: $id) { card { id } } }`, { id: runId });
  const { startRun: refine } = await api[1]!.ok(`mutation($input: StartRunInput!) { startRun(input: $input) { id } }`, { input: { cardId: card.card.id, refineRunId: runId, prompt: '[refine] what did you commit?' } });
  const refined = await waitForStatus(api[2]!, refine.id, SETTLED);
  expect([refined.status, refined.error]).toEqual(['SUCCEEDED', null]);
  expect(await ownerOf(api[0]!, refine.id)).toBeUndefined(); // settled: held by no one
  const refineRequest = model.requests.filter((r) => r.lastUserText?.includes('[refine]')).at(-1)!;
  // The earlier conversation came along, and the branch's commit is in the worktree.
  expect(JSON.stringify(refineRequest.messages)).toContain('[case:long]');
  expect(refineRequest.toolResults.join('\n')).toContain('agent: add hello');
}, 180_000);

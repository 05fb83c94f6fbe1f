/**
 * The codex agent through the real runboard server: the pinned Codex CLI (`codex app-server`) against the
 * scripted OpenAI Responses server, in real git worktrees. A run writes and commits a file; its events are
 * typed; a STEER during a slow command reaches the next model request and a FOLLOW_UP runs after the turn;
 * stopRun leaves no process; a model error fails the run with its message; a refinement resumes the
 * thread; a server SIGKILLed mid-run is recovered; Query.agents tells the truth about codex.
 */
import { readFileSync } from 'node:fs';
import { readFile, readlink, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { decodeGlobalID } from '@pothos/plugin-relay';
import { execa } from 'execa';
import { processesWithEnv } from '../src/orchestrator/processes.js';
import { RUN_ID_VARIABLE } from '../src/orchestrator/runs.js';
import { makeAgentEnvironment, PINNED_VERSIONS, type AgentEnvironment } from './helpers/agents.js';
import type { ModelScript, ModelServer } from './helpers/model-server.js';
import { removeDirs, tempDir, makeRepo } from './helpers/repo.js';
import { startResponsesServer, type ResponsesItem } from './helpers/responses-server.js';
import { alive, runEvents, startRun, waitFor, waitForStatus } from './helpers/runs.js';
import { spawnServer, startTestServer, type TestServer } from './helpers/server.js';

const TEST_TIMEOUT_MS = 60_000; // a cold Codex start and a few model round trips, on 2 shared cores
const SLOW_COMMAND = 'echo started; sleep 37';

let model: ModelServer<ResponsesItem> | undefined;
let env: AgentEnvironment | undefined;
let t: TestServer | undefined;

afterEach(async () => {
  await t?.close();
  await model?.close();
  await env?.cleanup();
  t = model = env = undefined;
});

/** A Responses server running `script`, a Codex home pointed at it, and a runboard server whose codex agent uses both. */
async function setUp(script: ModelScript<ResponsesItem>, options: { repo?: string; dataDir?: string } = {}): Promise<TestServer> {
  model = await startResponsesServer(script);
  env = await makeAgentEnvironment('codex', model);
  t = await startTestServer({ ...options, agentEnv: env.env, env: { RUNBOARD_CODEX_COMMAND: env.command } });
  return t;
}

/** The processes carrying the run's id, as runboard gives it to the agent and everything it starts. */
function runProcesses(runId: string): number[] {
  return processesWithEnv(RUN_ID_VARIABLE, decodeGlobalID(runId).id).filter(alive);
}

/** Resolves once a process of the run runs `command`. */
function commandRunning(runId: string, command: string): Promise<number> {
  return waitFor(`"${command}" to run`, async () =>
    runProcesses(runId).find((pid) => {
      try {
        return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ').includes(command);
      } catch {
        return false;
      }
    }),
  );
}

const escapeRegExp = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

const exec = (cmd: string) => ({ toolCalls: [{ name: 'exec_command', arguments: { cmd } }] });

test('a card\'s run writes a file and commits it: SUCCEEDED, the branch has the commit, and the events are typed', async () => {
  const server = await setUp(({ toolResultCount }) => {
    if (toolResultCount === 0) return { text: 'I will create the file.', ...exec(`printf 'hello from codex\\n' > hello.txt && echo wrote-it`) };
    if (toolResultCount === 1) return exec(`git add -A && git commit -qm "agent: add hello" && echo committed`);
    return { thinking: 'Both steps worked.', text: 'Created hello.txt and committed it.' };
  });
  const userAuth = path.join(env!.env.CODEX_HOME, 'auth.json');
  await writeFile(userAuth, JSON.stringify({ OPENAI_API_KEY: 'sk-the-users-own' })); // the user's login
  const runId = await startRun(server, 'Add hello', { agent: 'codex' });
  const run = await waitForStatus(server, runId);
  expect(run).toMatchObject({ status: 'SUCCEEDED', error: null });
  expect(await readFile(path.join(run.worktreePath, 'hello.txt'), 'utf8')).toBe('hello from codex\n');
  const { stdout: subject } = await execa('git', ['log', '-1', '--format=%s', run.branch], { cwd: server.repo });
  expect(subject).toBe('agent: add hello');

  const events = await runEvents(server, runId);
  const of = (type: string) => events.filter((e) => e.type === type).map((e) => e.data);
  expect(of('assistant_text').map((d) => d.text).join('')).toBe('I will create the file.Created hello.txt and committed it.');
  expect(of('thinking').map((d) => d.text).join('')).toBe('Both steps worked.');
  const starts = of('tool_start');
  expect(starts).toHaveLength(2);
  expect(starts[0]).toMatchObject({ tool: 'command', args: { command: expect.stringContaining('hello.txt'), cwd: run.worktreePath } });
  const ends = of('tool_end');
  expect(ends.map((d) => [d.toolCallId, d.isError])).toEqual(starts.map((d) => [d.toolCallId, false]));
  expect(ends[0].output).toContain('wrote-it');
  expect(ends[1].output).toContain('committed');
  const usage = of('usage');
  expect(usage).toHaveLength(3); // one per model response
  for (const u of usage) expect(u.totalTokens).toBeGreaterThan(0);
  expect(of('message_delivered').map((d) => d.text)).toEqual([expect.stringContaining('Add hello')]);
  expect(of('agent_start')).toHaveLength(1);
  expect(events.at(-1)).toMatchObject({ type: 'status', data: { status: 'SUCCEEDED' } });

  // The thread lives in a home of the run's own under the data dir, with the user's login linked in.
  expect(run.agentSession).toMatch(/rollout-.*\.jsonl$/);
  expect(run.agentSession.startsWith(path.join(server.dataDir, 'agents', 'codex', 'homes'))).toBe(true);
  const home = run.agentSession.slice(0, run.agentSession.indexOf(`${path.sep}sessions${path.sep}`));
  expect(path.basename(home)).toBe(decodeGlobalID(runId).id);
  expect(await readlink(path.join(home, 'auth.json'))).toBe(userAuth);
  // Codex trusts the project it got full access to by writing to its config.toml: the run's copy, not the user's.
  const userConfig = readFileSync(path.join(env!.env.CODEX_HOME, 'config.toml'), 'utf8');
  expect(userConfig).not.toContain('trust_level');
  expect(readFileSync(path.join(home, 'config.toml'), 'utf8')).toMatch(new RegExp(`^${escapeRegExp(userConfig)}[^]*trust_level = "trusted"`));
  expect(runProcesses(runId)).toEqual([]);
}, TEST_TIMEOUT_MS);

/** Sends a STEER or FOLLOW_UP to a run. */
async function send(server: TestServer, runId: string, mode: 'STEER' | 'FOLLOW_UP', text: string): Promise<void> {
  await server.ok(`mutation($runId: ID!, $text: String!, $mode: MessageMode!) { sendRunMessage(runId: $runId, text: $text, mode: $mode) { id } }`, { runId, text, mode });
}

test('a STEER sent during a slow command reaches the next model request; a FOLLOW_UP runs after the turn', async () => {
  const server = await setUp(({ toolResultCount, lastUserText }) => {
    if (lastUserText === 'Then say bye.') return { text: 'Bye.' };
    if (toolResultCount === 0) return exec('echo started; sleep 4; echo slept');
    return { text: 'Done, with tabs.' };
  });
  const runId = await startRun(server, 'Reformat', { agent: 'codex' });
  await commandRunning(runId, 'sleep 4');
  await send(server, runId, 'STEER', 'Use tabs.');
  await send(server, runId, 'FOLLOW_UP', 'Then say bye.');
  const run = await waitForStatus(server, runId);
  expect(run).toMatchObject({ status: 'SUCCEEDED' });

  const requests = model!.requests;
  expect(requests).toHaveLength(3);
  // The steer went into the request that carried the slow command's result, the follow-up only after that turn.
  expect(requests[1].toolResults.join('')).toContain('slept');
  expect(JSON.stringify(requests[1].messages)).toContain('Use tabs.');
  expect(JSON.stringify(requests[1].messages)).not.toContain('Then say bye.');
  expect(requests[2].lastUserText).toBe('Then say bye.');
  expect(JSON.stringify(requests[2].messages)).toContain('Done, with tabs.');

  const events = await runEvents(server, runId);
  const delivered = events.filter((e) => e.type === 'message_delivered').map((e) => e.data.text);
  expect(delivered).toEqual([expect.stringContaining('Reformat'), 'Use tabs.', 'Then say bye.']);
  expect(events.filter((e) => e.type === 'queue').map((e) => e.data.followUp)).toEqual([1, 0]);
  expect(events.filter((e) => e.type === 'agent_start')).toHaveLength(2); // the follow-up is a turn of its own
  expect(events.filter((e) => e.type === 'assistant_text').map((e) => e.data.text).join('')).toBe('Done, with tabs.Bye.');
}, TEST_TIMEOUT_MS);

test('stopRun during a slow command leaves no process of the run alive', async () => {
  const server = await setUp(() => exec(SLOW_COMMAND));
  const runId = await startRun(server, 'Wait', { agent: 'codex' });
  const sleeper = await commandRunning(runId, 'sleep 37');
  await waitFor('the command\'s tool_start', async () => ((await runEvents(server, runId)).some((e) => e.type === 'tool_start') ? true : undefined));
  await server.ok(`mutation($id: ID!) { stopRun(runId: $id) { id } }`, { id: runId });
  const run = await waitForStatus(server, runId);
  expect(run.status).toBe('STOPPED');
  expect(alive(sleeper)).toBe(false);
  expect(runProcesses(runId)).toEqual([]);
  const events = await runEvents(server, runId);
  expect(events.find((e) => e.type === 'tool_start')?.data).toMatchObject({ tool: 'command', args: { command: expect.stringContaining('sleep 37') } });
  expect(events.at(-1)).toMatchObject({ type: 'status', data: { status: 'STOPPED' } });
}, TEST_TIMEOUT_MS);

test('a model error fails the run with the model\'s message', async () => {
  const server = await setUp(() => ({ error: { status: 400, message: 'mock bad request' } }));
  const runId = await startRun(server, 'Fail', { agent: 'codex' });
  const run = await waitForStatus(server, runId);
  expect(run).toMatchObject({ status: 'FAILED', error: 'mock bad request' });
  const events = await runEvents(server, runId);
  expect(events.filter((e) => e.type === 'model_error').map((e) => e.data.message)).toEqual(['mock bad request']);
  expect(runProcesses(runId)).toEqual([]);
}, TEST_TIMEOUT_MS);

/** Starts a refinement of `runId` with `prompt`; returns the new run's id. */
async function refine(server: Pick<TestServer, 'ok'>, runId: string, prompt: string): Promise<string> {
  const { run } = await server.ok(`query($id: ID!) { run(id: $id) { card { id } } }`, { id: runId });
  const { startRun: refined } = await server.ok(`mutation($input: StartRunInput!) { startRun(input: $input) { id agent } }`, { input: { cardId: run.card.id, refineRunId: runId, prompt } });
  expect(refined.agent).toBe('codex');
  return refined.id;
}

test('a refinement resumes the same thread: the next model request contains the earlier conversation', async () => {
  const server = await setUp(({ lastUserText }) => ({ text: lastUserText === 'Now in French.' ? 'Bonjour.' : 'Hello there.' }));
  const first = await startRun(server, 'Greet', { agent: 'codex' });
  const done = await waitForStatus(server, first);
  expect(done.status).toBe('SUCCEEDED');

  const second = await refine(server, first, 'Now in French.');
  const refined = await waitForStatus(server, second);
  expect(refined).toMatchObject({ status: 'SUCCEEDED', worktreePath: done.worktreePath, agentSession: done.agentSession });
  const last = model!.requests.at(-1)!;
  expect(last.lastUserText).toBe('Now in French.');
  expect(JSON.stringify(last.messages)).toContain('Hello there.');
  expect(JSON.stringify(last.messages)).toContain('Greet');
  const events = await runEvents(server, second);
  expect(events.filter((e) => e.type === 'usage')).toHaveLength(1); // the resumed thread's old totals are not counted again
  expect(events.filter((e) => e.type === 'assistant_text').map((e) => e.data.text).join('')).toBe('Bonjour.');

  // A thread whose file is gone cannot be resumed: the refinement is refused before anything starts.
  await rm(done.agentSession);
  const { run } = await server.ok(`query($id: ID!) { run(id: $id) { card { id } } }`, { id: second });
  const refused = await server.gql(`mutation($input: StartRunInput!) { startRun(input: $input) { id } }`, { input: { cardId: run.card.id, refineRunId: second, prompt: 'Again.' } });
  expect(refused.errors?.[0]).toMatchObject({ message: expect.stringContaining('can no longer be resumed'), extensions: { code: 'CONFLICT' } });
}, TEST_TIMEOUT_MS);

test('Query.agents reports codex available with its version and capabilities; a missing program is unavailable and refused', async () => {
  const server = await setUp(() => ({ text: 'unused' }));
  const query = `{ agents { name protocol command available version capabilities { steer followUp resume usage cost } } }`;
  const { agents } = await server.ok(query);
  expect(agents.find((a: { name: string }) => a.name === 'codex')).toEqual({
    name: 'codex',
    protocol: 'codex-app-server',
    command: `${env!.command} app-server -c approval_policy="never" -c sandbox_mode="danger-full-access"`,
    available: true,
    version: PINNED_VERSIONS.codex,
    capabilities: { steer: 'NATIVE', followUp: 'QUEUED', resume: true, usage: true, cost: false },
  });
  await t!.close();

  t = await startTestServer({ agentEnv: env!.env, env: { RUNBOARD_CODEX_COMMAND: '/nonexistent/codex' } });
  const missing = (await t.ok(query)).agents.find((a: { name: string }) => a.name === 'codex');
  expect(missing).toMatchObject({ available: false, version: null });
  const { createCard } = await t.ok(`mutation { createCard(input: { title: "No codex" }) { id } }`);
  const refused = await t.gql(`mutation($input: StartRunInput!) { startRun(input: $input) { id } }`, { input: { cardId: createCard.id, agent: 'codex' } });
  expect(refused.errors?.[0]).toMatchObject({ message: expect.stringMatching(/codex.*not found.*installed agents: pi/), extensions: { code: 'BAD_USER_INPUT' } });
}, TEST_TIMEOUT_MS);

test('SIGKILL of the server mid-run, then a restart: INTERRUPTED, no stray processes, and refine resumes the thread', async () => {
  const repo = await makeRepo();
  const dataDir = await tempDir();
  model = await startResponsesServer(({ lastUserText }) => (lastUserText === 'Carry on.' ? { text: 'Carried on.' } : exec(SLOW_COMMAND)));
  env = await makeAgentEnvironment('codex', model);
  const serverEnv = { ...env.env, RUNBOARD_REPO: repo, RUNBOARD_DATA_DIR: dataDir, RUNBOARD_CODEX_COMMAND: env.command };
  let second: Awaited<ReturnType<typeof spawnServer>> | undefined;
  try {
    const first = await spawnServer(serverEnv);
    const runId = await startRun(first.t as TestServer, 'Outlive the server', { agent: 'codex' });
    const sleeper = await commandRunning(runId, 'sleep 37');
    first.child.kill('SIGKILL'); // a crash: no graceful shutdown
    await first.child;

    second = await spawnServer(serverEnv);
    const recovered = await waitForStatus(second.t as TestServer, runId, ['INTERRUPTED']);
    expect(recovered.agentSession).toMatch(/rollout-.*\.jsonl$/);
    await waitFor('the run\'s processes to end', async () => (runProcesses(runId).length === 0 ? true : undefined));
    expect(alive(sleeper)).toBe(false);

    const refinedId = await refine(second.t, runId, 'Carry on.');
    const refined = await waitForStatus(second.t as TestServer, refinedId);
    expect(refined).toMatchObject({ status: 'SUCCEEDED', agentSession: recovered.agentSession });
    const last = model.requests.at(-1)!;
    expect(last.lastUserText).toBe('Carry on.');
    expect(JSON.stringify(last.messages)).toContain('Outlive the server');
    expect(JSON.stringify(last.messages)).toContain('sleep 37');
    expect(runProcesses(refinedId)).toEqual([]);
  } finally {
    second?.child.kill('SIGTERM');
    await second?.child;
    await removeDirs(repo, dataDir);
  }
}, TEST_TIMEOUT_MS);

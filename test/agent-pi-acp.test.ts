/**
 * The ACP driver's refine path (`resume: true` → `session/load` in a new agent process) against a real ACP
 * agent that can load a session: pi-acp 0.0.24 (pinned in .test-agents/) over this project's pi, configured as
 * a named agent through RUNBOARD_AGENTS and pointed at the scripted chat-completions server. gemini-cli, the
 * driver's other test agent, cannot load a session (AGENTS-ACP.md §9), so this is where refine is shown: a run
 * commits and SUCCEEDS, its refinement's model request carries the earlier conversation, and after a server
 * SIGKILLed mid-run and restarted the run is INTERRUPTED, nothing of it is left running, and it can be refined.
 */
import { mkdir, readFile, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { requirePinnedPackage } from './helpers/agents.js';
import { makePiEnvironment, PI_BIN, startModelServer, type ModelScript, type ModelServer, type PiEnvironment } from './helpers/model-server.js';
import { makeRepo, removeDirs, tempDir } from './helpers/repo.js';
import { alive, processRunning, runEvents, runProcesses, startRun, waitForStatus, writeAndCommit } from './helpers/runs.js';
import { spawnServer, startTestServer, type TestServer } from './helpers/server.js';

// pi-acp's session/new starts pi twice (RPC, then a blocking `pi --version`); each test took 6-11 s here, on 2 busy cores.
const TEST_TIMEOUT_MS = 60_000;
const PI_ACP = requirePinnedPackage('pi-acp', 'dist/index.js');

let model: ModelServer | undefined;
let pi: PiEnvironment | undefined;
let t: TestServer | undefined;
const runIds: string[] = [];

afterEach(async () => {
  await t?.close();
  for (const runId of runIds.splice(0)) expect(runProcesses(runId)).toEqual([]);
  await model?.close();
  await pi?.cleanup();
  t = model = pi = undefined;
});

/**
 * RUNBOARD_AGENTS with one ACP agent, `pi-acp`, that can refine (resume: true), and a pi config for the scripted
 * model. pi-acp starts `$PI_ACP_PI_COMMAND --mode rpc` with no model flags, so pi's settings name the model; it
 * also runs `pi --version` and `npm view` from PATH (AGENTS-ACP.md §11 trap 10), so a bin dir of links goes first:
 * `pi` to this project's pi, `npm` to `true` (no registry lookup, no update notice).
 */
async function piAcpAgents(server: ModelServer): Promise<{ env: PiEnvironment; agents: string }> {
  const env = await makePiEnvironment(server);
  const agentDir = env.env.PI_CODING_AGENT_DIR;
  await writeFile(path.join(agentDir, 'settings.json'), JSON.stringify({ defaultProvider: 'mock', defaultModel: 'mock-1', retry: { enabled: false, provider: { maxRetries: 0 } }, quietStartup: true }));
  const bin = path.join(env.dir, 'bin');
  await mkdir(bin);
  await symlink(PI_BIN, path.join(bin, 'pi'));
  await symlink('/bin/true', path.join(bin, 'npm'));
  const agentEnv = { ...env.env, PI_ACP_PI_COMMAND: PI_BIN, PATH: `${bin}:${process.env.PATH}` };
  const agents = JSON.stringify({ 'pi-acp': { protocol: 'acp', command: [process.execPath, PI_ACP], env: agentEnv, resume: true } });
  return { env, agents };
}

/** Starts a refinement of `runId` with `prompt`; returns its id. */
async function refine(server: Pick<TestServer, 'ok'>, runId: string, prompt: string): Promise<string> {
  const { run } = await server.ok(`query($id: ID!) { run(id: $id) { card { id } } }`, { id: runId });
  const { startRun: next } = await server.ok(`mutation($input: StartRunInput!) { startRun(input: $input) { id } }`, { input: { cardId: run.card.id, refineRunId: runId, prompt } });
  runIds.push(next.id);
  return next.id;
}

/** The conversation of the first model request whose last user text holds `text`, as JSON. */
const conversationFor = (text: string) => JSON.stringify(model!.requests.find((r) => r.lastUserText?.includes(text))?.messages ?? null);

test('a pi-acp run commits and SUCCEEDS; its refinement loads the same session, and the next model request holds the earlier conversation', async () => {
  const script: ModelScript = (request, index) => (request.lastUserText?.includes('Now add a second line.') ? { text: 'Refined.' } : writeAndCommit(request, index));
  model = await startModelServer(script);
  const config = await piAcpAgents(model);
  pi = config.env;
  t = await startTestServer({ env: { RUNBOARD_AGENTS: config.agents, RUNBOARD_DEFAULT_AGENT: 'pi-acp' } });

  const runId = await startRun(t, 'Add hello');
  runIds.push(runId);
  const run = await waitForStatus(t, runId, undefined, 40_000);
  expect(run).toMatchObject({ status: 'SUCCEEDED', error: null });
  expect(run.agentSession).toBeTruthy();
  const { run: review } = await t.ok(`query($id: ID!) { run(id: $id) { agent commits { subject } } }`, { id: runId });
  expect(review).toEqual({ agent: 'pi-acp', commits: [{ subject: 'agent: add hello' }] });
  expect(await readFile(path.join(run.worktreePath, 'hello.txt'), 'utf8')).toBe('hello from the agent\n');
  const firstRequests = model.requests.length;

  const refinedId = await refine(t, runId, 'Now add a second line.');
  const refined = await waitForStatus(t, refinedId, undefined, 30_000);
  expect(refined).toMatchObject({ status: 'SUCCEEDED', error: null, agentSession: run.agentSession });
  expect(model.requests).toHaveLength(firstRequests + 1); // the load replayed the history without asking the model
  const history = conversationFor('Now add a second line.');
  expect(history).toContain('Add hello'); // the first run's prompt,
  expect(history).toContain('hello from the agent'); // its write tool call,
  expect(history).toContain('Done.'); // and its answer
  // session/load replays the history as updates before the prompt: they are not the refinement's events.
  const events = await runEvents(t, refinedId);
  expect(events.filter((e) => e.type === 'assistant_text').map((e) => e.data.text).join('')).toBe('Refined.');
  expect(events.filter((e) => e.type === 'tool_start')).toEqual([]);
  expect(events.map((e) => e.type)).not.toContain('warning');
}, TEST_TIMEOUT_MS);

test('SIGKILL of the server mid-run, then restart: INTERRUPTED, no process of the run left, and a refinement resumes the session', async () => {
  const repo = await makeRepo();
  const dataDir = await tempDir();
  model = await startModelServer((request) => {
    if (request.lastUserText?.includes('Go on.')) return { text: 'Resumed.' };
    return request.toolResultCount === 0 ? { toolCalls: [{ name: 'bash', arguments: { command: 'echo started; sleep 37' } }] } : { text: 'Slept.' };
  });
  const config = await piAcpAgents(model);
  pi = config.env;
  const serverEnv = { RUNBOARD_REPO: repo, RUNBOARD_DATA_DIR: dataDir, RUNBOARD_AGENTS: config.agents, RUNBOARD_DEFAULT_AGENT: 'pi-acp' };
  let second: Awaited<ReturnType<typeof spawnServer>> | undefined;
  try {
    const first = await spawnServer(serverEnv);
    const runId = await startRun(first.t as TestServer, 'Outlive the server');
    runIds.push(runId);
    const toolPid = await processRunning(runId, 'sleep 37', 30_000);
    const before = runProcesses(runId); // pi-acp, pi, the shell and its sleep
    expect(before.length).toBeGreaterThanOrEqual(3);
    first.child.kill('SIGKILL');
    await first.child;
    expect(alive(toolPid)).toBe(true); // the agent and its tool outlive their server

    second = await spawnServer(serverEnv);
    const recovered = await waitForStatus(second.t as TestServer, runId, ['INTERRUPTED']);
    expect(recovered.agentSession).toBeTruthy();
    expect(before.filter(alive)).toEqual([]);
    expect(runProcesses(runId)).toEqual([]);

    const refinedId = await refine(second.t, runId, 'Go on.');
    const refined = await waitForStatus(second.t as TestServer, refinedId, undefined, 30_000);
    expect(refined).toMatchObject({ status: 'SUCCEEDED', error: null, agentSession: recovered.agentSession });
    const history = conversationFor('Go on.');
    expect(history).toContain('Outlive the server');
    expect(history).toContain('sleep 37'); // the interrupted turn's tool call is in the loaded session
  } finally {
    second?.child.kill('SIGTERM');
    await second?.child;
    await removeDirs(repo, dataDir);
  }
}, TEST_TIMEOUT_MS);

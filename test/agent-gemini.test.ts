/**
 * The ACP driver with gemini-cli (the pinned CLI from .test-agents/, `--acp`), driven through the real
 * runboard server against the scripted Gemini API server: a run that writes and commits, typed events,
 * an emulated STEER (cancel, then prompt) and a queued FOLLOW_UP, stopRun during a slow tool, a model
 * error, refine refused (gemini-cli's session/load is broken: AGENTS-ACP.md §9), a server SIGKILLed
 * mid-run, and Query.agents. After every test no process carrying the run's id may be left in /proc.
 */
import { existsSync, readFileSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { processesWithEnv } from '../src/orchestrator/processes.js';
import { GEMINI_SETTINGS, makeAgentEnvironment, PINNED_VERSIONS, type AgentEnvironment } from './helpers/agents.js';
import { startGeminiServer, type GeminiContent } from './helpers/gemini-server.js';
import type { ModelScript, ModelServer } from './helpers/model-server.js';
import { makeRepo, removeDirs, tempDir } from './helpers/repo.js';
import { alive, runEvents, startRun, waitFor, waitForStatus } from './helpers/runs.js';
import { spawnServer, startTestServer, type TestServer } from './helpers/server.js';

const TEST_TIMEOUT_MS = 60_000; // gemini-cli takes 3-4 s to answer initialize on 2 shared cores
const RUN_ID_VARIABLE = 'RUNBOARD_RUN_ID';

let model: ModelServer<GeminiContent> | undefined;
let env: AgentEnvironment | undefined;
let t: TestServer | undefined;
const runIds: string[] = [];

/** RUNBOARD_AGENTS pointing the gemini preset at the pinned CLI, with the scripted model. */
const geminiAgents = (agent: AgentEnvironment) => JSON.stringify({ gemini: { command: [agent.command], args: ['--acp', ...agent.args] } });

async function setUp(script: ModelScript<GeminiContent>): Promise<TestServer> {
  model = await startGeminiServer(script);
  env = await makeAgentEnvironment('gemini', model);
  t = await startTestServer({ agentEnv: env.env, env: { RUNBOARD_AGENTS: geminiAgents(env), RUNBOARD_DEFAULT_AGENT: 'gemini' } });
  return t;
}

async function start(server: TestServer, title: string, extra: Record<string, unknown> = {}): Promise<string> {
  const runId = await startRun(server, title, extra);
  runIds.push(runId);
  return runId;
}

afterEach(async () => {
  await t?.close();
  for (const runId of runIds.splice(0)) expect(processesWithEnv(RUN_ID_VARIABLE, rawRunId(runId))).toEqual([]);
  await model?.close();
  await env?.cleanup();
  t = model = env = undefined;
});

/** The database id a run's processes carry in RUNBOARD_RUN_ID, from its global id. */
const rawRunId = (globalId: string) => Buffer.from(globalId, 'base64').toString().split(':')[1];

/** Resolves with the pid of the run's process whose command line holds `command`. */
function processRunning(rawId: string, command: string): Promise<number> {
  return waitFor(`"${command}" to run`, async () =>
    processesWithEnv(RUN_ID_VARIABLE, rawId).find((pid) => {
      try {
        return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ').includes(command);
      } catch {
        return false;
      }
    }),
  );
}

const SLOW = 'echo started; sleep 37';

test('a run writes and commits a file with its own tools in yolo mode, SUCCEEDS, and reports text, tools with output and usage', async () => {
  const server = await setUp(({ toolResultCount }) => {
    if (toolResultCount === 0) return { toolCalls: [{ name: 'write_file', arguments: { file_path: 'hello.txt', content: 'hello from the agent\n' } }], text: 'I will create the file.' };
    if (toolResultCount === 1) return { toolCalls: [{ name: 'run_shell_command', arguments: { command: 'git add -A && git commit -qm "agent: add hello" && echo committed' } }] };
    return { text: 'Created hello.txt and committed it.', thinking: 'Both steps worked.' };
  });
  const runId = await start(server, 'Add hello', { agent: 'gemini' });
  const run = await waitForStatus(server, runId, undefined, 45_000);
  expect(run).toMatchObject({ status: 'SUCCEEDED', error: null });
  expect(run.agentSession).toMatch(/^[0-9a-f-]{36}$/);

  const { run: review } = await server.ok(`query($id: ID!) { run(id: $id) { agent agentCommand commits { subject } } }`, { id: runId });
  expect(review).toMatchObject({ agent: 'gemini', agentCommand: expect.stringContaining('--acp'), commits: [{ subject: 'agent: add hello' }] });
  expect(review.agentCommand).toContain('session mode yolo'); // the run records that it asked nothing
  expect(await readFile(path.join(run.worktreePath, 'hello.txt'), 'utf8')).toBe('hello from the agent\n');

  const events = await runEvents(server, runId);
  const types = events.map((e) => e.type);
  expect(types).not.toContain('warning');
  const text = events.filter((e) => e.type === 'assistant_text').map((e) => e.data.text).join('');
  expect(text).toContain('Created hello.txt and committed it.');
  expect(text).not.toContain('[MODE_UPDATE]'); // set_mode's echo comes before the prompt, and is not the model's answer
  expect(events.filter((e) => e.type === 'thinking').map((e) => e.data.text).join('')).toContain('Both steps worked.');
  const writeEnd = events.find((e) => e.type === 'tool_end' && e.data.output.includes('hello.txt'));
  expect(writeEnd?.data).toMatchObject({ isError: false, output: expect.stringContaining('hello from the agent') });
  const starts = events.filter((e) => e.type === 'tool_start');
  expect(starts).toHaveLength(2);
  for (const toolStart of starts) expect(types.indexOf('tool_end', events.indexOf(toolStart))).toBeGreaterThan(-1);
  expect(events.find((e) => e.type === 'usage')?.data).toMatchObject({ inputTokens: expect.any(Number), outputTokens: expect.any(Number), costUsd: 0 });
  expect(events.find((e) => e.type === 'usage')!.data.totalTokens).toBeGreaterThan(0);
  expect(events.at(-1)).toMatchObject({ type: 'status', data: { status: 'SUCCEEDED' } });
}, TEST_TIMEOUT_MS);

test('in a folder gemini-cli does not trust, yolo is refused: the run says so in a warning and allows each tool once', async () => {
  const server = await setUp(({ toolResultCount }) =>
    toolResultCount === 0 ? { toolCalls: [{ name: 'run_shell_command', arguments: { command: 'echo asked > asked.txt && git add -A && git commit -qm "agent: asked"' } }] } : { text: 'Done.' },
  );
  // The user's own settings, with folder trust on (gemini-cli's default): runboard does not change them.
  await writeFile(path.join(env!.env.HOME, '.gemini', 'settings.json'), JSON.stringify({ ...GEMINI_SETTINGS, security: { auth: GEMINI_SETTINGS.security.auth } }));
  const runId = await start(server, 'Untrusted');
  const run = await waitForStatus(server, runId, undefined, 30_000);
  expect(run.status).toBe('SUCCEEDED');
  const events = await runEvents(server, runId);
  expect(events.find((e) => e.type === 'warning')?.data.message).toMatch(/could not switch gemini to its no-ask mode "yolo" \(.*untrusted folder.*\); permission requests are allowed one by one/);
  const { run: review } = await server.ok(`query($id: ID!) { run(id: $id) { commits { subject } } }`, { id: runId });
  expect(review.commits).toEqual([{ subject: 'agent: asked' }]);
}, TEST_TIMEOUT_MS);

test('a STEER during a slow tool cancels the turn and reaches the next model request; the slow tool is gone', async () => {
  const server = await setUp(({ lastUserText, toolResultCount }) => {
    if (lastUserText?.includes('Use the other approach.')) return { text: 'Steered.' };
    return toolResultCount === 0 ? { toolCalls: [{ name: 'run_shell_command', arguments: { command: SLOW } }] } : { text: 'Finished waiting.' };
  });
  const runId = await start(server, 'Wait a while');
  const rawId = rawRunId(runId);
  const toolPid = await processRunning(rawId, 'sleep 37');
  await server.ok(`mutation($id: ID!) { sendRunMessage(runId: $id, text: "Use the other approach.", mode: STEER) { id } }`, { id: runId });

  const run = await waitForStatus(server, runId, undefined, 30_000);
  expect(run.status).toBe('SUCCEEDED');
  expect(alive(toolPid)).toBe(false); // the cancel ended it
  const steered = model!.requests.findIndex((r) => r.lastUserText?.includes('Use the other approach.'));
  expect(steered).toBe(1); // the very next model request
  expect(JSON.stringify(model!.requests[steered].messages)).toContain('run_shell_command'); // the cancelled call stays in the history
  const events = await runEvents(server, runId);
  expect(events).toContainEqual(expect.objectContaining({ type: 'user_message', data: { mode: 'STEER', text: 'Use the other approach.' } }));
  expect(events).toContainEqual(expect.objectContaining({ type: 'message_delivered', data: { text: 'Use the other approach.' } }));
  expect(events.filter((e) => e.type === 'assistant_text').map((e) => e.data.text).join('')).toContain('Steered.');
}, TEST_TIMEOUT_MS);

test('a FOLLOW_UP waits for the turn to end, then runs as the next turn', async () => {
  const server = await setUp(({ lastUserText, toolResultCount }) => {
    if (lastUserText?.includes('Now say goodbye.')) return { text: 'Goodbye.' };
    return toolResultCount === 0 ? { toolCalls: [{ name: 'run_shell_command', arguments: { command: 'echo started; sleep 3; echo slept' } }] } : { text: 'First turn done.' };
  });
  const runId = await start(server, 'Wait, then more');
  await processRunning(rawRunId(runId), 'sleep 3');
  await server.ok(`mutation($id: ID!) { sendRunMessage(runId: $id, text: "Now say goodbye.", mode: FOLLOW_UP) { id } }`, { id: runId });

  const run = await waitForStatus(server, runId, undefined, 30_000);
  expect(run.status).toBe('SUCCEEDED');
  const texts = model!.requests.map((r) => r.lastUserText ?? '');
  expect(model!.requests).toHaveLength(3); // the tool call, its result, then the follow-up
  expect(texts.slice(0, 2).some((text) => text.includes('Now say goodbye.'))).toBe(false); // it did not cut into the turn
  expect(model!.requests[1].toolResults.join('')).toContain('slept'); // the tool ran to its end
  expect(texts[2]).toContain('Now say goodbye.');
  expect(JSON.stringify(model!.requests[2].messages)).toContain('First turn done.');
  const events = await runEvents(server, runId);
  const answer = events.filter((e) => e.type === 'assistant_text').map((e) => e.data.text).join('');
  expect(answer.indexOf('First turn done.')).toBeLessThan(answer.indexOf('Goodbye.'));
  expect(events).toContainEqual(expect.objectContaining({ type: 'queue', data: { steering: 0, followUp: 1 } }));
}, TEST_TIMEOUT_MS);

test('stopRun during a slow tool leaves no process of the run alive', async () => {
  const server = await setUp(() => ({ toolCalls: [{ name: 'run_shell_command', arguments: { command: SLOW } }] }));
  const runId = await start(server, 'Never finishes');
  const rawId = rawRunId(runId);
  const toolPid = await processRunning(rawId, 'sleep 37');
  const before = processesWithEnv(RUN_ID_VARIABLE, rawId); // gemini, its shell and the tool
  expect(before.length).toBeGreaterThanOrEqual(2);
  await server.ok(`mutation($id: ID!) { stopRun(runId: $id) { id } }`, { id: runId });
  const run = await waitForStatus(server, runId);
  expect(run.status).toBe('STOPPED');
  expect(alive(toolPid)).toBe(false);
  expect(before.filter(alive)).toEqual([]);
  expect(processesWithEnv(RUN_ID_VARIABLE, rawId)).toEqual([]);
}, TEST_TIMEOUT_MS);

test('a model error gives FAILED with the model\'s message', async () => {
  const server = await setUp(() => ({ error: { status: 400, message: 'mock bad request' } }));
  const runId = await start(server, 'Fails');
  const run = await waitForStatus(server, runId, undefined, 30_000);
  expect(run).toMatchObject({ status: 'FAILED', error: 'mock bad request' });
  const events = await runEvents(server, runId);
  expect(events).toContainEqual(expect.objectContaining({ type: 'model_error', data: { message: 'mock bad request' } }));
}, TEST_TIMEOUT_MS);

test('Query.agents reports gemini available at its version with its capabilities, and refining a gemini run is CONFLICT', async () => {
  const server = await setUp(() => ({ text: 'Done.' }));
  const { agents } = await server.ok(`{ agents { name protocol command isDefault available version capabilities { steer followUp resume usage cost } } }`);
  expect(agents.map((a: any) => a.name)).toEqual(['pi', 'claude', 'codex', 'gemini']);
  expect(agents[3]).toEqual({
    name: 'gemini',
    protocol: 'acp',
    command: `${env!.command} --acp -m gemini-2.5-flash (session mode yolo)`,
    isDefault: true,
    available: true,
    version: PINNED_VERSIONS.gemini,
    capabilities: { steer: 'EMULATED', followUp: 'QUEUED', resume: false, usage: true, cost: false },
  });

  const runId = await start(server, 'Say done');
  expect((await waitForStatus(server, runId, undefined, 30_000)).status).toBe('SUCCEEDED');
  const { run } = await server.ok(`query($id: ID!) { run(id: $id) { card { id } } }`, { id: runId });
  const refine = await server.gql(`mutation($input: StartRunInput!) { startRun(input: $input) { id } }`, { input: { cardId: run.card.id, refineRunId: runId, prompt: 'More.' } });
  expect(refine.errors?.[0]).toMatchObject({ message: expect.stringContaining('gemini cannot resume a session'), extensions: { code: 'CONFLICT' } });
}, TEST_TIMEOUT_MS);

test('SIGKILL of the server mid-run, then restart: INTERRUPTED, no stray processes, and refine is refused with CONFLICT', async () => {
  const repo = await makeRepo();
  const dataDir = await tempDir();
  model = await startGeminiServer(() => ({ toolCalls: [{ name: 'run_shell_command', arguments: { command: SLOW } }] }));
  env = await makeAgentEnvironment('gemini', model);
  const serverEnv = { ...env.env, RUNBOARD_REPO: repo, RUNBOARD_DATA_DIR: dataDir, RUNBOARD_AGENTS: geminiAgents(env), RUNBOARD_DEFAULT_AGENT: 'gemini' };
  let second: Awaited<ReturnType<typeof spawnServer>> | undefined;
  try {
    const first = await spawnServer(serverEnv);
    const runId = await startRun(first.t as TestServer, 'Outlive the server');
    const rawId = rawRunId(runId);
    const toolPid = await processRunning(rawId, 'sleep 37');
    first.child.kill('SIGKILL');
    await first.child;
    expect(alive(toolPid)).toBe(true); // the agent and its tool outlive their server

    second = await spawnServer(serverEnv);
    const recovered = await waitForStatus(second.t as TestServer, runId, ['INTERRUPTED']);
    expect(recovered.agentSession).toBeTruthy();
    expect(alive(toolPid)).toBe(false);
    expect(processesWithEnv(RUN_ID_VARIABLE, rawId)).toEqual([]);
    const { run } = await second.t.ok(`query($id: ID!) { run(id: $id) { card { id } worktreePath } }`, { id: runId });
    expect(existsSync(run.worktreePath)).toBe(true);
    const refine = await second.t.gql(`mutation($input: StartRunInput!) { startRun(input: $input) { id } }`, { input: { cardId: run.card.id, refineRunId: runId, prompt: 'Go on.' } });
    expect(refine.errors?.[0]?.extensions?.code).toBe('CONFLICT');
  } finally {
    second?.child.kill('SIGTERM');
    await second?.child;
    await removeDirs(repo, dataDir);
  }
}, TEST_TIMEOUT_MS);

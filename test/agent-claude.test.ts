/**
 * The claude driver through the real server: the pinned Claude Code (scripts/install-test-agents.sh) over
 * stream-json, against the scripted Anthropic Messages server, in real git worktrees.
 */
import { existsSync, readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import { ClaudeEventNormalizer } from '../src/agents/claude/events.js';
import { parseClaudeLine } from '../src/agents/claude/protocol.js';
import type { RunEventInput } from '../src/orchestrator/run-events.js';
import { RUN_ID_VARIABLE } from '../src/orchestrator/runs.js';
import { processesWithEnv } from '../src/orchestrator/processes.js';
import { makeAgentEnvironment, PINNED_VERSIONS, type AgentEnvironment } from './helpers/agents.js';
import { startAnthropicServer, type AnthropicMessage } from './helpers/anthropic-server.js';
import type { ModelRequest, ModelServer } from './helpers/model-server.js';
import { makeRepo, removeDirs, tempDir } from './helpers/repo.js';
import { alive, runEvents, startRun, waitFor, waitForStatus } from './helpers/runs.js';
import { spawnServer, startTestServer, type TestServer } from './helpers/server.js';

let model: ModelServer<AnthropicMessage>;
let claude: AgentEnvironment;
let t: TestServer;

/** The server's configuration for Claude Code: the pinned binary, and the scripted model. */
const claudeConfig = () => ({ RUNBOARD_CLAUDE_COMMAND: claude.command, RUNBOARD_CLAUDE_ARGS: claude.args.join(' ') });

beforeAll(async () => {
  model = await startAnthropicServer();
  claude = await makeAgentEnvironment('claude', model);
  t = await startTestServer({ agentEnv: claude.env, env: claudeConfig() });
});

afterAll(async () => {
  await t?.close();
  await model?.close();
  await claude?.cleanup();
});

const claudeRun = (server: Pick<TestServer, 'ok'>, title: string) => startRun(server as TestServer, title, { agent: 'claude' });
const dbIdOf = (runId: string) => Buffer.from(runId, 'base64').toString().split(':')[1]!;
const firstLine = (text: string | undefined) => (text ?? '').split('\n')[0]!.trim();
/** Every text the model saw in a request's conversation, tool results and reminders included. */
const conversationText = (request: ModelRequest<AnthropicMessage>) => JSON.stringify(request.messages);

/** Waits for a pid the agent's tool wrote into `pidFile`. */
const toolPid = (pidFile: string) => waitFor('the tool to start', async () => (existsSync(pidFile) ? Number((await readFile(pidFile, 'utf8')).trim()) || undefined : undefined));

/** A recorded transcript (test/fixtures/claude) through the normaliser, flushed at the end. */
function normalize(fixture: string): RunEventInput[] {
  const out: RunEventInput[] = [];
  const normalizer = new ClaudeEventNormalizer((events) => out.push(...events));
  for (const line of readFileSync(new URL(`./fixtures/claude/${fixture}`, import.meta.url), 'utf8').split('\n').filter(Boolean)) normalizer.handle(parseClaudeLine(line));
  normalizer.flush();
  return out;
}

test('the normaliser turns recorded transcripts into run events: text, tools, usage with per-turn cost, model errors', () => {
  const written = normalize('write-commit.jsonl');
  expect(written.map((e) => e.type)).toEqual(['agent_start', 'assistant_text', 'tool_start', 'tool_end', 'tool_start', 'tool_end', 'thinking', 'assistant_text', 'usage', 'agent_end']);
  expect(written[3]).toMatchObject({ data: { toolCallId: 'toolu_mock_0_0', tool: 'Write', isError: false, output: expect.stringMatching(/^File created/) } });
  expect(written[8]).toMatchObject({ data: { input: 66238, output: 64, totalTokens: 66302, cost: 0.19967400000000002 } });

  const failed = normalize('model-error.jsonl');
  expect(failed.map((e) => e.type)).toEqual(['agent_start', 'model_error', 'agent_end']);
  expect(failed[1]).toEqual({ type: 'model_error', data: { message: 'API Error: 400 mock bad request' } });

  // Claude Code reports the session's running cost; usage events carry its growth, so they add up to the total
  // (the steered turn reports no tokens: its cost goes with the next).
  const steered = normalize('steer.jsonl').filter((e) => e.type === 'usage');
  expect(steered.map((e) => (e.data as { cost: number }).cost.toFixed(6))).toEqual(['0.132144']);

  const interrupted = normalize('interrupt-tool.jsonl');
  expect(interrupted.find((e) => e.type === 'tool_end')).toMatchObject({ data: { tool: 'Bash', isError: true } });
  expect(interrupted.filter((e) => e.type === 'unrecognized').map((e) => (e.data as { originalType: string }).originalType)).toEqual(['user']); // "[Request interrupted by user for tool use]" is kept
});

let committedRun: { id: string; session: string; prompt: string };

test('Query.agents reports claude as available with its version and capabilities', async () => {
  const { agents } = await t.ok(`{ agents { name protocol available version command isDefault capabilities { steer followUp resume usage cost } } }`);
  expect(agents.find((a: any) => a.name === 'claude')).toEqual({
    name: 'claude',
    protocol: 'claude-stream-json',
    available: true,
    version: PINNED_VERSIONS.claude,
    command: expect.stringContaining('--permission-mode bypassPermissions'),
    isDefault: false,
    capabilities: { steer: 'NATIVE', followUp: 'QUEUED', resume: true, usage: true, cost: true },
  });
  // A command that is not there is reported, not guessed.
  const missing = await startTestServer({ agentEnv: claude.env, env: { RUNBOARD_CLAUDE_COMMAND: '/nonexistent/claude' } });
  try {
    const { agents: others } = await missing.ok(`{ agents { name available version } }`);
    expect(others.find((a: any) => a.name === 'claude')).toEqual({ name: 'claude', available: false, version: null });
    const refused = await missing.gql(`mutation($input: StartRunInput!) { startRun(input: $input) { id } }`, {
      input: { cardId: (await missing.ok(`mutation { createCard(input: { title: "x" }) { id } }`)).createCard.id, agent: 'claude' },
    });
    expect(refused.errors?.[0]).toMatchObject({ message: expect.stringMatching(/"claude" is configured but its program was not found; installed agents: pi/), extensions: { code: 'BAD_USER_INPUT' } });
  } finally {
    await missing.close();
  }
});

test('a run writes a file and commits it, SUCCEEDS with the commit on its branch, and reports typed events with usage and cost', async () => {
  model.setScript(({ toolResultCount, toolResults }) => {
    if (toolResultCount === 0) return { toolCalls: [{ name: 'Bash', arguments: { command: 'pwd', description: 'Where am I' } }], text: 'Looking around.' };
    if (toolResultCount === 1) return { toolCalls: [{ name: 'Write', arguments: { file_path: path.join(firstLine(toolResults[0]), 'hello.txt'), content: 'hello from claude\n' } }] };
    if (toolResultCount === 2) return { toolCalls: [{ name: 'Bash', arguments: { command: 'git add -A && git commit -qm "agent: add hello"', description: 'Commit' } }] };
    return { thinking: 'Both steps worked.', text: 'Created hello.txt and committed it.' };
  });
  const prompt = 'Create hello.txt and commit it.';
  const runId = await startRun(t, 'Say hello', { agent: 'claude', prompt });
  const run = await waitForStatus(t, runId);
  expect(run).toMatchObject({ status: 'SUCCEEDED', error: null, agentSession: expect.stringMatching(/^[0-9a-f-]{36}$/) });
  const { stdout: subjects } = await execa('git', ['log', '--format=%s', run.branch], { cwd: t.repo });
  expect(subjects.split('\n')[0]).toBe('agent: add hello');
  expect(await readFile(path.join(run.worktreePath, 'hello.txt'), 'utf8')).toBe('hello from claude\n');
  const { run: shown } = await t.ok(`query($id: ID!) { run(id: $id) { agent agentCommand } }`, { id: runId });
  expect(shown).toEqual({ agent: 'claude', agentCommand: expect.stringContaining('--permission-mode bypassPermissions') });

  const events = await runEvents(t, runId);
  const texts = events.filter((e) => e.type === 'assistant_text').map((e) => e.data.text).join('');
  expect(texts).toBe('Looking around.Created hello.txt and committed it.');
  expect(events.some((e) => e.type === 'thinking' && e.data.text === 'Both steps worked.')).toBe(true);
  const starts = events.filter((e) => e.type === 'tool_start');
  const ends = events.filter((e) => e.type === 'tool_end');
  expect(starts.map((e) => e.data.tool)).toEqual(['Bash', 'Write', 'Bash']);
  expect(ends.map((e) => [e.data.toolCallId, e.data.tool, e.data.isError])).toEqual(starts.map((e) => [e.data.toolCallId, e.data.tool, false]));
  expect(ends[0]!.data.output).toContain(run.worktreePath);
  expect(ends[1]!.data.output).toMatch(/File created successfully/);
  expect(starts[1]!.data.args).toMatchObject({ file_path: path.join(run.worktreePath, 'hello.txt') });
  const usage = events.filter((e) => e.type === 'usage');
  expect(usage).toHaveLength(1); // one turn, one result
  expect(usage[0]!.data.inputTokens).toBeGreaterThan(0);
  expect(usage[0]!.data.outputTokens).toBeGreaterThan(0);
  expect(usage[0]!.data.costUsd).toBeGreaterThan(0);
  expect(events.some((e) => e.type === 'message_delivered' && e.data.text === prompt)).toBe(true);
  expect(events.at(-1)).toMatchObject({ type: 'status', data: { status: 'SUCCEEDED' } });
  committedRun = { id: runId, session: run.agentSession, prompt };
}, 60_000);

test('refine resumes the same session: the next model request holds the earlier conversation', async () => {
  expect(committedRun).toBeDefined();
  model.setScript(() => ({ text: 'Refined.' }));
  const before = model.requests.length;
  const { run: original } = await t.ok(`query($id: ID!) { run(id: $id) { card { id } } }`, { id: committedRun.id });
  const { startRun: refined } = await t.ok(`mutation($input: StartRunInput!) { startRun(input: $input) { id } }`, {
    input: { cardId: original.card.id, refineRunId: committedRun.id, prompt: 'Now say it louder.' },
  });
  const run = await waitForStatus(t, refined.id);
  expect(run).toMatchObject({ status: 'SUCCEEDED', agentSession: committedRun.session });
  const request = model.requests[before]!;
  expect(request.lastUserText).toBe('Now say it louder.');
  expect(conversationText(request)).toContain(committedRun.prompt);
  expect(conversationText(request)).toContain('Created hello.txt and committed it.');
  // Another agent cannot continue it.
  const other = await t.gql(`mutation($input: StartRunInput!) { startRun(input: $input) { id } }`, { input: { cardId: original.card.id, refineRunId: refined.id, prompt: 'x', agent: 'pi' } });
  expect(other.errors?.[0].extensions?.code).toBe('CONFLICT');
}, 60_000);

test('a STEER sent during a slow tool reaches the next model request without cutting the tool; a FOLLOW_UP runs after the turn', async () => {
  const steer = 'STEER: use tabs';
  const followUp = 'FOLLOW-UP: and add a README';
  model.setScript(({ toolResultCount, lastUserText }) =>
    lastUserText === followUp ? { text: 'Added a README.' } : toolResultCount === 0 ? { toolCalls: [{ name: 'Bash', arguments: { command: 'echo started; sleep 3', description: 'Wait' } }] } : { text: 'Using tabs.' },
  );
  const before = model.requests.length;
  const runId = await claudeRun(t, 'Wait, then listen');
  await waitFor('the slow tool', async () => ((await runEvents(t, runId)).some((e) => e.type === 'tool_start') ? true : undefined));
  await t.ok(`mutation($id: ID!, $text: String!) { sendRunMessage(runId: $id, text: $text, mode: STEER) { status } }`, { id: runId, text: steer });
  await t.ok(`mutation($id: ID!, $text: String!) { sendRunMessage(runId: $id, text: $text, mode: FOLLOW_UP) { status } }`, { id: runId, text: followUp });
  const run = await waitForStatus(t, runId);
  expect(run.status).toBe('SUCCEEDED');

  const requests = model.requests.slice(before);
  expect(requests).toHaveLength(3);
  // The steer rides with the finished tool's result in the very next request; the follow-up waits for the turn's end.
  expect(requests[1]!.toolResults[0]).toMatch(/^started/);
  expect(conversationText(requests[1]!)).toContain(steer);
  expect(conversationText(requests[1]!)).not.toContain(followUp);
  expect(requests[2]!.lastUserText).toBe(followUp);
  expect(conversationText(requests[2]!)).toContain('Using tabs.');

  const events = await runEvents(t, runId);
  expect(events.find((e) => e.type === 'tool_end')?.data).toMatchObject({ isError: false, output: expect.stringMatching(/^started/) });
  const delivered = events.filter((e) => e.type === 'message_delivered').map((e) => e.data.text);
  expect(delivered.slice(1)).toEqual([steer, followUp]);
  expect(events.filter((e) => e.type === 'assistant_text').map((e) => e.data.text).join('')).toBe('Using tabs.Added a README.');
  expect(events.some((e) => e.type === 'queue' && e.data.followUp === 1)).toBe(true);
}, 60_000);

test('stopRun during a slow tool ends STOPPED and leaves no process of the run alive', async () => {
  const pidFile = path.join(t.dataDir, 'claude-tool.pid');
  model.setScript(({ toolResultCount }) =>
    toolResultCount === 0 ? { toolCalls: [{ name: 'Bash', arguments: { command: `echo $$ > ${pidFile}; sleep 60`, description: 'Wait' } }] } : { text: 'stopped' },
  );
  const runId = await claudeRun(t, 'Sleep for a while');
  const tool = await toolPid(pidFile);
  const { agentPid } = await t.server.orchestrator.db.client.run.findUniqueOrThrow({ where: { id: dbIdOf(runId) } });
  expect(alive(tool) && alive(agentPid!)).toBe(true);
  expect(processesWithEnv(RUN_ID_VARIABLE, dbIdOf(runId)).length).toBeGreaterThan(1);

  const { stopRun } = await t.ok(`mutation($id: ID!) { stopRun(runId: $id) { status } }`, { id: runId });
  expect(stopRun.status).toBe('STOPPED');
  expect(alive(agentPid!)).toBe(false);
  expect(alive(tool)).toBe(false);
  expect(processesWithEnv(RUN_ID_VARIABLE, dbIdOf(runId))).toEqual([]);
}, 60_000);

test('a model error ends the run FAILED with the model\'s message', async () => {
  model.setScript(() => ({ error: { status: 400, message: 'mock bad request' } }));
  const runId = await claudeRun(t, 'This will fail');
  const run = await waitForStatus(t, runId);
  expect(run.status).toBe('FAILED');
  expect(run.error).toMatch(/mock bad request/);
  const events = await runEvents(t, runId);
  expect(events.some((e) => e.type === 'model_error' && /mock bad request/.test(e.data.message))).toBe(true);
  expect(events.some((e) => e.type === 'assistant_text')).toBe(false); // the error is not answer text
}, 60_000);

test('SIGKILL of the server mid-run: INTERRUPTED on restart, no stray processes, and refine continues the session', async () => {
  const repo = await makeRepo();
  const dataDir = await tempDir();
  const pidFile = path.join(dataDir, 'tool.pid');
  model.setScript(({ toolResultCount, lastUserText }) =>
    toolResultCount === 0 && lastUserText !== 'Carry on.'
      ? { toolCalls: [{ name: 'Bash', arguments: { command: `echo $$ > ${pidFile}; sleep 60`, description: 'Outlive the server' } }] }
      : { text: 'Carried on.' },
  );
  const env = { ...claude.env, ...claudeConfig(), RUNBOARD_REPO: repo, RUNBOARD_DATA_DIR: dataDir };
  let second: Awaited<ReturnType<typeof spawnServer>> | undefined;
  try {
    const first = await spawnServer(env);
    const runId = await claudeRun(first.t, 'Outlive the server');
    const tool = await toolPid(pidFile);
    const { run } = await first.t.ok(`query($id: ID!) { run(id: $id) { status agentSession card { id } } }`, { id: runId });
    expect(run.status).toBe('RUNNING');
    first.child.kill('SIGKILL');
    await first.child;
    expect(alive(tool)).toBe(true); // Claude Code and its tool outlive a crashed server

    const before = model.requests.length;
    second = await spawnServer(env);
    const recovered = await waitForStatus(second.t as TestServer, runId, ['INTERRUPTED']);
    expect(recovered.agentSession).toBe(run.agentSession);
    expect(alive(tool)).toBe(false);
    expect(processesWithEnv(RUN_ID_VARIABLE, dbIdOf(runId))).toEqual([]);

    const { startRun: refined } = await second.t.ok(`mutation($input: StartRunInput!) { startRun(input: $input) { id } }`, {
      input: { cardId: run.card.id, refineRunId: runId, prompt: 'Carry on.' },
    });
    const done = await waitForStatus(second.t as TestServer, refined.id);
    expect(done).toMatchObject({ status: 'SUCCEEDED', agentSession: run.agentSession });
    const request = model.requests[before]!;
    expect(request.lastUserText).toBe('Carry on.');
    expect(conversationText(request)).toContain('Outlive the server');
  } finally {
    second?.child.kill('SIGTERM');
    await second?.child;
    await removeDirs(repo, dataDir);
  }
}, 90_000);

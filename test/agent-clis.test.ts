/**
 * Each pinned agent CLI, driven for real against its scripted model server (no runboard yet), in a temp git
 * repository: the model has the agent write a file with its own tool and then answers text; a model error
 * reaches the client with its message; stopping the agent during a slow tool leaves no process behind; a new
 * process resuming the session sends the earlier conversation (Claude Code and Codex; gemini-cli's session/load
 * is broken, see AGENTS-ACP.md §9). After every test, /proc must hold no process that carries the agent's marker.
 */
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { AgentProcess } from './helpers/agent-process.js';
import { startAcp, startClaude, startCodex } from './helpers/agent-clis.js';
import { makeAgentEnvironment, type AgentEnvironment, type AgentKind } from './helpers/agents.js';
import { startAnthropicServer } from './helpers/anthropic-server.js';
import { startGeminiServer } from './helpers/gemini-server.js';
import type { ModelScript, ModelServer } from './helpers/model-server.js';
import { makeRepo, removeDirs } from './helpers/repo.js';
import { startResponsesServer } from './helpers/responses-server.js';
import { waitFor } from './helpers/runs.js';

const AGENT_TIMEOUT_MS = 60_000; // a cold CLI start plus two model round trips, on 2 shared cores
const HELLO = 'hello from the agent\n';
const SLOW_COMMAND = 'echo started; sleep 37'; // Claude Code refuses a bare sleep

let repo: string;
let model: ModelServer<any> | undefined;
let env: AgentEnvironment | undefined;
let agent: AgentProcess | undefined;

beforeEach(async () => {
  repo = await makeRepo();
});

afterEach(async () => {
  if (agent) {
    await agent.stop();
    expect(agent.processes()).toEqual([]);
  }
  await model?.close();
  await env?.cleanup();
  await removeDirs(repo);
  agent = model = env = undefined;
});

const servers = { claude: startAnthropicServer, codex: startResponsesServer, gemini: startGeminiServer } as const;

async function setUp<K extends keyof typeof servers>(kind: K, script: ModelScript<any>): Promise<ModelServer<any>> {
  const server = (model = await servers[kind](script));
  env = await makeAgentEnvironment(kind as AgentKind, server);
  return server;
}

/** Resolves once a process of the agent's tree runs `command` (its cmdline holds it). */
function toolRunning(agentProcess: AgentProcess, command: string): Promise<number> {
  return waitFor(`"${command}" to run`, async () =>
    agentProcess.processes().find((pid) => {
      try {
        return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ').includes(command);
      } catch {
        return false;
      }
    }),
  );
}

/** A model that calls one tool, then answers `text` once that tool's result has come back. */
const toolThenText =
  (name: string, args: Record<string, unknown>, text = 'Wrote hello.txt.'): ModelScript<any> =>
  ({ toolResultCount }) =>
    toolResultCount === 0 ? { toolCalls: [{ name, arguments: args }] } : { text };

describe('Claude Code over stream-json', () => {
  test('writes a file with Write, and the next request carries the tool result', async () => {
    const server = await setUp('claude', toolThenText('Write', { file_path: path.join(repo, 'hello.txt'), content: HELLO }));
    const claude = (agent = startClaude(env!, repo));
    claude.say('Create hello.txt.');

    const result = await claude.waitFor((e) => e.type === 'result', { timeoutMs: 30_000 });
    expect(result).toMatchObject({ subtype: 'success', is_error: false, result: 'Wrote hello.txt.' });
    expect(await readFile(path.join(repo, 'hello.txt'), 'utf8')).toBe(HELLO);
    expect(server.requests.map((r) => r.toolResultCount)).toEqual([0, 1]);
    expect(server.requests[1].toolResults[0]).toContain(`File created successfully at: ${path.join(repo, 'hello.txt')}`);
    expect(server.requests[1].lastUserText).toBe('Create hello.txt.');
  }, AGENT_TIMEOUT_MS);

  test('a model error ends the turn with an error result carrying the message', async () => {
    await setUp('claude', () => ({ error: { status: 400, message: 'mock bad request' } }));
    const claude = (agent = startClaude(env!, repo));
    claude.say('This will fail.');

    const result = await claude.waitFor((e) => e.type === 'result', { timeoutMs: 30_000 });
    // Claude Code 2.1.330 says subtype "success" even here: is_error and terminal_reason tell.
    expect(result).toMatchObject({ is_error: true, terminal_reason: 'api_error', api_error_status: 400, result: 'API Error: 400 mock bad request' });
  }, AGENT_TIMEOUT_MS);

  test('stopping it during a slow Bash tool leaves no process', async () => {
    await setUp('claude', toolThenText('Bash', { command: SLOW_COMMAND }));
    const claude = (agent = startClaude(env!, repo));
    claude.say('Wait a while.');
    await toolRunning(claude, 'sleep 37');
    expect((await claude.stop()).survivors).toBe(0); // the orchestrator's tree kill reached the tool; afterEach checks /proc
  }, AGENT_TIMEOUT_MS);

  test('--resume <session id> in a new process sends the earlier conversation with the next prompt', async () => {
    const server = await setUp('claude', ({ lastUserText }) => ({ text: lastUserText === 'First.' ? 'First answer.' : 'Second answer.' }));
    const first = (agent = startClaude(env!, repo));
    first.say('First.');
    const { session_id: sessionId } = await first.waitFor((e) => e.type === 'result', { timeoutMs: 30_000 });
    await first.stop();

    const second = (agent = startClaude(env!, repo, ['--resume', sessionId]));
    second.say('Second.');
    const result = await second.waitFor((e) => e.type === 'result', { timeoutMs: 30_000 });
    expect(result).toMatchObject({ is_error: false, result: 'Second answer.', session_id: sessionId });
    const conversation = JSON.stringify(server.requests.at(-1)!.messages);
    expect(conversation).toContain('First answer.');
    expect(server.requests.at(-1)!.lastUserText).toBe('Second.');
  }, AGENT_TIMEOUT_MS);
});

describe('Codex over app-server', () => {
  test('writes a file with exec_command, and the next request carries its output', async () => {
    const server = await setUp('codex', toolThenText('exec_command', { cmd: `printf 'hello from the agent\\n' > hello.txt && echo wrote-it` }));
    const codex = await startCodex(env!, repo);
    agent = codex;
    await codex.startTurn('Create hello.txt.');

    const completed = await codex.waitFor((e) => e.method === 'turn/completed', { timeoutMs: 30_000 });
    expect(completed.params.turn).toMatchObject({ status: 'completed', error: null });
    expect(await readFile(path.join(repo, 'hello.txt'), 'utf8')).toBe(HELLO);
    expect(server.requests.map((r) => r.toolResultCount)).toEqual([0, 1]);
    expect(server.requests[1].toolResults[0]).toContain('wrote-it');
    expect(server.requests[1].lastUserText).toBe('Create hello.txt.');
  }, AGENT_TIMEOUT_MS);

  test('a model error fails the turn with the message', async () => {
    await setUp('codex', () => ({ error: { status: 400, message: 'mock bad request' } }));
    const codex = await startCodex(env!, repo);
    agent = codex;
    await codex.startTurn('This will fail.');

    const completed = await codex.waitFor((e) => e.method === 'turn/completed', { timeoutMs: 30_000 });
    // The message is the provider's whole error body, as text.
    expect(completed.params.turn).toMatchObject({ status: 'failed', error: { message: expect.stringContaining('mock bad request') } });
    expect(codex.events).toContainEqual(expect.objectContaining({ method: 'error', params: expect.objectContaining({ willRetry: false }) }));
  }, AGENT_TIMEOUT_MS);

  test('stopping it during a slow exec_command leaves no process', async () => {
    await setUp('codex', toolThenText('exec_command', { cmd: SLOW_COMMAND }));
    const codex = await startCodex(env!, repo);
    agent = codex;
    await codex.startTurn('Wait a while.');
    await toolRunning(codex, 'sleep 37');
    expect((await codex.stop()).survivors).toBe(0); // the orchestrator's tree kill reached the tool; afterEach checks /proc
  }, AGENT_TIMEOUT_MS);

  test('thread/resume in a new process sends the earlier conversation with the next turn', async () => {
    const server = await setUp('codex', ({ lastUserText }) => ({ text: lastUserText === 'First.' ? 'First answer.' : 'Second answer.' }));
    const first = await startCodex(env!, repo);
    agent = first;
    await first.startTurn('First.');
    await first.waitFor((e) => e.method === 'turn/completed', { timeoutMs: 30_000 });
    await first.stop();

    const second = await startCodex(env!, repo, { resume: first.threadId });
    agent = second;
    expect(second.threadId).toBe(first.threadId);
    await second.startTurn('Second.');
    const completed = await second.waitFor((e) => e.method === 'turn/completed', { timeoutMs: 30_000 });
    expect(completed.params.turn.status).toBe('completed');
    const conversation = JSON.stringify(server.requests.at(-1)!.messages);
    expect(conversation).toContain('First answer.');
    expect(server.requests.at(-1)!.lastUserText).toBe('Second.');
  }, AGENT_TIMEOUT_MS);
});

describe('gemini-cli over ACP (@agentclientprotocol/sdk)', () => {
  test('writes a file with write_file in yolo mode, and the next request carries the result', async () => {
    const target = path.join(repo, 'hello.txt');
    const server = await setUp('gemini', toolThenText('write_file', { file_path: target, content: HELLO }));
    const gemini = await startAcp(env!, repo);
    agent = gemini;

    const { stopReason } = await gemini.prompt('Create hello.txt.');
    expect(stopReason).toBe('end_turn');
    expect(gemini.permissions).toEqual([]);
    expect(await readFile(target, 'utf8')).toBe(HELLO);
    expect(server.requests.map((r) => r.toolResultCount)).toEqual([0, 1]);
    expect(server.requests[1].toolResults[0]).toContain('hello.txt');
    expect(server.requests[1].lastUserText).toContain('Create hello.txt.');
    expect(gemini.updates).toContainEqual(expect.objectContaining({ sessionUpdate: 'agent_message_chunk', content: { type: 'text', text: 'Wrote hello.txt.' } }));
  }, AGENT_TIMEOUT_MS);

  test('a model error rejects the prompt with the message', async () => {
    await setUp('gemini', () => ({ error: { status: 400, message: 'mock bad request' } }));
    const gemini = await startAcp(env!, repo);
    agent = gemini;
    const failure = await gemini.prompt('This will fail.').then(
      (response) => ({ response }),
      (error: unknown) => error,
    );
    // The JSON-RPC error's code is the HTTP status; its message is the provider's error body.
    expect(failure).toMatchObject({ code: 400, message: expect.stringContaining('mock bad request') });
  }, AGENT_TIMEOUT_MS);

  test('stopping it during a slow run_shell_command leaves no process', async () => {
    await setUp('gemini', toolThenText('run_shell_command', { command: SLOW_COMMAND }));
    const gemini = await startAcp(env!, repo);
    agent = gemini;
    void gemini.prompt('Wait a while.').catch(() => undefined); // rejected when the connection closes
    await toolRunning(gemini, 'sleep 37');
    expect((await gemini.stop()).survivors).toBe(0); // the orchestrator's tree kill reached the tool; afterEach checks /proc
  }, AGENT_TIMEOUT_MS);
});

/**
 * Each pinned agent CLI, driven for real against its scripted model server (no runboard yet), in a temp git
 * repository: the model has the agent write a file with its own tool, then answers text. The file must exist,
 * the next model request must carry the tool's result, and no process the agent started may outlive it.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { Readable, Writable } from 'node:stream';
import * as acp from '@agentclientprotocol/sdk';
import { spawnAgentProcess, spawnJsonLines, type AgentProcess } from './helpers/agent-process.js';
import { makeAgentEnvironment, type AgentEnvironment } from './helpers/agents.js';
import { startAnthropicServer } from './helpers/anthropic-server.js';
import { startGeminiServer } from './helpers/gemini-server.js';
import type { ModelServer } from './helpers/model-server.js';
import { makeRepo, removeDirs } from './helpers/repo.js';
import { startResponsesServer } from './helpers/responses-server.js';

const AGENT_TIMEOUT_MS = 60_000; // a cold CLI start plus two model round trips

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
    expect(agent.leftovers()).toEqual([]);
  }
  await model?.close();
  await env?.cleanup();
  await removeDirs(repo);
  agent = model = env = undefined;
});

const HELLO = 'hello from the agent\n';

test('Claude Code (stream-json) writes a file with Write and the next request carries the tool result', async () => {
  const server = (model = await startAnthropicServer(({ toolResultCount }) =>
    toolResultCount === 0 ? { toolCalls: [{ name: 'Write', arguments: { file_path: path.join(repo, 'hello.txt'), content: HELLO } }] } : { text: 'Wrote hello.txt.' },
  ));
  env = await makeAgentEnvironment('claude', server);
  const claude = spawnJsonLines(
    env.command,
    ['-p', '--output-format', 'stream-json', '--input-format', 'stream-json', '--verbose', ...env.args, '--permission-mode', 'bypassPermissions'],
    { cwd: repo, env: env.env },
  );
  agent = claude;
  claude.send({ type: 'user', message: { role: 'user', content: 'Create hello.txt.' } });

  const result = await claude.waitFor((e) => e.type === 'result', { timeoutMs: 30_000 });
  expect(result).toMatchObject({ subtype: 'success', is_error: false, result: 'Wrote hello.txt.' });
  expect(await readFile(path.join(repo, 'hello.txt'), 'utf8')).toBe(HELLO);
  const followUp = server.requests.find((r) => r.toolResultCount === 1)!;
  expect(followUp.toolResults[0]).toContain('hello.txt');
  expect(followUp.lastUserText).toBe('Create hello.txt.');
}, AGENT_TIMEOUT_MS);

test('Codex (app-server) writes a file with exec_command and the next request carries the output', async () => {
  const server = (model = await startResponsesServer(({ toolResultCount }) =>
    toolResultCount === 0 ? { toolCalls: [{ name: 'exec_command', arguments: { cmd: `printf 'hello from the agent\\n' > hello.txt && echo wrote-it` } }] } : { text: 'Wrote hello.txt.' },
  ));
  env = await makeAgentEnvironment('codex', server);
  const codex = spawnJsonLines(env.command, ['app-server', ...env.args], { cwd: repo, env: env.env });
  agent = codex;
  const response = (id: number) => codex.waitFor((e) => e.id === id && ('result' in e || 'error' in e), { timeoutMs: 30_000 });
  codex.send({ id: 1, method: 'initialize', params: { clientInfo: { name: 'runboard-test', title: null, version: '0.0.0' }, capabilities: null } });
  expect(await response(1)).toHaveProperty('result');
  codex.send({ method: 'initialized' });
  codex.send({ id: 2, method: 'thread/start', params: { cwd: repo, approvalPolicy: 'never', sandbox: 'danger-full-access' } });
  const { result: started } = await response(2);
  codex.send({ id: 3, method: 'turn/start', params: { threadId: started.thread.id, input: [{ type: 'text', text: 'Create hello.txt.', text_elements: [] }] } });
  expect(await response(3)).toHaveProperty('result.turn.id');

  const completed = await codex.waitFor((e) => e.method === 'turn/completed', { timeoutMs: 30_000 });
  expect(completed.params.turn).toMatchObject({ status: 'completed', error: null });
  expect(await readFile(path.join(repo, 'hello.txt'), 'utf8')).toBe(HELLO);
  const followUp = server.requests.find((r) => r.toolResultCount === 1)!;
  expect(followUp.toolResults[0]).toContain('wrote-it');
  expect(followUp.lastUserText).toBe('Create hello.txt.');
}, AGENT_TIMEOUT_MS);

test('gemini-cli (--acp, through the ACP SDK) writes a file with write_file and the next request carries the result', async () => {
  const target = path.join(repo, 'hello.txt');
  const server = (model = await startGeminiServer(({ toolResultCount }) =>
    toolResultCount === 0 ? { toolCalls: [{ name: 'write_file', arguments: { file_path: target, content: HELLO } }] } : { text: 'Wrote hello.txt.' },
  ));
  env = await makeAgentEnvironment('gemini', server);
  const gemini = spawnAgentProcess(env.command, ['--acp', ...env.args], { cwd: repo, env: env.env });
  agent = gemini;
  const updates: acp.SessionUpdate[] = [];
  const permissions: acp.RequestPermissionRequest[] = [];
  const connection = acp
    .client()
    .onNotification('session/update', ({ params }) => {
      updates.push(params.update);
    })
    .onRequest('session/request_permission', ({ params }) => {
      permissions.push(params);
      return { outcome: { outcome: 'cancelled' } };
    })
    .connect(acp.ndJsonStream(Writable.toWeb(gemini.child.stdin) as WritableStream<Uint8Array>, Readable.toWeb(gemini.child.stdout) as ReadableStream<Uint8Array>));
  try {
    await connection.agent.request('initialize', { protocolVersion: acp.PROTOCOL_VERSION, clientCapabilities: {} });
    const { sessionId } = await connection.agent.request('session/new', { cwd: repo, mcpServers: [] });
    await connection.agent.request('session/set_mode', { sessionId, modeId: 'yolo' });
    const { stopReason } = await connection.agent.request('session/prompt', { sessionId, prompt: [{ type: 'text', text: 'Create hello.txt.' }] });

    expect(stopReason).toBe('end_turn');
    expect(permissions).toEqual([]);
    expect(await readFile(target, 'utf8')).toBe(HELLO);
    const followUp = server.requests.find((r) => r.toolResultCount === 1)!;
    expect(followUp.toolResults[0]).toContain('hello.txt');
    expect(followUp.lastUserText).toContain('Create hello.txt.');
    expect(updates).toContainEqual(expect.objectContaining({ sessionUpdate: 'agent_message_chunk', content: { type: 'text', text: 'Wrote hello.txt.' } }));
  } finally {
    connection.close();
  }
}, AGENT_TIMEOUT_MS);

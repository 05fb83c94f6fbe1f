/** The scripted model server, exercised through the real `pi --mode rpc` binary. */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { git, makeRepo, removeDirs } from './helpers/repo.js';
import {
  makePiEnvironment,
  spawnPiRpc,
  startModelServer,
  type ModelServer,
  type PiEnvironment,
  type PiRpc,
} from './helpers/model-server.js';

let model: ModelServer;
let env: PiEnvironment;
let repo: string;
let pi: PiRpc | undefined;

beforeAll(async () => {
  model = await startModelServer();
  env = await makePiEnvironment(model);
});

beforeEach(async () => {
  repo = await makeRepo();
  model.requests.length = 0;
});

afterEach(async () => {
  if (pi) {
    const exit = await pi.stop();
    expect(exit.exitCode).toBe(143); // pi handles SIGTERM itself and exits 128+15
    pi = undefined;
  }
  await removeDirs(repo);
});

afterAll(async () => {
  await model?.close();
  await env?.cleanup();
});

const lastAssistant = (agentEnd: any) => [...agentEnd.messages].reverse().find((m: any) => m.role === 'assistant');

test('a streamed text answer ends the run with that text', async () => {
  model.setScript(() => ({ text: 'Hello from the mock model.', chunkSize: 5 }));
  pi = spawnPiRpc(env, repo);
  pi.send({ id: 'p1', type: 'prompt', message: 'Say hello.' });

  expect(await pi.waitFor((e) => e.type === 'response' && e.id === 'p1')).toMatchObject({ success: true });
  const end = await pi.waitFor((e) => e.type === 'agent_end');
  const answer = lastAssistant(end);
  expect(answer).toMatchObject({ stopReason: 'stop', content: [{ type: 'text', text: 'Hello from the mock model.' }] });
  expect(answer.usage.output).toBeGreaterThan(0);

  const deltas = pi.events
    .filter((e) => e.type === 'message_update' && e.assistantMessageEvent.type === 'text_delta')
    .map((e) => e.assistantMessageEvent.delta);
  expect(deltas).toEqual(['Hello', ' from', ' the ', 'mock ', 'model', '.']);
  expect(model.requests).toHaveLength(1);
  expect(model.requests[0].lastUserText).toBe('Say hello.');
  expect(model.requests[0].body.stream).toBe(true);
});

test('scripted write and bash tool calls create and commit a file', async () => {
  model.setScript(({ toolResultCount }) => {
    if (toolResultCount === 0) {
      return { toolCalls: [{ name: 'write', arguments: { path: 'hello.txt', content: 'hello, world\n' } }] };
    }
    if (toolResultCount === 1) {
      return { toolCalls: [{ name: 'bash', arguments: { command: 'git add -A && git commit -qm "agent: add hello"' } }] };
    }
    return { text: 'Created hello.txt and committed it.' };
  });
  pi = spawnPiRpc(env, repo);
  pi.send({ id: 'p1', type: 'prompt', message: 'Create hello.txt and commit it.' });

  const end = await pi.waitFor((e) => e.type === 'agent_end');
  expect(lastAssistant(end)).toMatchObject({ stopReason: 'stop', content: [{ type: 'text', text: 'Created hello.txt and committed it.' }] });

  const toolEnds = pi.events.filter((e) => e.type === 'tool_execution_end');
  expect(toolEnds.map((e) => [e.toolName, e.isError])).toEqual([
    ['write', false],
    ['bash', false],
  ]);
  expect(await readFile(path.join(repo, 'hello.txt'), 'utf8')).toBe('hello, world\n');
  expect(await git(repo, 'log', '-1', '--format=%s')).toBe('agent: add hello');
  expect(await git(repo, 'status', '--porcelain')).toBe('');

  expect(model.requests.map((r) => r.toolResultCount)).toEqual([0, 1, 2]);
  const toolMessage = model.requests[2].messages.filter((m) => m.role === 'tool');
  expect(toolMessage.map((m) => m.tool_call_id)).toEqual(['call_0_0', 'call_1_0']);
});

test('an HTTP 500 from the model ends the run with stopReason "error"', async () => {
  model.setScript(() => ({ error: { status: 500, message: 'mock upstream exploded' } }));
  pi = spawnPiRpc(env, repo);
  pi.send({ id: 'p1', type: 'prompt', message: 'This will fail.' });

  const end = await pi.waitFor((e) => e.type === 'agent_end');
  expect(lastAssistant(end)).toMatchObject({ stopReason: 'error', errorMessage: '500 mock upstream exploded' });
  expect(model.requests).toHaveLength(1); // retries are off in settings.json
  expect(pi.events.some((e) => e.type === 'auto_retry_start')).toBe(false);
});

test('dropped connections end each run with an error and pi stays usable', async () => {
  model.setScript((_request, index) =>
    [
      { drop: 'mid-stream', text: 'partial answer' } as const,
      { drop: 'before-response' } as const,
      { text: 'recovered' },
    ][index] ?? { text: 'unexpected' },
  );
  pi = spawnPiRpc(env, repo);
  const run = async (message: string) => {
    const from = pi!.events.length;
    pi!.send({ type: 'prompt', message });
    return lastAssistant(await pi!.waitFor((e) => e.type === 'agent_end', { from }));
  };

  expect(await run('one')).toMatchObject({ stopReason: 'error', errorMessage: 'terminated', content: [{ type: 'text', text: 'partial' }] });
  expect(await run('two')).toMatchObject({ stopReason: 'error', errorMessage: 'Connection error.' });
  expect(await run('three')).toMatchObject({ stopReason: 'stop', content: [{ type: 'text', text: 'recovered' }] });
  await model.waitForRequests(3, 100);
  expect(model.requests.map((r) => r.lastUserText)).toEqual(['one', 'two', 'three']);
});

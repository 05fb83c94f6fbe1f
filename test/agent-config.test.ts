/**
 * Agent configuration: named agents from the agents file and RUNBOARD_AGENTS over the built-in presets, the
 * default agent, the refusals of a bad definition (one line, exit 2 through the CLI), and what the real server
 * answers for them: Query.agents, and BAD_USER_INPUT naming the installed agents for an unknown or missing one.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { ConfigError, loadConfig } from '../src/config.js';
import { AGENT_BINS, requireTestAgent } from './helpers/agents.js';
import { removeDirs, tempDir } from './helpers/repo.js';
import { startTestServer, type TestServer } from './helpers/server.js';

let dataDir: string;

beforeEach(async () => {
  dataDir = await tempDir();
});

afterEach(async () => {
  await removeDirs(dataDir);
});

const load = (env: Record<string, string>, argv: string[] = []) => loadConfig(['--data-dir', dataDir, ...argv], env);

test('agents come from <data dir>/agents.json and RUNBOARD_AGENTS, the environment winning field by field', async () => {
  await writeFile(path.join(dataDir, 'agents.json'), JSON.stringify({ goose: { command: 'goose', args: ['acp'], env: { GOOSE_MODE: 'auto' } }, gemini: { args: ['--acp', '-m', 'gemini-2.5-pro'] } }));
  const config = load({ RUNBOARD_AGENTS: JSON.stringify({ goose: { command: '/opt/goose/bin/goose "with space"' }, copilot: { command: ['copilot'], args: '--acp --stdio', resume: false } }) });
  expect(config.agentsFile).toBe(path.join(dataDir, 'agents.json'));
  expect(config.agents).toEqual([
    { name: 'goose', protocol: 'acp', command: ['/opt/goose/bin/goose', 'with space'], args: ['acp'], env: { GOOSE_MODE: 'auto' } },
    { name: 'gemini', protocol: 'acp', args: ['--acp', '-m', 'gemini-2.5-pro'] },
    { name: 'copilot', protocol: 'acp', command: ['copilot'], args: ['--acp', '--stdio'], resume: false },
  ]);
  expect(config.defaultAgent).toBe('pi');
  expect(load({ RUNBOARD_AGENTS: JSON.stringify({ goose: { command: 'goose' } }) }, ['--default-agent', 'goose']).defaultAgent).toBe('goose');
  expect(load({ RUNBOARD_DEFAULT_AGENT: 'gemini' }).defaultAgent).toBe('gemini');
});

test('a bad agent definition or default agent is a one-line ConfigError naming it', async () => {
  const refusal = (env: Record<string, string>, argv: string[] = []) => {
    try {
      load(env, argv);
    } catch (error) {
      expect(error).toBeInstanceOf(ConfigError);
      return (error as Error).message;
    }
    throw new Error('expected a ConfigError');
  };
  expect(refusal({ RUNBOARD_AGENTS: '{nope' })).toMatch(/^invalid RUNBOARD_AGENTS: not JSON/);
  expect(refusal({ RUNBOARD_AGENTS: '["goose"]' })).toBe('invalid RUNBOARD_AGENTS: expected an object of agents by name');
  expect(refusal({ RUNBOARD_AGENTS: '{"goose":{"args":["acp"]}}' })).toBe('invalid RUNBOARD_AGENTS: agent "goose" needs a command');
  expect(refusal({ RUNBOARD_AGENTS: '{"goose":{"command":"goose","shell":true}}' })).toBe('invalid RUNBOARD_AGENTS: agent "goose" has unknown fields: shell (known: command, args, protocol, env, mode, resume, usage)');
  expect(refusal({ RUNBOARD_AGENTS: '{"../x":{"command":"x"}}' })).toMatch(/agent "..\/x" has a bad name/);
  expect(refusal({ RUNBOARD_AGENTS: '{"x":{"command":"x","protocol":"telnet"}}' })).toBe('invalid RUNBOARD_AGENTS: agent "x" has an unknown protocol: expected one of pi-rpc, claude-stream-json, codex-app-server, acp');
  expect(refusal({ RUNBOARD_AGENTS: '{"gemini":{"protocol":"pi-rpc"}}' })).toMatch(/agent "gemini" is a preset speaking acp/);
  expect(refusal({ RUNBOARD_AGENTS: '{"x":{"command":"x","env":{"A":1}}}' })).toBe('invalid RUNBOARD_AGENTS: agent "x" env must be an object of strings');
  expect(refusal({ RUNBOARD_DEFAULT_AGENT: 'claude-desktop' })).toBe('invalid RUNBOARD_DEFAULT_AGENT "claude-desktop": expected one of pi, claude, codex, gemini');
  const missing = path.join(dataDir, 'missing.json');
  expect(refusal({}, ['--agents-file', missing])).toMatch(new RegExp(`^cannot read the agents file ${missing}: ENOENT`));
  await mkdir(path.join(dataDir, 'sub'));
  await writeFile(path.join(dataDir, 'sub', 'agents.json'), '{"x": 1}');
  const file = path.join(dataDir, 'sub', 'agents.json');
  expect(refusal({ RUNBOARD_AGENTS_FILE: file })).toBe(`invalid agents file ${file}: agent "x" must be an object`);
});

describe('through the server', () => {
  let t: TestServer;

  beforeAll(async () => {
    const gemini = requireTestAgent('gemini');
    t = await startTestServer({
      env: {
        RUNBOARD_AGENTS: JSON.stringify({
          gemini: { command: [gemini], args: ['--acp'] },
          copilot: { command: '/nonexistent/copilot', args: ['--acp', '--stdio'] },
          node: { command: [process.execPath], args: ['acp-agent.js'], mode: 'auto', usage: true },
          'pi-openai': { protocol: 'pi-rpc', args: '--provider openai --model gpt-4o' },
        }),
      },
    });
  }, 30_000);

  afterAll(async () => {
    await t.close();
  });

  test('Query.agents lists the presets, then the configured agents, each with availability and capabilities', async () => {
    const { agents } = await t.ok(`{ agents { name protocol command isDefault available version capabilities { steer followUp resume usage cost } } }`);
    expect(agents).toEqual([
      expect.objectContaining({ name: 'pi', protocol: 'pi-rpc', isDefault: true, available: true, capabilities: { steer: 'NATIVE', followUp: 'NATIVE', resume: true, usage: true, cost: true } }),
      expect.objectContaining({ name: 'claude', protocol: 'claude-stream-json', isDefault: false, capabilities: { steer: 'NATIVE', followUp: 'QUEUED', resume: true, usage: true, cost: true } }),
      expect.objectContaining({ name: 'codex', protocol: 'codex-app-server', isDefault: false, capabilities: { steer: 'NATIVE', followUp: 'QUEUED', resume: true, usage: true, cost: false } }),
      expect.objectContaining({ name: 'gemini', protocol: 'acp', command: `${AGENT_BINS.gemini} --acp (session mode yolo)`, isDefault: false, available: true, version: expect.stringMatching(/^\d+\.\d+\.\d+/) }),
      { name: 'copilot', protocol: 'acp', command: '/nonexistent/copilot --acp --stdio', isDefault: false, available: false, version: null, capabilities: { steer: 'EMULATED', followUp: 'QUEUED', resume: true, usage: false, cost: false } },
      { name: 'node', protocol: 'acp', command: `${process.execPath} acp-agent.js (session mode auto)`, isDefault: false, available: true, version: process.versions.node, capabilities: { steer: 'EMULATED', followUp: 'QUEUED', resume: true, usage: true, cost: false } },
      expect.objectContaining({ name: 'pi-openai', protocol: 'pi-rpc', command: 'pi --mode rpc --provider openai --model gpt-4o', available: true }),
    ]);
  }, 30_000);

  test('an unknown agent, or one whose program is missing, is BAD_USER_INPUT naming the installed ones', async () => {
    const { createCard } = await t.ok(`mutation { createCard(input: { title: "Pick an agent" }) { id } }`);
    const start = (agent: string) => t.gql(`mutation($input: StartRunInput!) { startRun(input: $input) { id } }`, { input: { cardId: createCard.id, agent } });
    const unknown = await start('claude-desktop');
    expect(unknown.errors?.[0]).toMatchObject({ message: 'unknown agent "claude-desktop"; installed agents: pi, gemini, node, pi-openai', extensions: { code: 'BAD_USER_INPUT', field: 'agent' } });
    const missing = await start('copilot');
    expect(missing.errors?.[0]).toMatchObject({ message: 'agent "copilot" is configured but its program was not found; installed agents: pi, gemini, node, pi-openai', extensions: { code: 'BAD_USER_INPUT', field: 'agent' } });
    const { card } = await t.ok(`query($id: ID!) { card(id: $id) { runs(first: 5) { totalCount } } }`, { id: createCard.id });
    expect(card.runs.totalCount).toBe(0); // nothing was started
  }, 30_000);
});

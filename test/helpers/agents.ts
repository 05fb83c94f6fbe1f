/**
 * The agent CLIs the tests drive, and the exact environment that keeps each one offline against a scripted
 * model server on 127.0.0.1 (see /work/shared/AGENTS-NATIVE.md and AGENTS-ACP.md). The CLIs are the pinned
 * versions in test/agents/package.json, installed into .test-agents/ by scripts/install-test-agents.sh.
 */
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { makePiEnvironment, PI_BIN } from './model-server.js';

/** The agents the tests know. */
export type AgentKind = 'pi' | 'claude' | 'codex' | 'gemini';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

/** Where scripts/install-test-agents.sh puts the pinned agent CLIs. */
export const TEST_AGENTS_DIR = path.join(root, '.test-agents');

const packages = { claude: '@anthropic-ai/claude-code', codex: '@openai/codex', gemini: '@google/gemini-cli' } as const;

/** Each agent's program: pi from the project, the others from .test-agents/ (`codex` and `gemini` are Node launchers). */
export const AGENT_BINS: Record<AgentKind, string> = {
  pi: PI_BIN,
  claude: path.join(TEST_AGENTS_DIR, 'node_modules/.bin/claude'),
  codex: path.join(TEST_AGENTS_DIR, 'node_modules/.bin/codex'),
  gemini: path.join(TEST_AGENTS_DIR, 'node_modules/.bin/gemini'),
};

/** Every package pinned in test/agents/package.json, with its version. */
const PINS = JSON.parse(readFileSync(path.join(root, 'test/agents/package.json'), 'utf8')).dependencies as Record<string, string>;

/** The versions pinned in test/agents/package.json, by agent. */
export const PINNED_VERSIONS: Record<Exclude<AgentKind, 'pi'>, string> = { claude: PINS[packages.claude], codex: PINS[packages.codex], gemini: PINS[packages.gemini] };

/**
 * Throws, naming the install script, unless the package `name` pinned in test/agents/package.json is installed
 * in .test-agents/ at its pinned version (and `file`, a path inside it, exists): agent tests never skip.
 * Returns the path of `file`.
 */
export function requirePinnedPackage(name: string, file: string): string {
  const dir = path.join(TEST_AGENTS_DIR, 'node_modules', name);
  const manifest = path.join(dir, 'package.json');
  const installed = existsSync(manifest) ? JSON.parse(readFileSync(manifest, 'utf8')).version : null;
  const target = path.resolve(dir, file);
  if (installed !== PINS[name] || !existsSync(target)) {
    throw new Error(`${name}@${PINS[name]} is not installed (found ${installed ?? 'none'}): run scripts/install-test-agents.sh`);
  }
  return target;
}

/** Throws, naming the install script, unless the pinned CLI of `kind` is installed: agent tests never skip. */
export function requireTestAgent(kind: AgentKind): string {
  if (kind === 'pi') return PI_BIN;
  requirePinnedPackage(packages[kind], 'package.json');
  if (!existsSync(AGENT_BINS[kind])) throw new Error(`${AGENT_BINS[kind]} is missing: run scripts/install-test-agents.sh`);
  return AGENT_BINS[kind];
}

/** How to start one agent offline against a scripted model server. */
export interface AgentEnvironment {
  kind: AgentKind;
  /** The program to spawn. */
  command: string;
  /** Arguments that pick the scripted model and keep the agent hermetic; protocol flags come on top. */
  args: string[];
  /** Variables to add to the agent's environment (HOME always among them). */
  env: Record<string, string>;
  /** The temp root holding HOME, TMPDIR and any config dir. */
  dir: string;
  cleanup(): Promise<void>;
}

const NO_PROXY = '127.0.0.1,localhost';

/** Codex's config for an offline run against an OpenAI Responses server at `baseUrl` (`…/v1`); retries off. */
export function codexConfig(baseUrl: string): string {
  return [
    'model = "mock-1"',
    'model_provider = "mock"',
    'check_for_update_on_startup = false',
    '',
    '[features]',
    'plugins = false # else start-up runs git ls-remote against github.com',
    '',
    '[analytics]',
    'enabled = false',
    '',
    '[model_providers.mock]',
    'name = "mock"',
    `base_url = ${JSON.stringify(baseUrl)}`,
    'env_key = "MOCK_API_KEY"',
    'wire_api = "responses"',
    'request_max_retries = 0',
    'stream_max_retries = 0',
    '',
  ].join('\n');
}

/** gemini-cli's settings: API-key auth, no folder trust (yolo needs it off or the folder trusted), no telemetry or updates. */
export const GEMINI_SETTINGS = {
  security: { auth: { selectedType: 'gemini-api-key' }, folderTrust: { enabled: false } },
  privacy: { usageStatisticsEnabled: false },
  general: { disableAutoUpdate: true, disableUpdateNag: true },
  telemetry: { enabled: false },
};

/**
 * A temp HOME (and CODEX_HOME, gemini settings, pi's agent dir) for `kind`, pointed at the scripted model
 * server `model` (its `url`: the bare origin for claude and gemini, `…/v1` for codex and pi).
 */
export async function makeAgentEnvironment(kind: AgentKind, model: { url: string }): Promise<AgentEnvironment> {
  if (kind === 'pi') {
    const pi = await makePiEnvironment(model);
    return { kind, command: PI_BIN, args: pi.args, env: pi.env, dir: pi.dir, cleanup: pi.cleanup };
  }
  const command = requireTestAgent(kind);
  const dir = await mkdtemp(path.join(os.tmpdir(), `runboard-${kind}-`));
  const home = path.join(dir, 'home');
  const tmp = path.join(dir, 'tmp');
  await mkdir(home, { recursive: true });
  await mkdir(tmp, { recursive: true });
  // TMPDIR too: Claude Code keeps per-cwd files and sockets in the temp dir, gemini-cli its shell state, and
  // a killed agent leaves them there; inside `dir` they go with cleanup().
  const common = { HOME: home, TMPDIR: tmp, NO_PROXY, no_proxy: NO_PROXY };
  const cleanup = () => rm(dir, { recursive: true, force: true });
  switch (kind) {
    case 'claude':
      return {
        kind,
        command,
        args: ['--model', 'claude-sonnet-4-5'],
        env: {
          ...common,
          ANTHROPIC_BASE_URL: model.url,
          ANTHROPIC_API_KEY: 'x',
          IS_SANDBOX: '1', // as root, bypassPermissions is refused without it
          DISABLE_TELEMETRY: '1',
          DISABLE_AUTOUPDATER: '1',
          DISABLE_ERROR_REPORTING: '1',
          CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: '1',
        },
        dir,
        cleanup,
      };
    case 'codex': {
      const codexHome = path.join(dir, 'codex');
      await mkdir(codexHome, { recursive: true });
      await writeFile(path.join(codexHome, 'config.toml'), codexConfig(model.url));
      return { kind, command, args: [], env: { ...common, CODEX_HOME: codexHome, MOCK_API_KEY: 'x' }, dir, cleanup };
    }
    case 'gemini':
      await mkdir(path.join(home, '.gemini'), { recursive: true });
      await writeFile(path.join(home, '.gemini', 'settings.json'), JSON.stringify(GEMINI_SETTINGS, null, 2));
      return {
        kind,
        command,
        args: ['-m', 'gemini-2.5-flash'],
        env: { ...common, GEMINI_API_KEY: 'x', GOOGLE_GEMINI_BASE_URL: model.url, GEMINI_CLI_NO_RELAUNCH: 'true' },
        dir,
        cleanup,
      };
  }
}

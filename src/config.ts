/**
 * runboard's configuration: environment variables, mirrored by command-line flags (flags win).
 * One table drives parsing, `--help` and the README, so the three never disagree.
 */
import { createHash } from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { parseCommandLine } from './orchestrator/command-line.js';

export interface Config {
  /** @default 4000 */
  port: number;
  /** @default '127.0.0.1' */
  host: string;
  /** The git repository to orchestrate. @default the working directory */
  repo: string;
  /** Database, worktrees and logs. @default $XDG_DATA_HOME/runboard/<repo name>-<hash> */
  dataDir: string;
  /** A SQLite `file:` URL. @default file:<dataDir>/runboard.db */
  databaseUrl: string;
  /** The agent program, parsed into an argument array (no shell). @default pi from this project's dependencies */
  agentCommand: string[] | null;
  /** Extra arguments after `--mode rpc`, parsed likewise (a provider or model, say). @default none */
  agentArgs: string[];
  /** Runs beyond this wait QUEUED and start in order. @default 4 */
  maxConcurrentRuns: number;
  /** The playtest command, parsed into an argument array (no shell). @default ['cargo', 'run'] */
  playtestCommand: string[];
}

/** One option: its flag, environment variable, default (as shown in --help) and meaning. */
export interface OptionSpec {
  readonly key: keyof Config;
  readonly flag: string;
  readonly env: string;
  readonly defaultText: string;
  readonly description: string;
}

export const OPTIONS: readonly OptionSpec[] = [
  { key: 'repo', flag: 'repo', env: 'RUNBOARD_REPO', defaultText: 'the working directory', description: 'Git repository to orchestrate (must have at least one commit)' },
  { key: 'port', flag: 'port', env: 'PORT', defaultText: '4000', description: 'TCP port to listen on (0 picks a free one)' },
  { key: 'host', flag: 'host', env: 'HOST', defaultText: '127.0.0.1', description: 'Interface to bind' },
  { key: 'dataDir', flag: 'data-dir', env: 'RUNBOARD_DATA_DIR', defaultText: '$XDG_DATA_HOME/runboard/<repo>-<hash>', description: 'Database, worktrees and logs; outside the repository by default' },
  { key: 'databaseUrl', flag: 'database-url', env: 'DATABASE_URL', defaultText: 'file:<data dir>/runboard.db', description: 'SQLite database URL' },
  { key: 'agentCommand', flag: 'agent-command', env: 'RUNBOARD_AGENT_COMMAND', defaultText: 'pi from the project\'s dependencies', description: 'Agent program, started as <command> --mode rpc <args> (parsed, never run through a shell)' },
  { key: 'agentArgs', flag: 'agent-args', env: 'RUNBOARD_AGENT_ARGS', defaultText: 'none', description: 'Extra agent arguments, e.g. "--provider openai --model gpt-4o"' },
  { key: 'maxConcurrentRuns', flag: 'max-concurrent-runs', env: 'RUNBOARD_MAX_CONCURRENT_RUNS', defaultText: '4', description: 'Runs working at once; more wait QUEUED and start in order' },
  { key: 'playtestCommand', flag: 'playtest-command', env: 'RUNBOARD_PLAYTEST_COMMAND', defaultText: 'cargo run', description: 'Playtest command, run in a run\'s worktree (parsed, never run through a shell)' },
];

/** A bad flag or value; the CLI prints the message on one line and exits with code 2. */
export class ConfigError extends Error {}

/** Reads flags (argv without node and script) over environment variables over defaults. */
export function loadConfig(argv: readonly string[], env: NodeJS.ProcessEnv, cwd = process.cwd()): Config {
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      args: [...argv],
      options: Object.fromEntries(OPTIONS.map((o) => [o.flag, { type: 'string' as const }])),
      strict: true,
      allowPositionals: false,
    }));
  } catch (error) {
    throw new ConfigError((error as Error).message.split('\n')[0]);
  }
  const raw = (o: OptionSpec): string | undefined => {
    const value = (values[o.flag] as string | undefined) ?? env[o.env];
    return value === '' ? undefined : value;
  };
  const option = (key: keyof Config) => OPTIONS.find((o) => o.key === key)!;

  const repo = path.resolve(cwd, raw(option('repo')) ?? '.');
  const dataDir = path.resolve(cwd, raw(option('dataDir')) ?? defaultDataDir(repo, env));
  return {
    repo,
    dataDir,
    port: parsePort(raw(option('port')) ?? '4000'),
    host: raw(option('host')) ?? '127.0.0.1',
    databaseUrl: parseDatabaseUrl(raw(option('databaseUrl')), dataDir, cwd),
    agentCommand: parseArgv('RUNBOARD_AGENT_COMMAND', raw(option('agentCommand'))),
    agentArgs: parseArgv('RUNBOARD_AGENT_ARGS', raw(option('agentArgs'))) ?? [],
    maxConcurrentRuns: parsePositive('RUNBOARD_MAX_CONCURRENT_RUNS', raw(option('maxConcurrentRuns')) ?? '4', 64),
    playtestCommand: parseArgv('RUNBOARD_PLAYTEST_COMMAND', raw(option('playtestCommand'))) ?? ['cargo', 'run'],
  };
}

function parseArgv(name: string, text: string | undefined): string[] | null {
  if (text === undefined) return null;
  try {
    const argv = parseCommandLine(text);
    return argv.length ? argv : null;
  } catch (error) {
    throw new ConfigError(`invalid ${name}: ${(error as Error).message}`);
  }
}

function parsePositive(name: string, text: string, max: number): number {
  const value = Number(text);
  if (!/^\d+$/.test(text) || value < 1 || value > max) throw new ConfigError(`invalid ${name} "${text}": expected 1-${max}`);
  return value;
}

function parsePort(text: string): number {
  const port = Number(text);
  if (!/^\d+$/.test(text) || port > 65_535) throw new ConfigError(`invalid port "${text}": expected 0-65535`);
  return port;
}

/** Only SQLite `file:` URLs are supported; relative paths are made absolute so children agree. */
function parseDatabaseUrl(text: string | undefined, dataDir: string, cwd: string): string {
  if (text === undefined) return `file:${path.join(dataDir, 'runboard.db')}`;
  if (!text.startsWith('file:')) throw new ConfigError(`invalid DATABASE_URL "${text}": expected a SQLite file: URL`);
  const file = text.slice('file:'.length);
  return file.startsWith('/') ? text : `file:${path.resolve(cwd, file)}`;
}

/**
 * Outside the repository, so runboard's files can never show up as changes in it: one folder per
 * repository under the user's data home, named for readability and made unique by a path hash.
 */
function defaultDataDir(repo: string, env: NodeJS.ProcessEnv): string {
  const dataHome = env.XDG_DATA_HOME || path.join(os.homedir(), '.local', 'share');
  const hash = createHash('sha256').update(pathToFileURL(repo).href).digest('hex').slice(0, 10);
  const name = path.basename(repo).replace(/[^A-Za-z0-9._-]/g, '_') || 'repo';
  return path.join(dataHome, 'runboard', `${name}-${hash}`);
}

/** Text for `runboard --help`. */
export function helpText(): string {
  const rows = OPTIONS.map((o) => `  --${o.flag.padEnd(14)} ${o.env.padEnd(18)} ${o.description} (default: ${o.defaultText})`);
  return ['Usage: runboard [options]', '', 'Options (flag, environment variable, meaning):', ...rows, '  --help                            Show this help', ''].join('\n');
}

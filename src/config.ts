/**
 * runboard's configuration: environment variables, mirrored by command-line flags (flags win).
 * One table drives parsing, `--help` and the README, so the three never disagree.
 */
import { createHash } from 'node:crypto';
import { isIP } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { isLogLevel, LOG_LEVELS, type LevelWithSilent } from './log.js';
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
  /** Claude Code's program, parsed into an argument array (no shell). @default claude, found on PATH */
  claudeCommand: string[] | null;
  /** Extra arguments after runboard's own Claude Code flags, parsed likewise (a model, say). @default none */
  claudeArgs: string[];
  /** Codex's program and leading arguments, parsed likewise; started as `<command> app-server`. @default codex on PATH */
  codexCommand: string[] | null;
  /** Runs beyond this wait QUEUED and start in order. @default 4 */
  maxConcurrentRuns: number;
  /** The playtest command, parsed into an argument array (no shell). @default ['cargo', 'run'] */
  playtestCommand: string[];
  /** @default 'info' */
  logLevel: LevelWithSilent;
  /** The API token, from the environment only (never a flag, so it never shows in `ps`); never printed. @default none */
  token: string | null;
  /** Deepest field nesting a query may have. @default 12 */
  maxDepth: number;
  /** Aliases per operation. @default 30 */
  maxAliases: number;
  /** Directives per operation. @default 50 */
  maxDirectives: number;
  /** Estimated query cost (each field 1, times the page size of every list above it). @default 50_000 */
  maxCost: number;
  /** Largest request body, and largest WebSocket message. @default 1_048_576 // bytes */
  maxBodyBytes: number;
  /** Open connections at most; past it the oldest idle one is closed to make room. @default 512 */
  maxConnections: number;
}

/** One option: its flag (null for a secret, read from the environment only), environment variable, default (as shown in --help) and meaning. */
export interface OptionSpec {
  readonly key: keyof Config;
  readonly flag: string | null;
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
  { key: 'claudeCommand', flag: 'claude-command', env: 'RUNBOARD_CLAUDE_COMMAND', defaultText: 'claude on PATH', description: 'Claude Code program for runs with agent "claude" (parsed, never run through a shell)' },
  { key: 'claudeArgs', flag: 'claude-args', env: 'RUNBOARD_CLAUDE_ARGS', defaultText: 'none', description: 'Extra Claude Code arguments, e.g. "--model claude-sonnet-4-5"' },
  { key: 'codexCommand', flag: 'codex-command', env: 'RUNBOARD_CODEX_COMMAND', defaultText: 'codex on PATH', description: 'Codex program for the codex agent, started as <command> app-server (parsed, never run through a shell)' },
  { key: 'maxConcurrentRuns', flag: 'max-concurrent-runs', env: 'RUNBOARD_MAX_CONCURRENT_RUNS', defaultText: '4', description: 'Runs working at once; more wait QUEUED and start in order' },
  { key: 'playtestCommand', flag: 'playtest-command', env: 'RUNBOARD_PLAYTEST_COMMAND', defaultText: 'cargo run', description: 'Playtest command, run in a run\'s worktree (parsed, never run through a shell)' },
  { key: 'logLevel', flag: 'log-level', env: 'LOG_LEVEL', defaultText: 'info', description: `Log level: ${LOG_LEVELS.join(', ')}` },
  { key: 'token', flag: null, env: 'RUNBOARD_TOKEN', defaultText: 'none', description: 'API token clients send as "Authorization: Bearer <token>"; required to bind a non-loopback HOST' },
  { key: 'maxDepth', flag: 'max-depth', env: 'RUNBOARD_MAX_DEPTH', defaultText: '12', description: 'Deepest field nesting a query may have' },
  { key: 'maxAliases', flag: 'max-aliases', env: 'RUNBOARD_MAX_ALIASES', defaultText: '30', description: 'Aliases per operation' },
  { key: 'maxDirectives', flag: 'max-directives', env: 'RUNBOARD_MAX_DIRECTIVES', defaultText: '50', description: 'Directives per operation' },
  { key: 'maxCost', flag: 'max-cost', env: 'RUNBOARD_MAX_COST', defaultText: '50000', description: 'Query cost limit: each field costs 1, times the page size (first/last) of every list above it' },
  { key: 'maxBodyBytes', flag: 'max-body-bytes', env: 'RUNBOARD_MAX_BODY_BYTES', defaultText: '1048576', description: 'Largest request body or WebSocket message in bytes' },
  { key: 'maxConnections', flag: 'max-connections', env: 'RUNBOARD_MAX_CONNECTIONS', defaultText: '512', description: 'Open connections at most (keep it well below ulimit -n); past it the oldest idle one is closed' },
];

/** A bad flag or value; the CLI prints the message on one line and exits with code 2. */
export class ConfigError extends Error {}

/** Reads flags (argv without node and script) over environment variables over defaults. */
export function loadConfig(argv: readonly string[], env: NodeJS.ProcessEnv, cwd = process.cwd()): Config {
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      args: [...argv],
      options: Object.fromEntries(OPTIONS.flatMap((o) => (o.flag ? [[o.flag, { type: 'string' as const }]] : []))) as Record<string, { type: 'string' }>,
      strict: true,
      allowPositionals: false,
    }));
  } catch (error) {
    throw new ConfigError((error as Error).message.split('\n')[0]);
  }
  const raw = (o: OptionSpec): string | undefined => {
    const value = (o.flag ? (values[o.flag] as string | undefined) : undefined) ?? env[o.env];
    return value === '' ? undefined : value;
  };
  const option = (key: keyof Config) => OPTIONS.find((o) => o.key === key)!;

  const repo = path.resolve(cwd, raw(option('repo')) ?? '.');
  const dataDir = path.resolve(cwd, raw(option('dataDir')) ?? defaultDataDir(repo, env));
  const host = parseHost(raw(option('host')) ?? '127.0.0.1');
  const token = raw(option('token')) ?? null;
  // Without a token, anyone who reaches the port could run commands in the repository.
  if (!token && !isLoopbackHost(host)) throw new ConfigError(`refusing to listen on ${host} without RUNBOARD_TOKEN: set a token, or bind 127.0.0.1`);
  return {
    repo,
    dataDir,
    port: parsePort(raw(option('port')) ?? '4000'),
    host,
    databaseUrl: parseDatabaseUrl(raw(option('databaseUrl')), dataDir, cwd),
    agentCommand: parseArgv('RUNBOARD_AGENT_COMMAND', raw(option('agentCommand'))),
    agentArgs: parseArgv('RUNBOARD_AGENT_ARGS', raw(option('agentArgs'))) ?? [],
    claudeCommand: parseArgv('RUNBOARD_CLAUDE_COMMAND', raw(option('claudeCommand'))),
    claudeArgs: parseArgv('RUNBOARD_CLAUDE_ARGS', raw(option('claudeArgs'))) ?? [],
    codexCommand: parseArgv('RUNBOARD_CODEX_COMMAND', raw(option('codexCommand'))),
    maxConcurrentRuns: parsePositive('RUNBOARD_MAX_CONCURRENT_RUNS', raw(option('maxConcurrentRuns')) ?? '4', 64),
    playtestCommand: parseArgv('RUNBOARD_PLAYTEST_COMMAND', raw(option('playtestCommand'))) ?? ['cargo', 'run'],
    logLevel: parseLogLevel(raw(option('logLevel')) ?? 'info'),
    token,
    maxDepth: parsePositive('RUNBOARD_MAX_DEPTH', raw(option('maxDepth')) ?? '12', 1_000),
    maxAliases: parsePositive('RUNBOARD_MAX_ALIASES', raw(option('maxAliases')) ?? '30', 10_000),
    maxDirectives: parsePositive('RUNBOARD_MAX_DIRECTIVES', raw(option('maxDirectives')) ?? '50', 10_000),
    maxCost: parsePositive('RUNBOARD_MAX_COST', raw(option('maxCost')) ?? '50000', 1_000_000_000),
    maxBodyBytes: parsePositive('RUNBOARD_MAX_BODY_BYTES', raw(option('maxBodyBytes')) ?? '1048576', 1_073_741_824),
    maxConnections: parsePositive('RUNBOARD_MAX_CONNECTIONS', raw(option('maxConnections')) ?? '512', 1_000_000),
  };
}

/** Whether `host` (a name or address, without port; IPv6 bracketed or not) is this machine's loopback. */
export function isLoopbackHost(host: string): boolean {
  const name = host.toLowerCase().replace(/^\[(.*)\]$/, '$1');
  return name === 'localhost' || name.endsWith('.localhost') || name === '::1' || /^127(\.\d{1,3}){3}$/.test(name);
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

/** An IP address (IPv6 with or without brackets, which are dropped: listen takes it bare) or a DNS name. */
function parseHost(text: string): string {
  const bare = text.replace(/^\[(.*)\]$/, '$1');
  if (isIP(bare) || (bare === text && /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$/.test(bare))) return bare;
  throw new ConfigError(`invalid HOST "${text}": expected an IP address or a host name`);
}

function parseLogLevel(text: string): LevelWithSilent {
  const level = text.toLowerCase();
  if (!isLogLevel(level)) throw new ConfigError(`invalid LOG_LEVEL "${text}": expected one of ${LOG_LEVELS.join(', ')}`);
  return level;
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

/** Text for `runboard --help`: one row per option, then the secrets read only from the environment. */
export function helpText(): string {
  const row = (o: OptionSpec) => `  ${(o.flag ? `--${o.flag}` : '(env only)').padEnd(22)} ${o.env.padEnd(29)} ${o.description} (default: ${o.defaultText})`;
  return [
    'Usage: runboard [options]',
    '',
    'Serves the GraphQL API and GraphiQL for a git repository. Flags win over environment variables.',
    '',
    'Options (flag, environment variable, meaning):',
    ...OPTIONS.filter((o) => o.flag).map(row),
    `  ${'--help, -h'.padEnd(22)} ${''.padEnd(29)} Show this help`,
    '',
    'Read only from the environment:',
    ...OPTIONS.filter((o) => !o.flag).map(row),
    '',
  ].join('\n');
}

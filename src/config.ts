/**
 * runboard's configuration: environment variables, mirrored by command-line flags (flags win).
 * One table drives parsing, `--help` and the README, so the three never disagree.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { AGENT_PRESETS, AGENT_PROTOCOLS, type AgentDefinition, type AgentProtocol } from './agents/presets.js';
import { isObject } from './agents/json-line.js';
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
  /** A SQLite `file:` URL (one process), or a `postgresql://` URL (a cluster's shared state). @default file:<dataDir>/runboard.db */
  databaseUrl: string;
  /** Redis for a cluster's wake-ups, run control and run queue; needs a Postgres databaseUrl. @default none: one process */
  redisUrl: string | null;
  /** What this process does in a cluster: serve the API, run agents, or both. @default 'all' */
  role: NodeRole;
  /** This process's name in a cluster (logs, Query.cluster, run ownership). @default <host name>-<pid> */
  nodeId: string;
  /** How long a worker's hold on a run lasts without renewal; a dead worker's runs end within it. @default 30_000 // ms */
  leaseMs: number;
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
  /** The agents file read at start (custom agents and preset overrides), if any. @default <dataDir>/agents.json when it exists */
  agentsFile: string | null;
  /** Custom agents and preset overrides: the agents file's, then RUNBOARD_AGENTS's (which win by name). @default none */
  agents: AgentDefinition[];
  /** The agent a run gets when it names none. @default 'pi' */
  defaultAgent: string;
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

/** What a process does in a cluster. `all` is the only role of a single process. */
export const NODE_ROLES = ['api', 'worker', 'all'] as const;
export type NodeRole = (typeof NODE_ROLES)[number];

/** One option: its flag (null for a secret, read from the environment only), environment variable, default (as shown in --help) and meaning. */
export interface OptionSpec {
  readonly key: keyof Config;
  readonly flag: string | null;
  readonly env: string;
  readonly defaultText: string;
  readonly description: string;
}

export const OPTIONS: readonly OptionSpec[] = [
  { key: 'repo', flag: 'repo', env: 'RUNBOARD_REPO', defaultText: 'the working directory', description: 'Git repository to orchestrate (must have at least one commit); in a cluster, the remote of record (URL or path) each node clones' },
  { key: 'port', flag: 'port', env: 'PORT', defaultText: '4000', description: 'TCP port to listen on (0 picks a free one)' },
  { key: 'host', flag: 'host', env: 'HOST', defaultText: '127.0.0.1', description: 'Interface to bind' },
  { key: 'dataDir', flag: 'data-dir', env: 'RUNBOARD_DATA_DIR', defaultText: '$XDG_DATA_HOME/runboard/<repo>-<hash>', description: 'Database, worktrees and logs; outside the repository by default' },
  { key: 'databaseUrl', flag: 'database-url', env: 'DATABASE_URL', defaultText: 'file:<data dir>/runboard.db', description: 'SQLite file: URL, or postgresql:// URL for a cluster (with REDIS_URL)' },
  { key: 'redisUrl', flag: 'redis-url', env: 'REDIS_URL', defaultText: 'none', description: 'Redis URL for a cluster: wake-ups, run control and the run queue (needs a postgresql:// DATABASE_URL)' },
  { key: 'role', flag: 'role', env: 'RUNBOARD_ROLE', defaultText: 'all', description: `What this node does in a cluster: ${NODE_ROLES.join(', ')} (api: serve clients; worker: run agents; all: both)` },
  { key: 'nodeId', flag: 'node-id', env: 'RUNBOARD_NODE_ID', defaultText: '<host name>-<pid>', description: 'This node\'s name in a cluster: logs, Query.cluster and run ownership' },
  { key: 'leaseMs', flag: 'lease-ms', env: 'RUNBOARD_LEASE_MS', defaultText: '30000', description: 'A worker\'s hold on a run without renewal, in ms; a dead worker\'s runs become INTERRUPTED within it' },
  { key: 'agentCommand', flag: 'agent-command', env: 'RUNBOARD_AGENT_COMMAND', defaultText: 'pi from the project\'s dependencies', description: 'Agent program, started as <command> --mode rpc <args> (parsed, never run through a shell)' },
  { key: 'agentArgs', flag: 'agent-args', env: 'RUNBOARD_AGENT_ARGS', defaultText: 'none', description: 'Extra agent arguments, e.g. "--provider openai --model gpt-4o"' },
  { key: 'claudeCommand', flag: 'claude-command', env: 'RUNBOARD_CLAUDE_COMMAND', defaultText: 'claude on PATH', description: 'Claude Code program for runs with agent "claude" (parsed, never run through a shell)' },
  { key: 'claudeArgs', flag: 'claude-args', env: 'RUNBOARD_CLAUDE_ARGS', defaultText: 'none', description: 'Extra Claude Code arguments, e.g. "--model claude-sonnet-4-5"' },
  { key: 'codexCommand', flag: 'codex-command', env: 'RUNBOARD_CODEX_COMMAND', defaultText: 'codex on PATH', description: 'Codex program for the codex agent, started as <command> app-server (parsed, never run through a shell)' },
  { key: 'agentsFile', flag: 'agents-file', env: 'RUNBOARD_AGENTS_FILE', defaultText: '<data dir>/agents.json when present', description: 'JSON file of named agents (command, args, protocol, env, mode); an entry named like a preset overrides it' },
  { key: 'agents', flag: null, env: 'RUNBOARD_AGENTS', defaultText: 'none', description: 'Named agents as JSON, as in the agents file; wins over the file by name (environment only: it may hold keys)' },
  { key: 'defaultAgent', flag: 'default-agent', env: 'RUNBOARD_DEFAULT_AGENT', defaultText: 'pi', description: 'Agent a run gets when it names none: a preset (pi, claude, codex, gemini) or a configured agent' },
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

/** Whether this process is one node of a cluster (shared Postgres and Redis) rather than the whole of runboard. */
export function isClusterNode(config: Pick<Config, 'redisUrl'>): boolean {
  return config.redisUrl !== null;
}

/** What every log line of a cluster node carries, so the lines of many nodes can be told apart; none for one process. */
export function nodeLogFields(config: Pick<Config, 'redisUrl' | 'nodeId' | 'role'>): Record<string, string> | undefined {
  return isClusterNode(config) ? { node: config.nodeId, role: config.role } : undefined;
}

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

  const repoText = raw(option('repo')) ?? '.';
  // A remote of record may be a URL (https://, ssh://, file://) or scp-like (git@host:path); anything else is a path.
  const repo = /^[a-z][a-z0-9+.-]*:\/\//i.test(repoText) || /^[^/\s]+@[^/\s]+:/.test(repoText) ? repoText : path.resolve(cwd, repoText);
  const dataDir = path.resolve(cwd, raw(option('dataDir')) ?? defaultDataDir(repo, env));
  const host = parseHost(raw(option('host')) ?? '127.0.0.1');
  const token = raw(option('token')) ?? null;
  const agentsFile = raw(option('agentsFile')) ? path.resolve(cwd, raw(option('agentsFile'))!) : null;
  const defaultAgentsFile = path.join(dataDir, 'agents.json');
  const agents = mergeAgents([
    ...(agentsFile ? readAgentsFile(agentsFile, true) : readAgentsFile(defaultAgentsFile, false)),
    ...parseAgents('RUNBOARD_AGENTS', raw(option('agents'))),
  ]);
  const defaultAgent = raw(option('defaultAgent')) ?? 'pi';
  const agentNames = new Set([...AGENT_PRESETS.map((a) => a.name), ...agents.map((a) => a.name)]);
  if (!agentNames.has(defaultAgent)) throw new ConfigError(`invalid RUNBOARD_DEFAULT_AGENT "${defaultAgent}": expected one of ${[...agentNames].join(', ')}`);
  // Without a token, anyone who reaches the port could run commands in the repository.
  if (!token && !isLoopbackHost(host)) throw new ConfigError(`refusing to listen on ${host} without RUNBOARD_TOKEN: set a token, or bind 127.0.0.1`);
  const databaseUrl = parseDatabaseUrl(raw(option('databaseUrl')), dataDir, cwd);
  const redisUrl = parseRedisUrl(raw(option('redisUrl')));
  const role = parseRole(raw(option('role')) ?? 'all');
  const postgres = !databaseUrl.startsWith('file:');
  if (redisUrl && !postgres) throw new ConfigError('REDIS_URL needs a postgresql:// DATABASE_URL: a SQLite database serves one process');
  if (role !== 'all' && !(postgres && redisUrl)) throw new ConfigError(`RUNBOARD_ROLE ${role} is for a cluster: set a postgresql:// DATABASE_URL and REDIS_URL`);
  return {
    repo,
    dataDir,
    port: parsePort(raw(option('port')) ?? '4000'),
    host,
    databaseUrl,
    redisUrl,
    role,
    nodeId: parseNodeId(raw(option('nodeId')) ?? `${os.hostname()}-${process.pid}`),
    leaseMs: parsePositive('RUNBOARD_LEASE_MS', raw(option('leaseMs')) ?? '30000', 3_600_000),
    agentCommand: parseArgv('RUNBOARD_AGENT_COMMAND', raw(option('agentCommand'))),
    agentArgs: parseArgv('RUNBOARD_AGENT_ARGS', raw(option('agentArgs'))) ?? [],
    claudeCommand: parseArgv('RUNBOARD_CLAUDE_COMMAND', raw(option('claudeCommand'))),
    claudeArgs: parseArgv('RUNBOARD_CLAUDE_ARGS', raw(option('claudeArgs'))) ?? [],
    codexCommand: parseArgv('RUNBOARD_CODEX_COMMAND', raw(option('codexCommand'))),
    agentsFile: agentsFile ?? (existsSync(defaultAgentsFile) ? defaultAgentsFile : null),
    agents,
    defaultAgent,
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

/** A file of agent definitions; a missing file is an error only when it was named. */
function readAgentsFile(file: string, required: boolean): AgentDefinition[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    if (!required && (error as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw new ConfigError(`cannot read the agents file ${file}: ${(error as Error).message}`);
  }
  return parseAgents(`agents file ${file}`, text);
}

const AGENT_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,39}$/;
const AGENT_FIELDS = new Set(['command', 'args', 'protocol', 'env', 'mode', 'resume', 'usage']);

/**
 * `{"<name>": {"command": "copilot" | ["node", "x.js"], "args": ["--acp"], "protocol": "acp", "env": {…},
 * "mode": "yolo", "resume": true, "usage": false}}`. Every field may override a preset; a new ACP agent needs
 * a command (a new pi-rpc one defaults to this project's pi, e.g. with other `args`). Commands given as one string are split like RUNBOARD_AGENT_COMMAND, never through a shell.
 */
function parseAgents(source: string, text: string | undefined): AgentDefinition[] {
  if (text === undefined) return [];
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new ConfigError(`invalid ${source}: not JSON (${(error as Error).message})`);
  }
  if (!isObject(value)) throw new ConfigError(`invalid ${source}: expected an object of agents by name`);
  const presets = new Map(AGENT_PRESETS.map((preset) => [preset.name, preset]));
  return Object.entries(value).map(([name, entry]) => {
    const bad = (what: string) => new ConfigError(`invalid ${source}: agent "${name}" ${what}`);
    if (!AGENT_NAME.test(name)) throw bad('has a bad name: use letters, digits, ".", "_" or "-" (at most 40)');
    if (!isObject(entry)) throw bad('must be an object');
    const unknown = Object.keys(entry).filter((key) => !AGENT_FIELDS.has(key));
    if (unknown.length) throw bad(`has unknown fields: ${unknown.join(', ')} (known: ${[...AGENT_FIELDS].join(', ')})`);
    const argv = (field: 'command' | 'args'): string[] | undefined => {
      const given = entry[field];
      if (given === undefined) return undefined;
      if (typeof given === 'string') return parseArgv(`${source}: agent "${name}" ${field}`, given) ?? [];
      if (Array.isArray(given) && given.every((arg) => typeof arg === 'string')) return given as string[];
      throw bad(`${field} must be a string or an array of strings`);
    };
    const protocol = entry.protocol;
    if (protocol !== undefined && !AGENT_PROTOCOLS.includes(protocol as AgentProtocol)) throw bad(`has an unknown protocol: expected one of ${AGENT_PROTOCOLS.join(', ')}`);
    const preset = presets.get(name);
    if (preset && protocol !== undefined && protocol !== preset.protocol) throw bad(`is a preset speaking ${preset.protocol}; pick another name for a ${String(protocol)} agent`);
    const command = argv('command');
    if (command !== undefined && !command.length) throw bad('has an empty command');
    if (!preset && !command && protocol !== 'pi-rpc') throw bad('needs a command'); // pi-rpc defaults to this project's pi
    const env = entry.env;
    if (env !== undefined && !(isObject(env) && Object.values(env).every((v) => typeof v === 'string'))) throw bad('env must be an object of strings');
    const mode = entry.mode;
    if (mode !== undefined && mode !== null && typeof mode !== 'string') throw bad('mode must be a string or null');
    for (const flag of ['resume', 'usage'] as const) if (entry[flag] !== undefined && typeof entry[flag] !== 'boolean') throw bad(`${flag} must be true or false`);
    return {
      name,
      protocol: (protocol as AgentProtocol | undefined) ?? preset?.protocol ?? 'acp',
      command,
      args: argv('args'),
      env: env as Record<string, string> | undefined,
      mode: mode as string | null | undefined,
      resume: entry.resume as boolean | undefined,
      usage: entry.usage as boolean | undefined,
    };
  });
}

/** Later definitions of a name win field by field. */
function mergeAgents(definitions: AgentDefinition[]): AgentDefinition[] {
  const byName = new Map<string, AgentDefinition>();
  for (const definition of definitions) {
    const defined = Object.fromEntries(Object.entries(definition).filter(([, v]) => v !== undefined)) as AgentDefinition;
    byName.set(definition.name, { ...byName.get(definition.name), ...defined });
  }
  return [...byName.values()];
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

/** A SQLite `file:` URL (relative paths made absolute so children agree) or a Postgres one, kept as given. */
function parseDatabaseUrl(text: string | undefined, dataDir: string, cwd: string): string {
  if (text === undefined) return `file:${path.join(dataDir, 'runboard.db')}`;
  if (/^postgres(ql)?:\/\//.test(text)) return text;
  if (!text.startsWith('file:')) throw new ConfigError(`invalid DATABASE_URL: expected a SQLite file: URL or a postgresql:// URL`);
  const file = text.slice('file:'.length);
  return file.startsWith('/') ? text : `file:${path.resolve(cwd, file)}`;
}

function parseRedisUrl(text: string | undefined): string | null {
  if (text === undefined) return null;
  if (!/^rediss?:\/\//.test(text)) throw new ConfigError('invalid REDIS_URL: expected a redis:// or rediss:// URL');
  return text;
}

function parseRole(text: string): NodeRole {
  if (!(NODE_ROLES as readonly string[]).includes(text)) throw new ConfigError(`invalid RUNBOARD_ROLE "${text}": expected one of ${NODE_ROLES.join(', ')}`);
  return text as NodeRole;
}

function parseNodeId(text: string): string {
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(text)) throw new ConfigError(`invalid RUNBOARD_NODE_ID "${text}": use letters, digits, ".", "_" or "-" (at most 64)`);
  return text;
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

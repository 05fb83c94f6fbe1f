/**
 * Agent processes for tests: spawned in a process group of their own, with a marker variable in their
 * environment so that everything they start can be found in /proc afterwards (their tools run in groups
 * and sessions of their own, which a group kill does not reach). `stop()` ends the whole tree through
 * the orchestrator's own `terminateTree`; `processes()` lists what is still alive.
 */
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { execa, type ResultPromise } from 'execa';
import { readLines } from '../../src/orchestrator/lines.js';
import { processesWithEnv, terminateTree } from '../../src/orchestrator/processes.js';

/** The variable every test agent process carries (inherited by its tools), valued with a per-spawn id. */
export const TEST_AGENT_MARKER = 'RUNBOARD_TEST_AGENT';

/** Most stderr kept per process (the tail). @default 64 KiB */
const STDERR_TAIL_BYTES = 64 * 1024;

/** Longest stdout line kept; a longer one is replaced by a note of its size. @default 16 MiB */
export const MAX_LINE_BYTES = 16 * 1024 * 1024;

/** Collects `stream`'s lines (split on "\n" only, as the orchestrator reads agents) into `lines`, calling `onLine` after each. */
export function collectLines(stream: NodeJS.ReadableStream, lines: string[], onLine: (line: string) => void = () => {}): void {
  readLines(
    stream,
    MAX_LINE_BYTES,
    (line) => {
      lines.push(line);
      onLine(line);
    },
    (size) => lines.push(`<line of ${size} bytes dropped>`),
  );
}

/** A spawned agent and the means to find and end everything it started. */
export interface AgentProcess {
  pid: number;
  /** `Date.now()` just before the spawn. */
  spawnedAt: number;
  /** The execa child: its stdin/stdout are raw pipes. */
  child: ResultPromise<{ stdin: 'pipe'; buffer: false; reject: false; detached: true }>;
  /** The last 64 KiB of stderr. */
  stderr(): string;
  /** Settles when the process has exited. */
  exited: Promise<{ exitCode?: number; signal?: string }>;
  /**
   * Ends the tree with the orchestrator's `terminateTree` (SIGTERM to its group and every descendant's group,
   * SIGKILL after `graceMs`, default 3 s), then SIGKILLs any marked process that survived that; resolves with
   * how the agent exited and how many survivors there were (what `terminateTree` alone would have left).
   */
  stop(graceMs?: number): Promise<{ exitCode?: number; signal?: string; survivors: number }>;
  /** Pids alive that carry this spawn's marker (the agent and all it started, orphans too): empty once all are gone. */
  processes(): number[];
}

/** Spawns `command args` in `cwd` with `env` added to this process's environment, in its own process group. */
export function spawnAgentProcess(command: string, args: readonly string[], options: { cwd: string; env: Record<string, string> }): AgentProcess {
  const marker = randomUUID();
  const spawnedAt = Date.now();
  const child = execa(command, args, {
    cwd: options.cwd,
    env: { ...options.env, [TEST_AGENT_MARKER]: marker },
    stdin: 'pipe',
    buffer: false,
    reject: false,
    detached: true,
  });
  let stderr = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (data: string) => {
    stderr = (stderr + data).slice(-STDERR_TAIL_BYTES);
  });
  const exited = child.then((result) => ({ exitCode: result.exitCode, signal: result.signal }));
  return {
    pid: child.pid!,
    spawnedAt,
    child,
    stderr: () => stderr,
    exited,
    async stop(graceMs = 3_000) {
      if (child.exitCode === null && child.signalCode === null) await terminateTree(child.pid!, exited, graceMs);
      // Tools in sessions of their own may have outlived the tree's groups: end them by the marker.
      const survivors = processesWithEnv(TEST_AGENT_MARKER, marker).filter(alive);
      for (const pid of survivors) process.kill(pid, 'SIGKILL');
      return { ...(await exited), survivors: survivors.length };
    },
    processes: () => processesWithEnv(TEST_AGENT_MARKER, marker).filter(alive),
  };
}

/** An agent speaking JSON lines on stdio, with its output collected as lines and parsed events. */
export interface JsonLinesAgent extends AgentProcess {
  /** Every stdout line so far, exactly as printed (without the "\n"). */
  lines: string[];
  /** Every stdout line parsed as JSON (non-JSON lines are skipped). */
  events: any[];
  /** Writes one JSON line to stdin. */
  send(message: unknown): void;
  /** Writes already encoded text (a protocol module's `encode…` output) to stdin. */
  write(text: string): void;
  /** Resolves with the first event (from index `from`, default 0) matching `match`; rejects if the process exits first or after `timeoutMs` (default 10 s). */
  waitFor(match: (event: any) => boolean, options?: { from?: number; timeoutMs?: number }): Promise<any>;
}

/** Spawns an agent that speaks JSON lines on stdio (pi's RPC, Claude Code's stream-json, Codex's app-server). */
export function spawnJsonLines(command: string, args: readonly string[], options: { cwd: string; env: Record<string, string> }): JsonLinesAgent {
  const agent = spawnAgentProcess(command, args, options);
  const { child } = agent;
  const lines: string[] = [];
  const events: any[] = [];
  const listeners = new Set<() => void>();
  collectLines(child.stdout, lines, (line) => {
    try {
      events.push(JSON.parse(line));
    } catch {
      // not a JSON line; kept in `lines` only
    }
    for (const listener of listeners) listener();
  });
  void agent.exited.then(() => {
    for (const listener of listeners) listener();
  });
  const name = command.split('/').at(-1);

  return {
    ...agent,
    lines,
    events,
    send(message) {
      child.stdin.write(`${JSON.stringify(message)}\n`);
    },
    write(text) {
      child.stdin.write(text);
    },
    waitFor(match, { from = 0, timeoutMs = 10_000 } = {}) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const found = events.slice(from).find(match);
          if (found !== undefined || child.exitCode !== null || child.signalCode !== null) {
            listeners.delete(check);
            clearTimeout(timer);
            if (found !== undefined) resolve(found);
            else reject(new Error(`${name} exited (${child.exitCode ?? child.signalCode}) before the awaited event; stderr: ${agent.stderr()}`));
          }
        };
        const timer = setTimeout(() => {
          listeners.delete(check);
          reject(new Error(`${name}: no matching event after ${timeoutMs} ms; last: ${lines.slice(-3).join('\n').slice(0, 2000)}; stderr: ${agent.stderr().slice(-1000)}`));
        }, timeoutMs);
        listeners.add(check);
        check();
      });
    },
  };
}

/** Whether a process is running; a zombie (dead, waiting to be reaped) is not. */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

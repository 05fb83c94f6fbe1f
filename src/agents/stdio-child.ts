/**
 * An agent's process as every stdio protocol needs it: spawned in a process group of its own (so
 * stopping reaches what it starts), stdout read as `\n`-separated lines with a cap, stderr lines
 * capped and kept as a tail for a failure report, and termination of its whole process tree.
 * The protocol on top (pi's RPC, Claude's stream-json, Codex's app-server) reads lines and writes them.
 */
import { execa, type ResultPromise } from 'execa';
import type { AgentExit } from '../orchestrator/agent-driver.js';
import { readLines } from '../orchestrator/lines.js';
import { terminateTree, withoutKeys } from '../orchestrator/processes.js';

/** Longest stdout line kept; pi repeats a whole message in each update, so lines grow with answers. @default 16 MiB // bytes */
export const MAX_AGENT_LINE_BYTES = 16 * 1024 * 1024;
/** Longest stderr line kept. @default 2_000 // characters */
export const MAX_STDERR_LINE_CHARS = 2_000;
/** stderr lines kept for a failure report. @default 20 */
export const STDERR_TAIL_LINES = 20;

export interface AgentSpawnOptions {
  command: string;
  args: readonly string[];
  cwd: string;
  /** Added to the server's own environment. */
  env: Readonly<Record<string, string>>;
  /** Variables of the server's environment the agent must not see (the operator token). */
  withhold?: readonly string[];
}

export interface StdioHandlers {
  /** One stdout line, without its `\n`; blank lines are skipped. */
  onLine(line: string): void;
  /** One stderr line, capped at MAX_STDERR_LINE_CHARS. */
  onStderr(line: string): void;
  /** A stdout line over MAX_AGENT_LINE_BYTES was dropped. */
  onOversizedLine(bytes: number): void;
}

export class StdioChild {
  /** Settles when the process has exited, with how it ended. */
  readonly exited: Promise<AgentExit>;
  private readonly child: ResultPromise;
  private readonly stderrTail: string[] = [];
  private hasExited = false;

  constructor(options: AgentSpawnOptions, private readonly handlers: StdioHandlers) {
    // detached: a process group of its own, so stopping reaches everything it started.
    this.child = execa(options.command, [...options.args], {
      cwd: options.cwd,
      env: { ...withoutKeys(process.env, options.withhold ?? []), ...options.env },
      extendEnv: false,
      detached: true,
      stdin: 'pipe',
      stdout: 'pipe',
      stderr: 'pipe',
      buffer: false,
      reject: false,
      encoding: 'buffer',
    });
    this.child.stdin?.on('error', () => undefined); // EPIPE after exit is reported through `exited`
    readLines(this.child.stdout!, MAX_AGENT_LINE_BYTES, (line) => line.trim() && handlers.onLine(line), (size) => handlers.onOversizedLine(size));
    readLines(this.child.stderr!, MAX_STDERR_LINE_CHARS * 4, (line) => this.onStderrLine(line), () => undefined);
    this.exited = this.child.then((result) => {
      this.hasExited = true;
      const spawnError = result.failed && result.exitCode === undefined && !result.signal ? (result.shortMessage ?? 'failed to start') : null;
      return { exitCode: result.exitCode ?? null, signal: result.signal ?? null, stderrTail: [...this.stderrTail], spawnError };
    });
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  /** Whether the process has exited. */
  get done(): boolean {
    return this.hasExited;
  }

  /** Writes one line (a `\n` is added) to the agent's stdin. */
  writeLine(line: string): void {
    this.child.stdin!.write(`${line}\n`);
  }

  /** Closes the agent's stdin (some protocols end on EOF). */
  endInput(): void {
    this.child.stdin?.end();
  }

  /** SIGTERM to the whole tree (its group and its descendants' groups), SIGKILL after `graceMs`; resolves once it exited. */
  async terminate(graceMs: number): Promise<AgentExit> {
    if (!this.hasExited && this.child.pid !== undefined) await terminateTree(this.child.pid, this.exited, graceMs);
    return this.exited;
  }

  private onStderrLine(line: string): void {
    const capped = line.length > MAX_STDERR_LINE_CHARS ? `${line.slice(0, MAX_STDERR_LINE_CHARS)}…` : line;
    this.stderrTail.push(capped);
    if (this.stderrTail.length > STDERR_TAIL_LINES) this.stderrTail.shift();
    this.handlers.onStderr(capped);
  }
}

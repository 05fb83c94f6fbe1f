/**
 * One pi process and the RPC peer over its stdio: a single read loop over stdout, a map of
 * pending request ids to promises, and every pending call rejected when the process exits.
 */
import { execa, type ResultPromise } from 'execa';
import {
  AgentMessageType,
  AgentProtocolError,
  encodeCommand,
  parseAgentLine,
  type AgentCommand,
  type AgentMessage,
  type ResponseMessage,
} from './protocol.js';
import type { AgentExit } from '../../orchestrator/agent-driver.js';
import { readLines } from '../../orchestrator/lines.js';
import { terminateTree, withoutKeys } from '../../orchestrator/processes.js';

/** Longest stdout line kept; pi repeats a whole message in each update, so lines grow with answers. @default 16 MiB // bytes */
export const MAX_AGENT_LINE_BYTES = 16 * 1024 * 1024;
/** Longest stderr line kept. @default 2_000 // characters */
export const MAX_STDERR_LINE_CHARS = 2_000;
/** stderr lines kept for a failure report. @default 20 */
export const STDERR_TAIL_LINES = 20;
/** How long a command may wait for its response. @default 30_000 // ms */
export const AGENT_REQUEST_TIMEOUT_MS = 30_000;

export interface AgentSpawnOptions {
  command: string;
  args: readonly string[];
  cwd: string;
  /** Added to the server's own environment. */
  env: Readonly<Record<string, string>>;
  /** Variables of the server's environment the agent must not see (the operator token). */
  withhold?: readonly string[];
}

export interface AgentHandlers {
  /** Every event (responses are routed to their requests, then also passed here). */
  onMessage(message: AgentMessage): void;
  onStderr(line: string): void;
  /** A line that is not a JSON object, or one over MAX_AGENT_LINE_BYTES (then `line` is a preview). */
  onProtocolError(error: AgentProtocolError): void;
}

/** A command failed: pi answered success=false, the process exited, or no answer came in time. */
export class AgentRequestError extends Error {}

export class AgentProcess {
  /** Settles when the process has exited, with how it ended. */
  readonly exited: Promise<AgentExit>;
  private readonly child: ResultPromise;
  private readonly pending = new Map<string, { resolve(r: ResponseMessage): void; reject(e: Error): void; timer: NodeJS.Timeout }>();
  private readonly stderrTail: string[] = [];
  private nextId = 1;
  private hasExited = false;

  constructor(options: AgentSpawnOptions, private readonly handlers: AgentHandlers) {
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
    readLines(this.child.stdout!, MAX_AGENT_LINE_BYTES, (line) => this.onStdoutLine(line), (size) =>
      handlers.onProtocolError(new AgentProtocolError(`dropped a ${size}-byte stdout line over the ${MAX_AGENT_LINE_BYTES}-byte cap`)),
    );
    readLines(this.child.stderr!, MAX_STDERR_LINE_CHARS * 4, (line) => this.onStderrLine(line), () => undefined);
    this.exited = this.child.then((result) => {
      this.hasExited = true;
      const spawnError = result.failed && result.exitCode === undefined && !result.signal ? (result.shortMessage ?? "failed to start") : null;
      const exit: AgentExit = { exitCode: result.exitCode ?? null, signal: result.signal ?? null, stderrTail: [...this.stderrTail], spawnError };
      for (const [, request] of this.pending) {
        clearTimeout(request.timer);
        request.reject(new AgentRequestError('the agent exited before answering'));
      }
      this.pending.clear();
      return exit;
    });
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  /** Writes a command and resolves with its successful response; rejects on failure, exit or timeout. */
  request(command: AgentCommand, timeoutMs = AGENT_REQUEST_TIMEOUT_MS): Promise<ResponseMessage> {
    if (this.hasExited) return Promise.reject(new AgentRequestError('the agent has exited'));
    const id = `rb-${this.nextId++}`;
    return new Promise<ResponseMessage>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new AgentRequestError(`no answer to ${command.type} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, { resolve, reject, timer });
      this.child.stdin!.write(encodeCommand(id, command));
    });
  }

  /** SIGTERM to the whole tree, SIGKILL after `graceMs`; resolves once the process has exited. */
  async terminate(graceMs: number): Promise<AgentExit> {
    if (!this.hasExited && this.child.pid !== undefined) await terminateTree(this.child.pid, this.exited, graceMs);
    return this.exited;
  }

  private onStdoutLine(line: string): void {
    if (!line.trim()) return;
    let message: AgentMessage;
    try {
      message = parseAgentLine(line);
    } catch (error) {
      this.handlers.onProtocolError(error as AgentProtocolError);
      return;
    }
    if (message.type === AgentMessageType.Response && message.id !== undefined) {
      const request = this.pending.get(message.id);
      if (request) {
        this.pending.delete(message.id);
        clearTimeout(request.timer);
        if (message.success) request.resolve(message);
        else request.reject(new AgentRequestError(message.error ?? `${message.command} failed`));
      }
    }
    this.handlers.onMessage(message);
  }

  private onStderrLine(line: string): void {
    const capped = line.length > MAX_STDERR_LINE_CHARS ? `${line.slice(0, MAX_STDERR_LINE_CHARS)}…` : line;
    this.stderrTail.push(capped);
    if (this.stderrTail.length > STDERR_TAIL_LINES) this.stderrTail.shift();
    this.handlers.onStderr(capped);
  }
}

/**
 * One pi process and the RPC peer over its stdio: a single read loop over stdout, a map of
 * pending request ids to promises, and every pending call rejected when the process exits.
 */
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
import { MAX_AGENT_LINE_BYTES, StdioChild, type AgentSpawnOptions } from '../stdio-child.js';

/** How long a command may wait for its response. @default 30_000 // ms */
export const AGENT_REQUEST_TIMEOUT_MS = 30_000;

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
  private readonly child: StdioChild;
  private readonly pending = new Map<string, { resolve(r: ResponseMessage): void; reject(e: Error): void; timer: NodeJS.Timeout }>();
  private nextId = 1;

  constructor(options: AgentSpawnOptions, private readonly handlers: AgentHandlers) {
    this.child = new StdioChild(options, {
      onLine: (line) => this.onStdoutLine(line),
      onStderr: (line) => handlers.onStderr(line),
      onOversizedLine: (size) => handlers.onProtocolError(new AgentProtocolError(`dropped a ${size}-byte stdout line over the ${MAX_AGENT_LINE_BYTES}-byte cap`)),
    });
    this.exited = this.child.exited.then((exit) => {
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
    if (this.child.done) return Promise.reject(new AgentRequestError('the agent has exited'));
    const id = `rb-${this.nextId++}`;
    return new Promise<ResponseMessage>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new AgentRequestError(`no answer to ${command.type} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, { resolve, reject, timer });
      this.child.writeLine(encodeCommand(id, command).trimEnd());
    });
  }

  /** SIGTERM to the whole tree, SIGKILL after `graceMs`; resolves once the process has exited. */
  terminate(graceMs: number): Promise<AgentExit> {
    return this.child.terminate(graceMs);
  }

  private onStdoutLine(line: string): void {
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
}

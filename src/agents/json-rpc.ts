/**
 * A JSON-RPC peer over an agent's stdio, one JSON object per line: requests get ids and are matched to
 * their responses, notifications and the agent's own requests go to handlers, and every pending request
 * is rejected when the process exits or its answer is late. Codex's app-server speaks this without the
 * `jsonrpc` field; `jsonrpc: true` adds `"jsonrpc": "2.0"` for peers that insist on it (ACP's agents).
 * The methods and their shapes are each protocol's own vocabulary (e.g. codex/protocol.ts).
 */
import type { AgentExit } from '../orchestrator/agent-driver.js';
import { AgentProtocolError, isObject, parseJsonObjectLine } from './json-line.js';
import { MAX_AGENT_LINE_BYTES, StdioChild, type AgentSpawnOptions } from './stdio-child.js';

/** How long a request may wait for its response. @default 30_000 // ms */
export const JSON_RPC_REQUEST_TIMEOUT_MS = 30_000;

/** A JSON-RPC request id. */
export type JsonRpcId = number | string;

/** A notification the agent sent (`method` without an id). */
export interface JsonRpcNotification {
  readonly method: string;
  readonly params: unknown;
  /** The whole line, for anything the protocol keeps beyond method and params. */
  readonly raw: Record<string, unknown>;
}

/** A request the agent sent (`method` with an id): the handler must answer it with `respond` or `respondError`. */
export interface JsonRpcRequest extends JsonRpcNotification {
  readonly id: JsonRpcId;
}

export interface JsonRpcHandlers {
  onNotification(notification: JsonRpcNotification): void;
  onRequest(request: JsonRpcRequest): void;
  onStderr(line: string): void;
  /** A line that is not a JSON object or not JSON-RPC, or one over MAX_AGENT_LINE_BYTES. */
  onProtocolError(error: AgentProtocolError): void;
}

/** A request failed: the agent answered with an error (`code`, `data`), exited first, or did not answer in time. */
export class JsonRpcError extends Error {
  constructor(
    message: string,
    readonly code: number | null = null,
    readonly data: unknown = undefined,
  ) {
    super(message);
  }
}

/** The standard code for a method the receiver does not offer. */
export const METHOD_NOT_FOUND = -32601;

export class JsonRpcPeer {
  /** Settles when the process has exited, with how it ended. */
  readonly exited: Promise<AgentExit>;
  private readonly child: StdioChild;
  private readonly pending = new Map<JsonRpcId, { method: string; resolve(result: unknown): void; reject(error: Error): void; timer: NodeJS.Timeout }>();
  private nextId = 1;

  constructor(
    spawn: AgentSpawnOptions,
    private readonly handlers: JsonRpcHandlers,
    private readonly options: { jsonrpc?: boolean } = {},
  ) {
    this.child = new StdioChild(spawn, {
      onLine: (line) => this.onLine(line),
      onStderr: (line) => handlers.onStderr(line),
      onOversizedLine: (size) => handlers.onProtocolError(new AgentProtocolError(`dropped a ${size}-byte stdout line over the ${MAX_AGENT_LINE_BYTES}-byte cap`)),
    });
    this.exited = this.child.exited.then((exit) => {
      for (const [, request] of this.pending) {
        clearTimeout(request.timer);
        request.reject(new JsonRpcError(`the agent exited before answering ${request.method}`));
      }
      this.pending.clear();
      return exit;
    });
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  /** Sends a request and resolves with its `result`; rejects with JsonRpcError on an error answer, exit or timeout. */
  request<T = unknown>(method: string, params: unknown, timeoutMs = JSON_RPC_REQUEST_TIMEOUT_MS): Promise<T> {
    if (this.child.done) return Promise.reject(new JsonRpcError(`the agent has exited; ${method} was not sent`));
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new JsonRpcError(`no answer to ${method} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, { method, resolve: resolve as (result: unknown) => void, reject, timer });
      this.write({ id, method, params });
    });
  }

  /** Sends a notification (no answer comes). */
  notify(method: string, params?: unknown): void {
    this.write(params === undefined ? { method } : { method, params });
  }

  /** Answers one of the agent's requests. */
  respond(id: JsonRpcId, result: unknown): void {
    this.write({ id, result });
  }

  /** Answers one of the agent's requests with an error. */
  respondError(id: JsonRpcId, code: number, message: string): void {
    this.write({ id, error: { code, message } });
  }

  /** SIGTERM to the whole tree, SIGKILL after `graceMs`; resolves once the process has exited. */
  terminate(graceMs: number): Promise<AgentExit> {
    return this.child.terminate(graceMs);
  }

  private write(message: Record<string, unknown>): void {
    if (this.child.done) return;
    this.child.writeLine(JSON.stringify(this.options.jsonrpc ? { jsonrpc: '2.0', ...message } : message));
  }

  private onLine(line: string): void {
    let raw: Record<string, unknown>;
    try {
      raw = parseJsonObjectLine(line);
    } catch (error) {
      this.handlers.onProtocolError(error as AgentProtocolError);
      return;
    }
    const id = typeof raw.id === 'number' || typeof raw.id === 'string' ? raw.id : null;
    if (typeof raw.method === 'string') {
      const message = { method: raw.method, params: raw.params, raw };
      if (id === null) this.handlers.onNotification(message);
      else this.handlers.onRequest({ ...message, id });
      return;
    }
    const request = id === null ? undefined : this.pending.get(id);
    if (!request || !('result' in raw || isObject(raw.error))) {
      this.handlers.onProtocolError(new AgentProtocolError(`not a JSON-RPC message we expect: ${line.slice(0, 200)}`));
      return;
    }
    this.pending.delete(id!);
    clearTimeout(request.timer);
    if (isObject(raw.error)) {
      const { message, code, data } = raw.error;
      request.reject(new JsonRpcError(typeof message === 'string' ? message : `${request.method} failed`, typeof code === 'number' ? code : null, data));
    } else request.resolve(raw.result);
  }
}

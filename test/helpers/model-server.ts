/**
 * Scripted model servers for tests, on 127.0.0.1 with an ephemeral port. One core (`startScriptedServer`)
 * routes, records and scripts requests and streams the script's reply; a `WireApi` per provider API says
 * which path it serves, how it reads a request and how a reply is encoded as server-sent events.
 * This file holds the core and the OpenAI chat-completions wire that pi uses (`startModelServer`); the
 * Anthropic Messages, OpenAI Responses and Gemini wires sit beside it. `makePiEnvironment` writes a
 * hermetic config dir pointing `pi` at the server (see /work/shared/TOOLCHAIN.md).
 */
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { spawnJsonLines, type JsonLinesAgent } from './agent-process.js';

/** Token counts a reply reports (estimated from the request and reply sizes when not given). */
export interface ModelUsage {
  prompt_tokens: number;
  completion_tokens: number;
}

/** One tool call the scripted model makes: the agent's own tool name and its arguments. */
export interface ScriptedToolCall {
  name: string;
  arguments: Record<string, unknown>;
}

/** What the scripted model answers one request with. */
export type ModelReply =
  /** A streamed text answer. `thinking` is streamed first, in the wire's reasoning form. `delayMs` is slept between chunks. */
  | { text: string; thinking?: string; chunkSize?: number; delayMs?: number; usage?: ModelUsage }
  /** Tool calls, optionally preceded by text, sent after `delayMs` (default 0). Ids are generated from the request index and position. */
  | { toolCalls: ScriptedToolCall[]; text?: string; delayMs?: number; usage?: ModelUsage }
  /** An HTTP error whose JSON body has the wire's error shape carrying `message`. */
  | { error: { status: number; message: string } }
  /** Destroys the socket before any response byte, or after the first half of `text` (default "partial answer") was streamed. */
  | { drop: 'before-response' | 'mid-stream'; text?: string };

/** A chat-completions message (the `messages` of `startModelServer`'s requests). */
export interface ModelMessage {
  role: string;
  content: unknown;
  tool_calls?: unknown;
  tool_call_id?: string;
}

/** One recorded request, with what every wire can tell: the conversation's last user text and its tool results. */
export interface ModelRequest<M = ModelMessage> {
  /** The request path with its query, e.g. `/v1/messages?beta=true`. */
  path: string;
  /** `Date.now()` when the request arrived. */
  receivedAt: number;
  /** The parsed JSON request body. */
  body: any;
  /** The conversation in the wire's own shape (chat `messages`, Anthropic `messages`, Responses `input`, Gemini `contents`). */
  messages: M[];
  /** Text of the last user message that holds text (tool results and system reminders aside). */
  lastUserText: string | null;
  /** How many tool results the conversation holds. */
  toolResultCount: number;
  /** The text of each tool result, oldest first. */
  toolResults: string[];
}

/** Chooses the reply to each request (`index`: its position among all requests). */
export type ModelScript<M = ModelMessage> = (request: ModelRequest<M>, index: number) => ModelReply | Promise<ModelReply>;

/** A running scripted model server. */
export interface ModelServer<M = ModelMessage> {
  /** Base URL for the provider config: `http://127.0.0.1:PORT` plus the wire's prefix (`/v1` for OpenAI's). */
  url: string;
  port: number;
  /** Every scripted request received, in order. */
  requests: ModelRequest<M>[];
  /** Requests to paths this wire does not serve (`METHOD /path`), answered 404: side calls an agent makes. */
  misses: string[];
  setScript(script: ModelScript<M>): void;
  /** Resolves once at least `n` requests have arrived; rejects after `timeoutMs` (default 10 s). */
  waitForRequests(n: number, timeoutMs?: number): Promise<void>;
  /** Destroys open sockets and stops listening. */
  close(): Promise<void>;
}

/** Writes server-sent events to the client; silently stops once the client has gone. */
export interface SseWriter {
  /** One event: `event: <event>` (when given) and `data: <JSON>`. */
  send(data: unknown, event?: string): void;
  /** Raw text, e.g. a `data: [DONE]` terminator. */
  raw(text: string): void;
}

/** What an encoder knows about the request it answers. */
export interface ReplyContext {
  /** The request's position in `requests`. */
  index: number;
  path: string;
  body: any;
  usage: { input: number; output: number };
}

/**
 * Turns one reply into a wire's events. The core calls `start`, then `thinking`/`text` per chunk and
 * `toolCall` per call, then `finish`, or stops early when the client goes or a drop is scripted.
 */
export interface ReplyEncoder {
  start(): void;
  thinking(delta: string): void;
  text(delta: string): void;
  toolCall(call: ScriptedToolCall, position: number): void;
  finish(reason: 'stop' | 'tool_calls'): void;
  /** Sends anything held back, before a scripted drop (a wire that holds chunks back implements it). */
  flush?(): void;
}

/** One provider API: the route it serves, how a request reads, how errors and replies are encoded. */
export interface WireApi<M> {
  /** The prefix `url` carries, e.g. `/v1`. */
  urlPrefix: string;
  /** Whether `POST <path>` (without its query) is this wire's model call. */
  matches(path: string): boolean;
  read(body: any): Pick<ModelRequest<M>, 'messages' | 'lastUserText' | 'toolResults'>;
  errorBody(status: number, message: string): unknown;
  encoder(out: SseWriter, context: ReplyContext): ReplyEncoder;
}

/** The default script: always answers "ok". */
export const answerOk: ModelScript<any> = () => ({ text: 'ok' });

/** Largest request body a scripted server reads; a larger one is refused with 413. @default 32 MiB */
export const MAX_REQUEST_BYTES = 32 * 1024 * 1024;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** The text parts of a content value: a string, or an array of parts with a `text`. */
export function textOf(content: unknown): string {
  if (typeof content === 'string') return content;
  if (Array.isArray(content)) {
    return content
      .map((part) => (part && typeof part === 'object' && typeof part.text === 'string' ? part.text : ''))
      .join('');
  }
  return '';
}

function chunks(text: string, size: number | undefined): string[] {
  if (!size || size <= 0 || size >= text.length) return text ? [text] : [];
  const out: string[] = [];
  for (let i = 0; i < text.length; i += size) out.push(text.slice(i, i + size));
  return out;
}

function readBody(req: http.IncomingMessage): Promise<string | null> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    let size = 0;
    req.on('data', (part: Buffer) => {
      size += part.length;
      if (size <= MAX_REQUEST_BYTES) parts.push(part);
    });
    req.on('end', () => resolve(size > MAX_REQUEST_BYTES ? null : Buffer.concat(parts).toString('utf8')));
    req.on('error', reject);
  });
}

function sendJson(res: http.ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}

/** Starts a scripted server speaking `wire`. */
export async function startScriptedServer<M>(wire: WireApi<M>, script: ModelScript<M> = answerOk): Promise<ModelServer<M>> {
  let current = script;
  const requests: ModelRequest<M>[] = [];
  const misses: string[] = [];
  const sockets = new Set<Socket>();
  const waiters = new Set<() => void>();

  async function answer(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const requestPath = req.url ?? '/';
    if (req.method !== 'POST' || !wire.matches(requestPath.replace(/\?.*$/, ''))) {
      misses.push(`${req.method} ${requestPath}`);
      sendJson(res, 404, wire.errorBody(404, `no route ${req.method} ${requestPath}`));
      return;
    }
    const receivedAt = Date.now();
    const raw = await readBody(req);
    if (raw === null) {
      sendJson(res, 413, wire.errorBody(413, `request body over ${MAX_REQUEST_BYTES} bytes`));
      return;
    }
    let body: any;
    try {
      body = JSON.parse(raw);
    } catch {
      sendJson(res, 400, wire.errorBody(400, 'request body is not JSON'));
      return;
    }
    const read = wire.read(body);
    const request: ModelRequest<M> = { path: requestPath, receivedAt, body, ...read, toolResultCount: read.toolResults.length };
    const index = requests.push(request) - 1;
    for (const wake of waiters) wake();
    const reply = await current(request, index);

    if ('error' in reply) {
      sendJson(res, reply.error.status, wire.errorBody(reply.error.status, reply.error.message));
      return;
    }
    if ('drop' in reply && reply.drop === 'before-response') {
      req.socket.destroy();
      return;
    }

    // The client may go away at any time (an agent's abort closes the connection): stop writing then.
    let closed = false;
    res.on('close', () => {
      closed = true;
    });
    const out: SseWriter = {
      send(data, event) {
        if (!closed) res.write(`${event ? `event: ${event}\n` : ''}data: ${JSON.stringify(data)}\n\n`);
      },
      raw(text) {
        if (!closed) res.write(text);
      },
    };
    const replyText = 'drop' in reply ? '' : `${reply.text ?? ''}${'thinking' in reply ? (reply.thinking ?? '') : ''}`;
    const replyArgs = 'toolCalls' in reply ? reply.toolCalls.map((call) => JSON.stringify(call.arguments)).join('') : '';
    const given = 'usage' in reply ? reply.usage : undefined;
    const usage = {
      input: given?.prompt_tokens ?? Math.ceil(raw.length / 4),
      output: given?.completion_tokens ?? Math.ceil((replyText.length + replyArgs.length) / 4),
    };
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive' });
    const encoder = wire.encoder(out, { index, path: requestPath, body, usage });
    encoder.start();

    if ('drop' in reply) {
      const text = reply.text ?? 'partial answer';
      encoder.text(text.slice(0, Math.ceil(text.length / 2)));
      encoder.flush?.();
      await sleep(20); // let the chunk reach the client before the connection dies
      req.socket.destroy();
      return;
    }

    if ('toolCalls' in reply) {
      if (reply.delayMs) await sleep(reply.delayMs);
      if (reply.text) encoder.text(reply.text);
      reply.toolCalls.forEach((call, n) => encoder.toolCall(call, n));
    } else {
      const stream = async (emit: (delta: string) => void, text: string) => {
        for (const [n, piece] of chunks(text, reply.chunkSize).entries()) {
          if (closed) return;
          if (n > 0 && reply.delayMs) await sleep(reply.delayMs);
          emit(piece);
        }
      };
      if (reply.thinking) await stream((delta) => encoder.thinking(delta), reply.thinking);
      await stream((delta) => encoder.text(delta), reply.text);
    }
    if (closed) return;
    encoder.finish('toolCalls' in reply ? 'tool_calls' : 'stop');
    if (!closed) res.end();
  }

  const server = http.createServer((req, res) => {
    answer(req, res).catch((error: unknown) => {
      if (!res.headersSent && !res.destroyed) sendJson(res, 500, wire.errorBody(500, `model script failed: ${String(error)}`));
      else res.destroy();
    });
  });
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;

  return {
    url: `http://127.0.0.1:${port}${wire.urlPrefix}`,
    port,
    requests,
    misses,
    setScript(next) {
      current = next;
    },
    waitForRequests(n, timeoutMs = 10_000) {
      if (requests.length >= n) return Promise.resolve();
      return new Promise<void>((resolve, reject) => {
        const wake = () => {
          if (requests.length < n) return;
          clearTimeout(timer);
          waiters.delete(wake);
          resolve();
        };
        const timer = setTimeout(() => {
          waiters.delete(wake);
          reject(new Error(`model server: ${requests.length} of ${n} requests after ${timeoutMs} ms`));
        }, timeoutMs);
        waiters.add(wake);
      });
    },
    close() {
      for (const socket of sockets) socket.destroy();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/**
 * OpenAI chat completions (`POST /v1/chat/completions`), streamed as `chat.completion.chunk`s the way pi's
 * openai-completions provider expects: `delta.content`, `delta.reasoning_content`, `delta.tool_calls`, a
 * `finish_reason` with usage, then `data: [DONE]`.
 */
export const chatCompletionsWire: WireApi<ModelMessage> = {
  urlPrefix: '/v1',
  matches: (requestPath) => requestPath.endsWith('/chat/completions'),
  read(body) {
    const messages: ModelMessage[] = Array.isArray(body?.messages) ? body.messages : [];
    const lastUser = [...messages].reverse().find((m) => m.role === 'user');
    return {
      messages,
      lastUserText: lastUser ? textOf(lastUser.content) : null,
      toolResults: messages.filter((m) => m.role === 'tool').map((m) => textOf(m.content)),
    };
  },
  errorBody: (_status, message) => ({ error: { message, type: 'mock_error' } }),
  encoder(out, { index, body, usage }) {
    const id = `chatcmpl-mock-${index}`;
    const created = Math.floor(Date.now() / 1000);
    const model = typeof body.model === 'string' ? body.model : 'mock-1';
    const chunk = (choice: Record<string, unknown> | null, extra: Record<string, unknown> = {}) =>
      out.send({ id, object: 'chat.completion.chunk', created, model, choices: choice ? [{ index: 0, ...choice }] : [], ...extra });
    return {
      start: () => chunk({ delta: { role: 'assistant', content: '' }, finish_reason: null }),
      thinking: (delta) => chunk({ delta: { reasoning_content: delta }, finish_reason: null }),
      text: (delta) => chunk({ delta: { content: delta }, finish_reason: null }),
      toolCall: (call, n) =>
        chunk({
          delta: { tool_calls: [{ index: n, id: `call_${index}_${n}`, type: 'function', function: { name: call.name, arguments: JSON.stringify(call.arguments) } }] },
          finish_reason: null,
        }),
      finish(reason) {
        chunk(
          { delta: {}, finish_reason: reason },
          { usage: { prompt_tokens: usage.input, completion_tokens: usage.output, total_tokens: usage.input + usage.output } },
        );
        out.raw('data: [DONE]\n\n');
      },
    };
  },
};

/** A scripted OpenAI chat-completions server (pi's `openai-completions` API); `url` ends in `/v1`. */
export function startModelServer(script: ModelScript = answerOk): Promise<ModelServer> {
  return startScriptedServer(chatCompletionsWire, script);
}

/** A hermetic pi configuration pointing at a scripted server. */
export interface PiEnvironment {
  /** PI_CODING_AGENT_DIR, HOME, PI_OFFLINE, NO_PROXY, no_proxy: merge into pi's environment. */
  env: Record<string, string>;
  /** `--provider mock --model mock-1` and the flags that keep pi hermetic; append after `--mode rpc`. */
  args: string[];
  /** The temp root (holds `agent/` = PI_CODING_AGENT_DIR and `home/` = HOME). */
  dir: string;
  cleanup(): Promise<void>;
}

/** Makes a temp PI_CODING_AGENT_DIR + HOME for pi pointed at the model server, retries off; returns the env vars and the extra CLI args. */
export async function makePiEnvironment(model: Pick<ModelServer, 'url'>): Promise<PiEnvironment> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'runboard-pi-'));
  const agentDir = path.join(dir, 'agent');
  const home = path.join(dir, 'home');
  await mkdir(agentDir, { recursive: true });
  await mkdir(home, { recursive: true });
  const models = {
    providers: {
      mock: {
        baseUrl: model.url,
        api: 'openai-completions',
        apiKey: 'x',
        compat: { supportsDeveloperRole: false, supportsReasoningEffort: false },
        models: [{ id: 'mock-1' }],
      },
    },
  };
  await writeFile(path.join(agentDir, 'models.json'), JSON.stringify(models, null, 2));
  await writeFile(path.join(agentDir, 'settings.json'), JSON.stringify({ retry: { enabled: false, provider: { maxRetries: 0 } } }, null, 2));
  const noProxy = '127.0.0.1,localhost';
  return {
    env: { PI_CODING_AGENT_DIR: agentDir, HOME: home, PI_OFFLINE: '1', NO_PROXY: noProxy, no_proxy: noProxy },
    args: ['--provider', 'mock', '--model', 'mock-1', '--no-extensions', '--no-skills', '--no-prompt-templates', '--no-context-files'],
    dir,
    cleanup: () => rm(dir, { recursive: true, force: true }),
  };
}

/** The `pi` binary of this project. */
export const PI_BIN = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../node_modules/.bin/pi');

/** `pi --mode rpc` as a JSON-lines child; `send` writes one command. */
export type PiRpc = JsonLinesAgent;

/** Spawns `pi --mode rpc` in `cwd` with the environment from `makePiEnvironment`. */
export function spawnPiRpc(pi: Pick<PiEnvironment, 'env' | 'args'>, cwd: string, extraArgs: string[] = []): PiRpc {
  return spawnJsonLines(PI_BIN, ['--mode', 'rpc', ...pi.args, ...extraArgs], { cwd, env: pi.env });
}

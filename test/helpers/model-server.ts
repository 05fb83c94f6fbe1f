/**
 * A scripted OpenAI-compatible chat-completions server for tests, on 127.0.0.1 with an ephemeral port.
 * `POST /v1/chat/completions` answers with whatever the script returns for that request, streamed as
 * `text/event-stream` `chat.completion.chunk`s the way pi's openai-completions provider expects.
 * `makePiEnvironment` writes a hermetic config dir pointing `pi` at it (see /work/shared/TOOLCHAIN.md).
 */
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';

export interface ModelUsage {
  prompt_tokens: number;
  completion_tokens: number;
}

export type ModelReply =
  /** A streamed text answer (finish_reason "stop"). `thinking` is streamed first as `reasoning_content`. */
  | { text: string; thinking?: string; chunkSize?: number; delayMs?: number; usage?: ModelUsage }
  /** Tool calls (finish_reason "tool_calls"), optionally preceded by text. Ids are generated (`call_<request>_<n>`). */
  | { toolCalls: { name: string; arguments: Record<string, unknown> }[]; text?: string; usage?: ModelUsage }
  /** An HTTP error with the JSON body `{error:{message}}`. */
  | { error: { status: number; message: string } }
  /** Destroys the socket before any response byte, or after the first half of `text` (default "partial answer") was streamed. */
  | { drop: 'before-response' | 'mid-stream'; text?: string };

export interface ModelMessage {
  role: string;
  content: unknown;
  tool_calls?: unknown;
  tool_call_id?: string;
}

export interface ModelRequest {
  /** The parsed JSON request body. */
  body: any;
  messages: ModelMessage[];
  /** Text of the last `role: "user"` message (string content, or its text parts joined). */
  lastUserText: string | null;
  /** How many `role: "tool"` messages the conversation holds. */
  toolResultCount: number;
}

export type ModelScript = (request: ModelRequest, index: number) => ModelReply | Promise<ModelReply>;

export interface ModelServer {
  /** Base URL for the provider config, e.g. `http://127.0.0.1:PORT/v1`. */
  url: string;
  port: number;
  /** Every chat-completions request received, in order. */
  requests: ModelRequest[];
  setScript(script: ModelScript): void;
  /** Resolves once at least `n` requests have arrived; rejects after `timeoutMs` (default 10 s). */
  waitForRequests(n: number, timeoutMs?: number): Promise<void>;
  /** Destroys open sockets and stops listening. */
  close(): Promise<void>;
}

/** The default script: always answers "ok". */
export const answerOk: ModelScript = () => ({ text: 'ok' });

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function textOf(content: unknown): string {
  if (typeof content === 'string') return content;
  if (Array.isArray(content)) {
    return content
      .map((part) => (part && typeof part === 'object' && typeof part.text === 'string' ? part.text : ''))
      .join('');
  }
  return '';
}

function toModelRequest(body: any): ModelRequest {
  const messages: ModelMessage[] = Array.isArray(body?.messages) ? body.messages : [];
  const lastUser = [...messages].reverse().find((m) => m.role === 'user');
  return {
    body,
    messages,
    lastUserText: lastUser ? textOf(lastUser.content) : null,
    toolResultCount: messages.filter((m) => m.role === 'tool').length,
  };
}

function chunks(text: string, size: number | undefined): string[] {
  if (!size || size <= 0 || size >= text.length) return text ? [text] : [];
  const out: string[] = [];
  for (let i = 0; i < text.length; i += size) out.push(text.slice(i, i + size));
  return out;
}

function readBody(req: http.IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    req.on('data', (part: Buffer) => parts.push(part));
    req.on('end', () => resolve(Buffer.concat(parts).toString('utf8')));
    req.on('error', reject);
  });
}

export async function startModelServer(script: ModelScript = answerOk): Promise<ModelServer> {
  let current = script;
  const requests: ModelRequest[] = [];
  const sockets = new Set<Socket>();
  const waiters = new Set<() => void>();
  let port = 0;

  async function answer(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    if (req.method !== 'POST' || !req.url?.replace(/\?.*$/, '').endsWith('/chat/completions')) {
      res.writeHead(404, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: { message: `no route ${req.method} ${req.url}` } }));
      return;
    }
    const raw = await readBody(req);
    let body: any;
    try {
      body = JSON.parse(raw);
    } catch {
      res.writeHead(400, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: { message: 'request body is not JSON' } }));
      return;
    }
    const request = toModelRequest(body);
    const index = requests.push(request) - 1;
    for (const wake of waiters) wake();
    const reply = await current(request, index);

    if ('error' in reply) {
      res.writeHead(reply.error.status, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: { message: reply.error.message, type: 'mock_error' } }));
      return;
    }
    if ('drop' in reply && reply.drop === 'before-response') {
      req.socket.destroy();
      return;
    }

    // The client may go away at any time (pi's abort closes the connection): stop writing then.
    let closed = false;
    res.on('close', () => {
      closed = true;
    });
    const id = `chatcmpl-mock-${index}`;
    const created = Math.floor(Date.now() / 1000);
    const model = typeof body.model === 'string' ? body.model : 'mock-1';
    const send = (choice: Record<string, unknown> | null, extra: Record<string, unknown> = {}) => {
      if (closed) return;
      const chunk = { id, object: 'chat.completion.chunk', created, model, choices: choice ? [{ index: 0, ...choice }] : [], ...extra };
      res.write(`data: ${JSON.stringify(chunk)}\n\n`);
    };
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive' });
    send({ delta: { role: 'assistant', content: '' }, finish_reason: null });

    if ('drop' in reply) {
      const text = reply.text ?? 'partial answer';
      send({ delta: { content: text.slice(0, Math.ceil(text.length / 2)) }, finish_reason: null });
      await sleep(20); // let the chunk reach the client before the connection dies
      req.socket.destroy();
      return;
    }

    let completionChars = 0;
    if ('toolCalls' in reply) {
      if (reply.text) {
        send({ delta: { content: reply.text }, finish_reason: null });
        completionChars += reply.text.length;
      }
      reply.toolCalls.forEach((call, n) => {
        const args = JSON.stringify(call.arguments);
        completionChars += args.length;
        send({
          delta: { tool_calls: [{ index: n, id: `call_${index}_${n}`, type: 'function', function: { name: call.name, arguments: args } }] },
          finish_reason: null,
        });
      });
    } else {
      const stream = async (field: 'content' | 'reasoning_content', text: string) => {
        for (const [n, piece] of chunks(text, reply.chunkSize).entries()) {
          if (closed) return;
          if (n > 0 && reply.delayMs) await sleep(reply.delayMs);
          send({ delta: { [field]: piece }, finish_reason: null });
        }
      };
      if (reply.thinking) await stream('reasoning_content', reply.thinking);
      await stream('content', reply.text);
      completionChars += reply.text.length + (reply.thinking?.length ?? 0);
    }
    if (closed) return;
    const usage = reply.usage ?? { prompt_tokens: Math.ceil(raw.length / 4), completion_tokens: Math.ceil(completionChars / 4) };
    send(
      { delta: {}, finish_reason: 'toolCalls' in reply ? 'tool_calls' : 'stop' },
      { usage: { ...usage, total_tokens: usage.prompt_tokens + usage.completion_tokens } },
    );
    if (!closed) res.end('data: [DONE]\n\n');
  }

  const server = http.createServer((req, res) => {
    answer(req, res).catch((error: unknown) => {
      if (!res.headersSent && !res.destroyed) {
        res.writeHead(500, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ error: { message: `model script failed: ${String(error)}` } }));
      } else {
        res.destroy();
      }
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
  port = (server.address() as AddressInfo).port;

  return {
    url: `http://127.0.0.1:${port}/v1`,
    port,
    requests,
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

export interface PiRpc {
  pid: number;
  /** Every stdout line so far, exactly as printed (without the "\n"). */
  lines: string[];
  /** Every stdout line parsed as JSON (non-JSON lines are skipped). */
  events: any[];
  stderr(): string;
  send(command: Record<string, unknown>): void;
  /** Resolves with the first event (from index `from`, default 0) matching `match`. */
  waitFor(match: (event: any) => boolean, options?: { from?: number; timeoutMs?: number }): Promise<any>;
  /** SIGTERM (SIGKILL after 3 s), then resolves with the exit code or signal. */
  stop(): Promise<{ exitCode?: number; signal?: string }>;
}

/** Spawns `pi --mode rpc` in `cwd` with the environment from `makePiEnvironment`. */
export function spawnPiRpc(pi: Pick<PiEnvironment, 'env' | 'args'>, cwd: string, extraArgs: string[] = []): PiRpc {
  const child = execa(PI_BIN, ['--mode', 'rpc', ...pi.args, ...extraArgs], {
    cwd,
    env: pi.env,
    stdin: 'pipe',
    buffer: false,
    reject: false,
  });
  const lines: string[] = [];
  const events: any[] = [];
  const listeners = new Set<() => void>();
  let partial = '';
  let stderr = '';
  child.stdout!.setEncoding('utf8');
  child.stdout!.on('data', (data: string) => {
    // Split on "\n" only: readline would also split on U+2028/U+2029 inside JSON strings.
    const parts = (partial + data).split('\n');
    partial = parts.pop()!;
    for (const line of parts) {
      lines.push(line);
      try {
        events.push(JSON.parse(line));
      } catch {
        // not a JSON line; kept in `lines` only
      }
    }
    for (const listener of listeners) listener();
  });
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (data: string) => (stderr += data));
  const exited = child.then((result) => {
    for (const listener of listeners) listener();
    return result;
  });

  return {
    pid: child.pid!,
    lines,
    events,
    stderr: () => stderr,
    send(command) {
      child.stdin!.write(`${JSON.stringify(command)}\n`);
    },
    waitFor(match, { from = 0, timeoutMs = 10_000 } = {}) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const found = events.slice(from).find(match);
          if (found !== undefined || child.exitCode !== null || child.signalCode !== null) {
            listeners.delete(check);
            clearTimeout(timer);
            if (found !== undefined) resolve(found);
            else reject(new Error(`pi exited (${child.exitCode ?? child.signalCode}) before the awaited event; stderr: ${stderr}`));
          }
        };
        const timer = setTimeout(() => {
          listeners.delete(check);
          reject(new Error(`pi: no matching event after ${timeoutMs} ms; last: ${lines.slice(-3).join('\n').slice(0, 2000)}`));
        }, timeoutMs);
        listeners.add(check);
        check();
      });
    },
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      const force = setTimeout(() => child.kill('SIGKILL'), 3_000);
      const result = await exited;
      clearTimeout(force);
      return { exitCode: result.exitCode, signal: result.signal };
    },
  };
}

/**
 * Driving each agent CLI directly over its own protocol, for tests and fixture recordings that need the
 * real program without runboard: Claude Code over stream-json, Codex over app-server JSON-RPC, gemini-cli
 * over ACP (through @agentclientprotocol/sdk). Each starter spawns the agent with `makeAgentEnvironment`'s
 * environment and does the protocol's opening handshake, so a test starts at the first prompt.
 */
import { Readable, Writable } from 'node:stream';
import * as acp from '@agentclientprotocol/sdk';
import { encodeClaudeInput, interruptInput, userInput } from '../../src/agents/claude/protocol.js';
import {
  CodexClientNotificationMethod,
  CodexRequestMethod,
  encodeCodexNotification,
  encodeCodexRequest,
  textInput,
  type CodexRequestParams,
} from '../../src/agents/codex/protocol.js';
import { collectLines, spawnAgentProcess, spawnJsonLines, type AgentProcess, type JsonLinesAgent } from './agent-process.js';
import type { AgentEnvironment } from './agents.js';

/** Claude Code's flags for a non-interactive stream-json session in its no-ask mode. */
export const CLAUDE_STREAM_JSON_ARGS = ['-p', '--output-format', 'stream-json', '--input-format', 'stream-json', '--verbose'];

/** Claude Code in stream-json mode. */
export interface ClaudeSession extends JsonLinesAgent {
  /** Writes one user message: queued behind a running turn, or with `steer` sent at once, cutting the answer. */
  say(text: string, options?: { steer?: boolean }): void;
  /** Sends the interrupt control request with `requestId`. */
  interrupt(requestId: string): void;
}

/** Spawns Claude Code in stream-json mode with bypassPermissions (plus `extraArgs`, e.g. `--resume <id>`). */
export function startClaude(env: AgentEnvironment, cwd: string, extraArgs: string[] = []): ClaudeSession {
  const claude = spawnJsonLines(env.command, [...CLAUDE_STREAM_JSON_ARGS, ...env.args, '--permission-mode', 'bypassPermissions', ...extraArgs], { cwd, env: env.env });
  return Object.assign(claude, {
    say: (text: string, options?: { steer?: boolean }) => claude.write(encodeClaudeInput(userInput(text, options))),
    interrupt: (requestId: string) => claude.write(encodeClaudeInput(interruptInput(requestId))),
  });
}

/** Codex's app-server after `initialize` and `thread/start`. */
export interface CodexSession extends JsonLinesAgent {
  threadId: string;
  /** Sends a JSON-RPC request (next id) and resolves with its `result`; rejects with its `error`. */
  request<M extends CodexRequestMethod>(method: M, params: CodexRequestParams[M]): Promise<any>;
  /** `turn/start` with one text input; resolves with the turn id. */
  startTurn(text: string): Promise<string>;
}

/**
 * Spawns `codex app-server`, initializes it and starts a thread in `cwd` with full access and no approvals,
 * or resumes the stored thread `resume` (the way a refine continues a run).
 */
export async function startCodex(env: AgentEnvironment, cwd: string, { resume }: { resume?: string } = {}): Promise<CodexSession> {
  const codex = spawnJsonLines(env.command, ['app-server', ...env.args], { cwd, env: env.env });
  let nextId = 1;
  const request = async <M extends CodexRequestMethod>(method: M, params: CodexRequestParams[M]) => {
    const id = nextId++;
    codex.write(encodeCodexRequest(id, method, params));
    const answer = await codex.waitFor((e) => e.id === id && ('result' in e || 'error' in e), { timeoutMs: 30_000 });
    if (answer.error) throw new Error(`codex ${method}: ${JSON.stringify(answer.error)}`);
    return answer.result;
  };
  try {
    await request(CodexRequestMethod.Initialize, { clientInfo: { name: 'runboard-test', title: null, version: '0.0.0' }, capabilities: null });
    codex.write(encodeCodexNotification(CodexClientNotificationMethod.Initialized));
    const access = { cwd, approvalPolicy: 'never', sandbox: 'danger-full-access' } as const;
    const { thread } = resume
      ? await request(CodexRequestMethod.ThreadResume, { threadId: resume, ...access })
      : await request(CodexRequestMethod.ThreadStart, access);
    return Object.assign(codex, {
      threadId: thread.id as string,
      request,
      async startTurn(text: string) {
        const { turn } = await request(CodexRequestMethod.TurnStart, { threadId: thread.id, input: [textInput(text)] });
        return turn.id as string;
      },
    });
  } catch (error) {
    await codex.stop();
    throw error;
  }
}

/** gemini-cli (or any ACP agent) after `initialize`, `session/new` and `session/set_mode`. */
export interface AcpSession extends AgentProcess {
  /** Every stdout line so far (the agent's side of the JSON-RPC conversation), as printed. */
  lines: string[];
  connection: acp.ClientConnection;
  sessionId: string;
  /** Every `session/update` so far, in arrival order. */
  updates: acp.SessionUpdate[];
  /** Every permission request so far (each is answered "cancelled": runs must not ask). */
  permissions: acp.RequestPermissionRequest[];
  prompt(text: string): Promise<acp.PromptResponse>;
}

/** Spawns an ACP agent (`env.command` plus `args`), opens a session in `cwd` and switches it to `modeId` (default yolo: no asking). */
export async function startAcp(env: AgentEnvironment, cwd: string, { args = ['--acp'], modeId = 'yolo' }: { args?: string[]; modeId?: string } = {}): Promise<AcpSession> {
  const agent = spawnAgentProcess(env.command, [...args, ...env.args], { cwd, env: env.env });
  const updates: acp.SessionUpdate[] = [];
  const permissions: acp.RequestPermissionRequest[] = [];
  const lines: string[] = [];
  collectLines(agent.child.stdout, lines); // beside the SDK's reader: both get every chunk
  const connection = acp
    .client()
    .onNotification('session/update', ({ params }) => {
      updates.push(params.update);
    })
    .onRequest('session/request_permission', ({ params }) => {
      permissions.push(params);
      return { outcome: { outcome: 'cancelled' } };
    })
    .connect(acp.ndJsonStream(Writable.toWeb(agent.child.stdin) as WritableStream<Uint8Array>, Readable.toWeb(agent.child.stdout) as ReadableStream<Uint8Array>));
  const stop = agent.stop;
  try {
    await connection.agent.request('initialize', { protocolVersion: acp.PROTOCOL_VERSION, clientCapabilities: {} });
    const { sessionId } = await connection.agent.request('session/new', { cwd, mcpServers: [] });
    await connection.agent.request('session/set_mode', { sessionId, modeId });
    return Object.assign(agent, {
      lines,
      connection,
      sessionId,
      updates,
      permissions,
      prompt: (text: string) => connection.agent.request('session/prompt', { sessionId, prompt: [{ type: 'text', text }] }),
      async stop(graceMs?: number) {
        connection.close();
        return stop(graceMs);
      },
    });
  } catch (error) {
    connection.close();
    await stop();
    throw error;
  }
}

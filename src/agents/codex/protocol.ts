/**
 * The vocabulary of Codex's app-server (`codex app-server`): JSON-RPC 2.0 over stdio as JSON lines, without
 * the "jsonrpc" field. runboard sends requests (`{id, method, params}`) and the `initialized` notification;
 * Codex answers (`{id, result}` or `{id, error}`), notifies (`{method, params}`) and may ask (`{id, method,
 * params}`, e.g. approvals, which a run in full access with approvalPolicy "never" does not get). Observed
 * with Codex 0.169.0 (../shared/AGENTS-NATIVE.md and the recordings in test/fixtures/codex/); `codex
 * app-server generate-ts` prints the full schema. Only what runboard uses is typed; any other notification
 * parses as `OtherNotification` and anything unrecognisable as `UnknownCodexMessage`, both kept.
 */
import { isObject, parseJsonObjectLine } from '../json-line.js';

/** Requests, runboard -> codex. */
export enum CodexRequestMethod {
  Initialize = 'initialize', // runboard -> codex: client info; must come first
  ThreadStart = 'thread/start', // runboard -> codex: a new thread (session) in a cwd, with sandbox and approval policy
  ThreadResume = 'thread/resume', // runboard -> codex: reopen a stored thread by id; the next turn sends its whole history
  TurnStart = 'turn/start', // runboard -> codex: user input starts a turn; answered at once with the turn id
  TurnSteer = 'turn/steer', // runboard -> codex: input into the running turn; cuts the streaming answer, same turn
  TurnInterrupt = 'turn/interrupt', // runboard -> codex: end the turn (a running command survives until codex exits)
}

/** Notifications, runboard -> codex. */
export enum CodexClientNotificationMethod {
  Initialized = 'initialized', // runboard -> codex: after the initialize response
}

/** Notifications runboard reads, codex -> runboard. */
export enum CodexNotificationMethod {
  ThreadStarted = 'thread/started', // codex -> runboard: the thread exists (id, cwd, session path)
  ThreadStatusChanged = 'thread/status/changed', // codex -> runboard: active / idle
  TurnStarted = 'turn/started', // codex -> runboard: a turn began
  TurnCompleted = 'turn/completed', // codex -> runboard: a turn ended: completed, interrupted or failed (with its error)
  ItemStarted = 'item/started', // codex -> runboard: a user message, agent message, reasoning or command began
  ItemCompleted = 'item/completed', // codex -> runboard: that item finished (a command with its exit code and output)
  AgentMessageDelta = 'item/agentMessage/delta', // codex -> runboard: streamed answer text
  ReasoningSummaryTextDelta = 'item/reasoning/summaryTextDelta', // codex -> runboard: streamed reasoning summary
  ReasoningTextDelta = 'item/reasoning/textDelta', // codex -> runboard: streamed raw reasoning, from models that show it
  CommandOutputDelta = 'item/commandExecution/outputDelta', // codex -> runboard: a running command's output
  TokenUsageUpdated = 'thread/tokenUsage/updated', // codex -> runboard: usage after each model response (last and total)
  Error = 'error', // codex -> runboard: a turn error; willRetry false means the turn fails
  Warning = 'warning', // codex -> runboard: e.g. "Model metadata for `mock-1` not found"
  ConfigWarning = 'configWarning', // codex -> runboard: a configuration problem it works around (`summary`)
  PlanUpdated = 'turn/plan/updated', // codex -> runboard: the agent's plan as it now stands
  ThreadCompacted = 'thread/compacted', // codex -> runboard: the conversation was compacted
}

/**
 * Notifications about the session or the client's UI rather than what the agent does (status, rate
 * limits, the whole diff so far, item bookkeeping): left out of a run's events, which keep everything else.
 */
export const SESSION_STATE_NOTIFICATIONS: ReadonlySet<string> = new Set([
  CodexNotificationMethod.ThreadStarted,
  CodexNotificationMethod.ThreadStatusChanged,
  'thread/settings/updated',
  'thread/name/updated',
  'thread/readState/changed',
  'thread/queue/changed',
  'turn/diff/updated', // the whole diff so far, each time: the run's branch holds it
  'item/reasoning/summaryPartAdded',
  'account/rateLimits/updated',
  'account/updated',
  'remoteControl/status/changed',
  'mcpServer/startupStatus/updated',
  'skills/changed',
  'app/list/updated',
  'serverRequest/resolved',
  'rawResponseItem/completed',
  'rawResponse/completed',
  'fs/changed',
]);

/** The status a turn ends with. */
export enum CodexTurnStatus {
  Completed = 'completed',
  Interrupted = 'interrupted',
  Failed = 'failed',
  InProgress = 'inProgress',
}

/** One text input item (the only kind runboard sends). */
export interface CodexTextInput {
  readonly type: 'text';
  readonly text: string;
  readonly text_elements: readonly unknown[];
}

/** Each request's params (the fields runboard sets; see `codex app-server generate-ts` for the rest). */
export interface CodexRequestParams {
  [CodexRequestMethod.Initialize]: { readonly clientInfo: { readonly name: string; readonly title: string | null; readonly version: string }; readonly capabilities: null };
  /** A run needs full access: the sandbox makes .git read-only, so commits fail; "never" means nothing asks. */
  [CodexRequestMethod.ThreadStart]: { readonly cwd: string; readonly approvalPolicy: 'never'; readonly sandbox: 'danger-full-access' };
  [CodexRequestMethod.ThreadResume]: { readonly threadId: string; readonly cwd?: string; readonly approvalPolicy?: 'never'; readonly sandbox?: 'danger-full-access' };
  [CodexRequestMethod.TurnStart]: { readonly threadId: string; readonly input: readonly CodexTextInput[] };
  /** Fails unless `expectedTurnId` is the running turn. */
  [CodexRequestMethod.TurnSteer]: { readonly threadId: string; readonly input: readonly CodexTextInput[]; readonly expectedTurnId: string };
  [CodexRequestMethod.TurnInterrupt]: { readonly threadId: string; readonly turnId: string };
}

/** An error a turn failed with; `message` is the provider's error body as text for a model API error. */
export interface CodexTurnError {
  readonly message: string;
  readonly codexErrorInfo?: unknown;
  readonly additionalDetails?: string | null;
}

/** A turn as turn/started and turn/completed report it. */
export interface CodexTurn {
  readonly id: string;
  readonly status: CodexTurnStatus | string;
  readonly error: CodexTurnError | null;
  readonly durationMs?: number | null;
}

/** A thread item: `userMessage`, `agentMessage` (text), `reasoning`, `commandExecution` (command, exitCode, aggregatedOutput), …. */
export interface CodexThreadItem {
  readonly type: string;
  readonly id: string;
  readonly text?: string;
  readonly command?: string;
  readonly cwd?: string;
  readonly status?: string;
  readonly exitCode?: number | null;
  readonly aggregatedOutput?: string | null;
  readonly [key: string]: unknown;
}

/** Token counts of one model response (`last`) or the thread so far (`total`). */
export interface CodexTokenUsage {
  readonly totalTokens: number;
  readonly inputTokens: number;
  readonly cachedInputTokens: number;
  /** Absent before Codex 0.169. */
  readonly cacheWriteInputTokens?: number;
  readonly outputTokens: number;
  readonly reasoningOutputTokens: number;
}

/** The answer to one of runboard's requests, matched by `id`. */
export interface CodexResponse {
  readonly kind: 'response';
  readonly id: number | string;
  readonly result?: unknown;
  readonly error?: { readonly code?: number; readonly message: string; readonly data?: unknown };
}

/** A request Codex sends the client (approvals, user input); runboard must answer or decline it. */
export interface CodexServerRequest {
  readonly kind: 'request';
  readonly id: number | string;
  readonly method: string;
  readonly params: unknown;
}

/** turn/started, turn/completed (the settle signal: status and error). */
export interface TurnNotification {
  readonly kind: 'notification';
  readonly method: CodexNotificationMethod.TurnStarted | CodexNotificationMethod.TurnCompleted;
  readonly params: { readonly threadId: string; readonly turn: CodexTurn };
}

/** item/started, item/completed: one thread item. */
export interface ItemNotification {
  readonly kind: 'notification';
  readonly method: CodexNotificationMethod.ItemStarted | CodexNotificationMethod.ItemCompleted;
  readonly params: { readonly threadId: string; readonly turnId: string; readonly item: CodexThreadItem };
}

/** Streamed text of an item: answer, reasoning summary or command output. */
export interface DeltaNotification {
  readonly kind: 'notification';
  readonly method: CodexNotificationMethod.AgentMessageDelta | CodexNotificationMethod.ReasoningSummaryTextDelta | CodexNotificationMethod.CommandOutputDelta;
  readonly params: { readonly threadId: string; readonly turnId: string; readonly itemId: string; readonly delta: string };
}

/** Usage after a model response: `last` for it, `total` for the thread. */
export interface TokenUsageNotification {
  readonly kind: 'notification';
  readonly method: CodexNotificationMethod.TokenUsageUpdated;
  readonly params: { readonly threadId: string; readonly turnId: string; readonly tokenUsage: { readonly last: CodexTokenUsage; readonly total: CodexTokenUsage } };
}

/** A turn error; the turn/completed that follows carries it too. */
export interface ErrorNotification {
  readonly kind: 'notification';
  readonly method: CodexNotificationMethod.Error;
  readonly params: { readonly error: CodexTurnError; readonly willRetry: boolean; readonly threadId: string; readonly turnId: string };
}

/** A notification runboard reads only by method (thread/started, thread/status/changed, warning) or not at all. */
export interface OtherNotification {
  readonly kind: 'notification';
  readonly method: string;
  readonly params: Record<string, unknown>;
}

/** A line that is no JSON-RPC message, or a known notification without its expected fields: kept, never dropped. */
export interface UnknownCodexMessage {
  readonly kind: 'unknown';
  readonly raw: Record<string, unknown>;
}

/** The answer to `thread/start` and `thread/resume` (the fields runboard reads). */
export interface ThreadResult {
  readonly thread: { readonly id: string; readonly path: string | null };
}

/** The answer to `turn/start`. */
export interface TurnStartResult {
  readonly turn: { readonly id: string };
}

/** One step of the agent's plan. */
export interface CodexPlanStep {
  readonly step: string;
  readonly status: 'pending' | 'inProgress' | 'completed' | string;
}

/** The agent's plan as it now stands. */
export interface PlanNotification {
  readonly kind: 'notification';
  readonly method: CodexNotificationMethod.PlanUpdated;
  readonly params: { readonly threadId: string; readonly turnId: string; readonly explanation: string | null; readonly plan: readonly CodexPlanStep[] };
}

/** Every line Codex prints, as parsed by `parseCodexLine`. */
export type CodexMessage =
  | CodexResponse
  | CodexServerRequest
  | TurnNotification
  | ItemNotification
  | DeltaNotification
  | TokenUsageNotification
  | ErrorNotification
  | PlanNotification
  | OtherNotification
  | UnknownCodexMessage;

/** Parses one stdout line. Shapes it cannot place become `UnknownCodexMessage`; non-JSON throws AgentProtocolError. */
export function parseCodexLine(line: string): CodexMessage {
  return parseCodexMessage(parseJsonObjectLine(line));
}

/** Classifies one JSON object Codex sent, as `parseCodexLine` does a line. */
export function parseCodexMessage(raw: Record<string, unknown>): CodexMessage {
  const hasId = typeof raw.id === 'number' || typeof raw.id === 'string';
  if (typeof raw.method !== 'string') {
    if (hasId && ('result' in raw || isObject(raw.error))) return { kind: 'response', id: raw.id as number | string, result: raw.result, error: raw.error as CodexResponse['error'] };
    return unknown(raw);
  }
  const params = isObject(raw.params) ? raw.params : {};
  if (hasId) return { kind: 'request', id: raw.id as number | string, method: raw.method, params: raw.params };
  const notification = { kind: 'notification' as const, method: raw.method, params };
  switch (raw.method) {
    case CodexNotificationMethod.TurnStarted:
    case CodexNotificationMethod.TurnCompleted:
      return isObject(params.turn) && typeof params.turn.id === 'string' ? (notification as TurnNotification) : unknown(raw);
    case CodexNotificationMethod.ItemStarted:
    case CodexNotificationMethod.ItemCompleted:
      return isObject(params.item) && typeof params.item.type === 'string' ? (notification as ItemNotification) : unknown(raw);
    case CodexNotificationMethod.AgentMessageDelta:
    case CodexNotificationMethod.ReasoningSummaryTextDelta:
    case CodexNotificationMethod.CommandOutputDelta:
      return typeof params.delta === 'string' ? (notification as DeltaNotification) : unknown(raw);
    case CodexNotificationMethod.TokenUsageUpdated:
      return isObject(params.tokenUsage) && isObject(params.tokenUsage.last) ? (notification as TokenUsageNotification) : unknown(raw);
    case CodexNotificationMethod.Error:
      return isObject(params.error) && typeof params.error.message === 'string' ? (notification as ErrorNotification) : unknown(raw);
    case CodexNotificationMethod.PlanUpdated:
      return Array.isArray(params.plan) ? (notification as PlanNotification) : unknown(raw);
    default:
      return notification;
  }
}

/**
 * The model's own message in a turn error: Codex passes the provider's error body as text, so the
 * `error.message` of a JSON body when there is one, else the text as it is.
 */
export function turnErrorMessage(error: CodexTurnError): string {
  try {
    const body: unknown = JSON.parse(error.message);
    if (isObject(body) && isObject(body.error) && typeof body.error.message === 'string' && body.error.message) return body.error.message;
  } catch {
    // not a JSON body: the message itself
  }
  return error.message;
}

function unknown(raw: Record<string, unknown>): UnknownCodexMessage {
  return { kind: 'unknown', raw };
}

/** Serializes a request as one stdin line. */
export function encodeCodexRequest<M extends CodexRequestMethod>(id: number, method: M, params: CodexRequestParams[M]): string {
  return `${JSON.stringify({ id, method, params })}\n`;
}

/** Serializes a notification as one stdin line. */
export function encodeCodexNotification(method: CodexClientNotificationMethod, params?: unknown): string {
  return `${JSON.stringify(params === undefined ? { method } : { method, params })}\n`;
}

/** One text input for turn/start and turn/steer. */
export function textInput(text: string): CodexTextInput {
  return { type: 'text', text, text_elements: [] };
}

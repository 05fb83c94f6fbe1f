/**
 * The vocabulary of Claude Code's stream-json mode (`claude -p --input-format stream-json --output-format
 * stream-json --verbose`): JSON lines on stdin (user messages, control requests) and stdout (session, model
 * and tool messages, turn results). Observed with Claude Code 2.1.330 (../shared/AGENTS-NATIVE.md and the
 * recordings in test/fixtures/claude/). Only what runboard uses is typed; everything else parses as
 * `UnknownClaudeMessage` and is kept.
 */
import { isObject, parseJsonObjectLine, unknownMessage as unknown, type UnknownMessage } from '../json-line.js';

/** Lines runboard writes, runboard -> claude. */
export enum ClaudeInputType {
  User = 'user', // runboard -> claude: a user message; queued behind a running turn, or a steer with priority "now"
  ControlRequest = 'control_request', // runboard -> claude: a control command (interrupt), answered by a control_response
}

/** Control commands runboard sends. */
export enum ClaudeControlSubtype {
  Interrupt = 'interrupt', // runboard -> claude: end the turn now (kills a running tool's group); the process stays
}

/** A user message line (see `userInput`). */
export interface UserInput {
  readonly type: ClaudeInputType.User;
  readonly message: { readonly role: 'user'; readonly content: string };
  /** "now" cuts the streaming answer and sends this next (a steer); absent, it waits for the turn to end (a follow-up). */
  readonly priority?: 'now';
}

/** A control command line (see `interruptInput`). */
export interface ControlRequestInput {
  readonly type: ClaudeInputType.ControlRequest;
  readonly request_id: string;
  readonly request: { readonly subtype: ClaudeControlSubtype };
}

/** Every line runboard writes. */
export type ClaudeInput = UserInput | ControlRequestInput;

/** Lines Claude Code prints, claude -> runboard. */
export enum ClaudeMessageType {
  System = 'system', // claude -> runboard: session facts; subtype "init" opens every turn (session_id, model, tools)
  Assistant = 'assistant', // claude -> runboard: one finished content block of a model answer (text, thinking or tool_use)
  User = 'user', // claude -> runboard: a tool result (or an interruption note) going back to the model
  Result = 'result', // claude -> runboard: a turn is over, with its outcome, usage and cost
  StreamEvent = 'stream_event', // claude -> runboard: a raw model SSE event (only with --include-partial-messages)
  ControlResponse = 'control_response', // claude -> runboard: answer to a control_request
  ControlRequest = 'control_request', // claude -> runboard: a question for the client (permissions outside bypassPermissions)
}

/** `system` subtypes runboard reads; others parse as a plain `SystemMessage`. */
export enum ClaudeSystemSubtype {
  Init = 'init', // a turn begins: session id, model, tools, permission mode
}

/** A content block of a model message or of a tool-result message. */
export interface ClaudeContentBlock {
  readonly type: string; // "text", "thinking", "tool_use", "tool_result", …
  readonly text?: string;
  readonly thinking?: string;
  /** tool_use: the call's id and tool. */
  readonly id?: string;
  readonly name?: string;
  readonly input?: unknown;
  /** tool_result: the call it answers, its output and whether it failed. */
  readonly tool_use_id?: string;
  readonly content?: string | readonly ClaudeContentBlock[];
  readonly is_error?: boolean;
}

/** Token counts as the Messages API reports them. */
export interface ClaudeUsage {
  readonly input_tokens?: number;
  readonly output_tokens?: number;
  readonly cache_creation_input_tokens?: number;
  readonly cache_read_input_tokens?: number;
}

/** `system`/`init`: opens every turn (a queued follow-up or a steer gets its own). */
export interface SystemInitMessage {
  readonly type: ClaudeMessageType.System;
  readonly subtype: ClaudeSystemSubtype.Init;
  readonly session_id: string;
  readonly cwd?: string;
  readonly model?: string;
  readonly tools?: readonly string[];
  readonly permissionMode?: string;
}

/** Any other `system` line (status, thinking_tokens, task_started, task_notification, …). */
export interface SystemMessage {
  readonly type: ClaudeMessageType.System;
  readonly subtype: string;
  readonly session_id?: string;
  readonly [key: string]: unknown;
}

/** One finished content block of a model answer. */
export interface AssistantMessage {
  readonly type: ClaudeMessageType.Assistant;
  readonly session_id: string;
  /** Set when a subagent's tool call produced this message. */
  readonly parent_tool_use_id: string | null;
  readonly message: {
    readonly id: string;
    readonly model?: string; // "<synthetic>" for Claude Code's own error messages
    readonly content: readonly ClaudeContentBlock[];
    readonly usage?: ClaudeUsage;
  };
  /** True on the partial answer a steer or interrupt cut off. */
  readonly aborted?: boolean;
  /** True when the "answer" is Claude Code reporting a model API error (its text is the error). */
  readonly is_api_error_message?: boolean;
}

/** A tool result (or an interruption note) going back to the model. */
export interface UserMessage {
  readonly type: ClaudeMessageType.User;
  readonly session_id: string;
  readonly parent_tool_use_id: string | null;
  readonly message: { readonly role: 'user'; readonly content: string | readonly ClaudeContentBlock[] };
  /** The tool's structured result (e.g. Bash: stdout, stderr, interrupted). */
  readonly tool_use_result?: unknown;
  /** True on the echo of a user message runboard wrote (`--replay-user-messages`): it entered the conversation. */
  readonly isReplay?: boolean;
}

/** The end of a turn: the settle signal, with outcome, usage and cost. */
export interface ResultMessage {
  readonly type: ClaudeMessageType.Result;
  /** "success" even for a model API error (see `is_error`); "error_during_execution" after an interrupt; … */
  readonly subtype: string;
  readonly is_error: boolean;
  /** Why the turn ended: "completed", "api_error", "aborted_streaming" (a steer), "aborted_tools" (an interrupt), … */
  readonly terminal_reason?: string;
  /** The final text, or the error ("API Error: 400 …"). */
  readonly result?: string;
  readonly session_id: string;
  readonly num_turns?: number;
  readonly duration_ms?: number;
  readonly total_cost_usd?: number;
  readonly usage?: ClaudeUsage;
  readonly api_error_status?: number;
}

/** A raw model SSE event (only with --include-partial-messages). */
export interface StreamEventMessage {
  readonly type: ClaudeMessageType.StreamEvent;
  readonly session_id: string;
  readonly event: { readonly type: string; readonly [key: string]: unknown };
}

/** The answer to a control request, matched by `request_id`. */
export interface ControlResponseMessage {
  readonly type: ClaudeMessageType.ControlResponse;
  readonly response: { readonly subtype: string; readonly request_id: string; readonly response?: unknown; readonly error?: string };
}

/** A question Claude Code asks the client (not asked in bypassPermissions). */
export interface ControlRequestMessage {
  readonly type: ClaudeMessageType.ControlRequest;
  readonly request_id: string;
  readonly request: { readonly subtype: string; readonly [key: string]: unknown };
}

/** Anything else Claude Code prints: kept, never dropped silently. */
export type UnknownClaudeMessage = UnknownMessage;

/** Every line Claude Code prints, as parsed by `parseClaudeLine`. */
export type ClaudeMessage =
  | SystemInitMessage
  | SystemMessage
  | AssistantMessage
  | UserMessage
  | ResultMessage
  | StreamEventMessage
  | ControlResponseMessage
  | ControlRequestMessage
  | UnknownClaudeMessage;

/** Parses one stdout line. Unknown or malformed messages become `UnknownClaudeMessage`; non-JSON throws AgentProtocolError. */
export function parseClaudeLine(line: string): ClaudeMessage {
  const raw = parseJsonObjectLine(line);
  const type = typeof raw.type === 'string' ? raw.type : null;
  switch (type) {
    case ClaudeMessageType.System:
      if (typeof raw.subtype !== 'string') return unknown(type, raw);
      if (raw.subtype === ClaudeSystemSubtype.Init) return typeof raw.session_id === 'string' ? (raw as unknown as SystemInitMessage) : unknown(type, raw);
      return raw as unknown as SystemMessage;
    case ClaudeMessageType.Assistant:
      return isObject(raw.message) && Array.isArray(raw.message.content) ? (raw as unknown as AssistantMessage) : unknown(type, raw);
    case ClaudeMessageType.User:
      return isObject(raw.message) ? (raw as unknown as UserMessage) : unknown(type, raw);
    case ClaudeMessageType.Result:
      return typeof raw.subtype === 'string' && typeof raw.is_error === 'boolean' ? (raw as unknown as ResultMessage) : unknown(type, raw);
    case ClaudeMessageType.StreamEvent:
      return isObject(raw.event) && typeof raw.event.type === 'string' ? (raw as unknown as StreamEventMessage) : unknown(type, raw);
    case ClaudeMessageType.ControlResponse:
      return isObject(raw.response) && typeof raw.response.request_id === 'string' ? (raw as unknown as ControlResponseMessage) : unknown(type, raw);
    case ClaudeMessageType.ControlRequest:
      return typeof raw.request_id === 'string' && isObject(raw.request) ? (raw as unknown as ControlRequestMessage) : unknown(type, raw);
    default:
      return unknown(type, raw);
  }
}

/** Serializes one stdin line. */
export function encodeClaudeInput(input: ClaudeInput): string {
  return `${JSON.stringify(input)}\n`;
}

/** A user message: a steer (cuts the streaming answer, `priority: "now"`) or a follow-up (queued behind the turn). */
export function userInput(text: string, { steer = false }: { steer?: boolean } = {}): UserInput {
  return { type: ClaudeInputType.User, message: { role: 'user', content: text }, ...(steer ? { priority: 'now' as const } : {}) };
}

/** The interrupt control request, answered by a control_response with the same `requestId`. */
export function interruptInput(requestId: string): ControlRequestInput {
  return { type: ClaudeInputType.ControlRequest, request_id: requestId, request: { subtype: ClaudeControlSubtype.Interrupt } };
}

/**
 * The vocabulary of pi's RPC mode (`pi --mode rpc`): JSON lines on stdin (commands) and stdout
 * (responses and events). See pi's docs/rpc.md and ../shared/PI-RPC.md for observed behaviour.
 * Only what runboard uses is typed; everything else parses as `UnknownAgentEvent` and is kept.
 */
import { isObject, parseJsonObjectLine, unknownMessage, type UnknownMessage } from '../json-line.js';

export { AgentProtocolError } from '../json-line.js';

/** Commands, runboard -> agent. */
export enum AgentCommandType {
  Prompt = 'prompt', // runboard -> agent: start work, or queue it with streamingBehavior while streaming
  Abort = 'abort', // runboard -> agent: cancel the current model request and tools; pi stays alive
  GetState = 'get_state', // runboard -> agent: session file, streaming flag, pending message count
}

/** How a `prompt` sent while the agent streams is queued. When idle it simply starts work. */
export type StreamingBehavior = 'steer' | 'followUp';

export interface PromptCommand {
  readonly type: AgentCommandType.Prompt;
  readonly message: string;
  readonly streamingBehavior?: StreamingBehavior;
}

export interface AbortCommand {
  readonly type: AgentCommandType.Abort;
}

export interface GetStateCommand {
  readonly type: AgentCommandType.GetState;
}

export type AgentCommand = PromptCommand | AbortCommand | GetStateCommand;

/** `get_state` response data (the fields runboard reads). */
export interface AgentState {
  readonly sessionFile?: string;
  readonly sessionId?: string;
  readonly isStreaming: boolean;
  readonly pendingMessageCount: number;
}

/** Responses and events, agent -> runboard. */
export enum AgentMessageType {
  Response = 'response', // agent -> runboard: answer to a command (echoes its id when it had one)
  AgentStart = 'agent_start', // agent -> runboard: began working on a prompt
  AgentEnd = 'agent_end', // agent -> runboard: stopped working (an auto retry may still follow)
  TurnStart = 'turn_start', // agent -> runboard: one model answer plus its tool calls begins
  TurnEnd = 'turn_end', // agent -> runboard: that turn is over
  MessageStart = 'message_start', // agent -> runboard: a user, assistant or tool result message begins
  MessageUpdate = 'message_update', // agent -> runboard: a streaming delta (plus the whole message so far, twice)
  MessageEnd = 'message_end', // agent -> runboard: the complete message
  ToolExecutionStart = 'tool_execution_start', // agent -> runboard: a tool began
  ToolExecutionUpdate = 'tool_execution_update', // agent -> runboard: accumulated tool output so far
  ToolExecutionEnd = 'tool_execution_end', // agent -> runboard: a tool finished
  QueueUpdate = 'queue_update', // agent -> runboard: queued steering / follow-up messages changed
  AutoRetryStart = 'auto_retry_start', // agent -> runboard: a failed request will be retried
  AutoRetryEnd = 'auto_retry_end', // agent -> runboard: retrying ended, successfully or not
  CompactionStart = 'compaction_start', // agent -> runboard: context compaction began
  CompactionEnd = 'compaction_end', // agent -> runboard: context compaction ended
  ExtensionError = 'extension_error', // agent -> runboard: an extension threw
}

export interface ContentBlock {
  readonly type: string;
  readonly text?: string;
  readonly thinking?: string;
  readonly name?: string;
  readonly arguments?: unknown;
}

export interface Usage {
  readonly input?: number;
  readonly output?: number;
  readonly cacheRead?: number;
  readonly cacheWrite?: number;
  readonly totalTokens?: number;
  readonly cost?: { readonly total?: number };
}

/** An agent message as pi reports it (user, assistant or toolResult). */
export interface AgentChatMessage {
  readonly role: string;
  readonly content?: string | readonly ContentBlock[];
  readonly stopReason?: string;
  readonly errorMessage?: string;
  readonly usage?: Usage;
}

export interface ResponseMessage {
  readonly type: AgentMessageType.Response;
  readonly id?: string;
  readonly command: string;
  readonly success: boolean;
  readonly data?: unknown;
  readonly error?: string;
}

export interface MessageUpdateEvent {
  readonly type: AgentMessageType.MessageUpdate;
  readonly assistantMessageEvent?: {
    readonly type: string;
    readonly contentIndex?: number;
    readonly delta?: string;
    readonly toolCall?: { readonly id?: string; readonly name?: string; readonly arguments?: unknown };
  };
}

export interface MessageEvent {
  readonly type: AgentMessageType.MessageStart | AgentMessageType.MessageEnd;
  readonly message: AgentChatMessage;
}

export interface ToolExecutionEvent {
  readonly type: AgentMessageType.ToolExecutionStart | AgentMessageType.ToolExecutionUpdate | AgentMessageType.ToolExecutionEnd;
  readonly toolCallId: string;
  readonly toolName: string;
  readonly args?: unknown;
  readonly partialResult?: { readonly content?: readonly ContentBlock[] };
  readonly result?: { readonly content?: readonly ContentBlock[] };
  readonly isError?: boolean;
}

export interface QueueUpdateEvent {
  readonly type: AgentMessageType.QueueUpdate;
  readonly steering: readonly string[];
  readonly followUp: readonly string[];
}

export interface AutoRetryStartEvent {
  readonly type: AgentMessageType.AutoRetryStart;
  readonly attempt?: number;
  readonly maxAttempts?: number;
  readonly delayMs?: number;
  readonly errorMessage?: string;
}

export interface AutoRetryEndEvent {
  readonly type: AgentMessageType.AutoRetryEnd;
  readonly success: boolean;
  readonly attempt?: number;
  readonly finalError?: string;
}

/** Events carrying nothing runboard reads beyond their type. */
export interface BareEvent {
  readonly type:
    | AgentMessageType.AgentStart
    | AgentMessageType.AgentEnd
    | AgentMessageType.TurnStart
    | AgentMessageType.TurnEnd
    | AgentMessageType.CompactionStart
    | AgentMessageType.CompactionEnd
    | AgentMessageType.ExtensionError;
  readonly [key: string]: unknown;
}

/** Anything else pi prints: kept, never dropped silently. */
export type UnknownAgentEvent = UnknownMessage;

export type AgentMessage =
  | ResponseMessage
  | MessageUpdateEvent
  | MessageEvent
  | ToolExecutionEvent
  | QueueUpdateEvent
  | AutoRetryStartEvent
  | AutoRetryEndEvent
  | BareEvent
  | UnknownAgentEvent;

/** Parses one stdout line. Unknown `type`s become `UnknownAgentEvent`; non-JSON throws AgentProtocolError. */
export function parseAgentLine(line: string): AgentMessage {
  const raw = parseJsonObjectLine(line);
  const type = typeof raw.type === 'string' ? raw.type : null;
  switch (type) {
    case AgentMessageType.Response:
      return typeof raw.command === 'string' && typeof raw.success === 'boolean' ? (raw as unknown as ResponseMessage) : unknown(type, raw);
    case AgentMessageType.MessageStart:
    case AgentMessageType.MessageEnd:
      return isObject(raw.message) ? (raw as unknown as MessageEvent) : unknown(type, raw);
    case AgentMessageType.MessageUpdate:
      return raw as unknown as MessageUpdateEvent;
    case AgentMessageType.ToolExecutionStart:
    case AgentMessageType.ToolExecutionUpdate:
    case AgentMessageType.ToolExecutionEnd:
      return typeof raw.toolCallId === 'string' ? (raw as unknown as ToolExecutionEvent) : unknown(type, raw);
    case AgentMessageType.QueueUpdate:
      return Array.isArray(raw.steering) && Array.isArray(raw.followUp) ? (raw as unknown as QueueUpdateEvent) : unknown(type, raw);
    case AgentMessageType.AutoRetryStart:
      return raw as unknown as AutoRetryStartEvent;
    case AgentMessageType.AutoRetryEnd:
      return typeof raw.success === 'boolean' ? (raw as unknown as AutoRetryEndEvent) : unknown(type, raw);
    case AgentMessageType.AgentStart:
    case AgentMessageType.AgentEnd:
    case AgentMessageType.TurnStart:
    case AgentMessageType.TurnEnd:
    case AgentMessageType.CompactionStart:
    case AgentMessageType.CompactionEnd:
    case AgentMessageType.ExtensionError:
      return raw as unknown as BareEvent;
    default:
      return unknown(type, raw);
  }
}

const unknown = unknownMessage;

/** Serializes a command with its request id as one stdin line. */
export function encodeCommand(id: string, command: AgentCommand): string {
  return `${JSON.stringify({ id, ...command })}\n`;
}

/** The text of a message's content, whichever shape pi used. */
export function textOf(content: AgentChatMessage['content'] | undefined): string {
  if (typeof content === 'string') return content;
  if (!content) return '';
  return content.map((block) => (block.type === 'text' ? (block.text ?? '') : '')).join('');
}

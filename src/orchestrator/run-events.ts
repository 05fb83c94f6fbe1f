/**
 * The run event vocabulary, defined once: every kind of event a run's log can hold and the shape of
 * its `data`. Agents' normalisers, the run lifecycle, merges, playtests and board changes write
 * these; the schema maps each kind to one GraphQL type (src/schema/run-events.ts).
 *
 * Rows are stored as `{ type, data }` with `data` as JSON. Reading a row back checks it against this
 * vocabulary: a row of a kind no longer known, or whose payload was replaced by a preview because it
 * was too large (see `capData`), reads as `unrecognized`, so nothing is ever dropped.
 */
import type { RunStatus } from './run-status.js';

/** How a message reached the agent: the run's first prompt, a steer, or a follow-up. */
export type UserMessageMode = 'PROMPT' | 'STEER' | 'FOLLOW_UP';
/** A run's merge strategy, as `mergeRun` takes it. */
export type MergeStrategyName = 'MERGE' | 'SQUASH';
/** What an agent did to its own card through the API. */
export type BoardChangeAction = 'addComment' | 'updateCard' | 'addCardTags' | 'removeCardTags' | 'moveCard';
/** One step of an agent's plan. */
export interface PlanEntry {
  readonly content: string;
  readonly status: 'pending' | 'in_progress' | 'completed';
  readonly priority: 'high' | 'medium' | 'low' | null;
}

/** Each kind of run event and its data. Optional fields may be absent from older rows. */
export interface RunEventDataByType {
  /** Every status transition; the first event of every run. `refinedFrom` is the refined run's id. */
  status: { status: RunStatus; reason?: string; error?: string; refinedFrom?: string };
  /** A message runboard sent to the agent. */
  user_message: { mode: UserMessageMode; text: string };
  /** A message reached the agent's conversation (a steer arrives at its next model request). */
  message_delivered: { text: string };
  /** Answer text, coalesced; concatenated in seq order the texts are the answer. */
  assistant_text: { text: string };
  /** Reasoning text, coalesced. */
  thinking: { text: string };
  /** `args` as given, or a JSON preview string when too large. */
  tool_start: { toolCallId: string; tool: string; args: unknown };
  /** Output so far (its tail), throttled. */
  tool_progress: { toolCallId: string; tool: string; output: string };
  tool_end: { toolCallId: string; tool: string; isError: boolean; output: string };
  /** Tokens and cost (USD) of one model answer. */
  usage: { input: number; output: number; cacheRead: number; cacheWrite: number; totalTokens: number; cost: number };
  /** A model request failed. */
  model_error: { message: string };
  /** How many messages wait in the agent's own queue. */
  queue: { steering: number; followUp: number };
  retry: { attempt: number | null; maxAttempts: number | null; delayMs: number | null; error: string };
  retry_end: { success: boolean; attempt: number | null; error: string | null };
  agent_start: Record<string, never>;
  agent_end: Record<string, never>;
  compaction: { phase: 'start' | 'end'; reason: string | null };
  /** The agent's plan as it now stands (agents that report plans). */
  plan_updated: { entries: PlanEntry[] };
  stderr: { line: string };
  warning: { message: string };
  /** cleanupOnFinish removed the run's worktree. */
  worktree_removed: { branchDeleted: boolean; unmergedCommits: number };
  /** mergeRun's outcome; `interrupted` when the server stopped mid-merge and the next start finished or undid it. */
  merge: { ok: boolean; sha: string | null; strategy: MergeStrategyName; conflictingPaths: string[]; message: string | null; interrupted?: boolean };
  /** Something the run's agent changed on its card through the API. */
  board_change: { action: BoardChangeAction; commentId?: string; body?: string; description?: string | null; column?: string; position?: number | null; tags?: string[] };
  playtest_start: { command: string; pid: number | null };
  playtest_output: { stream: 'stdout' | 'stderr'; line: string };
  /** Lines dropped by the rate limit since the last report. */
  playtest_dropped: { count: number };
  playtest_exit: { exitCode: number | null; signal: string | null; droppedLines: number; stopped: boolean; reason?: string; error?: string };
  /** Anything else an agent said, or a row this vocabulary cannot read: its original type and a preview. */
  unrecognized: { originalType: string; preview: string };
}

export type RunEventType = keyof RunEventDataByType;

/** An event to append: one kind and its data. */
export type RunEventInput = { [T in RunEventType]: { readonly type: T; readonly data: RunEventDataByType[T] } }[RunEventType];

/** A persisted event of kind `T`. */
export type RunEventOf<T extends RunEventType> = { readonly runId: string; readonly seq: number; readonly createdAt: Date; readonly type: T; readonly data: RunEventDataByType[T] };

/** A persisted event: the discriminated union of every kind. */
export type RunEvent = { [T in RunEventType]: RunEventOf<T> }[RunEventType];

/**
 * The fields each kind must have for a stored row to read as that kind. Checked by tsc against
 * RunEventDataByType, so a kind cannot be added without saying what it requires.
 */
const REQUIRED_FIELDS: { readonly [T in RunEventType]: readonly (keyof RunEventDataByType[T])[] } = {
  status: ['status'],
  user_message: ['mode', 'text'],
  message_delivered: ['text'],
  assistant_text: ['text'],
  thinking: ['text'],
  tool_start: ['toolCallId', 'tool'],
  tool_progress: ['toolCallId', 'tool', 'output'],
  tool_end: ['toolCallId', 'tool', 'isError', 'output'],
  usage: ['input', 'output', 'totalTokens', 'cost'],
  model_error: ['message'],
  queue: ['steering', 'followUp'],
  retry: [],
  retry_end: ['success'],
  agent_start: [],
  agent_end: [],
  compaction: ['phase'],
  plan_updated: ['entries'],
  stderr: ['line'],
  warning: ['message'],
  worktree_removed: ['branchDeleted', 'unmergedCommits'],
  merge: ['ok', 'strategy'],
  board_change: ['action'],
  playtest_start: ['command'],
  playtest_output: ['stream', 'line'],
  playtest_dropped: ['count'],
  playtest_exit: ['stopped'],
  unrecognized: ['originalType', 'preview'],
};

/** Every kind, in the vocabulary's order. */
export const RUN_EVENT_TYPES = Object.keys(REQUIRED_FIELDS) as readonly RunEventType[];

/** Text kept of a row that reads as `unrecognized`. @default 2_000 // characters */
export const UNRECOGNIZED_PREVIEW_CHARS = 2_000;

/** Kinds stored under an earlier name. */
const LEGACY_TYPES: Readonly<Record<string, RunEventType>> = { agent_event: 'unrecognized' };

function isRunEventType(type: string): type is RunEventType {
  return Object.hasOwn(REQUIRED_FIELDS, type);
}

/** A stored row as a typed event; anything that does not fit its kind reads as `unrecognized`. */
export function toRunEvent(runId: string, seq: number, storedType: string, data: Record<string, unknown>, createdAt: Date): RunEvent {
  const type = LEGACY_TYPES[storedType] ?? storedType;
  if (isRunEventType(type) && data.truncated !== true && REQUIRED_FIELDS[type].every((field) => data[field as string] !== undefined)) {
    return { runId, seq, createdAt, type, data } as RunEvent;
  }
  const json = JSON.stringify(data);
  const preview = typeof data.preview === 'string' ? data.preview : json.length <= UNRECOGNIZED_PREVIEW_CHARS ? json : `${json.slice(0, UNRECOGNIZED_PREVIEW_CHARS)}…`;
  return { runId, seq, createdAt, type: 'unrecognized', data: { originalType: storedType, preview } };
}

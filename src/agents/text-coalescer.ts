/**
 * What every agent's event normaliser shares: text coalescing and the caps on what one event keeps.
 * Agents stream answer and reasoning text in bursts of tiny deltas (pi) or whole blocks (Claude Code);
 * the coalescer joins consecutive text of one kind and emits it at a size, after a delay, or at the next
 * boundary, so storage grows linearly with what the agent produces and an answer is tens of events.
 */
import { truncateText, type RunEventInput } from '../orchestrator/event-log.js';

/** Coalesced text is flushed at this size… @default 4_000 // characters */
export const TEXT_FLUSH_CHARS = 4_000;
/** …or this long after its first delta. @default 250 // ms */
export const TEXT_FLUSH_MS = 250;
/** Least time between two tool_progress events of one tool call. @default 1_000 // ms */
export const PROGRESS_INTERVAL_MS = 1_000;
/** Tool output kept in tool_progress / tool_end. @default 4_000 // characters */
export const TOOL_OUTPUT_CHARS = 4_000;
/** Tool arguments kept in tool_start, as JSON. @default 2_000 // characters */
export const TOOL_ARGS_CHARS = 2_000;
/** Text kept of a delivered message, an error or an unknown event. @default 2_000 // characters */
export const PREVIEW_CHARS = 2_000;

/** The two kinds of streamed text. */
export type TextKind = 'assistant_text' | 'thinking';

/** Joins text deltas of one kind into few events; every other event goes through `emitAll`, after the text before it. */
export class TextCoalescer {
  private pending: { kind: TextKind; text: string } | null = null;
  private flushTimer: NodeJS.Timeout | null = null;

  /** `emit` receives events in order; it is called synchronously or from the flush timer. */
  constructor(private readonly emit: (events: RunEventInput[]) => void) {}

  /** Adds a delta; text of the other kind is flushed first. */
  append(kind: TextKind, delta: string): void {
    if (!delta) return;
    if (this.pending && this.pending.kind !== kind) this.flush();
    if (!this.pending) {
      this.pending = { kind, text: '' };
      this.flushTimer = setTimeout(() => this.flush(), TEXT_FLUSH_MS);
    }
    this.pending.text += delta;
    if (this.pending.text.length >= TEXT_FLUSH_CHARS) this.flush();
  }

  /** Emits `events` after any text held, so the order is what the agent said. */
  emitAll(events: RunEventInput[]): void {
    if (!events.length) return;
    this.flush();
    this.emit(events);
  }

  /** Emits any coalesced text now (at a boundary, or before the run's status changes). */
  flush(): void {
    if (this.flushTimer) clearTimeout(this.flushTimer);
    this.flushTimer = null;
    const pending = this.pending;
    this.pending = null;
    if (pending?.text) this.emit([{ type: pending.kind, data: { text: pending.text } }]);
  }
}

/** Tool arguments as they are when small; a JSON preview string when not. */
export function capToolArgs(args: unknown): unknown {
  const json = JSON.stringify(args ?? {});
  return json.length <= TOOL_ARGS_CHARS ? (args ?? {}) : truncateText(json, TOOL_ARGS_CHARS);
}

/**
 * Turns Claude Code's stream-json lines into runboard's run events. Claude Code prints one `assistant`
 * line per finished content block (text, thinking, tool_use), tool results as `user` lines, and one
 * `result` per turn with the turn's usage and the session's running cost.
 *
 * - system/init                 -> agent_start (a turn begins; a steer or follow-up gets its own)
 * - assistant text / thinking   -> assistant_text / thinking, coalesced
 * - assistant tool_use          -> tool_start
 * - assistant API error         -> model_error (Claude Code's own "API Error: …" message, not answer text)
 * - user tool_result            -> tool_end, with the tool's name from its tool_start
 * - user replay                 -> message_delivered (a message runboard wrote entered the conversation)
 * - result                      -> usage (the turn's tokens; cost as the growth of total_cost_usd since the last usage), agent_end
 * - anything else unknown       -> unrecognized
 */
import { tailText, truncateText, type RunEventInput } from '../../orchestrator/event-log.js';
import { capToolArgs, PREVIEW_CHARS, TextCoalescer, TOOL_OUTPUT_CHARS } from '../text-coalescer.js';
import {
  ClaudeMessageType,
  ClaudeSystemSubtype,
  type AssistantMessage,
  type ClaudeContentBlock,
  type ClaudeMessage,
  type ResultMessage,
  type UserMessage,
} from './protocol.js';

/** Observed `system` subtypes that add nothing to the events around them (status noise, a Bash's task bookkeeping); others are kept. */
const QUIET_SYSTEM_SUBTYPES = new Set(['status', 'thinking_tokens', 'task_started', 'task_notification']);

/** Tool calls whose name is remembered until their result comes. @default 1_000 */
export const MAX_OPEN_TOOL_CALLS = 1_000;

/** Claude Code's stream-json lines as run events (see the list above). */
export class ClaudeEventNormalizer {
  private readonly text: TextCoalescer;
  /** Tool names by call id, from tool_start until tool_end. */
  private readonly openTools = new Map<string, string>();
  /** `total_cost_usd` of the last result: Claude Code reports the session's running total, runboard each turn's share. */
  private costSoFar = 0;

  /** `emit` receives normalized events in order; it is called synchronously or from a flush timer. */
  constructor(emit: (events: RunEventInput[]) => void) {
    this.text = new TextCoalescer(emit);
  }

  handle(message: ClaudeMessage): void {
    switch (message.type) {
      case ClaudeMessageType.System:
        if (message.subtype === ClaudeSystemSubtype.Init) this.text.emitAll([{ type: 'agent_start', data: {} }]);
        else if (!QUIET_SYSTEM_SUBTYPES.has(message.subtype)) this.text.emitAll([unrecognized(`system/${message.subtype}`, message)]);
        return;
      case ClaudeMessageType.Assistant:
        return this.assistant(message);
      case ClaudeMessageType.User:
        return this.text.emitAll(this.user(message));
      case ClaudeMessageType.Result:
        return this.text.emitAll(this.result(message));
      case ClaudeMessageType.ControlResponse:
      case ClaudeMessageType.StreamEvent:
        return; // answers are the driver's business; raw SSE only comes with --include-partial-messages, which runboard does not pass
      case ClaudeMessageType.ControlRequest:
        return this.text.emitAll([unrecognized(`control_request/${message.request.subtype}`, message)]);
      case 'unknown':
        return this.text.emitAll([unrecognized(message.originalType ?? 'unknown', message.raw)]);
    }
  }

  /** Emits any coalesced text now (at a boundary, or before the run's status changes). */
  flush(): void {
    this.text.flush();
  }

  private assistant(message: AssistantMessage): void {
    if (message.is_api_error_message) {
      this.text.emitAll([{ type: 'model_error', data: { message: truncateText(blocksText(message.message.content) || 'the model request failed', PREVIEW_CHARS) } }]);
      return;
    }
    for (const block of message.message.content) {
      if (block.type === 'text' && block.text) this.text.append('assistant_text', block.text);
      else if (block.type === 'thinking' && block.thinking) this.text.append('thinking', block.thinking);
      else if (block.type === 'tool_use' && block.id) {
        const tool = block.name ?? 'unknown';
        if (this.openTools.size < MAX_OPEN_TOOL_CALLS) this.openTools.set(block.id, tool);
        this.text.emitAll([{ type: 'tool_start', data: { toolCallId: block.id, tool, args: capToolArgs(block.input) } }]);
      }
    }
  }

  private user(message: UserMessage): RunEventInput[] {
    const content = message.message.content;
    if (message.isReplay) return [{ type: 'message_delivered', data: { text: truncateText(typeof content === 'string' ? content : blocksText(content), PREVIEW_CHARS) } }];
    if (typeof content === 'string') return [unrecognized('user', message)];
    const events: RunEventInput[] = [];
    for (const block of content) {
      if (block.type === 'tool_result' && block.tool_use_id) {
        const tool = this.openTools.get(block.tool_use_id) ?? 'unknown';
        this.openTools.delete(block.tool_use_id);
        const output = typeof block.content === 'string' ? block.content : blocksText(block.content ?? []);
        events.push({ type: 'tool_end', data: { toolCallId: block.tool_use_id, tool, isError: block.is_error === true, output: tailText(output, TOOL_OUTPUT_CHARS) } });
      }
    }
    // Claude Code's own notes ("[Request interrupted by user]") are kept as they are.
    return events.length ? events : [unrecognized('user', message)];
  }

  private result(message: ResultMessage): RunEventInput[] {
    const events: RunEventInput[] = [];
    const u = message.usage;
    const total = typeof message.total_cost_usd === 'number' ? message.total_cost_usd : this.costSoFar;
    if (u && (u.input_tokens || u.output_tokens)) {
      // A turn cut before its answer reports no tokens but some cost: it is carried into the next usage event.
      const cost = Math.max(0, total - this.costSoFar);
      this.costSoFar = total;
      const input = u.input_tokens ?? 0;
      const output = u.output_tokens ?? 0;
      const cacheRead = u.cache_read_input_tokens ?? 0;
      const cacheWrite = u.cache_creation_input_tokens ?? 0;
      events.push({ type: 'usage', data: { input, output, cacheRead, cacheWrite, totalTokens: input + output + cacheRead + cacheWrite, cost } });
    }
    events.push({ type: 'agent_end', data: {} });
    return events;
  }
}

function blocksText(blocks: readonly ClaudeContentBlock[]): string {
  return blocks.map((block) => (typeof block.text === 'string' ? block.text : '')).join('');
}

function unrecognized(originalType: string, raw: unknown): RunEventInput {
  return { type: 'unrecognized', data: { originalType, preview: truncateText(JSON.stringify(raw), PREVIEW_CHARS) } };
}

/**
 * Turns an ACP agent's `session/update` notifications into runboard's run events. Text chunks are
 * coalesced by the shared TextCoalescer, tool output is capped, and tool progress is throttled.
 *
 * - agent_message_chunk / agent_thought_chunk → assistant_text / thinking
 * - tool_call → tool_start; tool_call_update → tool_progress while running, tool_end once completed or
 *   failed (a call first seen in an update, as gemini-cli's asked-for calls are, gets its tool_start then)
 * - plan → plan_updated (the whole plan, as ACP sends it)
 * - session state an agent reports about itself (commands, modes, config, session info, context size) is
 *   not run activity and is left out; anything else is kept as `unrecognized`.
 */
import type { ContentBlock, PlanEntry as AcpPlanEntry, SessionUpdate, ToolCallContent } from '@agentclientprotocol/sdk';
import { tailText, truncateText } from '../../orchestrator/event-log.js';
import type { PlanEntry, RunEventInput } from '../../orchestrator/run-events.js';
import { capToolArgs, PREVIEW_CHARS, PROGRESS_INTERVAL_MS, TextCoalescer, TOOL_OUTPUT_CHARS } from '../text-coalescer.js';
import type { TurnUsage } from './protocol.js';

/** Updates that describe the session, not what the agent does in it. */
const SESSION_STATE_UPDATES = new Set(['available_commands_update', 'current_mode_update', 'config_option_update', 'session_info_update', 'usage_update', 'user_message_chunk']);

/** One session's updates → run events, in order, with text coalesced until a boundary or a timer. */
export class AcpEventNormalizer {
  private readonly text: TextCoalescer;
  /** Tool calls started and not yet ended: their tool name, and when progress was last reported. */
  private readonly tools = new Map<string, { tool: string; lastProgress: number }>();

  /** `emit` receives events in order; it is called synchronously or from a flush timer. */
  constructor(
    emit: (events: RunEventInput[]) => void,
    private readonly now: () => number = Date.now,
  ) {
    this.text = new TextCoalescer(emit);
  }

  /** Translates one `session/update`. */
  handle(update: SessionUpdate): void {
    this.text.emitAll(this.translate(update)); // after the text that came before them
  }

  /** The turn's tokens, from its prompt response. */
  usage(usage: TurnUsage): void {
    this.text.emitAll([{ type: 'usage', data: { ...usage, cost: 0 } }]);
  }

  /** A failed turn's model error. */
  modelError(message: string): void {
    this.text.emitAll([{ type: 'model_error', data: { message: truncateText(message, PREVIEW_CHARS) } }]);
  }

  /** Emits any coalesced text now (at a turn's end, or before the run's status changes). */
  flush(): void {
    this.text.flush();
  }

  private translate(update: SessionUpdate): RunEventInput[] {
    switch (update.sessionUpdate) {
      case 'agent_message_chunk':
        this.text.append('assistant_text', blockText(update.content));
        return [];
      case 'agent_thought_chunk':
        this.text.append('thinking', blockText(update.content));
        return [];
      case 'tool_call': {
        const tool = update.name || update.title || update.kind || 'tool';
        this.tools.set(update.toolCallId, { tool, lastProgress: this.now() });
        const start: RunEventInput = { type: 'tool_start', data: { toolCallId: update.toolCallId, tool, args: capToolArgs(update.rawInput ?? { title: update.title, kind: update.kind ?? null }) } };
        return update.status === 'completed' || update.status === 'failed' ? [start, this.toolEnd(update.toolCallId, update.status, update.content, update.rawOutput)] : [start];
      }
      case 'tool_call_update': {
        const events: RunEventInput[] = [];
        let known = this.tools.get(update.toolCallId);
        if (!known) {
          known = { tool: update.title || update.kind || 'tool', lastProgress: this.now() };
          this.tools.set(update.toolCallId, known);
          events.push({ type: 'tool_start', data: { toolCallId: update.toolCallId, tool: known.tool, args: capToolArgs(update.rawInput ?? { title: update.title ?? null, kind: update.kind ?? null }) } });
        }
        if (update.status === 'completed' || update.status === 'failed') {
          events.push(this.toolEnd(update.toolCallId, update.status, update.content, update.rawOutput));
        } else {
          const output = contentText(update.content);
          if (output && this.now() - known.lastProgress >= PROGRESS_INTERVAL_MS) {
            known.lastProgress = this.now();
            events.push({ type: 'tool_progress', data: { toolCallId: update.toolCallId, tool: known.tool, output: tailText(output, TOOL_OUTPUT_CHARS) } });
          }
        }
        return events;
      }
      case 'plan':
        return [{ type: 'plan_updated', data: { entries: update.entries.map(planEntry) } }];
      default:
        if (SESSION_STATE_UPDATES.has(update.sessionUpdate)) return [];
        return [{ type: 'unrecognized', data: { originalType: update.sessionUpdate, preview: truncateText(JSON.stringify(update), PREVIEW_CHARS) } }];
    }
  }

  private toolEnd(toolCallId: string, status: 'completed' | 'failed', content: ToolCallContent[] | null | undefined, rawOutput: unknown): RunEventInput {
    const tool = this.tools.get(toolCallId)?.tool ?? 'tool';
    this.tools.delete(toolCallId);
    const output = contentText(content) || rawOutputText(rawOutput);
    return { type: 'tool_end', data: { toolCallId, tool, isError: status === 'failed', output: tailText(output, TOOL_OUTPUT_CHARS) } };
  }
}

function blockText(block: ContentBlock): string {
  return block.type === 'text' ? block.text : '';
}

/** Text of a tool's content: text blocks as they are, a diff as the file it wrote. */
function contentText(content: ToolCallContent[] | null | undefined): string {
  return (content ?? [])
    .map((item) => (item.type === 'content' ? blockText(item.content) : item.type === 'diff' ? `${!item.oldText ? 'created' : 'edited'} ${item.path}:\n${item.newText}` : ''))
    .filter(Boolean)
    .join('\n');
}

/** codex-acp reports output only in `rawOutput` (a string, or `{ formatted_output | aggregated_output | stdout }`). */
function rawOutputText(raw: unknown): string {
  if (raw == null) return '';
  if (typeof raw === 'string') return raw;
  if (typeof raw === 'object') {
    const fields = raw as Record<string, unknown>;
    for (const key of ['formatted_output', 'aggregated_output', 'output', 'stdout']) if (typeof fields[key] === 'string') return fields[key] as string;
  }
  return JSON.stringify(raw);
}

function planEntry(entry: AcpPlanEntry): PlanEntry {
  return { content: truncateText(entry.content, PREVIEW_CHARS), status: entry.status, priority: entry.priority ?? null };
}


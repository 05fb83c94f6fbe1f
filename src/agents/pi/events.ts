/**
 * Turns pi's raw RPC events into runboard's slim run events. pi repeats the whole message in every
 * `message_update`; only deltas are kept, and bursts of tiny deltas are coalesced, so storage grows
 * linearly with what the agent produces and an answer is tens of events, not thousands.
 *
 * Event types and their `data` (documented for clients in the schema too):
 * - assistant_text { text }             coalesced answer text; concatenated, the texts are the answer
 * - thinking { text }                    coalesced reasoning text
 * - tool_start { toolCallId, tool, args }  args as given, or a JSON preview string when over TOOL_ARGS_CHARS
 * - tool_progress { toolCallId, tool, output }   output so far (tail), at most one per PROGRESS_INTERVAL_MS per call
 * - tool_end { toolCallId, tool, isError, output }
 * - usage { input, output, cacheRead, cacheWrite, totalTokens, cost }   per model answer
 * - model_error { message }              the model request failed
 * - message_delivered { text }           a queued steer or follow-up reached the agent's conversation
 * - queue { steering, followUp }         how many messages wait in the agent's queue
 * - retry { attempt, maxAttempts, delayMs, error } / retry_end { success, attempt, error }
 * - agent_start {} / agent_end {}        the agent began / stopped working
 * - compaction { phase, reason }
 * - unrecognized { originalType, preview } anything else the agent said, kept rather than dropped
 */
import {
  AgentMessageType,
  textOf,
  type AgentMessage,
  type ContentBlock,
  type MessageEvent,
  type ToolExecutionEvent,
} from './protocol.js';
import { tailText, truncateText, type RunEventInput } from '../../orchestrator/event-log.js';
import { capToolArgs, PREVIEW_CHARS, PROGRESS_INTERVAL_MS, TextCoalescer, TOOL_OUTPUT_CHARS } from '../text-coalescer.js';

/** pi's RPC events as run events (see the list above); text is coalesced by a TextCoalescer. */
export class PiEventNormalizer {
  private readonly text: TextCoalescer;
  private readonly lastProgress = new Map<string, number>();

  /** `emit` receives normalized events in order; it is called synchronously or from a flush timer. */
  constructor(
    emit: (events: RunEventInput[]) => void,
    private readonly now: () => number = Date.now,
  ) {
    this.text = new TextCoalescer(emit);
  }

  handle(message: AgentMessage): void {
    this.text.emitAll(this.translate(message));
  }

  /** Emits any coalesced text now (at a boundary, or before the run's status changes). */
  flush(): void {
    this.text.flush();
  }

  private translate(message: AgentMessage): RunEventInput[] {
    switch (message.type) {
      case AgentMessageType.Response:
      case AgentMessageType.TurnStart:
      case AgentMessageType.TurnEnd:
        return []; // responses are the runner's business; turns add nothing to the events around them
      case AgentMessageType.AgentStart:
        return [{ type: 'agent_start', data: {} }];
      case AgentMessageType.AgentEnd:
        return [{ type: 'agent_end', data: {} }];
      case AgentMessageType.MessageUpdate: {
        const update = message.assistantMessageEvent;
        if (update?.type === 'text_delta' && update.delta) this.text.append('assistant_text', update.delta);
        else if (update?.type === 'thinking_delta' && update.delta) this.text.append('thinking', update.delta);
        else if (update?.type === 'text_end' || update?.type === 'thinking_end') this.flush();
        return []; // tool call deltas are summed up by tool_start
      }
      case AgentMessageType.MessageStart:
        return message.message.role === 'user' ? [{ type: 'message_delivered', data: { text: truncateText(textOf(message.message.content), PREVIEW_CHARS) } }] : [];
      case AgentMessageType.MessageEnd:
        return this.messageEnd(message);
      case AgentMessageType.ToolExecutionStart:
        this.lastProgress.set(message.toolCallId, this.now());
        return [{ type: 'tool_start', data: { toolCallId: message.toolCallId, tool: message.toolName, args: capToolArgs(message.args) } }];
      case AgentMessageType.ToolExecutionUpdate:
        return this.toolProgress(message);
      case AgentMessageType.ToolExecutionEnd:
        this.lastProgress.delete(message.toolCallId);
        return [
          {
            type: 'tool_end',
            data: { toolCallId: message.toolCallId, tool: message.toolName, isError: message.isError === true, output: tailText(blocksText(message.result?.content), TOOL_OUTPUT_CHARS) },
          },
        ];
      case AgentMessageType.QueueUpdate:
        return [{ type: 'queue', data: { steering: message.steering.length, followUp: message.followUp.length } }];
      case AgentMessageType.AutoRetryStart:
        return [{ type: 'retry', data: { attempt: message.attempt ?? null, maxAttempts: message.maxAttempts ?? null, delayMs: message.delayMs ?? null, error: truncateText(message.errorMessage ?? '', PREVIEW_CHARS) } }];
      case AgentMessageType.AutoRetryEnd:
        return [{ type: 'retry_end', data: { success: message.success, attempt: message.attempt ?? null, error: message.finalError ? truncateText(message.finalError, PREVIEW_CHARS) : null } }];
      case AgentMessageType.CompactionStart:
      case AgentMessageType.CompactionEnd:
        return [{ type: 'compaction', data: { phase: message.type === AgentMessageType.CompactionStart ? 'start' : 'end', reason: typeof message.reason === 'string' ? message.reason : null } }];
      case AgentMessageType.ExtensionError:
      case 'unknown': {
        const originalType = (message.type === 'unknown' ? message.originalType : message.type) ?? 'unknown';
        const raw = message.type === 'unknown' ? message.raw : message;
        return [{ type: 'unrecognized', data: { originalType, preview: truncateText(JSON.stringify(raw), PREVIEW_CHARS) } }];
      }
    }
  }

  private messageEnd({ message }: MessageEvent): RunEventInput[] {
    if (message.role !== 'assistant') return [];
    this.flush();
    const events: RunEventInput[] = [];
    if (message.usage && (message.usage.input || message.usage.output || message.usage.totalTokens)) {
      const u = message.usage;
      events.push({ type: 'usage', data: { input: u.input ?? 0, output: u.output ?? 0, cacheRead: u.cacheRead ?? 0, cacheWrite: u.cacheWrite ?? 0, totalTokens: u.totalTokens ?? 0, cost: u.cost?.total ?? 0 } });
    }
    if (message.stopReason === 'error') events.push({ type: 'model_error', data: { message: truncateText(message.errorMessage ?? 'the model request failed', PREVIEW_CHARS) } });
    return events;
  }

  private toolProgress(message: ToolExecutionEvent): RunEventInput[] {
    const last = this.lastProgress.get(message.toolCallId) ?? 0;
    if (this.now() - last < PROGRESS_INTERVAL_MS) return [];
    const output = blocksText(message.partialResult?.content);
    if (!output) return [];
    this.lastProgress.set(message.toolCallId, this.now());
    return [{ type: 'tool_progress', data: { toolCallId: message.toolCallId, tool: message.toolName, output: tailText(output, TOOL_OUTPUT_CHARS) } }];
  }
}

function blocksText(content: readonly ContentBlock[] | undefined): string {
  return textOf(content ?? []);
}

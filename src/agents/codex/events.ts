/**
 * Turns Codex app-server notifications into runboard's run events. Text deltas are coalesced (the shared
 * TextCoalescer), tool output is capped, and tool progress is throttled.
 *
 * - turn/started, turn/completed → agent_start, agent_end (a failed turn's error → model_error, once)
 * - item/agentMessage/delta, item/reasoning/(summary)TextDelta → assistant_text, thinking
 * - item/started userMessage → message_delivered (the prompt, a steer as it reaches the model, a follow-up)
 * - item/started, item/completed of a tool item (command, file change, MCP or dynamic tool, web search…)
 *   → tool_start, tool_end; item/commandExecution/outputDelta → tool_progress
 * - thread/tokenUsage/updated during a turn → usage (its `last` response; Codex reports no cost)
 * - error → model_error, or retry when Codex will retry; warning, configWarning → warning
 * - turn/plan/updated → plan_updated; thread/compacted, a contextCompaction item → compaction
 * - session and UI state (SESSION_STATE_NOTIFICATIONS) is left out; anything else is kept as `unrecognized`.
 */
import { tailText, truncateText } from '../../orchestrator/event-log.js';
import type { PlanEntry, RunEventInput } from '../../orchestrator/run-events.js';
import { isObject } from '../json-line.js';
import { capToolArgs, PREVIEW_CHARS, PROGRESS_INTERVAL_MS, TextCoalescer, TOOL_OUTPUT_CHARS } from '../text-coalescer.js';
import {
  CodexNotificationMethod,
  SESSION_STATE_NOTIFICATIONS,
  turnErrorMessage,
  type CodexMessage,
  type CodexPlanStep,
  type CodexThreadItem,
  type CodexTokenUsage,
  type DeltaNotification,
  type ErrorNotification,
  type ItemNotification,
  type OtherNotification,
  type PlanNotification,
  type TokenUsageNotification,
  type TurnNotification,
} from './protocol.js';

/** Items that are conversation, not tool calls. */
const NON_TOOL_ITEMS = new Set(['userMessage', 'hookPrompt', 'agentMessage', 'reasoning', 'plan', 'contextCompaction', 'enteredReviewMode', 'exitedReviewMode', 'subAgentActivity']);

export class CodexEventNormalizer {
  private readonly text: TextCoalescer;
  /** The turn under way, whose usage counts (a resumed thread may repeat its old totals outside any turn). */
  private turnId: string | null = null;
  /** A model_error was emitted for the turn under way. */
  private turnErrorReported = false;
  /** Tool items started and not ended: their name, output so far (tail) and when progress was last reported. */
  private readonly tools = new Map<string, { tool: string; output: string; lastProgress: number }>();
  /** Answer items that streamed deltas: their completed text is already out. */
  private readonly streamed = new Set<string>();

  /** `emit` receives events in order; it is called synchronously or from a flush timer. */
  constructor(
    emit: (events: RunEventInput[]) => void,
    private readonly now: () => number = Date.now,
  ) {
    this.text = new TextCoalescer(emit);
  }

  handle(message: CodexMessage): void {
    this.text.emitAll(this.translate(message));
  }

  /** Emits any coalesced text now (at a boundary, or before the run's status changes). */
  flush(): void {
    this.text.flush();
  }

  private translate(message: CodexMessage): RunEventInput[] {
    if (message.kind === 'response' || message.kind === 'request') return []; // the driver's business
    if (message.kind === 'unknown') return [unrecognized(typeof message.raw.method === 'string' ? message.raw.method : 'unknown', message.raw)];
    switch (message.method) {
      case CodexNotificationMethod.TurnStarted:
        this.turnId = (message as TurnNotification).params.turn.id;
        this.turnErrorReported = false;
        return [{ type: 'agent_start', data: {} }];
      case CodexNotificationMethod.TurnCompleted: {
        this.turnId = null;
        this.flush();
        // Items cut by a steer or an interrupt never complete: forget them with their turn.
        this.tools.clear();
        this.streamed.clear();
        const { error } = (message as TurnNotification).params.turn;
        const events: RunEventInput[] = error && !this.turnErrorReported ? [modelError(turnErrorMessage(error))] : [];
        return [...events, { type: 'agent_end', data: {} }];
      }
      case CodexNotificationMethod.AgentMessageDelta: {
        const { params } = message as DeltaNotification;
        this.streamed.add(params.itemId);
        if (params.delta) this.text.append('assistant_text', params.delta);
        return [];
      }
      case CodexNotificationMethod.ReasoningSummaryTextDelta:
      case CodexNotificationMethod.ReasoningTextDelta: {
        const { delta } = (message as OtherNotification).params;
        if (typeof delta === 'string' && delta) this.text.append('thinking', delta);
        return [];
      }
      case CodexNotificationMethod.CommandOutputDelta: {
        const { params } = message as DeltaNotification;
        return this.toolProgress(params.itemId, params.delta);
      }
      case CodexNotificationMethod.ItemStarted:
        return this.itemStarted((message as ItemNotification).params.item);
      case CodexNotificationMethod.ItemCompleted:
        return this.itemCompleted((message as ItemNotification).params.item);
      case CodexNotificationMethod.TokenUsageUpdated: {
        const { params } = message as TokenUsageNotification;
        return params.turnId === this.turnId ? [usage(params.tokenUsage.last)] : [];
      }
      case CodexNotificationMethod.Error: {
        const { error, willRetry } = (message as ErrorNotification).params;
        if (willRetry) return [{ type: 'retry', data: { attempt: null, maxAttempts: null, delayMs: null, error: truncateText(turnErrorMessage(error), PREVIEW_CHARS) } }];
        this.turnErrorReported = true;
        return [modelError(turnErrorMessage(error))];
      }
      case CodexNotificationMethod.Warning:
      case CodexNotificationMethod.ConfigWarning: {
        const { params } = message as OtherNotification;
        const text = params.message ?? params.summary;
        return [{ type: 'warning', data: { message: truncateText(typeof text === 'string' ? text : JSON.stringify(params), PREVIEW_CHARS) } }];
      }
      case CodexNotificationMethod.PlanUpdated:
        return [{ type: 'plan_updated', data: { entries: (message as PlanNotification).params.plan.map(planEntry) } }];
      case CodexNotificationMethod.ThreadCompacted:
        return [{ type: 'compaction', data: { phase: 'end', reason: null } }];
      default:
        return SESSION_STATE_NOTIFICATIONS.has(message.method) ? [] : [unrecognized(message.method, message.params)];
    }
  }

  private itemStarted(item: CodexThreadItem): RunEventInput[] {
    if (item.type === 'userMessage') return [{ type: 'message_delivered', data: { text: truncateText(userText(item), PREVIEW_CHARS) } }];
    if (item.type === 'contextCompaction') return [{ type: 'compaction', data: { phase: 'start', reason: null } }];
    if (NON_TOOL_ITEMS.has(item.type)) return [];
    const tool = toolName(item);
    this.tools.set(item.id, { tool, output: '', lastProgress: this.now() });
    return [{ type: 'tool_start', data: { toolCallId: item.id, tool, args: capToolArgs(toolArgs(item)) } }];
  }

  private itemCompleted(item: CodexThreadItem): RunEventInput[] {
    if (item.type === 'agentMessage') {
      // An answer that came whole, without deltas, is emitted now; a streamed one is already out.
      if (!this.streamed.delete(item.id) && item.text) this.text.append('assistant_text', item.text);
      this.flush();
      return [];
    }
    if (item.type === 'reasoning') {
      this.flush();
      return [];
    }
    if (NON_TOOL_ITEMS.has(item.type)) return [];
    const started = this.tools.get(item.id);
    this.tools.delete(item.id);
    const events: RunEventInput[] = started ? [] : [{ type: 'tool_start', data: { toolCallId: item.id, tool: toolName(item), args: capToolArgs(toolArgs(item)) } }];
    events.push({ type: 'tool_end', data: { toolCallId: item.id, tool: started?.tool ?? toolName(item), isError: toolFailed(item), output: tailText(toolOutput(item) || started?.output || '', TOOL_OUTPUT_CHARS) } });
    return events;
  }

  private toolProgress(itemId: string, delta: string): RunEventInput[] {
    const tool = this.tools.get(itemId);
    if (!tool) return [];
    tool.output = tailText(tool.output + delta, TOOL_OUTPUT_CHARS);
    if (this.now() - tool.lastProgress < PROGRESS_INTERVAL_MS || !tool.output) return [];
    tool.lastProgress = this.now();
    return [{ type: 'tool_progress', data: { toolCallId: itemId, tool: tool.tool, output: tool.output } }];
  }
}

function modelError(message: string): RunEventInput {
  return { type: 'model_error', data: { message: truncateText(message, PREVIEW_CHARS) } };
}

function unrecognized(originalType: string, raw: unknown): RunEventInput {
  return { type: 'unrecognized', data: { originalType, preview: truncateText(JSON.stringify(raw) ?? '', PREVIEW_CHARS) } };
}

/** One response's tokens; OpenAI counts cached input inside input, runboard beside it. */
function usage(last: CodexTokenUsage): RunEventInput {
  const cacheRead = last.cachedInputTokens ?? 0;
  const cacheWrite = last.cacheWriteInputTokens ?? 0;
  return { type: 'usage', data: { input: Math.max(0, (last.inputTokens ?? 0) - cacheRead), output: last.outputTokens ?? 0, cacheRead, cacheWrite, totalTokens: last.totalTokens ?? 0, cost: 0 } };
}

function planEntry(step: CodexPlanStep): PlanEntry {
  const status = step.status === 'completed' ? 'completed' : step.status === 'inProgress' ? 'in_progress' : 'pending';
  return { content: step.step, status, priority: null };
}

function userText(item: CodexThreadItem): string {
  const content = Array.isArray(item.content) ? item.content : [];
  return content.map((part) => (isObject(part) && typeof part.text === 'string' ? part.text : '')).join('');
}

/** The tool's name as runboard shows it: `command` for a shell command, the MCP or dynamic tool's own name, else the item type. */
function toolName(item: CodexThreadItem): string {
  switch (item.type) {
    case 'commandExecution':
      return 'command';
    case 'fileChange':
      return 'file_change';
    case 'mcpToolCall':
      return `${String(item.server)}/${String(item.tool)}`;
    case 'dynamicToolCall':
      return typeof item.tool === 'string' ? item.tool : item.type;
    case 'webSearch':
      return 'web_search';
    default:
      return item.type;
  }
}

function toolArgs(item: CodexThreadItem): unknown {
  switch (item.type) {
    case 'commandExecution':
      return { command: item.command, cwd: item.cwd };
    case 'fileChange':
      return { changes: Array.isArray(item.changes) ? item.changes.map((change) => (isObject(change) ? { path: change.path, kind: change.kind } : change)) : [] };
    case 'mcpToolCall':
    case 'dynamicToolCall':
      return item.arguments ?? {};
    case 'webSearch':
      return { query: item.query };
    default:
      return {};
  }
}

function toolOutput(item: CodexThreadItem): string {
  switch (item.type) {
    case 'commandExecution':
      return item.aggregatedOutput ?? '';
    case 'mcpToolCall':
      return JSON.stringify(item.error ?? item.result ?? null);
    case 'dynamicToolCall':
      return Array.isArray(item.contentItems) ? item.contentItems.map((part) => (isObject(part) && typeof part.text === 'string' ? part.text : '')).join('') : '';
    default:
      return typeof item.status === 'string' ? item.status : '';
  }
}

function toolFailed(item: CodexThreadItem): boolean {
  if (item.type === 'commandExecution') return item.status !== 'completed' || (item.exitCode ?? 0) !== 0;
  if (item.type === 'dynamicToolCall' && item.success === false) return true;
  return typeof item.status === 'string' && item.status !== 'completed';
}

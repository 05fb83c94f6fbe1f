/**
 * What runboard reads of the Agent Client Protocol beyond the SDK's typed methods: the shapes agents
 * fill differently (usage in a prompt response, a model error's message), and the permission answer
 * a non-interactive run gives. The wire itself (JSON-RPC over stdio, `session/*` methods, the
 * `SessionUpdate` union) is @agentclientprotocol/sdk's; see /work/shared/AGENTS-ACP.md for what each
 * agent was observed to send.
 */
import type { PromptResponse, RequestPermissionRequest, RequestPermissionResponse } from '@agentclientprotocol/sdk';
import { isObject } from '../json-line.js';

/** Tokens of one turn, as runboard's `usage` event counts them. */
export interface TurnUsage {
  input: number;
  output: number;
  cacheRead: number;
  cacheWrite: number;
  totalTokens: number;
}

const count = (value: unknown): number => (typeof value === 'number' && Number.isFinite(value) && value > 0 ? value : 0);

/**
 * A turn's tokens from its `session/prompt` response: the unstable schema's `usage` (claude-agent-acp)
 * or gemini-cli's `_meta.quota.token_count`; null when the agent reports none.
 */
export function promptUsage(response: PromptResponse): TurnUsage | null {
  const raw = response as PromptResponse & { usage?: unknown };
  if (isObject(raw.usage)) {
    const u = raw.usage;
    const usage = { input: count(u.inputTokens), output: count(u.outputTokens), cacheRead: count(u.cachedReadTokens), cacheWrite: count(u.cachedWriteTokens), totalTokens: count(u.totalTokens) };
    if (!usage.totalTokens) usage.totalTokens = usage.input + usage.output + usage.cacheRead + usage.cacheWrite;
    return usage.totalTokens ? usage : null;
  }
  const quota = isObject(raw._meta) && isObject(raw._meta.quota) && isObject(raw._meta.quota.token_count) ? raw._meta.quota.token_count : null;
  if (quota) {
    const input = count(quota.input_tokens);
    const output = count(quota.output_tokens);
    return input || output ? { input, output, cacheRead: 0, cacheWrite: 0, totalTokens: input + output } : null;
  }
  return null;
}

/**
 * The model's (or agent's) own message from a failed request. Agents wrap it differently: gemini-cli sends
 * the provider's JSON error body as the message, or "Internal error" with the reason in `data.details`; codex-acp
 * puts it in `data.message`; claude-agent-acp prefixes "Internal error: ".
 */
export function promptErrorMessage(error: unknown): string {
  if (!isObject(error)) return String(error);
  const data = error.data;
  if (typeof data === 'string' && data) return data;
  if (isObject(data)) {
    for (const key of ['message', 'details']) if (typeof data[key] === 'string' && data[key]) return data[key] as string;
  }
  const message = typeof error.message === 'string' ? error.message : JSON.stringify(error);
  try {
    const body: unknown = JSON.parse(message);
    if (isObject(body) && isObject(body.error) && typeof body.error.message === 'string') return body.error.message;
  } catch {
    // not a JSON body: the message itself
  }
  return message;
}

/**
 * The answer to `session/request_permission`: runs are non-interactive, so the run allows it once (an
 * agent asks only when its no-ask mode could not be set, e.g. gemini-cli in an untrusted folder).
 */
export function allowPermission(request: RequestPermissionRequest): RequestPermissionResponse {
  const option = request.options.find((o) => o.kind === 'allow_once') ?? request.options.find((o) => o.kind === 'allow_always');
  return option ? { outcome: { outcome: 'selected', optionId: option.optionId } } : { outcome: { outcome: 'cancelled' } };
}

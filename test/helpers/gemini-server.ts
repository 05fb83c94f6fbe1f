/**
 * The Gemini API's `POST /v1beta/models/<model>:streamGenerateContent?alt=sse`, as gemini-cli calls it: each
 * event is a `GenerateContentResponse` whose candidate holds `text` parts (`thought: true` for thinking) or
 * `functionCall` parts; the last one carries `finishReason` and `usageMetadata`. Tool results come back as
 * `functionResponse` parts in user contents.
 */
import { answerOk, startScriptedServer, type ModelScript, type ModelServer, type WireApi } from './model-server.js';

/** A Gemini content: `role` ("user" or "model") and its parts. */
export interface GeminiContent {
  role?: string;
  parts?: { text?: string; thought?: boolean; functionCall?: unknown; functionResponse?: { name?: string; response?: unknown }; [key: string]: unknown }[];
}

const textParts = (content: GeminiContent) =>
  (content.parts ?? [])
    .filter((part) => typeof part.text === 'string' && !part.thought)
    .map((part) => part.text)
    .join('');

function responseText(response: unknown): string {
  if (response && typeof response === 'object' && 'output' in response && typeof response.output === 'string') return response.output;
  return JSON.stringify(response ?? null);
}

/** The Gemini wire; `url` is the bare origin, as `GOOGLE_GEMINI_BASE_URL` wants it. */
export const geminiWire: WireApi<GeminiContent> = {
  urlPrefix: '',
  matches: (path) => /^\/v1beta\/models\/[^/]+:streamGenerateContent$/.test(path),
  read(body) {
    const contents: GeminiContent[] = Array.isArray(body?.contents) ? body.contents : [];
    const lastUser = [...contents].reverse().find((content) => content.role === 'user' && textParts(content) !== '');
    return {
      messages: contents,
      lastUserText: lastUser ? textParts(lastUser) : null,
      toolResults: contents.flatMap((content) => content.parts ?? []).filter((part) => part.functionResponse).map((part) => responseText(part.functionResponse!.response)),
    };
  },
  errorBody: (status, message) => ({ error: { code: status, message, status: status === 400 ? 'INVALID_ARGUMENT' : status === 404 ? 'NOT_FOUND' : 'INTERNAL' } }),
  encoder(out, { index, path, usage }) {
    const modelVersion = /models\/([^/:]+)/.exec(path)?.[1] ?? 'gemini-mock';
    // gemini-cli wants the finish reason on a chunk that has parts, so each chunk is held back until the next.
    let held: Record<string, unknown>[] | null = null;
    const chunk = (parts: Record<string, unknown>[], last?: { finishReason: string }) =>
      out.send({
        candidates: [{ content: { role: 'model', parts }, index: 0, ...last }],
        ...(last ? { usageMetadata: { promptTokenCount: usage.input, candidatesTokenCount: usage.output, totalTokenCount: usage.input + usage.output } } : {}),
        modelVersion,
        responseId: `mock-${index}`,
      });
    const part = (next: Record<string, unknown>) => {
      if (held) chunk(held);
      held = [next];
    };
    return {
      start() {},
      thinking: (text) => part({ text, thought: true }),
      text: (text) => part({ text }),
      toolCall: (call) => part({ functionCall: { name: call.name, args: call.arguments } }),
      finish() {
        chunk(held ?? [{ text: '' }], { finishReason: 'STOP' });
        held = null;
      },
      flush() {
        if (held) chunk(held);
        held = null;
      },
    };
  },
};

/** A scripted Gemini API server for gemini-cli. */
export function startGeminiServer(script: ModelScript<GeminiContent> = answerOk): Promise<ModelServer<GeminiContent>> {
  return startScriptedServer(geminiWire, script);
}

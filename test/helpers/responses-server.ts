/**
 * The OpenAI Responses API (`POST /v1/responses`, streamed), as Codex calls it: `response.created`, then per
 * output item (`reasoning`, `message`, `function_call`) `response.output_item.added`, its deltas and
 * `response.output_item.done`, then `response.completed` with usage. Tool results come back as
 * `function_call_output` items in `input`.
 */
import { answerOk, startScriptedServer, textOf, type ModelScript, type ModelServer, type WireApi } from './model-server.js';

/** A Responses API input item: a `message` (`role`, `content` parts), a `function_call`, a `function_call_output`, …. */
export interface ResponsesItem {
  type?: string;
  role?: string;
  content?: unknown;
  call_id?: string;
  name?: string;
  arguments?: string;
  output?: unknown;
  [key: string]: unknown;
}

/** The OpenAI Responses wire; `url` ends in `/v1`, as a Codex `model_providers` `base_url`. */
export const openaiResponsesWire: WireApi<ResponsesItem> = {
  urlPrefix: '/v1',
  matches: (path) => path === '/v1/responses',
  read(body) {
    const items: ResponsesItem[] = Array.isArray(body?.input) ? body.input : [];
    const users = items.filter((item) => (item.type ?? 'message') === 'message' && item.role === 'user' && textOf(item.content) !== '');
    return {
      messages: items,
      lastUserText: users.length ? textOf(users.at(-1)!.content) : null,
      toolResults: items.filter((item) => item.type === 'function_call_output').map((item) => (typeof item.output === 'string' ? item.output : textOf(item.output))),
    };
  },
  errorBody: (status, message) => ({ error: { message, type: status < 500 ? 'invalid_request_error' : 'server_error', param: null, code: null } }),
  encoder(out, { index, body, usage }) {
    let sequence = 0;
    const send = (data: { type: string; [key: string]: unknown }) => out.send({ ...data, sequence_number: sequence++ }, data.type);
    const response = {
      id: `resp_mock_${index}`,
      object: 'response',
      created_at: Math.floor(Date.now() / 1000),
      model: typeof body.model === 'string' ? body.model : 'mock-1',
    };
    const output: Record<string, unknown>[] = [];
    let open: { kind: 'reasoning' | 'message'; id: string; text: string } | null = null;
    const close = () => {
      if (!open) return;
      const { kind, id, text } = open;
      const outputIndex = output.length;
      open = null;
      if (kind === 'reasoning') {
        const part = { type: 'summary_text', text };
        send({ type: 'response.reasoning_summary_text.done', item_id: id, output_index: outputIndex, summary_index: 0, text });
        send({ type: 'response.reasoning_summary_part.done', item_id: id, output_index: outputIndex, summary_index: 0, part });
        done({ id, type: 'reasoning', summary: [part] });
      } else {
        const part = { type: 'output_text', text, annotations: [] };
        send({ type: 'response.output_text.done', item_id: id, output_index: outputIndex, content_index: 0, text });
        send({ type: 'response.content_part.done', item_id: id, output_index: outputIndex, content_index: 0, part });
        done({ id, type: 'message', status: 'completed', role: 'assistant', content: [part] });
      }
    };
    const done = (item: Record<string, unknown>) => {
      send({ type: 'response.output_item.done', output_index: output.length, item });
      output.push(item);
    };
    const delta = (kind: 'reasoning' | 'message', text: string) => {
      if (open?.kind !== kind) {
        close();
        open = { kind, id: `${kind === 'message' ? 'msg' : 'rs'}_mock_${index}_${output.length}`, text: '' };
        const outputIndex = output.length;
        if (kind === 'message') {
          send({ type: 'response.output_item.added', output_index: outputIndex, item: { id: open.id, type: 'message', status: 'in_progress', role: 'assistant', content: [] } });
          send({ type: 'response.content_part.added', item_id: open.id, output_index: outputIndex, content_index: 0, part: { type: 'output_text', text: '', annotations: [] } });
        } else {
          send({ type: 'response.output_item.added', output_index: outputIndex, item: { id: open.id, type: 'reasoning', summary: [] } });
          send({ type: 'response.reasoning_summary_part.added', item_id: open.id, output_index: outputIndex, summary_index: 0, part: { type: 'summary_text', text: '' } });
        }
      }
      open.text += text;
      send(
        kind === 'message'
          ? { type: 'response.output_text.delta', item_id: open.id, output_index: output.length, content_index: 0, delta: text }
          : { type: 'response.reasoning_summary_text.delta', item_id: open.id, output_index: output.length, summary_index: 0, delta: text },
      );
    };
    return {
      start() {
        send({ type: 'response.created', response: { ...response, status: 'in_progress', output: [] } });
        send({ type: 'response.in_progress', response: { ...response, status: 'in_progress', output: [] } });
      },
      thinking: (text) => delta('reasoning', text),
      text: (text) => delta('message', text),
      toolCall(call, n) {
        close();
        const item = { id: `fc_mock_${index}_${n}`, type: 'function_call', status: 'in_progress', call_id: `call_${index}_${n}`, name: call.name, arguments: '' };
        const args = JSON.stringify(call.arguments);
        send({ type: 'response.output_item.added', output_index: output.length, item });
        send({ type: 'response.function_call_arguments.delta', item_id: item.id, output_index: output.length, delta: args });
        send({ type: 'response.function_call_arguments.done', item_id: item.id, output_index: output.length, arguments: args });
        done({ ...item, status: 'completed', arguments: args });
      },
      finish() {
        close();
        send({
          type: 'response.completed',
          response: {
            ...response,
            status: 'completed',
            output,
            usage: {
              input_tokens: usage.input,
              input_tokens_details: { cached_tokens: 0 },
              output_tokens: usage.output,
              output_tokens_details: { reasoning_tokens: 0 },
              total_tokens: usage.input + usage.output,
            },
          },
        });
      },
    };
  },
};

/** A scripted OpenAI Responses server for Codex. */
export function startResponsesServer(script: ModelScript<ResponsesItem> = answerOk): Promise<ModelServer<ResponsesItem>> {
  return startScriptedServer(openaiResponsesWire, script);
}

/**
 * The Anthropic Messages API (`POST /v1/messages`, streamed), as Claude Code calls it: `message_start`, one
 * `content_block_start`/`_delta`/`_stop` group per thinking, text or `tool_use` block, `message_delta` with the
 * stop reason and usage, `message_stop`. Tool results come back as `tool_result` blocks in user messages.
 */
import { answerOk, startScriptedServer, textOf, type ModelScript, type ModelServer, type WireApi } from './model-server.js';

/** A Messages API message: `content` is a string or a list of typed blocks. */
export interface AnthropicMessage {
  role: 'user' | 'assistant';
  content: string | { type: string; text?: string; content?: unknown; tool_use_id?: string; [key: string]: unknown }[];
}

/** Claude Code prepends `<system-reminder>` text blocks to user messages; they are not what the user said. */
const isReminder = (text: string) => text.trimStart().startsWith('<system-reminder>');

function userText(message: AnthropicMessage): string {
  if (typeof message.content === 'string') return message.content;
  return message.content
    .filter((block) => block.type === 'text' && typeof block.text === 'string' && !isReminder(block.text))
    .map((block) => block.text)
    .join('');
}

/** The Anthropic Messages wire; `url` is the bare origin, as `ANTHROPIC_BASE_URL` wants it. */
export const anthropicMessagesWire: WireApi<AnthropicMessage> = {
  urlPrefix: '',
  matches: (path) => path === '/v1/messages',
  read(body) {
    const messages: AnthropicMessage[] = Array.isArray(body?.messages) ? body.messages : [];
    const blocks = messages.flatMap((m) => (m.role === 'user' && Array.isArray(m.content) ? m.content : []));
    const lastUser = [...messages].reverse().find((m) => m.role === 'user' && userText(m) !== '');
    return {
      messages,
      lastUserText: lastUser ? userText(lastUser) : null,
      toolResults: blocks.filter((block) => block.type === 'tool_result').map((block) => textOf(block.content)),
    };
  },
  errorBody: (status, message) => ({ type: 'error', error: { type: status === 400 ? 'invalid_request_error' : status === 404 ? 'not_found_error' : 'api_error', message } }),
  encoder(out, { index, body, usage }) {
    const send = (data: { type: string; [key: string]: unknown }) => out.send(data, data.type);
    let block = -1;
    let open: 'thinking' | 'text' | null = null;
    const close = () => {
      if (open === 'thinking') send({ type: 'content_block_delta', index: block, delta: { type: 'signature_delta', signature: `mock-signature-${index}-${block}` } });
      if (open) send({ type: 'content_block_stop', index: block });
      open = null;
    };
    const delta = (kind: 'thinking' | 'text', text: string) => {
      if (open !== kind) {
        close();
        open = kind;
        block += 1;
        send({ type: 'content_block_start', index: block, content_block: kind === 'text' ? { type: 'text', text: '' } : { type: 'thinking', thinking: '', signature: '' } });
      }
      send({ type: 'content_block_delta', index: block, delta: kind === 'text' ? { type: 'text_delta', text } : { type: 'thinking_delta', thinking: text } });
    };
    return {
      start: () =>
        send({
          type: 'message_start',
          message: {
            id: `msg_mock_${index}`,
            type: 'message',
            role: 'assistant',
            model: typeof body.model === 'string' ? body.model : 'claude-mock',
            content: [],
            stop_reason: null,
            stop_sequence: null,
            usage: { input_tokens: usage.input, output_tokens: 1, cache_creation_input_tokens: 0, cache_read_input_tokens: 0 },
          },
        }),
      thinking: (text) => delta('thinking', text),
      text: (text) => delta('text', text),
      toolCall(call, n) {
        close();
        block += 1;
        send({ type: 'content_block_start', index: block, content_block: { type: 'tool_use', id: `toolu_mock_${index}_${n}`, name: call.name, input: {} } });
        send({ type: 'content_block_delta', index: block, delta: { type: 'input_json_delta', partial_json: JSON.stringify(call.arguments) } });
        send({ type: 'content_block_stop', index: block });
      },
      finish(reason) {
        close();
        send({ type: 'message_delta', delta: { stop_reason: reason === 'tool_calls' ? 'tool_use' : 'end_turn', stop_sequence: null }, usage: { output_tokens: usage.output } });
        send({ type: 'message_stop' });
      },
    };
  },
};

/** A scripted Anthropic Messages server for Claude Code. */
export function startAnthropicServer(script: ModelScript<AnthropicMessage> = answerOk): Promise<ModelServer<AnthropicMessage>> {
  return startScriptedServer(anthropicMessagesWire, script);
}

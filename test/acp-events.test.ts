/**
 * The ACP normaliser and protocol readers against gemini-cli's recorded ACP stdout (test/fixtures/gemini,
 * re-recorded by its record.ts): session updates become slim run events, a prompt response's usage and a
 * failed prompt's model message are read as runboard reports them.
 */
import { readFileSync } from 'node:fs';
import type { SessionUpdate } from '@agentclientprotocol/sdk';
import { AcpEventNormalizer } from '../src/agents/acp/events.js';
import { allowPermission, promptErrorMessage, promptUsage } from '../src/agents/acp/protocol.js';
import type { RunEventInput } from '../src/orchestrator/run-events.js';

/** The fixture's JSON-RPC messages, in order. */
function transcript(fixture: string): any[] {
  return readFileSync(new URL(`./fixtures/gemini/${fixture}`, import.meta.url), 'utf8').split('\n').filter(Boolean).map((line) => JSON.parse(line));
}

/** The updates after the session's mode was set (as the driver sees them once it has prompted), normalised. */
function normalize(updates: SessionUpdate[], now = () => 0): RunEventInput[] {
  const out: RunEventInput[] = [];
  const normalizer = new AcpEventNormalizer((events) => out.push(...events), now);
  for (const update of updates) normalizer.handle(update);
  normalizer.flush();
  return out;
}

const promptedUpdates = (messages: any[]) => {
  const promptSent = messages.findIndex((m) => m.id === 2 && 'result' in m); // set_mode's answer; the prompt follows
  return messages.slice(promptSent + 1).filter((m) => m.method === 'session/update').map((m) => m.params.update as SessionUpdate);
};

test('a write-and-commit turn becomes ordered text, tool and thinking events, with the written file as the tool output', () => {
  const messages = transcript('write-commit.jsonl');
  const events = normalize(promptedUpdates(messages));
  expect(events.map((e) => e.type)).toEqual(['assistant_text', 'tool_start', 'tool_end', 'tool_start', 'tool_end', 'thinking', 'assistant_text']);
  expect(events[0]).toEqual({ type: 'assistant_text', data: { text: 'I will create the file.' } });
  expect(events[1]).toMatchObject({ type: 'tool_start', data: { toolCallId: expect.stringMatching(/^write_file/), tool: 'Writing to hello.txt' } });
  expect(events[2]).toMatchObject({ type: 'tool_end', data: { isError: false, output: 'created /tmp/gemini-fixture-cwd/hello.txt:\nhello, world\n' } });
  expect(events[4]).toMatchObject({ type: 'tool_end', data: { tool: expect.stringContaining('git commit'), isError: false, output: '' } }); // gemini-cli sends no shell output on success
  expect(events.at(-1)).toEqual({ type: 'assistant_text', data: { text: 'Created hello.txt and committed it.' } });

  expect(promptUsage(messages.at(-1).result)).toEqual({ input: 37692, output: 61, cacheRead: 0, cacheWrite: 0, totalTokens: 37753 });
});

test('a failed prompt reads as the model\'s own message; a cancelled tool ends with what it printed', () => {
  const failed = transcript('model-error.jsonl').at(-1);
  expect(promptErrorMessage(failed.error)).toBe('mock bad request');
  expect(promptErrorMessage({ code: -32603, message: 'Internal error', data: { message: 'stream disconnected', codex_error_info: 'other' } })).toBe('stream disconnected');
  expect(promptErrorMessage({ code: -32603, message: 'Internal error', data: { details: 'Cannot enable privileged approval modes in an untrusted folder.' } })).toBe('Cannot enable privileged approval modes in an untrusted folder.');
  expect(promptErrorMessage({ code: -32603, message: 'Internal error: API Error: 400 overloaded' })).toBe('Internal error: API Error: 400 overloaded');

  const cancelled = transcript('cancel-tool.jsonl');
  const events = normalize(promptedUpdates(cancelled));
  expect(events.at(-1)).toMatchObject({ type: 'tool_end', data: { output: 'Command cancelled by user.\n\nOutput before cancellation:\nstarted' } });
  expect(cancelled.at(-1).result).toEqual({ stopReason: 'cancelled' });
});

test('plans, usage in the unstable schema, a tool first seen in its update, throttled progress, and unknown updates', () => {
  let clock = 0;
  const events = normalize(
    [
      { sessionUpdate: 'plan', entries: [{ content: 'Write hello.txt', priority: 'high', status: 'in_progress' }, { content: 'Commit', priority: 'low', status: 'pending' }] },
      { sessionUpdate: 'tool_call_update', toolCallId: 't1', status: 'in_progress', title: 'npm test', kind: 'execute', content: [{ type: 'content', content: { type: 'text', text: 'one' } }] },
      { sessionUpdate: 'tool_call_update', toolCallId: 't1', status: 'in_progress', content: [{ type: 'content', content: { type: 'text', text: 'one two' } }] },
      { sessionUpdate: 'tool_call_update', toolCallId: 't1', status: 'failed', rawOutput: { formatted_output: 'exit 1' } },
      { sessionUpdate: 'available_commands_update', availableCommands: [] },
      { sessionUpdate: 'notice', message: 'rate limited' } as unknown as SessionUpdate,
    ],
    () => (clock += 600),
  );
  expect(events).toEqual([
    { type: 'plan_updated', data: { entries: [{ content: 'Write hello.txt', priority: 'high', status: 'in_progress' }, { content: 'Commit', priority: 'low', status: 'pending' }] } },
    { type: 'tool_start', data: { toolCallId: 't1', tool: 'npm test', args: { title: 'npm test', kind: 'execute' } } },
    { type: 'tool_progress', data: { toolCallId: 't1', tool: 'npm test', output: 'one two' } },
    { type: 'tool_end', data: { toolCallId: 't1', tool: 'npm test', isError: true, output: 'exit 1' } },
    { type: 'unrecognized', data: { originalType: 'notice', preview: '{"sessionUpdate":"notice","message":"rate limited"}' } },
  ]);
  expect(promptUsage({ stopReason: 'end_turn', usage: { inputTokens: 10, outputTokens: 5, cachedReadTokens: 100, totalTokens: 115 } } as never)).toEqual({ input: 10, output: 5, cacheRead: 100, cacheWrite: 0, totalTokens: 115 });
  expect(promptUsage({ stopReason: 'end_turn' })).toBeNull();
});

test('a permission request is allowed once, never always', () => {
  const options = [
    { optionId: 'proceed_always', name: 'Always', kind: 'allow_always' as const },
    { optionId: 'proceed_once', name: 'Once', kind: 'allow_once' as const },
    { optionId: 'cancel', name: 'No', kind: 'reject_once' as const },
  ];
  const request = { sessionId: 's', toolCall: { toolCallId: 't' }, options };
  expect(allowPermission(request)).toEqual({ outcome: { outcome: 'selected', optionId: 'proceed_once' } });
  expect(allowPermission({ ...request, options: [options[2]] })).toEqual({ outcome: { outcome: 'cancelled' } });
});

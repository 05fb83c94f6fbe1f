/** Codex's normaliser against stdout recorded from the real CLI (test/fixtures/codex): which run events each transcript becomes. */
import { readFileSync } from 'node:fs';
import { CodexEventNormalizer } from '../src/agents/codex/events.js';
import { parseCodexLine } from '../src/agents/codex/protocol.js';
import type { RunEventInput } from '../src/orchestrator/run-events.js';

function normalize(fixture: string): RunEventInput[] {
  const events: RunEventInput[] = [];
  const normalizer = new CodexEventNormalizer((batch) => events.push(...batch));
  for (const line of readFileSync(new URL(`./fixtures/codex/${fixture}`, import.meta.url), 'utf8').split('\n').filter(Boolean)) normalizer.handle(parseCodexLine(line));
  normalizer.flush();
  return events;
}

const data = (events: RunEventInput[], type: RunEventInput['type']) => events.filter((e) => e.type === type).map((e) => e.data as Record<string, any>);

test('a write-and-commit turn: warnings, the prompt delivered, text, two commands with output, usage per response, reasoning; nothing unrecognized', () => {
  const events = normalize('write-commit.jsonl');
  expect(events.map((e) => e.type).filter((type) => !['warning', 'usage'].includes(type))).toEqual([
    'agent_start',
    'message_delivered',
    'assistant_text',
    'tool_start',
    'tool_end',
    'tool_start',
    'tool_end',
    'thinking',
    'assistant_text',
    'agent_end',
  ]);
  expect(data(events, 'warning').map((d) => d.message)).toEqual([expect.stringContaining('bubblewrap'), expect.stringContaining('Model metadata')]);
  expect(data(events, 'tool_end')).toEqual([
    expect.objectContaining({ toolCallId: 'call_0_0', tool: 'command', isError: false }),
    expect.objectContaining({ toolCallId: 'call_1_0', tool: 'command', isError: false, output: expect.stringContaining('committed') }),
  ]);
  const usage = data(events, 'usage');
  expect(usage).toHaveLength(3);
  expect(usage[0]).toMatchObject({ input: 9866, output: 18, cacheRead: 0, totalTokens: 9884, cost: 0 });
});

test('a model error is one model_error with the provider\'s message, then the turn ends', () => {
  const events = normalize('model-error.jsonl');
  expect(data(events, 'model_error')).toEqual([{ message: 'mock bad request' }]);
  expect(events.at(-1)).toEqual({ type: 'agent_end', data: {} });
});

test('a steer is delivered into the same turn; the cut answer\'s streamed text is kept', () => {
  const events = normalize('steer.jsonl');
  expect(data(events, 'message_delivered').map((d) => d.text)).toEqual(['Reformat the file.', 'Use tabs.']);
  expect(data(events, 'assistant_text').map((d) => d.text).join('')).toBe('Indenting with spaces, one line at a time.Switching to tabs.');
  expect(data(events, 'agent_start')).toHaveLength(1);
});

test('an interrupted command starts and never ends; the turn does', () => {
  const events = normalize('interrupt-tool.jsonl');
  expect(data(events, 'tool_start')).toEqual([expect.objectContaining({ tool: 'command', args: expect.objectContaining({ command: expect.stringContaining('sleep 30') }) })]);
  expect(data(events, 'tool_end')).toEqual([]);
  expect(events.at(-1)).toEqual({ type: 'agent_end', data: {} });
  expect(data(events, 'unrecognized')).toEqual([]);
});

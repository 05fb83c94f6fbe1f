/**
 * The typed run event API through the real server: the real pi against the scripted model, a real
 * graphql-ws client, and SSE read the way an EventSource reads it (GET, `id:` fields, `Last-Event-ID`).
 */
import { rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { createClient, type Client } from 'graphql-ws';
import WebSocket from 'ws';
import { RUN_EVENT_FIELDS, withData, type TestRunEvent } from './helpers/events.js';
import { runEvents, startAgentTestBed, startRun, waitFor, waitForStatus, writeAndCommit, type AgentTestBed } from './helpers/runs.js';
import { projectRoot } from './helpers/server.js';

const PLAYTEST = `${process.execPath} ${path.join(projectRoot, 'test', 'fixtures', 'playtest.mjs')}`;

let bed: AgentTestBed;
let client: Client;
beforeAll(async () => {
  bed = await startAgentTestBed(writeAndCommit, { RUNBOARD_PLAYTEST_COMMAND: PLAYTEST });
  client = createClient({ url: bed.t.url.replace(/^http/, 'ws'), webSocketImpl: WebSocket, retryAttempts: 0 });
}, 30_000);
afterAll(async () => {
  await client?.dispose();
  await bed?.close();
});

const FOLLOW = `subscription($id: ID!, $since: Int, $untilSettled: Boolean) { runEvents(runId: $id, since: $since, untilSettled: $untilSettled) { ...RunEventFields } } ${RUN_EVENT_FIELDS}`;

/** Follows a run over graphql-ws; `done` settles when the server completes the stream. */
function follow(variables: Record<string, unknown>) {
  const events: TestRunEvent[] = [];
  let stop!: () => void;
  const done = new Promise<TestRunEvent[]>((resolve, reject) => {
    stop = client.subscribe(
      { query: FOLLOW, variables },
      { next: (result) => (result.errors ? reject(result.errors) : events.push(withData((result.data as any).runEvents))), error: reject, complete: () => resolve(events) },
    );
  });
  return { events, done, stop };
}

test('a run that streams text and calls tools yields typed events in seq order, and Run.events agrees', async () => {
  const { t } = bed;
  const runId = await startRun(t, 'Typed events');
  const streamed = await follow({ id: runId, untilSettled: true }).done;
  const stored = await runEvents(t, runId);
  expect(streamed).toEqual(stored);
  expect(streamed.map((e) => e.seq)).toEqual(streamed.map((_, i) => i + 1));

  const kinds = streamed.map((e) => e.typename);
  for (const kind of ['StatusChangedEvent', 'UserMessageSentEvent', 'AgentStartedEvent', 'ToolStartedEvent', 'ToolEndedEvent', 'UsageEvent', 'AssistantTextEvent', 'AgentEndedEvent']) expect(kinds).toContain(kind);
  expect(kinds).not.toContain('UnrecognizedEvent');
  const statuses = streamed.filter((e) => e.typename === 'StatusChangedEvent').map((e) => e.data.status);
  expect(statuses).toEqual(['QUEUED', 'STARTING', 'RUNNING', 'SUCCEEDED']);
  const tools = streamed.filter((e) => e.typename === 'ToolStartedEvent');
  expect(tools.map((e) => e.data.tool)).toEqual(['write', 'bash']);
  expect(tools[0]!.data.args).toEqual({ path: 'hello.txt', content: 'hello from the agent\n' });
  expect(streamed.find((e) => e.typename === 'ToolEndedEvent')!.data).toMatchObject({ tool: 'write', isError: false, output: expect.any(String) });
  const usage = streamed.find((e) => e.typename === 'UsageEvent')!.data;
  expect(usage.inputTokens).toBeGreaterThan(0);
  expect(typeof usage.costUsd).toBe('number');
  expect(streamed.filter((e) => e.typename === 'AssistantTextEvent').map((e) => e.data.text).join('')).toBe('Done.');
  expect(streamed.at(-1)!.typename).toBe('StatusChangedEvent');
});

test('a subscription to a settled run stays open and carries a later playtest; untilSettled ends after its exit', async () => {
  const { t } = bed;
  const runId = await startRun(t, 'Playtest later');
  const run = await waitForStatus(t, runId);
  expect(run.status).toBe('SUCCEEDED');

  const open = follow({ id: runId, since: run.lastSeq });
  // Nothing writes for the settled run yet: untilSettled ends at once, the default stays open.
  expect(await follow({ id: runId, since: run.lastSeq, untilSettled: true }).done).toEqual([]);
  await writeFile(path.join(run.worktreePath, '.playtest-mode'), 'exit 0'); // see fixtures/playtest.mjs
  await t.ok(`mutation($id: ID!) { startPlaytest(runId: $id) { id } }`, { id: runId });
  // A running playtest keeps an untilSettled subscription open until its exit.
  const untilExit = await follow({ id: runId, since: run.lastSeq, untilSettled: true }).done;
  expect(untilExit.map((e) => e.typename)).toEqual(['PlaytestStartedEvent', 'PlaytestOutputEvent', 'PlaytestOutputEvent', 'PlaytestOutputEvent', 'PlaytestExitedEvent']);
  expect(untilExit.filter((e) => e.typename === 'PlaytestOutputEvent').map((e) => e.data)).toEqual(
    expect.arrayContaining([{ stream: 'STDOUT', line: 'building…' }, { stream: 'STDERR', line: 'warning: unused variable' }]),
  );
  await waitFor('the open subscription to see the exit', async () => (open.events.some((e) => e.typename === 'PlaytestExitedEvent') ? true : undefined));
  expect(open.events).toEqual(untilExit);

  // Still open after the exit: a merge arrives on it too.
  await rm(path.join(run.worktreePath, '.playtest-mode'));
  const { mergeRun } = await t.ok(`mutation($id: ID!) { mergeRun(runId: $id, strategy: SQUASH) { ok mergedSha } }`, { id: runId });
  expect(mergeRun.ok).toBe(true);
  const merge = await waitFor('the merge event', async () => open.events.find((e) => e.typename === 'MergeEvent'));
  expect(merge.data).toMatchObject({ ok: true, mergedSha: mergeRun.mergedSha, strategy: 'SQUASH' });
  open.stop();
  expect(open.events.map((e) => e.seq)).toEqual(open.events.map((_, i) => run.lastSeq + 1 + i));
});

test('a settled run with untilSettled ends once its history is sent; since past the last seq is BAD_USER_INPUT', async () => {
  const { t } = bed;
  const runId = await startRun(t, 'Short history');
  const run = await waitForStatus(t, runId);
  const tail = await follow({ id: runId, since: run.lastSeq - 2, untilSettled: true }).done;
  expect(tail.map((e) => e.seq)).toEqual([run.lastSeq - 1, run.lastSeq]);
  await expect(follow({ id: runId, since: run.lastSeq + 1 }).done).rejects.toEqual([expect.objectContaining({ extensions: expect.objectContaining({ code: 'BAD_USER_INPUT', field: 'since' }) })]);
  await expect(follow({ id: runId, since: -1 }).done).rejects.toEqual([expect.objectContaining({ extensions: expect.objectContaining({ code: 'BAD_USER_INPUT' }) })]);
});

/** The `id:` and `data:` of each `event: next` message of an SSE body read so far. */
function sseMessages(text: string): { id: string | undefined; seq: number }[] {
  return text
    .split('\n\n')
    .filter((frame) => frame.startsWith('event: next'))
    .map((frame) => {
      const lines = frame.split('\n');
      const data = JSON.parse(lines.find((line) => line.startsWith('data: '))!.slice(6));
      return { id: lines.find((line) => line.startsWith('id: '))?.slice(4), seq: data.data.runEvents.seq };
    });
}

test('over SSE every message carries id: <seq>, and a GET reconnect with Last-Event-ID resumes exactly once', async () => {
  const { t } = bed;
  const runId = await startRun(t, 'Event source');
  const run = await waitForStatus(t, runId);
  // The URL an EventSource would be given: a GET subscription with its variables in the query string.
  const url = new URL(t.url);
  url.searchParams.set('query', `subscription($id: ID!) { runEvents(runId: $id, untilSettled: true) { seq } }`);
  url.searchParams.set('variables', JSON.stringify({ id: runId }));

  // First connection: read a few messages, then drop it, as a network failure would.
  const abort = new AbortController();
  const first = await fetch(url, { headers: { accept: 'text/event-stream' }, signal: abort.signal });
  expect(first.status).toBe(200);
  const reader = first.body!.getReader();
  let text = '';
  while (sseMessages(text).length < 3) text += new TextDecoder().decode((await reader.read()).value);
  abort.abort();
  const before = sseMessages(text);
  for (const message of before) expect(message.id).toBe(String(message.seq));
  const lastEventId = before.at(-1)!.id!;

  // The EventSource reconnects to the same URL and sends the last id it saw.
  const second = await fetch(url, { headers: { accept: 'text/event-stream', 'last-event-id': lastEventId } });
  const after = sseMessages(await second.text());
  for (const message of after) expect(message.id).toBe(String(message.seq));
  const seqs = [...before, ...after].map((m) => m.seq);
  expect(seqs).toEqual(Array.from({ length: run.lastSeq }, (_, i) => i + 1));
});

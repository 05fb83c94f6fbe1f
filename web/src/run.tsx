/**
 * One run: its live console of typed events, the message box (steer, follow up, stop), review
 * (commits, files, a per-file diff with syntax highlighting, uncommitted work), merge, playtest and
 * refine. The console follows runEventBatches (the SDK's followRunEvents) from its last seq on a
 * socket of its own, closed on leaving.
 */
import { useEffect, useRef, useState } from 'preact/hooks';
import type { Run, RunboardClient, RunEvent } from '../../sdk/client.js';
import * as ops from '../../sdk/generated/graphql.js';
import { connect, follow, inWords, savedToken } from './api.js';
import { runLabel } from './board.js';
import { TextForm } from './card.js';
import { Review } from './review.js';

/** Console entries kept on the page; older ones are dropped from view (the log keeps them all). */
const MAX_ENTRIES = 2_000;
const ACTIVE = new Set(['QUEUED', 'STARTING', 'RUNNING']);

/** One line of the console: consecutive text of one kind is one entry, a tool call gathers its start, progress and end. */
type Entry =
  | { kind: 'text' | 'thinking'; key: number; text: string }
  | { kind: 'tool'; key: number; id: string; tool: string; args: unknown; output: string; done: boolean; isError: boolean }
  | { kind: 'event'; key: number; event: RunEvent };

/** Applies one event to the console's entries, in place: a flush copies the array once for a whole burst. */
function apply(entries: Entry[], event: RunEvent): void {
  const last = entries[entries.length - 1];
  switch (event.__typename) {
    case 'AssistantTextEvent':
    case 'ThinkingEvent': {
      const kind = event.__typename === 'AssistantTextEvent' ? 'text' : 'thinking';
      if (last?.kind === kind) entries[entries.length - 1] = { ...last, text: last.text + event.text };
      else entries.push({ kind, key: event.seq, text: event.text });
      return;
    }
    case 'ToolStartedEvent':
      entries.push({ kind: 'tool', key: event.seq, id: event.toolCallId, tool: event.tool, args: event.args, output: '', done: false, isError: false });
      return;
    case 'ToolProgressEvent':
    case 'ToolEndedEvent': {
      const index = entries.findLastIndex((e) => e.kind === 'tool' && e.id === event.toolCallId);
      const tool = entries[index];
      if (!tool || tool.kind !== 'tool') return void entries.push({ kind: 'event', key: event.seq, event });
      const ended = event.__typename === 'ToolEndedEvent' ? { done: true, isError: event.isError } : {};
      entries[index] = { ...tool, output: clip(String(event.output ?? '')), ...ended };
      return;
    }
    case 'QueueChangedEvent':
    case 'PlaytestDroppedEvent':
      return;
    default:
      entries.push({ kind: 'event', key: event.seq, event });
  }
}

const clip = (text: string, max = 20_000) => (text.length > max ? `${text.slice(0, max)}\n… (${text.length - max} more characters)` : text);

export function RunView({ client, runId }: { client: RunboardClient; runId: string }) {
  const [run, setRun] = useState<Run | undefined>();
  const [entries, setEntries] = useState<{ shown: Entry[]; hidden: number }>({ shown: [], hidden: 0 });
  const [live, setLive] = useState<'live' | 'reconnecting'>('live');
  const [error, setError] = useState<string | undefined>();
  const [tab, setTab] = useState<'console' | 'review'>('console');
  const reloadRun = () => client.run(runId).then(setRun, (failure) => setError(inWords(failure)));

  useEffect(() => {
    void reloadRun();
    // A socket of its own, so leaving the run ends its subscription at once.
    const stream = connect(savedToken());
    const stop = new AbortController();
    let queued: RunEvent[] = [];
    let frame = 0;
    const flush = () => {
      frame = 0;
      const batch = queued;
      queued = [];
      setEntries(({ shown, hidden }) => {
        const next = shown.slice();
        for (const event of batch) apply(next, event);
        const over = Math.max(0, next.length - MAX_ENTRIES);
        return { shown: over ? next.slice(over) : next, hidden: hidden + over };
      });
    };
    void follow(
      (since) => stream.followRunEvents(runId, { since }),
      0,
      (event) => {
        queued.push(event);
        frame ||= requestAnimationFrame(flush); // one render per frame, however fast events come
        if (event.__typename === 'StatusChangedEvent' || event.__typename === 'MergeEvent' || event.__typename === 'PlaytestExitedEvent' || event.__typename === 'PlaytestStartedEvent') void reloadRun();
      },
      (state) => setLive(state),
      stop.signal,
    );
    return () => {
      stop.abort();
      cancelAnimationFrame(frame);
      void stream.close();
    };
  }, [client, runId]);

  const act = async (mutation: () => Promise<Run | unknown>) => {
    try {
      const result = await mutation();
      if (result && typeof result === 'object' && 'status' in result) setRun(result as Run);
      setError(undefined);
    } catch (failure) {
      setError(inWords(failure));
    }
  };

  if (!run) return <section class="run-view">{error ? <p role="alert" class="error">{error}</p> : <p class="loading">Loading the run…</p>}</section>;
  const active = ACTIVE.has(run.status);
  return (
    <section class="run-view" data-status={run.status}>
      <header class="run-head">
        <a href={`#/card/${encodeURIComponent(run.card.id)}`} class="back">← {run.card.title}</a>
        <h1>
          {run.agent} <span class={`run-badge status-${runLabel(run)}`}>{runLabel(run)}</span>
        </h1>
        <span class={`live-state ${live}`} role="status">{live === 'live' ? 'live' : 'reconnecting…'}</span>
      </header>
      {run.error && <p class="error">{run.error}</p>}
      {error && <p role="alert" class="error">{error}</p>}
      <nav class="tabs" role="tablist">
        <button role="tab" aria-selected={tab === 'console'} onClick={() => setTab('console')}>Console</button>
        <button role="tab" aria-selected={tab === 'review'} onClick={() => setTab('review')}>Review</button>
      </nav>
      {tab === 'console' ? (
        <>
          <Console entries={entries} />
          <MessageBox active={active} onSend={(text, mode) => act(() => client.sendRunMessage(run.id, text, mode))} onStop={() => act(() => client.stopRun(run.id))} />
        </>
      ) : (
        <Review client={client} run={run} act={act} />
      )}
      {!active && (
        <div class="after-run">
          <h3>Refine</h3>
          <TextForm
            label="Feedback for the agent"
            button="Refine with feedback"
            onSubmit={(prompt) =>
              act(async () => {
                const refined = await client.startRun({ cardId: run.card.id, refineRunId: run.id, prompt });
                location.hash = `#/run/${encodeURIComponent(refined.id)}`;
              })
            }
          />
        </div>
      )}
    </section>
  );
}

function Console({ entries: { shown: entries, hidden } }: { entries: { shown: Entry[]; hidden: number } }) {
  const box = useRef<HTMLOListElement>(null);
  const pinned = useRef(true);
  // Follow the end while the reader is there; leave them be once they scroll up.
  useEffect(() => {
    const el = box.current;
    if (el && pinned.current) el.scrollTop = el.scrollHeight;
  }, [entries]);
  return (
    <ol
      ref={box}
      class="console"
      aria-live="polite"
      onScroll={(event) => {
        const el = event.currentTarget;
        pinned.current = el.scrollHeight - el.scrollTop - el.clientHeight < 40;
      }}
    >
      {hidden > 0 && <li class="note">{hidden} earlier entries are not shown (the run's log keeps every event).</li>}
      {entries.length === 0 && <li class="empty">No events yet.</li>}
      {entries.map((entry) => (
        <ConsoleEntry key={entry.key} entry={entry} />
      ))}
    </ol>
  );
}

function ConsoleEntry({ entry }: { entry: Entry }) {
  if (entry.kind === 'text') return <li class="text">{entry.text}</li>;
  if (entry.kind === 'event') return <EventLine event={entry.event} />;
  if (entry.kind === 'thinking')
    return (
      <li class="thinking">
        <details>
          <summary>Thinking</summary>
          {entry.text}
        </details>
      </li>
    );
  if (entry.kind === 'tool')
    return (
      <li class={`tool ${entry.done ? (entry.isError ? 'failed' : 'done') : 'running'}`}>
        <details>
          <summary>
            <code>{entry.tool}</code> {summarize(entry.args)} <span class="tool-state">{entry.done ? (entry.isError ? 'failed' : 'done') : 'running…'}</span>
          </summary>
          <pre class="args">{JSON.stringify(entry.args, null, 2)}</pre>
          {entry.output && <pre class="output">{entry.output}</pre>}
        </details>
      </li>
    );
}

/** A tool call's arguments in a few words: its path or command when it has one. */
function summarize(args: unknown): string {
  if (!args || typeof args !== 'object') return '';
  const { path, command } = args as { path?: unknown; command?: unknown };
  const text = typeof command === 'string' ? command : typeof path === 'string' ? path : '';
  return text.length > 80 ? `${text.slice(0, 80)}…` : text;
}

function EventLine({ event }: { event: RunEvent }) {
  switch (event.__typename) {
    case 'StatusChangedEvent':
      return <li class="status">Status: {event.status.toLowerCase()}{event.reason ? ` (${event.reason})` : ''}{event.error ? `: ${event.error}` : ''}</li>;
    case 'UserMessageSentEvent':
      return <li class="user">You ({event.mode.toLowerCase().replace('_', '-')}): {event.text}</li>;
    case 'MessageDeliveredEvent':
      return <li class="note">Delivered to the agent: {event.text}</li>;
    case 'UsageEvent':
      return <li class="usage">Tokens: {event.totalTokens}{event.costUsd != null ? `, $${event.costUsd.toFixed(4)}` : ''}</li>;
    case 'ModelErrorEvent':
      return <li class="error">Model error: {event.message}</li>;
    case 'WarningEvent':
      return <li class="warning">{event.message}</li>;
    case 'StderrEvent':
      return <li class="stderr">{event.line}</li>;
    case 'RetryStartedEvent':
      return <li class="note">Retrying ({event.attempt}/{event.maxAttempts}) in {Math.round((event.delayMs ?? 0) / 1000)} s: {event.error}</li>;
    case 'MergeEvent':
      return <li class={event.ok ? 'status' : 'error'}>{event.ok ? `Merged (${event.strategy.toLowerCase()}) as ${event.mergedSha?.slice(0, 10)}` : `Merge refused: ${event.message ?? ''} ${event.conflictingPaths.join(', ')}`}</li>;
    case 'PlaytestStartedEvent':
      return <li class="status">Playtest started: {event.command}</li>;
    case 'PlaytestOutputEvent':
      return <li class={`playtest ${event.stream}`}>{event.line}</li>;
    case 'PlaytestExitedEvent':
      return <li class="status">Playtest ended{event.exitCode != null ? ` with ${event.exitCode}` : ''}{event.signal ? ` by ${event.signal}` : ''}</li>;
    case 'AgentBoardChangeEvent':
      return <li class="note">The agent changed the card: {event.action}</li>;
    case 'PlanUpdatedEvent':
      return <li class="note">Plan: {event.entries.map((e) => `${e.status === 'COMPLETED' ? '✓' : '·'} ${e.content}`).join('  ')}</li>;
    case 'WorktreeRemovedEvent':
      return <li class="note">Worktree removed{event.unmergedCommits ? ` (${event.unmergedCommits} unmerged commits kept on the branch)` : ''}</li>;
    default:
      return <li class="note">{event.type}</li>;
  }
}

function MessageBox({ active, onSend, onStop }: { active: boolean; onSend: (text: string, mode: ops.MessageMode) => Promise<void>; onStop: () => void }) {
  const [text, setText] = useState('');
  const send = async (mode: ops.MessageMode) => {
    if (!text.trim()) return;
    await onSend(text.trim(), mode);
    setText('');
  };
  return (
    <form class="message-box" onSubmit={(event) => (event.preventDefault(), void send('STEER'))}>
      <textarea
        aria-label="Message to the agent"
        rows={2}
        placeholder={active ? 'Steer the agent, or queue a follow-up… (Ctrl+Enter steers)' : 'The run has settled; refine it below.'}
        disabled={!active}
        value={text}
        onInput={(e) => setText(e.currentTarget.value)}
        onKeyDown={(e) => e.key === 'Enter' && (e.ctrlKey || e.metaKey) && void send('STEER')}
      />
      <div class="buttons">
        <button type="submit" disabled={!active}>Steer</button>
        <button type="button" disabled={!active} onClick={() => void send('FOLLOW_UP')}>Follow up</button>
        <button type="button" class="danger" disabled={!active} onClick={onStop}>Stop</button>
      </div>
    </form>
  );
}

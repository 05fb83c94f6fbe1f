/**
 * Event pipeline benchmark (a script, not a test): `npm run bench:events`.
 *
 * A synthetic agent writes events for several concurrent runs through the real event log while
 * graphql-ws subscribers follow each run; then a fresh subscriber replays a 100,000-event history.
 * The baseline sends the same events over a bare `ws` socket, with no GraphQL and no persistence.
 * Prints events/s persisted and delivered, accept->receive latency (p50, p99, max) and replay time.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { encodeGlobalID } from '@pothos/plugin-relay';
import { execa } from 'execa';
import { createClient } from 'graphql-ws';
import WebSocket, { WebSocketServer } from 'ws';
import { loadConfig } from '../src/config.js';
import { startServer } from '../src/server.js';

const RUNS = Number(process.env.BENCH_RUNS ?? 4);
const EVENTS_PER_RUN = Number(process.env.BENCH_EVENTS ?? 2_000);
const SUBSCRIBERS_PER_RUN = Number(process.env.BENCH_SUBSCRIBERS ?? 5);
const REPLAY_EVENTS = Number(process.env.BENCH_REPLAY ?? 100_000);
/** Events per second each synthetic agent writes; 0 writes as fast as the log accepts. */
const RATE_PER_RUN = Number(process.env.BENCH_RATE ?? 250);

/** Waits until event `i` is due at RATE_PER_RUN. */
async function pace(started: number, i: number): Promise<void> {
  if (!RATE_PER_RUN) return;
  const due = started + (i * 1000) / RATE_PER_RUN - performance.now();
  if (due > 0) await new Promise((resolve) => setTimeout(resolve, due));
}
const TEXT = 'x'.repeat(120); // about the size of a coalesced text delta or a tool event

interface Figures {
  persistedPerSec: number | null;
  deliveredPerSec: number;
  latencies: number[];
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

function report(name: string, figures: Figures, seconds: number): void {
  const sorted = figures.latencies.length ? [...figures.latencies].sort((a, b) => a - b) : [0];
  const persisted = figures.persistedPerSec === null ? '—' : figures.persistedPerSec.toFixed(0);
  console.log(
    `${name.padEnd(30)} persisted/s ${persisted.padStart(7)}   delivered/s ${figures.deliveredPerSec.toFixed(0).padStart(7)}   ` +
      `latency ms p50 ${percentile(sorted, 50).toFixed(2)} p99 ${percentile(sorted, 99).toFixed(2)} max ${sorted.at(-1)!.toFixed(2)}   (${seconds.toFixed(2)} s)`,
  );
}

async function runboardPipeline(): Promise<void> {
  const repo = mkdtempSync(path.join(os.tmpdir(), 'bench-repo-'));
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'bench-data-'));
  await execa('git', ['init', '-q', '-b', 'main', repo]);
  await execa('git', ['-C', repo, '-c', 'user.name=b', '-c', 'user.email=b@b', 'commit', '-q', '--allow-empty', '-m', 'init']);
  const server = await startServer(loadConfig(['--port', '0', '--repo', repo, '--data-dir', dataDir], {}));
  const { db, eventLog } = server.orchestrator;
  const client = createClient({ url: server.url.replace(/^http/, 'ws'), webSocketImpl: WebSocket, retryAttempts: 0 });
  try {
    const card = await db.client.card.create({ data: { title: 'bench', position: 0 } });
    const runs = await Promise.all(Array.from({ length: RUNS }, () => db.client.run.create({ data: { cardId: card.id, prompt: 'bench', status: 'RUNNING' } })));

    // Live: subscribers first, then the writers.
    const latencies: number[] = [];
    let delivered = 0;
    const subscribed: Promise<void>[] = [];
    let resumes = 0;
    /** Follows a run to its end as a real client does: on SUBSCRIBER_TOO_SLOW, resubscribe from resumeFrom. */
    const follow = (runId: string, since: number, onReady?: () => void): Promise<void> =>
      new Promise<void>((resolve, reject) => {
        let resumeFrom: number | null = null;
        client.subscribe(
          { query: 'subscription($id: ID!, $since: Int) { runEvents(runId: $id, since: $since, untilSettled: true) { seq ... on AssistantTextEvent { text } } }', variables: { id: encodeGlobalID('Run', runId), since } },
          {
            next: (result) => {
              if (result.errors?.[0]?.extensions?.code === 'SUBSCRIBER_TOO_SLOW') {
                resumeFrom = result.errors[0].extensions.resumeFrom as number;
                return;
              }
              const event = (result.data as { runEvents: { seq: number; text?: string } }).runEvents;
              delivered++;
              const sentAt = sentAtOf(event.text);
              if (sentAt) latencies.push(performance.timeOrigin + performance.now() - sentAt);
            },
            error: reject,
            complete: () => {
              if (resumeFrom === null) return resolve();
              resumes++;
              follow(runId, resumeFrom).then(resolve, reject);
            },
          },
        );
        if (onReady) setTimeout(onReady, 200);
      });
    const finished = runs.flatMap((run) =>
      Array.from({ length: SUBSCRIBERS_PER_RUN }, () => {
        let ready!: () => void;
        subscribed.push(new Promise((resolve) => (ready = resolve)));
        return follow(run.id, 0, ready);
      }),
    );
    await Promise.all(subscribed);
    const started = performance.now();
    await Promise.all(
      runs.map(async (run) => {
        for (let i = 0; i < EVENTS_PER_RUN; i++) {
          await pace(started, i);
          await eventLog.append(run.id, [{ type: 'assistant_text', data: { text: stamped(TEXT) } }]);
        }
        await eventLog.append(run.id, [{ type: 'status', data: { status: 'SUCCEEDED' } }], { status: 'SUCCEEDED' });
      }),
    );
    const written = (performance.now() - started) / 1000;
    await Promise.all(finished);
    const seconds = (performance.now() - started) / 1000;
    const total = RUNS * (EVENTS_PER_RUN + 1);
    report(`runboard (${RUNS} runs x ${SUBSCRIBERS_PER_RUN} subs)`, { persistedPerSec: total / written, deliveredPerSec: delivered / seconds, latencies }, seconds);
    console.log(`${''.padEnd(30)} ${delivered} delivered of ${total * SUBSCRIBERS_PER_RUN} expected; ${resumes} resubscriptions after SUBSCRIBER_TOO_SLOW`);

    // Replay: a fresh subscriber reads a long history.
    const history = await db.client.run.create({ data: { cardId: card.id, prompt: 'bench', status: 'SUCCEEDED' } });
    for (let i = 0; i < REPLAY_EVENTS; i += 1_000) {
      await eventLog.append(history.id, Array.from({ length: Math.min(1_000, REPLAY_EVENTS - i) }, () => ({ type: 'assistant_text', data: { text: TEXT } })));
    }
    const replayStart = performance.now();
    let replayed = 0;
    await new Promise<void>((resolve, reject) =>
      client.subscribe(
        { query: 'subscription($id: ID!) { runEvents(runId: $id, untilSettled: true) { seq type createdAt ... on AssistantTextEvent { text } } }', variables: { id: encodeGlobalID('Run', history.id) } },
        { next: () => void replayed++, error: reject, complete: resolve },
      ),
    );
    const replaySeconds = (performance.now() - replayStart) / 1000;
    console.log(`${'replay to a fresh subscriber'.padEnd(30)} ${replayed} events in ${replaySeconds.toFixed(2)} s (${(replayed / replaySeconds).toFixed(0)} events/s)`);
  } finally {
    await client.dispose();
    await server.close();
    rmSync(repo, { recursive: true, force: true });
    rmSync(dataDir, { recursive: true, force: true });
  }
}

/** The text with the time it was written in front, for latency: `<ms since epoch>|text`. */
function stamped(text: string): string {
  return `${performance.timeOrigin + performance.now()}|${text}`;
}

/** The write time `stamped` put in front of a text, if any. */
function sentAtOf(text: string | undefined): number | null {
  const stamp = text?.slice(0, text.indexOf('|'));
  return stamp ? Number(stamp) : null;
}

/** The same events and subscribers over a bare ws socket: no GraphQL, no persistence. */
async function bareWebSocketBaseline(): Promise<void> {
  const http = createServer();
  const wss = new WebSocketServer({ server: http });
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  const url = `ws://127.0.0.1:${(http.address() as AddressInfo).port}`;
  const byRun = new Map<number, WebSocket[]>();
  wss.on('connection', (socket, request) => {
    const run = Number(new URL(request.url!, 'http://x').searchParams.get('run'));
    byRun.set(run, [...(byRun.get(run) ?? []), socket]);
  });
  const latencies: number[] = [];
  let delivered = 0;
  const finished: Promise<void>[] = [];
  for (let run = 0; run < RUNS; run++) {
    for (let s = 0; s < SUBSCRIBERS_PER_RUN; s++) {
      const socket = new WebSocket(`${url}/?run=${run}`);
      await new Promise((resolve) => socket.once('open', resolve));
      finished.push(
        new Promise((resolve) =>
          socket.on('message', (data) => {
            const event = JSON.parse(String(data));
            delivered++;
            const sentAt = sentAtOf(event.data.text);
            if (sentAt) latencies.push(performance.timeOrigin + performance.now() - sentAt);
            if (event.type === 'status') {
              socket.close();
              resolve();
            }
          }),
        ),
      );
    }
  }
  const started = performance.now();
  await Promise.all(
    Array.from({ length: RUNS }, async (_, run) => {
      for (let seq = 1; seq <= EVENTS_PER_RUN + 1; seq++) {
        await pace(started, seq - 1);
        const last = seq === EVENTS_PER_RUN + 1;
        const event = JSON.stringify({ seq, type: last ? 'status' : 'assistant_text', data: last ? { status: 'SUCCEEDED' } : { text: stamped(TEXT) } });
        await Promise.all(byRun.get(run)!.map((socket) => new Promise((resolve) => socket.send(event, resolve))));
      }
    }),
  );
  await Promise.all(finished);
  const seconds = (performance.now() - started) / 1000;
  report('bare ws baseline', { persistedPerSec: null, deliveredPerSec: delivered / seconds, latencies }, seconds);
  wss.close();
  http.close();
}

console.log(`runs ${RUNS}, events/run ${EVENTS_PER_RUN} at ${RATE_PER_RUN || 'max'}/s, subscribers/run ${SUBSCRIBERS_PER_RUN}, replay ${REPLAY_EVENTS}; node ${process.version}, ${os.cpus().length} cpus`);
await runboardPipeline();
await bareWebSocketBaseline();

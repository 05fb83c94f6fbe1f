/**
 * Event pipeline benchmark (a script, not a test): `npm run bench:events` (after `npm run build`,
 * for the cold start). Measures the server, not the clients, against a bare baseline in the same run.
 *
 * Every party is its own process (bench/events/): runboard's real server writing through its event
 * log, a bare `ws` broadcaster sending byte-identical graphql-ws `next` messages, and subscriber
 * processes holding one connection per subscription. For each load (10 runs × 5, 10, 50
 * subscribers) it prints the source's CPU µs per delivery (process.cpuUsage over the window),
 * deliveries/s, accept -> receive latency and exactly-once counts, for both. Each load is measured
 * BENCH_ROUNDS times, the sources taking turns, and each source's round with the median µs/delivery
 * is printed (the counts are every round's, and the last column every round's µs/delivery in order):
 * on 2 shared cores one window can be 40% off the next,
 * and turns keep a drift from landing on one source. Then the replay of a
 * long history to a fresh subscriber, and the cold start of the bundle next to `node dist/cli.js` (spawn -> first answer).
 *
 * Knobs: BENCH_QUICK=1 (shorter), BENCH_ROUNDS (per load; default 3, 1 when quick), BENCH_CPU_PROF=<dir> (each child's V8 CPU profiles, under <dir>/<child>), BENCH_NODE_ARGS (extra node flags for every child, e.g. "--perf-basic-prof" for perf), BENCH_EVENTS (per run), BENCH_RATE (events/s per run, 0 = as fast
 * as accepted), BENCH_REPLAY, BENCH_SUBSCRIBER_PROCESSES, BENCH_COLD_STARTS, BENCH_LOADS (e.g. "5,10,50"),
 * BENCH_CLUSTER=1 (adds the cluster source: the same loads through 2 API nodes on Postgres and Redis), BENCH_CLI (the entry to cold-start; default dist/cli.js, unbundled) and BENCH_CLI_OTHER (a second entry,
 * cold-started alternately in the same run and reported as a ratio; default dist/runboard.cjs, the bundle).
 */
import os from 'node:os';
import path from 'node:path';
import { reportColdStarts } from './events/cold-start.js';
import { startChild, type Child } from './events/shared.js';
import type { FollowFigures } from './events/subscribers.js';

const QUICK = process.env.BENCH_QUICK === '1';
const RUNS = 10;
const LOADS = (process.env.BENCH_LOADS ?? '5,10,50').split(',').map(Number);
const EVENTS_PER_RUN = Number(process.env.BENCH_EVENTS ?? (QUICK ? 200 : 1_000));
const RATE_PER_RUN = Number(process.env.BENCH_RATE ?? 100);
const REPLAY_EVENTS = Number(process.env.BENCH_REPLAY ?? (QUICK ? 20_000 : 100_000));
const SUBSCRIBER_PROCESSES = Number(process.env.BENCH_SUBSCRIBER_PROCESSES ?? 2);
const COLD_STARTS = Number(process.env.BENCH_COLD_STARTS ?? (QUICK ? 3 : 5));
const ROUNDS = Math.max(1, Number(process.env.BENCH_ROUNDS ?? (QUICK ? 1 : 3)));
const root = path.resolve(import.meta.dirname, '..');
const CLI = process.env.BENCH_CLI ?? path.join(root, 'dist', 'cli.js');
const CLI_OTHER = process.env.BENCH_CLI_OTHER ?? path.join(root, 'dist', 'runboard.cjs');
/** Also measure a cluster: 2 API nodes and a writer on a throwaway Postgres and Redis (events/cluster-source.ts). */
const CLUSTER = process.env.BENCH_CLUSTER === '1';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** One source's figures for one load. */
interface LoadFigures {
  cpuMicros: number;
  seconds: number;
  expected: number;
  counts: Omit<FollowFigures, 'latencies'>;
  latencies: number[];
}

function percentile(sorted: number[], p: number): number {
  return sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] : NaN;
}

/** Exactly-once counts (and client CPU) summed: over subscriber processes, or over a load's rounds. */
function sumCounts(parts: readonly LoadFigures['counts'][]): LoadFigures['counts'] {
  const counts = { delivered: 0, repeats: 0, gaps: 0, missing: 0, resumes: 0, errors: 0, cpuMicros: 0 };
  for (const part of parts) for (const key of Object.keys(counts) as (keyof typeof counts)[]) counts[key] += part[key];
  return counts;
}

/** Sums the subscriber processes' counts and pools their latency samples. */
function combine(parts: FollowFigures[]): Pick<LoadFigures, 'counts' | 'latencies'> {
  return { counts: sumCounts(parts), latencies: parts.flatMap((part) => part.latencies).sort((a, b) => a - b) };
}

/**
 * Waits until the source is idle: 500 subscriptions take runboard about a second of CPU to set up
 * (authorization, a database read, the replay), which a fixed pause left partly inside the window.
 */
async function settled(source: Child): Promise<void> {
  await sleep(300);
  for (let i = 0; i < 50; i++) {
    const before = await source.call<number>('cpu');
    await sleep(100);
    if ((await source.call<number>('cpu')) - before < 10_000) return; // under 10% of a core
  }
}

/** One load against one source: subscribe, write, wait for every subscription to end. */
async function measureLoad(source: Child, subscribers: Child[], perRun: number, waitForSubscriptions: boolean, events = EVENTS_PER_RUN): Promise<LoadFigures> {
  const url = (await source.call<string>('url')).replace(/(^| )http/g, '$1ws');
  const runIds = await source.call<string[]>('createRuns', RUNS);
  const lastSeq = events + 1;
  // Subscription i follows run i % RUNS; process p holds every SUBSCRIBER_PROCESSES-th of them.
  const all = Array.from({ length: RUNS * perRun }, (_, i) => runIds[i % RUNS]);
  await Promise.all(subscribers.map((process, p) => process.call('follow', { url, runIds: all.filter((_, i) => i % subscribers.length === p), lastSeq })));
  // runboard subscribes from seq 0 and so misses nothing; the bare broadcaster must have them all first.
  while (waitForSubscriptions && (await source.call<number>('subscribed')) < all.length) await sleep(20);
  await settled(source);
  const cpuBefore = await source.call<number>('cpu');
  const started = performance.now();
  await source.call('write', { events, rate: RATE_PER_RUN });
  const parts = await Promise.all(subscribers.map((process) => process.call<FollowFigures>('finish')));
  const seconds = (performance.now() - started) / 1000;
  const cpuMicros = (await source.call<number>('cpu')) - cpuBefore;
  return { cpuMicros, seconds, expected: all.length * lastSeq, ...combine(parts) };
}

const microsPerDelivery = (figures: LoadFigures) => figures.cpuMicros / figures.counts.delivered;

/** The round with the median µs per delivery (the lower middle one of an even count). */
function medianRound(rounds: LoadFigures[]): LoadFigures {
  return [...rounds].sort((a, b) => microsPerDelivery(a) - microsPerDelivery(b))[Math.floor((rounds.length - 1) / 2)]!;
}

const row = (cells: string[], widths: number[]) => cells.map((cell, i) => (i ? cell.padStart(widths[i]) : cell.padEnd(widths[i]))).join('  ');
const fixed = (value: number, digits = 0) => (Number.isFinite(value) ? value.toFixed(digits) : '—');

console.log(
  `bench:events: ${RUNS} runs × ${EVENTS_PER_RUN} events at ${RATE_PER_RUN || 'max'}/s per run, subscribers in ${SUBSCRIBER_PROCESSES} processes, ` +
    `replay ${REPLAY_EVENTS}; node ${process.version}, ${os.cpus().length} cpus${QUICK ? ' (BENCH_QUICK)' : ''}`,
);
const runboard = await startChild('runboard-source');
const bare = await startChild('bare-source');
const cluster = CLUSTER ? await startChild('cluster-source') : null;
/** The runboard sources measured against the bare one. */
const sources = { runboard, ...(cluster ? { cluster } : {}) };
const subscribers = await Promise.all(Array.from({ length: SUBSCRIBER_PROCESSES }, () => startChild('subscribers')));
try {
  // Warm-up, not reported: both sources load and compile their delivery path before the first measured load.
  for (const [source, bareSource] of [...Object.values(sources).map((source) => [source, false] as const), [bare, true] as const]) await measureLoad(source, subscribers, 2, bareSource, 100);
  const widths = [22, 9, 12, 8, 8, 8, 8, 13, 26, 16];
  console.log();
  console.log(`each load ${ROUNDS} time${ROUNDS === 1 ? '' : 's'}, the sources taking turns; each source's median round (by µs/deliv), with every round's counts`);
  console.log(row(['load / source', 'µs/deliv', 'deliveries/s', 'vs bare', 'p50 ms', 'p99 ms', 'seconds', 'client µs/deliv', 'delivered/expected rep gap', 'every round µs/deliv'], widths));
  for (const perRun of LOADS) {
    const rounds: Record<string, LoadFigures[]> = {};
    for (let round = 0; round < ROUNDS; round++) {
      for (const [name, source] of Object.entries(sources)) (rounds[name] ??= []).push(await measureLoad(source, subscribers, perRun, false));
      (rounds.bare ??= []).push(await measureLoad(bare, subscribers, perRun, true));
    }
    const measured = Object.fromEntries(Object.entries(rounds).map(([name, figures]) => [name, medianRound(figures)]));
    const bareMicros = microsPerDelivery(measured.bare);
    for (const [name, figures] of Object.entries(measured)) {
      const micros = microsPerDelivery(figures);
      const { delivered, repeats, gaps, missing, resumes, errors } = sumCounts(rounds[name].map((round) => round.counts));
      const expected = rounds[name].reduce((sum, round) => sum + round.expected, 0);
      console.log(
        row(
          [
            `${RUNS}×${perRun} ${name}`,
            fixed(micros, 1),
            fixed(figures.counts.delivered / figures.seconds),
            `${fixed(micros / bareMicros, 2)}×`,
            fixed(percentile(figures.latencies, 50), 2),
            fixed(percentile(figures.latencies, 99), 2),
            fixed(figures.seconds, 1),
            fixed(figures.counts.cpuMicros / figures.counts.delivered, 1),
            `${delivered}/${expected} ${repeats} ${gaps}${missing ? ` missing ${missing}` : ''}${resumes ? ` resumed ${resumes}` : ''}${errors ? ` errors ${errors}` : ''}`,
            rounds[name].map((round) => fixed(microsPerDelivery(round), 1)).join(' '),
          ],
          widths,
        ),
      );
    }
  }

  console.log();
  const replays: Record<string, { seconds: number; delivered: number; repeats: number; gaps: number; missing: number }> = {};
  for (const [name, source] of [...Object.entries(sources), ['bare', bare] as const]) {
    const url = (await source.call<string>('url')).replace(/(^| )http/g, '$1ws');
    const runId = await source.call<string>('history', REPLAY_EVENTS);
    replays[name] = await subscribers[0].call('replay', { url, runId, lastSeq: REPLAY_EVENTS + 1 });
    // runboard's catch-up for clients that take a list per message (runEventBatches); bare sends one message per event.
    if (name !== 'bare') replays[`${name} batched`] = await subscribers[0].call('replay', { url, runId, lastSeq: REPLAY_EVENTS + 1, batched: true });
  }
  for (const [name, replay] of Object.entries(replays)) {
    console.log(
      `replay of ${REPLAY_EVENTS} events, ${name.padEnd(16)} ${fixed(replay.seconds, 2).padStart(6)} s  ${`${fixed(replay.seconds / replays.bare.seconds, 2)}×`.padStart(6)} bare` +
        `   ${replay.delivered}/${REPLAY_EVENTS + 1} delivered, ${replay.repeats} repeats, ${replay.gaps + replay.missing} gaps`,
    );
  }
} finally {
  await Promise.all([...Object.values(sources), bare, ...subscribers].map((child) => child.close()));
}

console.log();
await reportColdStarts([CLI, CLI_OTHER], COLD_STARTS);

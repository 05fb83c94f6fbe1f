/**
 * Event pipeline benchmark (a script, not a test): `npm run bench:events` (after `npm run build`,
 * for the cold start). Measures the server, not the clients, against a bare baseline in the same run.
 *
 * Every party is its own process (bench/events/): runboard's real server writing through its event
 * log, a bare `ws` broadcaster sending byte-identical graphql-ws `next` messages, and subscriber
 * processes holding one connection per subscription. For each load (10 runs × 5, 10, 50
 * subscribers) it prints the source's CPU µs per delivery (process.cpuUsage over the window),
 * deliveries/s, accept -> receive latency and exactly-once counts, for both; then the replay of a
 * long history to a fresh subscriber, and the cold start of `node dist/cli.js` (spawn -> first answer).
 *
 * Knobs: BENCH_QUICK=1 (shorter), BENCH_EVENTS (per run), BENCH_RATE (events/s per run, 0 = as fast
 * as accepted), BENCH_REPLAY, BENCH_SUBSCRIBER_PROCESSES, BENCH_COLD_STARTS, BENCH_LOADS (e.g. "5,10,50"),
 * BENCH_CLI (the entry to cold-start; default dist/cli.js) and BENCH_CLI_OTHER (a second entry, e.g. a
 * bundle, cold-started alternately in the same run and reported as a ratio).
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { initRepo, startChild, type Child } from './events/shared.js';
import type { FollowFigures } from './events/subscribers.js';

const QUICK = process.env.BENCH_QUICK === '1';
const RUNS = 10;
const LOADS = (process.env.BENCH_LOADS ?? '5,10,50').split(',').map(Number);
const EVENTS_PER_RUN = Number(process.env.BENCH_EVENTS ?? (QUICK ? 200 : 1_000));
const RATE_PER_RUN = Number(process.env.BENCH_RATE ?? 100);
const REPLAY_EVENTS = Number(process.env.BENCH_REPLAY ?? (QUICK ? 20_000 : 100_000));
const SUBSCRIBER_PROCESSES = Number(process.env.BENCH_SUBSCRIBER_PROCESSES ?? 2);
const COLD_STARTS = Number(process.env.BENCH_COLD_STARTS ?? (QUICK ? 3 : 5));
const root = path.resolve(import.meta.dirname, '..');
const CLI = process.env.BENCH_CLI ?? path.join(root, 'dist', 'cli.js');
const CLI_OTHER = process.env.BENCH_CLI_OTHER;

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

/** Sums the subscriber processes' counts and pools their latency samples. */
function combine(parts: FollowFigures[]): Pick<LoadFigures, 'counts' | 'latencies'> {
  const counts = { delivered: 0, repeats: 0, gaps: 0, missing: 0, resumes: 0, errors: 0, cpuMicros: 0 };
  for (const part of parts) for (const key of Object.keys(counts) as (keyof typeof counts)[]) counts[key] += part[key];
  return { counts, latencies: parts.flatMap((part) => part.latencies).sort((a, b) => a - b) };
}

/** One load against one source: subscribe, write, wait for every subscription to end. */
async function measureLoad(source: Child, subscribers: Child[], perRun: number, waitForSubscriptions: boolean, events = EVENTS_PER_RUN): Promise<LoadFigures> {
  const url = (await source.call<string>('url')).replace(/^http/, 'ws');
  const runIds = await source.call<string[]>('createRuns', RUNS);
  const lastSeq = events + 1;
  // Subscription i follows run i % RUNS; process p holds every SUBSCRIBER_PROCESSES-th of them.
  const all = Array.from({ length: RUNS * perRun }, (_, i) => runIds[i % RUNS]);
  await Promise.all(subscribers.map((process, p) => process.call('follow', { url, runIds: all.filter((_, i) => i % subscribers.length === p), lastSeq })));
  // runboard subscribes from seq 0 and so misses nothing; the bare broadcaster must have them all first.
  while (waitForSubscriptions && (await source.call<number>('subscribed')) < all.length) await sleep(20);
  await sleep(300); // let the subscriptions settle in
  const cpuBefore = await source.call<number>('cpu');
  const started = performance.now();
  await source.call('write', { events, rate: RATE_PER_RUN });
  const parts = await Promise.all(subscribers.map((process) => process.call<FollowFigures>('finish')));
  const seconds = (performance.now() - started) / 1000;
  const cpuMicros = (await source.call<number>('cpu')) - cpuBefore;
  return { cpuMicros, seconds, expected: all.length * lastSeq, ...combine(parts) };
}

/** Spawn -> first answered query of `node <entry>`, on a data dir prepared by an earlier start. */
async function coldStart(entry: string, repo: string, dataDir: string): Promise<number> {
  const started = performance.now();
  const child = spawn(process.execPath, [entry, '--repo', repo, '--data-dir', dataDir, '--port', '0'], { env: { ...process.env, LOG_LEVEL: 'info' }, stdio: ['ignore', 'pipe', 'ignore'] });
  try {
    const url = await new Promise<string>((resolve, reject) => {
      let output = '';
      child.stdout.on('data', (chunk: Buffer) => {
        output = (output + chunk).slice(-4_096);
        const found = /GraphiQL at (\S+)/.exec(output);
        if (found) resolve(found[1]);
      });
      child.once('exit', (code) => reject(new Error(`${entry} exited with ${code} before listening`)));
    });
    const response = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ query: '{ __typename }' }) });
    if (!response.ok) throw new Error(`first query: HTTP ${response.status}`);
    await response.json();
    return (performance.now() - started) / 1000;
  } finally {
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    await exited;
  }
}

/** The median cold start of each entry, alternating them so drift on a shared machine hits both. */
async function coldStarts(entries: string[]): Promise<number[]> {
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'bench-cold-'));
  const repo = path.join(tmp, 'repo');
  try {
    await initRepo(repo);
    const dataDirs = entries.map((_, i) => path.join(tmp, `data-${i}`));
    for (const [i, entry] of entries.entries()) await coldStart(entry, repo, dataDirs[i]); // creates the database: not counted
    const times: number[][] = entries.map(() => []);
    for (let round = 0; round < COLD_STARTS; round++) {
      for (const [i, entry] of entries.entries()) times[i].push(await coldStart(entry, repo, dataDirs[i]));
    }
    return times.map((list) => list.sort((a, b) => a - b)[Math.floor(list.length / 2)]);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

const row = (cells: string[], widths: number[]) => cells.map((cell, i) => (i ? cell.padStart(widths[i]) : cell.padEnd(widths[i]))).join('  ');
const fixed = (value: number, digits = 0) => (Number.isFinite(value) ? value.toFixed(digits) : '—');

console.log(
  `bench:events: ${RUNS} runs × ${EVENTS_PER_RUN} events at ${RATE_PER_RUN || 'max'}/s per run, subscribers in ${SUBSCRIBER_PROCESSES} processes, ` +
    `replay ${REPLAY_EVENTS}; node ${process.version}, ${os.cpus().length} cpus${QUICK ? ' (BENCH_QUICK)' : ''}`,
);
const runboard = await startChild('runboard-source');
const bare = await startChild('bare-source');
const subscribers = await Promise.all(Array.from({ length: SUBSCRIBER_PROCESSES }, () => startChild('subscribers')));
try {
  // Warm-up, not reported: both sources load and compile their delivery path before the first measured load.
  for (const [source, bareSource] of [[runboard, false], [bare, true]] as const) await measureLoad(source, subscribers, 2, bareSource, 100);
  const widths = [22, 9, 12, 8, 8, 8, 8, 13, 26];
  console.log();
  console.log(row(['load / source', 'µs/deliv', 'deliveries/s', 'vs bare', 'p50 ms', 'p99 ms', 'seconds', 'client µs/deliv', 'delivered/expected rep gap'], widths));
  for (const perRun of LOADS) {
    const measured = { runboard: await measureLoad(runboard, subscribers, perRun, false), bare: await measureLoad(bare, subscribers, perRun, true) };
    const bareMicros = measured.bare.cpuMicros / measured.bare.counts.delivered;
    for (const [name, figures] of Object.entries(measured)) {
      const micros = figures.cpuMicros / figures.counts.delivered;
      const { delivered, repeats, gaps, missing, resumes, errors } = figures.counts;
      console.log(
        row(
          [
            `${RUNS}×${perRun} ${name}`,
            fixed(micros, 1),
            fixed(delivered / figures.seconds),
            `${fixed(micros / bareMicros, 2)}×`,
            fixed(percentile(figures.latencies, 50), 2),
            fixed(percentile(figures.latencies, 99), 2),
            fixed(figures.seconds, 1),
            fixed(figures.counts.cpuMicros / delivered, 1),
            `${delivered}/${figures.expected} ${repeats} ${gaps}${missing ? ` missing ${missing}` : ''}${resumes ? ` resumed ${resumes}` : ''}${errors ? ` errors ${errors}` : ''}`,
          ],
          widths,
        ),
      );
    }
  }

  console.log();
  const replays: Record<string, { seconds: number; delivered: number; repeats: number; gaps: number; missing: number }> = {};
  for (const [name, source] of [['runboard', runboard], ['bare', bare]] as const) {
    const url = (await source.call<string>('url')).replace(/^http/, 'ws');
    const runId = await source.call<string>('history', REPLAY_EVENTS);
    replays[name] = await subscribers[0].call('replay', { url, runId, lastSeq: REPLAY_EVENTS + 1 });
  }
  for (const [name, replay] of Object.entries(replays)) {
    console.log(
      `replay of ${REPLAY_EVENTS} events, ${name.padEnd(8)} ${fixed(replay.seconds, 2).padStart(6)} s  ${`${fixed(replay.seconds / replays.bare.seconds, 2)}×`.padStart(6)} bare` +
        `   ${replay.delivered}/${REPLAY_EVENTS + 1} delivered, ${replay.repeats} repeats, ${replay.gaps + replay.missing} gaps`,
    );
  }
} finally {
  await Promise.all([runboard, bare, ...subscribers].map((child) => child.close()));
}

console.log();
const entries = [CLI, ...(CLI_OTHER ? [CLI_OTHER] : [])];
const starts = await coldStarts(entries);
for (const [i, entry] of entries.entries()) {
  console.log(
    `cold start, spawn -> first answer, median of ${COLD_STARTS}: node ${path.relative(root, entry)}  ${fixed(starts[i], 2)} s` + (i ? `  ${fixed(starts[i] / starts[0], 2)}× the first` : ''),
  );
}

/**
 * Transport soak (a script, not a test): `npm run bench:soak` (after `npm run build`).
 *
 * Spawns the built `runboard` on a temp repository under a 1,024-descriptor limit, like a default
 * shell, and for SOAK_SECONDS (default 120) drives at once: a flood of idle connections past the limit, oversized
 * graphql-ws frames (authenticated and not), SSE and WebSocket subscribers that never read, and
 * reconnect storms (drop after 0–120 ms, resubscribe runEvents with `since`). Events flow from
 * playtests printing as fast as runboard accepts. Meanwhile it probes `/healthz` and a `startRun`
 * every 2 s and samples the server's RSS and open descriptors (/proc/<pid>). Prints the figures.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { createClient, type Client } from 'graphql-ws';
import WebSocket from 'ws';

const SECONDS = Number(process.env.SOAK_SECONDS ?? 120);
const FLOOD = Number(process.env.SOAK_FLOOD ?? 1_100); // idle sockets held open
const NEVER_READING_SSE = Number(process.env.SOAK_SSE ?? 100);
const NEVER_READING_WS = Number(process.env.SOAK_WS ?? 50);
const STORM_CLIENTS = Number(process.env.SOAK_STORM ?? 18);
// SOAK_NODE_ARGS: extra node flags for the server, e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof" to see where its time goes.
const PLAYTESTS = 3;
const DESCRIPTOR_LIMIT = 1_024;
const MAX_BODY = 1_048_576;

const root = path.resolve(import.meta.dirname, '..');
const tmp = mkdtempSync(path.join(os.tmpdir(), 'runboard-soak-'));
const repo = path.join(tmp, 'repo');
const until = Date.now() + SECONDS * 1000;
const running = () => Date.now() < until;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

await execa('git', ['init', '-q', '-b', 'main', repo]);
await execa('git', ['-C', repo, '-c', 'user.name=soak', '-c', 'user.email=soak@example.com', 'commit', '-q', '--allow-empty', '-m', 'init']);

// A playtest that prints 1,000-character lines without pause; runboard keeps 50 a second of them.
const playtest = `node -e "const l='p'.repeat(999);setInterval(()=>{for(let i=0;i<20;i++)console.log(l)},10)"`;
// SOAK_CLI: another build of runboard to soak, e.g. one of the main branch, for a before/after.
const cli = process.env.SOAK_CLI ?? path.join(root, 'dist', 'cli.js');
const server = execa('prlimit', [`--nofile=${DESCRIPTOR_LIMIT}:${DESCRIPTOR_LIMIT}`, 'node', ...(process.env.SOAK_NODE_ARGS?.split(' ').filter(Boolean) ?? []), cli, '--repo', repo, '--data-dir', path.join(tmp, 'data'), '--port', '0'], {
  env: { LOG_LEVEL: 'warn', RUNBOARD_AGENT_COMMAND: 'true', RUNBOARD_PLAYTEST_COMMAND: playtest },
  reject: false,
});
const warnings = { count: 0, last: '' };
/** What the server's connection guard reports in its summary lines. */
const guardReport = { evicted: 0, refused: 0, stalled: 0 };
const url = await new Promise<string>((resolve, reject) => {
  let output = '';
  server.stdout!.on('data', (chunk: Buffer) => {
    output += chunk;
    const found = /GraphiQL at (\S+)/.exec(output);
    if (found) resolve(found[1]);
    for (const line of output.split('\n').slice(0, -1)) {
      if (!line.includes('"level":40') && !line.includes('"level":50')) continue;
      warnings.count++;
      warnings.last = line;
      if (line.includes('"maxConnections"')) {
        const record = JSON.parse(line) as typeof guardReport;
        guardReport.evicted += record.evicted;
        guardReport.refused += record.refused;
        guardReport.stalled += record.stalled;
      }
    }
    output = output.slice(output.lastIndexOf('\n') + 1);
  });
  void server.then(() => reject(new Error(`runboard exited: ${server.exitCode}`)));
});
const pid = server.pid!; // prlimit sets the limit and execs node in the same process
const { port } = new URL(url);
const wsUrl = url.replace(/^http/, 'ws');

async function gql<T = any>(query: string, variables?: Record<string, unknown>): Promise<T> {
  const response = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ query, variables }), signal: AbortSignal.timeout(30_000) });
  const body = (await response.json()) as { data?: T; errors?: { message: string }[] };
  if (body.errors?.length) throw new Error(body.errors[0].message);
  return body.data!;
}

async function startRun(title: string): Promise<string> {
  const { createCard } = await gql(`mutation($title: String!) { createCard(input: { title: $title }) { id } }`, { title });
  const { startRun } = await gql(`mutation($id: ID!) { startRun(input: { cardId: $id }) { id } }`, { id: createCard.id });
  return startRun.id as string;
}

// Runs whose playtests make the events everyone follows.
const eventRuns: string[] = [];
for (let i = 0; i < PLAYTESTS; i++) eventRuns.push(await startRun(`events ${i}`));
for (const runId of eventRuns) {
  for (let attempt = 0; ; attempt++) {
    try {
      await gql(`mutation($id: ID!) { startPlaytest(runId: $id) { id } }`, { id: runId });
      break;
    } catch (error) {
      if (attempt > 50) throw error;
      await sleep(200); // the agent is still settling
    }
  }
}

await sleep(3_000);
const flowing = await gql(`query($id: ID!) { run(id: $id) { status events(first: 1000) { seq type } } }`, { id: eventRuns[0] });
console.log(`event run 0: ${flowing.run.status}, ${flowing.run.events.length} events after 3 s, types ${[...new Set(flowing.run.events.map((e: { type: string }) => e.type))].join(' ')}`);

const figures = {
  peakRssMb: 0,
  peakFds: 0,
  fdsAtEnd: 0,
  health: { ok: 0, failed: 0, maxMs: 0, failedAt: [] as number[], firstError: '' },
  startRun: { ok: 0, failed: 0, maxMs: 0, failedAt: [] as number[], firstError: '' },
  flood: { opened: 0, closedByServer: 0 },
  oversized: { sent: 0, closed1009: 0, otherClose: 0 },
  neverReadingSse: { opened: 0, cutByServer: 0 },
  neverReadingWs: { opened: 0, cutByServer: 0 },
  storm: { cycles: 0, events: 0, duplicates: 0, gaps: 0 },
};

function sample(): void {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const hwm = Number(/VmHWM:\s+(\d+)/.exec(status)?.[1] ?? 0) / 1024;
    figures.peakRssMb = Math.max(figures.peakRssMb, Math.round(hwm));
    figures.peakFds = Math.max(figures.peakFds, readdirSync(`/proc/${pid}/fd`).length);
  } catch {
    // the server is gone; the probes will say so
  }
}

async function timed(target: { ok: number; failed: number; maxMs: number; failedAt: number[]; firstError: string }, probe: () => Promise<unknown>): Promise<void> {
  const started = performance.now();
  try {
    await probe();
    target.ok++;
  } catch (error) {
    target.failed++;
    target.failedAt.push(Math.round((started - soakStart) / 1000));
    target.firstError ||= (error as Error).message;
  }
  target.maxMs = Math.max(target.maxMs, Math.round(performance.now() - started));
}

/** /healthz and startRun every 2 s, each in its own loop so one slow probe does not hide the other. */
async function probes(): Promise<void> {
  const every = async (probe: (i: number) => Promise<void>) => {
    for (let i = 0; running(); i++) {
      const next = Date.now() + 2_000;
      await probe(i);
      await sleep(Math.max(0, next - Date.now()));
    }
  };
  await Promise.all([
    every(() =>
      timed(figures.health, async () => {
        const response = await fetch(new URL('/healthz', url), { signal: AbortSignal.timeout(10_000) });
        if (response.status !== 200) throw new Error(String(response.status));
      }),
    ),
    every((i) => timed(figures.startRun, () => startRun(`probe ${i}`))),
  ]);
}

/** Keeps FLOOD idle sockets open, reopening those the server closes. */
async function flood(): Promise<void> {
  const open = new Set<Socket>();
  while (running()) {
    while (open.size < FLOOD && running()) {
      const socket = connect(Number(port), '127.0.0.1');
      figures.flood.opened++;
      open.add(socket);
      socket.on('error', () => undefined).on('close', () => {
        open.delete(socket);
        if (running()) figures.flood.closedByServer++;
      });
      if (figures.flood.opened % 50 === 0) await sleep(10);
    }
    await sleep(200);
  }
  for (const socket of open) socket.destroy();
}

/** Frames over the body limit, before and after connection_init. */
async function oversized(): Promise<void> {
  const frame = JSON.stringify({ type: 'connection_init', payload: { padding: 'x'.repeat(8 * MAX_BODY) } });
  while (running()) {
    const ws = new WebSocket(wsUrl, 'graphql-transport-ws');
    ws.on('error', () => undefined);
    const code = await new Promise<number>((resolve) => {
      ws.once('close', (closeCode) => resolve(closeCode));
      ws.once('open', () => {
        figures.oversized.sent++;
        if (figures.oversized.sent % 2) return ws.send(frame);
        ws.send(JSON.stringify({ type: 'connection_init' }));
        ws.once('message', () => ws.send(frame.replace('connection_init', 'subscribe')));
      });
    });
    if (code === 1009) figures.oversized.closed1009++;
    else figures.oversized.otherClose++;
    await sleep(100);
  }
}

/** Subscribers that send their subscription and then never read a byte; the server should cut them 30 s after their socket fills. */
async function neverReading(): Promise<void> {
  // Joining a third of the way in, from seq 0, each first gets a history of megabytes that fills its socket at once.
  await sleep((SECONDS * 1000) / 3);
  const query = 'subscription($id: ID!) { runEvents(runId: $id) { seq ... on AssistantTextEvent { text } } }';
  const sockets: Socket[] = [];
  for (let i = 0; i < NEVER_READING_SSE; i++) {
    const body = JSON.stringify({ query, variables: { id: eventRuns[i % eventRuns.length] } });
    const socket = connect(Number(port), '127.0.0.1');
    socket.pause();
    socket.on('error', () => undefined).on('close', () => figures.neverReadingSse.cutByServer++);
    socket.write(`POST /graphql HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nContent-Type: application/json\r\nAccept: text/event-stream\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
    figures.neverReadingSse.opened++;
    sockets.push(socket);
  }
  const clients: WebSocket[] = [];
  for (let i = 0; i < NEVER_READING_WS; i++) {
    const ws = new WebSocket(wsUrl, 'graphql-transport-ws');
    ws.on('error', () => undefined).on('close', () => figures.neverReadingWs.cutByServer++);
    ws.once('open', () => {
      ws.send(JSON.stringify({ type: 'connection_init' }));
      ws.once('message', () => {
        ws.send(JSON.stringify({ id: '1', type: 'subscribe', payload: { query, variables: { id: eventRuns[i % eventRuns.length] } } }));
        (ws as unknown as { _socket: Socket })._socket.pause(); // and never read again, pongs included
      });
    });
    figures.neverReadingWs.opened++;
    clients.push(ws);
  }
  while (running()) await sleep(500);
  // A paused socket cannot see its end: read again, and those the server cut close once drained.
  for (const socket of sockets) socket.resume();
  for (const ws of clients) (ws as unknown as { _socket: Socket })._socket?.resume();
  await sleep(5_000);
  for (const socket of sockets) socket.destroy();
  for (const ws of clients) ws.terminate();
}

/** Clients that drop after 0–120 ms and resubscribe from the last seq they saw; checks exactly-once. */
async function storm(): Promise<void> {
  await Promise.all(
    Array.from({ length: STORM_CLIENTS }, async (_, i) => {
      const runId = eventRuns[i % eventRuns.length];
      let last = 0;
      while (running()) {
        const client: Client = createClient({ url: wsUrl, webSocketImpl: WebSocket, retryAttempts: 0, lazy: true });
        await new Promise<void>((resolve) => {
          const stop = client.subscribe(
            { query: 'subscription($id: ID!, $since: Int) { runEvents(runId: $id, since: $since) { seq } }', variables: { id: runId, since: last } },
            {
              next: (result) => {
                const seq = (result.data as { runEvents?: { seq: number } } | undefined)?.runEvents?.seq;
                if (seq === undefined) return;
                if (seq <= last) figures.storm.duplicates++;
                else if (seq !== last + 1) figures.storm.gaps++;
                last = Math.max(last, seq);
                figures.storm.events++;
              },
              error: () => resolve(),
              complete: () => resolve(),
            },
          );
          setTimeout(() => {
            stop();
            resolve();
          }, Math.random() * 120);
        });
        await Promise.resolve(client.dispose()).catch(() => undefined);
        figures.storm.cycles++;
      }
    }),
  );
}

// graphql-ws clients reject with the CloseEvent when an overloaded server closes them (4408 and the like): count, don't crash.
let clientRejections = 0;
process.on('unhandledRejection', () => void clientRejections++);
const sampler = setInterval(sample, 500);
const soakStart = performance.now();
await Promise.all([probes(), flood(), oversized(), neverReading(), storm()]);
const seconds = (performance.now() - soakStart) / 1000;
await sleep(2_000); // let the server drop what the clients left
sample();
clearInterval(sampler);
const alive = server.exitCode === undefined || server.exitCode === null;
figures.fdsAtEnd = alive ? readdirSync(`/proc/${pid}/fd`).length : 0;
server.kill('SIGTERM');
const ended = await server;
rmSync(tmp, { recursive: true, force: true });

console.log(`runboard soak of ${path.relative(process.cwd(), cli)}: ${seconds.toFixed(0)} s, server under a ${DESCRIPTOR_LIMIT}-descriptor limit, still alive at the end: ${alive}`);
if (!alive) console.log(`  the server died: exit ${ended.exitCode}, signal ${ended.signal ?? 'none'}; the last of its stderr: ${String(ended.stderr).slice(-400)}`);
console.log(`  peak RSS ${figures.peakRssMb} MB; open descriptors peak ${figures.peakFds}, ${figures.fdsAtEnd} at the end`);
const failures = (probe: { failedAt: number[]; firstError: string }) =>
  probe.failedAt.length ? ` (started at ${probe.failedAt.slice(0, 5).map((at) => `${at} s`).join(', ')}${probe.failedAt.length > 5 ? ', …' : ''}; first: ${probe.firstError.slice(0, 120)})` : '';
console.log(`  /healthz  ${figures.health.ok} ok, ${figures.health.failed} failed${failures(figures.health)}, slowest ${figures.health.maxMs} ms`);
console.log(`  startRun  ${figures.startRun.ok} ok, ${figures.startRun.failed} failed${failures(figures.startRun)}, slowest ${figures.startRun.maxMs} ms`);
console.log(`  idle flood: ${figures.flood.opened} sockets opened (${FLOOD} held at a time), ${figures.flood.closedByServer} closed by the server`);
console.log(`  the server's connection guard: ${guardReport.evicted} idle evicted, ${guardReport.refused} refused at the cap, ${guardReport.stalled} ended for not reading`);
console.log(`  oversized frames (8 MiB): ${figures.oversized.sent} sent, ${figures.oversized.closed1009} closed with 1009, ${figures.oversized.otherClose} otherwise`);
console.log(`  never-reading SSE: ${figures.neverReadingSse.cutByServer} of ${figures.neverReadingSse.opened} found closed by the server at the end; WS: ${figures.neverReadingWs.cutByServer} of ${figures.neverReadingWs.opened}`);
console.log(`  reconnect storm (${STORM_CLIENTS} clients): ${figures.storm.cycles} cycles, ${figures.storm.events} events, ${figures.storm.duplicates} duplicates, ${figures.storm.gaps} gaps; ${clientRejections} client connections closed by the server`);
console.log(`  server warnings/errors logged: ${warnings.count}${warnings.count ? `, the last: ${warnings.last.slice(0, 300)}` : ''}`);

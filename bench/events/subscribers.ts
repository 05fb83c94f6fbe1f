/**
 * A subscriber process of `npm run bench:events`: holds many graphql-ws clients, one connection
 * each, following runs to their end as a real client does (resubscribing from `resumeFrom` after
 * SUBSCRIBER_TOO_SLOW), and checks exactly-once: deliveries, repeats and gaps per subscription.
 * Keeps a bounded sample of accept -> receive latencies. Answers the conductor over IPC (shared.ts).
 */
import { createClient, type Client } from 'graphql-ws';
import WebSocket from 'ws';
import { cpuMicros, FOLLOW_BATCHES_QUERY, FOLLOW_QUERY, sentAtOf, serve, wallClock } from './shared.js';

/** Latencies kept per process (a uniform reservoir sample beyond that). */
const LATENCY_SAMPLE = 20_000;

/** What the conductor asks a subscriber process to follow. */
interface FollowArgs {
  readonly url: string;
  /** One entry per subscription: the run it follows. */
  readonly runIds: readonly string[];
  /** The seq of each run's last event (its settling status). */
  readonly lastSeq: number;
}

/** One process's counts for one load. */
export interface FollowFigures {
  delivered: number;
  repeats: number;
  gaps: number;
  /** Events never received before the subscription ended. */
  missing: number;
  resumes: number;
  errors: number;
  /** This process's CPU over the load, µs: whether the clients, not the source, set the pace. */
  cpuMicros: number;
  latencies: number[];
}

let clients: Client[] = [];
let following: Promise<void>[] = [];
let figures: FollowFigures;
let seenLatencies = 0;
let cpuAtStart = 0;

function freshFigures(): FollowFigures {
  seenLatencies = 0;
  cpuAtStart = cpuMicros();
  return { delivered: 0, repeats: 0, gaps: 0, missing: 0, resumes: 0, errors: 0, cpuMicros: 0, latencies: [] };
}

function recordLatency(ms: number): void {
  seenLatencies++;
  if (figures.latencies.length < LATENCY_SAMPLE) figures.latencies.push(ms);
  else {
    const slot = Math.floor(Math.random() * seenLatencies);
    if (slot < LATENCY_SAMPLE) figures.latencies[slot] = ms;
  }
}

type FollowedEvent = { seq: number; text?: string };

/**
 * Follows a run from `since` to its settling status on `client`, counting what arrives: one event per
 * message (runEvents), or with `batched` a list per message (runEventBatches).
 */
function follow(client: Client, runId: string, lastSeq: number, batched = false): Promise<void> {
  let last = 0;
  const count = ({ seq, text }: FollowedEvent) => {
    const sentAt = sentAtOf(text);
    if (sentAt) recordLatency(wallClock() - sentAt);
    figures.delivered++;
    if (seq <= last) figures.repeats++;
    else if (seq > last + 1) figures.gaps += seq - last - 1;
    last = Math.max(last, seq);
  };
  const subscribeFrom = (since: number): Promise<void> =>
    new Promise<void>((resolve) => {
      let resumeFrom: number | null = null;
      client.subscribe<{ runEvents?: FollowedEvent; runEventBatches?: FollowedEvent[] }>(
        { query: batched ? FOLLOW_BATCHES_QUERY : FOLLOW_QUERY, variables: { id: runId, since } },
        {
          next: (result) => {
            if (result.errors?.[0]?.extensions?.code === 'SUBSCRIBER_TOO_SLOW') {
              resumeFrom = result.errors[0].extensions.resumeFrom as number;
              return;
            }
            if (!result.data) return void figures.errors++;
            if (result.data.runEventBatches) for (const event of result.data.runEventBatches) count(event);
            else count(result.data.runEvents!);
          },
          error: () => {
            figures.errors++;
            resolve();
          },
          complete: () => {
            if (resumeFrom === null) return resolve();
            figures.resumes++;
            subscribeFrom(resumeFrom).then(resolve);
          },
        },
      );
    });
  return subscribeFrom(0).then(() => void (figures.missing += Math.max(0, lastSeq - last)));
}

/** Opens one client per subscription, over the space-separated `urls` in turn; resolves once every one has its connection_ack. */
async function open(urls: string, count: number): Promise<Client[]> {
  const spread = urls.split(' ');
  return Promise.all(
    Array.from(
      { length: count },
      (_, i) =>
        new Promise<Client>((resolve, reject) => {
          const client = createClient({ url: spread[i % spread.length]!, webSocketImpl: WebSocket, retryAttempts: 0, lazy: false, on: { connected: () => resolve(client), error: reject } });
        }),
    ),
  );
}

serve(
  {
    /** Connects and subscribes; answers once connected (the subscriptions run on until `finish`). */
    follow: async ({ url, runIds, lastSeq }: FollowArgs) => {
      figures = freshFigures();
      clients = await open(url, runIds.length);
      cpuAtStart = cpuMicros(); // the load, not the handshakes
      following = runIds.map((runId, i) => follow(clients[i], runId, lastSeq));
    },
    /** Waits for every subscription to end, closes the clients and answers the counts. */
    finish: async () => {
      await Promise.all(following);
      figures.cpuMicros = cpuMicros() - cpuAtStart;
      await Promise.all(clients.map((client) => client.dispose()));
      return figures;
    },
    /** A fresh subscriber reads a settled run's whole history; answers the seconds it took and the counts. */
    replay: async ({ url, runId, lastSeq, batched = false }: { url: string; runId: string; lastSeq: number; batched?: boolean }) => {
      figures = freshFigures();
      const [client] = await open(url, 1);
      cpuAtStart = cpuMicros();
      const started = performance.now();
      await follow(client, runId, lastSeq, batched);
      const seconds = (performance.now() - started) / 1000;
      figures.cpuMicros = cpuMicros() - cpuAtStart;
      await client.dispose();
      return { seconds, ...figures };
    },
  },
);

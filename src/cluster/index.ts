/**
 * The cluster's bus and run control, built in one place for the composition root: one Redis link
 * (two connections) per node, shared by the RedisBus and the RedisRunControl.
 */
import type { Logger } from '../log.js';
import type { BoardLog } from '../orchestrator/board-log.js';
import type { Database } from '../orchestrator/db.js';
import type { EventLog } from '../orchestrator/event-log.js';
import type { Topics } from '../orchestrator/index.js';
import { RedisBus, type SequencedReaders } from './redis-bus.js';
import { RedisLink } from './redis-link.js';
import { RedisRunControl } from './redis-run-control.js';

export { RedisBus, RedisLink, RedisRunControl };
export type { SequencedReader, SequencedReaders } from './redis-bus.js';

export interface ClusterBusOptions {
  /** redis://… */
  redisUrl: string;
  /** This process's name in the cluster: names its reply channel and Redis connections. */
  nodeId: string;
  logger: Logger;
  /** How the relays read the run event log and the board log (see `storeReaders`). */
  readers: SequencedReaders<Topics>;
  /** @default 'runboard:' */
  channelPrefix?: string;
  /** @default 5_000 // ms */
  pollMs?: number;
  /** @default RUN_CONTROL_TIMEOUT_MS // ms */
  runControlTimeoutMs?: number;
  /** How long start-up waits for Redis to answer. @default 5_000 // ms */
  connectTimeoutMs?: number;
}

/** What a cluster node publishes and controls runs with. */
export interface ClusterBus {
  bus: RedisBus<Topics>;
  control: RedisRunControl;
  /** Both Redis connections answer (for /readyz). */
  ping(): Promise<void>;
  /** Stops the relays and run control, then closes the connections. */
  close(): Promise<void>;
}

/** Connects to Redis (rejects if it does not answer) and builds the node's bus and run control. */
export async function createClusterBus({ redisUrl, nodeId, logger, readers, channelPrefix, pollMs, runControlTimeoutMs, connectTimeoutMs = 5_000 }: ClusterBusOptions): Promise<ClusterBus> {
  const link = new RedisLink({ url: redisUrl, nodeId, logger, channelPrefix });
  let timer: NodeJS.Timeout | undefined;
  try {
    // ioredis retries a refused connection for a long while: give up sooner, with a clear message.
    const late = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`redis at ${redactUrl(redisUrl)} did not answer within ${connectTimeoutMs} ms`)), connectTimeoutMs)));
    await Promise.race([link.ping(), late]);
  } catch (error) {
    await link.close();
    throw error;
  } finally {
    clearTimeout(timer);
  }
  const bus = new RedisBus<Topics>({ link, readers, logger, pollMs });
  const control = new RedisRunControl({ link, nodeId, logger, timeoutMs: runControlTimeoutMs });
  return {
    bus,
    control,
    ping: () => link.ping(),
    async close() {
      await Promise.allSettled([bus.close(), control.close()]);
      await link.close();
    },
  };
}

/** A URL without its password, for messages. */
function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    return parsed.toString();
  } catch {
    return 'the configured URL';
  }
}

/** The logs a node's relays read from. */
export interface LogStore {
  db: Database;
  eventLog: EventLog;
  boardLog: BoardLog;
}

/**
 * The relays' readers over the store's own logs. `store` is called when a relay reads, so the bus can be
 * built before the logs that publish on it (EventLog takes the bus).
 */
export function storeReaders(store: () => LogStore): SequencedReaders<Topics> {
  return {
    'run-events': {
      read: (runId, after, limit) => store().eventLog.read(runId, after, limit),
      lastSeq: async (runId) => (await store().db.client.run.findUnique({ where: { id: runId }, select: { lastSeq: true } }))?.lastSeq ?? 0,
    },
    'board-events': {
      read: (_key, after, limit) => store().boardLog.read(after, limit),
      lastSeq: () => store().boardLog.lastSeq(),
      keyOf: (entry) => entry.cardId ?? '-', // the key BoardLog.publish uses
    },
  };
}

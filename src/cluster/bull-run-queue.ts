/**
 * The cluster's run queue: BullMQ on Redis, one job per run (jobId = run id). A worker's processor
 * drives the run and resolves only when the run has ended, so BullMQ's lock on the job, renewed every
 * leaseMs/2 while the worker lives, IS the worker's lease on the run. A worker that dies stops renewing:
 * after leaseMs the stalled check (every leaseMs/2) delivers the job again, and the driver (Runs)
 * turns a run that is no longer QUEUED into INTERRUPTED instead of starting it twice.
 * BullMQ is spoken here only.
 */
import { Queue, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import type { Logger } from '../log.js';
import type { RunDriver, RunQueue } from '../orchestrator/run-queue.js';

/** The BullMQ queue runs go through. @default 'runs' */
export const RUN_QUEUE_NAME = 'runs';
/** Failed jobs kept for inspection; older ones are dropped. @default 1_000 */
const FAILED_JOBS_KEPT = 1_000;

export interface BullRunQueueOptions {
  /** redis://… */
  redisUrl: string;
  /** Recorded by BullMQ as the job's `processedBy`, and names the Redis connections. */
  nodeId: string;
  /** A worker's lease on its runs: BullMQ's lockDuration; stalled jobs are looked for every leaseMs/2. @default 30_000 // ms */
  leaseMs: number;
  /** Runs this worker drives at once (RUNBOARD_MAX_CONCURRENT_RUNS, per worker). @default 4 */
  concurrency: number;
  logger: Logger;
  /** Put before BullMQ's keys, so deployments (or tests) can share a Redis. @default 'runboard' */
  prefix?: string;
}

interface RunJob {
  runId: string;
}

export class BullRunQueue implements RunQueue {
  private readonly connection: Redis;
  private readonly queue: Queue<RunJob>;
  private worker: Worker<RunJob> | null = null;
  private workerConnection: Redis | null = null;
  private closing: Promise<void> | null = null;

  constructor(private readonly options: BullRunQueueOptions) {
    // BullMQ's blocking commands must wait as long as they need to.
    this.connection = this.connect('queue');
    this.queue = new Queue<RunJob>(RUN_QUEUE_NAME, { connection: this.connection, prefix: options.prefix ?? 'runboard' });
    this.queue.on('error', (error) => options.logger.warn({ err: error }, `run queue: ${error.message}`));
  }

  async enqueue(runId: string): Promise<void> {
    // A job id that exists already is not added again: enqueueing a run twice is harmless.
    await this.queue.add('run', { runId }, { jobId: runId, attempts: 1, removeOnComplete: true, removeOnFail: { count: FAILED_JOBS_KEPT } });
  }

  async consume(drive: RunDriver): Promise<void> {
    if (this.worker || this.closing) return;
    const { leaseMs, concurrency, nodeId, logger } = this.options;
    this.workerConnection = this.connect('worker');
    this.worker = new Worker<RunJob>(RUN_QUEUE_NAME, async (job) => drive(job.data.runId), {
      connection: this.workerConnection,
      prefix: this.options.prefix ?? 'runboard',
      name: nodeId,
      concurrency,
      lockDuration: leaseMs,
      stalledInterval: Math.max(1, Math.floor(leaseMs / 2)),
      // One redelivery after a worker died is enough: the driver ends the run as INTERRUPTED then.
      maxStalledCount: 1,
    });
    this.worker.on('error', (error) => logger.warn({ err: error }, `run queue worker: ${error.message}`));
    this.worker.on('failed', (job, error) => logger.error({ err: error, runId: job?.data.runId }, `driving run ${job?.data.runId} failed: ${error.message}`));
    await this.worker.waitUntilReady();
  }

  /** Stops fetching jobs, waits for the runs this worker drives to end (Runs.shutdown ends them), then disconnects. */
  close(): Promise<void> {
    return (this.closing ??= (async () => {
      await this.worker?.close();
      await this.queue.close();
      await Promise.allSettled([this.connection, this.workerConnection].map((connection) => connection?.quit()));
    })());
  }

  /** Whether Redis answers (for /readyz). */
  async ping(): Promise<void> {
    await this.connection.ping();
  }

  private connect(role: string): Redis {
    const connection = new Redis(this.options.redisUrl, { maxRetriesPerRequest: null, connectionName: `runboard-${this.options.nodeId}-${role}` });
    connection.on('error', (error: Error) => this.options.logger.warn({ err: error, connection: role }, 'redis connection error'));
    return connection;
  }
}

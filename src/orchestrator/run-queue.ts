/**
 * The run queue: how QUEUED runs reach a process that drives them. Embedded, it is the in-process
 * pump (LocalRunQueue): the oldest QUEUED run starts whenever a slot is free. In a cluster it is a job
 * queue whose renewable lock is a worker's lease on the run (src/cluster/bull-run-queue.ts).
 *
 * Either way the queue only says "drive this run"; `RunDriver` (Runs) claims it with the guarded
 * QUEUED -> STARTING write, so a run stopped meanwhile, or delivered twice, never starts an agent.
 */
import type { Logger } from '../log.js';
import type { Database } from './db.js';

/** Drives one run: claims it if it is still QUEUED and runs its agent; resolves once it has ended here (or was never started). */
export type RunDriver = (runId: string) => Promise<void>;

export interface RunQueue {
  /** A run was created QUEUED: hand it to a worker. Idempotent per run. */
  enqueue(runId: string): Promise<void>;
  /** From now on, this process drives queued runs, at most its concurrency at once (worker nodes only). */
  consume(drive: RunDriver): Promise<void>;
  /** Stops taking runs. Resolves once nothing more will be started here; the cluster queue also waits for the runs it drives. */
  close(): Promise<void>;
}

/** The embedded queue: today's pump over the database, in creation order, `maxConcurrentRuns` at a time. */
export class LocalRunQueue implements RunQueue {
  /** Runs handed to the driver that have not ended yet: they hold the slots. */
  private readonly driving = new Set<string>();
  private drive: RunDriver | null = null;
  private pumping: Promise<void> = Promise.resolve();
  private closed = false;

  constructor(
    private readonly db: Database,
    /** @default 4 */
    private readonly maxConcurrentRuns: number,
    private readonly logger: Logger,
  ) {}

  async enqueue(): Promise<void> {
    this.pump();
  }

  async consume(drive: RunDriver): Promise<void> {
    this.drive = drive;
    this.pump();
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.pumping;
  }

  private pump(): void {
    this.pumping = this.pumping.then(() => this.fillSlots()).catch((error: unknown) => this.logger.error({ err: error }, 'the run queue failed'));
  }

  private async fillSlots(): Promise<void> {
    while (!this.closed && this.drive && this.driving.size < this.maxConcurrentRuns) {
      const next = await this.db.client.run.findFirst({
        where: { status: 'QUEUED', id: { notIn: [...this.driving] } },
        orderBy: [{ createdAt: 'asc' }, { id: 'asc' }],
        select: { id: true },
      });
      if (!next) return;
      this.driving.add(next.id); // before any await: the loop counts it at once
      void this.drive(next.id)
        .catch((error: unknown) => this.logger.error({ err: error, runId: next.id }, `driving run ${next.id} failed`))
        .finally(() => {
          this.driving.delete(next.id);
          this.pump();
        });
    }
  }
}

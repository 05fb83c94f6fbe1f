/**
 * The node registry (cluster mode): every runboard process has a row in `Node` and refreshes its
 * `heartbeatAt` every leaseMs/3. A node whose heartbeat is older than leaseMs is gone, and so is its
 * hold on the runs it claimed (`Run.workerId`): any worker's periodic sweep turns them INTERRUPTED.
 * Query.cluster reads the same rows. The embedded default has no registry.
 */
import type { Logger } from '../log.js';
import type { Database } from './db.js';
import { delay } from './processes.js';
import { ACTIVE_RUN_STATUSES } from './run-status.js';

/** What a process does in a cluster: serve the API, run agents, or both. */
export type NodeRole = 'api' | 'worker' | 'all';

/** A node as Query.cluster shows it. */
export interface ClusterNodeInfo {
  id: string;
  role: string;
  startedAt: Date;
  heartbeatAt: Date;
  /** Its heartbeat is younger than the lease. */
  alive: boolean;
  /** Active runs it holds (claimed and not ended), oldest first. */
  runIds: string[];
}

export interface NodeRegistryOptions {
  db: Database;
  /** This node's id (--node-id). */
  nodeId: string;
  role: NodeRole;
  /** A node's lease on its runs: its heartbeat must be younger than this. @default 30_000 // ms */
  leaseMs: number;
  /** Called every leaseMs/2 on worker nodes: the sweep of runs whose lease expired. */
  sweep?: () => Promise<void>;
  logger: Logger;
}

/** How long a node that stopped beating stays listed in Query.cluster. @default 3_600_000 // ms */
export const FORGET_DEAD_NODE_MS = 60 * 60 * 1000;

export class NodeRegistry {
  private readonly timers: NodeJS.Timeout[] = [];
  /** Heartbeats and sweeps under way, awaited by `stop` so none writes after it. */
  private readonly tasks = new Set<Promise<void>>();
  private sweeping: Promise<void> = Promise.resolve();
  private stopped = false;

  constructor(private readonly options: NodeRegistryOptions) {}

  /** Registers this node (its first heartbeat) and starts the heartbeat and, on workers, the sweep. */
  async start(): Promise<void> {
    const { db, nodeId, role, leaseMs } = this.options;
    const now = new Date();
    await db.write((tx) => tx.node.upsert({ where: { id: nodeId }, create: { id: nodeId, role, startedAt: now, heartbeatAt: now }, update: { role, startedAt: now, heartbeatAt: now } }));
    this.every(Math.max(1, Math.floor(leaseMs / 3)), () => this.heartbeat());
    const sweep = this.options.sweep;
    if (sweep && role !== 'api') {
      this.every(Math.max(1, Math.floor(leaseMs / 2)), () => {
        // One sweep at a time: a slow one (ending leftover processes) must not pile up.
        this.sweeping = this.sweeping.then(sweep).catch((error: unknown) => this.options.logger.error({ err: error }, 'the sweep of expired runs failed'));
        return this.sweeping;
      });
    }
  }

  /** Stops the timers and removes this node's row: a node that left holds nothing. Waits for a sweep under way. */
  async stop(): Promise<void> {
    this.stopped = true;
    for (const timer of this.timers) clearInterval(timer);
    await Promise.allSettled([...this.tasks]);
    await this.options.db.write((tx) => tx.node.deleteMany({ where: { id: this.options.nodeId } })).catch((error: unknown) => this.options.logger.warn({ err: error }, 'removing this node from the registry failed'));
  }

  /** Ids of the nodes whose heartbeat is younger than the lease (this one included). */
  async aliveNodes(): Promise<string[]> {
    const nodes = await this.options.db.client.node.findMany({ where: { heartbeatAt: { gt: this.cutoff() } }, select: { id: true } });
    return nodes.map((node) => node.id);
  }

  /**
   * Whether `nodeId` still holds its runs. False at once when its heartbeat is stale or it has no row;
   * otherwise waits until its heartbeat would be stale had it died, and says whether it beat since.
   */
  async stillAlive(nodeId: string): Promise<boolean> {
    const seen = await this.heartbeatOf(nodeId);
    if (!seen) return false;
    const staleIn = seen.getTime() + this.options.leaseMs - Date.now();
    if (staleIn <= 0) return false;
    await delay(staleIn + 100);
    const again = await this.heartbeatOf(nodeId);
    return again !== null && again.getTime() > seen.getTime();
  }

  /** Every registered node with the active runs it holds, for Query.cluster. */
  async list(): Promise<ClusterNodeInfo[]> {
    const { db } = this.options;
    const [nodes, runs] = await Promise.all([
      db.client.node.findMany({ orderBy: [{ startedAt: 'asc' }, { id: 'asc' }] }),
      db.client.run.findMany({ where: { workerId: { not: null }, status: { in: [...ACTIVE_RUN_STATUSES] } }, orderBy: [{ createdAt: 'asc' }, { id: 'asc' }], select: { id: true, workerId: true } }),
    ]);
    const cutoff = this.cutoff().getTime();
    return nodes.map((node) => ({ ...node, alive: node.heartbeatAt.getTime() > cutoff, runIds: runs.filter((run) => run.workerId === node.id).map((run) => run.id) }));
  }

  private async heartbeat(): Promise<void> {
    const { db, nodeId, role } = this.options;
    const now = new Date();
    // An upsert: a node removed by an operator (or a restore) comes back with its next beat.
    await db.write(async (tx) => {
      await tx.node.upsert({ where: { id: nodeId }, create: { id: nodeId, role, startedAt: now, heartbeatAt: now }, update: { heartbeatAt: now } });
      // Nodes that died long ago are forgotten, so the registry stays as small as the cluster (their runs were swept long since).
      await tx.node.deleteMany({ where: { heartbeatAt: { lt: new Date(now.getTime() - FORGET_DEAD_NODE_MS) } } });
    });
  }

  private cutoff(): Date {
    return new Date(Date.now() - this.options.leaseMs);
  }

  private async heartbeatOf(nodeId: string): Promise<Date | null> {
    return (await this.options.db.client.node.findUnique({ where: { id: nodeId }, select: { heartbeatAt: true } }))?.heartbeatAt ?? null;
  }

  /** Runs `task` every `ms`, logging its failures; timers never keep the process alive. */
  private every(ms: number, task: () => Promise<void>): void {
    const timer = setInterval(() => {
      if (this.stopped) return;
      const running = task().catch((error: unknown) => this.options.logger.warn({ err: error }, 'a node registry task failed'));
      this.tasks.add(running);
      void running.finally(() => this.tasks.delete(running));
    }, ms);
    timer.unref();
    this.timers.push(timer);
  }
}

/**
 * How a process joins a cluster (`DATABASE_URL=postgresql://…` with `REDIS_URL`): loaded by the server
 * only then, so the embedded default never loads the cluster's clients.
 */
import type { Config } from '../config.js';
import type { Logger } from '../log.js';
import type { Database } from '../orchestrator/db.js';
import type { RepositoryInfo } from '../orchestrator/git.js';
import type { ReadinessOptions } from '../orchestrator/health.js';
import type { Orchestrator, OrchestratorClusterOptions } from '../orchestrator/index.js';
import { RemoteWorkspaces } from '../orchestrator/remote-workspaces.js';
import { BullRunQueue } from './bull-run-queue.js';
import { createClusterBus, storeReaders, type ClusterBus } from './index.js';

/** What makes this process a node of a cluster: its Redis bus and run control, its clone of the remote, its run queue. */
export interface ClusterNode {
  bus: ClusterBus;
  workspaces: RemoteWorkspaces;
  repository: RepositoryInfo;
  orchestrator: OrchestratorClusterOptions;
  /** /readyz's checks of the repository (this node's clone), Redis and the run queue. */
  readiness: Pick<ReadinessOptions, 'checkRepository' | 'more'>;
  close(): Promise<void>;
}

/**
 * Joins the cluster that `config` names: the Redis bus (its relays read the logs of the orchestrator
 * built next, hence `store`), this node's clone of the remote of record, and the BullMQ run queue
 * with RUNBOARD_MAX_CONCURRENT_RUNS per worker. Rejects (closing what it opened) if Redis or the remote fails.
 */
export async function joinCluster(config: Config, db: Database, logger: Logger, store: () => Orchestrator): Promise<ClusterNode> {
  const bus = await createClusterBus({ redisUrl: config.redisUrl!, nodeId: config.nodeId, logger, readers: storeReaders(store) });
  let workspaces: RemoteWorkspaces;
  let repository: RepositoryInfo;
  try {
    workspaces = await RemoteWorkspaces.open({
      db,
      dataDir: config.dataDir,
      remote: config.repo,
      withLock: (name, fn) => db.withLock(name, fn),
      askOwner: (runId, maxBytes) => bus.control.send(runId, { kind: 'uncommitted', maxBytes }),
      logger,
    });
    repository = await workspaces.repositoryInfo();
  } catch (error) {
    await bus.close();
    throw error;
  }
  const queue = new BullRunQueue({ redisUrl: config.redisUrl!, nodeId: config.nodeId, leaseMs: config.leaseMs, concurrency: config.maxConcurrentRuns, logger });
  return {
    bus,
    workspaces,
    repository,
    orchestrator: { nodeId: config.nodeId, role: config.role, leaseMs: config.leaseMs, queue, control: bus.control },
    readiness: { checkRepository: () => workspaces.repositoryInfo(), more: { redis: () => bus.ping(), queue: () => queue.ping() } },
    close: () => bus.close(),
  };
}

/**
 * The orchestrator: everything runboard does, with no GraphQL in it. The schema layer translates
 * GraphQL into calls on this object.
 */
import type { AgentCatalog } from './agent-catalog.js';
import { createLogger, type Logger } from '../log.js';
import { requireOperator, type Actor } from './actor.js';
import { Board } from './board.js';
import type { BoardLog, BoardEventRecord, BoardLogTopics } from './board-log.js';
import { ConflictError } from './errors.js';
import { isActive } from './run-status.js';
import type { Database } from './db.js';
import type { EventLog, RunEvent, RunEventTopics } from './event-log.js';
import { createLogs } from './logs.js';
import { followBoardEventBatches, followBoardEvents, followRunEventBatches, followRunEvents, followRunUpdates } from './event-stream.js';
import type { RepositoryInfo } from './git.js';
import { Playtests } from './playtest.js';
import { NodeRegistry, type ClusterNodeInfo, type NodeRole } from './nodes.js';
import { InMemoryPubSub, type CountingPubSub } from './pubsub.js';
import type { RunControl } from './run-control.js';
import type { RunQueue } from './run-queue.js';
import { Runs, type RunTopics } from './runs.js';
import type { MergeStrategy } from './git.js';
import { Workspaces, type MergeRunResult } from './workspaces.js';
import { WorktreeHosts } from './worktree-hosts.js';

export interface OrchestratorOptions {
  db: Database;
  /** The main checkout, as `openRepository` found it at start-up. */
  repository: RepositoryInfo;
  /** Where worktrees, sessions and logs live. */
  dataDir: string;
  /** The agents runs may use (src/agents builds it from the configuration). */
  agents: AgentCatalog;
  /** Added to the server's environment for every agent. */
  agentEnv?: Readonly<Record<string, string>>;
  /** @default 4 */
  maxConcurrentRuns?: number;
  /** The playtest command as an argument array. @default ['cargo', 'run'] */
  playtestCommand?: readonly string[] | null;
  /** Where the orchestrator reports failures it handles itself. @default a silent logger */
  logger?: Logger;
  /** Where persisted events and run updates are published: in cluster mode the Redis bus (src/cluster/). @default in memory */
  bus?: CountingPubSub<Topics>;
  /** Runs' git workspaces: in cluster mode a RemoteWorkspaces (remote-workspaces.ts). @default the main checkout's */
  workspaces?: Workspaces;
  /** Cluster mode: the node's identity and the shared queue and run control (the composition root builds them). @default embedded */
  cluster?: OrchestratorClusterOptions;
}

/** What makes an orchestrator one node of a cluster. */
export interface OrchestratorClusterOptions {
  /** This node's id (--node-id): names it in the registry and on the runs it claims. */
  nodeId: string;
  /** Only worker and all nodes take runs from the queue and sweep expired leases. */
  role: NodeRole;
  /** A worker's lease on its runs. @default 30_000 // ms */
  leaseMs: number;
  /** The shared run queue (src/cluster/bull-run-queue.ts); Runs closes it at shutdown. */
  queue: RunQueue;
  /** Commands to whichever node drives a run; its owner (the composition root) closes it. */
  control: RunControl;
}

export type Topics = RunEventTopics & RunTopics & BoardLogTopics;

export class Orchestrator {
  readonly db: Database;
  readonly repository: RepositoryInfo;
  readonly dataDir: string;
  /** Where run events and run updates are published, after they are persisted. */
  readonly bus: CountingPubSub<Topics>;
  readonly eventLog: EventLog;
  /** Every board change with a global seq (board-log.ts). */
  readonly boardLog: BoardLog;
  readonly board: Board;
  readonly workspaces: Workspaces;
  readonly runs: Runs;
  readonly playtests: Playtests;
  /** Playtests and worktree removal, carried out by the node that holds the run's worktree. */
  readonly worktrees: WorktreeHosts;
  readonly agents: AgentCatalog;
  /** Cluster mode only: this node's heartbeat and the registry Query.cluster reads. */
  readonly nodes: NodeRegistry | null;
  private readonly startedAt = new Date();

  constructor(options: OrchestratorOptions) {
    this.db = options.db;
    this.repository = options.repository;
    this.dataDir = options.dataDir;
    this.agents = options.agents;
    this.bus = options.bus ?? new InMemoryPubSub<Topics>();
    ({ boardLog: this.boardLog, eventLog: this.eventLog } = createLogs(options.db, this.bus));
    const logger = options.logger ?? createLogger({ level: 'silent' });
    this.board = new Board(options.db, this.boardLog, this.eventLog);
    this.workspaces = options.workspaces ?? new Workspaces(options.db, options.repository.root, options.dataDir);
    const cluster = options.cluster;
    const workspaces = this.workspaces;
    this.playtests = new Playtests({
      db: options.db,
      eventLog: this.eventLog,
      command: options.playtestCommand?.length ? options.playtestCommand : ['cargo', 'run'],
      worktreeOf: (runId) => workspaces.localWorktree(runId),
      nodeId: cluster?.nodeId ?? null,
      logger,
    });
    this.worktrees = new WorktreeHosts({
      db: options.db,
      playtests: this.playtests,
      workspaces: this.workspaces,
      logger,
      ...(cluster ? { cluster: { nodeId: cluster.nodeId, holdsWorktrees: cluster.role !== 'api', control: cluster.control } } : {}),
    });
    this.nodes = cluster
      ? new NodeRegistry({ db: options.db, nodeId: cluster.nodeId, role: cluster.role, leaseMs: cluster.leaseMs, logger, sweep: async () => {
          await this.runs.fenceLost();
          await this.runs.interruptExpired();
          await this.playtests.endLost(await this.nodes!.aliveNodes());
        } })
      : null;
    const nodes = this.nodes;
    this.runs = new Runs({
      worktrees: this.worktrees,
      db: options.db,
      eventLog: this.eventLog,
      bus: this.bus,
      workspaces: this.workspaces,
      repoRoot: options.repository.root,
      dataDir: options.dataDir,
      agents: options.agents,
      agentEnv: options.agentEnv,
      maxConcurrentRuns: options.maxConcurrentRuns,
      logger,
      ...(cluster && nodes
        ? {
            queue: cluster.queue,
            control: cluster.control,
            cluster: { nodeId: cluster.nodeId, consumes: cluster.role !== 'api', aliveNodes: () => nodes.aliveNodes(), stillAlive: (id: string) => nodes.stillAlive(id) },
          }
        : {}),
    });
  }

  /**
   * A run's events with seq > since: history, then live, once each, until the consumer leaves or, with
   * `untilSettled`, until the run and its playtest are done (see event-stream.ts). NotFoundError for an
   * unknown run; InvalidInputError for a `since` past its last seq.
   */
  followRunEvents(runId: string, since: number, untilSettled = false): Promise<AsyncGenerator<RunEvent>> {
    return followRunEvents(this.db, this.eventLog, this.bus, runId, this.runFollowOptions(since, untilSettled));
  }

  /** `followRunEvents` a list at a time: history in batches of up to MAX_BATCH, then what is buffered at each pull. */
  followRunEventBatches(runId: string, since: number, untilSettled = false, perMessage?: number): Promise<AsyncGenerator<RunEvent[]>> {
    return followRunEventBatches(this.db, this.eventLog, this.bus, runId, { ...this.runFollowOptions(since, untilSettled), perMessage });
  }

  private runFollowOptions(since: number, untilSettled: boolean) {
    return { since, untilSettled };
  }

  /** Board events with seq > since: history, then live, once each (see event-stream.ts). InvalidInputError for a `since` past the last seq. */
  followBoardEvents(since: number): Promise<AsyncGenerator<BoardEventRecord>> {
    return followBoardEvents(this.boardLog, this.bus, since);
  }

  /** `followBoardEvents` a list at a time: history in batches of up to MAX_BATCH, then what is buffered at each pull. */
  followBoardEventBatches(since: number, perMessage?: number): Promise<AsyncGenerator<BoardEventRecord[]>> {
    return followBoardEventBatches(this.boardLog, this.bus, since, { perMessage });
  }

  /** Ids of runs as their status changes, for one card or all (null); see event-stream.ts. */
  followRunUpdates(cardId: string | null): AsyncGenerator<string> {
    return followRunUpdates(this.bus, cardId);
  }

  /** Start-up reconciliation with what is on disk and what an earlier server left running, then the queue resumes. */
  async start(): Promise<void> {
    await this.workspaces.reconcile();
    await this.recoverInterruptedMerge(true);
    if (this.nodes) {
      // In a cluster, recovery touches only runs whose lease expired, and this node's own playtests.
      await this.nodes.start();
      await this.worktrees.serve();
      await Promise.all([this.runs.recover(), this.playtests.recover()]);
      return;
    }
    await Promise.all([this.runs.recover(), this.playtests.recover()]);
  }

  /**
   * The nodes of the cluster with the runs each holds, for Query.cluster. Embedded, this process is
   * the one node, holding its STARTING and RUNNING runs.
   */
  async clusterNodes(): Promise<ClusterNodeInfo[]> {
    if (this.nodes) return this.nodes.list();
    const runs = await this.db.client.run.findMany({ where: { status: { in: ['STARTING', 'RUNNING'] } }, orderBy: [{ createdAt: 'asc' }, { id: 'asc' }], select: { id: true } });
    return [{ id: 'embedded', role: 'all', startedAt: this.startedAt, heartbeatAt: new Date(), alive: true, runIds: runs.map((run) => run.id) }];
  }

  /**
   * A merge interrupted while it touched main (the last server stopped, or git failed half way):
   * main is now merged or as it was, and the run gets a `merge` event saying which (with
   * `interrupted: true`), and `mergedSha` if merged.
   */
  private async recoverInterruptedMerge(atStartUp: boolean): Promise<void> {
    const found = await this.workspaces.findInterruptedMerge({ atStartUp });
    if (!found || found.outcome.state === 'BUSY') return; // BUSY: a live git still holds main; the next start looks again
    const { runId, strategy, plan, outcome } = found;
    const merged = outcome.state === 'MERGED';
    const run = await this.db.client.run.findUnique({ where: { id: runId }, select: { cardId: true, status: true } });
    if (run) {
      const data = { ok: merged, sha: merged ? plan.mergeSha : null, strategy, interrupted: true, conflictingPaths: outcome.keptPaths.slice(0, 100), message: outcome.message };
      await this.eventLog.append(runId, [{ type: 'merge', data }], merged ? { mergedSha: plan.mergeSha } : {});
      this.bus.publish('run-updated', run.cardId, { runId, cardId: run.cardId, status: run.status });
    }
    await this.workspaces.settleInterruptedMerge();
  }

  /**
   * Deletes a card with its comments, references and runs. Runs go through `Runs.delete`, so their
   * playtests stop and the worktrees they own are removed. CONFLICT while any of its runs is active.
   * Operator only.
   */
  async deleteCard(actor: Actor, cardId: string): Promise<void> {
    requireOperator(actor, 'delete cards');
    const runs = await this.db.client.run.findMany({ where: { cardId }, select: { id: true, status: true, ownsWorktree: true } });
    const active = runs.filter((run) => isActive(run.status));
    if (active.length) throw new ConflictError(`card ${cardId} has ${active.length} active run(s); stop them before deleting it`);
    // Refinements first: they work in their owners' worktrees.
    for (const run of [...runs].sort((a, b) => Number(a.ownsWorktree) - Number(b.ownsWorktree))) await this.runs.delete(run.id);
    await this.board.deleteCard(actor, cardId);
  }

  /**
   * Merges a settled run into the main checkout (see Workspaces.merge) and records the outcome as a
   * `merge` event on the run, so the merge shows in its stream like everything else it did.
   */
  async mergeRun(runId: string, strategy: MergeStrategy): Promise<MergeRunResult> {
    await this.recoverInterruptedMerge(false);
    const result = await this.workspaces.merge(runId, strategy);
    const { sha, ok, conflictingPaths, message } = result;
    await this.eventLog.append(runId, [{ type: 'merge', data: { ok, sha, strategy, conflictingPaths: conflictingPaths.slice(0, 100), message } }]);
    if (ok) {
      const run = await this.db.client.run.findUniqueOrThrow({ where: { id: runId }, select: { cardId: true, status: true } });
      this.bus.publish('run-updated', run.cardId, { runId, cardId: run.cardId, status: run.status });
    }
    return result;
  }

  /** What shutdown will have to stop, for the operator's benefit. */
  activeWork(): { agents: number; playtests: number } {
    return { agents: this.runs.activeCount, playtests: this.playtests.activeCount };
  }

  /** Ends every agent (their runs become INTERRUPTED) and every playtest, then closes the database. */
  async shutdown(): Promise<void> {
    await this.worktrees.close();
    await Promise.all([this.runs.shutdown(), this.playtests.shutdown()]);
    await this.nodes?.stop();
    await this.db.close();
  }
}

/**
 * What needs a run's worktree on disk (a playtest, removing the worktree) is carried out by the node
 * that holds it. Embedded, that is this process. In a cluster it is the worker that last drove a run
 * on the worktree's branch (a refinement on another worker re-creates the worktree there), reached
 * through run control at `nodeTarget(its id)`; a playtest is stopped on the node that runs it.
 */
import type { Database } from './db.js';
import { ConflictError } from './errors.js';
import type { Logger } from '../log.js';
import type { Playtests } from './playtest.js';
import { nodeTarget, type RunControl, type WorktreeCommand } from './run-control.js';
import type { Workspaces } from './workspaces.js';

export interface WorktreeHostsOptions {
  db: Database;
  playtests: Playtests;
  workspaces: Workspaces;
  logger: Logger;
  /** Cluster mode: this node, whether it holds worktrees (workers do), and run control to reach the others. @default embedded */
  cluster?: { nodeId: string; holdsWorktrees: boolean; control: RunControl };
}

export class WorktreeHosts {
  private release: (() => Promise<void>) | null = null;

  constructor(private readonly options: WorktreeHostsOptions) {}

  /** Cluster workers: from now on, other nodes' worktree commands reach this node. */
  async serve(): Promise<void> {
    const cluster = this.options.cluster;
    if (!cluster?.holdsWorktrees || this.release) return;
    this.release = await cluster.control.serve(nodeTarget(cluster.nodeId), (command) => this.carryOut(command as WorktreeCommand));
  }

  async close(): Promise<void> {
    await this.release?.();
    this.release = null;
  }

  /** Starts the run's playtest where its worktree is. CONFLICT when one runs, or no live node has the worktree. */
  async startPlaytest(runId: string): Promise<void> {
    await this.send(await this.holderOf(runId), { kind: 'startPlaytest', runId });
  }

  /** Stops the run's playtest on the node that runs it. CONFLICT when none runs (unless `ifRunning`). */
  async stopPlaytest(runId: string, ifRunning = false): Promise<void> {
    const cluster = this.options.cluster;
    if (!cluster) return void (await this.carryOut({ kind: 'stopPlaytest', runId, ifRunning }));
    const run = await this.options.db.client.run.findUnique({ where: { id: runId }, select: { playtestNodeId: true, playtestEndedAt: true, playtestStartedAt: true } });
    const node = run?.playtestStartedAt && !run.playtestEndedAt ? run.playtestNodeId : null;
    if (!node) {
      if (ifRunning) return;
      throw new ConflictError(`run ${runId} has no playtest running`);
    }
    await this.send(node, { kind: 'stopPlaytest', runId, ifRunning });
  }

  /**
   * Removes the worktree a run owns, on the node that holds it. In a cluster, a holder that is not
   * running leaves its copy on its own disk (logged): the pushed branch is the record.
   */
  async removeWorktree(runId: string): Promise<void> {
    if (!this.options.cluster) return void (await this.carryOut({ kind: 'removeWorktree', runId }));
    let holder: string | null;
    try {
      holder = await this.holderOf(runId);
    } catch (error) {
      if (error instanceof ConflictError) return; // no worker ever made it
      throw error;
    }
    const outcome = await this.deliver(holder, { kind: 'removeWorktree', runId });
    if (!outcome) this.options.logger.warn({ runId, node: holder }, `run ${runId}'s worktree stays on node ${holder}, which is not running`);
  }

  /** The node whose disk has the run's worktree (null embedded: this process). CONFLICT when no worker ever made it. */
  private async holderOf(runId: string): Promise<string | null> {
    if (!this.options.cluster) return null;
    const run = await this.options.db.client.run.findUnique({ where: { id: runId }, select: { branch: true, workerId: true } });
    if (!run) return null; // carried out here, where it is NOT_FOUND
    const latest = run.branch
      ? await this.options.db.client.run.findFirst({ where: { branch: run.branch, workerId: { not: null } }, orderBy: [{ startedAt: { sort: 'desc', nulls: 'last' } }, { createdAt: 'desc' }], select: { workerId: true } })
      : null;
    const holder = latest?.workerId ?? run.workerId;
    if (!holder) throw new ConflictError(`run ${runId} has no worktree on any worker yet`);
    return holder;
  }

  /** Here when `node` is null or this node, else on `node`: CONFLICT when that node is not running. */
  private async send(node: string | null, command: WorktreeCommand): Promise<void> {
    if (await this.deliver(node, command)) return;
    throw new ConflictError(
      command.kind === 'stopPlaytest'
        ? `node ${node}, which runs run ${command.runId}'s playtest, is not running; the playtest is recorded as ended once its lease expires`
        : `node ${node}, which has run ${command.runId}'s worktree, is not running; refine the run to continue its branch on another worker`,
    );
  }

  /** Carries the command out here or on `node`; false when `node` is not running. */
  private async deliver(node: string | null, command: WorktreeCommand): Promise<boolean> {
    const cluster = this.options.cluster;
    if (!cluster || node === null || (node === cluster.nodeId && cluster.holdsWorktrees)) {
      await this.carryOut(command);
      return true;
    }
    return (await cluster.control.send(nodeTarget(node), command)).delivered;
  }

  /** The holder's side. */
  private async carryOut(command: WorktreeCommand): Promise<null> {
    switch (command.kind) {
      case 'startPlaytest':
        await this.options.playtests.start(command.runId);
        break;
      case 'stopPlaytest':
        if (command.ifRunning) await this.options.playtests.stopIfRunning(command.runId);
        else await this.options.playtests.stop(command.runId);
        break;
      case 'removeWorktree':
        await this.options.playtests.stopIfRunning(command.runId);
        await this.options.workspaces.remove(command.runId);
        break;
    }
    return null;
  }
}

/**
 * Workspaces in cluster mode: the repository of record is a git remote, and this node works in its
 * own bare clone under its data dir (git.ts, "A node's clone of the remote of record"). Nothing here
 * assumes another node's filesystem:
 * - a run's worktree is created from the remote's base branch as fetched, and its branch is pushed
 *   at once, as the agent commits (`publishSoon`: checked on its activity, throttled) and when the
 *   run settles;
 * - review reads fetch the run's branch and base (throttled, in the review pool and budget) and read
 *   them as pushed, so every node gives the same answer;
 * - uncommitted work is asked of the worker whose agent works in the worktree (`askOwner`), and is
 *   unavailable (null) while none does;
 * - a merge is serialized cluster-wide (`withLock`), computed in the clone and pushed normally;
 * - a refine on a worker without the worktree re-creates it from the pushed branch.
 * Worktree paths are this node's own: `<data dir>/worktrees/<last segment of the branch>`, whatever
 * path the run's row recorded on the node that made it.
 */
import path from 'node:path';
import type { Logger } from '../log.js';
import type { Database } from './db.js';
import { ConflictError, NotFoundError } from './errors.js';
import * as git from './git.js';
import { KeyedMutex } from './lock.js';
import { ACTIVE_RUN_STATUSES } from './run-status.js';
import { hasBranch, mergeMessage, Workspaces, WORKSPACE_SELECT, type BranchedRun, type InterruptedMerge, type MergeRunResult, type RunWorkspaceRef } from './workspaces.js';

/** After a check (and push) of a run's branch, the agent's activity waits this long for the next one. @default 500 // ms */
export const PUBLISH_THROTTLE_MS = 500;
/** A review read reuses a fetch of the same branch this recent, or still running. @default 2_000 // ms */
export const REVIEW_FETCH_THROTTLE_MS = 2_000;
/** Branches whose last fetch time is remembered for the throttle; older entries are dropped beyond this. @default 1_000 */
const MAX_REMEMBERED_FETCHES = 1_000;

/** What a RunControl 'uncommitted' command came back with: `{ delivered: false }` when no process serves the run. */
export type OwnerAnswer = { delivered: true; result: unknown } | { delivered: false };

/** How a node reaches the remote of record and the rest of the cluster. */
export interface RemoteWorkspacesOptions {
  db: Database;
  /** This node's data dir: its clone is `<dataDir>/repository.git`, its worktrees `<dataDir>/worktrees`. */
  dataDir: string;
  /** The remote of record: a URL or a path to a bare or non-bare repository. */
  remote: string;
  /** The branch runs start from and merge into. @default the remote's default branch (its HEAD) */
  baseBranch?: string | null;
  /** Cluster-wide mutual exclusion (Database.withLock: a Postgres advisory lock). */
  withLock: <T>(name: string, fn: () => Promise<T>) => Promise<T>;
  /**
   * Sends the RunControl 'uncommitted' command to whoever drives `runId` (its handler calls
   * `uncommittedHere`). Without it, uncommitted work is only read from worktrees on this node.
   */
  askOwner?: (runId: string, maxBytes: number | null) => Promise<OwnerAnswer>;
  /** Where failed background pushes are reported. */
  logger?: Logger;
  /** @default PUBLISH_THROTTLE_MS // ms */
  publishThrottleMs?: number;
  /** @default REVIEW_FETCH_THROTTLE_MS // ms */
  reviewFetchThrottleMs?: number;
}

export class RemoteWorkspaces extends Workspaces {
  /** The remote of record, as the clone names it (a path made absolute). */
  readonly remote: string;
  readonly baseBranch: string;
  private readonly clone: git.CloneInfo;
  private readonly options: RemoteWorkspacesOptions;
  /** One publish of a run's branch at a time; each is cheap when the branch has not moved. */
  private readonly publishing = new KeyedMutex();
  /** Runs whose branch was checked less than PUBLISH_THROTTLE_MS ago, and whether activity came since. */
  private readonly publishCooldowns = new Map<string, { timer: NodeJS.Timeout; pending: boolean }>();
  /** Review fetches by the branches fetched: when the last one started, and its promise. */
  private readonly fetches = new Map<string, { at: number; done: Promise<void> }>();

  private constructor(options: RemoteWorkspacesOptions, clone: git.CloneInfo, baseBranch: string) {
    super(options.db, clone.clonePath, options.dataDir);
    this.options = options;
    this.remote = clone.remote;
    this.clone = clone;
    this.baseBranch = baseBranch;
  }

  /**
   * Opens (or makes) this node's clone of the remote and fetches the base branch. ConflictError
   * when the remote has no such branch (or names no default one); a GitError when it is unreachable.
   */
  static async open(options: RemoteWorkspacesOptions): Promise<RemoteWorkspaces> {
    const clone = await git.openClone(options.remote, path.join(options.dataDir, 'repository.git'));
    const baseBranch = options.baseBranch ?? (await git.remoteDefaultBranch(clone));
    if (!baseBranch) throw new ConflictError(`${clone.remote} names no default branch; configure the base branch`);
    const missing = await git.fetchBranches(clone, [baseBranch]);
    if (missing.length) throw new ConflictError(`${clone.remote} has no branch ${baseBranch}`);
    return new RemoteWorkspaces(options, clone, baseBranch);
  }

  /** The repository as the orchestrator describes it: this node's clone, on the base branch as last fetched. */
  async repositoryInfo(): Promise<git.RepositoryInfo> {
    const headSha = await git.trackingSha(this.repoRoot, this.baseBranch);
    if (!headSha) throw new ConflictError(`${this.remote} has no branch ${this.baseBranch}`);
    return { root: this.repoRoot, branch: this.baseBranch, headSha };
  }

  /** This node's worktree of a branch, wherever the run's row says the worktree was made. */
  private localPath(branch: string): string {
    return git.worktreePathFor(this.worktreesDir, branch);
  }

  // -- worktrees ----------------------------------------------------------------------------------

  /** The run's worktree, on a new branch from the remote's base branch as fetched now; the branch is pushed at once. */
  override async create(runId: string): Promise<git.CreatedWorktree> {
    const run = await this.db.client.run.findUnique({ where: { id: runId }, select: { card: { select: { title: true } } } });
    if (!run) throw new NotFoundError('Run', runId);
    if ((await git.fetchBranches(this.clone, [this.baseBranch])).length) throw new ConflictError(`${this.remote} has no branch ${this.baseBranch}`);
    const start = { branch: this.baseBranch, sha: (await git.trackingSha(this.repoRoot, this.baseBranch))! };
    const created = await git.createWorktree({ repoRoot: this.repoRoot, worktreesDir: this.worktreesDir, title: run.card.title, runId, start });
    await this.recordWorktree(runId, created);
    // On the remote from the start, so any node can review it (an empty diff) before the first commit.
    await this.push(created.branch);
    return created;
  }

  /** A refinement's worktree on this worker: kept if here and current, brought forward, or re-created from the pushed branch. */
  override async worktreeFor(runId: string): Promise<string> {
    const run = await this.db.client.run.findUnique({ where: { id: runId }, select: { branch: true, worktreePath: true } });
    if (!run) throw new NotFoundError('Run', runId);
    if (!run.branch) throw new ConflictError('the run to refine has no branch to continue');
    if ((await git.fetchBranches(this.clone, [run.branch])).length) throw new ConflictError(`branch ${run.branch} is not on the remote`);
    const worktreePath = await git.worktreeFromRemote({ clonePath: this.repoRoot, worktreesDir: this.worktreesDir, branch: run.branch });
    if (worktreePath !== run.worktreePath) {
      await this.db.write((tx) => tx.run.update({ where: { id: runId }, data: { worktreePath, worktreeMissing: false } }));
    }
    return worktreePath;
  }

  /** This node's worktree of the run's branch, if it has one. */
  override async localWorktree(runId: string): Promise<string | null> {
    const run = await this.db.client.run.findUnique({ where: { id: runId }, select: { branch: true } });
    if (!run) throw new NotFoundError('Run', runId);
    if (!run.branch) return null;
    const worktreePath = this.localPath(run.branch);
    return (await git.worktreeExists(worktreePath)) ? worktreePath : null;
  }

  /** Any worker can make the worktree from the pushed branch, so a run with a branch can be refined. */
  override async canRefineIn(run: Pick<RunWorkspaceRef, 'branch' | 'worktreePath'>): Promise<boolean> {
    return run.branch !== null;
  }

  /** Removes this node's worktree of a run that owns one; its local branch goes too once merged into the base branch. The remote's branch stays. */
  override async remove(runId: string): Promise<git.RemovedWorktree | null> {
    const run = await this.db.client.run.findUnique({ where: { id: runId }, select: { ...WORKSPACE_SELECT, ownsWorktree: true } });
    if (!run) throw new NotFoundError('Run', runId);
    if (!run.ownsWorktree || !run.branch) return null;
    const base = run.baseBranch ?? this.baseBranch;
    const against = (await git.trackingSha(this.repoRoot, base)) ? git.trackingRef(base) : (run.baseSha ?? undefined);
    return git.removeWorktree({ repoRoot: this.repoRoot, path: this.localPath(run.branch), branch: run.branch, against });
  }

  /**
   * Start-up: forgets worktrees whose directories are gone. Flags nothing: a worktree lives on one
   * node and the pushed branch is the record, so "missing here" says nothing about the run.
   */
  override async reconcile(): Promise<string[]> {
    await git.pruneWorktrees(this.repoRoot);
    return [];
  }

  // -- publishing a run's branch --------------------------------------------------------------------

  /**
   * The agent did something (it may have committed): check the branch at once, and push it if it
   * moved; activity within the next PUBLISH_THROTTLE_MS leads to one more check when it is over.
   */
  override publishSoon(runId: string): void {
    const cooling = this.publishCooldowns.get(runId);
    if (cooling) {
      cooling.pending = true;
      return;
    }
    const entry = {
      pending: false,
      timer: setTimeout(() => {
        this.publishCooldowns.delete(runId);
        if (entry.pending) this.publishSoon(runId);
      }, this.options.publishThrottleMs ?? PUBLISH_THROTTLE_MS),
    };
    entry.timer.unref();
    this.publishCooldowns.set(runId, entry);
    this.publish(runId).catch((error: unknown) => this.options.logger?.warn({ err: error, runId }, `pushing run ${runId}'s branch failed; its next activity or its end tries again`));
  }

  /** Pushes the run's branch now if it moved since the last push (at settle; `publishSoon` in between). */
  override async publishBranch(runId: string): Promise<void> {
    clearTimeout(this.publishCooldowns.get(runId)?.timer);
    this.publishCooldowns.delete(runId);
    return this.publish(runId);
  }

  private publish(runId: string): Promise<void> {
    return this.publishing.run(runId, async () => {
      const run = await this.db.client.run.findUnique({ where: { id: runId }, select: { branch: true } });
      if (run?.branch) await this.push(run.branch);
    });
  }

  /**
   * Pushes the local branch if it differs from what was last pushed, replacing the remote's only if
   * that is still what we last saw (an agent may amend; another node's newer push is never lost).
   */
  private async push(branch: string): Promise<void> {
    const { local, pushed } = await git.branchTips(this.repoRoot, branch);
    if (!local || local === pushed) return;
    const { outcome, detail } = await git.pushCommit({ clone: this.clone, sha: local, branch, expect: pushed });
    if (outcome === 'REJECTED_STALE') throw new ConflictError(`branch ${branch} on the remote was moved by someone else; this node's commits were not pushed`);
    if (outcome !== 'PUSHED' && outcome !== 'UP_TO_DATE') throw new ConflictError(`the remote refused branch ${branch}: ${detail}`);
  }

  // -- review, from the branch as pushed ----------------------------------------------------------

  /** Fetches `branches`, unless a fetch of the same ones started less than REVIEW_FETCH_THROTTLE_MS ago (or still runs). */
  private refresh(branches: readonly string[]): Promise<void> {
    const throttleMs = this.options.reviewFetchThrottleMs ?? REVIEW_FETCH_THROTTLE_MS;
    const key = branches.join('\0');
    const now = Date.now();
    const known = this.fetches.get(key);
    if (known && now - known.at < throttleMs) return known.done;
    if (this.fetches.size >= MAX_REMEMBERED_FETCHES) {
      for (const [old, entry] of this.fetches) if (now - entry.at >= throttleMs) this.fetches.delete(old);
    }
    const done = git.fetchBranches(this.clone, branches).then(() => undefined);
    const entry = { at: now, done };
    this.fetches.set(key, entry);
    // A failed fetch is not reused: the next read tries again.
    done.catch(() => this.fetches.get(key) === entry && this.fetches.delete(key));
    return done;
  }

  /** `read` over the run's branch as pushed, fetched first, all in one review read. */
  private reviewPushed<T>(run: BranchedRun, what: string, read: (range: git.BranchRange) => Promise<T>): Promise<T> {
    return git.reviewRead(what, async () => {
      await this.refresh([run.branch, run.baseBranch ?? this.baseBranch]);
      return read({ repoRoot: this.repoRoot, branch: run.branch, base: run.baseSha, tracking: true });
    });
  }

  /** The base branch as last fetched from the remote: there is no main checkout in cluster mode. */
  override async repositoryStatus(): Promise<git.RepositoryStatus> {
    const headSha = await git.reviewRead(`the remote's ${this.baseBranch}`, async () => {
      await this.refresh([this.baseBranch]);
      return git.trackingSha(this.repoRoot, this.baseBranch);
    });
    if (!headSha) throw new ConflictError(`${this.remote} has no branch ${this.baseBranch}`);
    const dirty = { staged: [], unstaged: [], untracked: [], conflicted: [], counts: { staged: 0, unstaged: 0, untracked: 0, conflicted: 0 } };
    return { root: this.remote, branch: this.baseBranch, headSha, state: 'CLEAN', dirty };
  }

  override async commits(run: RunWorkspaceRef, limit?: number): Promise<git.CommitInfo[] | null> {
    if (!hasBranch(run)) return null;
    return this.reviewPushed(run, `the commits of ${run.branch}`, async (range) => (await git.commitsAhead({ ...range, limit })).commits);
  }

  /** Against the remote's base branch as fetched now. */
  override async aheadBehind(run: RunWorkspaceRef): Promise<{ ahead: number; behind: number } | null> {
    if (!hasBranch(run)) return null;
    return this.reviewPushed(run, `how far ${run.branch} is ahead and behind`, async (range) => {
      const base = run.baseBranch ?? this.baseBranch;
      const baseAlive = (await git.trackingSha(this.repoRoot, base)) !== null;
      return git.aheadBehind({ ...range, base: baseAlive ? git.trackingRef(base) : run.baseSha });
    });
  }

  override async diff(run: RunWorkspaceRef, maxBytes?: number | null): Promise<git.DiffResult | null> {
    if (!hasBranch(run)) return null;
    return this.reviewPushed(run, `the diff of ${run.branch}`, (range) => git.diff({ ...range, maxBytes: maxBytes ?? undefined }));
  }

  override async fileDiff(run: RunWorkspaceRef, filePath: string, maxBytes?: number | null): Promise<git.FileDiff | null> {
    if (!hasBranch(run)) return null;
    return this.reviewPushed(run, `the diff of ${filePath} on ${run.branch}`, (range) => git.fileDiff({ ...range, path: filePath, maxBytes: maxBytes ?? undefined }));
  }

  /**
   * Uncommitted work in the run's worktree, from the worker whose agent works there now (the run, or
   * an active refinement on its branch); else from this node's own worktree of the branch, if any.
   * Null while no worker holds it: the work lives on a disk no other node sees.
   */
  override async uncommitted(run: RunWorkspaceRef, maxBytes?: number | null): Promise<git.UncommittedChanges | null> {
    if (!run.worktreePath || !run.branch) return null;
    const active = await this.db.client.run.findFirst({ where: { branch: run.branch, status: { in: [...ACTIVE_RUN_STATUSES] } }, select: { id: true } });
    if (active && this.options.askOwner) {
      const answer = await this.options.askOwner(active.id, maxBytes ?? null);
      if (answer.delivered) return (answer.result ?? null) as git.UncommittedChanges | null;
    }
    return this.uncommittedOnThisNode(run.branch, maxBytes);
  }

  /**
   * Why `uncommitted` is null: no worktree of its own, or no worker answers for it and this node
   * has no copy (the work is on the disk of the worker that ran it).
   */
  override async uncommittedUnavailable(run: RunWorkspaceRef): Promise<string | null> {
    if (!run.worktreePath || !run.branch) return 'the run has no worktree of its own';
    const active = await this.db.client.run.findFirst({ where: { branch: run.branch, status: { in: [...ACTIVE_RUN_STATUSES] } }, select: { id: true } });
    // Asked for one byte of patch: whether its worker answers is what matters.
    if (active && this.options.askOwner && (await this.options.askOwner(active.id, 1)).delivered) return null;
    if (await git.worktreeExists(this.localPath(run.branch))) return null;
    return 'no worker holds the run now: its uncommitted work stays on the disk of the worker that ran it, and only commits are pushed';
  }

  /** Worker side of the RunControl 'uncommitted' command: this node's worktree of the run's branch. */
  override async uncommittedHere(runId: string, maxBytes?: number | null): Promise<git.UncommittedChanges | null> {
    const run = await this.db.client.run.findUnique({ where: { id: runId }, select: { branch: true } });
    if (!run) throw new NotFoundError('Run', runId);
    return run.branch ? this.uncommittedOnThisNode(run.branch, maxBytes) : null;
  }

  private async uncommittedOnThisNode(branch: string, maxBytes?: number | null): Promise<git.UncommittedChanges | null> {
    try {
      return await git.uncommittedChanges(this.localPath(branch), maxBytes ?? undefined);
    } catch (error) {
      if (error instanceof NotFoundError) return null; // not on this node
      throw error;
    }
  }

  // -- merging ------------------------------------------------------------------------------------

  /**
   * Merges the run's branch as pushed into the remote's base branch (the one it started from), one
   * merge at a time across the cluster, and records the merge commit on the run. Refused while this
   * node's worktree of the branch, if it has one, holds uncommitted changes (as in the main checkout;
   * another node's worktree cannot be seen). Nothing touches a
   * checkout, so there is no journal: the push either moved the remote's branch or it did not.
   */
  override async merge(runId: string, strategy: git.MergeStrategy): Promise<MergeRunResult> {
    const run = await this.mergeTarget(runId);
    const into = run.baseBranch ?? this.baseBranch;
    return this.options.withLock(`runboard:merge:${this.remote}`, async () => {
      const result = await git.mergeAndPush({ clone: this.clone, branch: run.branch, into, strategy, worktreePath: this.localPath(run.branch), message: mergeMessage(run.card, run, strategy) });
      if (result.ok) await this.db.write((tx) => tx.run.update({ where: { id: runId }, data: { mergedSha: result.sha } }));
      return { ...result, runId };
    });
  }

  /** A merge never leaves a half-done state on this node (see `merge`). */
  override async findInterruptedMerge(): Promise<InterruptedMerge | null> {
    return null;
  }

  /** Stops pending background pushes (shutdown; a settling run pushes with `publishBranch` itself). */
  close(): void {
    for (const { timer } of this.publishCooldowns.values()) clearTimeout(timer);
    this.publishCooldowns.clear();
  }
}

/**
 * A run's workspace: its git worktree and branch, what it has done there, and merging it into the
 * main checkout. Everything here is read from git (through git.ts) using the branch and base
 * recorded on the run; the database only remembers where to look.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import type { Database } from './db.js';
import { ConflictError, NotFoundError } from './errors.js';
import * as git from './git.js';
import { isActive, type RunStatus } from './run-status.js';

/** The fields of a run its workspace needs; resolvers select exactly these. */
export interface RunWorkspaceRef {
  id: string;
  branch: string | null;
  baseBranch: string | null;
  baseSha: string | null;
  worktreePath: string | null;
}

/** A run ref with a branch, i.e. a run that worked in a worktree of its own. */
export type BranchedRun = RunWorkspaceRef & { branch: string; baseSha: string };

export const WORKSPACE_SELECT = { id: true, branch: true, baseBranch: true, baseSha: true, worktreePath: true } as const;

/** Longest card description copied into a merge commit message. @default 2_000 // characters */
const MESSAGE_DESCRIPTION_CHARS = 2_000;

export interface MergeRunResult extends git.MergeResult {
  runId: string;
}

/** A merge that was about to touch the main checkout when the server last stopped, and what start-up found. */
export interface InterruptedMerge {
  runId: string;
  strategy: git.MergeStrategy;
  plan: git.MergePlan;
  outcome: git.InterruptedMergeOutcome;
}

/** What the merge journal holds: the plan, and the run it merges and how. */
interface JournalEntry extends git.MergePlan {
  runId: string;
  strategy: git.MergeStrategy;
}

export class Workspaces {
  /** Where run worktrees live: `<data dir>/worktrees`. */
  readonly worktreesDir: string;
  /**
   * `<data dir>/merge-in-progress.json`: the plan of a merge about to touch the main checkout,
   * written (and synced) before it does, removed once its outcome is recorded. Its presence at
   * start-up means the server stopped mid-merge.
   */
  private readonly journalPath: string;

  constructor(
    protected readonly db: Database,
    /** The main checkout; in cluster mode (RemoteWorkspaces), the node's bare clone of the remote. */
    protected readonly repoRoot: string,
    dataDir: string,
  ) {
    this.worktreesDir = path.join(dataDir, 'worktrees');
    this.journalPath = path.join(dataDir, 'merge-in-progress.json');
  }

  /** Creates the run's worktree on a new branch from the main checkout's HEAD and records it on the run. */
  async create(runId: string): Promise<git.CreatedWorktree> {
    const run = await this.db.client.run.findUnique({ where: { id: runId }, select: { card: { select: { title: true } } } });
    if (!run) throw new NotFoundError('Run', runId);
    const created = await git.createWorktree({ repoRoot: this.repoRoot, worktreesDir: this.worktreesDir, title: run.card.title, runId });
    await this.recordWorktree(runId, created);
    return created;
  }

  /** Records a new worktree and branch on the run that owns them. */
  protected async recordWorktree(runId: string, created: git.CreatedWorktree): Promise<void> {
    await this.db.write((tx) =>
      tx.run.update({
        where: { id: runId },
        data: { branch: created.branch, baseBranch: created.baseBranch, baseSha: created.baseSha, worktreePath: created.path, ownsWorktree: true, worktreeMissing: false },
      }),
    );
  }

  /**
   * The worktree a refinement continues in: here, the one recorded on the run, which must still
   * exist. (In cluster mode the worker re-creates it from the pushed branch when it lacks it.)
   */
  async worktreeFor(runId: string): Promise<string> {
    const run = await this.db.client.run.findUnique({ where: { id: runId }, select: { worktreePath: true } });
    if (!run) throw new NotFoundError('Run', runId);
    if (!run.worktreePath || !(await git.worktreeExists(run.worktreePath))) throw new ConflictError('the worktree to refine in is gone');
    return run.worktreePath;
  }

  /**
   * Where the run's work is on this node's disk, for a playtest: its worktree (the one it shares, for
   * a refinement), or the main checkout for a run without one; null when it is gone or was never made.
   */
  async localWorktree(runId: string): Promise<string | null> {
    const run = await this.db.client.run.findUnique({ where: { id: runId }, select: { worktreePath: true, useWorktree: true } });
    if (!run) throw new NotFoundError('Run', runId);
    const cwd = run.worktreePath ?? (run.useWorktree ? null : this.repoRoot);
    return cwd && (await git.worktreeExists(cwd)) ? cwd : null;
  }

  /** Whether a refinement of `run` can have a worktree to work in (here: it still exists). */
  async canRefineIn(run: Pick<RunWorkspaceRef, 'branch' | 'worktreePath'>): Promise<boolean> {
    return run.worktreePath !== null && (await git.worktreeExists(run.worktreePath));
  }

  /**
   * The agent may have committed: publish the run's branch soon (throttled). Here nothing to do:
   * the main checkout's repository is the repository of record.
   */
  publishSoon(_runId: string): void {}

  /** Publishes the run's branch now (at settle). Here nothing to do; see `publishSoon`. */
  async publishBranch(_runId: string): Promise<void> {}

  /** Worker side of the RunControl 'uncommitted' command: the run's uncommitted work in this process's worktree. */
  async uncommittedHere(runId: string, maxBytes?: number | null): Promise<git.UncommittedChanges | null> {
    const run = await this.db.client.run.findUnique({ where: { id: runId }, select: WORKSPACE_SELECT });
    if (!run) throw new NotFoundError('Run', runId);
    return this.uncommitted(run, maxBytes);
  }

  /** Removes a worktree the run owns, with its branch unless that has unmerged commits (then kept and reported). */
  async remove(runId: string): Promise<git.RemovedWorktree | null> {
    const run = await this.db.client.run.findUnique({ where: { id: runId }, select: { ...WORKSPACE_SELECT, ownsWorktree: true } });
    if (!run) throw new NotFoundError('Run', runId);
    if (!run.ownsWorktree || !run.worktreePath || !run.branch) return null;
    return git.removeWorktree({ repoRoot: this.repoRoot, path: run.worktreePath, branch: run.branch });
  }

  /**
   * Start-up: forgets worktrees whose directories are gone and flags the runs that used them
   * (and clears the flag of any that came back). Returns the ids of runs flagged missing.
   */
  async reconcile(): Promise<string[]> {
    // Side by side: git's processes and the database's first query (Prisma loads its compiler) overlap.
    const [runs, existing] = await Promise.all([
      this.db.client.run.findMany({ where: { worktreePath: { not: null } }, select: { id: true, worktreePath: true, worktreeMissing: true } }),
      git.reconcileWorktrees(this.repoRoot),
    ]);
    const missing: string[] = [];
    const changes: { id: string; worktreeMissing: boolean }[] = [];
    for (const run of runs) {
      const real = await fs.realpath(run.worktreePath!).catch(() => null);
      const gone = real === null || !existing.has(real);
      if (gone) missing.push(run.id);
      if (gone !== run.worktreeMissing) changes.push({ id: run.id, worktreeMissing: gone });
    }
    if (changes.length) {
      await this.db.write(async (tx) => {
        for (const { id, worktreeMissing } of changes) await tx.run.update({ where: { id }, data: { worktreeMissing } });
      });
    }
    return missing;
  }

  /** The main checkout: branch, HEAD, half-done operation and changed paths. */
  repositoryStatus(): Promise<git.RepositoryStatus> {
    return git.repositoryStatus(this.repoRoot);
  }

  /** Commits on the run's branch since its base commit, newest first; null for a run without a branch. */
  async commits(run: RunWorkspaceRef, limit?: number): Promise<git.CommitInfo[] | null> {
    if (!hasBranch(run)) return null;
    return (await git.commitsAhead({ repoRoot: this.repoRoot, branch: run.branch, base: run.baseSha, limit })).commits;
  }

  /**
   * Commits the branch has that its base branch lacks, and the reverse. Measured against the base
   * branch as it is now, so `behind` counts what main gained since the run started.
   */
  async aheadBehind(run: RunWorkspaceRef): Promise<{ ahead: number; behind: number } | null> {
    if (!hasBranch(run)) return null;
    return git.reviewRead(`how far ${run.branch} is ahead and behind`, async () => {
      const baseBranchAlive = run.baseBranch !== null && (await git.branchSha(this.repoRoot, run.baseBranch)) !== null;
      const base = baseBranchAlive ? run.baseBranch! : run.baseSha;
      return git.aheadBehind({ repoRoot: this.repoRoot, branch: run.branch, base });
    });
  }

  /**
   * The run's committed changes, against the commit it started from: commits main gained later do
   * not show, and the diff stays readable after the run is merged.
   */
  async diff(run: RunWorkspaceRef, maxBytes?: number | null): Promise<git.DiffResult | null> {
    if (!hasBranch(run)) return null;
    return git.diff({ repoRoot: this.repoRoot, branch: run.branch, base: run.baseSha, maxBytes: maxBytes ?? undefined });
  }

  async fileDiff(run: RunWorkspaceRef, filePath: string, maxBytes?: number | null): Promise<git.FileDiff | null> {
    if (!hasBranch(run)) return null;
    return git.fileDiff({ repoRoot: this.repoRoot, branch: run.branch, base: run.baseSha, path: filePath, maxBytes: maxBytes ?? undefined });
  }

  /** Uncommitted work in the run's worktree; null when the run has none or the worktree is gone (then flagged). */
  async uncommitted(run: RunWorkspaceRef, maxBytes?: number | null): Promise<git.UncommittedChanges | null> {
    if (!run.worktreePath) return null;
    try {
      return await git.uncommittedChanges(run.worktreePath, maxBytes ?? undefined);
    } catch (error) {
      if (!(error instanceof NotFoundError)) throw error;
      await this.db.write((tx) => tx.run.update({ where: { id: run.id }, data: { worktreeMissing: true } }));
      return null;
    }
  }

  /** Why `uncommitted` answers null for this run, or null when it does not: it has no worktree of its own, or the worktree is gone. */
  async uncommittedUnavailable(run: RunWorkspaceRef): Promise<string | null> {
    if (!run.worktreePath) return 'the run has no worktree of its own';
    return (await git.worktreeExists(run.worktreePath)) ? null : 'its worktree is gone';
  }

  /**
   * Merges the run's branch into the main checkout, which must be on the branch the run started
   * from. Refused while the run is active. On success the new commit is recorded on the run. The
   * plan is journaled before main is touched, so a server stopped mid-merge finds it at start-up.
   */
  async merge(runId: string, strategy: git.MergeStrategy): Promise<MergeRunResult> {
    const run = await this.mergeTarget(runId);
    if (await this.readJournal()) {
      throw new ConflictError('an earlier merge into the main checkout was interrupted and is not resolved yet (another git process holds its lock); try again');
    }
    let journaled = false;
    try {
      const result = await git.merge({
        repoRoot: this.repoRoot,
        worktreePath: run.worktreePath,
        branch: run.branch,
        strategy,
        expectedBranch: run.baseBranch ?? undefined,
        message: mergeMessage(run.card, run, strategy),
        beforeUpdate: async (plan) => {
          await this.writeJournal({ runId, strategy, ...plan });
          journaled = true;
        },
      });
      if (result.ok) await this.db.write((tx) => tx.run.update({ where: { id: runId }, data: { mergedSha: result.sha } }));
      if (journaled) await this.clearJournal();
      return { ...result, runId };
    } catch (error) {
      // A ConflictError from git.merge means main was left as it was; anything else keeps the journal for start-up.
      if (journaled && error instanceof ConflictError) await this.clearJournal();
      throw error;
    }
  }

  /** The run to merge, with its card; CONFLICT while it is active or when it has no branch. */
  protected async mergeTarget(runId: string) {
    const run = await this.db.client.run.findUnique({
      where: { id: runId },
      select: { ...WORKSPACE_SELECT, status: true, card: { select: { title: true, description: true } } },
    });
    if (!run) throw new NotFoundError('Run', runId);
    if (isActive(run.status as RunStatus)) throw new ConflictError(`run ${runId} is still ${run.status}; wait for it to settle or stop it before merging`);
    if (!hasBranch(run)) throw new ConflictError(`run ${runId} worked in the main checkout, so it has no branch to merge`);
    return run;
  }

  /**
   * If a merge was interrupted while touching the main checkout (the server stopped, or git failed
   * half way), finds out how far it got and leaves main merged or as it was (see
   * git.finishInterruptedMerge). Returns what it found, for the caller to record on the run; null
   * when there is nothing to finish. The journal is kept while a running git process holds main's
   * lock (BUSY), and otherwise cleared by `settleInterruptedMerge`. `atStartUp`: a lock no process
   * holds is the killed git's and is removed; otherwise any lock means BUSY.
   */
  async findInterruptedMerge({ atStartUp = false } = {}): Promise<InterruptedMerge | null> {
    const entry = await this.readJournal();
    if (!entry) return null;
    const { runId, strategy, ...plan } = entry;
    if (path.resolve(plan.repoRoot) !== path.resolve(this.repoRoot)) return null; // another repository's, not ours to touch
    const outcome = await git.finishInterruptedMerge(plan, { removeStaleLock: atStartUp });
    return { runId, strategy, plan, outcome };
  }

  /** Forgets the interrupted merge once its outcome is recorded. */
  settleInterruptedMerge(): Promise<void> {
    return this.clearJournal();
  }

  private async readJournal(): Promise<JournalEntry | null> {
    try {
      return JSON.parse(await fs.readFile(this.journalPath, 'utf8')) as JournalEntry;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw error;
    }
  }

  /** Writes the journal durably: a synced temporary file renamed into place. */
  private async writeJournal(entry: JournalEntry): Promise<void> {
    const temporary = `${this.journalPath}.tmp`;
    const file = await fs.open(temporary, 'w');
    try {
      await file.writeFile(JSON.stringify(entry));
      await file.sync();
    } finally {
      await file.close();
    }
    await fs.rename(temporary, this.journalPath);
  }

  private clearJournal(): Promise<void> {
    return fs.rm(this.journalPath, { force: true });
  }
}

/** Whether the run worked on a branch of its own. */
export function hasBranch(run: RunWorkspaceRef): run is BranchedRun {
  return run.branch !== null && run.baseSha !== null;
}

/** The commit message of a run's merge: the card's title and description, and where it came from. */
export function mergeMessage(card: { title: string; description: string }, run: BranchedRun, strategy: git.MergeStrategy): string {
  const description = card.description.trim().slice(0, MESSAGE_DESCRIPTION_CHARS);
  const origin = `runboard run ${run.id}, branch ${run.branch}`;
  const subject = strategy === 'MERGE' ? `Merge "${card.title}" (${run.branch})` : card.title;
  return [subject, description, strategy === 'MERGE' ? `From ${origin}.` : `Squashed from ${origin}.`].filter(Boolean).join('\n\n');
}

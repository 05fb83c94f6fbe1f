/**
 * Playtests: a dev command (RUNBOARD_PLAYTEST_COMMAND, `cargo run` by default) run in a run's
 * worktree, never through a shell, with its output in the run's event stream.
 *
 * Output is capped per line and rate-limited, so a game printing 10,000 lines a second costs at most
 * PLAYTEST_LINES_PER_SECOND events; dropped lines are counted and reported. The command gets its own
 * process group and the group is what stopping signals: `cargo run` starts the game as a child, and
 * ending only cargo would leave the game window open.
 *
 * Events: playtest_start { command, pid }, playtest_output { stream, line }, playtest_dropped
 * { count } (lines dropped since the last report), playtest_exit { exitCode, signal, droppedLines, stopped }.
 */
import { execa, type ResultPromise } from 'execa';
import type { Logger } from '../log.js';
import type { Database } from './db.js';
import { ConflictError } from './errors.js';
import { truncateText, type EventLog, type RunEventInput } from './event-log.js';
import { readLines } from './lines.js';
import { endProcessesWithEnv, terminateTree, withoutKeys } from './processes.js';

/** Longest output line kept; longer lines are cut. @default 1_000 // characters */
export const PLAYTEST_LINE_CHARS = 1_000;
/** Output lines recorded per second (steady rate); a burst may use up to this many at once. @default 50 */
export const PLAYTEST_LINES_PER_SECOND = 50;
/** How often accepted lines are written, as one transaction. @default 100 // ms */
const FLUSH_MS = 100;
/** Between SIGTERM and SIGKILL. @default 5_000 // ms */
export const PLAYTEST_STOP_GRACE_MS = 5_000;
/** Set in the command's environment, so a restarted server finds a playtest an earlier one left running. */
export const PLAYTEST_RUN_ID_VARIABLE = 'RUNBOARD_PLAYTEST_RUN_ID';

export interface PlaytestsOptions {
  db: Database;
  eventLog: EventLog;
  /** The command as an argument array. */
  command: readonly string[];
  /** Where the run's work is on this node's disk (Workspaces.localWorktree); null when not here. */
  worktreeOf: (runId: string) => Promise<string | null>;
  /** Cluster mode: this node's id, recorded as the run's `playtestNodeId`. @default null (embedded) */
  nodeId?: string | null;
  /** Server variables the command must not inherit (the operator token). @default ['RUNBOARD_TOKEN'] */
  withheldEnv?: readonly string[];
  /** Where failures to record output are reported. */
  logger: Logger;
}

interface LivePlaytest {
  readonly runId: string;
  readonly child: ResultPromise;
  readonly exited: Promise<void>;
  pending: RunEventInput[];
  /** Token bucket for the line rate. */
  tokens: number;
  refilledAt: number;
  droppedSinceReport: number;
  droppedTotal: number;
  stopping: boolean;
  flushTimer: NodeJS.Timeout;
}

export class Playtests {
  private readonly live = new Map<string, LivePlaytest>();

  constructor(private readonly options: PlaytestsOptions) {}

  get activeCount(): number {
    return this.live.size;
  }

  /** Whether a playtest of this run is running (its events may still come after the run settled). */
  isRunning(runId: string): boolean {
    return this.live.has(runId);
  }

  /** Starts the command in the run's worktree. CONFLICT when one is running, or the worktree is gone. */
  async start(runId: string): Promise<void> {
    if (this.live.has(runId)) throw new ConflictError(`run ${runId} already has a playtest running; stop it first`);
    const cwd = await this.options.worktreeOf(runId);
    if (!cwd) throw new ConflictError(`run ${runId} has no worktree to playtest in: it is gone or was never made`);
    if (this.live.has(runId)) throw new ConflictError(`run ${runId} already has a playtest running; stop it first`);
    // Another node's playtest of the run (a refinement moved the worktree here while it ran) is one too many.
    const elsewhere = await this.options.db.client.run.findFirst({ where: { id: runId, playtestStartedAt: { not: null }, playtestEndedAt: null }, select: { playtestNodeId: true } });
    if (elsewhere) throw new ConflictError(`run ${runId} already has a playtest running${elsewhere.playtestNodeId ? ` on node ${elsewhere.playtestNodeId}` : ''}; stop it first`);

    const [program, ...args] = this.options.command;
    const child = execa(program, args, {
      cwd,
      detached: true, // a group of its own, so stopping reaches the game cargo starts
      stdin: 'ignore',
      buffer: false,
      reject: false,
      env: { ...withoutKeys(process.env, this.options.withheldEnv ?? ['RUNBOARD_TOKEN']), [PLAYTEST_RUN_ID_VARIABLE]: runId },
      extendEnv: false,
    });
    const playtest: LivePlaytest = {
      runId,
      child,
      exited: child.then((result) => this.onExit(playtest, result.exitCode ?? null, result.signal ?? null, result.failed && result.exitCode === undefined && !result.signal ? (result.shortMessage ?? 'failed to start') : null)),
      pending: [],
      tokens: PLAYTEST_LINES_PER_SECOND,
      refilledAt: Date.now(),
      droppedSinceReport: 0,
      droppedTotal: 0,
      stopping: false,
      flushTimer: setInterval(() => void this.flush(playtest), FLUSH_MS),
    };
    this.live.set(runId, playtest);
    for (const stream of ['stdout', 'stderr'] as const) {
      readLines(child[stream]!, PLAYTEST_LINE_CHARS * 4, (line) => this.onLine(playtest, stream, line), () => this.onLine(playtest, stream, '[line too long]'));
    }
    await this.options.eventLog.append(runId, [{ type: 'playtest_start', data: { command: this.options.command.join(' '), pid: child.pid ?? null } }], {
      playtestCommand: this.options.command.join(' '),
      playtestPid: child.pid ?? null,
      playtestStartedAt: new Date(),
      playtestEndedAt: null,
      playtestExitCode: null,
      playtestSignal: null,
      playtestNodeId: this.options.nodeId ?? null,
    });
  }

  /** Ends the playtest's whole process group: SIGTERM, then SIGKILL after the grace period. CONFLICT when none runs. */
  async stop(runId: string): Promise<void> {
    const playtest = this.live.get(runId);
    if (!playtest) throw new ConflictError(`run ${runId} has no playtest running`);
    await this.end(playtest);
  }

  /** Stops the run's playtest if it has one (deleting a run, say). */
  async stopIfRunning(runId: string): Promise<void> {
    const playtest = this.live.get(runId);
    if (playtest) await this.end(playtest);
  }

  /** Server shutdown: every playtest is ended. */
  async shutdown(): Promise<void> {
    await Promise.all([...this.live.values()].map((playtest) => this.end(playtest)));
  }

  /**
   * Start-up: ends playtests an earlier server process left running (found by the run id in their
   * environment, which pid reuse cannot fake) and records them as ended. In a cluster, only this
   * node's own (from before a restart with the same --node-id).
   */
  async recover(): Promise<void> {
    const nodeId = this.options.nodeId;
    await this.endStale(nodeId ? { playtestNodeId: nodeId } : {}, 'the server stopped while it ran');
  }

  /**
   * Cluster sweep: playtests recorded as running on nodes that are not alive are recorded as ended,
   * and their processes ended if they are on this machine. (On another machine they died with their node,
   * or are ended when it restarts with the same --node-id.)
   */
  async endLost(aliveNodes: readonly string[]): Promise<void> {
    await this.endStale({ playtestNodeId: { notIn: [...aliveNodes, ...(this.options.nodeId ? [this.options.nodeId] : [])] } }, 'the node running it stopped (its lease expired)');
  }

  private async endStale(where: { playtestNodeId?: string | { notIn: string[] } }, reason: string): Promise<void> {
    const stale = await this.options.db.client.run.findMany({ where: { ...where, playtestStartedAt: { not: null }, playtestEndedAt: null, id: { notIn: [...this.live.keys()] } }, select: { id: true } });
    for (const { id } of stale) {
      await endProcessesWithEnv(PLAYTEST_RUN_ID_VARIABLE, id, PLAYTEST_STOP_GRACE_MS);
      await this.options.eventLog.append(id, [{ type: 'playtest_exit', data: { exitCode: null, signal: null, droppedLines: 0, stopped: true, reason } }], {
        playtestEndedAt: new Date(),
        playtestPid: null,
      });
    }
  }

  private async end(playtest: LivePlaytest): Promise<void> {
    playtest.stopping = true;
    if (playtest.child.pid !== undefined) await terminateTree(playtest.child.pid, playtest.exited, PLAYTEST_STOP_GRACE_MS);
    await playtest.exited;
  }

  private onLine(playtest: LivePlaytest, stream: 'stdout' | 'stderr', raw: string): void {
    const now = Date.now();
    playtest.tokens = Math.min(PLAYTEST_LINES_PER_SECOND, playtest.tokens + ((now - playtest.refilledAt) / 1000) * PLAYTEST_LINES_PER_SECOND);
    playtest.refilledAt = now;
    if (playtest.tokens < 1) {
      playtest.droppedSinceReport += 1;
      playtest.droppedTotal += 1;
      return;
    }
    playtest.tokens -= 1;
    playtest.pending.push({ type: 'playtest_output', data: { stream, line: truncateText(raw.replace(/\r$/, ''), PLAYTEST_LINE_CHARS) } });
  }

  /** Writes the lines accepted since the last flush, and the count of those dropped, in one transaction. */
  private async flush(playtest: LivePlaytest): Promise<void> {
    const events = playtest.pending;
    playtest.pending = [];
    if (playtest.droppedSinceReport) {
      events.push({ type: 'playtest_dropped', data: { count: playtest.droppedSinceReport } });
      playtest.droppedSinceReport = 0;
    }
    if (events.length) await this.options.eventLog.append(playtest.runId, events).catch((error: unknown) => this.options.logger.error({ err: error, runId: playtest.runId }, `recording playtest output of run ${playtest.runId} failed`));
  }

  private async onExit(playtest: LivePlaytest, exitCode: number | null, signal: string | null, spawnError: string | null): Promise<void> {
    // Output still in the pipes has been read by now: execa settles after the streams end.
    clearInterval(playtest.flushTimer);
    await this.flush(playtest);
    this.live.delete(playtest.runId);
    await this.options.eventLog
      .append(playtest.runId, [{ type: 'playtest_exit', data: { exitCode, signal, droppedLines: playtest.droppedTotal, stopped: playtest.stopping, ...(spawnError ? { error: spawnError } : {}) } }], {
        playtestEndedAt: new Date(),
        playtestExitCode: exitCode,
        playtestSignal: signal,
        playtestPid: null,
      })
      .catch((error: unknown) => this.options.logger.error({ err: error, runId: playtest.runId }, `recording the end of run ${playtest.runId}'s playtest failed`));
  }
}

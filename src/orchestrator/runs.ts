/**
 * Runs: one agent working one card in one worktree. This module owns their lifecycle: the capacity
 * queue, spawning the agent, settling, stopping, refining, recovery after a restart. Every status
 * change is written together with its `status` event through the event log.
 *
 * Statuses: QUEUED -> STARTING -> RUNNING -> SUCCEEDED | FAILED | STOPPED | INTERRUPTED.
 * It drives whichever agent the run names through the AgentDriver interface (agent-driver.ts): the
 * driver decides when the agent has settled, and the run then ends it.
 */
import { createHash, randomBytes } from 'node:crypto';
import path from 'node:path';
import type { AgentDriver, AgentExit, AgentSession, MessageMode } from './agent-driver.js';
import type { AgentCatalog } from './agent-catalog.js';
import type { Logger } from '../log.js';
import type { Database } from './db.js';
import { ConflictError, InvalidInputError, NotFoundError, RunboardError } from './errors.js';
import { truncateText, type EventLog, type RunChanges, type RunEventInput } from './event-log.js';
import { delay, endProcessesWithEnv } from './processes.js';
import { AGENT_PROMPT_SELECT, renderCardPrompt } from './prompt.js';
import type { PubSub } from './pubsub.js';
import { ACTIVE_RUN_STATUSES, isActive, type RunStatus } from './run-status.js';
import type { RunEventDataByType } from './run-events.js';
import type { WorktreeHosts } from './worktree-hosts.js';
import { LocalRunControl, type RunCommand, type RunCommandOutcome, type RunControl, type WorktreeCommand } from './run-control.js';
import { LocalRunQueue, type RunQueue } from './run-queue.js';
import { MAX_SESSION_SNAPSHOT_BYTES, SessionSnapshots } from './session-snapshots.js';
import { WORKSPACE_SELECT, type Workspaces } from './workspaces.js';

/** Set in every agent's environment (and so its tools'): how a restarted server finds what a run left running. */
export const RUN_ID_VARIABLE = 'RUNBOARD_RUN_ID';
/** Longest prompt or message sent to an agent. @default 100_000 // characters */
export const MAX_MESSAGE_CHARS = 100_000;
/** Message text kept in a `user_message` event. @default 8_000 // characters */
const MESSAGE_EVENT_CHARS = 8_000;
/** How long `abort` may take before the process is ended anyway. @default 5_000 // ms */
export const ABORT_TIMEOUT_MS = 5_000;
/** Between SIGTERM and SIGKILL when ending an agent. @default 5_000 // ms */
export const STOP_GRACE_MS = 5_000;
/** stderr lines recorded as events per run; the rest are counted in one warning. @default 500 */
export const MAX_STDERR_EVENTS = 500;
/** Least time between two stores of a working run's agent session (cluster mode). @default 1_000 // ms */
const SESSION_SNAPSHOT_MS = 1_000;
/** Tries at writing a run's terminal status before it is marked without its event. @default 4 */
export const FINAL_STATUS_ATTEMPTS = 4;
/** The wait before the first retry of a terminal status; it doubles each time. @default 200 // ms */
const FINAL_STATUS_RETRY_MS = 200;

export type { MessageMode };

/** What the server passes through to runs. */
export interface RunsOptions {
  db: Database;
  eventLog: EventLog;
  bus: PubSub<RunTopics>;
  workspaces: Workspaces;
  /** Deleting a run stops its playtest. */
  /** Where a deleted run's playtest is stopped and its worktree removed (worktree-hosts.ts). */
  worktrees: Pick<WorktreeHosts, 'stopPlaytest' | 'removeWorktree'>;
  repoRoot: string;
  dataDir: string;
  /** The agents runs may use, by name, and the default one. */
  agents: AgentCatalog;
  /** Environment added to the server's own for every agent. */
  agentEnv?: Readonly<Record<string, string>>;
  /** Server variables agents must not inherit (the operator token). @default ['RUNBOARD_TOKEN'] */
  withheldEnv?: readonly string[];
  /** Runs this process drives at once (embedded queue; a cluster queue is given its own). @default 4 */
  maxConcurrentRuns?: number;
  /** Where failures inside the run lifecycle are reported. */
  logger: Logger;
  /** How QUEUED runs reach a worker. @default LocalRunQueue: the in-process pump */
  queue?: RunQueue;
  /** How steer, follow-up and stop reach the process that drives a run. @default LocalRunControl */
  control?: RunControl;
  /** Set in a cluster: this node's id and how to tell whether another node still holds its runs. @default embedded: none */
  cluster?: RunsClusterOptions;
}

/** What runs need to know of the cluster (nodes.ts provides it). */
export interface RunsClusterOptions {
  /** This node's id, recorded as `Run.workerId` on the runs it claims. */
  nodeId: string;
  /** Whether this node takes runs from the queue (role worker or all). */
  consumes: boolean;
  /** Ids of the nodes whose heartbeat is younger than the lease. */
  aliveNodes(): Promise<string[]>;
  /** Whether `nodeId` still heartbeats: false at once when its heartbeat is stale, else waits until it would be, and looks again. */
  stillAlive(nodeId: string): Promise<boolean>;
}

/** A run's status and summary changed; keyed by card id. */
export interface RunUpdate {
  runId: string;
  cardId: string;
  status: RunStatus;
}

export interface RunTopics extends Record<string, unknown> {
  'run-updated': RunUpdate;
}

export interface StartRunInput {
  cardId: string;
  /** @default the card's agent prompt; required for a refinement */
  prompt?: string | null;
  /** @default true */
  useWorktree?: boolean | null;
  /** Remove the run's own worktree when it settles (its branch stays if it has unmerged commits). @default false */
  cleanupOnFinish?: boolean | null;
  /** Continue this settled run's session in its worktree. */
  refineRunId?: string | null;
  /** The configured agent to run. @default a refinement's own agent, else the default agent */
  agent?: string | null;
}

/** The state of a run whose agent this process drives. */
interface LiveRun {
  readonly id: string;
  readonly cardId: string;
  phase: 'starting' | 'running' | 'stopping' | 'ended';
  agent: AgentSession | null;
  /** Its driver and agent state dir, once known: a cluster worker snapshots the session with them at the end. */
  driver: AgentDriver | null;
  stateDir: string | null;
  /** When the session was last stored while the run works, and the pending store (cluster mode; see snapshotSoon). */
  lastSnapshotAt: number;
  snapshotTimer: NodeJS.Timeout | null;
  /** The stores of its session, one after another, so an older one never lands after a newer one. */
  snapshots: Promise<void>;
  /** Messages sent while the agent was being started, delivered right after the first prompt. */
  deferred: { text: string; mode: MessageMode }[];
  stderrEvents: number;
  stderrDropped: number;
  readonly ended: Promise<void>;
  resolveEnded(): void;
}

/** The run an agent token belongs to. */
export interface AgentIdentity {
  runId: string;
  cardId: string;
}

/** How an agent token is stored: its sha256, in hex, so the database never holds a usable token. */
export function hashAgentToken(token: string): string {
  return createHash('sha256').update(token).digest('hex');
}

export class Runs {
  private readonly live = new Map<string, LiveRun>();
  /** The GraphQL URL agents reach the board at (RUNBOARD_URL), known once the server listens. */
  serverUrl = '';
  private readonly queue: RunQueue;
  private readonly control: RunControl;
  private readonly snapshots: SessionSnapshots;
  private closed = false;

  constructor(private readonly options: RunsOptions) {
    this.queue = options.queue ?? new LocalRunQueue(options.db, options.maxConcurrentRuns ?? 4, options.logger);
    this.control = options.control ?? new LocalRunControl();
    this.snapshots = new SessionSnapshots(options.db);
  }

  /** Creates a QUEUED run (its first event) and starts it when a slot is free. Returns its id. */
  async start(input: StartRunInput): Promise<string> {
    const { db } = this.options;
    const card = await db.client.card.findUnique({ where: { id: input.cardId }, select: { id: true, ...AGENT_PROMPT_SELECT } });
    if (!card) throw new NotFoundError('Card', input.cardId);
    const useWorktree = input.useWorktree ?? true;
    // A cluster node's repository is its bare clone of the remote: there is no main checkout to work in.
    if (!useWorktree && this.options.cluster) throw new InvalidInputError('useWorktree: false works in the main checkout, and a cluster has none: runs there work in worktrees', 'useWorktree');
    const refine = input.refineRunId ? await this.refineTarget(input.refineRunId, card.id) : null;
    if (refine && input.agent && input.agent !== refine.agent) throw new ConflictError(`cannot refine run ${refine.id} with ${input.agent}: it ran ${refine.agent}, and a session continues with its own agent`);
    const driver = await this.options.agents.require(input.agent ?? refine?.agent);
    if (refine && !driver.capabilities.resume) throw new ConflictError(`cannot refine run ${refine.id}: ${driver.name} cannot resume a session (its capabilities say resume: false)`);
    // A session stored by another node's worker is restored by whichever worker takes the refine.
    if (refine && !(await driver.canResume(refine.agentSession!)) && !(await this.snapshots.has(refine.id))) throw new ConflictError(`cannot refine run ${refine.id}: its ${driver.name} session can no longer be resumed`);
    const explicit = input.prompt?.trim();
    if (refine && !explicit) throw new InvalidInputError('a refinement needs a prompt: the feedback for the agent', 'prompt');
    const prompt = explicit || renderCardPrompt(card);
    if (prompt.length > MAX_MESSAGE_CHARS) throw new InvalidInputError(`prompt is longer than ${MAX_MESSAGE_CHARS} characters`, 'prompt');

    const run = await db.write(async (tx) => {
      if (!useWorktree && !refine) {
        const other = await tx.run.findFirst({ where: { useWorktree: false, status: { in: [...ACTIVE_RUN_STATUSES] } }, select: { id: true } });
        if (other) throw new ConflictError(`run ${other.id} is already working in the main checkout; only one run at a time may`);
      }
      return tx.run.create({
        data: {
          cardId: card.id,
          prompt,
          agent: driver.name,
          agentCommand: driver.describe(),
          useWorktree: refine ? refine.useWorktree : useWorktree,
          cleanupOnFinish: input.cleanupOnFinish ?? false,
          ...(refine
            ? { refinedFromId: refine.id, branch: refine.branch, baseBranch: refine.baseBranch, baseSha: refine.baseSha, worktreePath: refine.worktreePath, agentSession: refine.agentSession, ownsWorktree: false }
            : {}),
        },
        select: { id: true },
      });
    });
    await this.record(run.id, card.id, 'QUEUED', {}, refine ? { refinedFrom: refine.id } : {});
    await this.queue.enqueue(run.id);
    return run.id;
  }

  /** Delivers a message to a working agent: STEER at its next model request, FOLLOW_UP when it would stop. */
  async sendMessage(runId: string, text: string, mode: MessageMode): Promise<void> {
    const message = text.trim();
    if (!message) throw new InvalidInputError('text must not be empty', 'text');
    if (message.length > MAX_MESSAGE_CHARS) throw new InvalidInputError(`text is longer than ${MAX_MESSAGE_CHARS} characters`, 'text');
    // Whichever process drives the run carries it out (run control); nobody does when it is not live.
    const outcome = await this.control.send(runId, { kind: 'message', text: message, mode });
    if (!outcome.delivered) throw await this.notLive(runId, 'send a message to');
  }

  /** Stops a run: abort, then end the process tree (SIGKILL after a grace period). A QUEUED run just ends. */
  async stop(runId: string): Promise<void> {
    const outcome = await this.control.send(runId, { kind: 'stop' });
    if (outcome.delivered) return;
    const run = await this.findRun(runId);
    if (run.status !== 'QUEUED') throw new ConflictError(isActive(run.status) ? `run ${runId} is ${run.status} but no worker holds it now; it becomes INTERRUPTED when its lease expires` : `run ${runId} is ${run.status}, not active`);
    // Only if the queue has not just started it; then it is served (before its claim) and stopped as such.
    const stopped = await this.record(runId, run.cardId, 'STOPPED', { endedAt: new Date() }, { reason: 'stopped before it started' }, 'QUEUED');
    return stopped ? undefined : this.stop(runId);
  }

  /** The uncommitted changes in a live run's worktree, from the process that drives it; undefined when it is live nowhere. */
  uncommitted(runId: string, maxBytes: number | null = null): Promise<RunCommandOutcome> {
    return this.control.send(runId, { kind: 'uncommitted', maxBytes });
  }

  /** Deletes a settled run and its events; removes its worktree only if it owns it and no other run works there. */
  async delete(runId: string): Promise<void> {
    const run = await this.findRun(runId);
    if (isActive(run.status)) throw new ConflictError(`run ${runId} is ${run.status}; stop it before deleting it`);
    if (run.ownsWorktree && run.branch) {
      const user = await this.activeRunOn(run.branch);
      if (user) throw new ConflictError(`run ${user} is still working in this run's worktree`);
    }
    await this.options.worktrees.stopPlaytest(runId, true);
    if (run.ownsWorktree && run.worktreePath) await this.options.worktrees.removeWorktree(runId);
    // Not published to runUpdated: there is no run left to show; boards drop it when a query misses it.
    await this.options.db.write((tx) => tx.run.delete({ where: { id: runId } }));
  }

  /**
   * Start-up: runs an earlier server left STARTING or RUNNING become INTERRUPTED (their worktrees
   * kept for a refine), and their agents, if still alive, are ended. Then the queue resumes.
   */
  async recover(): Promise<void> {
    const cluster = this.options.cluster;
    if (cluster) {
      if (!cluster.consumes) return; // API nodes hold no runs, and sweep none
      // Only runs whose lease expired (their node's heartbeat is stale), and this node's own from before a restart.
      await this.interruptExpired();
      // Jobs lost with a Redis restart, or dropped in a shutdown race: adding a run's job again is a no-op when it exists.
      const queued = await this.options.db.client.run.findMany({ where: { status: 'QUEUED' }, orderBy: [{ createdAt: 'asc' }, { id: 'asc' }], select: { id: true } });
      for (const run of queued) await this.queue.enqueue(run.id);
      await this.queue.consume((runId) => this.drive(runId));
      return;
    }
    const stale = await this.options.db.client.run.findMany({
      where: { status: { in: ['STARTING', 'RUNNING'] } },
      select: { id: true, cardId: true, status: true },
    });
    await Promise.all(stale.map((run) => this.interruptOrphan(run, 'the server stopped while the run was active')));
    await this.queue.consume((runId) => this.drive(runId));
  }

  /**
   * Cluster sweep (any worker, periodically, and at start-up): runs STARTING or RUNNING on a node whose
   * heartbeat is older than the lease, or on this node but not live here (it restarted), become
   * INTERRUPTED, their leftover processes on this machine ended. Another live node's runs are never touched.
   */
  async interruptExpired(): Promise<void> {
    const cluster = this.options.cluster;
    if (!cluster || this.closed) return;
    // Runs first, nodes second: a node that claimed one of these runs had registered before, so it is in `alive`.
    const active = await this.options.db.client.run.findMany({
      where: { status: { in: ['STARTING', 'RUNNING'] }, id: { notIn: [...this.live.keys()] } },
      select: { id: true, cardId: true, status: true, workerId: true },
    });
    if (!active.length) return;
    const alive = new Set((await cluster.aliveNodes()).filter((id) => id !== cluster.nodeId));
    const expired = active.filter((run) => !run.workerId || !alive.has(run.workerId));
    await Promise.all(expired.map((run) => this.interruptOrphan(run, 'the worker that ran it stopped (its lease expired)')));
  }

  /**
   * Cluster: the runs this node drives that another node has already ended (it found this node's
   * heartbeat stale, say after a long stall here) are ended here without a status of their own, so an
   * agent never works on after its run was declared INTERRUPTED, and a refine elsewhere never races it.
   */
  async fenceLost(): Promise<void> {
    if (!this.options.cluster || !this.live.size) return;
    const ended = await this.options.db.client.run.findMany({
      where: { id: { in: [...this.live.keys()] }, status: { notIn: [...ACTIVE_RUN_STATUSES] } },
      select: { id: true, status: true },
    });
    await Promise.all(ended.map(async (run) => {
      const live = this.live.get(run.id);
      if (!live || live.phase === 'ended' || live.phase === 'stopping') return;
      this.options.logger.warn({ runId: run.id, status: run.status }, `run ${run.id} was ended elsewhere (${run.status}) while this node drove it; ending its agent`);
      live.phase = 'ended';
      try {
        live.agent?.flush();
        if (live.agent) await live.agent.terminate(STOP_GRACE_MS);
        await endProcessesWithEnv(RUN_ID_VARIABLE, live.id, STOP_GRACE_MS);
      } finally {
        this.live.delete(live.id);
        live.resolveEnded();
      }
    }));
  }

  /**
   * A run active in the database that no process drives: its leftover processes on this machine are
   * ended (pi exits when its stdin closes with its server, but a running tool survives it), then it
   * becomes INTERRUPTED, its worktree kept for a refine. Guarded by its status, so two sweepers write it once.
   */
  private async interruptOrphan(run: { id: string; cardId: string; status: RunStatus }, reason: string): Promise<void> {
    const leftovers = await endProcessesWithEnv(RUN_ID_VARIABLE, run.id, STOP_GRACE_MS);
    await this.record(run.id, run.cardId, 'INTERRUPTED', { endedAt: new Date(), agentPid: null, agentTokenHash: null }, {
      reason,
      ...(leftovers ? { endedLeftoverProcesses: leftovers } : {}),
    }, run.status);
  }

  /** Server shutdown: active agents are ended and their runs marked INTERRUPTED; QUEUED runs wait for the next start. */
  async shutdown(): Promise<void> {
    this.closed = true;
    const closing = this.queue.close(); // no new run from here on; a cluster queue also waits for the runs below to end
    await Promise.all(
      [...this.live.values()].map((live) => this.end(live, 'INTERRUPTED', 'the server shut down', 1_000)),
    );
    await closing;
  }

  /** Ends a live run on request: abort what the agent is doing, then finish with `status`. Idempotent. */
  private async end(live: LiveRun, status: 'STOPPED' | 'INTERRUPTED', reason: string, abortTimeoutMs: number): Promise<void> {
    if (live.phase !== 'ended' && live.phase !== 'stopping') {
      live.phase = 'stopping';
      await live.agent?.abort(abortTimeoutMs).catch(() => undefined);
      await this.finish(live, status, { reason });
    }
    return live.ended;
  }

  /** The run whose agent holds `token`, while that run is active; null otherwise. Looked up by hash, on any node. */
  async agentForToken(token: string): Promise<AgentIdentity | null> {
    const run = await this.options.db.client.run.findUnique({ where: { agentTokenHash: hashAgentToken(token) }, select: { id: true, cardId: true, status: true } });
    return run && isActive(run.status) ? { runId: run.id, cardId: run.cardId } : null;
  }

  /** How many runs this process drives an agent for (or is starting one). */
  get activeCount(): number {
    return this.live.size;
  }

  // -- starting ---------------------------------------------------------------------------------

  /**
   * What the queue calls for each run it delivers; resolves once the run has ended here. A run still
   * QUEUED is launched. One that is not was stopped meanwhile, or is a redelivery after its worker
   * lost the lease: it never starts an agent, and if it is still STARTING/RUNNING with no live node
   * holding it, it becomes INTERRUPTED so that a refine can continue it.
   */
  private async drive(runId: string): Promise<void> {
    const driving = this.live.get(runId);
    if (driving) return driving.ended; // delivered again to the worker that drives it
    const run = await this.options.db.client.run.findUnique({ where: { id: runId }, select: { cardId: true, status: true, workerId: true } });
    if (!run) return; // deleted
    if (run.status === 'QUEUED') {
      if (this.closed) return; // shutting down: it stays QUEUED, and a worker enqueues it again at start-up
      return this.launch(runId, run.cardId);
    }
    if (run.status !== 'STARTING' && run.status !== 'RUNNING') return;
    const cluster = this.options.cluster;
    if (cluster && run.workerId && run.workerId !== cluster.nodeId && (await cluster.stillAlive(run.workerId))) {
      this.options.logger.warn({ runId, workerId: run.workerId }, `run ${runId} was delivered again, but node ${run.workerId} still heartbeats and drives it`);
      return;
    }
    await this.interruptOrphan({ id: runId, cardId: run.cardId, status: run.status }, 'the worker that ran it stopped (its lease expired)');
  }

  /** STARTING: worktree and agent; RUNNING once the agent is up and the prompt is sent. Resolves once the run has ended. */
  private async launch(runId: string, cardId: string): Promise<void> {
    let resolveEnded!: () => void;
    const ended = new Promise<void>((resolve) => (resolveEnded = resolve));
    const live: LiveRun = {
      id: runId,
      cardId,
      phase: 'starting',
      agent: null,
      driver: null,
      stateDir: null,
      lastSnapshotAt: 0,
      snapshotTimer: null,
      snapshots: Promise.resolve(),
      deferred: [],
      stderrEvents: 0,
      stderrDropped: 0,
      ended,
      resolveEnded,
    };
    this.live.set(runId, live); // before any await: the queue counts it at once
    // Served before the claim: a stop that finds nobody serving it can then rely on the QUEUED status write.
    let release: () => Promise<void>;
    try {
      release = await this.control.serve(runId, (command) => this.handle(live, command));
    } catch (error) {
      this.live.delete(runId);
      live.phase = 'ended';
      live.resolveEnded();
      throw error;
    }
    await this.startAgent(live);
    await live.ended;
    await release().catch((error: unknown) => this.options.logger.warn({ err: error, runId }, `releasing run ${runId}'s control failed`));
  }

  /** The body of `launch`: claim, worktree, agent, first prompt. */
  private async startAgent(live: LiveRun): Promise<void> {
    const { id: runId, cardId } = live;
    try {
      // The agent's token exists from the claim on, stored hashed; the run's end clears it.
      const token = randomBytes(32).toString('base64url');
      const claim = { agentTokenHash: hashAgentToken(token), ...(this.options.cluster ? { workerId: this.options.cluster.nodeId } : {}) };
      const claimed = await this.record(runId, cardId, 'STARTING', claim, {}, 'QUEUED');
      if (!claimed) {
        // Stopped or deleted while queued: give the slot to the next one.
        this.live.delete(runId);
        live.phase = 'ended';
        live.resolveEnded();
        return;
      }
      const run = await this.options.db.client.run.findUniqueOrThrow({ where: { id: runId }, select: { prompt: true, agent: true, useWorktree: true, worktreePath: true, agentSession: true, refinedFromId: true } });
      const driver = this.options.agents.get(run.agent);
      const stateDir = path.join(this.options.dataDir, 'agents', driver.name);
      live.driver = driver;
      live.stateDir = stateDir;
      let resume = run.refinedFromId ? run.agentSession : null;
      if (resume && run.refinedFromId && !(await driver.canResume(resume))) resume = (await this.snapshots.restore(run.refinedFromId, resume, stateDir)) ?? resume;

      let cwd = this.options.repoRoot;
      if (run.refinedFromId) {
        cwd = await this.options.workspaces.worktreeFor(runId);
      } else if (run.useWorktree) {
        cwd = (await this.options.workspaces.create(runId)).path;
      }
      if (live.phase !== 'starting') {
        // Stopped while the worktree was made: finish() ran before it existed. Honour cleanupOnFinish
        // here, without an event, since the terminal status must stay the run's last one.
        await live.ended;
        await this.cleanUp(runId, false).catch(() => undefined);
        return;
      }

      const agent = await driver.start(
        {
          runId,
          cwd,
          env: { ...this.options.agentEnv, [RUN_ID_VARIABLE]: runId, RUNBOARD_URL: this.serverUrl, RUNBOARD_RUN_TOKEN: token },
          withhold: this.options.withheldEnv ?? ['RUNBOARD_TOKEN'],
          resume,
          stateDir,
        },
        {
          events: (events) => {
            void this.append(live, events);
            this.options.workspaces.publishSoon(runId); // it may have committed: the remote of record gets the branch
            if (this.options.cluster) this.snapshotSoon(live); // a worker that dies leaves the conversation for a refine elsewhere
          },
          stderr: (line) => this.onStderr(live, line),
          session: (reference) => void this.options.db.write((tx) => tx.run.update({ where: { id: runId }, data: { agentSession: reference } })).catch(() => undefined),
          settled: (outcome) => {
            if (live.phase !== 'running') return;
            void this.finish(live, outcome.ok ? 'SUCCEEDED' : 'FAILED', outcome.ok ? {} : { error: outcome.error });
          },
          exited: (exit) => void this.onExit(live, exit),
        },
      );
      live.agent = agent;
      await this.options.db.write((tx) => tx.run.update({ where: { id: runId }, data: { agentPid: agent.pid ?? null } }));
      if (live.phase !== 'starting') return;

      live.phase = 'running';
      await this.record(runId, cardId, 'RUNNING', { startedAt: new Date() });
      await this.append(live, [{ type: 'user_message', data: { mode: 'PROMPT', text: truncateText(run.prompt, MESSAGE_EVENT_CHARS) } }]);
      await agent.prompt(run.prompt);
      for (const message of live.deferred.splice(0)) await this.deliver(live, message.text, message.mode);
    } catch (error) {
      // An agent that died makes its pending request fail too; let onExit report it, with stderr.
      await delay(200, live.ended);
      if (live.phase === 'ended' || live.phase === 'stopping') return;
      await this.finish(live, 'FAILED', { error: truncateText((error as Error).message, 2_000) });
    }
  }

  /** A command for this live run, from run control: what `sendMessage`, `stop` and `uncommitted` ask of the process that drives it. */
  private async handle(live: LiveRun, command: RunCommand | WorktreeCommand): Promise<unknown> {
    switch (command.kind) {
      case 'message':
        if (live.phase === 'starting') {
          live.deferred.push({ text: command.text, mode: command.mode });
          return null;
        }
        if (live.phase !== 'running') throw await this.notLive(live.id, 'send a message to');
        await this.deliver(live, command.text, command.mode);
        return null;
      case 'stop':
        await this.end(live, 'STOPPED', 'stopped by request', ABORT_TIMEOUT_MS);
        return null;
      case 'uncommitted':
        return this.options.workspaces.uncommittedHere(live.id, command.maxBytes);
      default:
        throw new InvalidInputError(`unknown run command ${(command as { kind: string }).kind}`);
    }
  }

  /** A STEER or FOLLOW_UP, recorded, then delivered by the agent's driver with the same meaning for every agent. */
  private async deliver(live: LiveRun, text: string, mode: MessageMode): Promise<void> {
    await this.append(live, [{ type: 'user_message', data: { mode, text: truncateText(text, MESSAGE_EVENT_CHARS) } }]);
    await live.agent!.send(text, mode);
  }

  // -- what the agent says ----------------------------------------------------------------------

  private onStderr(live: LiveRun, line: string): void {
    if (live.stderrEvents < MAX_STDERR_EVENTS) {
      live.stderrEvents += 1;
      void this.append(live, [{ type: 'stderr', data: { line } }]);
    } else live.stderrDropped += 1;
  }

  private async onExit(live: LiveRun, exit: AgentExit): Promise<void> {
    if (live.phase === 'ended') return;
    if (live.phase === 'stopping') return; // finish() is already ending it
    const how = exit.spawnError ?? (exit.signal ? `was killed by ${exit.signal}` : `exited with code ${exit.exitCode}`);
    const stderr = exit.stderrTail.length ? `; stderr: ${exit.stderrTail.slice(-5).join(' | ')}` : '';
    await this.finish(live, 'FAILED', { error: truncateText(`the agent ${how}${stderr}`, 2_000), exitCode: exit.exitCode, exitSignal: exit.signal });
  }

  // -- ending -----------------------------------------------------------------------------------

  /** Ends the agent, cleans up, records the terminal status as the run's last event, and frees the slot. Runs once per run. */
  private async finish(live: LiveRun, status: 'SUCCEEDED' | 'FAILED' | 'STOPPED' | 'INTERRUPTED', outcome: { reason?: string; error?: string; exitCode?: number | null; exitSignal?: string | null }): Promise<void> {
    if (live.phase === 'ended') return live.ended;
    live.agent?.flush(); // text the agent wrote before this goes first
    live.phase = 'ended'; // the agent's token dies with the status write below, and is refused already once the run is not active
    if (live.snapshotTimer) clearTimeout(live.snapshotTimer);
    try {
      if (live.stderrDropped) await this.append(live, [{ type: 'warning', data: { message: `${live.stderrDropped} more stderr lines were not recorded` } }], true);
      // The process tree is gone before the terminal status is visible: a client that sees STOPPED can rely on it.
      if (live.agent) await live.agent.terminate(STOP_GRACE_MS);
      // An agent that died by itself leaves its tools re-parented, out of reach of its process tree.
      await endProcessesWithEnv(RUN_ID_VARIABLE, live.id, STOP_GRACE_MS);
      // The branch as the agent left it reaches the remote of record (cluster mode) before cleanup and the final status.
      await this.options.workspaces.publishBranch(live.id).catch((error: Error) => this.append(live, [{ type: 'warning', data: { message: `pushing the branch failed: ${truncateText(error.message, 500)}` } }], true));
      // In a cluster the refine may land on another node: it restores the session from the database.
      if (this.options.cluster) await this.snapshotSession(live).catch((error: Error) => this.append(live, [{ type: 'warning', data: { message: `the agent session was not stored for a refine on another node: ${truncateText(error.message, 500)}` } }], true));
      // The terminal status is the run's last event, so cleaning up comes first.
      if (status !== 'INTERRUPTED') {
        await this.cleanUp(live.id).catch((error: Error) => this.append(live, [{ type: 'warning', data: { message: `cleanup failed: ${truncateText(error.message, 500)}` } }], true));
      }
    } catch (error) {
      this.options.logger.error({ err: error, runId: live.id }, `ending run ${live.id} failed before its final status; recording ${status} anyway`);
    }
    try {
      const fields = { endedAt: new Date(), agentPid: null, agentTokenHash: null, error: outcome.error ?? null, exitCode: outcome.exitCode ?? null, exitSignal: outcome.exitSignal ?? null };
      await this.recordFinal(live, status, fields, { ...(outcome.reason ? { reason: outcome.reason } : {}), ...(outcome.error ? { error: outcome.error } : {}) });
    } catch (error) {
      this.options.logger.error({ err: error, runId: live.id }, `run ${live.id}'s final status could not be written at all; it stays active until the next restart`);
    } finally {
      this.live.delete(live.id);
      live.resolveEnded();
    }
  }

  /**
   * While a run works (cluster mode): its session files are stored at most every SESSION_SNAPSHOT_MS,
   * at once for the first activity and then once more after the wait, so a worker killed mid-run
   * leaves the conversation so far for a refine on another worker. Failures are only logged: the
   * snapshot at the end reports its own.
   */
  private snapshotSoon(live: LiveRun): void {
    if (live.snapshotTimer) return;
    const take = () => void this.snapshotSession(live, false).catch((error: unknown) => this.options.logger.warn({ err: error, runId: live.id }, 'storing the agent session failed'));
    const waited = Date.now() - live.lastSnapshotAt;
    if (waited >= SESSION_SNAPSHOT_MS) {
      live.lastSnapshotAt = Date.now();
      take();
      return;
    }
    live.snapshotTimer = setTimeout(() => {
      live.snapshotTimer = null;
      if (live.phase === 'ended') return;
      live.lastSnapshotAt = Date.now();
      take();
    }, SESSION_SNAPSHOT_MS - waited);
    live.snapshotTimer.unref();
  }

  /** Stores the run's agent session files (cluster mode), or says in a warning (`warn`) that they are too large to. */
  private snapshotSession(live: LiveRun, warn = true): Promise<void> {
    const stored = live.snapshots.then(() => this.storeSession(live, warn));
    live.snapshots = stored.catch(() => undefined);
    return stored;
  }

  private async storeSession(live: LiveRun, warn: boolean): Promise<void> {
    if (!live.driver?.sessionFiles || !live.stateDir) return;
    const run = await this.options.db.client.run.findUnique({ where: { id: live.id }, select: { agentSession: true } });
    if (!run?.agentSession) return;
    const files = await live.driver.sessionFiles(run.agentSession, live.stateDir);
    if (!files.length) return;
    const outcome = await this.snapshots.take(live.id, live.stateDir, files);
    if (!outcome.stored && warn) await this.append(live, [{ type: 'warning', data: { message: `the agent session (${outcome.bytes} bytes) is larger than ${MAX_SESSION_SNAPSHOT_BYTES} bytes and was not stored: a refine can resume it only on this node` } }], true);
  }

  /** cleanupOnFinish: remove the run's own worktree, keeping a branch with unmerged commits; recorded as an event unless `withEvent` is false. */
  private async cleanUp(runId: string, withEvent = true): Promise<void> {
    const run = await this.options.db.client.run.findUnique({ where: { id: runId }, select: { cleanupOnFinish: true, ownsWorktree: true, worktreePath: true } });
    if (!run?.cleanupOnFinish || !run.ownsWorktree || !run.worktreePath) return;
    const removed = await this.options.workspaces.remove(runId);
    if (!removed) return;
    const events: RunEventInput[] = withEvent ? [{ type: 'worktree_removed', data: { branchDeleted: removed.branchDeleted, unmergedCommits: removed.unmergedCommits } }] : [];
    await this.options.eventLog.append(runId, events, { worktreeMissing: true });
  }

  // -- persistence ------------------------------------------------------------------------------

  /**
   * Writes a status change and its event in one transaction, then tells runUpdated subscribers.
   * With `ifStatus`, only when the run still has that status (a queued run that a stop and the queue
   * race for); returns whether it was written.
   */
  private async record(runId: string, cardId: string, status: RunStatus, changes: RunChanges, data: Omit<RunEventDataByType['status'], 'status'> = {}, ifStatus?: RunStatus): Promise<boolean> {
    const events: RunEventInput[] = [{ type: 'status', data: { status, ...data } }];
    const written = ifStatus
      ? await this.options.eventLog.appendIfStatus(runId, ifStatus, events, { status, ...changes })
      : await this.options.eventLog.append(runId, events, { status, ...changes });
    if (written) this.options.bus.publish('run-updated', cardId, { runId, cardId, status });
    return written !== null;
  }

  /**
   * Writes a terminal status with its event, retrying a failed write (FINAL_STATUS_ATTEMPTS, with a
   * doubling wait). If every try fails, the run is still marked FAILED without the event, saying
   * why, so it does not stay RUNNING until the next restart; each failure is logged.
   */
  private async recordFinal(live: LiveRun, status: RunStatus, changes: RunChanges, data: Record<string, unknown>): Promise<void> {
    let failure: unknown;
    for (let attempt = 1; attempt <= FINAL_STATUS_ATTEMPTS; attempt++) {
      try {
        await this.record(live.id, live.cardId, status, changes, data);
        return;
      } catch (error) {
        failure = error;
        this.options.logger.error({ err: error, runId: live.id, attempt }, `writing run ${live.id}'s final status ${status} failed (try ${attempt} of ${FINAL_STATUS_ATTEMPTS})`);
        if (attempt < FINAL_STATUS_ATTEMPTS) await delay(FINAL_STATUS_RETRY_MS * 2 ** (attempt - 1));
      }
    }
    const error = truncateText(`runboard could not record this run's final status ${status}: ${(failure as Error)?.message ?? String(failure)}`, 2_000);
    await this.options.eventLog.append(live.id, [], { ...changes, status: 'FAILED', error });
    this.options.bus.publish('run-updated', live.cardId, { runId: live.id, cardId: live.cardId, status: 'FAILED' });
    this.options.logger.error({ runId: live.id, status: 'FAILED' }, `run ${live.id} marked FAILED without its status event: ${error}`);
  }

  /** Agent events; dropped once the run has ended unless `force` (a final warning). */
  private async append(live: LiveRun, events: RunEventInput[], force = false): Promise<void> {
    if (live.phase === 'ended' && !force) return;
    try {
      await this.options.eventLog.append(live.id, events);
    } catch (error) {
      this.options.logger.error({ err: error, runId: live.id }, `recording events of run ${live.id} failed`);
    }
  }

  // -- lookups ----------------------------------------------------------------------------------

  private async findRun(runId: string) {
    const run = await this.options.db.client.run.findUnique({ where: { id: runId }, select: { id: true, cardId: true, status: true, ownsWorktree: true, worktreePath: true, branch: true } });
    if (!run) throw new NotFoundError('Run', runId);
    return run;
  }

  /** The CONFLICT for a command to a run that no process drives (NotFoundError for an unknown one). */
  private async notLive(runId: string, action: string): Promise<RunboardError> {
    const run = await this.findRun(runId);
    return new ConflictError(`cannot ${action} run ${runId}: it is ${run.status === 'QUEUED' ? 'still QUEUED' : run.status}`);
  }

  /** The run to refine, or a CONFLICT that says what is wrong with it. */
  private async refineTarget(runId: string, cardId: string) {
    const target = await this.options.db.client.run.findUnique({
      where: { id: runId },
      select: { id: true, cardId: true, status: true, agent: true, agentSession: true, worktreePath: true, branch: true, baseBranch: true, baseSha: true, useWorktree: true },
    });
    if (!target) throw new ConflictError(`cannot refine run ${runId}: no such run`);
    if (target.cardId !== cardId) throw new ConflictError(`cannot refine run ${runId}: it belongs to another card`);
    if (isActive(target.status)) throw new ConflictError(`cannot refine run ${runId}: it is still ${target.status}`);
    if (!target.agentSession) throw new ConflictError(`cannot refine run ${runId}: it has no agent session to resume`);
    if (!target.worktreePath || !(await this.options.workspaces.canRefineIn(target))) throw new ConflictError(`cannot refine run ${runId}: its worktree is gone`);
    const busy = target.branch ? await this.activeRunOn(target.branch) : null;
    if (busy) throw new ConflictError(`cannot refine run ${runId}: run ${busy} is already working in its worktree`);
    return target;
  }

  /**
   * The id of an active run working on `branch` (in its worktree), if any. By branch, not path: in a
   * cluster each node has its own path for the same worktree.
   */
  private async activeRunOn(branch: string): Promise<string | null> {
    const run = await this.options.db.client.run.findFirst({ where: { branch, status: { in: [...ACTIVE_RUN_STATUSES] } }, select: { id: true } });
    return run?.id ?? null;
  }
}

/**
 * Codex over its app-server (`codex app-server`, JSON-RPC on stdio), behind the AgentDriver interface.
 *
 * - A run is one thread, started in the run's cwd with no approvals and full access (`-c` on the command
 *   line, so Run.agentCommand shows it, and again in `thread/start`): the sandbox would make `.git`
 *   read-only and commits fail.
 * - STEER is Codex's own `turn/steer` into the running turn: it reaches the next model request. Codex has
 *   no follow-up queue, so runboard holds FOLLOW_UPs (and a steer that came as the turn ended) and starts
 *   the next turn with each once the current one completes.
 * - The run has settled when a turn completes with nothing queued or in flight: ok when it completed, the
 *   model's message when it failed.
 * - abort is `turn/interrupt`; a running command survives it until Codex exits, so stopping a run also
 *   ends the process tree (the lifecycle calls `terminate` next).
 * - Resume: `thread/resume` in a new process; the session reference is the thread's rollout file.
 *
 * Codex's home: each run gets its own CODEX_HOME under the driver's state dir (a refinement reuses the home
 * of the run it continues), so nothing runboard or a run writes lands in the user's real one. The user's
 * login still applies: `auth.json` is a symbolic link to the user's own (a refreshed token must reach the
 * user's file, or the user's copy of a rotated refresh token would stop working), and `config.toml` and
 * `AGENTS.md` are copied from it at every start (copied: Codex may write to its config).
 */
import { existsSync } from 'node:fs';
import { copyFile, lstat, mkdir, rm, symlink } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { AGENT_START_TIMEOUT_MS, type AgentCapabilities, type AgentDriver, type AgentLaunch, type AgentOutcome, type AgentSession, type AgentSink, type MessageMode } from '../../orchestrator/agent-driver.js';
import { ConflictError } from '../../orchestrator/errors.js';
import { truncateText } from '../../orchestrator/event-log.js';
import { delay } from '../../orchestrator/processes.js';
import { JsonRpcError, JsonRpcPeer, METHOD_NOT_FOUND, type JsonRpcNotification, type JsonRpcRequest } from '../json-rpc.js';
import { probeVersion } from '../version-probe.js';
import { CodexEventNormalizer } from './events.js';
import {
  CodexClientNotificationMethod,
  CodexNotificationMethod,
  CodexRequestMethod,
  CodexTurnStatus,
  parseCodexMessage,
  textInput,
  turnErrorMessage,
  type CodexRequestParams,
  type CodexTurn,
  type ThreadResult,
  type TurnNotification,
  type TurnStartResult,
} from './protocol.js';

/** Messages runboard holds for one run while its turn runs. @default 100 */
export const MAX_QUEUED_MESSAGES = 100;
/** Grace before SIGKILL for a Codex that refused to open its thread. @default 2_000 // ms */
const STOP_AFTER_FAILED_START_MS = 2_000;

/** The settings that make a run ask nothing and allow commits, as `-c` overrides and thread parameters. */
const NO_ASK = { approvalPolicy: 'never', sandbox: 'danger-full-access' } as const;
const NO_ASK_OVERRIDES = ['-c', `approval_policy="${NO_ASK.approvalPolicy}"`, '-c', `sandbox_mode="${NO_ASK.sandbox}"`];

/** Files of the user's Codex home a run's home links (`link`) or copies. */
const FROM_USER_HOME = [
  { name: 'auth.json', link: true },
  { name: 'config.toml', link: false },
  { name: 'AGENTS.md', link: false },
] as const;

/** A rollout file's name ends in its thread id: `rollout-<time>-<thread id>.jsonl`. */
const ROLLOUT_THREAD_ID = /-([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\.jsonl$/i;

const CAPABILITIES: AgentCapabilities = { steer: 'NATIVE', followUp: 'QUEUED', resume: true, usage: true, cost: false };

export interface CodexDriverOptions {
  /** The name runs pick it by. @default 'codex' */
  name?: string;
  /** The program and its leading arguments (e.g. `-c model="o3"`). @default codex on PATH */
  command?: readonly string[] | null;
  /** Added to its environment (under runboard's own run variables). */
  env?: Readonly<Record<string, string>>;
}

export class CodexDriver implements AgentDriver {
  readonly name: string;
  readonly protocol = 'codex-app-server';
  readonly capabilities = CAPABILITIES;
  private readonly command: readonly string[];

  constructor(private readonly options: CodexDriverOptions = {}) {
    this.name = options.name ?? 'codex';
    this.command = options.command?.length ? options.command : ['codex'];
  }

  describe(): string {
    return [...this.command, 'app-server', ...NO_ASK_OVERRIDES].join(' ');
  }

  async canResume(rolloutFile: string): Promise<boolean> {
    return ROLLOUT_THREAD_ID.test(rolloutFile) && homeOfRollout(rolloutFile) !== null && existsSync(rolloutFile);
  }

  probe(): Promise<{ available: boolean; version: string | null }> {
    return probeVersion(this.command);
  }

  async start(launch: AgentLaunch, sink: AgentSink): Promise<AgentSession> {
    const homes = path.join(launch.stateDir, 'homes');
    const resumeThread = launch.resume ? ROLLOUT_THREAD_ID.exec(launch.resume)?.[1] : undefined;
    const home = launch.resume ? homeOfRollout(launch.resume) : path.join(homes, launch.runId);
    // A thread continues in the home of its own run, which runboard made: never anywhere else it would write to.
    if (launch.resume && (!resumeThread || !home || path.dirname(path.resolve(home)) !== path.resolve(homes))) {
      throw new ConflictError(`not a Codex thread file of runboard's that can be resumed: ${launch.resume}`);
    }
    await prepareHome(home!, userCodexHome({ ...this.options.env, ...launch.env }));

    const [program, ...leading] = this.command;
    const session = new CodexSession(sink);
    const peer = new JsonRpcPeer(
      { command: program!, args: [...leading, 'app-server', ...NO_ASK_OVERRIDES], cwd: launch.cwd, env: { ...this.options.env, ...launch.env, CODEX_HOME: home! }, withhold: launch.withhold },
      {
        onNotification: (notification) => session.onNotification(notification),
        onRequest: (request) => session.onRequest(request),
        onStderr: (line) => sink.stderr(line),
        onProtocolError: (error) => sink.stderr(`[not JSON-RPC] ${truncateText(error.message, 2_000)}`),
      },
    );
    session.attach(peer);
    try {
      await session.request(CodexRequestMethod.Initialize, { clientInfo: { name: 'runboard', title: 'runboard', version: '1' }, capabilities: null }, AGENT_START_TIMEOUT_MS);
      peer.notify(CodexClientNotificationMethod.Initialized);
      const access = { cwd: launch.cwd, ...NO_ASK };
      const { thread } = resumeThread
        ? await session.request<ThreadResult>(CodexRequestMethod.ThreadResume, { threadId: resumeThread, ...access })
        : await session.request<ThreadResult>(CodexRequestMethod.ThreadStart, access);
      session.threadId = thread.id;
      if (thread.path) sink.session(thread.path);
      return session;
    } catch (error) {
      // Codex refused (a thread it cannot resume, say) and lives on: end it. One that died says so through `exited`.
      if (error instanceof JsonRpcError && error.code !== null) await session.terminate(STOP_AFTER_FAILED_START_MS);
      throw error;
    }
  }
}

/** One app-server process and its thread, and what the driver tracks to decide when the run has settled. */
class CodexSession implements AgentSession {
  threadId = '';
  private peer!: JsonRpcPeer;
  private readonly normalizer: CodexEventNormalizer;
  /** A turn was started and has not completed. */
  private working = false;
  /** The running turn's id, once known (from turn/start's answer or turn/started). */
  private turnId: string | null = null;
  /** turn/start sent and not answered yet: resolves with the turn's id. */
  private turnStarting: Promise<string | null> | null = null;
  /** Messages that start the next turns, oldest first. */
  private readonly queue: string[] = [];
  /** send() calls under way: the run has not settled while a message is on its way. */
  private sending = 0;
  /** The last completed turn's outcome. */
  private outcome: AgentOutcome = { ok: true };
  /** Set once the first prompt is sent: before that, being idle means nothing. */
  private prompted = false;
  /** abort() interrupted the turn: what follows is the lifecycle ending the run, not the next turn. */
  private aborted = false;
  private terminating = false;
  private settled = false;
  private readonly turnEndWaiters: (() => void)[] = [];

  constructor(private readonly sink: AgentSink) {
    this.normalizer = new CodexEventNormalizer((events) => sink.events(events));
  }

  attach(peer: JsonRpcPeer): void {
    this.peer = peer;
    void peer.exited.then((exit) => {
      if (!this.terminating) this.sink.exited(exit);
    });
  }

  get pid(): number | undefined {
    return this.peer.pid;
  }

  /** A typed request to Codex. */
  request<T, M extends CodexRequestMethod = CodexRequestMethod>(method: M, params: CodexRequestParams[M], timeoutMs?: number): Promise<T> {
    return this.peer.request<T>(method, params, timeoutMs);
  }

  async prompt(text: string): Promise<void> {
    this.prompted = true;
    await this.startTurn(text);
  }

  async send(text: string, mode: MessageMode): Promise<void> {
    this.sending += 1;
    try {
      if (!this.working) return await this.startTurn(text);
      if (mode === 'FOLLOW_UP') return this.enqueue(text);
      const turnId = this.turnId ?? (await this.turnStarting);
      if (turnId && this.working) {
        try {
          await this.request(CodexRequestMethod.TurnSteer, { threadId: this.threadId, input: [textInput(text)], expectedTurnId: turnId });
          return;
        } catch (error) {
          if (!(error instanceof JsonRpcError) || error.code === null) throw error; // Codex is gone or hung
          // Codex refused it: the turn ended meanwhile. It starts the next turn instead, before any follow-up.
        }
      }
      if (this.working) this.enqueue(text, true);
      else await this.startTurn(text);
    } finally {
      this.sending -= 1;
      this.maybeSettle();
    }
  }

  async abort(timeoutMs: number): Promise<void> {
    if (!this.working) return;
    this.aborted = true;
    const ended = new Promise<void>((resolve) => this.turnEndWaiters.push(resolve));
    const turnId = this.turnId ?? (await this.turnStarting);
    if (turnId) await this.request(CodexRequestMethod.TurnInterrupt, { threadId: this.threadId, turnId }, timeoutMs).catch(() => undefined);
    if (this.working) await delay(timeoutMs, ended);
  }

  flush(): void {
    this.normalizer.flush();
  }

  async terminate(graceMs: number): Promise<void> {
    this.terminating = true;
    await this.peer.terminate(graceMs);
  }

  onNotification(notification: JsonRpcNotification): void {
    if (this.terminating) return;
    const message = parseCodexMessage(notification.raw);
    this.normalizer.handle(message);
    if (message.kind !== 'notification' || (message.params as { threadId?: unknown }).threadId !== this.threadId) return;
    if (message.method === CodexNotificationMethod.TurnStarted && this.working) this.turnId ??= (message as TurnNotification).params.turn.id;
    else if (message.method === CodexNotificationMethod.TurnCompleted) this.onTurnCompleted((message as TurnNotification).params.turn);
  }

  /** Codex asks only for what a run in full access with approvalPolicy "never" never needs; runs cannot answer. */
  onRequest(request: JsonRpcRequest): void {
    this.sink.events([{ type: 'warning', data: { message: `Codex asked ${request.method}; runboard runs are non-interactive, so it was declined` } }]);
    this.peer.respondError(request.id, METHOD_NOT_FOUND, 'runboard runs are non-interactive');
  }

  private async startTurn(text: string): Promise<void> {
    this.working = true;
    this.turnId = null;
    const request = this.request<TurnStartResult>(CodexRequestMethod.TurnStart, { threadId: this.threadId, input: [textInput(text)] });
    this.turnStarting = request.then(
      ({ turn }) => turn.id,
      () => null,
    );
    try {
      const { turn } = await request;
      if (this.working) this.turnId ??= turn.id;
    } catch (error) {
      this.working = false;
      throw error;
    } finally {
      this.turnStarting = null;
    }
  }

  private enqueue(text: string, first = false): void {
    if (this.queue.length >= MAX_QUEUED_MESSAGES) throw new ConflictError(`${MAX_QUEUED_MESSAGES} messages already wait for this run's turn to end`);
    if (first) this.queue.unshift(text);
    else this.queue.push(text);
    this.reportQueue();
  }

  private reportQueue(): void {
    this.sink.events([{ type: 'queue', data: { steering: 0, followUp: this.queue.length } }]);
  }

  private onTurnCompleted(turn: CodexTurn): void {
    if (!this.working) return; // not a turn of this run's (none is under way)
    this.working = false;
    this.turnId = null;
    this.outcome =
      turn.status === CodexTurnStatus.Completed
        ? { ok: true }
        : { ok: false, error: turn.error ? turnErrorMessage(turn.error) : `the turn ended ${turn.status}` };
    for (const resolve of this.turnEndWaiters.splice(0)) resolve();
    if (this.aborted) return;
    const next = this.queue.shift();
    if (next === undefined) return this.maybeSettle();
    this.reportQueue();
    this.startTurn(next).catch((error: Error) => {
      this.outcome = { ok: false, error: `the queued message could not start a turn: ${error.message}` };
      this.maybeSettle();
    });
  }

  private maybeSettle(): void {
    if (!this.prompted || this.settled || this.terminating || this.aborted || this.working || this.sending > 0 || this.queue.length > 0) return;
    this.settled = true;
    this.sink.settled(this.outcome);
  }
}

/** The user's own Codex home: CODEX_HOME as the agent would see it, else ~/.codex. */
function userCodexHome(env: Readonly<Record<string, string>>): string {
  return env.CODEX_HOME || process.env.CODEX_HOME || path.join(os.homedir(), '.codex');
}

/** The run home a rollout file lives in: the parent of its `sessions` folder; null when it is in none. */
function homeOfRollout(rolloutFile: string): string | null {
  for (let dir = path.dirname(rolloutFile); path.dirname(dir) !== dir; dir = path.dirname(dir)) {
    if (path.basename(dir) === 'sessions') return path.dirname(dir);
  }
  return null;
}

/** Makes `home` a run's CODEX_HOME: the user's login linked, their config and instructions copied as they are now. */
async function prepareHome(home: string, userHome: string): Promise<void> {
  await mkdir(home, { recursive: true });
  if (path.resolve(home) === path.resolve(userHome)) return;
  for (const { name, link } of FROM_USER_HOME) {
    const source = path.join(userHome, name);
    const target = path.join(home, name);
    if (await lstat(target).catch(() => null)) await rm(target, { force: true });
    if (!existsSync(source)) continue;
    if (link) await symlink(path.resolve(source), target);
    else await copyFile(source, target);
  }
}

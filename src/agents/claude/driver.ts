/**
 * Claude Code over its stream-json mode, behind the AgentDriver interface (../shared/AGENTS-NATIVE.md).
 * It runs in bypassPermissions (no asking; as root that needs IS_SANDBOX=1, which the driver sets), with
 * `--replay-user-messages` so every message runboard writes is echoed once it enters the conversation.
 *
 * - STEER is a plain user message written mid-turn: Claude Code folds it into its next model request (with
 *   the running tool's result, as a "the user sent a new message" reminder), or, when the turn makes no
 *   further request, runs it as the next turn. That is STEER's contract (a running tool or answer is not
 *   cut). `priority: "now"` is not used: it cuts a streaming answer, and aborts a tool it arrives just
 *   before (observed with 2.1.330: a steer 50 ms after the tool_use ended the turn "aborted_tools").
 * - FOLLOW_UP is held by runboard until the turn's `result`: written mid-turn, Claude Code would fold it
 *   into the running turn, which is a steer.
 * - Abort is the `interrupt` control request (it kills a running tool's group; the process stays).
 * - Resume is `--resume <session id>`; the session file lives in the user's own Claude config dir.
 *
 * When a run is settled: Claude Code ends every turn with a `result` and stays alive. A message written as
 * a turn ends (or after an interrupt) runs as the next turn, with its own `result`, so a `result` settles the
 * run only once every message written has been echoed back and runboard holds no follow-up.
 */
import { randomUUID } from 'node:crypto';
import { readdir } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import type { AgentCapabilities, AgentDriver, AgentLaunch, AgentSession, AgentSink, MessageMode } from '../../orchestrator/agent-driver.js';
import { ConflictError } from '../../orchestrator/errors.js';
import { truncateText } from '../../orchestrator/event-log.js';
import { AgentProtocolError } from '../json-line.js';
import { MAX_AGENT_LINE_BYTES, StdioChild } from '../stdio-child.js';
import { PREVIEW_CHARS } from '../text-coalescer.js';
import { ClaudeEventNormalizer } from './events.js';
import { ClaudeMessageType, ClaudeSystemSubtype, encodeClaudeInput, interruptInput, parseClaudeLine, userInput, type ClaudeInput, type ClaudeMessage, type ResultMessage, type UserInput } from './protocol.js';

/** How to start Claude Code: from config (RUNBOARD_CLAUDE_COMMAND / RUNBOARD_CLAUDE_ARGS). */
export interface ClaudeDriverOptions {
  /** The name runs pick it by. @default 'claude' */
  name?: string;
  /** The program and its leading arguments. @default ['claude'], found on PATH */
  command?: readonly string[] | null;
  /** Added after runboard's own flags (e.g. `--model claude-sonnet-4-5`). */
  args?: readonly string[];
  /** The environment agents get on top of the server's (where the user's Claude config dir is found). */
  env?: Readonly<Record<string, string>>;
}

/** Follow-ups runboard holds for one run until the turn ends. @default 100 */
export const MAX_HELD_FOLLOW_UPS = 100;

/** Flags for a non-interactive stream-json session in the no-ask mode, every written message echoed. */
export const CLAUDE_FLAGS = ['-p', '--input-format', 'stream-json', '--output-format', 'stream-json', '--verbose', '--replay-user-messages', '--permission-mode', 'bypassPermissions'];

const CAPABILITIES: AgentCapabilities = { steer: 'NATIVE', followUp: 'QUEUED', resume: true, usage: true, cost: true };

const SESSION_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** The `claude` preset: Claude Code over stream-json (see above). */
export class ClaudeDriver implements AgentDriver {
  readonly name: string;
  readonly protocol = 'claude-stream-json';
  readonly capabilities = CAPABILITIES;
  private readonly command: readonly string[];

  constructor(private readonly options: ClaudeDriverOptions = {}) {
    this.name = options.name ?? 'claude';
    this.command = options.command?.length ? options.command : ['claude'];
  }

  describe(): string {
    return [...this.command, ...CLAUDE_FLAGS, ...(this.options.args ?? [])].join(' ');
  }

  /** Whether the session's transcript is in the Claude config dir the agent would read. */
  async canResume(sessionId: string): Promise<boolean> {
    if (!SESSION_ID.test(sessionId)) return false;
    const env = { ...process.env, ...this.options.env };
    const projects = path.join(env.CLAUDE_CONFIG_DIR ?? path.join(env.HOME ?? os.homedir(), '.claude'), 'projects');
    const dirs = await readdir(projects, { withFileTypes: true }).catch(() => []);
    for (const dir of dirs) {
      if (!dir.isDirectory()) continue;
      const files = await readdir(path.join(projects, dir.name)).catch(() => [] as string[]);
      if (files.includes(`${sessionId}.jsonl`)) return true;
    }
    return false;
  }

  async probe(): Promise<{ available: boolean; version: string | null }> {
    const [program, ...leading] = this.command;
    const result = await execa(program!, [...leading, '--version'], { reject: false, timeout: 10_000, stdin: 'ignore', env: this.options.env });
    const version = /\d+\.\d+\.\d+\S*/.exec(`${result.stdout} ${result.stderr}`)?.[0] ?? null;
    return { available: !result.failed, version };
  }

  async start(launch: AgentLaunch, sink: AgentSink): Promise<AgentSession> {
    const [program, ...leading] = this.command;
    // A new session gets its id up front; a refinement keeps the earlier one (Claude Code keeps it on --resume).
    const sessionId = launch.resume ?? randomUUID();
    const session = launch.resume ? ['--resume', sessionId] : ['--session-id', sessionId];
    const claudeSession = new ClaudeSession(sink, sessionId);
    const child = new StdioChild(
      {
        command: program!,
        args: [...leading, ...CLAUDE_FLAGS, ...session, ...(this.options.args ?? [])],
        cwd: launch.cwd,
        // As root Claude Code refuses bypassPermissions unless told it is sandboxed.
        env: { ...(process.getuid?.() === 0 ? { IS_SANDBOX: '1' } : {}), ...this.options.env, ...launch.env },
        withhold: launch.withhold,
      },
      {
        onLine: (line) => claudeSession.onLine(line),
        onStderr: (line) => sink.stderr(line),
        onOversizedLine: (size) => sink.stderr(`[not JSON] dropped a ${size}-byte stdout line over the ${MAX_AGENT_LINE_BYTES}-byte cap`),
      },
    );
    claudeSession.attach(child);
    // Claude Code reads stdin as it comes: a message written before it is up waits in the pipe.
    return claudeSession;
  }
}

/** One Claude Code process and what the driver tracks of it to decide when it has settled. */
class ClaudeSession implements AgentSession {
  private child!: StdioChild;
  private readonly normalizer: ClaudeEventNormalizer;
  /** User messages written, and how many Claude Code has echoed back (taken into its conversation). */
  private written = 0;
  private delivered = 0;
  /** From the first message written until a settle; a FOLLOW_UP sent meanwhile is held. */
  private working = false;
  /** FOLLOW_UPs held until the turn ends, oldest first. */
  private readonly heldFollowUps: string[] = [];
  private reportedSession: string | null = null;
  private readonly pendingControl = new Map<string, () => void>();
  private nextControlId = 1;
  private terminating = false;

  /** `sessionId` is reported at once (a server killed before Claude Code's first line still knows it), and again if Claude Code names another. */
  constructor(
    private readonly sink: AgentSink,
    sessionId: string,
  ) {
    this.normalizer = new ClaudeEventNormalizer((events) => sink.events(events));
    this.reportedSession = sessionId;
    sink.session(sessionId);
  }

  attach(child: StdioChild): void {
    this.child = child;
    void child.exited.then((exit) => {
      for (const done of this.pendingControl.values()) done();
      this.pendingControl.clear();
      if (!this.terminating) this.sink.exited(exit);
    });
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  async prompt(text: string): Promise<void> {
    this.write(userInput(text));
  }

  async send(text: string, mode: MessageMode): Promise<void> {
    if (mode === 'FOLLOW_UP' && this.working) {
      if (this.heldFollowUps.length >= MAX_HELD_FOLLOW_UPS) throw new ConflictError(`${MAX_HELD_FOLLOW_UPS} follow-ups already wait for this turn to end`);
      this.heldFollowUps.push(text);
      this.sink.events([{ type: 'queue', data: { steering: 0, followUp: this.heldFollowUps.length } }]);
      return;
    }
    // A steer reaches the next model request of the running turn, or starts one; so does anything sent while idle.
    this.write(userInput(text));
  }

  async abort(timeoutMs: number): Promise<void> {
    if (!this.working || this.child.done) return;
    const requestId = `rb-interrupt-${this.nextControlId++}`;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => finish(), timeoutMs);
      const finish = () => {
        clearTimeout(timer);
        this.pendingControl.delete(requestId);
        resolve();
      };
      this.pendingControl.set(requestId, finish);
      this.writeInput(interruptInput(requestId));
    });
  }

  flush(): void {
    this.normalizer.flush();
  }

  async terminate(graceMs: number): Promise<void> {
    this.terminating = true;
    await this.child.terminate(graceMs);
  }

  onLine(line: string): void {
    if (this.terminating) return;
    let message: ClaudeMessage;
    try {
      message = parseClaudeLine(line);
    } catch (error) {
      this.sink.stderr(`[not JSON] ${truncateText((error as AgentProtocolError).message, PREVIEW_CHARS)}`);
      return;
    }
    this.normalizer.handle(message);
    switch (message.type) {
      case ClaudeMessageType.System:
        if (message.subtype === ClaudeSystemSubtype.Init && typeof message.session_id === 'string' && message.session_id !== this.reportedSession) {
          this.reportedSession = message.session_id;
          this.sink.session(message.session_id);
        }
        break;
      case ClaudeMessageType.User:
        if (message.isReplay) this.delivered += 1;
        break;
      case ClaudeMessageType.ControlResponse:
        this.pendingControl.get(message.response.request_id)?.();
        break;
      case ClaudeMessageType.Result:
        this.onResult(message);
        break;
      default:
        break;
    }
  }

  private onResult(result: ResultMessage): void {
    if (!this.working) return;
    // A steer cut this turn short, or a message crossed its end: the turn that takes it is still to come.
    if (this.delivered < this.written) return;
    const next = this.heldFollowUps.shift();
    if (next !== undefined) {
      this.sink.events([{ type: 'queue', data: { steering: 0, followUp: this.heldFollowUps.length } }]);
      this.write(userInput(next));
      return;
    }
    this.working = false;
    this.normalizer.flush();
    // An interrupted turn ("aborted_streaming", "aborted_tools") is a stop, not the model's failure.
    const failed = result.is_error && !result.terminal_reason?.startsWith('aborted');
    this.sink.settled(failed ? { ok: false, error: truncateText(result.result || `Claude Code ended the turn with ${result.subtype}`, PREVIEW_CHARS) } : { ok: true });
  }

  private write(message: UserInput): void {
    this.written += 1;
    this.working = true;
    this.writeInput(message);
  }

  private writeInput(input: ClaudeInput): void {
    if (this.child.done) throw new Error('Claude Code has exited');
    this.child.writeLine(encodeClaudeInput(input).trimEnd());
  }
}

/**
 * pi over its RPC mode (`pi --mode rpc`), behind the AgentDriver interface. pi steers and queues
 * follow-ups natively (`prompt` with streamingBehavior), resumes a session from its file, and
 * reports usage and cost per answer.
 *
 * When a run is settled: pi stays alive after its work, so settling is decided from its events. A
 * turn ends with `agent_end`, but pi writes `auto_retry_start` right after an `agent_end` it will
 * retry, so the driver then asks `get_state`: by the time that is answered any retry has announced
 * itself. A message sent or an `agent_start` seen meanwhile bumps `generation` and voids the answer.
 */
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { AGENT_START_TIMEOUT_MS, type AgentCapabilities, type AgentDriver, type AgentLaunch, type AgentSession, type AgentSink, type MessageMode } from '../../orchestrator/agent-driver.js';
import { truncateText } from '../../orchestrator/event-log.js';
import { PiEventNormalizer } from './events.js';
import { AgentCommandType, AgentMessageType, type AgentMessage, type AgentState } from './protocol.js';
import { AgentProcess } from './rpc.js';
import { probeVersion } from '../version-probe.js';

export interface PiDriverOptions {
  /** The name runs pick it by. @default 'pi' */
  name?: string;
  /** Added to its environment (under runboard's own run variables). */
  env?: Readonly<Record<string, string>>;
  /** The program and its leading arguments. @default pi from this project's dependencies */
  command?: readonly string[] | null;
  /** Added after `--mode rpc` (e.g. `--provider openai --model gpt-4o`). */
  args?: readonly string[];
}

const CAPABILITIES: AgentCapabilities = { steer: 'NATIVE', followUp: 'NATIVE', resume: true, usage: true, cost: true };

export class PiDriver implements AgentDriver {
  readonly name: string;
  readonly protocol = 'pi-rpc';
  readonly capabilities = CAPABILITIES;
  private readonly command: readonly string[];

  constructor(private readonly options: PiDriverOptions = {}) {
    this.name = options.name ?? 'pi';
    this.command = options.command?.length ? options.command : defaultPiCommand();
  }

  describe(): string {
    const [program, ...rest] = this.command;
    const name = program === process.execPath && rest[0]?.endsWith(path.join('pi-coding-agent', 'dist', 'cli.js')) ? 'pi' : [program, ...rest].join(' ');
    return [name, '--mode', 'rpc', ...(this.options.args ?? [])].join(' ');
  }

  async canResume(sessionFile: string): Promise<boolean> {
    return existsSync(sessionFile);
  }

  /** pi's session is one JSON-lines file, under the state dir unless a refine resumed one from elsewhere. */
  async sessionFiles(sessionFile: string, stateDir: string): Promise<string[]> {
    const inside = !path.relative(stateDir, sessionFile).startsWith('..') && path.isAbsolute(sessionFile);
    return inside && existsSync(sessionFile) ? [sessionFile] : [];
  }

  probe(): Promise<{ available: boolean; version: string | null }> {
    return probeVersion(this.command);
  }

  async start(launch: AgentLaunch, sink: AgentSink): Promise<AgentSession> {
    // Always a path: `--session <id>` from another directory asks on stdin whether to fork (PI-RPC.md).
    const sessionFile = launch.resume ?? path.join(launch.stateDir, 'sessions', `${launch.runId}.jsonl`);
    await mkdir(path.dirname(sessionFile), { recursive: true });
    if (launch.resume) await moveSession(sessionFile, launch.cwd);
    const [program, ...leading] = this.command;
    const session = new PiSession(sink);
    const agent = new AgentProcess(
      { command: program!, args: [...leading, '--mode', 'rpc', ...(this.options.args ?? []), '--session', sessionFile], cwd: launch.cwd, env: { ...this.options.env, ...launch.env }, withhold: launch.withhold },
      {
        onMessage: (message) => session.onMessage(message),
        onStderr: (line) => sink.stderr(line),
        onProtocolError: (error) => sink.stderr(`[not JSON] ${truncateText(error.message, 2_000)}`),
      },
    );
    session.attach(agent);
    // A command written before pi is up is queued and answered: this resolves once it accepts messages.
    const state = (await agent.request({ type: AgentCommandType.GetState }, AGENT_START_TIMEOUT_MS)).data as AgentState | undefined;
    sink.session(state?.sessionFile ?? sessionFile);
    return session;
  }
}

/** One pi process and what the driver tracks of it to decide when it has settled. */
class PiSession implements AgentSession {
  private agent!: AgentProcess;
  private readonly normalizer: PiEventNormalizer;
  /** Between agent_start and agent_end. */
  private working = false;
  /** An auto_retry_start came and its auto_retry_end has not. */
  private retryPending = false;
  /** The last assistant message's outcome, for FAILED. */
  private lastStopReason: string | null = null;
  private lastError: string | null = null;
  /** Bumped by every agent_start and every message sent; a settle check from before is void. */
  private generation = 0;
  /** Set once the first prompt is sent: before that, pi's idle state means nothing. */
  private prompted = false;
  private terminating = false;

  constructor(private readonly sink: AgentSink) {
    this.normalizer = new PiEventNormalizer((events) => sink.events(events));
  }

  attach(agent: AgentProcess): void {
    this.agent = agent;
    void agent.exited.then((exit) => {
      if (!this.terminating) this.sink.exited(exit);
    });
  }

  get pid(): number | undefined {
    return this.agent.pid;
  }

  async prompt(text: string): Promise<void> {
    this.prompted = true;
    this.generation += 1;
    await this.agent.request({ type: AgentCommandType.Prompt, message: text });
  }

  /** A `prompt` with streamingBehavior: queued while pi works, started at once if it just stopped. */
  async send(text: string, mode: MessageMode): Promise<void> {
    this.generation += 1; // a settle check already under way must not end the run under this message
    await this.agent.request({ type: AgentCommandType.Prompt, message: text, streamingBehavior: mode === 'STEER' ? 'steer' : 'followUp' });
  }

  async abort(timeoutMs: number): Promise<void> {
    if (this.working) await this.agent.request({ type: AgentCommandType.Abort }, timeoutMs).catch(() => undefined);
  }

  flush(): void {
    this.normalizer.flush();
  }

  async terminate(graceMs: number): Promise<void> {
    this.terminating = true;
    await this.agent.terminate(graceMs);
  }

  onMessage(message: AgentMessage): void {
    if (this.terminating) return;
    this.normalizer.handle(message);
    switch (message.type) {
      case AgentMessageType.AgentStart:
        this.working = true;
        this.generation += 1;
        break;
      case AgentMessageType.AgentEnd:
        this.working = false;
        this.checkSettled();
        break;
      case AgentMessageType.MessageEnd:
        if (message.message.role === 'assistant') {
          this.lastStopReason = message.message.stopReason ?? null;
          this.lastError = message.message.errorMessage ?? null;
        }
        break;
      case AgentMessageType.AutoRetryStart:
        this.retryPending = true;
        break;
      case AgentMessageType.AutoRetryEnd:
        this.retryPending = false;
        if (!message.success && message.finalError) this.lastError = message.finalError;
        this.checkSettled();
        break;
      default:
        break;
    }
  }

  private checkSettled(): void {
    if (!this.prompted || this.terminating) return;
    const generation = this.generation;
    this.agent.request({ type: AgentCommandType.GetState }).then(
      async (response) => {
        if (this.terminating || this.generation !== generation || this.working || this.retryPending) return;
        const state = response.data as AgentState;
        if (state.isStreaming) return;
        if (state.pendingMessageCount > 0) {
          // Queued while pi was idle: it only delivers those with a next prompt.
          const text = 'Continue with the queued messages above.';
          this.sink.events([{ type: 'user_message', data: { mode: 'FOLLOW_UP', text } }]);
          await this.send(text, 'FOLLOW_UP');
          return;
        }
        this.sink.settled(this.lastStopReason === 'error' ? { ok: false, error: this.lastError ?? 'the model request failed' } : { ok: true });
      },
      () => undefined, // pi exited: `exited` reports it
    ).catch(() => undefined); // send() failing means pi is gone, which `exited` reports
  }
}

/** pi from this project's own dependencies, started with the running node. */
export function defaultPiCommand(): string[] {
  for (let dir = path.dirname(fileURLToPath(import.meta.url)); ; dir = path.dirname(dir)) {
    const cli = path.join(dir, 'node_modules', '@mariozechner', 'pi-coding-agent', 'dist', 'cli.js');
    if (existsSync(cli)) return [process.execPath, cli];
    if (path.dirname(dir) === dir) return ['pi'];
  }
}

/**
 * Points a session at the directory it resumes in. pi runs a resumed session's tools in its header's
 * `cwd` and exits if that is gone (PI-RPC.md): a refine on another worker works in another path.
 */
async function moveSession(sessionFile: string, cwd: string): Promise<void> {
  const text = await readFile(sessionFile, 'utf8');
  const end = text.indexOf('\n');
  const header = JSON.parse(end === -1 ? text : text.slice(0, end)) as { type?: string; cwd?: string };
  if (header.type !== 'session' || header.cwd === cwd) return;
  await writeFile(sessionFile, JSON.stringify({ ...header, cwd }) + (end === -1 ? '' : text.slice(end)));
}

/**
 * Any Agent Client Protocol agent (gemini-cli `--acp`, and any configured one: Copilot CLI, Goose,
 * OpenCode, Cursor…), behind the AgentDriver interface, through @agentclientprotocol/sdk 2.x's client
 * over the shared stdio child.
 *
 * A turn is one `session/prompt` request: its response is the turn's end, with its stop reason and, for
 * some agents, its usage. ACP has no steer and its agents treat a second prompt differently (queued,
 * merged and never answered, or cancelling the first: AGENTS-ACP.md §8), so runboard never sends one
 * while a turn runs: a STEER cancels the turn (`session/cancel`) and prompts with the steer once the
 * cancelled turn has answered; a FOLLOW_UP waits in runboard's queue until the turn ends. The run has
 * settled when a turn ends with nothing left to send.
 *
 * Runs are non-interactive: the session is switched to the agent's no-ask mode (gemini-cli's `yolo`),
 * and a permission request that still comes is allowed once.
 */
import type * as acp from '@agentclientprotocol/sdk';
import { AGENT_START_TIMEOUT_MS, type AgentCapabilities, type AgentDriver, type AgentLaunch, type AgentOutcome, type AgentSession, type AgentSink, type MessageMode } from '../../orchestrator/agent-driver.js';
import { ConflictError } from '../../orchestrator/errors.js';
import { truncateText } from '../../orchestrator/event-log.js';
import { delay } from '../../orchestrator/processes.js';
import { parseJsonObjectLine } from '../json-line.js';
import { MAX_AGENT_LINE_BYTES, StdioChild } from '../stdio-child.js';
import { probeVersion } from '../version-probe.js';
import { AcpEventNormalizer } from './events.js';
import { allowPermission, promptErrorMessage, promptUsage } from './protocol.js';

/** Messages runboard holds for one run while its turn runs. @default 100 */
export const MAX_QUEUED_MESSAGES = 100;

/** One configured ACP agent. */
export interface AcpDriverOptions {
  /** The name runs pick it by. */
  name: string;
  /** The program and any leading arguments (what `--version` is asked of). */
  command: readonly string[];
  /** The arguments that make it speak ACP on stdio (e.g. `--acp`). */
  args?: readonly string[];
  /** Added to its environment (under runboard's own run variables). */
  env?: Readonly<Record<string, string>>;
  /** The session mode that asks nothing (`yolo`, `bypassPermissions`, `full-access`); null when it has none. */
  noAskMode?: string | null;
  /** A refinement may `session/load` its session in a new process. @default true */
  resume?: boolean;
  /** Its prompt responses carry token counts. @default false */
  usage?: boolean;
}

/** One configured ACP agent: STEER emulated, FOLLOW_UP queued by runboard, resume as configured. */
export class AcpDriver implements AgentDriver {
  readonly protocol = 'acp';
  readonly name: string;
  readonly capabilities: AgentCapabilities;

  constructor(private readonly options: AcpDriverOptions) {
    this.name = options.name;
    this.capabilities = { steer: 'EMULATED', followUp: 'QUEUED', resume: options.resume ?? true, usage: options.usage ?? false, cost: false };
  }

  describe(): string {
    const line = [...this.options.command, ...(this.options.args ?? [])].join(' ');
    return this.options.noAskMode ? `${line} (session mode ${this.options.noAskMode})` : line;
  }

  async canResume(sessionId: string): Promise<boolean> {
    return this.capabilities.resume && sessionId.length > 0;
  }

  probe(): Promise<{ available: boolean; version: string | null }> {
    return probeVersion(this.options.command);
  }

  async start(launch: AgentLaunch, sink: AgentSink): Promise<AgentSession> {
    // Loaded on the first ACP run: the SDK and its zod schemas are a tenth of runboard's start-up.
    const sdk = await import('@agentclientprotocol/sdk');
    const [program, ...leading] = this.options.command;
    const session = new AcpSession(sink);
    // The SDK's client reads and writes JSON-RPC messages; the stdio child splits its stdout into capped lines.
    let incoming!: ReadableStreamDefaultController<acp.AnyMessage>;
    const readable = new ReadableStream<acp.AnyMessage>({ start: (controller) => void (incoming = controller) });
    const child = new StdioChild(
      { command: program!, args: [...leading, ...(this.options.args ?? [])], cwd: launch.cwd, env: { ...this.options.env, ...launch.env }, withhold: launch.withhold },
      {
        onLine: (line) => {
          try {
            incoming.enqueue(parseJsonObjectLine(line) as acp.AnyMessage);
          } catch (error) {
            sink.stderr(`[not JSON] ${truncateText((error as Error).message, 2_000)}`);
          }
        },
        onStderr: (line) => sink.stderr(line),
        onOversizedLine: (size) => sink.stderr(`[dropped a ${size}-byte stdout line over the ${MAX_AGENT_LINE_BYTES}-byte cap]`),
      },
    );
    const writable = new WritableStream<acp.AnyMessage>({ write: (message) => void (!child.done && child.writeLine(JSON.stringify(message))) });
    const connection = sdk
      .client()
      .onNotification('session/update', ({ params }) => session.onUpdate(params))
      .onRequest('session/request_permission', ({ params }) => allowPermission(params))
      .connect({ readable, writable });
    void child.exited.then(() => {
      // The connection closes and rejects what is pending; terminate may have closed it first.
      if (!connection.signal.aborted) incoming.close();
    });
    session.attach(child, connection);

    try {
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`no ACP session within ${AGENT_START_TIMEOUT_MS} ms`)), AGENT_START_TIMEOUT_MS)));
      const sessionId = await Promise.race([this.open(connection, launch, session, sdk.PROTOCOL_VERSION), timeout]).finally(() => clearTimeout(timer));
      sink.session(sessionId);
      return session;
    } catch (error) {
      if (!child.done) await session.terminate(2_000);
      throw new Error(`${this.name}: ${promptErrorMessage(error)}`);
    }
  }

  /** initialize, then a new session (or the refined run's, loaded), switched to the no-ask mode. */
  private async open(connection: acp.ClientConnection, launch: AgentLaunch, session: AcpSession, protocolVersion: number): Promise<string> {
    const init = await connection.agent.request('initialize', { protocolVersion, clientCapabilities: {}, clientInfo: { name: 'runboard', version: '0.1.0' } });
    let sessionId: string;
    let modes: acp.SessionModeState | null | undefined;
    if (launch.resume) {
      if (!init.agentCapabilities?.loadSession) throw new Error('the agent cannot load a session (no loadSession capability)');
      // The agent replays the history as updates first; the session ignores updates until it is prompted.
      ({ modes } = await connection.agent.request('session/load', { sessionId: launch.resume, cwd: launch.cwd, mcpServers: [] }));
      sessionId = launch.resume;
    } else {
      ({ sessionId, modes } = await connection.agent.request('session/new', { cwd: launch.cwd, mcpServers: [] }));
    }
    session.sessionId = sessionId;
    const mode = this.options.noAskMode;
    if (mode && modes?.currentModeId !== mode) {
      // A mode that cannot be set (gemini-cli refuses yolo in an untrusted folder) leaves the run asking: it allows each request.
      const refusal = modes && !modes.availableModes.some((m) => m.id === mode) ? `it offers ${modes.availableModes.map((m) => m.id).join(', ')}` : null;
      const error = refusal ?? (await connection.agent.request('session/set_mode', { sessionId, modeId: mode }).then(() => null, (e: unknown) => promptErrorMessage(e)));
      if (error) session.warn(`could not switch ${this.name} to its no-ask mode "${mode}" (${truncateText(error, 500)}); permission requests are allowed one by one`);
    }
    return sessionId;
  }
}

/** One ACP agent process with one session, and the turn runboard has running in it. */
class AcpSession implements AgentSession {
  sessionId = '';
  private child!: StdioChild;
  private connection!: acp.ClientConnection;
  private readonly normalizer: AcpEventNormalizer;
  /** The running `session/prompt`, settled when the turn has ended (however). */
  private turn: Promise<void> | null = null;
  /** Steers waiting for the cancelled turn to answer. */
  private readonly steers: string[] = [];
  /** Follow-ups waiting for the turn to end. */
  private readonly followUps: string[] = [];
  /** session/cancel was sent for the running turn. */
  private cancelling = false;
  /** The run is being stopped: the ending turn starts nothing and settles nothing. */
  private aborted = false;
  private terminating = false;
  /** Set when the first prompt is sent: updates before it (a loaded session's replay, mode echoes) are not the run's. */
  private prompted = false;

  constructor(private readonly sink: AgentSink) {
    this.normalizer = new AcpEventNormalizer((events) => sink.events(events));
  }

  attach(child: StdioChild, connection: acp.ClientConnection): void {
    this.child = child;
    this.connection = connection;
    void child.exited.then((exit) => {
      if (!this.terminating) this.sink.exited(exit);
    });
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  warn(message: string): void {
    this.sink.events([{ type: 'warning', data: { message } }]);
  }

  onUpdate(notification: acp.SessionNotification): void {
    if (!this.prompted || this.terminating || notification.sessionId !== this.sessionId) return;
    this.normalizer.handle(notification.update);
  }

  async prompt(text: string): Promise<void> {
    this.prompted = true;
    this.startTurn(text);
  }

  async send(text: string, mode: MessageMode): Promise<void> {
    if (!this.turn) {
      this.deliver(text);
      return;
    }
    if (this.steers.length + this.followUps.length >= MAX_QUEUED_MESSAGES) throw new ConflictError(`${MAX_QUEUED_MESSAGES} messages already wait for this run's agent`);
    if (mode === 'FOLLOW_UP') {
      this.followUps.push(text);
      this.sink.events([{ type: 'queue', data: { steering: this.steers.length, followUp: this.followUps.length } }]);
      return;
    }
    this.steers.push(text);
    this.sink.events([{ type: 'queue', data: { steering: this.steers.length, followUp: this.followUps.length } }]);
    if (this.cancelling) return; // the turn is already ending; every waiting steer goes in the next prompt
    this.cancelling = true;
    await this.connection.agent.notify('session/cancel', { sessionId: this.sessionId });
  }

  async abort(timeoutMs: number): Promise<void> {
    const turn = this.turn;
    if (!turn) return;
    this.aborted = true;
    await this.connection.agent.notify('session/cancel', { sessionId: this.sessionId }).catch(() => undefined);
    await delay(timeoutMs, turn);
  }

  flush(): void {
    this.normalizer.flush();
  }

  async terminate(graceMs: number): Promise<void> {
    this.terminating = true;
    this.connection.close();
    await this.child.terminate(graceMs);
  }

  /** A steer or follow-up now becomes the next turn's prompt. */
  private deliver(text: string): void {
    this.sink.events([{ type: 'message_delivered', data: { text: truncateText(text, 2_000) } }]);
    this.startTurn(text);
  }

  private startTurn(text: string): void {
    this.cancelling = false;
    this.turn = this.connection.agent.request('session/prompt', { sessionId: this.sessionId, prompt: [{ type: 'text', text }] }).then(
      (response) => this.turnEnded(response, null),
      (error: unknown) => this.turnEnded(null, error),
    );
  }

  /** What comes after a turn: the steer it was cancelled for, the next follow-up, or the run's outcome. */
  private turnEnded(response: acp.PromptResponse | null, error: unknown): void {
    this.turn = null;
    if (this.terminating || this.child.done) return; // an agent that died is reported by `exited`
    const usage = response ? promptUsage(response) : null;
    if (usage) this.normalizer.usage(usage);
    else this.normalizer.flush();
    if (this.aborted) return;
    if (this.steers.length) {
      // Whatever the cancelled turn answered (cancelled, or an error the cancel caused), the steer goes on.
      this.deliver(this.steers.splice(0).join('\n\n'));
      return;
    }
    const outcome = error ? { ok: false as const, error: promptErrorMessage(error) } : outcomeOf(response!.stopReason);
    if (!outcome.ok) {
      this.normalizer.modelError(outcome.error);
      this.sink.settled(outcome); // queued follow-ups are not sent to a failed turn: they stay in the log as user_message events
      return;
    }
    const next = this.followUps.shift();
    if (next !== undefined) {
      this.sink.events([{ type: 'queue', data: { steering: 0, followUp: this.followUps.length } }]);
      this.deliver(next);
      return;
    }
    this.sink.settled(outcome);
  }
}

/** A turn's stop reason as the run's outcome. */
function outcomeOf(stopReason: acp.StopReason): AgentOutcome {
  switch (stopReason) {
    case 'end_turn':
      return { ok: true };
    case 'max_tokens':
      return { ok: false, error: 'the model stopped at its token limit' };
    case 'max_turn_requests':
      return { ok: false, error: 'the agent stopped at its limit of model requests for one turn' };
    case 'refusal':
      return { ok: false, error: 'the model refused to continue' };
    case 'cancelled':
      return { ok: false, error: 'the agent cancelled the turn' };
    default:
      return { ok: false, error: `the turn ended with stop reason "${String(stopReason)}"` };
  }
}

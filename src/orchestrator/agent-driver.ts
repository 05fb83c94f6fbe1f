/**
 * What the run lifecycle needs from a coding agent, and nothing about any particular one. Each agent
 * (pi over RPC, Claude Code, Codex, any ACP agent) is a driver in src/agents/<name>/ that owns how to
 * spawn it, how to deliver STEER and FOLLOW_UP, how to tell that its turn has settled, how to resume
 * a session, and how to turn its output into the run event vocabulary (run-events.ts).
 *
 * The lifecycle (runs.ts) keeps what is common: statuses, tokens, messages held while starting, the
 * leftover-process sweep by run id, cleanup, and the rule that the terminal status is the last event.
 */
import type { RunEventInput } from './run-events.js';

/**
 * How long an agent may take from spawn to accepting its first message. Twenty agents starting at
 * once on 2 busy cores were measured to need over 30 s, which a command's own answer never does.
 * @default 60_000 // ms
 */
export const AGENT_START_TIMEOUT_MS = 60_000;

/** How a message reaches a working agent: at its next model request, or once its current turn ends. */
export type MessageMode = 'STEER' | 'FOLLOW_UP';

/** How an agent takes a STEER: its own mechanism, emulated by runboard (cancel, then prompt), or not at all. */
export type SteerSupport = 'NATIVE' | 'EMULATED' | 'NONE';
/** How a FOLLOW_UP is held until the turn ends: by the agent's own queue, or by runboard's. */
export type FollowUpSupport = 'NATIVE' | 'QUEUED';

/** What an agent can do, as data the lifecycle and the API read; never a branch on an agent's name. */
export interface AgentCapabilities {
  readonly steer: SteerSupport;
  readonly followUp: FollowUpSupport;
  /** A settled run's session can be continued by a refinement. */
  readonly resume: boolean;
  /** It reports tokens per model answer. */
  readonly usage: boolean;
  /** It reports what the tokens cost. */
  readonly cost: boolean;
}

/** How the agent's process ended by itself. */
export interface AgentExit {
  exitCode: number | null;
  signal: string | null;
  /** The last stderr lines, oldest first. */
  stderrTail: string[];
  /** The process never started (e.g. the command does not exist). */
  spawnError: string | null;
}

/** Where and how to start one run's agent. */
export interface AgentLaunch {
  readonly runId: string;
  /** The worktree (or main checkout) it works in. */
  readonly cwd: string;
  /** Added to the server's environment (run id, board URL and the run's own token). */
  readonly env: Readonly<Record<string, string>>;
  /** Server variables the agent must not inherit (the operator token). */
  readonly withhold: readonly string[];
  /** The session of the run this one refines, as an earlier `sink.session` reported it; null for a new one. */
  readonly resume: string | null;
  /** A directory of the data dir the driver may keep per-run state in (sessions, agent homes). */
  readonly stateDir: string;
}

/** How an agent's turn ended with nothing left to do. */
export type AgentOutcome = { readonly ok: true } | { readonly ok: false; readonly error: string };

/** What a driver tells the lifecycle; every call may come at any time after `start` began. */
export interface AgentSink {
  /** Normalised events, in order. */
  events(events: RunEventInput[]): void;
  /** A stderr line (capped). */
  stderr(line: string): void;
  /** The session a refinement would resume, once the agent has one. */
  session(reference: string): void;
  /** The agent finished its work with nothing pending: SUCCEEDED, or FAILED with the model's message. */
  settled(outcome: AgentOutcome): void;
  /** The process ended by itself (or never started). Not called after `terminate`. */
  exited(exit: AgentExit): void;
}

/** One running agent process. */
export interface AgentSession {
  readonly pid: number | undefined;
  /** Sends the run's first message (a new session's prompt, or a refinement's feedback). */
  prompt(text: string): Promise<void>;
  /** STEER or FOLLOW_UP while the agent works (and a new turn when it is idle), with the same meaning for every agent. */
  send(text: string, mode: MessageMode): Promise<void>;
  /** Cancels the current turn, waiting at most `timeoutMs`; the process stays. A no-op when idle. */
  abort(timeoutMs: number): Promise<void>;
  /** Emits anything the driver still holds (coalesced text) before the run's status changes. */
  flush(): void;
  /** Ends the process and everything it started: SIGTERM, SIGKILL after `graceMs`. Resolves once gone. */
  terminate(graceMs: number): Promise<void>;
}

/** One configured agent. */
export interface AgentDriver {
  /** The name runs pick it by (`pi`, `claude`, …). */
  readonly name: string;
  /** The protocol it is spoken to in: `pi-rpc`, `claude-stream-json`, `codex-app-server` or `acp`. */
  readonly protocol: string;
  readonly capabilities: AgentCapabilities;
  /** Its command line, for display (Run.agentCommand). */
  describe(): string;
  /** Spawns the agent in `launch.cwd` and resolves once it accepts messages. */
  start(launch: AgentLaunch, sink: AgentSink): Promise<AgentSession>;
  /** Whether `reference` (from `sink.session`) can still be resumed. */
  canResume(reference: string): Promise<boolean>;
  /**
   * The files under `stateDir` that hold session `reference`, so that another node can restore them
   * before a resume (session-snapshots.ts). Absent, or an empty list, for a session kept elsewhere
   * (an id the agent's own service resumes).
   */
  sessionFiles?(reference: string, stateDir: string): Promise<string[]>;
  /** Whether its program is there, and its version. */
  probe(): Promise<{ available: boolean; version: string | null }>;
}

/**
 * Run control: a command for a live run (a message, a stop, a look at its worktree) goes to the process
 * that drives the run, wherever the request arrived. In one process that is a map lookup
 * (`LocalRunControl`); in a cluster the owner serves the run on a Redis channel (src/cluster/redis-run-control.ts).
 */
import type { MessageMode } from './agent-driver.js';
import { ConflictError } from './errors.js';

/** What an API node asks of the process that drives a run. */
export type RunCommand =
  | { kind: 'message'; text: string; mode: MessageMode }
  | { kind: 'stop' }
  | { kind: 'uncommitted'; maxBytes?: number | null }; // the owner reports the worktree's uncommitted changes (result: unknown JSON)

/**
 * What any node asks of the node that holds a run's worktree (worktree-hosts.ts). Each worker serves these at
 * `nodeTarget(its id)`, for as long as it runs: a settled run's worktree outlives its agent.
 */
export type WorktreeCommand =
  | { kind: 'startPlaytest'; runId: string }
  | { kind: 'stopPlaytest'; runId: string; ifRunning: boolean }
  | { kind: 'removeWorktree'; runId: string };

/** The run control target on which a node serves WorktreeCommands. (Run ids are cuids: never `node:…`.) */
export function nodeTarget(nodeId: string): string {
  return `node:${nodeId}`;
}

/** The owner's side: carries out one command and returns its result (JSON-safe, since it may cross nodes). */
export type RunCommandHandler = (command: RunCommand | WorktreeCommand) => Promise<unknown>;

/** `delivered: false`: nobody serves the run, so it is live nowhere. */
export type RunCommandOutcome = { delivered: true; result: unknown } | { delivered: false };

export interface RunControl {
  /** From now until `release()`, commands for `runId` sent from any node reach `handler`. Resolves once reachable. */
  serve(runId: string, handler: RunCommandHandler): Promise<() => Promise<void>>;
  /**
   * Runs `command` on whoever serves `runId`: { delivered: false } when nobody does. Rejects with the handler's
   * error re-created as the same RunboardError category and message, or a TimeoutError after RUN_CONTROL_TIMEOUT_MS.
   */
  send(runId: string, command: RunCommand | WorktreeCommand): Promise<RunCommandOutcome>;
  close(): Promise<void>;
}

/**
 * How long a sender waits for the owner's answer before a TimeoutError (cluster only: in one process the
 * handler is awaited as the run manager always has). @default 10_000 // ms
 */
export const RUN_CONTROL_TIMEOUT_MS = 10_000;

/** Run control inside one process: the handler is called directly, and its own error reaches the sender. */
export class LocalRunControl implements RunControl {
  /** Each serving as an object of its own, so a stale release can tell it is stale. */
  private readonly handlers = new Map<string, { readonly handler: RunCommandHandler }>();

  /** ConflictError if `runId` is already served: one process drives a run at a time. */
  async serve(runId: string, handler: RunCommandHandler): Promise<() => Promise<void>> {
    if (this.handlers.has(runId)) throw new ConflictError(`run ${runId} is already served`);
    const serving = { handler };
    this.handlers.set(runId, serving);
    return async () => {
      // Only its own serving: a late release after the run was served again must not end the new one.
      if (this.handlers.get(runId) === serving) this.handlers.delete(runId);
    };
  }

  async send(runId: string, command: RunCommand | WorktreeCommand): Promise<RunCommandOutcome> {
    const serving = this.handlers.get(runId);
    if (!serving) return { delivered: false };
    return { delivered: true, result: await serving.handler(command) };
  }

  async close(): Promise<void> {
    this.handlers.clear();
  }
}

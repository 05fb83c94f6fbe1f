/**
 * Run control across nodes over Redis pub/sub. The node that drives a run listens on the run's channel
 * while it serves it; a sender PUBLISHes the command there with a request id and its own reply channel,
 * and Redis' receiver count says at once whether anybody serves the run (0: { delivered: false }).
 * The owner answers on the sender's reply channel with the result, or the error as {category, message}
 * (errors.ts' wire form), which the sender re-creates as the same class.
 */
import { randomUUID } from 'node:crypto';
import type { Logger } from '../log.js';
import { ConflictError, fromWireError, TimeoutError, toWireError, type WireError } from '../orchestrator/errors.js';
import { RUN_CONTROL_TIMEOUT_MS, type RunCommand, type WorktreeCommand, type RunCommandHandler, type RunCommandOutcome, type RunControl } from '../orchestrator/run-control.js';
import { decodeJson, encodeJson, type RedisLink } from './redis-link.js';

export interface RedisRunControlOptions {
  link: RedisLink;
  /** Names this node's reply channel. Unique per process. */
  nodeId: string;
  logger: Logger;
  /** @default RUN_CONTROL_TIMEOUT_MS // ms */
  timeoutMs?: number;
}

/** Commands this node may wait on at once; more are refused with a TimeoutError (the cluster is not answering). @default 1_000 */
export const MAX_PENDING_COMMANDS = 1_000;

/** sender -> owner, on `run-control:<runId>` */
interface CommandMessage {
  readonly id: string;
  readonly replyTo: string;
  readonly command: RunCommand | WorktreeCommand;
}

/** owner -> sender, on `run-control-reply:<nodeId>` */
type ReplyMessage =
  | { readonly id: string; readonly outcome: 'ok'; readonly result: unknown }
  | { readonly id: string; readonly outcome: 'error'; readonly error: WireError }
  /** The run was released between the PUBLISH and its arrival. */
  | { readonly id: string; readonly outcome: 'not-served' };

interface Pending {
  resolve(outcome: RunCommandOutcome): void;
  reject(error: unknown): void;
  readonly timer: NodeJS.Timeout;
}

export class RedisRunControl implements RunControl {
  private readonly link: RedisLink;
  private readonly logger: Logger;
  private readonly timeoutMs: number;
  private readonly replyChannel: string;
  /** Runs this node serves, each serving an object of its own so a stale release can tell. */
  private readonly served = new Map<string, { readonly handler: RunCommandHandler }>();
  private readonly pending = new Map<string, Pending>();
  private replies: Promise<void> | null = null;
  private closed = false;

  constructor({ link, nodeId, logger, timeoutMs = RUN_CONTROL_TIMEOUT_MS }: RedisRunControlOptions) {
    this.link = link;
    this.logger = logger;
    this.timeoutMs = timeoutMs;
    this.replyChannel = link.channel(`run-control-reply:${nodeId}`);
  }

  /** ConflictError if this node already serves `runId`. Another node serving it too is the queue's to prevent. */
  async serve(runId: string, handler: RunCommandHandler): Promise<() => Promise<void>> {
    if (this.served.has(runId)) throw new ConflictError(`run ${runId} is already served`);
    const serving = { handler };
    const channel = this.commandChannel(runId);
    this.served.set(runId, serving);
    try {
      await this.link.listen(channel, (message) => void this.onCommand(runId, message));
    } catch (error) {
      if (this.served.get(runId) === serving) this.served.delete(runId);
      throw error;
    }
    return async () => {
      if (this.served.get(runId) !== serving) return; // released already, or served again since
      this.served.delete(runId);
      await this.link.unlisten(channel);
    };
  }

  async send(runId: string, command: RunCommand | WorktreeCommand): Promise<RunCommandOutcome> {
    if (this.closed) throw new Error('run control is closed');
    if (this.pending.size >= MAX_PENDING_COMMANDS) throw new TimeoutError(`${MAX_PENDING_COMMANDS} run commands are waiting for an answer already; try again later`);
    await (this.replies ??= this.link.listen(this.replyChannel, (message) => this.onReply(message)).catch((error: unknown) => {
      this.replies = null;
      throw error;
    }));
    const id = randomUUID();
    // Registered before the PUBLISH: the answer may arrive on the other connection before its receiver count.
    const answer = new Promise<RunCommandOutcome>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new TimeoutError(`run ${runId} did not answer a ${command.kind} command within ${this.timeoutMs} ms; it may or may not have been carried out`));
      }, this.timeoutMs);
      this.pending.set(id, { resolve, reject, timer });
    });
    const message: CommandMessage = { id, replyTo: this.replyChannel, command };
    let receivers: number;
    try {
      receivers = await this.link.publish(this.commandChannel(runId), encodeJson(message));
    } catch (error) {
      this.settle(id)?.reject(error);
      return answer;
    }
    if (receivers === 0) this.settle(id)?.resolve({ delivered: false });
    return answer;
  }

  async close(): Promise<void> {
    this.closed = true;
    const channels = [...this.served.keys()].map((runId) => this.commandChannel(runId));
    this.served.clear();
    for (const id of [...this.pending.keys()]) this.settle(id)?.reject(new Error('run control closed before the answer came'));
    await Promise.allSettled([...channels, this.replyChannel].map((channel) => this.link.unlisten(channel)));
  }

  private commandChannel(runId: string): string {
    return this.link.channel(`run-control:${runId}`);
  }

  /** Removes a pending command and its timer; undefined when it was settled already (answered, timed out). */
  private settle(id: string): Pending | undefined {
    const pending = this.pending.get(id);
    if (!pending) return undefined;
    this.pending.delete(id);
    clearTimeout(pending.timer);
    return pending;
  }

  /** The owner's side: runs the handler and answers, whatever happens. */
  private async onCommand(runId: string, text: string): Promise<void> {
    let message: CommandMessage;
    try {
      message = decodeJson(text) as CommandMessage;
      if (typeof message.id !== 'string' || typeof message.replyTo !== 'string' || typeof message.command?.kind !== 'string') throw new Error('not a run command');
    } catch (error) {
      this.logger.warn({ err: error, runId }, 'malformed run command ignored');
      return;
    }
    const serving = this.served.get(runId);
    let reply: ReplyMessage;
    if (!serving) reply = { id: message.id, outcome: 'not-served' };
    else {
      try {
        reply = { id: message.id, outcome: 'ok', result: await serving.handler(message.command) };
      } catch (error) {
        if (toWireError(error).category === 'internal') this.logger.error({ err: error, runId, command: message.command.kind }, 'run command failed');
        reply = { id: message.id, outcome: 'error', error: toWireError(error) };
      }
    }
    try {
      await this.link.publish(message.replyTo, encodeJson(reply));
    } catch (error) {
      this.logger.warn({ err: error, runId }, 'run command answer not sent; the sender times out');
    }
  }

  /** The sender's side: an answer settles its pending command (a late one, after the timeout, is dropped). */
  private onReply(text: string): void {
    let reply: ReplyMessage;
    try {
      reply = decodeJson(text) as ReplyMessage;
    } catch (error) {
      this.logger.warn({ err: error }, 'malformed run command answer ignored');
      return;
    }
    const pending = this.settle(String(reply.id));
    if (!pending) return;
    if (reply.outcome === 'ok') pending.resolve({ delivered: true, result: reply.result });
    else if (reply.outcome === 'not-served') pending.resolve({ delivered: false });
    else pending.reject(fromWireError(reply.error ?? { category: 'internal', message: 'malformed run command answer' }));
  }
}

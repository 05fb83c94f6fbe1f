/**
 * A node's two Redis connections, shared by the bus and run control: one for commands (PUBLISH), one in
 * subscriber mode that dispatches each channel's messages to the one handler listening on it. Redis
 * pub/sub is spoken here only; channel names are prefixed so deployments (or tests) can share a Redis.
 */
import { Redis } from 'ioredis';
import type { Logger } from '../log.js';

export interface RedisLinkOptions {
  /** redis://… */
  url: string;
  /** Names this node's connections in Redis' CLIENT LIST. */
  nodeId: string;
  logger: Logger;
  /** Put before every channel name. @default 'runboard:' */
  channelPrefix?: string;
}

export class RedisLink {
  /** For commands; a connection in subscriber mode can only (un)subscribe. */
  private readonly commands: Redis;
  private readonly subscriber: Redis;
  private readonly handlers = new Map<string, (message: string) => void>();
  private readonly reconnectListeners = new Set<() => void>();
  private readonly prefix: string;
  private readonly logger: Logger;
  private connectedOnce = false;
  private closed = false;

  constructor({ url, nodeId, logger, channelPrefix = 'runboard:' }: RedisLinkOptions) {
    this.prefix = channelPrefix;
    this.logger = logger;
    // disconnectTimeout: closing a connection that is down otherwise keeps a 2 s timer (ioredis' AbstractConnector).
    const options = { disconnectTimeout: 100 };
    this.commands = new Redis(url, { ...options, connectionName: `runboard-${nodeId}-commands` });
    // Resubscribing after a reconnect is done below, awaited, so that we know when it is live again.
    this.subscriber = new Redis(url, { ...options, connectionName: `runboard-${nodeId}-subscriber`, autoResubscribe: false });
    for (const [name, connection] of [['commands', this.commands], ['subscriber', this.subscriber]] as const) {
      // ioredis reconnects by itself; without a listener an 'error' event would crash the process.
      connection.on('error', (error: Error) => this.logger.warn({ err: error, connection: name }, 'redis connection error'));
    }
    this.subscriber.on('message', (channel: string, message: string) => {
      try {
        this.handlers.get(channel)?.(message);
      } catch (error) {
        // Thrown into ioredis' reply parser, it would break the connection for every channel.
        this.logger.error({ err: error, channel }, 'redis message handler failed');
      }
    });
    this.subscriber.on('ready', () => {
      if (!this.connectedOnce) {
        this.connectedOnce = true;
        return;
      }
      void this.resubscribe();
    });
  }

  /** The Redis channel called `name`, with this deployment's prefix. */
  channel(name: string): string {
    return this.prefix + name;
  }

  /**
   * Sends `message` to `channel`'s handler on every node that listens on it (this one too); resolves
   * with how many subscriber connections received it.
   */
  publish(channel: string, message: string): Promise<number> {
    return this.commands.publish(channel, message);
  }

  /** Messages on `channel` go to `handler` (the last one given for it); resolves once Redis confirmed the SUBSCRIBE. */
  async listen(channel: string, handler: (message: string) => void): Promise<void> {
    this.handlers.set(channel, handler);
    await this.subscriber.subscribe(channel);
  }

  /** Stops listening on `channel`. Commands on one connection run in order, so a later `listen` wins. */
  async unlisten(channel: string): Promise<void> {
    this.handlers.delete(channel);
    if (this.closed) return;
    await this.subscriber.unsubscribe(channel);
  }

  /**
   * `listener` is called whenever the subscriber connection came back and every channel is subscribed
   * again: whatever was published while it was away is lost, and the caller reads it from its store.
   */
  onReconnect(listener: () => void): () => void {
    this.reconnectListeners.add(listener);
    return () => this.reconnectListeners.delete(listener);
  }

  /** Round trip on both connections: for readiness checks. */
  async ping(): Promise<void> {
    await Promise.all([this.commands.ping(), this.subscriber.ping()]);
  }

  async close(): Promise<void> {
    this.closed = true;
    this.handlers.clear();
    this.reconnectListeners.clear();
    // QUIT waits for the replies still due; a connection that is not up has none and is just dropped.
    await Promise.allSettled([this.commands, this.subscriber].map((connection) => (connection.status === 'ready' ? connection.quit() : connection.disconnect())));
  }

  private async resubscribe(): Promise<void> {
    const channels = [...this.handlers.keys()];
    try {
      if (channels.length) await this.subscriber.subscribe(...channels);
    } catch (error) {
      // The connection dropped again; its next 'ready' tries again.
      this.logger.warn({ err: error }, 'redis resubscribe failed');
      return;
    }
    for (const listener of [...this.reconnectListeners]) listener();
  }
}

/**
 * JSON that keeps Dates: a Date travels as { $date: iso } and comes back a Date (JSON alone would turn
 * it into a string, which a GraphQL DateTime field would then print differently).
 */
export function encodeJson(value: unknown): string {
  return JSON.stringify(value, function (this: Record<string, unknown>, key, item: unknown) {
    const raw = this[key]; // before toJSON turned it into a string
    return raw instanceof Date ? { $date: raw.toISOString() } : item;
  });
}

/** The value `encodeJson` wrote. */
export function decodeJson(text: string): unknown {
  return JSON.parse(text, (_key, item: unknown) => {
    if (item && typeof item === 'object' && !Array.isArray(item)) {
      const keys = Object.keys(item);
      const iso = (item as { $date?: unknown }).$date;
      if (keys.length === 1 && typeof iso === 'string') return new Date(iso);
    }
    return item;
  });
}

/**
 * The bus of a cluster: PubSub over Redis pub/sub, for several nodes sharing one store.
 *
 * A sequenced topic (a run's events, the board log) publishes only a doorbell, `{ key, seq }`: an event
 * can be 16 KiB and the store has it anyway. Per stream (one run's events, or the whole board log) each
 * node keeps one relay while it has local listeners: on a doorbell it reads the rows after the last seq
 * it relayed from the store, in pages, and publishes them in order to a local InMemoryPubSub, so
 * followLog (event-stream.ts) works unchanged and a node reads each event once, however many subscribers
 * it has. Because the relay always reads "everything after my cursor", a lost, repeated or reordered
 * doorbell cannot lose or repeat an event: the next doorbell, or the slow safety poll, catches up.
 *
 * Any other topic ('run-updated') is small and carries its payload whole, Dates included.
 *
 * Not @graphql-yoga/redis-event-target: it does not await SUBSCRIBE (an event published right after a
 * subscription was lost in a test), turns Dates into strings and has no wildcard (SCALEOUT.md §4).
 */
import type { Logger } from '../log.js';
import { InMemoryPubSub, type PubSub } from '../orchestrator/pubsub.js';
import { decodeJson, encodeJson, type RedisLink } from './redis-link.js';

/**
 * How the relay reads one sequenced topic from the store. The store must make a stream's seqs visible in
 * order (a seq is never committed before a lower one of the same stream): the relay never looks back
 * behind its cursor. Runboard's per-run counter row gives that; a Postgres sequence alone would not.
 */
export interface SequencedReader<Entry extends { readonly seq: number }> {
  /** Entries of the stream `key` with seq > after, oldest first, at most `limit`; committed ones only. */
  read(key: string, after: number, limit: number): Promise<Entry[]>;
  /** The stream's highest committed seq; 0 before its first entry (or for an unknown key). */
  lastSeq(key: string): Promise<number>;
  /**
   * For a log with one seq across the whole topic (the board log): the key an entry is published under.
   * The relay then follows one stream for the topic (called with key '*'). Absent: one log per key.
   */
  keyOf?(entry: Entry): string;
}

/** A reader for each sequenced topic; topics without one carry their payloads whole. */
export type SequencedReaders<Topics extends Record<string, unknown>> = {
  // Named topics only: `Topics` also has Record's index signature.
  [T in keyof Topics as string extends T ? never : T]?: Topics[T] extends { readonly seq: number } ? SequencedReader<Topics[T]> : never;
};

export interface RedisBusOptions<Topics extends Record<string, unknown>> {
  link: RedisLink;
  readers: SequencedReaders<Topics>;
  logger: Logger;
  /** How often each relay with local listeners reads the store anyway (a doorbell lost to a reconnect). @default 5_000 // ms */
  pollMs?: number;
}

/** Entries a relay reads per page. @default 500 */
export const RELAY_PAGE = 500;
/** A whole payload larger than this is not published (it is logged): the bus carries small notices. @default 65_536 // bytes */
export const MAX_WHOLE_PAYLOAD_BYTES = 64 * 1024;

/** One Redis channel this node listens on, with its relay when the topic is sequenced. */
interface Stream {
  readonly channel: string;
  readonly topic: string;
  /** The store's stream key: a run id, or '*' for a topic-wide log or a whole-payload topic. */
  readonly key: string;
  readonly reader: SequencedReader<{ readonly seq: number }> | null;
  /** Local subscriptions on it; at 0 the stream is dropped. */
  listeners: number;
  /** SUBSCRIBE confirmed and, for a relay, its cursor set; null until asked for or after it failed. */
  live: Promise<void> | null;
  /** The last seq relayed; null until the relay started. */
  cursor: number | null;
  /** A doorbell rang before the cursor was set. */
  rang: boolean;
  /** The relay's read loop, while it runs. */
  pumping: boolean;
  /** Rung during a read loop: read once more after it. */
  again: boolean;
}

/** The doorbell of a sequenced topic: which key has news, and up to which seq. */
interface Doorbell {
  k: string;
  s: number;
}

export class RedisBus<Topics extends Record<string, unknown>> implements PubSub<Topics> {
  private readonly local = new InMemoryPubSub<Topics>();
  private readonly streams = new Map<string, Stream>();
  private readonly link: RedisLink;
  private readonly readers: SequencedReaders<Topics>;
  private readonly logger: Logger;
  private readonly poll: NodeJS.Timeout;
  private readonly stopReconnect: () => void;

  constructor({ link, readers, logger, pollMs = 5_000 }: RedisBusOptions<Topics>) {
    this.link = link;
    this.readers = readers;
    this.logger = logger;
    this.poll = setInterval(() => this.wakeAll(), pollMs).unref();
    // Doorbells rung while the subscriber was away are gone: every relay reads what it missed.
    this.stopReconnect = link.onReconnect(() => this.wakeAll());
  }

  publish<T extends keyof Topics & string>(topic: T, key: string, payload: Topics[T]): void {
    const reader = this.readerOf(topic);
    if (!reader) {
      const message = encodeJson({ k: key, p: payload });
      if (Buffer.byteLength(message) > MAX_WHOLE_PAYLOAD_BYTES) {
        this.logger.error({ topic, key, bytes: Buffer.byteLength(message) }, 'bus payload too large; not published');
        return;
      }
      // Delivered to this node's listeners too, by Redis, once: one path for every node.
      this.send(this.channelOf(topic, key, null), message);
      return;
    }
    const seq = (payload as { seq: number }).seq;
    const channel = this.channelOf(topic, key, reader);
    // The row is committed (publish comes after commit): this node's relay need not wait for Redis.
    this.ring(channel, seq);
    const doorbell: Doorbell = { k: key, s: seq };
    this.send(channel, JSON.stringify(doorbell));
  }

  subscribe<T extends keyof Topics & string>(topic: T, key: string, listener: (payload: Topics[T]) => void): () => void {
    const reader = this.readerOf(topic);
    if (reader && !reader.keyOf && key === '*') throw new Error(`topic ${topic} is followed one key at a time`);
    const channel = this.channelOf(topic, key, reader);
    let stream = this.streams.get(channel);
    if (!stream) {
      const streamKey = reader && !reader.keyOf ? key : '*';
      stream = { channel, topic, key: streamKey, reader, listeners: 0, live: null, cursor: null, rang: false, pumping: false, again: false };
      this.streams.set(channel, stream);
    }
    stream.listeners++;
    // Made now, awaited by `ready`; a failure shows there (and is retried by the next `ready`).
    this.goLive(stream).catch(() => {});
    const unsubscribe = this.local.subscribe(topic, key, listener);
    const owned = stream;
    let subscribed = true;
    return () => {
      if (!subscribed) return;
      subscribed = false;
      unsubscribe();
      if (--owned.listeners === 0) this.drop(owned);
    };
  }

  /**
   * Resolves once this node's subscription on (topic, key) is confirmed by Redis and, for a sequenced
   * topic, its relay has its starting point: from then on every entry not yet in the store reaches the
   * local listeners. While Redis is reconnecting it waits; it rejects when ioredis gives up the command.
   */
  ready<T extends keyof Topics & string>(topic: T, key: string): Promise<void> {
    const stream = this.streams.get(this.channelOf(topic, key, this.readerOf(topic)));
    return stream ? this.goLive(stream) : Promise.resolve();
  }

  /** How many local listeners wait on one topic and key (tests check that nothing leaks). */
  listenerCount(topic: keyof Topics & string, key: string): number {
    return this.local.listenerCount(topic, key);
  }

  /** How many Redis channels this node listens on for the bus (tests check that relays are dropped). */
  get streamCount(): number {
    return this.streams.size;
  }

  /** Stops polling and listening; the link is closed by its owner. */
  async close(): Promise<void> {
    clearInterval(this.poll);
    this.stopReconnect();
    const streams = [...this.streams.values()];
    this.streams.clear();
    await Promise.allSettled(streams.map((stream) => this.link.unlisten(stream.channel)));
  }

  private readerOf(topic: string): SequencedReader<{ readonly seq: number }> | null {
    return ((this.readers as Record<string, SequencedReader<{ readonly seq: number }> | undefined>)[topic] ?? null);
  }

  /** A run's events have a channel per run; a topic-wide log and a whole-payload topic, one for the topic. */
  private channelOf(topic: string, key: string, reader: SequencedReader<{ readonly seq: number }> | null): string {
    return this.link.channel(reader && !reader.keyOf ? `${topic}:${key}` : topic);
  }

  private send(channel: string, message: string): void {
    this.link.publish(channel, message).catch((error: unknown) => this.logger.warn({ err: error, channel }, 'bus publish failed; followers catch up at their next poll'));
  }

  /**
   * SUBSCRIBE, then (for a relay) the cursor: the store's last seq, read only AFTER Redis confirmed the
   * subscription. Why that is exactly once: an entry with seq <= cursor was committed before the read, so
   * a follower, which reads history only after `ready`, finds it there. An entry with seq > cursor was
   * committed after the read (seqs of one stream commit in order), so after the SUBSCRIBE was live, and
   * its doorbell, rung after its commit, reaches us (or, if lost, the next doorbell or poll reads it),
   * and the relay delivers it to every local listener exactly once, in order, since it only moves the
   * cursor forward over rows it read. A listener added to a running relay is covered the same way: what
   * was relayed before it came was committed before, so it is in the history it reads after `ready`.
   * The follower drops the overlap by seq.
   */
  private goLive(stream: Stream): Promise<void> {
    stream.live ??= (async () => {
      await this.link.listen(stream.channel, (message) => this.onMessage(stream, message));
      // Dropped meanwhile (its listeners left, or the bus closed): no store read for nobody.
      if (!stream.reader || stream.cursor !== null || this.streams.get(stream.channel) !== stream) return;
      const last = await stream.reader.lastSeq(stream.key);
      if (this.streams.get(stream.channel) !== stream || stream.cursor !== null) return;
      stream.cursor = last;
      if (stream.rang) this.wake(stream);
    })().catch((error: unknown) => {
      stream.live = null;
      throw error;
    });
    return stream.live;
  }

  private onMessage(stream: Stream, message: string): void {
    if (this.streams.get(stream.channel) !== stream) return;
    try {
      if (stream.reader) {
        const { s } = JSON.parse(message) as Doorbell;
        this.ring(stream.channel, Number(s));
      } else {
        const { k, p } = decodeJson(message) as { k: string; p: never };
        this.local.publish(stream.topic as keyof Topics & string, String(k), p);
      }
    } catch (error) {
      this.logger.warn({ err: error, channel: stream.channel }, 'malformed bus message ignored');
    }
  }

  /** News up to `seq` on a relay's channel: read it, unless the relay is already past it. */
  private ring(channel: string, seq: number): void {
    const stream = this.streams.get(channel);
    if (!stream) return;
    if (stream.cursor === null) stream.rang = true;
    else if (!(seq <= stream.cursor)) this.wake(stream); // also for a seq that is not a number: read and see
  }

  private wakeAll(): void {
    for (const stream of this.streams.values()) if (stream.reader && stream.cursor !== null) this.wake(stream);
  }

  /** Runs the relay's read loop, or has the running one read once more. */
  private wake(stream: Stream): void {
    if (stream.pumping) {
      stream.again = true;
      return;
    }
    stream.pumping = true;
    void this.relay(stream).finally(() => (stream.pumping = false));
  }

  /** Reads every entry after the cursor, a page at a time, and publishes each locally, in order. */
  private async relay(stream: Stream): Promise<void> {
    const reader = stream.reader!;
    try {
      do {
        stream.again = false;
        for (;;) {
          const page = await reader.read(stream.key, stream.cursor!, RELAY_PAGE);
          // Dropped while reading: its listeners are gone, and a new stream for the key has its own cursor.
          if (this.streams.get(stream.channel) !== stream) return;
          for (const entry of page) {
            if (entry.seq <= stream.cursor!) continue;
            stream.cursor = entry.seq;
            const key = reader.keyOf ? reader.keyOf(entry) : stream.key;
            this.local.publish(stream.topic as keyof Topics & string, key, entry as never);
          }
          if (page.length < RELAY_PAGE) break;
          // A long backlog: let other work (a slow follower leaving, say) run between pages.
          await new Promise((resolve) => setImmediate(resolve));
        }
      } while (stream.again);
    } catch (error) {
      // The store failed; the next doorbell or poll tries again from the same cursor.
      this.logger.warn({ err: error, channel: stream.channel }, 'bus relay read failed');
    }
  }

  /** The last local listener left: no more Redis messages, and no relay state kept for the key. */
  private drop(stream: Stream): void {
    if (this.streams.get(stream.channel) !== stream) return;
    this.streams.delete(stream.channel);
    this.link.unlisten(stream.channel).catch((error: unknown) => this.logger.warn({ err: error, channel: stream.channel }, 'bus unsubscribe failed'));
  }
}

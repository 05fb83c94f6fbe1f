/**
 * Publish/subscribe behind a small interface, so the in-memory bus can be swapped for a shared one
 * (src/cluster/redis-bus.ts) without touching callers. Listeners run synchronously, in order.
 */
export interface PubSub<Topics extends Record<string, unknown>> {
  publish<T extends keyof Topics & string>(topic: T, key: string, payload: Topics[T]): void;
  /** Returns the function that unsubscribes. `key` '*' receives every key of the topic. */
  subscribe<T extends keyof Topics & string>(topic: T, key: string, listener: (payload: Topics[T]) => void): () => void;
  /**
   * Resolves once the subscriptions made so far on (topic, key) receive whatever is published from
   * now on, on any node. `subscribe` returns at once, but a shared bus confirms a subscription later;
   * a follower awaits this before it reads history, so nothing published in between slips through.
   */
  ready<T extends keyof Topics & string>(topic: T, key: string): Promise<void>;
}

/** A bus that can say how many listeners wait on a topic and key (diagnostics, and tests that check nothing leaks). */
export interface CountingPubSub<Topics extends Record<string, unknown>> extends PubSub<Topics> {
  listenerCount(topic: keyof Topics & string, key: string): number;
}

export class InMemoryPubSub<Topics extends Record<string, unknown>> implements CountingPubSub<Topics> {
  private readonly listeners = new Map<string, Set<(payload: never) => void>>();

  publish<T extends keyof Topics & string>(topic: T, key: string, payload: Topics[T]): void {
    for (const channel of [`${topic}:${key}`, `${topic}:*`]) {
      // A copy: a listener may unsubscribe (or subscribe another) while we iterate.
      for (const listener of [...(this.listeners.get(channel) ?? [])]) (listener as (p: Topics[T]) => void)(payload);
    }
  }

  /** Listeners are live as soon as `subscribe` returns. */
  ready(): Promise<void> {
    return Promise.resolve();
  }

  /** How many listeners wait on one topic and key (diagnostics, and tests that check nothing leaks). */
  listenerCount(topic: keyof Topics & string, key: string): number {
    return this.listeners.get(`${topic}:${key}`)?.size ?? 0;
  }

  subscribe<T extends keyof Topics & string>(topic: T, key: string, listener: (payload: Topics[T]) => void): () => void {
    const channel = `${topic}:${key}`;
    let set = this.listeners.get(channel);
    if (!set) this.listeners.set(channel, (set = new Set()));
    set.add(listener as (payload: never) => void);
    let subscribed = true;
    return () => {
      if (!subscribed) return; // idempotent: a consumer may close and finish both
      subscribed = false;
      set.delete(listener as (payload: never) => void);
      if (set.size === 0 && this.listeners.get(channel) === set) this.listeners.delete(channel);
    };
  }
}

/** What a feed's body gets: a wait for the next notification, and whether the consumer has left. */
export interface FeedControl {
  wait(): Promise<void>;
  readonly closed: boolean;
}

/**
 * A stream fed by a subscription that is made at once: `listen(notify)` subscribes (returning its
 * unsubscribe) and calls `notify` whenever something arrives; `body` is the stream, which awaits
 * `wait()` when it has nothing to send and ends once `closed`.
 *
 * The consumer may leave at any time. An async generator paused at an `await` only handles
 * `return()` after its next `yield`, so an unsubscribing client of a quiet run would otherwise keep
 * its listener until the next event: leaving unsubscribes at once and wakes the body to end.
 */
export function feed<T>(listen: (notify: () => void) => () => void, body: (control: FeedControl) => AsyncGenerator<T>): AsyncGenerator<T> {
  let waiter: (() => void) | null = null;
  const notify = () => {
    const wake = waiter;
    waiter = null;
    wake?.();
  };
  const control = { closed: false, wait: () => new Promise<void>((resolve) => (waiter = resolve)) };
  const unsubscribe = listen(notify);
  const close = () => {
    control.closed = true;
    unsubscribe(); // also when the stream never started, which `finally` would not cover
    notify();
  };
  async function* run(): AsyncGenerator<T> {
    try {
      yield* body(control);
    } finally {
      unsubscribe();
    }
  }
  const generator = run();
  return {
    next: (...args) => generator.next(...args),
    return: (value) => {
      close();
      return generator.return(value);
    },
    throw: (error) => {
      close();
      return generator.throw(error);
    },
    [Symbol.asyncIterator]() {
      return this;
    },
    [Symbol.asyncDispose]: async () => {
      close();
      await generator.return(undefined);
    },
  } as AsyncGenerator<T>;
}

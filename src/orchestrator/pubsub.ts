/**
 * Publish/subscribe behind a small interface, so an in-memory bus can later be swapped for a
 * shared one (Redis, say) without touching callers. Listeners run synchronously, in order.
 */
export interface PubSub<Topics extends Record<string, unknown>> {
  publish<T extends keyof Topics & string>(topic: T, key: string, payload: Topics[T]): void;
  /** Returns the function that unsubscribes. `key` '*' receives every key of the topic. */
  subscribe<T extends keyof Topics & string>(topic: T, key: string, listener: (payload: Topics[T]) => void): () => void;
}

export class InMemoryPubSub<Topics extends Record<string, unknown>> implements PubSub<Topics> {
  private readonly listeners = new Map<string, Set<(payload: never) => void>>();

  publish<T extends keyof Topics & string>(topic: T, key: string, payload: Topics[T]): void {
    for (const channel of [`${topic}:${key}`, `${topic}:*`]) {
      // A copy: a listener may unsubscribe (or subscribe another) while we iterate.
      for (const listener of [...(this.listeners.get(channel) ?? [])]) (listener as (p: Topics[T]) => void)(payload);
    }
  }

  subscribe<T extends keyof Topics & string>(topic: T, key: string, listener: (payload: Topics[T]) => void): () => void {
    const channel = `${topic}:${key}`;
    let set = this.listeners.get(channel);
    if (!set) this.listeners.set(channel, (set = new Set()));
    set.add(listener as (payload: never) => void);
    return () => {
      set.delete(listener as (payload: never) => void);
      if (set.size === 0) this.listeners.delete(channel);
    };
  }
}

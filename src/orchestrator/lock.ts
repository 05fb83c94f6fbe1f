/** A minimal FIFO async mutex, optionally keyed, for serializing work that must not interleave. */
export class Mutex {
  private tail: Promise<void> = Promise.resolve();

  /** Runs `fn` after every earlier caller has finished, whether they succeeded or failed. */
  run<T>(fn: () => Promise<T>): Promise<T> {
    const result = this.tail.then(fn);
    this.tail = result.then(
      () => undefined,
      () => undefined,
    );
    return result;
  }
}

/** One mutex per key, dropped again once nobody waits on it. */
export class KeyedMutex {
  private readonly locks = new Map<string, { mutex: Mutex; users: number }>();

  async run<T>(key: string, fn: () => Promise<T>): Promise<T> {
    let entry = this.locks.get(key);
    if (!entry) this.locks.set(key, (entry = { mutex: new Mutex(), users: 0 }));
    entry.users += 1;
    try {
      return await entry.mutex.run(fn);
    } finally {
      entry.users -= 1;
      if (entry.users === 0) this.locks.delete(key);
    }
  }
}

/** At most `size` holders at once; the rest wait in FIFO order, each for at most its own timeout. */
export class Semaphore {
  private held = 0;
  private readonly waiting: { grant: () => void }[] = [];

  constructor(private readonly size: number) {}

  /**
   * Resolves with a release function once a slot is free, or with null after `timeoutMs` without
   * one (the waiter is then dropped from the queue). @default timeoutMs no limit
   */
  acquire(timeoutMs = Number.POSITIVE_INFINITY): Promise<(() => void) | null> {
    if (this.held < this.size) {
      this.held += 1;
      return Promise.resolve(this.releaser());
    }
    return new Promise((resolve) => {
      const waiter = { grant: () => resolve(this.releaser()) };
      this.waiting.push(waiter);
      if (Number.isFinite(timeoutMs)) {
        const timer = setTimeout(() => {
          const at = this.waiting.indexOf(waiter);
          if (at < 0) return; // granted meanwhile
          this.waiting.splice(at, 1);
          resolve(null);
        }, Math.max(0, timeoutMs));
        waiter.grant = () => {
          clearTimeout(timer);
          resolve(this.releaser());
        };
      }
    });
  }

  /** A release that hands the slot straight to the next waiter, so the count never overshoots; idempotent. */
  private releaser(): () => void {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = this.waiting.shift();
      if (next) next.grant();
      else this.held -= 1;
    };
  }
}

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

/**
 * At most `slots` holders at once; others wait in FIFO order. `acquire` resolves to the release,
 * which is idempotent; with `holdAtMostMs`, the slot is also released after that long, so a holder
 * stalled on something outside our control (a client that stopped reading) cannot keep it.
 */
export class Semaphore {
  private readonly waiting: (() => void)[] = [];
  private free: number;

  constructor(slots: number) {
    this.free = slots;
  }

  async acquire(holdAtMostMs?: number): Promise<() => void> {
    if (this.free > 0) this.free -= 1;
    else await new Promise<void>((resolve) => this.waiting.push(resolve));
    return this.releaser(holdAtMostMs);
  }

  /**
   * Like `acquire`, but waits at most `waitAtMostMs` for a slot: resolves to null then, having left
   * the queue (a read whose time budget ran out while it waited).
   */
  async acquireWithin(waitAtMostMs: number): Promise<(() => void) | null> {
    if (this.free > 0) {
      this.free -= 1;
      return this.releaser();
    }
    const granted = await new Promise<boolean>((resolve) => {
      const grant = () => {
        clearTimeout(timer);
        resolve(true);
      };
      const timer = setTimeout(() => {
        const at = this.waiting.indexOf(grant);
        if (at < 0) return; // granted meanwhile
        this.waiting.splice(at, 1);
        resolve(false);
      }, Math.max(0, waitAtMostMs));
      this.waiting.push(grant);
    });
    return granted ? this.releaser() : null;
  }

  /** The release of a slot just taken: hands it straight to the next waiter, so the count never overshoots. */
  private releaser(holdAtMostMs?: number): () => void {
    let held = true;
    const timer = holdAtMostMs === undefined ? undefined : setTimeout(() => release(), holdAtMostMs);
    timer?.unref();
    const release = () => {
      if (!held) return;
      held = false;
      clearTimeout(timer);
      const next = this.waiting.shift();
      if (next) next();
      else this.free += 1;
    };
    return release;
  }
}

/**
 * A first-come semaphore: at most `limit` holders at once, the others wait in order. A released
 * slot passes straight to the oldest waiter, so a late arrival never overtakes one that waits.
 * Used by the activity pool (whose backlog, `waiting`, decides offloading), the task workers and
 * the snapshot's item writes.
 */

/** At most `limit` holders at once; waiters are served first come, first served. */
export class Semaphore {
  #free: number
  /** Waiters in arrival order from `#head` on: a queue without `shift()`, which copies the array. */
  #waiters: Array<(() => void) | undefined> = []
  #head = 0

  constructor(
    /** Most holders at once (at least 1). */
    readonly limit: number,
  ) {
    this.#free = Math.max(1, limit)
  }

  /** Holders waiting for a slot. */
  get waiting(): number {
    return this.#waiters.length - this.#head
  }

  /** Takes a slot if one is free now (no promise); false when the caller would have to wait. */
  tryAcquire(): boolean {
    if (this.#free === 0) return false
    this.#free--
    return true
  }

  /** Resolves once a slot is held. */
  acquire(): Promise<void> {
    if (this.tryAcquire()) return Promise.resolve()
    return new Promise<void>((resolve) => this.#waiters.push(resolve))
  }

  /** Gives a held slot back: to the oldest waiter, else to the free ones. */
  release(): void {
    if (this.#head === this.#waiters.length) {
      this.#free++
      return
    }
    const next = this.#waiters[this.#head]!
    this.#waiters[this.#head++] = undefined
    if (this.#head === this.#waiters.length) {
      this.#waiters = []
      this.#head = 0
    } else if (this.#head >= 1024 && this.#head * 2 >= this.#waiters.length) {
      this.#waiters = this.#waiters.slice(this.#head)
      this.#head = 0
    }
    next()
  }

  /** Runs `fn` holding a slot; the slot is released however `fn` ends. */
  async run<T>(fn: () => Promise<T>): Promise<T> {
    await this.acquire()
    try {
      return await fn()
    } finally {
      this.release()
    }
  }
}

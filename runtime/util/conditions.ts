/**
 * Event-driven waits: `until(test)` resolves once `test()` holds, re-checked whenever the owner
 * calls `check()` after a change that may make it hold — instead of polling on a timer.
 */

/** Waits for conditions over an owner's state; the owner calls {@link check} after changes. */
export class Conditions {
  #waits: Array<{ test: () => boolean; resolve: () => void }> = []

  /**
   * Resolves with true once `test()` holds (at once if it holds now), or with false when
   * `timeoutMs` (default: none) passes first.
   */
  until(test: () => boolean, timeoutMs?: number): Promise<boolean> {
    if (test()) return Promise.resolve(true)
    return new Promise((resolve) => {
      let timer: NodeJS.Timeout | undefined
      const wait = {
        test,
        resolve: () => {
          clearTimeout(timer)
          resolve(true)
        },
      }
      this.#waits.push(wait)
      if (timeoutMs !== undefined) {
        timer = setTimeout(() => {
          this.#waits = this.#waits.filter((w) => w !== wait)
          resolve(false)
        }, timeoutMs)
      }
    })
  }

  /** Re-tests every waiting condition and resolves those that hold now. */
  check(): void {
    if (this.#waits.length === 0) return
    const waits = this.#waits
    this.#waits = []
    for (const wait of waits) {
      if (wait.test()) wait.resolve()
      else this.#waits.push(wait)
    }
  }

  /** Number of waits not yet resolved. */
  get pending(): number {
    return this.#waits.length
  }
}

/**
 * Resolves as `work` does; calls `onSlow` once when `work` has not settled after `afterMs`, for a
 * start-up step that can wait long (a NATS server that answers slowly) to say what it waits for
 * instead of staying silent.
 *
 * @example await whenSlow(connectTo(url), 10_000, () => logger.warn(`still connecting to ${url}`))
 */
export async function whenSlow<T>(work: Promise<T>, afterMs: number, onSlow: () => void): Promise<T> {
  const timer = setTimeout(onSlow, afterMs)
  try {
    return await work
  } finally {
    clearTimeout(timer)
  }
}

/**
 * Retry with exponential backoff, in one place: hub creation, log appends, outbox and client
 * publishes, and client queries all try an operation again after 1×, 2×, 4× … a first delay (up to
 * a cap) while its error is worth another try and a deadline allows.
 */

/** Settings of {@link retryWithBackoff}. */
export interface RetryOptions {
  /** Wait before the second try, in ms; doubled after each failure... */
  firstDelayMs: number
  /** ...up to this. */
  maxDelayMs: number
  /** Time (epoch ms) past which no wait starts: the last error is thrown instead. Default: none. */
  deadline?: number
  /** Whether an error is worth another try (default: every error). */
  retryable?: (err: unknown) => boolean
  /** Called before each wait, with the error and the wait in ms (e.g. to log). */
  onRetry?: (err: unknown, delayMs: number) => void
}

/**
 * Runs `attempt` until it resolves; after a failure, waits and tries again while
 * `options.retryable(err)` holds and the wait ends before `options.deadline`. Rejects with the
 * last error otherwise.
 *
 * @example
 * await retryWithBackoff(() => publish(), { firstDelayMs: 20, maxDelayMs: 1000, deadline: Date.now() + 5000 })
 */
export async function retryWithBackoff<T>(
  attempt: (n: number) => Promise<T>,
  options: RetryOptions,
): Promise<T> {
  let delay = options.firstDelayMs
  for (let n = 0; ; n++) {
    try {
      return await attempt(n)
    } catch (err) {
      if (options.retryable !== undefined && !options.retryable(err)) throw err
      if (options.deadline !== undefined && Date.now() + delay > options.deadline) throw err
      options.onRetry?.(err, delay)
      await new Promise((resolve) => setTimeout(resolve, delay))
      delay = Math.min(delay * 2, options.maxDelayMs)
    }
  }
}

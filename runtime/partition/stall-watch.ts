/**
 * Notices a mailbox consumer that stopped delivering although messages wait: a consumer lost
 * with a NATS server (a cluster member killed) is otherwise only noticed by missed heartbeats,
 * and short heartbeats misfire on a busy machine. The owner calls {@link StallWatch.delivered} on
 * every message; while nothing arrives and nothing is buffered, the watch asks the stream — first
 * after `idleMs`, then at doubling intervals up to a minute, so idle partitions cost almost nothing —
 * whether messages wait past the partition's position, and reports a stall if they do. Right after
 * the connection was made again ({@link StallWatch.reconnected}) it asks sooner: a consumer lost
 * with a restarted server would otherwise hold the partition for seconds, while a live one delivers
 * what waits at once.
 */

const MAX_INTERVAL_MS = 60_000

/**
 * How long after a reconnect messages may wait undelivered. Measured with the only server killed
 * and restarted under load: the client library's own recovery of the consumer backs off for its
 * `expires` (10 s) when the restarted server cannot answer yet, and the partitions served again
 * only after the idle check (7.5 s); a live consumer delivers within milliseconds.
 */
const RECONNECT_GRACE_MS = 1000

/** How often the watch looks whether a check is due. */
const TICK_MS = 250

/**
 * How long a check waits for the stream's answer before it counts as unanswered and the watch asks
 * again. Measured with the server that led the mailbox stream killed in a 3-server cluster: the
 * questions asked while the stream had no leader each waited out the client library's 5 s, and a
 * consumer lost with that server held its partition for 13 s; a stream with a leader answers in
 * milliseconds.
 */
const CHECK_PATIENCE_MS = 1500

/** How long after a reconnect {@link RECONNECT_GRACE_MS} applies instead of `idleMs`. */
const RECONNECT_WINDOW_MS = 30_000

/** What the watch needs from its partition. */
export interface StallWatchPort {
  /** Nothing delivered is waiting to be processed. */
  idle(): boolean
  /** The first mailbox sequence not yet processed. */
  position(): number
  /** The last sequence stored on the partition's mailbox subject (0: none). */
  lastStored(): Promise<number>
  /** Messages wait but none arrived: recreate the consumer. */
  stalled(reason: string): void
}

/** A per-partition stall detector; see the module comment. */
export class StallWatch {
  #lastDelivery = Date.now()
  /** When the connection was last made again (0: not since the watch started). */
  #reconnectedAt = 0
  #interval: number
  #nextCheck: number
  #checking = false
  /** Numbers the checks: one begun before a reconnect is abandoned (see {@link reconnected}). */
  #checks = 0
  readonly #timer: NodeJS.Timeout

  constructor(
    readonly port: StallWatchPort,
    readonly idleMs = 4000,
    /** How long a check waits for its answer ({@link CHECK_PATIENCE_MS}). */
    readonly patienceMs = CHECK_PATIENCE_MS,
  ) {
    this.#interval = idleMs
    this.#nextCheck = Date.now() + idleMs
    // ticks are a few comparisons until a check is due: often enough for the short reconnect grace
    this.#timer = setInterval(() => void this.#tick(), Math.min(TICK_MS, idleMs))
    this.#timer.unref()
  }

  /** A message arrived: the consumer is alive. */
  delivered(): void {
    this.#lastDelivery = Date.now()
    this.#interval = this.idleMs
  }

  /** The connection was made again: for a while, check within {@link RECONNECT_GRACE_MS}, not `idleMs`. */
  reconnected(): void {
    this.#reconnectedAt = Date.now()
    this.#interval = this.idleMs
    this.#nextCheck = this.#reconnectedAt + RECONNECT_GRACE_MS
    // a check asked while the connection was down waits out its request's timeout (5 s): its
    // answer no longer counts, and the next check does not wait for it
    this.#checks++
    this.#checking = false
  }

  stop(): void {
    clearInterval(this.#timer)
  }

  /**
   * How long nothing was delivered (counted from the reconnect at most), and how long that may
   * last before the stream is asked: {@link RECONNECT_GRACE_MS} for a while after a reconnect (a
   * consumer may deliver what it held, then stop), else `idleMs`.
   */
  #quietFor(now: number): { ms: number; limit: number; afterReconnect: boolean } {
    const afterReconnect = this.#reconnectedAt > 0 && now - this.#reconnectedAt < RECONNECT_WINDOW_MS
    return {
      ms: now - Math.max(this.#lastDelivery, this.#reconnectedAt),
      limit: afterReconnect ? RECONNECT_GRACE_MS : this.idleMs,
      afterReconnect,
    }
  }

  async #tick(): Promise<void> {
    const now = Date.now()
    if (this.#checking || now < this.#nextCheck) return
    const quiet = this.#quietFor(now)
    if (quiet.ms < quiet.limit || !this.port.idle()) {
      this.#nextCheck = now + (quiet.ms < quiet.limit ? quiet.limit - quiet.ms : quiet.limit)
      return
    }
    this.#checking = true
    const check = ++this.#checks
    try {
      const last = await this.#ask()
      if (check !== this.#checks) return // abandoned at a reconnect
      const pos = this.port.position()
      const still = this.#quietFor(Date.now())
      if (last >= pos && still.ms >= still.limit && this.port.idle()) {
        const after = still.afterReconnect ? ' (the connection was made again lately)' : ''
        this.port.stalled(
          `messages up to ${last} wait past position ${pos}, none delivered for ${still.ms} ms${after}`,
        )
        return
      }
      this.#interval = still.afterReconnect
        ? RECONNECT_GRACE_MS
        : Math.min(this.#interval * 2, MAX_INTERVAL_MS)
    } catch {
      // the stream cannot answer now (a server down, no leader yet): ask again soon
      this.#interval = this.#quietFor(Date.now()).limit
    } finally {
      if (check === this.#checks) {
        this.#checking = false
        this.#nextCheck = Date.now() + this.#interval
      }
    }
  }

  /** The stream's last sequence, or a rejection once {@link patienceMs} passed without an answer. */
  #ask(): Promise<number> {
    let timer: NodeJS.Timeout | undefined
    const answer = this.port.lastStored()
    const patience = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error('no answer')), this.patienceMs)
    })
    // an answer that comes later is dropped (its own request times out in the client library)
    answer.catch(() => {})
    return Promise.race([answer, patience]).finally(() => clearTimeout(timer))
  }
}

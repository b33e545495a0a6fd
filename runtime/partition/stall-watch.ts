/**
 * Notices a mailbox consumer that stopped delivering although messages wait: a consumer lost
 * with a NATS server (a cluster member killed) is otherwise only noticed by missed heartbeats,
 * and short heartbeats misfire on a busy machine. The owner calls {@link StallWatch.delivered} on
 * every message; while nothing arrives and nothing is buffered, the watch asks the stream — first
 * after `idleMs`, then at doubling intervals up to a minute, so idle partitions cost almost nothing —
 * whether messages wait past the partition's position, and reports a stall if they do.
 */

const MAX_INTERVAL_MS = 60_000

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
  #interval: number
  #nextCheck: number
  #checking = false
  readonly #timer: NodeJS.Timeout

  constructor(
    readonly port: StallWatchPort,
    readonly idleMs = 4000,
  ) {
    this.#interval = idleMs
    this.#nextCheck = Date.now() + idleMs
    this.#timer = setInterval(() => void this.#tick(), Math.min(1000, idleMs))
    this.#timer.unref()
  }

  /** A message arrived: the consumer is alive. */
  delivered(): void {
    this.#lastDelivery = Date.now()
    this.#interval = this.idleMs
  }

  stop(): void {
    clearInterval(this.#timer)
  }

  async #tick(): Promise<void> {
    const now = Date.now()
    if (this.#checking || now < this.#nextCheck) return
    if (now - this.#lastDelivery < this.idleMs || !this.port.idle()) {
      this.#nextCheck = now + this.idleMs
      return
    }
    this.#checking = true
    try {
      const last = await this.port.lastStored()
      const pos = this.port.position()
      if (last >= pos && Date.now() - this.#lastDelivery >= this.idleMs && this.port.idle()) {
        this.port.stalled(
          `messages up to ${last} wait past position ${pos}, none delivered for ${Date.now() - this.#lastDelivery} ms`,
        )
        return
      }
      this.#interval = Math.min(this.#interval * 2, MAX_INTERVAL_MS)
    } catch {
      // the stream cannot answer now (a server down): ask again soon
      this.#interval = this.idleMs
    } finally {
      this.#checking = false
      this.#nextCheck = Date.now() + this.#interval
    }
  }
}

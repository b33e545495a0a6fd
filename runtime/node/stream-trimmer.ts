/**
 * The node's part in trimming the hub's shared streams (`runtime/nats/stream-trim.ts`):
 * every `intervalMs`, while this node runs partition 0, one trim; never two at once. A trim that
 * fails (a stream without a leader for a while) is logged, at most once a minute, and tried at the
 * next interval: what it would have cut stays until then, nothing else depends on it.
 */
import { describeNatsError, trimSharedStreams, type Hub, type NatsConnection } from '../nats/index.ts'
import { throttledWarning, type Logger } from '../util/index.ts'

export class StreamTrimmer {
  #timer: NodeJS.Timeout
  #running: Promise<void> | undefined
  #failed: (fields: Record<string, unknown>) => void
  #stopped = false

  constructor(
    private readonly nc: NatsConnection,
    private readonly hub: Hub,
    intervalMs: number,
    private readonly logger: Logger,
    /** Whether this node is the one that trims now (it runs partition 0). */
    private readonly mine: () => boolean,
  ) {
    this.#failed = throttledWarning(logger, "could not trim the hub's streams; will retry", 60_000)
    this.#timer = setInterval(() => void this.runOnce(), intervalMs)
    this.#timer.unref()
  }

  /** One trim now, if this node is the one that trims and none is under way. */
  runOnce(): Promise<void> {
    if (this.#running !== undefined || this.#stopped || !this.mine() || this.nc.isClosed())
      return this.#running ?? Promise.resolve()
    this.#running = trimSharedStreams(this.nc, this.hub)
      .then(({ mailbox, log }) => {
        if (mailbox > 0 || log > 0)
          this.logger.info("trimmed the hub's streams", { mailboxFrom: mailbox, logFrom: log })
      })
      .catch((err: unknown) => {
        if (!this.#stopped) this.#failed({ error: describeNatsError(err) })
      })
      .finally(() => (this.#running = undefined))
    return this.#running
  }

  /**
   * No more trims. One under way is not waited for: a stop must not wait on a cluster that answers
   * slowly, and a cut is safe whenever it lands (it was computed from what the partitions need).
   */
  stop(): void {
    this.#stopped = true
    clearInterval(this.#timer)
  }
}

/**
 * A partition's change messages (`H.chg.<p>`: each durable record that changed entity states or
 * instance records), published only while someone may be watching.
 *
 * Publishing every record costs as many bytes again as the commit log itself, usually for nobody.
 * So the feed asks now and then (a request on the subject: NATS answers "no responders" at once
 * when nothing subscribes) and stops publishing once nobody listens. A watcher announces itself
 * with its first query (`w: 1`), which reaches the owner before the record its answer is based on
 * is decided, so every later record is published again. A new owner starts out publishing.
 */
import type { NatsConnection } from '@nats-io/transport-node'
import { isNoResponders } from '../nats/errors.ts'

const EMPTY = new Uint8Array(0)

/** One partition's change messages, published while someone may watch (see the module comment). */
export class ChangeFeed {
  #publishing = true
  /** Bumped by every announcement: a probe sent before one must not switch the feed off. */
  #joins = 0
  #probedAt = 0
  #probing = false

  constructor(
    readonly nc: NatsConnection,
    readonly subject: string,
    readonly probeEveryMs = 2_000,
  ) {}

  /** Whether records are published now. */
  get publishing(): boolean {
    return this.#publishing
  }

  /** A watcher subscribed and is about to read its first value. */
  watcherJoined(): void {
    this.#joins++
    this.#publishing = true
  }

  /** Publishes a record's encoding if anyone may listen. */
  publish(bytes: Uint8Array): void {
    if (!this.#publishing) return
    this.nc.publish(this.subject, bytes)
    this.#probe()
  }

  #probe(): void {
    const now = Date.now()
    if (this.#probing || now - this.#probedAt < this.probeEveryMs || this.nc.isClosed()) return
    this.#probing = true
    this.#probedAt = now
    const joins = this.#joins
    this.nc
      .request(this.subject, EMPTY, { timeout: 1_000 })
      .catch((err: unknown) => {
        // a timeout means someone subscribes (watchers never answer probes)
        if (isNoResponders(err) && joins === this.#joins) this.#publishing = false
      })
      .finally(() => (this.#probing = false))
  }
}

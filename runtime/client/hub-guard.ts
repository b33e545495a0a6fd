/**
 * Whether the hub a client opened is still the hub there. A hub deleted and created again
 * (`basalt hub delete --force`, then `basalt hub create` or a node that creates it) keeps its name
 * and its subjects but may have another partition count: a client that went on routing by the
 * count it read at connect would publish messages to partitions they do not belong to (each one
 * dead-lettered there as misrouted) and ask partitions that do not hold what it reads.
 *
 * So a client listens for the creation of its hub's metadata stream (the JetStream advisory
 * `$JS.EVENT.ADVISORY.STREAM.CREATED.KV_<meta bucket>`, a plain core subscription: it outlives the
 * deletion of the stream, which a KV watch's consumer does not, and unlike one on the record's own
 * subject it answers no publish — a publish to a bucket that is gone must still find no
 * responders). A hub created again creates that stream first, then writes its record, and only
 * then its mailbox stream: a client that heard the creation holds its messages and queries while
 * it reads the record from the leader of the metadata stream, again every {@link RETRY_MS} until
 * the record is there (at most {@link READ_WAIT_MS}), and once a read finds another hub it refuses
 * every message and query from then on, with `HubNotFoundError` naming both partition counts and
 * saying to connect again ({@link HubGuard.refusal}). A read that finds its own hub (a creation
 * that was not one) lets them go. After a reconnect (an advisory sent meanwhile was not heard) and
 * right after it subscribed, the client reads the record once, without holding anything. A record
 * found missing is read again {@link CONFIRM_MS} later (a cluster recovering from a restart must
 * not pass for a deletion); a deletion alone refuses nothing here: messages meet what NATS does
 * (no stream), and the transport says the hub was deleted. In the common case — nothing heard — a
 * message only checks {@link HubGuard.replaced}.
 *
 * What this cannot rule out: a message that leaves before the client hears the creation — the
 * advisory's one hop of core NATS (a route more in a cluster), against the two or more JetStream
 * API round trips the creator makes after it before the new hub has a mailbox stream to take the
 * message; while the client reconnects, until its read after the reconnect; and, right after it
 * connected, a creation whose advisory reaches a server of a cluster before the client's interest
 * does and after its first read. A hub made by other means than Basalt's (its streams in another
 * order) is not covered the same way. Such a message is still never applied: its envelope carries
 * when the hub this client opened was created (`ClientEnvelope.h`), and a partition of a hub
 * created since refuses it (`HubNotFoundError` to its caller, whereupon the transport has this
 * guard read the record) and dead-letters it. A user without the permission to
 * subscribe to the advisory (docs/SECURITY.md) gets a warning, and the client reads the record
 * instead while it sends, at most every {@link HUB_CHECK_MS}: the message that finds a read due
 * waits for it (at most {@link READ_WAIT_MS}), as do those sent meanwhile; one sent less than
 * {@link HUB_CHECK_MS} after a read does not.
 */
import { HubNotFoundError, counted } from '../../actors/index.ts'
import {
  readHubRecord,
  type Hub,
  type HubMeta,
  type NatsConnection,
  type Subscription,
} from '../nats/index.ts'
import { consoleLogger, type Logger } from '../util/index.ts'

/**
 * How often a client that may not subscribe to the advisory of its hub created again reads the hub
 * record while it sends, at most, in ms (the message that finds a read due waits for it).
 */
export const HUB_CHECK_MS = 100
/** How long after a background read that found no hub record (or no answer) it is read again, in ms. */
export const CONFIRM_MS = 1000
/** How many reads in a row that find no record (or get no answer) the client makes before it waits for news. */
const CONFIRM_TRIES = 3
/**
 * How long messages wait, after the client heard its hub's metadata stream created, for a read that
 * finds the record, in ms: none found by then (a creation that stopped half-way, a metadata stream
 * electing its leader), messages go on; a read's answer still counts when it comes, and the record
 * is read again from the background.
 */
export const READ_WAIT_MS = 250
/** How long a read, after the creation was heard, that found no record yet waits before it reads again, in ms. */
export const RETRY_MS = 20

const defaultLogger = consoleLogger('basalt client')

/** The check of one client's hub (see the module comment). */
export class HubGuard {
  /** The record of the hub created again, once found: every message and query is refused. */
  #replaced: HubMeta | undefined
  /** Reads after the metadata stream was heard created: messages wait for them. */
  #held: Promise<void> | undefined
  /** A background read in flight. */
  #checking = false
  /** Something was heard while a background read was in flight: read again after it. */
  #again = false
  /** The read {@link CONFIRM_MS} after one that found no record, and how many came in a row. */
  #later: NodeJS.Timeout | undefined
  #tries = 0
  #sub: Subscription | undefined
  /** The subscription was refused: reads while sending stand in for it. */
  #polling = false
  #readAt = 0
  #closed = false

  constructor(
    readonly hub: Hub,
    /** Told once, when the hub is found created again (the client fails what waits on the old one). */
    readonly onReplaced: (refusal: HubNotFoundError) => void,
    readonly logger: Logger = defaultLogger,
  ) {}

  /** The subject of the advisory the server sends when the hub's metadata stream is created. */
  get subject(): string {
    return `$JS.EVENT.ADVISORY.STREAM.CREATED.KV_${this.hub.names.metaBucket}`
  }

  /**
   * Starts listening on `nc` for the creation of the hub's metadata stream, then reads the record
   * once (a creation between the client's connect and its subscription).
   */
  listen(nc: NatsConnection): void {
    this.#sub = nc.subscribe(this.subject, {
      callback: (err) => {
        if (err !== null) return this.#refused(err)
        this.heard()
      },
    })
    nc.flush().then(
      () => this.check(),
      () => {},
    )
  }

  /** Stops listening and reading. */
  close(): void {
    this.#closed = true
    clearTimeout(this.#later)
    this.#sub?.unsubscribe()
  }

  /** Whether the hub was found deleted and created again: everything is refused then. */
  get replaced(): boolean {
    return this.#replaced !== undefined
  }

  /**
   * The error that refuses a message or query once the hub was found created again, e.g. `hub
   * 'orders' was deleted and created again since this client connected, now with 8 partitions
   * (this client routes by the 4 it had): connect again`. A new one each time (its stack is the
   * caller's).
   */
  refusal(): HubNotFoundError {
    return recreatedError(this.hub.names.hub, this.hub.meta, this.#replaced)
  }

  /**
   * Settles once a message or query may leave: undefined (at once) unless the client just heard
   * the metadata stream created, or may not hear it and a read is due ({@link HUB_CHECK_MS}), and
   * reads the record; rejects with {@link refusal} when the hub was found created again.
   */
  ready(): Promise<void> | undefined {
    if (this.#replaced !== undefined) return Promise.reject(this.refusal())
    if (this.#held === undefined && this.#polling && Date.now() - this.#readAt >= HUB_CHECK_MS) this.#hold()
    if (this.#held !== undefined) {
      return this.#held.then(() => {
        if (this.#replaced !== undefined) throw this.refusal()
      })
    }
    return undefined
  }

  /**
   * Without the advisory: messages wait for one read of the record (at most {@link READ_WAIT_MS}).
   * Not read in the background: a message that left meanwhile would reach a hub created again, and
   * be applied there (its key in the same partition under both counts) while its call was refused.
   */
  #hold(): void {
    this.#readAt = Date.now()
    const held = this.#readWithin(READ_WAIT_MS)
      .then(() => {})
      .finally(() => {
        if (this.#held === held) this.#held = undefined
      })
    this.#held = held
  }

  /**
   * The hub's metadata stream was created (again): messages wait while the record is read, until it
   * is there (at most {@link READ_WAIT_MS}).
   */
  heard(): void {
    if (this.#replaced !== undefined || this.#closed || this.#held !== undefined) return
    const held = this.#confirm().finally(() => {
      if (this.#held === held) this.#held = undefined
    })
    this.#held = held
  }

  /** Reads the record until it is another hub's or this one's, for at most {@link READ_WAIT_MS}. */
  async #confirm(): Promise<void> {
    const deadline = Date.now() + READ_WAIT_MS
    for (;;) {
      const now = await this.#readWithin(deadline - Date.now())
      if (now !== undefined && now !== null) return // (another hub's: found)
      if (this.#replaced !== undefined || this.#closed) return
      // none stored yet, or no answer: again in a moment, then from the background
      const left = deadline - Date.now()
      if (left <= RETRY_MS) return this.check()
      await new Promise((resolve) => setTimeout(resolve, RETRY_MS))
    }
  }

  /**
   * Reads the record in the background (nothing waits for it): at the start, after a reconnect,
   * after reads that held messages found nothing. A read in flight is followed by one more.
   */
  check(): void {
    this.#tries = 0
    this.#check()
  }

  #check(): void {
    if (this.#replaced !== undefined || this.#closed) return
    if (this.#checking) {
      this.#again = true
      return
    }
    this.#checking = true
    this.#readAt = Date.now()
    void this.#read().finally(() => {
      this.#checking = false
      if (this.#again) {
        this.#again = false
        this.#check()
      }
    })
  }

  async #read(): Promise<void> {
    const now = await this.#readWithin(Infinity)
    if (now !== undefined && now !== null) {
      this.#tries = 0
      return
    }
    // gone, a cluster recovering from a restart, or NATS not answering: read again a moment later
    // (a deletion confirmed changes nothing here: a creation after it is heard)
    if (++this.#tries >= CONFIRM_TRIES || this.#later !== undefined) return
    this.#later = setTimeout(() => {
      this.#later = undefined
      this.#check()
    }, CONFIRM_MS)
    this.#later.unref?.()
  }

  /**
   * The hub record (null: none), or undefined when the read failed or did not answer within `ms`
   * — a late answer still counts. A record of another hub is {@link found}.
   */
  async #readWithin(ms: number): Promise<HubMeta | null | undefined> {
    const read = readHubRecord(this.hub).then(
      (now) => {
        if (now !== null && now.created !== this.hub.meta.created) this.found(now)
        return now
      },
      () => undefined,
    )
    if (ms === Infinity) return read
    let timer: NodeJS.Timeout | undefined
    const late = new Promise<undefined>(
      (resolve) => (timer = setTimeout(() => resolve(undefined), Math.max(0, ms))),
    )
    return Promise.race([read, late]).finally(() => clearTimeout(timer))
  }

  /** The subscription was refused (a user with the permissions of an earlier version): read instead. */
  #refused(err: Error): void {
    if (this.#polling || this.#closed) return
    this.#polling = true
    this.logger.warn(
      `may not subscribe to ${this.subject}: reading the hub record while sending instead ` +
        `(give the client user this subscribe permission, docs/SECURITY.md)`,
      { error: err.message },
    )
  }

  /**
   * Notes that the hub was found created again, with record `now`: from then on everything is
   * refused. Returns the refusal.
   */
  found(now: HubMeta): HubNotFoundError {
    if (this.#replaced === undefined) {
      this.#replaced = now
      this.onReplaced(this.refusal())
    }
    return this.refusal()
  }
}

/** What a client is told of its hub deleted (and not created again). */
export function deletedError(hub: string): HubNotFoundError {
  return new HubNotFoundError(hub, `hub '${hub}' was deleted: start a node on it to create it again`)
}

/**
 * What a client is told of its hub deleted and created again: connect again; with the partition
 * counts when they differ (the client routes by the old one).
 */
export function recreatedError(hub: string, opened: HubMeta, now: HubMeta | undefined): HubNotFoundError {
  const counts =
    now === undefined || now.partitions === opened.partitions
      ? ''
      : `, now with ${counted(now.partitions, 'partition')} (this client routes by the ` +
        `${opened.partitions} it had)`
  return new HubNotFoundError(
    hub,
    `hub '${hub}' was deleted and created again since this client connected${counts}: connect again`,
  )
}

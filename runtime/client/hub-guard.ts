/**
 * Whether the hub a client opened is still the hub there. A hub deleted and created again
 * (`basalt hub delete --force`, then `basalt hub create` or a node that creates it) keeps its name
 * and its subjects but may have another partition count: a client that went on routing by the
 * count it read at connect would publish messages to partitions they do not belong to (each one
 * dead-lettered there as misrouted) and ask partitions that do not hold what it reads.
 *
 * So before its messages and queries leave, a client makes sure that it read the hub record (from
 * the leader of the metadata stream) at most {@link HUB_CHECK_MS} ago and found the hub it opened
 * (its creation time); a send after a quiet spell waits for that one read, a client that keeps
 * sending reads it at most that often. Once it finds the hub created again, the client refuses
 * every message and query from then on, with `HubNotFoundError` naming both partition counts and
 * saying to connect again ({@link HubGuard.refusal}). A hub record that is missing is a deletion
 * only when a second read a moment later says so too (a cluster recovering from a restart must not
 * pass for one); NATS not answering the read (within {@link READ_WAIT_MS}) says nothing of the
 * hub: the message goes on, and its publish meets what NATS does.
 *
 * What this cannot rule out: a hub deleted and created again, whole, within {@link HUB_CHECK_MS}
 * after the client's last read while it sent nothing (a deletion and creation from the command
 * line take seconds). A message sent then to a partition it does not belong to is never applied
 * there: the partition dead-letters it as misrouted.
 */
import { HubNotFoundError, counted } from '../../actors/index.ts'
import { readHubRecord, type Hub, type HubMeta } from '../nats/index.ts'

/** How long a read of the hub record that found the client's hub lets messages leave without another, in ms. */
export const HUB_CHECK_MS = 100
/** How long after a read that found no hub record it is read again, before the hub counts as deleted, in ms. */
const CONFIRM_MS = 1000
/**
 * How long messages wait for a read of the hub record, in ms: one not answered by then (a
 * metadata stream electing its leader, a slow link) says nothing yet, and messages go on; no other
 * read starts until it answers, and what it answers still counts.
 */
export const READ_WAIT_MS = 250

/** The check of one client's hub (see the module comment). */
export class HubGuard {
  /** The record of the hub created again, once found: every message and query is refused. */
  #replaced: HubMeta | undefined
  /** When the last read started (ms since the epoch): the client's hub was read at connect. */
  #readAt: number
  /** The read in flight, which messages wait for. */
  #reading: Promise<void> | undefined
  /** A read that did not answer within {@link READ_WAIT_MS}: messages no longer wait for it. */
  #late: Promise<void> | undefined

  constructor(
    readonly hub: Hub,
    /** Told once, when the hub is found created again (the client fails what waits on the old one). */
    readonly onReplaced: (refusal: HubNotFoundError) => void,
    openedAt = Date.now(),
  ) {
    this.#readAt = openedAt
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
   * Settles once a message or query may leave: at once (undefined) when the hub was read lately;
   * rejects with {@link refusal} when it was found created again, and with `HubNotFoundError`
   * (`hub '…' was deleted`) when it is gone.
   */
  ready(): Promise<void> | undefined {
    if (this.#replaced !== undefined) return Promise.reject(this.refusal())
    if (this.#reading !== undefined) return this.#reading
    if (this.#late !== undefined || Date.now() - this.#readAt < HUB_CHECK_MS) return undefined
    this.#readAt = Date.now()
    const reading = this.#read().finally(() => {
      if (this.#reading === reading) this.#reading = undefined
    })
    this.#reading = reading
    return reading
  }

  async #read(): Promise<void> {
    // (undefined: NATS cannot tell; the message goes on, and meets what NATS does)
    let now = await this.#readRecord()
    if (now === null) {
      // gone, or a cluster recovering from a restart: read again a moment later
      await new Promise((resolve) => setTimeout(resolve, CONFIRM_MS))
      now = await this.#readRecord()
      if (now === null) throw deletedError(this.hub.names.hub)
    }
    if (now !== undefined && now.created !== this.hub.meta.created) throw this.found(now)
  }

  /**
   * The hub record (null: none); undefined when the read failed or did not answer within
   * {@link READ_WAIT_MS} — such a read's answer, when it comes, still counts.
   */
  async #readRecord(): Promise<HubMeta | null | undefined> {
    const read = readHubRecord(this.hub).catch(() => undefined)
    let timer: NodeJS.Timeout | undefined
    const late = new Promise<'late'>((resolve) => (timer = setTimeout(resolve, READ_WAIT_MS, 'late')))
    const answer = await Promise.race([read, late]).finally(() => clearTimeout(timer))
    if (answer !== 'late') return answer
    const settled = read
      .then((now) => {
        if (now !== undefined && now !== null && now.created !== this.hub.meta.created) this.found(now)
      })
      .finally(() => {
        if (this.#late === settled) this.#late = undefined
      })
    this.#late = settled
    return undefined
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

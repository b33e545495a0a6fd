/**
 * Messages between partitions served on one connection (one node thread), handed over in memory
 * instead of through the destination's mailbox stream.
 *
 * A partition's messages for another partition are durable before they leave: in the sender's
 * commit record, then in its checkpoint's unconfirmed outbox. The mailbox publish only carries
 * them. When the destination runs on the same connection, the sender's outbox (outbox.ts) hands
 * each committed group — its record number and its messages for that destination — to the
 * destination's {@link LocalDestination}. The destination takes a group into a round as it takes a
 * mailbox envelope of that origin (dedup by record number; messages the round has no room for go
 * into its local queue, which its record carries) and confirms the group once that round is
 * durable; the sender keeps the group until then. A destination that stops (moved, failed, closed)
 * gives back every group it did not confirm, and the sender sends them again, through the mailbox
 * when the destination is gone; the next owner drops what its predecessor had committed.
 *
 * Order per origin: a sender hands a group over only once the destination's mailbox position is
 * past the last message this sender published to that mailbox; until then it holds its groups.
 * After a restart a sender does not know what its predecessor published, so its first group for
 * each destination goes through the mailbox.
 */

/** A group a sender hands over: the messages of its record `n` for the destination. */
export interface HandedGroup {
  /** The sending partition. */
  readonly from: number
  /** The sender's record number (the destination's dedup key for the group). */
  readonly n: number
  readonly msgs: Uint8Array[]
  /** Encoded size of the messages. */
  readonly bytes: number
  /** Called once the destination's round that took the group is durable. */
  readonly confirm: () => void
}

/** A sender, as a destination sees it: told when the groups it handed over come back. */
export interface LocalSender {
  /** The destination stopped: every group handed to it and not confirmed is to be sent again. */
  returned(to: LocalDestination): void
}

/** A partition served on this connection, as the senders beside it see it. */
export class LocalDestination {
  /** Groups handed over and not taken into a round yet, oldest first. */
  readonly groups: HandedGroup[] = []
  readonly #senders = new Set<LocalSender>()
  #waits: Array<{ seq: number; wake: () => void }> = []
  #gone = false

  constructor(
    readonly p: number,
    /** The next mailbox sequence the partition processes (its live position). */
    readonly position: () => number,
    /** Wakes the partition's loop. */
    readonly kick: () => void,
  ) {}

  /** Whether the destination stopped taking groups. */
  get gone(): boolean {
    return this.#gone
  }

  /** Whether the partition has processed its mailbox past sequence `seq`. */
  passed(seq: number): boolean {
    return this.position() > seq
  }

  /** Calls `wake` once the partition has processed its mailbox past `seq`, or stopped. */
  whenPassed(seq: number, wake: () => void): void {
    if (this.#gone || this.passed(seq)) return wake()
    this.#waits.push({ seq, wake })
  }

  /** Takes a group from `sender` (the partition takes it into a round at its next step). */
  hand(sender: LocalSender, group: HandedGroup): void {
    this.#senders.add(sender)
    this.groups.push(group)
    this.kick()
  }

  /** The partition moved its mailbox position: wakes the senders waiting for it. */
  moved(): void {
    if (this.#waits.length === 0) return
    const ready = this.#waits.filter((w) => this.passed(w.seq))
    if (ready.length === 0) return
    this.#waits = this.#waits.filter((w) => !this.passed(w.seq))
    for (const w of ready) w.wake()
  }

  /** A sender stopped: it is not told about its groups any more (its successor sends them again). */
  forget(sender: LocalSender): void {
    this.#senders.delete(sender)
  }

  /**
   * The partition stops taking groups: those not taken are dropped, and every sender is told to
   * send again what it did not see confirmed; senders waiting for the position go on.
   */
  stop(): void {
    if (this.#gone) return
    this.#gone = true
    this.groups.length = 0
    const waits = this.#waits
    this.#waits = []
    for (const sender of this.#senders) sender.returned(this)
    this.#senders.clear()
    for (const w of waits) w.wake()
  }
}

/** The partitions of one hub served on one connection, by number. */
export class LocalRoutes {
  readonly #destinations = new Map<number, LocalDestination>()

  /** The destination serving partition `p` here, if any. */
  get(p: number): LocalDestination | undefined {
    return this.#destinations.get(p)
  }

  /** Partition `dest.p` is served here now (an earlier run of it, if still listed, is stopped). */
  add(dest: LocalDestination): void {
    if (dest.gone) return
    const earlier = this.#destinations.get(dest.p)
    this.#destinations.set(dest.p, dest)
    if (earlier !== undefined && earlier !== dest) earlier.stop()
  }

  /** Partition `dest.p` is no longer served by `dest`: it stops taking groups. */
  remove(dest: LocalDestination): void {
    if (this.#destinations.get(dest.p) === dest) this.#destinations.delete(dest.p)
    dest.stop()
  }
}

const perConnection = new WeakMap<object, Map<string, LocalRoutes>>()

/** The local routes of hub `hub` on connection `nc` (created on first use). */
export function localRoutes(nc: object, hub: string): LocalRoutes {
  let hubs = perConnection.get(nc)
  if (hubs === undefined) perConnection.set(nc, (hubs = new Map()))
  let routes = hubs.get(hub)
  if (routes === undefined) hubs.set(hub, (routes = new LocalRoutes()))
  return routes
}

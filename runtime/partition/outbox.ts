/**
 * Messages from a partition to other partitions, released only after the record that produced
 * them is durable. Per destination they are sent strictly in record order, one publish in flight,
 * packing every waiting record's messages into one JetStream message. An entry stays until
 * JetStream acknowledges it; the receiver drops re-sent records by their number (dedup state).
 *
 * A destination served on the same connection gets the entries in memory instead (see
 * local-delivery.ts): each is handed over and stays until the destination's round that took it is
 * durable; given back when the destination stops, it is sent again.
 */
import { type FastJetStream, encode, type HubNames } from '../nats/index.ts'
import { WIRE_VERSION, type PartitionEnvelope } from '../../actors/wire/index.ts'
import { type Logger, retryWithBackoff } from '../util/index.ts'
import type { LocalDestination, LocalRoutes, LocalSender } from './local-delivery.ts'

/** One record's messages for a destination; `at`: the destination it was handed to in memory. */
interface Group {
  readonly n: number
  readonly msgs: Uint8Array[]
  readonly bytes: number
  at?: LocalDestination
}

/**
 * Largest entry handed over in memory (and at most a sixteenth of `max_payload`); larger ones go
 * through the mailbox. A destination takes a handed entry into one round and puts what the round
 * has no room for into its local queue, which its record carries: bounded, so that record stays
 * well below `max_payload`.
 */
const LOCAL_ENTRY_MAX = 64 * 1024

/** How the outbox publishes to a mailbox (the lean JetStream path is one; unit tests use a fake). */
export type OutboxPublisher = Pick<FastJetStream, 'publish'>

/** Outgoing partition-to-partition messages of one partition. */
export class Outbox implements LocalSender {
  readonly #queues = new Map<number, Group[]>()
  readonly #sending = new Set<number>()
  /** Per destination: the stream sequence of the last envelope this outbox put in its mailbox. */
  readonly #mailboxSeq = new Map<number, number>()
  /** Destinations this outbox waits for (their mailbox position), so as to wait once. */
  readonly #holding = new Set<number>()
  /** Destinations holding entries handed over by this outbox. */
  readonly #handedTo = new Set<LocalDestination>()
  readonly #localMax: number
  #stopped = false
  /** Publishes made (for benchmarks and tests). */
  publishes = 0
  /** Entries handed to a destination in memory (for benchmarks and tests). */
  handOffs = 0
  /** Messages queued for other partitions (for benchmarks and tests; re-sent ones count again). */
  messages = 0

  constructor(
    readonly js: OutboxPublisher,
    readonly names: HubNames,
    readonly from: number,
    readonly maxPayload: number,
    readonly logger: Logger,
    /** The partitions served on this connection (none: everything goes through the mailbox). */
    readonly local?: LocalRoutes,
  ) {
    this.#localMax = Math.min(LOCAL_ENTRY_MAX, maxPayload / 16)
  }

  /** Queues the messages of committed record `n` for partition `dest` and starts sending. */
  enqueue(dest: number, n: number, msgs: Uint8Array[], bytes: number): void {
    let queue = this.#queues.get(dest)
    if (queue === undefined) this.#queues.set(dest, (queue = []))
    queue.push({ n, msgs, bytes })
    this.messages += msgs.length
    void this.#pump(dest)
  }

  /** Every unconfirmed entry with record number ≤ `upToN`, for a checkpoint. */
  pending(upToN: number): Array<[number, number, Uint8Array[]]> {
    const out: Array<[number, number, Uint8Array[]]> = []
    for (const [dest, queue] of this.#queues) {
      for (const { n, msgs } of queue) if (n <= upToN) out.push([dest, n, msgs])
    }
    return out
  }

  /** A destination stopped: what it did not confirm is sent again. */
  returned(to: LocalDestination): void {
    this.#handedTo.delete(to)
    const queue = this.#queues.get(to.p)
    if (queue === undefined) return
    for (const group of queue) if (group.at === to) delete group.at
    void this.#pump(to.p)
  }

  /** Number of unconfirmed groups. */
  get size(): number {
    let size = 0
    for (const q of this.#queues.values()) size += q.length
    return size
  }

  /** Stops sending (the partition is closing); unsent entries are recovered from storage. */
  stop(): void {
    this.#stopped = true
    for (const to of this.#handedTo) to.forget(this)
    this.#handedTo.clear()
  }

  async #pump(dest: number): Promise<void> {
    if (this.#sending.has(dest)) return
    this.#sending.add(dest)
    try {
      const queue = this.#queues.get(dest)!
      for (;;) {
        if (this.#stopped) return
        // entries handed over in memory come first: what follows them waits to be sent
        let start = queue.findIndex((group) => group.at === undefined)
        if (start < 0 || this.#handOver(dest, queue, start)) return
        start = queue.findIndex((group) => group.at === undefined) // past any just handed over
        const groups = this.#take(queue, start)
        const env: PartitionEnvelope = { v: WIRE_VERSION, p: this.from, g: groups.map((g) => [g.n, g.msgs]) }
        const first = groups[0]!.n
        const last = groups[groups.length - 1]!.n
        const bytes = encode(env)
        const msgID = `${this.names.hub}.o.${this.from}.${dest}.${first}.${last}`
        try {
          // the same envelope (and message id) until it is stored: a retry of one that did land
          // is dropped by the mailbox's duplicate window
          await retryWithBackoff(
            async () => {
              if (this.#stopped) throw new Error('outbox stopped')
              this.publishes++
              const seq = await this.js.publish(this.names.mailbox(dest), bytes, { msgID })
              this.#mailboxSeq.set(dest, Math.max(seq, this.#mailboxSeq.get(dest) ?? 0))
            },
            {
              firstDelayMs: 10,
              maxDelayMs: 2000,
              retryable: () => !this.#stopped,
              onRetry: (err) =>
                this.logger.warn('partition message send failed; retrying', {
                  from: this.from,
                  to: dest,
                  error: String(err),
                }),
            },
          )
        } catch {
          return // stopped: unsent entries are recovered from storage
        }
        // (entries handed over before these may have been confirmed and removed meanwhile)
        queue.splice(queue.indexOf(groups[0]!), groups.length)
      }
    } finally {
      this.#sending.delete(dest)
    }
  }

  /**
   * Hands the entries from `start` on to `dest` in memory when it is served on this connection and
   * has processed everything this outbox put in its mailbox; waits for that when it has not. True
   * when nothing is to be published now; false when the rest goes through the mailbox (the
   * destination is elsewhere, this outbox has not published to it since it started, or an entry
   * too large to hand over is next and nothing handed over waits for confirmation before it).
   */
  #handOver(dest: number, queue: Group[], start: number): boolean {
    const to = this.local?.get(dest)
    const since = this.#mailboxSeq.get(dest)
    if (to === undefined || to.gone || since === undefined) return false
    // a large entry waits until those handed over before it are confirmed (#confirmed comes back):
    // should the destination stop, they would be published after it otherwise
    if (queue[start]!.bytes > this.#localMax) return start > 0
    if (!to.passed(since)) {
      if (!this.#holding.has(dest)) {
        this.#holding.add(dest)
        to.whenPassed(since, () => {
          this.#holding.delete(dest)
          void this.#pump(dest)
        })
      }
      return true
    }
    this.#handedTo.add(to)
    for (let i = start; i < queue.length; i++) {
      const group = queue[i]!
      // a large entry waits for these (see above); what follows it waits for it in the mailbox
      if (group.bytes > this.#localMax) return true
      group.at = to
      this.handOffs++
      to.hand(this, {
        from: this.from,
        n: group.n,
        msgs: group.msgs,
        bytes: group.bytes,
        confirm: () => this.#confirmed(dest, group, to),
      })
    }
    return true
  }

  /** `to` took `group` into a durable round: the entry is done, unless it was given back meanwhile. */
  #confirmed(dest: number, group: Group, to: LocalDestination): void {
    if (group.at !== to) return
    const queue = this.#queues.get(dest)!
    const i = queue.indexOf(group)
    if (i >= 0) queue.splice(i, 1)
    // a large entry may wait for the last of them
    if (i === 0 && queue.length > 0 && queue[0]!.at === undefined) void this.#pump(dest)
  }

  /** The longest run of the queue from `start` that fits in one message (at least one group). */
  #take(queue: Group[], start: number): Group[] {
    // A record's messages never exceed half of max_payload (the partition bounds its records), so
    // one group always fits; several are packed while they stay under that half.
    const limit = this.maxPayload / 2
    let size = 0
    let count = 0
    for (let i = start; i < queue.length; i++) {
      const { bytes } = queue[i]!
      if (count > 0 && size + bytes > limit) break
      size += bytes
      count++
    }
    return queue.slice(start, start + Math.max(count, 1))
  }
}

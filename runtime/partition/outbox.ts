/**
 * Messages from a partition to other partitions, released only after the record that produced
 * them is durable. Per destination they are sent strictly in record order, one publish in flight,
 * packing every waiting record's messages into one JetStream message. An entry stays until
 * JetStream acknowledges it; the receiver drops re-sent records by their number (dedup state).
 */
import { type FastJetStream, encode, type HubNames } from '../nats/index.ts'
import { WIRE_VERSION, type PartitionEnvelope } from '../../actors/wire/index.ts'
import { type Logger, retryWithBackoff } from '../util/index.ts'

type Group = [n: number, msgs: Uint8Array[], bytes: number]

/** How the outbox publishes to a mailbox (the lean JetStream path is one; unit tests use a fake). */
export type OutboxPublisher = Pick<FastJetStream, 'publish'>

/** Outgoing partition-to-partition messages of one partition. */
export class Outbox {
  readonly #queues = new Map<number, Group[]>()
  readonly #sending = new Set<number>()
  #stopped = false
  /** Publishes made (for benchmarks and tests). */
  publishes = 0
  /** Messages queued for other partitions (for benchmarks and tests; re-sent ones count again). */
  messages = 0

  constructor(
    readonly js: OutboxPublisher,
    readonly names: HubNames,
    readonly from: number,
    readonly maxPayload: number,
    readonly logger: Logger,
  ) {}

  /** Queues the messages of committed record `n` for partition `dest` and starts sending. */
  enqueue(dest: number, n: number, msgs: Uint8Array[], bytes: number): void {
    let queue = this.#queues.get(dest)
    if (queue === undefined) this.#queues.set(dest, (queue = []))
    queue.push([n, msgs, bytes])
    this.messages += msgs.length
    void this.#pump(dest)
  }

  /** Every unconfirmed entry with record number ≤ `upToN`, for a checkpoint. */
  pending(upToN: number): Array<[number, number, Uint8Array[]]> {
    const out: Array<[number, number, Uint8Array[]]> = []
    for (const [dest, queue] of this.#queues) {
      for (const [n, msgs] of queue) if (n <= upToN) out.push([dest, n, msgs])
    }
    return out
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
  }

  async #pump(dest: number): Promise<void> {
    if (this.#sending.has(dest)) return
    this.#sending.add(dest)
    try {
      const queue = this.#queues.get(dest)!
      while (!this.#stopped && queue.length > 0) {
        const groups = this.#take(queue)
        const env: PartitionEnvelope = { v: WIRE_VERSION, p: this.from, g: groups.map(([n, m]) => [n, m]) }
        const first = groups[0]![0]
        const last = groups[groups.length - 1]![0]
        const bytes = encode(env)
        const msgID = `${this.names.hub}.o.${this.from}.${dest}.${first}.${last}`
        try {
          // the same envelope (and message id) until it is stored: a retry of one that did land
          // is dropped by the mailbox's duplicate window
          await retryWithBackoff(
            async () => {
              if (this.#stopped) throw new Error('outbox stopped')
              this.publishes++
              await this.js.publish(this.names.mailbox(dest), bytes, { msgID })
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
        queue.splice(0, groups.length)
      }
    } finally {
      this.#sending.delete(dest)
    }
  }

  /** The longest prefix of the queue that fits in one message (at least one group). */
  #take(queue: Group[]): Group[] {
    // A record's messages never exceed half of max_payload (the partition bounds its records), so
    // one group always fits; several are packed while they stay under that half.
    const limit = this.maxPayload / 2
    let size = 0
    let count = 0
    for (const [, , bytes] of queue) {
      if (count > 0 && size + bytes > limit) break
      size += bytes
      count++
    }
    return queue.slice(0, Math.max(count, 1))
  }
}

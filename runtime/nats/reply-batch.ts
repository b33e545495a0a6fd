/**
 * Replies to client inboxes, one message per inbox per burst of work. The commits of several
 * partitions acknowledged in one socket read each answer the same client; sent apart, every one
 * is a message of its own, encoded, published, routed, parsed and decoded by the client. Here
 * what is added while the current work runs leaves at its end (`process.nextTick`: after the
 * promise continuations of the burst, before any I/O or timer), so no reply waits for more than
 * the work already under way. A client takes the replies of one envelope by request id, whatever
 * partition they came from. An envelope stays below half the server's `max_payload`; more
 * replies to one inbox leave in several.
 */
import type { NatsConnection } from '@nats-io/transport-node'
import { WIRE_VERSION, type Reply, type ReplyEnvelope } from '../../actors/wire/index.ts'
import { encode } from './codec.ts'

/** Where a reply that could not be sent is reported (the partition's logger). */
export type ReplyFailure = (inbox: string, replies: number, err: unknown) => void

interface Waiting {
  replies: Reply[]
  bytes: number
  /** Hears of them if they cannot be sent (the first adder's; every partition logs alike). */
  failed: ReplyFailure
}

/** An estimate of what a reply adds to an envelope: its value, or a failure's error (small). */
function sizeOf(reply: Reply): number {
  return reply[1] === 1 ? reply[2].length + 16 : 512
}

const perConnection = new WeakMap<NatsConnection, ReplyBatch>()

/** The shared {@link ReplyBatch} of a connection. */
export function replyBatch(nc: NatsConnection): ReplyBatch {
  let batch = perConnection.get(nc)
  if (batch === undefined) perConnection.set(nc, (batch = new ReplyBatch(nc)))
  return batch
}

/** Replies waiting for the end of the current burst, by inbox (see the module comment). */
export class ReplyBatch {
  #waiting = new Map<string, Waiting>()
  #scheduled = false
  /** Messages published (for tests and counters). */
  published = 0
  readonly #limit: number

  constructor(readonly nc: NatsConnection) {
    this.#limit = Math.floor((nc.info?.max_payload ?? 1024 * 1024) / 2)
  }

  /** Queues replies to `inbox`; `failed` hears of them if they cannot be sent. */
  add(inbox: string, replies: Reply[], failed: ReplyFailure): void {
    let waiting = this.#waiting.get(inbox)
    let bytes = 0
    for (const reply of replies) bytes += sizeOf(reply)
    if (waiting !== undefined && waiting.bytes + bytes > this.#limit) {
      this.#send(inbox, waiting)
      waiting = undefined
    }
    if (waiting === undefined) this.#waiting.set(inbox, (waiting = { replies: [], bytes: 0, failed }))
    for (const reply of replies) waiting.replies.push(reply)
    waiting.bytes += bytes
    if (!this.#scheduled) {
      this.#scheduled = true
      process.nextTick(() => this.flush())
    }
  }

  /** Sends everything queued now. */
  flush(): void {
    this.#scheduled = false
    const waiting = this.#waiting
    if (waiting.size === 0) return
    this.#waiting = new Map()
    for (const [inbox, entry] of waiting) this.#send(inbox, entry)
  }

  #send(inbox: string, { replies, failed }: Waiting): void {
    const env: ReplyEnvelope = { v: WIRE_VERSION, r: replies }
    try {
      this.nc.publish(inbox, encode(env))
      this.published++
    } catch (err) {
      failed(inbox, replies.length, err)
    }
  }
}

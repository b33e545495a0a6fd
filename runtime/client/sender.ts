/**
 * The client's outgoing path: per partition, signals and calls issued while a publish is in
 * flight wait and then leave together, in order, as one JetStream message (one envelope with a
 * batch number the partition deduplicates on). A message too large for one JetStream message
 * leaves alone, in its place in the order, once its large values are stored by reference
 * (client-blobs.ts). A message that cannot be encoded (a circular value, a function or symbol in
 * it) fails alone with `BadInputError`; the others of its batch still leave.
 */
import { BadInputError, PayloadTooLargeError } from '../../actors/index.ts'
import { WIRE_VERSION, type ActorMessage, type ClientEnvelope } from '../../actors/wire/index.ts'
import { encode, encodeChecked } from '../nats/index.ts'
import { findUnsendable } from './args.ts'
import { BatchWorker } from '../util/index.ts'

/** What a sender needs from its client. */
export interface SenderHost {
  readonly id: string
  readonly maxPayload: number
  /** When the hub the client opened was created (`ClientEnvelope.h`). */
  readonly hubCreated: number
  /** Publishes one envelope to partition p, retrying until the deadline. */
  publishEnvelope(p: number, q: number, bytes: Uint8Array): Promise<void>
  /** A call's message could not be sent. */
  failCall(rid: number, err: Error): void
  /** A call's message is stored in the partition's mailbox. */
  storedCall(rid: number): void
  /** Stores a message's large values by reference (blobs first); rejects over the ceiling. */
  offload(msg: ActorMessage): Promise<void>
}

/** A message waiting to be sent: a signal (settled when stored) or a call (`rid`, settled by its reply). */
export interface Pending {
  msg: ActorMessage
  resolve?: () => void
  reject?: (err: Error) => void
  rid?: number
  /**
   * Encoded as the node encodes values, a function written as undefined (an activity worker's
   * result, as user code returned it); else a function or symbol anywhere fails the message.
   */
  lenient?: true
}

/**
 * Coalesces the signals and calls for one partition: while one publish is in flight, new
 * messages wait and then leave together, in order, as one JetStream message.
 */
export class PartitionSender {
  /** Each cycle sends everything queued since the last one (see batch-worker.ts). */
  readonly #worker = new BatchWorker<Pending>((batch) => this.#send(batch), { schedule: queueMicrotask })
  #q = 0

  constructor(
    readonly client: SenderHost,
    readonly p: number,
  ) {}

  add(item: Pending): void {
    this.#worker.submit(item)
  }

  #fail(item: Pending, err: Error): void {
    if (item.rid !== undefined) this.client.failCall(item.rid, err)
    else item.reject?.(err)
  }

  /** Resolves when nothing is queued or in flight. */
  idle(): Promise<void> {
    return this.#worker.idle()
  }

  /** Sends one batch, in order, in as few envelopes as fit. */
  async #send(batch: Pending[]): Promise<void> {
    if (batch.length === 0) return
    for (const chunk of this.#chunks(batch)) {
      if (chunk.offload === true) {
        const item = chunk.items[0]!
        try {
          await this.client.offload(item.msg)
          const len = encode(item.msg).length
          const limit = this.client.maxPayload - 512
          if (len > limit) throw new PayloadTooLargeError(describeMessage(item.msg), len, limit)
        } catch (err) {
          this.#fail(item, err as Error)
          continue
        }
      }
      const env: ClientEnvelope = {
        v: WIRE_VERSION,
        c: this.client.id,
        q: ++this.#q,
        m: chunk.items.map((i) => i.msg),
        h: this.client.hubCreated,
      }
      try {
        await this.client.publishEnvelope(this.p, env.q, chunk.bytes ?? encode(env))
        for (const item of chunk.items) {
          if (item.rid !== undefined) this.client.storedCall(item.rid)
          else item.resolve?.()
        }
      } catch (err) {
        for (const item of chunk.items) this.#fail(item, err as Error)
      }
    }
  }

  /** Splits a batch into envelopes under max_payload; rejects messages that cannot be sent. */
  #chunks(batch: Pending[]): Array<{ items: Pending[]; bytes?: Uint8Array; offload?: true }> {
    const limit = this.client.maxPayload - 512
    const probe: ClientEnvelope = {
      v: WIRE_VERSION,
      c: this.client.id,
      q: this.#q + 1,
      m: batch.map((i) => i.msg),
      h: this.client.hubCreated,
    }
    try {
      const bytes = encodeChecked(probe)
      if (bytes.length <= limit) return [{ items: batch, bytes }]
    } catch {
      // some message cannot be encoded: fall through to encoding them one by one
    }
    const out: Array<{ items: Pending[]; offload?: true }> = []
    let current: Pending[] = []
    let size = 0
    for (const item of batch) {
      let len: number
      try {
        len = (item.lenient === true ? encode : encodeChecked)(item.msg).length
      } catch (err) {
        const unsendable = findUnsendable(item.msg)
        this.#fail(
          item,
          new BadInputError(
            unsendable ?? `${describeMessage(item.msg)} cannot be serialised: ${(err as Error).message}`,
          ),
        )
        continue
      }
      if (len > limit) {
        // sent alone, in order, with its large values by reference
        if (current.length > 0) out.push({ items: current })
        out.push({ items: [item], offload: true })
        current = []
        size = 0
        continue
      }
      if (size + len > limit && current.length > 0) {
        out.push({ items: current })
        current = []
        size = 0
      }
      current.push(item)
      size += len
    }
    if (current.length > 0) out.push({ items: current })
    return out
  }
}

function describeMessage(msg: ActorMessage): string {
  if (msg.k === 'op') return `arguments of ${msg.t}@${msg.key}.${msg.op}`
  return `a '${msg.k}' message for instance '${'i' in msg ? msg.i : ''}'`
}

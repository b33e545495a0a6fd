/**
 * The values of entity operations as the round stores and sends them: any value bounded by what
 * fits in a commit record (also the operation context's encoder, for signals), a state as its
 * item holds it (inline up to the blob threshold, else a reference to a blob written with the
 * round), a result for a calling orchestration (by reference when large), and the deletion of a
 * replaced state's blob once the round is durable. Apart from the entity host (entity-host.ts),
 * which runs the operations and keeps the cache; this file keeps what their values cost and where
 * large ones go.
 */
import { BadInputError, PayloadTooLargeError } from '../../actors/index.ts'
import type { EntityOp } from '../../actors/wire/index.ts'
import { encode, encodeChecked, unencodable, type BlobRef } from '../nats/index.ts'
import type { HostPort } from './host-port.ts'
import {
  describeValue,
  type Entry,
  type LargeState,
  type ValueEncoder,
  type ValueKind,
} from './entity-context.ts'

/** What the values use of the partition's port. */
export type ValuePort = Pick<
  HostPort,
  'p' | 'logger' | 'valueLimit' | 'blobs' | 'charge' | 'holdFor' | 'afterCommit'
>

/** The encoding of one partition's entity values (see the module comment); one per entity host. */
export class EntityValues implements ValueEncoder {
  /** The large state the last {@link encodeState} made (no allocation for small states). */
  large: LargeState | undefined

  constructor(readonly port: ValuePort) {}

  /**
   * Encodes a value, rejecting it when it would not fit in a commit record, and counts it against
   * the round. `what` and `msg` name the value in the error (the text is only built when there is
   * one).
   */
  encodeBounded(value: unknown, what: ValueKind, msg: EntityOp): Uint8Array {
    let bytes: Uint8Array
    try {
      // (strict: a function in a signal, a start or a result fails the operation, naming where,
      // as in what a client or an orchestration sends, rather than arriving as undefined)
      bytes = encodeChecked(value)
    } catch (err) {
      // (what an entity sends or returns is its code's input to others: bad input, whatever failed)
      const error = unencodable(value, describeValue(what, msg), err)
      throw error instanceof BadInputError ? error : new BadInputError(error.message, { cause: err })
    }
    const limit = this.port.valueLimit
    if (bytes.length > limit) throw new PayloadTooLargeError(describeValue(what, msg), bytes.length, limit)
    this.port.charge(bytes.length + 16)
    return bytes
  }

  /**
   * The encoding of a state as its item holds it, counted against the round: the state itself up
   * to the inline size, else a reference to a blob with the state (the round waits for its write;
   * an unchanged large state keeps its blob). Sets {@link large} for a large state. Throws
   * `PayloadTooLargeError` over the ceiling, `BadInputError` for a state that cannot be encoded.
   */
  encodeState(entry: Entry, state: unknown, msg: EntityOp): Uint8Array {
    let bytes: Uint8Array
    try {
      bytes = encode(state)
    } catch (err) {
      throw new BadInputError(
        `${describeValue('state', msg)} cannot be serialised: ${(err as Error).message}`,
      )
    }
    const inline = Math.min(this.port.blobs.limits.threshold, this.port.valueLimit)
    if (bytes.length <= inline) {
      this.port.charge(bytes.length + 16)
      return bytes
    }
    if (entry.ref !== undefined && entry.blob !== undefined && Buffer.from(entry.blob).equals(bytes)) {
      this.large = { ref: entry.ref, blob: entry.blob }
      return entry.bytes!
    }
    const { ref, written } = this.port.blobs.put(bytes, () => describeValue('state', msg))
    this.port.holdFor(written)
    this.large = { ref, blob: bytes }
    const item = encode(ref)
    this.port.charge(item.length + 16)
    return item
  }

  /** A result for a calling orchestration: by reference when large (see {@link encodeState}). */
  resultForOrchestration(result: unknown, msg: EntityOp): unknown {
    let bytes: Uint8Array
    try {
      bytes = encode(result)
    } catch (err) {
      throw new BadInputError(
        `${describeValue('result', msg)} cannot be serialised: ${(err as Error).message}`,
      )
    }
    if (bytes.length <= Math.min(this.port.blobs.limits.threshold, this.port.valueLimit)) return result
    const { ref, written } = this.port.blobs.put(bytes, () => describeValue('result', msg))
    this.port.holdFor(written)
    return ref.attach(result)
  }

  /** Deletes a replaced state's blob once the open round is durable. */
  dropAfterCommit(ref: BlobRef): void {
    this.port.afterCommit(
      () =>
        void this.port.blobs.delete([ref], (err) =>
          this.port.logger.warn('large state not deleted (left as an orphan)', {
            p: this.port.p,
            error: String(err),
          }),
        ),
    )
  }
}

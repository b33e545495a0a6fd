/**
 * What an entity operation runs with: the cached entry of an entity (decoded state and its last
 * good encoding) and the operation context (`this.ctx` of an entity), one per partition and reused
 * for every operation (no allocation per synchronous operation). Apart from the entity host
 * (entity-host.ts), which owns the cache and runs the operations.
 */
import { randomUUID } from 'node:crypto'
import { IllegalStateError, checkInstanceId, checkKey, checkName, checkTypeName } from '../../actors/index.ts'
import type { ActorMessage, EntityOp, StartMessage } from '../../actors/wire/index.ts'
import type { EntityContext } from '../../entities/index.ts'
import type { BlobRef } from '../nats/index.ts'

/** What an operation produces that the round holds: its state, its result, a message it sends. */
export type ValueKind = 'state' | 'result' | 'signal' | 'start'

/** Encodes a value an operation produces, bounded by the round (the entity host does). */
export interface ValueEncoder {
  encodeBounded(value: unknown, what: ValueKind, msg: EntityOp): Uint8Array
}

/** A cached entity: decoded state plus its last good encoding (null: does not exist). */
export interface Entry {
  type: string
  key: string
  /** Unused while `bytes` is null: an operation then starts from `initialState()`. */
  state: unknown
  bytes: Uint8Array | null
  /** Touched since the eviction hand last passed. */
  used: boolean
  /** A large state: the reference `bytes` encodes, and the state's own encoding (for undo). */
  ref?: BlobRef
  blob?: Uint8Array
}

/** A large state about to replace an entry's: its reference and encoding. */
export interface LargeState {
  ref: BlobRef
  blob: Uint8Array
}

/** The context of the operation being run; one per partition, reused (no allocation per op). */
export class OpContext implements EntityContext {
  type = ''
  key = ''
  state: unknown = undefined
  deleted = false
  readonly sends: Array<[ActorMessage, Uint8Array]> = []
  #msg: EntityOp | undefined
  /** Set when the operation timed out: it may send nothing more. */
  #retired = false

  constructor(readonly host: ValueEncoder) {}

  reset(msg: EntityOp, state: unknown): void {
    this.#msg = msg
    this.type = msg.t
    this.key = msg.key
    this.state = state
    this.deleted = false
  }

  /** Cuts off an operation that timed out: its later signals fail instead of joining another's. */
  retire(): void {
    this.#retired = true
    this.sends.length = 0
  }

  send(type: string, key: string, op: string, args: unknown[], at?: number): void {
    this.#checkLive()
    checkTypeName(type)
    checkKey(key)
    const m: EntityOp = { k: 'op', t: type, key, op, a: args }
    if (at !== undefined) m.at = at
    this.sends.push([m, this.host.encodeBounded(m, 'signal', this.#msg!)])
  }

  /**
   * Queues the start of an instance beside the signals: the same message a client's start makes,
   * so it leaves only with the operation's commit and the partition-to-partition dedup applies it
   * once. The id is drawn here, once: the operation is committed with it and never runs again.
   */
  start(name: string, input: unknown, instanceId?: string): string {
    this.#checkLive()
    checkName(name, 'orchestration')
    const id = instanceId === undefined ? randomUUID() : checkInstanceId(instanceId)
    const m: StartMessage = { k: 'start', i: id, n: name, in: input }
    // a new random id names no instance yet: its partition need not look for a stored one
    if (instanceId === undefined) m.fresh = 1
    this.sends.push([m, this.host.encodeBounded(m, 'start', this.#msg!)])
    return m.i
  }

  /** Refuses anything more from an operation that timed out (see {@link retire}). */
  #checkLive(): void {
    if (this.#retired) {
      throw new IllegalStateError(`${this.type}@${this.key}.${this.#msg?.op} timed out: it can send nothing`)
    }
  }
}

export function describeValue(what: ValueKind, msg: EntityOp): string {
  if (what === 'signal') return `a signal sent by ${msg.t}@${msg.key}.${msg.op}`
  if (what === 'start') return `an orchestration start sent by ${msg.t}@${msg.key}.${msg.op}`
  return `${what} of ${msg.t}@${msg.key}${what === 'result' ? '.' + msg.op : ''}`
}

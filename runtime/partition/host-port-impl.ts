/**
 * The partition's side of the {@link HostPort}: one small object over the loop's state (the open
 * and in-flight rounds, the snapshot state, the timers, the mailbox cursor) through which both the
 * entity host and the instance host act. The partition builds it and hands it to both hosts; it
 * keeps no state of its own beyond the due time of the last deferred message. Kept apart from the
 * loop (partition.ts) so that the partition exposes no methods that exist only for its hosts.
 */
import { BadInputError, PayloadTooLargeError, partitionOf } from '../../actors/index.ts'
import type { ActorMessage, ReplyTo, TimerValue } from '../../actors/wire/index.ts'
import { decode, encode, itemKey, type BlobStore, type PartitionStorage } from '../nats/index.ts'
import { describeTypeName, throttledWarning, type Logger } from '../util/index.ts'
import { noTracing, type PartitionMetrics, type Tracing } from '../metrics/index.ts'
import type { HostPort } from './host-port.ts'
import { resolveWrite, type CommitRound, type ItemWrite, type RoundReply } from './round.ts'
import type { SnapshotState } from './snapshot.ts'
import type { TimerSet } from './timers.ts'
import type { MailboxCursor } from './cursor.ts'
import { DEFER_UNKNOWN_MS, knownElsewhere, type TypeDirectory } from './unknown-types.ts'

/** The parts of a partition its port acts on. */
export interface PortCore {
  readonly p: number
  /** Number of partitions of the hub (routes messages). */
  readonly partitions: number
  readonly logger: Logger
  readonly blobs: BlobStore
  readonly metrics: PartitionMetrics
  /** Spans of the hosts (default: none). */
  readonly tracing?: Tracing | undefined
  readonly types: TypeDirectory | undefined
  /** Whether calls may travel with lock requests now (default: always). */
  readonly carryCalls?: (() => boolean) | undefined
  /** Whether calls may carry the release of a critical section now (default: always). */
  readonly releaseWithCalls?: (() => boolean) | undefined
  readonly storage: PartitionStorage
  readonly snap: SnapshotState
  readonly timers: TimerSet
  readonly cursor: MailboxCursor
  /** Largest record the loop fills (half of `max_payload`, less room). */
  readonly recordLimit: number
  readonly stats: { deadLetters: number }
  /** The round being built. */
  open(): CommitRound
  /** The round being committed, if any. */
  inflight(): CommitRound | null
  stopped(): boolean
  /** Wakes the loop. */
  kick(): void
}

/** The port a partition offers its hosts, over its loop state. */
export class PartitionHostPort implements HostPort {
  /** Due time of the last deferred message (they get strictly increasing ones: order holds). */
  #lastDeferred = 0
  /** The warning of {@link notRunHere}, per name (each throttled on its own). */
  readonly #notRunHere = new Map<string, (fields: Record<string, unknown>) => void>()

  constructor(readonly core: PortCore) {}

  get p(): number {
    return this.core.p
  }

  get logger(): Logger {
    return this.core.logger
  }

  get blobs(): BlobStore {
    return this.core.blobs
  }

  get metrics(): PartitionMetrics {
    return this.core.metrics
  }

  get tracing(): Tracing {
    return this.core.tracing ?? noTracing
  }

  hasRoom(): boolean {
    return this.core.open().bytes < this.core.recordLimit
  }

  get valueLimit(): number {
    return Math.floor(this.core.recordLimit / 2)
  }

  get roundNumber(): number {
    return this.core.open().n
  }

  holdFor(written: Promise<void>): void {
    this.core.open().blobWrites.push(written)
  }

  readItem(key: string): Promise<Uint8Array | null> {
    return this.core.snap.read(key)
  }

  async currentItems(filter: string, prefix: string): Promise<Map<string, Uint8Array | null>> {
    // what was committed and not stored when the read starts, what is committed while it runs
    // (stored meanwhile or not: the read may have shown the value before it), then what is not
    // stored when it ends, the open round's writes last
    const before = [...this.dirtyWrites(prefix)]
    const during = this.core.snap.tapCommitted(prefix)
    let stored: Array<[string, Uint8Array]>
    try {
      stored = await this.core.storage.readItems(filter)
    } finally {
      during.stop()
    }
    const values = new Map<string, Uint8Array | null>(stored)
    for (const [key, value] of before) values.set(key, value)
    for (const [key, value] of during.writes) values.set(key, value)
    for (const [key, value] of this.dirtyWrites(prefix)) values.set(key, value)
    return values
  }

  markAbsent(key: string): void {
    this.core.snap.markAbsent(key)
  }

  isPinned(key: string): boolean {
    const { snap } = this.core
    return (
      this.core.open().writes.has(key) || this.core.inflight()?.writes.has(key) === true || snap.isDirty(key)
    )
  }

  forget(key: string): void {
    this.core.snap.forget(key)
  }

  *dirtyWrites(prefix: string): Iterable<[string, Uint8Array | null]> {
    const sources: Array<Iterable<[string, ItemWrite]>> = [this.core.snap.dirtyWrites()]
    const inflight = this.core.inflight()
    if (inflight !== null) sources.push(inflight.writes)
    sources.push(this.core.open().writes)
    for (const source of sources) {
      for (const [key, value] of source) if (key.startsWith(prefix)) yield [key, resolveWrite(value)]
    }
  }

  listStoredKeys(type: string): Promise<string[]> {
    return this.core.snap.listEntityKeys(this.core.p, type)
  }

  write(key: string, bytes: ItemWrite, sizeHint = 0): void {
    const open = this.core.open()
    open.write(key, bytes)
    open.bytes += (typeof bytes === 'function' ? sizeHint : (bytes?.length ?? 0)) + 16 + key.length
  }

  charge(bytes: number): void {
    this.core.open().bytes += bytes
  }

  writeCharged(key: string, bytes: Uint8Array | null): void {
    this.core.open().write(key, bytes)
  }

  /**
   * If the open round wrote the item, the round created it (nothing of it is stored or committed),
   * so the write is dropped and no record ever mentions the item.
   */
  dropItem(key: string): void {
    const open = this.core.open()
    const w = open.writes.get(key)
    if (w !== undefined && w !== null) open.writes.delete(key)
    else this.write(key, null)
  }

  send(msg: ActorMessage): void {
    let bytes: Uint8Array
    try {
      bytes = encode(msg)
    } catch (err) {
      throw new BadInputError(`a message of kind '${msg.k}' cannot be serialised: ${(err as Error).message}`)
    }
    const limit = Math.floor(this.core.recordLimit / 2)
    if (bytes.length > this.core.recordLimit / 2) {
      throw new PayloadTooLargeError(`a message of kind '${msg.k}'`, bytes.length, limit)
    }
    this.core.open().bytes += bytes.length + 16
    this.route(msg, bytes)
  }

  route(msg: ActorMessage, bytes: Uint8Array): void {
    const dest = partitionOf(targetOf(msg), this.core.partitions)
    if (dest === this.core.p) this.core.cursor.local.push(decode(bytes, 'local message') as ActorMessage)
    else this.core.open().send(dest, bytes)
  }

  runNext(msgs: ActorMessage[]): void {
    this.core.cursor.local.unshift(...msgs)
  }

  enqueueLocal(msg: ActorMessage, recreatable = false): void {
    if (this.core.stopped()) return
    this.core.cursor.local.push(msg)
    if (recreatable) this.core.cursor.recreatable.add(msg)
    this.core.kick()
  }

  replyTo(to: ReplyTo, reply: RoundReply): void {
    // every reply is a copy in the record: count it (a lazy one is counted at its usual size)
    const open = this.core.open()
    open.bytes += (reply[2] instanceof Uint8Array ? reply[2].length : 64) + 24
    open.reply(to, reply)
  }

  setTimer(key: string, due: number, msg: ActorMessage): void {
    const value: TimerValue = [due, msg]
    this.core.timers.set(key, value)
    this.write(key, encode(value))
  }

  cancelTimer(key: string): void {
    // Every stored timer is pending here (loaded at recovery; a fired one was deleted with a write
    // of null then), so a key not pending has nothing to delete: an ending instance cancels its
    // delayed start, which most never had, and that costs no write in the record.
    if (this.core.timers.delete(key)) this.write(key, null)
  }

  hasTimer(key: string): boolean {
    return this.core.timers.has(key)
  }

  /**
   * Runs `fn` once everything processed so far is committed — and at least one more record has
   * been appended, so that a stale owner (which cannot append) never answers.
   */
  afterCommit(fn: () => void): void {
    const open = this.core.open()
    open.waiters.push(fn)
    open.touched = true
    this.core.kick()
  }

  async deadLetterMessage(msg: ActorMessage, reason: string): Promise<void> {
    this.core.logger.warn('moving a message that cannot be applied to the dead-letter stream', {
      p: this.core.p,
      kind: msg.k,
      reason,
    })
    await this.core.storage.deadLetter(undefined, encode(msg), reason)
    this.core.stats.deadLetters++
  }

  carryCalls(): boolean {
    return this.core.carryCalls?.() ?? true
  }

  releaseWithCalls(): boolean {
    return this.core.releaseWithCalls?.() ?? true
  }

  knownElsewhere(name: string): boolean {
    return knownElsewhere(this.core.types, name)
  }

  notRunHere(name: string): void {
    let note = this.#notRunHere.get(name)
    if (note === undefined) {
      const what = describeTypeName(name)
      note = throttledWarning(
        this.core.logger,
        `holding messages for ${what}, which this node does not run: they wait for a node of the hub that runs it`,
        60_000,
      )
      this.#notRunHere.set(name, note)
    }
    note({ p: this.core.p })
  }

  /**
   * A durable timer that tries the message again later, at once on a new owner, in the order
   * deferred (see unknown-types.ts).
   */
  defer(msg: ActorMessage): void {
    const due = Math.max(Date.now() + DEFER_UNKNOWN_MS, this.#lastDeferred + 1)
    this.#lastDeferred = due
    const key = itemKey.deferredTimer(this.core.p, this.core.open().timerName())
    this.setTimer(key, due, { ...msg, at: due })
  }
}

/** The id that decides a message's partition: the entity key or the instance id. */
export function targetOf(msg: ActorMessage): string {
  return msg.k === 'op' || msg.k === 'lock' || msg.k === 'unlock' ? msg.key : msg.i
}

/**
 * The contracts between a partition and its instance host: the port a partition offers to its
 * instances and the handler it calls on them. They belong to the partition layer (the lower one):
 * runtime/instances/ implements the handler and uses the port, the partition knows nothing of
 * instances beyond these types.
 */
import type { BlobStore } from '../nats/index.ts'
import type { ErrorInfo } from '../../actors/index.ts'
import type {
  ActorMessage,
  ControlMessage,
  DoneMessage,
  EventMessage,
  Query,
  QueryAnswer,
  ReplyTo,
  StartMessage,
  WaitMessage,
} from '../../actors/wire/index.ts'
import type { Logger } from '../util/index.ts'
import type { PartitionMetrics } from '../metrics/index.ts'

/** What a partition offers to its instances. */
export interface PartitionPort {
  readonly p: number
  readonly logger: Logger
  /** Largest encoded value a round accepts (half a record; see runtime/partition/value-limits.ts). */
  readonly valueLimit: number
  /** Large values by reference (runtime/nats/blobs.ts). */
  readonly blobs: BlobStore
  /** Where the instances' metrics go (runtime/metrics/recorder.ts). */
  readonly metrics: PartitionMetrics
  /** The open round's record is appended only once `written` (a blob write) resolved. */
  holdFor(written: Promise<void>): void
  readItem(key: string): Promise<Uint8Array | null>
  /** Notes that an item was never stored (its first write needs no revision read). */
  markAbsent(key: string): void
  isPinned(key: string): boolean
  write(key: string, bytes: Uint8Array | (() => Uint8Array) | null, sizeHint?: number): void
  /** Deletes a write-once item; one written in this round leaves no trace. */
  dropItem(key: string): void
  send(msg: ActorMessage): void
  /** A reply after the commit; a function value is encoded at the seal. */
  replyTo(to: ReplyTo, reply: [number, 1, Uint8Array | (() => Uint8Array)] | [number, 0, ErrorInfo]): void
  setTimer(key: string, due: number, msg: ActorMessage): void
  cancelTimer(key: string): void
  afterCommit(fn: () => void): void
  enqueueLocal(msg: ActorMessage): void
  /** Current values of the stored items matching a subject filter (one pass, no get per key). */
  readItems(filter: string): Promise<Array<[key: string, value: Uint8Array]>>
  /** Number of the record the current round will become. */
  readonly roundNumber: number
  dirtyWrites(prefix: string): Iterable<[string, Uint8Array | null]>
  /** Whether `name` (`e:Type`, `o:name`) is not run on this node but known to the hub. */
  knownElsewhere(name: string): boolean
  /** Keeps a message for a type known only elsewhere, to be tried again (runtime/partition/unknown-types.ts). */
  defer(msg: ActorMessage): void
}

/** What the partition calls on its instance host. */
export interface InstanceHandler {
  /** Adds the instance a message addresses to `into`, for preloading. */
  want(msg: ActorMessage, into: Set<string>): void
  preload(ids: Set<string>): Promise<void>
  /** Handles a message; returns a promise only when it had to wait (e.g. for a load). */
  handle(msg: StartMessage | EventMessage | DoneMessage | ControlMessage | WaitMessage): void | Promise<void>
  /** Answers instance queries; false when the query is not about instances. */
  answer(query: Query, respond: (answer: QueryAnswer) => void): Promise<boolean>
  replayActivity(key: string, value: Uint8Array | null): void
  recovered(): void
  close(): void
}

/**
 * The contracts between a partition and the hosts that run its actors: the one port both hosts
 * act through ({@link HostPort}: the entity host, runtime/partition/entity-host.ts, and the
 * orchestration instance host, runtime/instances/) and the handler the partition calls on its
 * instance host. They belong to the partition layer (the lower one): runtime/instances/ implements
 * the handler and uses the port; the partition knows nothing of instances beyond these types. The
 * partition builds the port as one small object over its loop state (host-port-impl.ts).
 */
import type { BlobStore } from '../nats/index.ts'
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
import type { PartitionMetrics, Tracing } from '../metrics/index.ts'
import type { ItemWrite, RoundReply } from './round.ts'

/** What a partition offers to the hosts of its entities and instances. */
export interface HostPort {
  readonly p: number
  readonly logger: Logger
  /** Largest encoded value a round accepts (half a record; see runtime/partition/value-limits.ts). */
  readonly valueLimit: number
  /** Large values by reference (runtime/nats/blobs.ts). */
  readonly blobs: BlobStore
  /** Where the hosts' metrics go (runtime/metrics/recorder.ts). */
  readonly metrics: PartitionMetrics
  /** Where the hosts' spans go (runtime/metrics/tracing.ts; `on` false when not tracing). */
  readonly tracing: Tracing
  /** Number of the record the current round will become (unique per record). */
  readonly roundNumber: number
  /** Whether the open round has room for more work (below the size the loop fills a record to). */
  hasRoom(): boolean
  /** The open round's record is appended only once `written` (a blob write) resolved. */
  holdFor(written: Promise<void>): void

  // Items
  /** The committed-or-snapshotted value of an item. */
  readItem(key: string): Promise<Uint8Array | null>
  /**
   * The values of every item under `prefix` (subject `filter`) as this partition knows them now:
   * the stored ones (read in one pass, no get per key), corrected by the writes committed before or during the read and by the open
   * rounds' writes (null: deleted). Items the bucket holds under the prefix are all listed.
   */
  currentItems(filter: string, prefix: string): Promise<Map<string, Uint8Array | null>>
  /** Notes that an item was never stored (its first write needs no revision read). */
  markAbsent(key: string): void
  /** Whether an item has writes not yet in the state bucket (it cannot be evicted). */
  isPinned(key: string): boolean
  /** Forgets a clean item's snapshot bookkeeping (evicted). */
  forget(key: string): void
  /** Writes not yet in the state bucket, oldest first, under a key prefix. */
  dirtyWrites(prefix: string): Iterable<[string, Uint8Array | null]>
  /** Stored entity keys of a type. */
  listStoredKeys(type: string): Promise<string[]>
  /**
   * Writes an item in the open round, charging its size. A lazy write is encoded at the seal;
   * `sizeHint` estimates its size against the record limit.
   */
  write(key: string, bytes: ItemWrite, sizeHint?: number): void
  /** Counts bytes against the open round. */
  charge(bytes: number): void
  /** Writes an item in the open round (its bytes were charged when encoded: no charge here). */
  writeCharged(key: string, bytes: Uint8Array | null): void
  /** Deletes a write-once item; one written in this round leaves no trace. */
  dropItem(key: string): void

  // Messages, replies, timers
  /** Encodes a message (counted against the round) and routes it. */
  send(msg: ActorMessage): void
  /** Routes an encoded message: within the partition at once, else through the outbox. */
  route(msg: ActorMessage, bytes: Uint8Array): void
  /** Puts messages at the front of the partition's local queue (they run next, in order). */
  runNext(msgs: ActorMessage[]): void
  /** Queues a message produced outside the loop (an activity result) and wakes the loop. */
  enqueueLocal(msg: ActorMessage, recreatable?: boolean): void
  /** A reply after the commit; a function value is encoded at the seal. */
  replyTo(to: ReplyTo, reply: RoundReply): void
  /** Arms a durable timer with a fixed key (replacing one with the same key). */
  setTimer(key: string, due: number, msg: ActorMessage): void
  /** Cancels a durable timer (nothing is written when none is pending under `key`). */
  cancelTimer(key: string): void
  /** Whether a durable timer is pending under `key` (one that fired is not). */
  hasTimer(key: string): boolean
  /** Runs `fn` once everything processed so far is durable (and one more record appended). */
  afterCommit(fn: () => void): void
  /**
   * Moves a message that cannot be applied to the dead-letter stream with the reason; resolves
   * once it is stored there (before the round that skipped it commits: at least once).
   */
  deadLetterMessage(msg: ActorMessage, reason: string): Promise<void>

  /**
   * Whether calls made with a lock request may travel inside it now (every node of the hub runs
   * them); else they wait in the instance record for the grant.
   */
  carryCalls(): boolean
  /**
   * Whether the last call to an entity in the step that releases a critical section may
   * carry the release (`EntityOp.rl`: every node of the hub runs it); else an unlock message goes.
   */
  releaseWithCalls(): boolean

  // Types run elsewhere
  /** Whether `name` (`e:Type`, `o:name`) is not run on this node but known to the hub. */
  knownElsewhere(name: string): boolean
  /** Keeps a message for a type known only elsewhere, to be tried again (runtime/partition/unknown-types.ts). */
  defer(msg: ActorMessage): void
  /**
   * Tells the operator (a warning, at most once a minute per name and partition) that messages for
   * `name` (`e:Type`, `o:name`, `a:name`), which this node does not run, wait for a node that does.
   */
  notRunHere(name: string): void
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
  /**
   * Fails instance `id` with `error`: a poison message addressed to it was dead-lettered
   * (runtime/partition/careful.ts). Nothing when it ended or does not exist.
   */
  failInstance(id: string, error: Error): Promise<void>
  /** A snapshot stored what was committed before it (ended instances may leave memory now). */
  snapshotted(): void
  close(): void
}

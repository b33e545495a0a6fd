/**
 * The data model of orchestration instances and the contracts between a partition and its
 * instance host: runtime statuses, the persisted record and what listings show of it, the port a
 * partition offers to its instances, the handler it calls on them, and the node's workflows.
 * Types and pure helpers only; the host itself is runtime/instances.ts.
 */
import type { ErrorInfo } from '../actors/errors.ts'
import type {
  ActorMessage,
  ControlMessage,
  DoneMessage,
  EventMessage,
  InstanceFilter,
  Query,
  QueryAnswer,
  ReplyTo,
  StartMessage,
  WaitMessage,
} from '../actors/messages.ts'
import type { HistoryEvent, NewEvent, OrchestrationDefinition } from '../actors/orchestration/index.ts'
import type { ActivityPool, ActivityTask } from './activities.ts'
import type { Logger } from './logger.ts'
import type { BlobStore } from './blobs.ts'

/** Runtime status of an instance (Durable Functions' names). */
export const RuntimeStatus = {
  Pending: 'Pending',
  Running: 'Running',
  Completed: 'Completed',
  ContinuedAsNew: 'ContinuedAsNew',
  Failed: 'Failed',
  Terminated: 'Terminated',
  Suspended: 'Suspended',
} as const
export type RuntimeStatus = (typeof RuntimeStatus)[keyof typeof RuntimeStatus]

const TERMINAL = new Set<string>([RuntimeStatus.Completed, RuntimeStatus.Failed, RuntimeStatus.Terminated])

/** Whether a status is final. */
export function isTerminal(status: string): boolean {
  return TERMINAL.has(status)
}

/**
 * The persisted state of an instance (the item `o.<p>.<id>`). The history of the current
 * execution is the chunk items `h.<p>.<id>.<hk>.<k>` for k < `hc`, then `tail`.
 */
export interface InstanceRecord {
  v: 1
  id: string
  name: string
  status: RuntimeStatus
  input: unknown
  output?: unknown
  error?: ErrorInfo
  custom?: unknown
  created: number
  updated: number
  completed?: number
  /** Key of this execution's history chunks: the number of the record that started it (unique). */
  hk: number
  /** Number of history chunks stored. */
  hc: number
  /** History events after the stored chunks. */
  tail: HistoryEvent[]
  /** Events that arrived while suspended. */
  buffered: NewEvent[]
  parent?: [string, number]
  /** Number of executions (continue-as-new increments it). */
  exec: number
  /** Pending timer and activity task numbers (for terminate and purge). */
  timers: number[]
  activities: number[]
}

/** A record as a status answer carries it: with the whole history when asked for. */
export type InstanceView = InstanceRecord & { history?: HistoryEvent[] }

/** What listings and watchers see of an instance. */
export interface InstanceSummary {
  id: string
  name: string
  status: RuntimeStatus
  created: number
  updated: number
  completed?: number
  custom?: unknown
}

/** What a partition offers to its instances. */
export interface PartitionPort {
  readonly p: number
  readonly logger: Logger
  /** Largest encoded value a round accepts (half a record; see runtime/value-limits.ts). */
  readonly valueLimit: number
  /** Large values by reference (runtime/blobs.ts). */
  readonly blobs: BlobStore
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

/** The orchestration side of a node: definitions, activities and engine options. */
export interface Workflows {
  orchestrations: Map<string, OrchestrationDefinition<any, any>>
  activities: ActivityPool
  alwaysReplay: boolean
  cacheSize: number
  /** Where activities go when the local backlog reaches `threshold` (absent: always local). */
  offload?: { threshold: number; publish(task: ActivityTask): void }
}

/** The summary of an instance record. */
export function summaryOf(rec: InstanceRecord): InstanceSummary {
  return {
    id: rec.id,
    name: rec.name,
    status: rec.status,
    created: rec.created,
    updated: rec.updated,
    ...(rec.completed === undefined ? {} : { completed: rec.completed }),
    ...(rec.custom === undefined ? {} : { custom: rec.custom }),
  }
}

/** Whether a summary passes a listing's filter. */
export function matches(s: InstanceSummary, f: InstanceFilter): boolean {
  if (f.statuses !== undefined && f.statuses.length > 0 && !f.statuses.includes(s.status)) return false
  if (f.createdFrom !== undefined && s.created < f.createdFrom) return false
  if (f.createdTo !== undefined && s.created > f.createdTo) return false
  if (f.namePrefix !== undefined && !s.name.startsWith(f.namePrefix)) return false
  if (f.idPrefix !== undefined && !s.id.startsWith(f.idPrefix)) return false
  return true
}

/**
 * The data model of orchestration instances: runtime statuses, the persisted record and what
 * listings show of it, and the node's workflows. Types and pure helpers only; the host itself is
 * instance-host.ts, and the contracts between a partition and its instance host (the port it
 * offers, the handler it calls) are the partition's: runtime/partition/host-port.ts.
 */
import type { ErrorInfo } from '../../actors/index.ts'
import type { ActivityTask, EntityOp, InstanceFilter } from '../../actors/wire/index.ts'
import type { HistoryEvent, NewEvent, OrchestrationDefinition } from '../../actors/orchestration/index.ts'
import type { ActivityPool } from '../activities/index.ts'

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

/**
 * Decisions an execution numbers in a range of its own: execution n's first command takes seq
 * (n − 1) × this. An outcome that an earlier execution (continued as new, or replaced) left on its
 * way — an activity still running, a child, an entity call — then finds no task of its seq and is
 * ignored; with every execution counting from 0 it completed the task of the same seq in the next
 * one. An execution issuing more commands than this reaches the next one's range: harmless unless
 * outcomes of both are in flight at once.
 */
export const SEQS_PER_EXECUTION = 1_000_000

/** The seq of the first command of execution `exec` (see {@link SEQS_PER_EXECUTION}). */
export function firstSeqOf(exec: number): number {
  return (exec - 1) * SEQS_PER_EXECUTION
}

/** Whether a status is final. */
export function isTerminal(status: string): boolean {
  return TERMINAL.has(status)
}

/**
 * The format of an instance record as stored (its `v`): 1 — history events as objects; 2 — packed
 * (runtime/instances/history-codec.ts). A node reads both; a record of a later format is refused,
 * naming its format.
 */
export const RECORD_FORMAT = 2

/**
 * The persisted state of an instance (the item `o.<p>.<id>`). The history of the current
 * execution is the chunk items `h.<p>.<id>.<hk>.<k>` for k < `hc`, then `tail`.
 */
export interface InstanceRecord {
  /** The format it is stored in (see {@link RECORD_FORMAT}); in memory, always the current one. */
  v: typeof RECORD_FORMAT
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
  /**
   * The critical section this execution asked for and has not released: its lock task number and
   * entities. Whatever ends the instance releases them (a lock never outlives its holder). `calls`:
   * calls made with the lock request that did not travel inside it (some node of the hub would have
   * ignored them, see placement/registry.ts), sent when the grant arrives (instance-steps.ts).
   */
  lk?: [seq: number, entities: Array<[type: string, key: string]>, calls?: EntityOp[]]
  /**
   * Trace context the instance was started with (runtime/instances/instance-spans.ts): its steps'
   * spans are its children. Absent when the instance is not traced.
   */
  tc?: string
}

/**
 * A record as a status answer carries it: with its history (or the page of it that fits one
 * answer, `historyNext` then naming the index the next page starts at) when asked for.
 */
export type InstanceView = InstanceRecord & { history?: HistoryEvent[]; historyNext?: number }

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

/** The orchestration side of a node: definitions, activities and engine options. */
export interface Workflows {
  orchestrations: Map<string, OrchestrationDefinition<any, any>>
  activities: ActivityPool
  alwaysReplay: boolean
  cacheSize: number
  /** Where activities go when the local backlog reaches `threshold` (absent: always local). */
  offload?: { threshold: number; publish(task: ActivityTask): void }
}

/** The fields of an instance record that a status shows (the client's `InstanceStatus`). */
export type InstanceStatusFields = Pick<
  InstanceRecord,
  'id' | 'name' | 'status' | 'input' | 'output' | 'error' | 'custom' | 'created' | 'updated' | 'completed'
>

/**
 * What a status without history shows of an instance record: what waits are answered with, and
 * what a status watch compares and emits. (A record changes with every step — its history tail,
 * pending tasks — and none of that is shown; the input, output and error that `getStatus` gives
 * are.)
 */
export function statusFieldsOf(rec: InstanceRecord): InstanceStatusFields {
  return {
    ...summaryOf(rec),
    input: rec.input,
    ...(rec.output === undefined ? {} : { output: rec.output }),
    ...(rec.error === undefined ? {} : { error: rec.error }),
  }
}

/**
 * The outcome a start is answered with when the instance ended in the round that started it,
 * for a client that asked for it slim (`StartMessage.sl`): its status fields without the id and
 * name the client sent, and without the input unless the instance continued as new since
 * `startedExec`, the execution the start began (its status then shows the last execution's
 * input, not the one sent), or `withInput` (an input schema gave the input the instance ran with).
 */
export function outcomeFieldsOf(
  rec: InstanceRecord,
  startedExec: number,
  withInput = false,
): Omit<InstanceStatusFields, 'id' | 'name' | 'input'> & { input?: unknown } {
  const { id: _id, name: _name, input, ...outcome } = statusFieldsOf(rec)
  return rec.exec === startedExec && !withInput ? outcome : { ...outcome, input }
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

/** Error for a start with an id that is taken (in actors/errors.ts, so it is rebuilt across the wire). */
export { InstanceExistsError, InstanceNotFoundError } from '../../actors/index.ts'

/**
 * What the client shows of instances and pages: the public {@link InstanceStatus}, built from an
 * instance record or a listing summary, and the continuation tokens of paged listings.
 */
import { BadInputError, type ErrorInfo } from '../../actors/index.ts'
import type { HistoryEvent } from '../../actors/orchestration/index.ts'
import {
  statusFieldsOf,
  type InstanceStatusFields,
  type InstanceSummary,
  type InstanceView,
  type RuntimeStatus,
} from '../instances/index.ts'
import { valueOf } from '../nats/index.ts'
import { unwrapEvent } from './blobs.ts'

/** What {@link Client.getStatus} returns. */
export interface InstanceStatus<O = unknown> {
  id: string
  name: string
  status: RuntimeStatus
  input?: unknown
  output?: O
  /** Failure details of a Failed (or reason of a Terminated) instance. */
  error?: ErrorInfo
  customStatus?: unknown
  createdAt: Date
  lastUpdatedAt: Date
  completedAt?: Date
  history?: HistoryEvent[]
}

/** The fields of an instance record that its status shows (see {@link toStatus}). */
export type StatusFields = InstanceStatusFields & { history?: InstanceView['history'] }

export { statusFieldsOf }

/**
 * The status of an instance record (with its history when asked for); references to large values
 * must be loaded (client-blobs.ts `loadView`).
 */
export function toStatus<O>(rec: StatusFields, history: boolean): InstanceStatus<O> {
  return {
    id: rec.id,
    name: rec.name,
    status: rec.status,
    input: valueOf(rec.input),
    ...(rec.output === undefined ? {} : { output: valueOf(rec.output) as O }),
    ...(rec.error === undefined ? {} : { error: rec.error }),
    ...(rec.custom === undefined ? {} : { customStatus: valueOf(rec.custom) }),
    createdAt: new Date(rec.created),
    lastUpdatedAt: new Date(rec.updated),
    ...(rec.completed === undefined ? {} : { completedAt: new Date(rec.completed) }),
    ...(history ? { history: (rec.history ?? []).map(unwrapEvent) } : {}),
  }
}

/** The status of a listing summary (no input, output, error or history). */
export function fromSummary(s: InstanceSummary): InstanceStatus {
  return {
    id: s.id,
    name: s.name,
    status: s.status,
    ...(s.custom === undefined ? {} : { customStatus: valueOf(s.custom) }),
    createdAt: new Date(s.created),
    lastUpdatedAt: new Date(s.updated),
    ...(s.completed === undefined ? {} : { completedAt: new Date(s.completed) }),
  }
}

/** The token a page hands out to continue after `after`. */
export function encodeContinuation(after: string): string {
  return Buffer.from(JSON.stringify({ after })).toString('base64url')
}

/** The `after` a continuation token carries; `BadInputError` for one we did not hand out. */
export function decodeContinuation(token: string): string {
  try {
    const value = JSON.parse(Buffer.from(token, 'base64url').toString('utf8')) as { after?: unknown }
    if (typeof value.after === 'string') return value.after
  } catch {
    // fall through
  }
  throw new BadInputError('continuation is not a token returned by a previous page of the listing')
}

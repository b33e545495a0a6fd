/**
 * An instance's history as the dashboard's timeline: each activity, timer, sub-orchestration,
 * entity call and lock with when it was scheduled and when its outcome was recorded (the times of
 * the steps that did so, as `ctx.now()` saw them), attempts, external events and the end. Pure.
 */
import type { ErrorInfo } from '../../actors/index.ts'
import type { HistoryEvent } from '../../actors/orchestration/index.ts'

/** One row of the timeline. */
export interface TimelineRow {
  kind:
    | 'activity'
    | 'timer'
    | 'sub'
    | 'call'
    | 'signal'
    | 'start'
    | 'lock'
    | 'unlock'
    | 'event'
    | 'started'
    | 'finished'
  /** Sequence number of a scheduled task. */
  seq?: number
  /** Activity, orchestration, operation or event name. */
  name?: string
  attempt?: number
  /** Child instance of a sub-orchestration or a started instance. */
  instanceId?: string
  /** When it was scheduled (or happened), ms since the epoch. */
  at: number
  /** When its outcome was recorded; absent while it is pending. */
  endedAt?: number
  /** `endedAt - at`, when ended. */
  durationMs?: number
  outcome?: 'completed' | 'failed' | 'fired' | 'cancelled' | 'continuedAsNew'
  /** When a timer is due. */
  fireAt?: number
  result?: unknown
  error?: ErrorInfo
  data?: unknown
}

/**
 * The timeline of a history, in the order things were scheduled or happened.
 *
 * @example timelineOf(status.history ?? []).filter((r) => r.kind === 'activity').length
 */
export function timelineOf(history: HistoryEvent[]): TimelineRow[] {
  const rows: TimelineRow[] = []
  const bySeq = new Map<number, TimelineRow>()
  let t = 0
  const end = (seq: number, outcome: TimelineRow['outcome'], extra: Partial<TimelineRow>) => {
    const row = bySeq.get(seq)
    if (row === undefined || row.endedAt !== undefined) return
    Object.assign(row, { endedAt: t, durationMs: Math.max(0, t - row.at), outcome }, extra)
  }
  for (const e of history) {
    switch (e.e) {
      case 'started':
        t = e.t
        rows.push({ kind: 'started', name: e.name, at: t, data: e.input })
        break
      case 'step':
        t = e.t
        break
      case 'scheduled': {
        if (e.kind === 'cancelTimer') {
          end(e.timer, 'cancelled', {})
          break
        }
        const row: TimelineRow = { kind: e.kind, seq: e.seq, at: t }
        if (e.kind === 'activity' || e.kind === 'sub') {
          row.name = e.name
          row.attempt = e.attempt
        }
        if (e.kind === 'sub' || e.kind === 'start') row.instanceId = e.instanceId
        if (e.kind === 'start') row.name = e.name
        if (e.kind === 'timer') row.fireAt = e.fireAt
        if (e.kind === 'call' || e.kind === 'signal') row.name = `${e.entity[0]}@${e.entity[1]}.${e.op}`
        if (e.kind === 'lock' || e.kind === 'unlock')
          row.name = e.entities.map(([type, key]) => `${type}@${key}`).join(', ')
        rows.push(row)
        if (e.kind !== 'signal' && e.kind !== 'start' && e.kind !== 'unlock') bySeq.set(e.seq, row)
        break
      }
      case 'completed':
        end(e.seq, bySeq.get(e.seq)?.kind === 'timer' ? 'fired' : 'completed', { result: e.result })
        break
      case 'failed':
        end(e.seq, 'failed', { error: e.error })
        break
      case 'timerFired':
        end(e.seq, 'fired', {})
        break
      case 'event':
        rows.push({ kind: 'event', name: e.name, at: t, data: e.data })
        break
      case 'finished':
        rows.push({
          kind: 'finished',
          at: t,
          outcome: e.status,
          ...(e.status === 'completed' ? { result: e.output } : {}),
          ...(e.status === 'failed' ? { error: e.error } : {}),
        })
        break
      case 'patch':
      case 'customStatus':
        break
      default: {
        const never: never = e
        void never
      }
    }
  }
  return rows
}

/**
 * The dashboard's pure parts, without a server: rates from node telemetry samples (two samples
 * make a rate, one makes none, a stale node drops out, a malformed sample is refused), the
 * history timeline (durations, attempts, timers, events, sub-orchestrations, the end) and the
 * query parameter checks that answer 400, and a start on a taken port (no NATS behind it).
 */
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { describe, expect, it } from 'vitest'
import { AuthorizationError, BadInputError } from '../../actors/index.ts'
import { failureStatus } from '../../runtime/dashboard/server.ts'
import { startDashboard } from '../../runtime/dashboard/index.ts'
import type { HistoryEvent } from '../../actors/orchestration/index.ts'
import { BadParamError, int, onlyKnown, statuses, time } from '../../runtime/dashboard/params.ts'
import { StatsTracker } from '../../runtime/dashboard/stats.ts'
import { timelineOf } from '../../runtime/dashboard/timeline.ts'
import { mergeListing } from '../../runtime/dashboard/ui/merge.js'
import { zeroCounters, type NodeStats } from '../../runtime/metrics/stats.ts'

const bytes = (value: unknown) => new TextEncoder().encode(JSON.stringify(value))

function sample(node: string, at: number, steps: number, records: number): NodeStats {
  return {
    v: 1,
    node,
    hub: 'h',
    at,
    startedAt: 0,
    partitions: [
      {
        p: 3,
        epoch: 2,
        backlog: 7,
        lastSnapshotAt: null,
        cacheSize: 0,
        counters: { ...zeroCounters(), records },
      },
    ],
    totals: { ...zeroCounters(), steps, records },
    activities: { queued: 1, running: 2, offloaded: 0 },
  }
}

describe('StatsTracker', () => {
  it('has no rate from one sample, and per-second rates from two', () => {
    const stats = new StatsTracker()
    expect(stats.add(bytes(sample('a', 10_000, 100, 10)))).toBe(true)
    let view = stats.view(10_000)
    expect(view.rates).toBeNull()
    expect(view.partitions).toEqual([
      { p: 3, node: 'a', epoch: 2, backlog: 7, recordsPerSec: null, lastSnapshotAt: null },
    ])
    stats.add(bytes(sample('a', 12_000, 300, 50)))
    view = stats.view(12_000)
    expect(view.rates).toMatchObject({ steps: 100, records: 20 })
    expect(view.partitions[0]!.recordsPerSec).toBe(20)
  })

  it('shows a partition listed by two nodes (a move in progress) once, as the higher epoch has it', () => {
    const stats = new StatsTracker()
    const moved = sample('b', 1000, 0, 0)
    moved.partitions[0] = { ...moved.partitions[0]!, epoch: 3, backlog: 1 }
    stats.add(bytes(moved))
    stats.add(bytes(sample('a', 1000, 0, 0)))
    expect(stats.view(1000).partitions).toEqual([
      { p: 3, node: 'b', epoch: 3, backlog: 1, recordsPerSec: null, lastSnapshotAt: null },
    ])
  })

  it('sums nodes, drops a node silent for 10 s, refuses malformed and older samples', () => {
    const stats = new StatsTracker()
    for (const [node, at, steps] of [
      ['a', 1000, 0],
      ['a', 2000, 10],
      ['b', 1000, 0],
      ['b', 2000, 30],
    ] as const)
      stats.add(bytes(sample(node, at, steps, 0)))
    expect(stats.view(2000).rates?.steps).toBe(40)
    expect(stats.add(bytes({ v: 2, node: 'c' }))).toBe(false)
    expect(stats.add(new TextEncoder().encode('not json'))).toBe(false)
    expect(stats.add(bytes(sample('a', 1500, 0, 0))), 'an older sample').toBe(false)
    stats.add(bytes(sample('b', 20_000, 40, 0)))
    expect(stats.view(20_000).nodes.map((n) => n.node)).toEqual(['b'])
  })
})

describe('timelineOf', () => {
  it('pairs tasks with their outcomes, with durations and attempts', () => {
    const history: HistoryEvent[] = [
      { e: 'started', t: 1000, name: 'o', input: 1 },
      { e: 'scheduled', seq: 0, kind: 'activity', name: 'a', attempt: 1 },
      { e: 'scheduled', seq: 1, kind: 'timer', fireAt: 9000 },
      { e: 'step', t: 1200 },
      { e: 'failed', seq: 0, error: { name: 'Error', message: 'boom' } },
      { e: 'scheduled', seq: 2, kind: 'activity', name: 'a', attempt: 2 },
      { e: 'scheduled', seq: 3, kind: 'sub', name: 'child', instanceId: 'c1', attempt: 1 },
      { e: 'step', t: 1500 },
      { e: 'completed', seq: 2, result: 'ok' },
      { e: 'event', name: 'approve', data: { by: 'ana' } },
      { e: 'scheduled', seq: 4, kind: 'cancelTimer', timer: 1 },
      { e: 'completed', seq: 3, result: 'child done' },
      { e: 'finished', status: 'completed', output: 'done' },
    ]
    const rows = timelineOf(history)
    expect(rows.map((r) => [r.kind, r.seq, r.outcome, r.durationMs])).toEqual([
      ['started', undefined, undefined, undefined],
      ['activity', 0, 'failed', 200],
      ['timer', 1, 'cancelled', 500],
      ['activity', 2, 'completed', 300],
      ['sub', 3, 'completed', 300],
      ['event', undefined, undefined, undefined],
      ['finished', undefined, 'completed', undefined],
    ])
    expect(rows[1]!.error?.message).toBe('boom')
    expect(rows[3]!.attempt).toBe(2)
    expect(rows[4]!.instanceId).toBe('c1')
    expect(rows[5]).toMatchObject({ name: 'approve', at: 1500, data: { by: 'ana' } })
  })
})

describe('query parameters', () => {
  it('answer bad values with an error naming the parameter', () => {
    expect(int({ pageSize: '20' }, 'pageSize', 1, 1000, 50)).toBe(20)
    expect(int({}, 'pageSize', 1, 1000, 50)).toBe(50)
    expect(() => int({ pageSize: '0' }, 'pageSize', 1, 1000, 50)).toThrow(BadParamError)
    expect(() => int({ pageSize: '1.5' }, 'pageSize', 1, 1000, 50)).toThrow(/'pageSize'.*got '1.5'/)
    expect(time({ since: '2026-01-01T00:00:00Z' }, 'since')).toBe(Date.UTC(2026, 0, 1))
    expect(() => time({ since: 'yesterday' }, 'since')).toThrow(/'since'/)
    expect(statuses({ status: 'Running,Failed' }, 'status')).toEqual(['Running', 'Failed'])
    expect(() => statuses({ status: 'Running,Asleep' }, 'status')).toThrow(
      /'status': unknown status 'Asleep'/,
    )
  })

  it('refuse a parameter the route does not take, naming the known ones', () => {
    expect(() => onlyKnown({ status: 'Failed', pageSize: '5' }, ['status', 'pageSize'])).not.toThrow()
    expect(() => onlyKnown({ stauts: 'Failed' }, ['status', 'pageSize'])).toThrow(
      "bad query parameter 'stauts': unknown here (known: status, pageSize)",
    )
    expect(new BadParamError('name', 'give the event name', 'body field').message).toBe(
      "bad body field 'name': give the event name",
    )
  })
})

describe('the instances page merging a listing with the live feed', () => {
  const row = (id: string, status: string, at: number) => ({
    id,
    status,
    lastUpdatedAt: new Date(at).toISOString(),
  })

  it('keeps a status the feed brought after the listing was read, and a row it added since', () => {
    const listed = [row('a', 'Running', 1000), row('c', 'Running', 1000)]
    const shown = [row('a', 'Completed', 2000), row('b', 'Running', 1500), row('c', 'Running', 900)]
    const merged = mergeListing(listed, shown, (r) => r.id === 'b')
    expect(merged.map((r) => [r.id, r.status])).toEqual([
      ['a', 'Completed'], // the feed's newer status is not put back to Running
      ['b', 'Running'], // added live after the read
      ['c', 'Running'],
    ])
  })

  it('takes the listing where it is newer, and drops rows on screen that keep() refuses', () => {
    const merged = mergeListing(
      [row('a', 'Failed', 3000)],
      [row('a', 'Running', 2000), row('z', 'Running', 1)],
      () => false,
    )
    expect(merged.map((r) => [r.id, r.status])).toEqual([['a', 'Failed']])
  })
})

describe('startDashboard on a taken port', () => {
  it('rejects at once with a BadInputError naming the port and the flag that set it', async () => {
    const taken = createServer()
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve))
    const { port } = taken.address() as AddressInfo
    try {
      const started = startDashboard({
        // nothing listens there: the dashboard connects only once it listens, so it never tries
        servers: 'nats://127.0.0.1:1',
        hub: 'taken',
        port,
        optionNames: { port: '--port', host: '--host' },
      })
      await expect(started).rejects.toThrow(BadInputError)
      await expect(started).rejects.toThrow(
        `dashboard port ${port} on 127.0.0.1 is in use (another process listens there): ` +
          'give another port (--port), or 0 for any free one',
      )
    } finally {
      taken.close()
    }
  })
})

describe('the HTTP status of a failure', () => {
  it('answers 503 when the server refuses the dashboard its credentials (revoked or changed), not 500', () => {
    const refused = new AuthorizationError(
      "authorization failed at NATS nats://h:4222 (as user 'dash'): Authorization Violation; check the credentials",
    )
    expect(failureStatus(refused, 'orders')).toEqual({ status: 503, message: refused.message })
    expect(failureStatus(new Error('something else'), 'orders').status).toBe(500)
  })
})

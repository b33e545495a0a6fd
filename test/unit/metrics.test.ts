/**
 * The metrics recorders, registry, endpoint and telemetry publisher (runtime/metrics/) against
 * fake partitions: no server.
 */
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { Counter as PromCounter, Registry } from 'prom-client'
import { BadInputError } from '../../actors/index.ts'
import {
  Buckets,
  NodeRecorder,
  metricsRegistry,
  nodeStats,
  publishStats,
  serveMetrics,
  type NodeStats,
  type PartitionProbe,
} from '../../runtime/metrics/index.ts'

/** A fake partition run: its own stats, as a Partition would keep them. */
interface FakeRun extends PartitionProbe {
  stats: { records: number; messages: number; snapshots: number; deadLetters: number }
}
function probe(p: number, epoch = 1): FakeRun {
  return {
    p,
    options: { epoch },
    stats: { records: 0, messages: 0, snapshots: 0, deadLetters: 0 },
    cachedEntities: 0,
    backlog: 0,
  }
}

describe('Buckets', () => {
  it('puts a value in the first bucket whose bound is not below it, else in +Inf', () => {
    const b = new Buckets([1, 5])
    for (const v of [0, 1, 1.5, 5, 6]) b.observe(v)
    expect(b.counts).toEqual([2, 2, 1])
    expect(b.count).toBe(5)
    expect(b.sum).toBe(13.5)
  })
})

describe('NodeRecorder', () => {
  it("keeps a partition's counters across its runs on the node, and counts only what runs as owned", () => {
    const node = new NodeRecorder()
    const first = probe(3, 1)
    const m1 = node.partition(first)
    first.stats.records = 4
    first.stats.messages = 10
    m1.sealed(10)
    m1.committed()
    m1.started('order')
    m1.stepping()
    m1.stepped('order')
    m1.entityOp('Counter', 'add', true)
    expect(node.owned).toBe(1)
    m1.closed()
    expect(node.owned).toBe(0)
    const second = probe(3, 2)
    const m2 = node.partition(second)
    second.stats.records = 2
    m2.completed('order')
    m2.entityOp('Counter', 'get', false)
    const c = node.partitions.get(3)!
    expect(c.records, 'records of both runs').toBe(6)
    expect(c.messages).toBe(10)
    expect(c.recordMessages.count).toBe(1)
    expect(c.recordMessages.sum).toBe(10)
    expect(node.totals()).toMatchObject({
      steps: 1,
      started: 1,
      completed: 1,
      signals: 1,
      entityOps: 2,
      records: 6,
    })
    expect(node.byName('order')).toMatchObject({ started: 1, completed: 1, failed: 0 })
    expect(node.entityOps.get('Counter')).toEqual(
      new Map([
        ['add', { n: 1 }],
        ['get', { n: 1 }],
      ]),
    )
    const sample = nodeStats(node, 'n1', 'h')
    expect(sample.partitions).toEqual([
      {
        p: 3,
        epoch: 2,
        backlog: 0,
        lastSnapshotAt: null,
        cacheSize: 0,
        counters: expect.objectContaining({ records: 6 }),
      },
    ])
  })

  it('measures snapshot lag from the records counted when the last completed snapshot started', () => {
    const node = new NodeRecorder()
    const run = probe(0)
    const m = node.partition(run)
    run.stats.records = 5
    m.snapshotStarted()
    run.stats.records = 7
    m.snapshotted()
    const c = node.partitions.get(0)!
    expect(c.snapshotLag).toBe(2)
    expect(c.snapshotSeconds.count).toBe(1)
    expect(c.lastSnapshotAt).not.toBeNull()
  })
})

describe('metricsRegistry', () => {
  it('exposes counters per partition and cumulative histogram buckets', async () => {
    const node = new NodeRecorder()
    const run = probe(1)
    const m = node.partition(run)
    run.stats.records = 2
    m.sealed(3)
    m.sealed(4) // 3 then 1 message
    m.failed('pay')
    const text = await metricsRegistry(node, 'h').metrics()
    expect(text).toMatch(/^basalt_records_total\{hub="h",partition="1"\} 2$/m)
    expect(text).toMatch(/^basalt_record_messages_bucket\{hub="h",partition="1",le="1"\} 1$/m)
    expect(text).toMatch(/^basalt_record_messages_bucket\{hub="h",partition="1",le="5"\} 2$/m)
    expect(text).toMatch(/^basalt_record_messages_bucket\{hub="h",partition="1",le="\+Inf"\} 2$/m)
    expect(text).toMatch(/^basalt_record_messages_count\{hub="h",partition="1"\} 2$/m)
    expect(text).toMatch(/^basalt_orchestrations_failed_total\{hub="h",name="pay"\} 1$/m)
    expect(text).toMatch(/^basalt_partitions_owned\{hub="h"\} 1$/m)
  })
})

describe('serveMetrics', () => {
  it("serves Basalt's registry and then the user's on 127.0.0.1, 404 elsewhere", async () => {
    const mine = new Registry()
    const endpoint = await serveMetrics(metricsRegistry(new NodeRecorder(), 'h'), { registry: mine })
    try {
      expect(endpoint.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/metrics$/)
      // registered after the endpoint started: still served
      new PromCounter({ name: 'app_orders_total', help: 'orders', registers: [mine] }).inc(3)
      const text = await (await fetch(endpoint.url)).text()
      expect(text).toMatch(/^basalt_partitions_owned\{hub="h"\} 0$/m)
      expect(text).toMatch(/^app_orders_total 3$/m)
      expect((await fetch(endpoint.url.replace('/metrics', '/'))).status).toBe(404)
    } finally {
      await endpoint.close()
    }
  })

  it('refuses a taken port, naming it and its option, as a BadInputError', async () => {
    const taken = createServer()
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve))
    const { port } = taken.address() as AddressInfo
    try {
      const refused = serveMetrics(new Registry(), { port })
      await expect(refused).rejects.toThrow(BadInputError)
      await expect(refused).rejects.toThrow(
        `metrics port ${port} on 127.0.0.1 is in use (another process listens there): ` +
          'give another port (--metrics-port, metrics.port), or 0 for any free one',
      )
    } finally {
      taken.close()
    }
  })

  it('refuses a host that is no address of this machine, or no name, naming its option', async () => {
    // 192.0.2.1: TEST-NET-1, documentation only, never an address of this machine
    await expect(serveMetrics(new Registry(), { port: 0, host: '192.0.2.1' })).rejects.toThrow(
      /^metrics host 192\.0\.2\.1 is not an address of this machine: give one of its addresses \(--metrics-host, metrics\.host\)/,
    )
    await expect(serveMetrics(new Registry(), { port: 0, host: 'no-such-host.invalid' })).rejects.toThrow(
      /^metrics host no-such-host\.invalid cannot be resolved( now)?\b.*\(--metrics-host, metrics\.host\)/,
    )
  })
})

describe('publishStats', () => {
  afterEach(() => {
    vi.useRealTimers()
  })

  it('publishes at once and every second until stopped; a failing publish is skipped', () => {
    vi.useFakeTimers()
    const node = new NodeRecorder()
    const sent: NodeStats[] = []
    let failNext = false
    const stop = publishStats(
      () => nodeStats(node, 'n1', 'h'),
      (json) => {
        if (failNext) {
          failNext = false
          throw new Error('connection closed')
        }
        sent.push(JSON.parse(new TextDecoder().decode(json)) as NodeStats)
      },
    )
    expect(sent.length).toBe(1)
    failNext = true
    vi.advanceTimersByTime(1000)
    expect(sent.length, 'the failed one skipped').toBe(1)
    vi.advanceTimersByTime(2000)
    expect(sent.length).toBe(3)
    expect(sent[0]).toMatchObject({ v: 1, node: 'n1', hub: 'h', partitions: [] })
    stop()
    vi.advanceTimersByTime(5000)
    expect(sent.length, 'none after stop').toBe(3)
  })
})

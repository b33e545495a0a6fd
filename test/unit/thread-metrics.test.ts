/**
 * Metrics of partitions on worker threads (runtime/metrics/threads.ts) against fake partitions:
 * thread recorders' reports folded into the node's recorder — counters and histograms grow by
 * exactly what each thread counted, a partition moving between threads keeps one series, a dead
 * thread's counts stay, node-level figures are the node's own, and a scrape waits for the refresh.
 */
import { describe, expect, it } from 'vitest'
import {
  NodeRecorder,
  ThreadMetrics,
  metricsRegistry,
  nodeStats,
  threadReport,
  type PartitionProbe,
} from '../../runtime/metrics/index.ts'

interface FakeRun extends PartitionProbe {
  stats: { records: number; messages: number; snapshots: number; deadLetters: number }
  backlog: number
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
const idle = { queued: 0, running: 0 }

/** Records `n` entity signals, one started and completed orchestration step on a partition. */
function work(thread: NodeRecorder, run: FakeRun, n: number): void {
  const m = thread.partition(run)
  for (let i = 0; i < n; i++) m.entityOp('Counter', 'add', true)
  run.stats.records += n
  run.stats.messages += n
  m.sealed(run.stats.messages)
  m.committed()
  m.started('order')
  m.stepping()
  m.stepped('order')
  m.completed('order')
}

describe('ThreadMetrics', () => {
  it('adds what each thread counted since its previous report, once', () => {
    const node = new NodeRecorder()
    const merge = new ThreadMetrics(node)
    const t0 = new NodeRecorder()
    const t1 = new NodeRecorder()
    const r0 = probe(0)
    const r1 = probe(1)
    work(t0, r0, 3)
    work(t1, r1, 5)
    r1.backlog = 7
    merge.absorb(0, threadReport(t0, { queued: 2, running: 1 }))
    merge.absorb(1, threadReport(t1, idle))
    merge.absorb(0, threadReport(t0, { queued: 2, running: 1 })) // the same again: nothing new
    expect(node.totals()).toMatchObject({ signals: 8, entityOps: 8, started: 2, completed: 2, records: 8 })
    expect(node.entityOps.get('Counter')?.get('add')?.n).toBe(8)
    expect(node.byName('order').stepSeconds.count).toBe(2)
    expect(node.partitions.get(0)!.commitSeconds.count).toBe(1)
    expect(node.owned).toBe(2)
    expect(node.activityTotals()).toEqual({ queued: 2, running: 1, offloaded: 0 })
    const sample = nodeStats(node, 'n', 'h')
    expect(sample.partitions.map((p) => [p.p, p.backlog, p.counters.signals])).toEqual([
      [0, 0, 3],
      [1, 7, 5],
    ])
    expect(node.partitionsGained, 'gained/lost are the node’s own').toBe(0)
  })

  it("keeps one series for a partition that moves between threads, and a dead thread's counts", () => {
    const node = new NodeRecorder()
    const merge = new ThreadMetrics(node)
    const t0 = new NodeRecorder()
    const run0 = probe(4, 1)
    work(t0, run0, 2)
    merge.absorb(0, threadReport(t0, idle))
    t0.partition(run0).closed() // p4 leaves thread 0...
    const t1 = new NodeRecorder()
    const run1 = probe(4, 2)
    work(t1, run1, 3) // ...and runs on thread 1
    merge.absorb(1, threadReport(t1, idle))
    merge.absorb(0, threadReport(t0, idle)) // thread 0 no longer runs it: thread 1's probe stays
    expect(node.owned).toBe(1)
    expect(nodeStats(node, 'n', 'h').partitions[0]).toMatchObject({ p: 4, epoch: 2 })
    expect(node.partitions.get(4)!.records).toBe(5)

    work(t1, run1, 4) // counted after thread 1's last report: lost with it
    merge.exited(1)
    expect(node.owned, 'a dead thread runs nothing').toBe(0)
    expect(node.partitions.get(4)!.records, 'what it reported stays').toBe(5)
    expect(node.totals().signals).toBe(5)
    const t1b = new NodeRecorder() // the thread in its place starts from zero
    work(t1b, probe(4, 3), 1)
    merge.absorb(1, threadReport(t1b, idle))
    expect(node.totals().signals).toBe(6)
    expect(node.entityOps.get('Counter')?.get('add')?.n).toBe(6)
  })

  it('a scrape reads after one shared refresh', async () => {
    const node = new NodeRecorder()
    const merge = new ThreadMetrics(node)
    const t0 = new NodeRecorder()
    let refreshes = 0
    node.refresh = async () => {
      refreshes++
      await new Promise((resolve) => setTimeout(resolve, 10))
      work(t0, probe(2), 1)
      merge.absorb(0, threadReport(t0, idle))
    }
    const text = await metricsRegistry(node, 'h').metrics()
    expect(refreshes, 'one refresh for every metric of the scrape').toBe(1)
    expect(text).toMatch(/^basalt_entity_operations_total\{hub="h",type="Counter",operation="add"\} 1$/m)
    expect(text).toMatch(/^basalt_partitions_owned\{hub="h"\} 1$/m)
  })
})

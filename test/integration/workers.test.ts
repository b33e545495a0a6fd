/**
 * A node that runs its partitions on worker threads (`Node.start({ workers: 2, registryModule })`,
 * runtime/node/partition-threads.ts), against a real nats-server: signals over many entities and
 * hello sequences reach exact counts with the partitions spread over both threads; a thread that
 * dies (an entity operation that ends it, or a terminated thread) has its partitions restarted
 * through the failure path with the totals still exact; a second node joining takes half the
 * partitions; `workers > 1` without a registry module is bad input. The node's `/metrics` and its
 * telemetry sample count what happens on its threads, by exactly the workload, and keep counting
 * across a thread's death.
 */
import { rmSync } from 'node:fs'
import path from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { BadInputError } from '../../actors/index.ts'
import { Client, Node, silentLogger } from '../../runtime/index.ts'
import { Counter } from '../fixtures/entities.ts'
import { Crasher } from '../fixtures/threads-registry.ts'
import { helloSequence } from '../fixtures/workflows.ts'
import { keptLines, repoRoot, tempDir, useNatsServer, waitFor } from '../tooling/harness.ts'
import { partitionsOf, scrape, sum, type Scrape } from '../tooling/scrape.ts'
import type { NodeStats } from '../../runtime/metrics/index.ts'
import { HubNames } from '../../runtime/nats/hub.ts'
import { closeConnection, connectTo } from '../../runtime/nats/connect.ts'

const nats = useNatsServer()
const fast = { heartbeatMs: 200, leaseMs: 1000 }
const registryModule = path.join(repoRoot, 'test/fixtures/threads-registry.ts')
const cleanup: Array<() => Promise<void> | void> = []

afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) await step()
})

async function startNode(hub: string, nodeId: string, extra: Record<string, unknown> = {}): Promise<Node> {
  const node = await Node.start({
    servers: nats.url,
    hub,
    registryModule,
    workers: 2,
    partitions: 8,
    nodeId,
    logger: silentLogger,
    ...fast,
    ...extra,
  })
  cleanup.push(() => node.stop())
  return node
}

async function connectClient(hub: string): Promise<Client> {
  const client = await Client.connect({ servers: nats.url, hub })
  cleanup.push(() => client.close())
  return client
}

/** Sends one `add(1)` to each key, all at once. */
function wave(client: Client, keys: string[]): Promise<unknown> {
  return Promise.all(keys.map((k) => client.entity(Counter, k).signal.add(1)))
}

/** Waits until every key's counter reads `expected`, naming the first key that does not. */
async function expectCounts(client: Client, keys: string[], expected: number, phase: string): Promise<void> {
  let wrong = ''
  await waitFor(
    async () => {
      const values = await Promise.all(keys.map((k) => client.entity(Counter, k).call.get()))
      const i = values.findIndex((v) => v !== expected)
      wrong = i < 0 ? '' : `${keys[i]}: expected ${expected}, found ${values[i]}`
      return i < 0
    },
    `${phase}: every counter at ${expected} (${wrong})`,
    20_000,
  )
  const values = await Promise.all(keys.map((k) => client.entity(Counter, k).call.get()))
  expect(values, phase).toEqual(keys.map(() => expected))
}

/** Starts `n` hello sequences and checks that each completed once with its greetings. */
async function helloRound(client: Client, n: number, tag: string): Promise<void> {
  const ids = await Promise.all(
    Array.from({ length: n }, (_, i) => client.start(helloSequence, [`${tag}${i}`, 'Lima'])),
  )
  const done = await Promise.all(
    ids.map((id) => client.waitForCompletion<string[]>(id, { timeoutMs: 20_000 })),
  )
  done.forEach((d, i) => {
    expect(d.status, `instance ${ids[i]}`).toBe('Completed')
    expect(d.output, `instance ${ids[i]}`).toEqual([`Hello ${tag}${i}`, 'Hello Lima'])
  })
}

describe('a node with worker threads', () => {
  it('starts no more partition threads than the hub has partitions, and says so', async () => {
    const lines: string[] = []
    const node = await startNode('threads-capped', 'capped', {
      workers: 6,
      partitions: 3,
      logger: keptLines(lines, ['warn']),
    })
    expect(node.threadCount).toBe(3)
    expect(lines.filter((l) => l.startsWith('workers: 6 is more than'))).toEqual([
      `workers: 6 is more than the hub's 3 partitions; starting 3 partition threads {"node":"capped"}`,
    ])
  })

  it('runs signals and orchestrations to exact counts with its partitions on both threads', async () => {
    const hub = 'thr-basic'
    const node = await startNode(hub, 'a')
    expect(node.threadCount).toBe(2)
    expect(await node.partitionIds()).toEqual([0, 1, 2, 3, 4, 5, 6, 7])
    const view = await node.threadView()
    expect(
      view.map((t) => t.partitions.length),
      JSON.stringify(view),
    ).toEqual([4, 4])
    expect(() => node.partitions).toThrow(/worker threads/)

    const client = await connectClient(hub)
    const keys = Array.from({ length: 200 }, (_, i) => `k${i}`)
    for (let i = 0; i < 5; i++) await wave(client, keys)
    await expectCounts(client, keys, 5, 'after five waves')
    await helloRound(client, 50, 'basic')
    await waitFor(() => node.stats().records > 0, 'the threads to post their partitions counters')
  })

  it('restarts the partitions of a thread that dies, with exact totals', async () => {
    const hub = 'thr-crash'
    const node = await startNode(hub, 'a')
    const client = await connectClient(hub)
    const keys = Array.from({ length: 100 }, (_, i) => `k${i}`)
    await wave(client, keys)
    await expectCounts(client, keys, 1, 'before the crash')

    // an entity operation ends its thread: the operation is redone once the partition recovers
    const dir = tempDir('basalt-threads-')
    cleanup.push(() => rmSync(dir, { recursive: true, force: true }))
    const crasher = client.entity(Crasher, 'c1')
    const [, survived] = await Promise.all([
      wave(client, keys),
      crasher.call.crashThreadOnce(path.join(dir, 'm1')),
    ])
    expect(survived).toBe(1)
    await wave(client, keys)
    await expectCounts(client, keys, 3, 'after the operation that ended its thread')
    expect(node.stats().failures, 'partition failures after one thread died').toBe(4)
    await waitFor(
      async () => (await node.partitionIds()).length === 8,
      'every partition running again after the thread died',
    )

    // a thread terminated from outside, with signals in flight
    const inFlight = wave(client, keys)
    await node.crashThreadForTest(1)
    await inFlight
    await wave(client, keys)
    await expectCounts(client, keys, 5, 'after thread 1 was terminated')
    expect(node.stats().failures, 'partition failures after the second thread death').toBe(8)
    await helloRound(client, 30, 'crash')
    expect(await crasher.call.get()).toBe(1)
  })

  it('survives both threads dying at once: every partition comes back, totals exact', async () => {
    const hub = 'thr-both'
    const node = await startNode(hub, 'a')
    const client = await connectClient(hub)
    const keys = Array.from({ length: 100 }, (_, i) => `k${i}`)
    await wave(client, keys)
    const inFlight = wave(client, keys)
    await Promise.all([node.crashThreadForTest(0), node.crashThreadForTest(1)])
    await inFlight
    await wave(client, keys)
    await expectCounts(client, keys, 3, 'after both threads were terminated')
    expect(node.stats().failures, 'one failure per partition of the two threads').toBe(8)
    await waitFor(
      async () => (await node.partitionIds()).length === 8,
      'every partition running again after both threads died',
    )
    const view = await node.threadView()
    expect(view.map((t) => t.partitions.length).sort(), JSON.stringify(view)).toEqual([4, 4])
  })

  it('gives half its partitions to a second node that joins, and takes them back', async () => {
    const hub = 'thr-join'
    const a = await startNode(hub, 'a')
    const client = await connectClient(hub)
    const keys = Array.from({ length: 80 }, (_, i) => `k${i}`)
    await wave(client, keys)
    const b = await startNode(hub, 'b', { workers: 1 })
    await waitFor(async () => (await a.partitionIds()).length === 4, 'a to hand four partitions to b')
    expect(b.partitions.size).toBe(4)
    await wave(client, keys)
    await b.stop()
    await waitFor(async () => (await a.partitionIds()).length === 8, 'a to take every partition back')
    const view = await a.threadView()
    expect(view.flatMap((t) => t.partitions).sort(), JSON.stringify(view)).toEqual([0, 1, 2, 3, 4, 5, 6, 7])
    await wave(client, keys)
    await expectCounts(client, keys, 3, 'after the join and the leave')
  })

  it('reports a partition fenced in its thread: a newer owner takes it, nothing lost or applied twice', async () => {
    const hub = 'thr-fence'
    // static placement: each start claims every partition with a fresh epoch, fencing the earlier owner
    const older = await startNode(hub, 'older', { placement: 'static', partitions: 4 })
    expect(await older.partitionIds()).toEqual([0, 1, 2, 3])
    const client = await connectClient(hub)
    const keys = Array.from({ length: 40 }, (_, i) => `f${i}`)
    await wave(client, keys)
    await expectCounts(client, keys, 1, 'before the newer owner')
    const newer = await startNode(hub, 'newer', { placement: 'static', partitions: 4, workers: 1 })
    expect([...newer.partitions.keys()].sort()).toEqual([0, 1, 2, 3])
    await wave(client, keys) // both read the mailboxes; only the newer owner can commit
    await waitFor(
      async () => (await older.partitionIds()).length === 0,
      'the older node to report every partition fenced in its threads',
    )
    await expectCounts(client, keys, 2, 'after the take-over')
    expect(older.stats().failures, 'fencing is not a failure').toBe(0)
  })

  it('refuses workers > 1 without a registry module, naming both options', async () => {
    const start = Node.start({ servers: nats.url, hub: 'thr-bad', registry: [Counter], workers: 2 })
    await expect(start).rejects.toBeInstanceOf(BadInputError)
    await expect(start).rejects.toThrow(/workers: 2 needs registryModule/)
    const both = Node.start({ servers: nats.url, hub: 'thr-bad', registry: [Counter], registryModule })
    await expect(both).rejects.toThrow(/either registry or registryModule/)
  })
})

describe('metrics of a node with worker threads', () => {
  it('/metrics and the telemetry sample move by exactly the workload run on both threads, across a thread death', async () => {
    const hub = 'thr-metrics'
    const node = await startNode(hub, 'a', { metrics: {} })
    const url = node.metricsUrl!
    const listener = await connectTo({ servers: nats.url }, 'stats-listener')
    cleanup.push(() => closeConnection(listener))
    const samples: NodeStats[] = []
    const subject = new HubNames(hub).stats(node.nodeId)
    const sub = listener.subscribe(subject)
    void (async () => {
      for await (const m of sub) samples.push(JSON.parse(new TextDecoder().decode(m.data)) as NodeStats)
    })()
    const view = await node.threadView()
    expect(
      view.map((t) => t.partitions.length),
      JSON.stringify(view),
    ).toEqual([4, 4])

    const client = await connectClient(hub)
    const keys = Array.from({ length: 200 }, (_, i) => `k${i}`)
    const before = await scrape(url)
    await wave(client, keys)
    await wave(client, keys)
    await expectCounts(client, keys, 2, 'after two waves')
    await helloRound(client, 20, 'm')

    const after = await scrape(url)
    const moved = (name: string, ...labels: string[]) =>
      sum(after, name, ...labels) - sum(before, name, ...labels)
    const hello = 'name="helloSequence"'
    const add = ['type="Counter"', 'operation="add"']
    expect(moved('basalt_entity_operations_total', ...add), 'Counter.add ops').toBe(2 * keys.length)
    expect(moved('basalt_orchestrations_started_total', hello), 'helloSequence started').toBe(20)
    expect(moved('basalt_orchestrations_completed_total', hello), 'helloSequence completed').toBe(20)
    expect(moved('basalt_orchestrations_failed_total', hello), 'helloSequence failed').toBe(0)
    expect(moved('basalt_orchestration_step_duration_seconds_count', hello), 'helloSequence steps').toBe(60)
    const records = moved('basalt_records_total')
    expect(records, 'records committed').toBeGreaterThan(0)
    expect(moved('basalt_commit_latency_seconds_count'), 'commit latencies observed').toBe(records)
    expect(moved('basalt_record_messages_sum'), 'messages in records').toBe(moved('basalt_messages_total'))
    const all = [0, 1, 2, 3, 4, 5, 6, 7]
    expect(partitionsOf(after, 'basalt_records_total'), 'a records series per partition').toEqual(all)
    for (const p of all) {
      expect(
        sum(after, 'basalt_records_total', `partition="${p}"`),
        `records of partition ${p}`,
      ).toBeGreaterThan(0)
    }
    // node-level figures are the main thread's, counted once
    expect(sum(after, 'basalt_partitions_owned'), 'partitions owned').toBe(8)
    expect(sum(after, 'basalt_partitions_gained_total'), 'partitions gained').toBe(8)
    expect(sum(after, 'basalt_partitions_lost_total'), 'partitions lost').toBe(0)

    // the telemetry sample: every partition of the node, totals summed over both threads
    const from = samples.length
    await waitFor(
      () => samples.slice(from).some((s) => s.totals.started === 20 && s.totals.signals === 2 * keys.length),
      `a sample on ${subject} with 20 started and ${2 * keys.length} signals`,
    )
    const sample = samples.slice(from).find((s) => s.totals.started === 20)!
    expect(sample.totals).toMatchObject({ started: 20, completed: 20, failed: 0, steps: 60, signals: 400 })
    expect(sample.partitions.map((p) => p.p)).toEqual(all)
    expect(sample.partitions.every((p) => p.epoch > 0 && p.backlog === 0)).toBe(true)
    expect(sample.totals.records, 'records in the sample').toBe(
      sample.partitions.reduce((n, p) => n + p.counters.records, 0),
    )

    // a thread dies: what it counted (up to its last report, here the scrape above) stays counted
    const settled = await scrape(url)
    await node.crashThreadForTest(1)
    await waitFor(
      async () => (await node.partitionIds()).length === 8,
      'every partition running again after thread 1 was terminated',
    )
    let last: Scrape = new Map()
    await waitFor(
      async () => sum((last = await scrape(url)), 'basalt_partitions_owned') === 8,
      'basalt_partitions_owned back to 8 after thread 1 was terminated',
    )
    const counted = (s: Scrape) => ({
      add: sum(s, 'basalt_entity_operations_total', ...add),
      started: sum(s, 'basalt_orchestrations_started_total', hello),
      completed: sum(s, 'basalt_orchestrations_completed_total', hello),
      steps: sum(s, 'basalt_orchestration_step_duration_seconds_count', hello),
    })
    expect(counted(last), 'counters after the thread died').toEqual(counted(settled))
    expect(sum(last, 'basalt_records_total'), 'records after the thread died').toBeGreaterThanOrEqual(
      sum(settled, 'basalt_records_total'),
    )
    // (a restart may take two starts: at the old epoch, then at the renewed one)
    const gained = sum(last, 'basalt_partitions_gained_total')!
    const lost = sum(last, 'basalt_partitions_lost_total')!
    expect(lost, 'partitions lost: at least the four of the dead thread').toBeGreaterThanOrEqual(4)
    expect(gained - lost, `gained ${gained} - lost ${lost}: the partitions owned`).toBe(8)
    await wave(client, keys)
    await expectCounts(client, keys, 3, 'after the thread death')
    await helloRound(client, 5, 'n')
    const end = await scrape(url)
    expect(counted(end), 'counters after more work on the new thread').toEqual({
      add: counted(settled).add + keys.length,
      started: 25,
      completed: 25,
      steps: 75,
    })
  })
})

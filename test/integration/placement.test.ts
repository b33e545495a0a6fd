/**
 * Placement and scale-out: nodes in their own processes share one hub; partitions are spread over
 * live nodes and moved on join, graceful leave, crash (SIGKILL) and pause (SIGSTOP past the lease).
 * Every test that kills or pauses a process asserts exact final counts: nothing lost, nothing
 * applied twice, every orchestration completed once.
 */
import { afterAll, afterEach, describe, expect, it } from 'vitest'
import type { NatsConnection } from '@nats-io/transport-node'
import type { KV } from '../../runtime/nats/index.ts'
import { Client, Node, silentLogger } from '../../runtime/index.ts'
import { closeConnection, connectTo } from '../../runtime/nats/connect.ts'
import { ensureHub, latestKvEntry, openHub, type Hub } from '../../runtime/nats/hub.ts'
import {
  PlacementAgent,
  balance,
  readPlacement,
  type PlacementOptions,
  type PlacementTable,
} from '../../placement/index.ts'
import { Counter, Stamp } from '../fixtures/entities.ts'
import { approval, helloSequence, spread } from '../fixtures/workflows.ts'
import { spawnTs, useNatsServer, waitFor, type SpawnedTs } from '../tooling/harness.ts'

describe('placement policy', () => {
  const count = (owners: Array<string | null>) => {
    const c = new Map<string | null, number>()
    for (const o of owners) c.set(o, (c.get(o) ?? 0) + 1)
    return c
  }
  const moved = (a: Array<string | null>, b: Array<string | null>) => a.filter((o, p) => o !== b[p]).length

  it('spreads evenly, shares differing by at most one', () => {
    const fresh = balance(32, ['b', 'a', 'c'], Array(32).fill(null))
    expect([...count(fresh).values()].sort()).toEqual([10, 11, 11])
    expect(balance(4, [], ['a', null, 'b', null])).toEqual([null, null, null, null])
  })

  it('moves only what it must on join and on leave, and is stable', () => {
    const two = balance(12, ['a', 'b'], Array(12).fill(null))
    const three = balance(12, ['a', 'b', 'c'], two)
    expect(moved(two, three)).toBe(4) // c takes 4; nothing else moves
    expect(count(three).get('c')).toBe(4)
    expect(balance(12, ['a', 'b', 'c'], three)).toEqual(three)
    const afterLeave = balance(12, ['a', 'c'], three)
    expect(moved(three, afterLeave)).toBe(count(three).get('b')) // only b's partitions move
    expect([...count(afterLeave).values()]).toEqual([6, 6])
  })
})

const nats = useNatsServer()
const fast = { heartbeatMs: 200, leaseMs: 1000 }
const children: SpawnedTs[] = []
let observer: NatsConnection | undefined

afterEach(() => {
  for (const c of children.splice(0)) c.kill('SIGKILL')
})
afterAll(async () => {
  if (observer) await closeConnection(observer)
})

function startNode(hub: string, nodeId: string, options: Record<string, unknown> = {}): SpawnedTs {
  const child = spawnTs('test/fixtures/node-process.ts', [
    nats.url,
    hub,
    JSON.stringify({ ...fast, nodeId, ...options }),
  ])
  children.push(child)
  return child
}

/** The assignment table and live node records, read straight from the metadata bucket. */
async function placementOf(hub: string): Promise<PlacementTable> {
  observer ??= await connectTo(nats.url, 'observer')
  const { metaKv, jsm } = await openHub(observer, hub)
  return readPlacement(metaKv, jsm)
}

/** Waits until `expected` nodes each own and run their even share of the hub's partitions. */
async function waitBalanced(hub: string, expected: string[], timeoutMs = 20_000): Promise<void> {
  await waitFor(
    async () => {
      const { assignments, nodes } = await placementOf(hub)
      const share = assignments.length / expected.length
      return expected.every((id) => {
        const owned = assignments.filter((a) => a.node === id).length
        const running = nodes.find((n) => n.id === id)?.partitions.length ?? -1
        return Math.abs(owned - share) < 1 && running === owned
      })
    },
    `partitions spread over ${expected.join(', ')}`,
    timeoutMs,
  )
}

describe('nodes in one process', () => {
  it('split the partitions when a second node joins and take them back when it leaves', async () => {
    const hub = 'pl-two'
    const options = {
      servers: nats.url,
      hub,
      registry: [Counter],
      partitions: 8,
      ...fast,
      logger: silentLogger,
    }
    const a = await Node.start({ ...options, nodeId: 'a' })
    expect(a.partitions.size).toBe(8)
    const client = await Client.connect({ servers: nats.url, hub })
    const keys = Array.from({ length: 40 }, (_, i) => `k${i}`)
    const wave = () => Promise.all(keys.map((k) => client.entity(Counter, k).signal.add(1)))
    await wave()
    const b = await Node.start({ ...options, nodeId: 'b' })
    await wave()
    expect(a.partitions.size + b.partitions.size).toBe(8)
    expect(b.partitions.size).toBe(4)
    await waitFor(() => a.partitions.size === 4, 'a to hand four partitions to b')
    await wave()
    const epochs = [...b.partitions.values()].map((p) => p.options.epoch)
    expect(Math.min(...epochs)).toBeGreaterThanOrEqual(2) // moved: a newer epoch than a's
    await b.stop()
    await waitFor(() => a.partitions.size === 8, 'a to take every partition back')
    await wave()
    expect(await Promise.all(keys.map((k) => client.entity(Counter, k).call.get()))).toEqual(
      keys.map(() => 4),
    )
    await client.close()
    await a.stop()
  })
})

/** Options of a bare placement agent on a 2-partition hub, with a 100 ms heartbeat and a 400 ms lease. */
function fastAgent(nodeId: string): PlacementOptions {
  return {
    nodeId,
    host: 'test',
    partitions: 2,
    heartbeatMs: 100,
    leaseMs: 400,
    logger: silentLogger,
    running: () => [],
    onChange: () => {},
    onLeaseLost: () => {},
  }
}

/**
 * Runs `body` with agents on a fresh hub `hubName` (2 partitions): `start` starts one on the hub's
 * bucket (or on `kv`, a stand-in for it); every agent started is closed afterwards.
 */
async function withAgents(
  hubName: string,
  body: (hub: Hub, start: (options: PlacementOptions, kv?: KV) => Promise<PlacementAgent>) => Promise<void>,
): Promise<void> {
  const nc = await connectTo({ servers: nats.url }, `${hubName}-test`)
  const agents: PlacementAgent[] = []
  try {
    const hub = await ensureHub(nc, hubName, { partitions: 2 })
    await body(hub, async (options, kv = hub.metaKv) => {
      const agent = await PlacementAgent.start(kv, options)
      agents.push(agent)
      return agent
    })
  } finally {
    for (const agent of agents) agent.close()
    await closeConnection(nc)
  }
}

describe('placement agent', () => {
  it('takes the lease from a crashed leader although its own steps keep stalling', async () => {
    await withAgents('pl-stall', async (_hub, start) => {
      const a = await start(fastAgent('a'))
      await waitFor(() => a.isLeader, 'a takes the free lease')
      const b = await start(fastAgent('b'))
      await waitFor(() => b.leader === 'a', `b sees a lead (found ${b.leader})`)
      a.close() // a crash: a's node record and lease stay in the bucket
      // b's event loop now stalls for longer than two heartbeats before each of its steps; each
      // stall makes what it saw of others stale once, but must not keep a dead leader alive
      const deadline = Date.now() + 8000
      while (!b.isLeader && Date.now() < deadline) {
        const end = Date.now() + 250
        while (Date.now() < end) {
          // busy: nothing else runs
        }
        await new Promise((resolve) => setTimeout(resolve, 40))
      }
      expect(b.isLeader, `b leads after a crashed (leader seen: ${b.leader})`).toBe(true)
    })
  })

  it('takes the lease from a crashed leader although its watch missed the lease renewals', async () => {
    await withAgents('pl-stale', async (hub, start) => {
      const options = (nodeId: string): PlacementOptions => ({
        ...fastAgent(nodeId),
        readLatest: (key: string) => latestKvEntry(hub.jsm, hub.names.metaBucket, key),
      })
      const a = await start(options('a'))
      await waitFor(() => a.isLeader, 'a takes the free lease')
      // b's watch delivers the leader record once, then none of a's renewals: a view that is
      // behind, as a watch served by a lagging or diverged replica gives
      const b = await start(options('b'), blindToLeaderRenewals(hub.metaKv))
      await waitFor(() => b.leader === 'a', `b sees a lead (found ${b.leader})`)
      // while a lives and renews, b never takes the lease, whatever it tries
      await new Promise((resolve) => setTimeout(resolve, 1500))
      expect(b.isLeader, 'b leads while a is alive').toBe(false)
      a.close() // a crash: its lease record stays in the bucket
      await waitFor(
        () => b.isLeader,
        `b takes the lease of the crashed leader (leader seen: ${b.leader})`,
        8000,
      )
    })
  })
})

describe('a node joining after a crash', () => {
  it("counts the dead leader's lease from its last renewal, not from the join", async () => {
    await withAgents('pl-join', async (_hub, start) => {
      const LEASE = 4000
      const options = (nodeId: string): PlacementOptions => ({ ...fastAgent(nodeId), leaseMs: LEASE })
      const a = await start(options('a'))
      await waitFor(() => a.isLeader, 'a takes the free lease')
      a.close() // a crash: its node record and its lease stay in the bucket
      // the replacement starts once a's lease has run out by the server's clock
      await new Promise((resolve) => setTimeout(resolve, LEASE + 300))
      const joined = Date.now()
      const b = await start(options('b'))
      await waitFor(() => b.isLeader, `b takes the lease (leader seen: ${b.leader})`, 2 * LEASE)
      // dated from the join, a's records would keep the lease a whole lease longer
      expect(Date.now() - joined).toBeLessThan(LEASE)
      expect(b.live()).toEqual(['b'])
    })
  })

  it("keeps a live leader's lease: a joining node finds its renewal young", async () => {
    await withAgents('pl-join-live', async (_hub, start) => {
      const a = await start(fastAgent('a'))
      await waitFor(() => a.isLeader, 'a takes the free lease')
      await new Promise((resolve) => setTimeout(resolve, 1000))
      const b = await start(fastAgent('b'))
      await waitFor(() => b.leader === 'a', `b sees a lead (found ${b.leader})`)
      await new Promise((resolve) => setTimeout(resolve, 1000))
      expect([a.isLeader, b.isLeader]).toEqual([true, false])
      expect(b.live()).toEqual(['a', 'b'])
    })
  })
})

/** A KV whose watches pass the `leader` key's first entry only. */
function blindToLeaderRenewals(kv: KV): KV {
  return new Proxy(kv, {
    get(target, prop, receiver) {
      if (prop !== 'watch') return Reflect.get(target, prop, receiver) as unknown
      return async (opts: Parameters<KV['watch']>[0]) => {
        const inner = await target.watch(opts)
        let leaderSeen = false
        const outer = {
          stop: () => inner.stop(),
          async *[Symbol.asyncIterator]() {
            for await (const entry of inner) {
              if (entry.key === 'leader') {
                if (leaderSeen) continue
                leaderSeen = true
              }
              yield entry
            }
          },
        }
        return outer as unknown as Awaited<ReturnType<KV['watch']>>
      }
    },
  })
}

describe('node ids', () => {
  it('refuses an id a live node uses, and a malformed one', async () => {
    const options = {
      servers: nats.url,
      hub: 'pl-ids',
      registry: [Counter],
      partitions: 2,
      ...fast,
      logger: silentLogger,
    }
    const first = await Node.start({ ...options, nodeId: 'same' })
    await expect(Node.start({ ...options, nodeId: 'same' })).rejects.toThrow(
      /node id 'same' is in use by a live node/,
    )
    await expect(Node.start({ ...options, nodeId: 'has.dots' })).rejects.toThrow(/node id must match/)
    expect(first.partitions.size).toBe(2) // unharmed
    await first.stop()
    // after a graceful stop the id is free at once
    const again = await Node.start({ ...options, nodeId: 'same' })
    expect(again.partitions.size).toBe(2)
    await again.stop()
  })
})

describe('nodes in their own processes', () => {
  it('loses and duplicates nothing when one of three is SIGKILLed and a fourth joins mid-workload', async () => {
    const hub = 'pl-kill'
    const nodes = ['n1', 'n2', 'n3'].map((id) => startNode(hub, id, { partitions: 12 }))
    await Promise.all(nodes.map((n) => n.waitForLine(/^ready$/, 30_000)))
    await waitBalanced(hub, ['n1', 'n2', 'n3'])
    const client = await Client.connect({ servers: nats.url, hub, callTimeoutMs: 60_000 })
    const COUNTERS = 100
    const SIGNALS = 10_000
    const STARTS = 1000
    const cities = ['Tokyo', 'Seattle', 'London', 'Paris', 'Lima']
    let sent = 0
    let started = 0
    const sendSignals = async (upTo: number) => {
      for (; sent < upTo; sent += 500) {
        await Promise.all(
          Array.from({ length: 500 }, (_, i) =>
            client.entity(Counter, `c${(sent + i) % COUNTERS}`).signal.add(1),
          ),
        )
      }
    }
    const startSome = async (upTo: number) => {
      const from = started
      started = upTo
      await Promise.all(
        Array.from({ length: upTo - from }, (_, i) =>
          client.start(helloSequence, cities, { instanceId: `hs-${from + i}` }),
        ),
      )
    }
    await Promise.all([sendSignals(3500), startSome(333)])
    nodes[2]!.kill('SIGKILL') // mid-workload: signals and orchestrations in flight
    await Promise.all([sendSignals(7000), startSome(666)])
    await waitBalanced(hub, ['n1', 'n2'])
    const n4 = startNode(hub, 'n4')
    await Promise.all([sendSignals(SIGNALS), startSome(STARTS)])
    await n4.waitForLine(/^ready$/, 30_000)
    await waitBalanced(hub, ['n1', 'n2', 'n4'])

    const results = await Promise.all(
      Array.from({ length: STARTS }, (_, i) =>
        client.waitForCompletion<string[]>(`hs-${i}`, { timeoutMs: 120_000 }),
      ),
    )
    expect(results.filter((r) => r.status !== 'Completed').map((r) => r.id)).toEqual([])
    const expected = JSON.stringify(cities.map((c) => `Hello ${c}`))
    expect(results.filter((r) => JSON.stringify(r.output) !== expected).map((r) => r.id)).toEqual([])
    for (const i of [0, 1, 333, 334, 500, 666, 667, 999]) {
      const history = await client.getHistory(`hs-${i}`)
      const completed = history.filter((e) => e.e === 'completed').map((e) => (e as { seq: number }).seq)
      expect(completed.length, `completions in hs-${i}`).toBe(5)
      expect(new Set(completed).size, `distinct completions in hs-${i}`).toBe(5)
      expect(history.filter((e) => e.e === 'started').length).toBe(1)
    }
    const totals = await Promise.all(
      Array.from({ length: COUNTERS }, (_, i) => client.entity(Counter, `c${i}`).call.get()),
    )
    expect(totals).toEqual(totals.map(() => SIGNALS / COUNTERS))
    await client.close()
  }, 180_000)

  it('takes over from a node paused past its lease, fences its stale commits, and lets it rejoin', async () => {
    const hub = 'pl-stop'
    const a = startNode(hub, 'a', { partitions: 8 })
    await a.waitForLine(/^ready$/, 30_000)
    const b = startNode(hub, 'b')
    await b.waitForLine(/^ready$/, 30_000)
    await waitBalanced(hub, ['a', 'b'])
    const before = (await placementOf(hub)).assignments
    const client = await Client.connect({ servers: nats.url, hub, callTimeoutMs: 60_000 })
    const COUNTERS = 40
    let sent = 0
    let streaming = true
    const stream = (async () => {
      while (streaming) {
        await Promise.all(
          Array.from({ length: 200 }, (_, i) =>
            client.entity(Counter, `s${(sent + i) % COUNTERS}`).signal.add(1),
          ),
        )
        sent += 200
        await new Promise((r) => setTimeout(r, 20)) // a steady stream, not a flood
      }
    })()
    await new Promise((r) => setTimeout(r, 300))
    a.kill('SIGSTOP')
    await waitBalanced(hub, ['b'])
    a.kill('SIGCONT')
    await waitBalanced(hub, ['a', 'b'])
    streaming = false
    await stream
    // a noticed its stall (and, depending on what came first, its lapsed lease or a commit the log
    // rejected); what matters is below: every partition moved on and nothing was lost or doubled
    expect(
      a.lines.some((l) => /placement step late/.test(l)),
      a.lines.slice(-40).join('\n'),
    ).toBe(true)
    const after = (await placementOf(hub)).assignments
    // every partition a ran was moved (a newer epoch), and a runs a share again
    after.forEach((rec, p) => {
      if (before[p]!.node === 'a') expect(rec.epoch).toBeGreaterThan(before[p]!.epoch)
    })
    const totals = await Promise.all(
      Array.from({ length: COUNTERS }, (_, i) => client.entity(Counter, `s${i}`).call.get()),
    )
    expect(totals.reduce((x, y) => x + y, 0)).toBe(sent)
    expect(totals).toEqual(totals.map(() => sent / COUNTERS))
    await client.close()
  }, 120_000)

  it('scales to zero and back: timers and scheduled signals fire on the next node', async () => {
    const hub = 'pl-zero'
    const nodes = [startNode(hub, 'z1', { partitions: 4 }), startNode(hub, 'z2', { partitions: 4 })]
    await Promise.all(nodes.map((n) => n.waitForLine(/^ready$/, 30_000)))
    const client = await Client.connect({ servers: nats.url, hub })
    const due = Date.now() + 1500
    const id = await client.start(approval, 1500)
    await client.entity(Stamp, 'zero').signalAt(new Date(due)).stamp('scheduled')
    for (const n of nodes) n.kill('SIGTERM')
    expect(await Promise.all(nodes.map((n) => n.exited))).toEqual([0, 0])
    expect((await placementOf(hub)).nodes).toEqual([])
    await new Promise((r) => setTimeout(r, Math.max(0, due - Date.now() + 300)))
    const next = startNode(hub, 'z3')
    await next.waitForLine(/^ready$/, 30_000)
    const status = await client.waitForCompletion(id, { timeoutMs: 20_000 })
    expect(status.output).toBe('timed out')
    expect(status.completedAt!.getTime()).toBeGreaterThanOrEqual(due)
    await waitFor(
      async () => (await client.entity(Stamp, 'zero').call.stamps()).length === 1,
      'scheduled stamp',
    )
    const [[, at]] = (await client.entity(Stamp, 'zero').call.stamps()) as [[string, number]]
    expect(at).toBeGreaterThanOrEqual(due)
    await client.close()
  }, 60_000)

  it('runs activities on every node through the offload queue when one node is busier', async () => {
    const hub = 'pl-offload'
    // one partition: its owner is the busy node; the other node only helps through the work queue
    const options = { partitions: 1, activityConcurrency: 4, offloadThreshold: 4 }
    const nodes = [startNode(hub, 'o1', options), startNode(hub, 'o2', options)]
    await Promise.all(nodes.map((n) => n.waitForLine(/^ready$/, 30_000)))
    const client = await Client.connect({ servers: nats.url, hub })
    const id = await client.start(spread, { n: 80, ms: 20 })
    const status = await client.waitForCompletion<number[]>(id, { timeoutMs: 30_000 })
    expect(status.output).toHaveLength(80)
    expect(new Set(status.output).size).toBe(2) // both processes ran some
    expect(new Set(status.output)).toEqual(new Set(nodes.map((n) => n.pid)))
    await client.close()
  }, 60_000)
})

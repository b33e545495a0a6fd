/**
 * Crash recovery: a node in a child process is SIGKILLed while signals stream in; a new node
 * recovers from checkpoint + log + mailbox. Every signal whose promise resolved must be applied
 * exactly once — the totals are exact.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Client } from '../../runtime/index.ts'
import { Counter, Stamp } from '../fixtures/entities.ts'
import { approval, helloSequence } from '../fixtures/workflows.ts'
import { spawnTs, useNatsServer, waitFor, type SpawnedTs } from '../tooling/harness.ts'

const nats = useNatsServer()

function startNode(hub: string, options: Record<string, unknown> = {}): SpawnedTs {
  // short leases: a restarted node takes over from the killed one within about a second
  const placement = { heartbeatMs: 250, leaseMs: 1000 }
  return spawnTs('test/fixtures/node-process.ts', [
    nats.url,
    hub,
    JSON.stringify({ ...placement, ...options }),
  ])
}

describe('crash recovery', () => {
  let client: Client
  let node: SpawnedTs
  const hub = 'crash'
  const ENTITIES = 120
  const SIGNALS = 12_000

  beforeAll(async () => {
    // small snapshot thresholds so recovery exercises checkpoint + log replay + mailbox tail
    node = startNode(hub, { partitions: 8, snapshotRecords: 50, snapshotIntervalMs: 300 })
    await node.waitForLine(/^ready$/, 30_000)
    client = await Client.connect({ servers: nats.url, hub })
  })
  afterAll(async () => {
    await client?.close()
    node?.kill('SIGKILL')
  })

  it('applies every acknowledged signal exactly once across two SIGKILLs', async () => {
    const expected = new Array<number>(ENTITIES).fill(0)
    let resolved = 0
    const sendWave = async (from: number, to: number) => {
      const wave: Promise<void>[] = []
      for (let i = from; i < to; i++) {
        const e = i % ENTITIES
        const amount = (i % 5) + 1
        wave.push(
          client
            .entity(Counter, `acct-${e}`)
            .signal.add(amount)
            .then(() => {
              expected[e]! += amount
              resolved++
            }),
        )
        if (wave.length >= 500) await Promise.all(wave.splice(0))
      }
      await Promise.all(wave)
    }
    const killAt = [SIGNALS / 3, (2 * SIGNALS) / 3]
    let sent = 0
    for (const at of killAt) {
      await sendWave(sent, at - 500)
      // kill while the last part of the wave is in flight and being processed
      const tail = sendWave(at - 500, at)
      await new Promise((r) => setTimeout(r, 5))
      node.kill('SIGKILL')
      await node.exited
      await tail
      sent = at
      node = startNode(hub)
      await node.waitForLine(/^ready$/, 30_000)
    }
    await sendWave(sent, SIGNALS)
    expect(resolved).toBe(SIGNALS)
    let actual: number[] = []
    await waitFor(
      async () => {
        actual = await Promise.all(expected.map((_, e) => client.entity(Counter, `acct-${e}`).call.get()))
        return actual.every((v, e) => v === expected[e])
      },
      `all ${SIGNALS} signals applied`,
      30_000,
    ).catch(() => {})
    expect(actual).toEqual(expected)
    // and nothing more arrives later (no duplicates applied after the fact)
    await new Promise((r) => setTimeout(r, 500))
    const again = await Promise.all(expected.map((_, e) => client.entity(Counter, `acct-${e}`).call.get()))
    expect(again).toEqual(expected)
  })

  it('fires scheduled signals once and never early across a restart', async () => {
    const due = Date.now() + 1500
    await client.entity(Stamp, 'sched').signalAt(due).stamp('scheduled')
    await client.entity(Stamp, 'sched').signal.stamp('now')
    await waitFor(
      async () => (await client.entity(Stamp, 'sched').call.stamps()).length === 1,
      'immediate stamp',
    )
    node.kill('SIGKILL')
    await node.exited
    await new Promise((r) => setTimeout(r, Math.max(0, due - Date.now() + 200)))
    node = startNode(hub)
    await node.waitForLine(/^ready$/, 30_000)
    await waitFor(
      async () => (await client.entity(Stamp, 'sched').call.stamps()).length >= 2,
      'scheduled stamp',
      15_000,
    )
    await new Promise((r) => setTimeout(r, 300))
    const stamps = await client.entity(Stamp, 'sched').call.stamps()
    expect(stamps.map(([label]) => label)).toEqual(['now', 'scheduled'])
    expect(stamps[1]![1]).toBeGreaterThanOrEqual(due)
  })

  it('fires a scheduled signal on time while the node keeps running', async () => {
    const due = Date.now() + 400
    await client.entity(Stamp, 'sched2').signalAt(new Date(due)).stamp('later')
    await waitFor(
      async () => (await client.entity(Stamp, 'sched2').call.stamps()).length === 1,
      'timer',
      10_000,
    )
    const [[, at]] = (await client.entity(Stamp, 'sched2').call.stamps()) as [[string, number]]
    expect(at).toBeGreaterThanOrEqual(due)
    expect(at).toBeLessThan(due + 2000)
  })
})

describe('orchestration crash recovery', () => {
  it('completes 1,000 hello-sequences exactly once across two SIGKILLs', async () => {
    const hub = 'crash-orch'
    let node = startNode(hub, { partitions: 8, snapshotRecords: 50, snapshotIntervalMs: 300 })
    await node.waitForLine(/^ready$/, 30_000)
    const client = await Client.connect({ servers: nats.url, hub, callTimeoutMs: 60_000 })
    const N = 1000
    const cities = ['Tokyo', 'Seattle', 'London', 'Paris', 'Lima']
    const ids: string[] = []
    const startBatch = async (from: number, to: number) => {
      const batch = await Promise.all(
        Array.from({ length: to - from }, (_, i) =>
          client.start(helloSequence, cities, { instanceId: `hello-${from + i}` }),
        ),
      )
      ids.push(...batch)
    }
    for (const at of [N / 3, (2 * N) / 3]) {
      await startBatch(ids.length, at)
      await new Promise((r) => setTimeout(r, 30))
      node.kill('SIGKILL')
      await node.exited
      node = startNode(hub)
      await node.waitForLine(/^ready$/, 30_000)
    }
    await startBatch(ids.length, N)
    const results = await Promise.all(
      ids.map((id) => client.waitForCompletion<string[]>(id, { timeoutMs: 120_000 })),
    )
    const expected = cities.map((c) => `Hello ${c}`)
    expect(results.filter((r) => r.status !== 'Completed').map((r) => r.id)).toEqual([])
    expect(results.every((r) => JSON.stringify(r.output) === JSON.stringify(expected))).toBe(true)
    // each activity result appears exactly once in each history
    for (const id of ids.slice(0, 100).concat(ids.slice(-100))) {
      const history = await client.getHistory(id)
      const completed = history.filter((e) => e.e === 'completed').map((e) => (e as { seq: number }).seq)
      expect(new Set(completed).size, `history of ${id}`).toBe(completed.length)
      expect(completed.length, `completions in ${id}`).toBe(5)
    }
    // a durable orchestration timer fires once, not early, across a SIGKILL
    const due = Date.now() + 1500
    const timed = await client.start(approval, 1500)
    node.kill('SIGKILL')
    await node.exited
    await new Promise((r) => setTimeout(r, Math.max(0, due - Date.now() + 200)))
    node = startNode(hub)
    await node.waitForLine(/^ready$/, 30_000)
    const status = await client.waitForCompletion(timed, { timeoutMs: 20_000 })
    expect(status.output).toBe('timed out')
    expect(status.completedAt!.getTime()).toBeGreaterThanOrEqual(due)
    const fired = (await client.getHistory(timed)).filter((e) => e.e === 'completed' || e.e === 'timerFired')
    expect(fired.length).toBe(1)
    await client.close()
    node.kill('SIGKILL')
  }, 240_000)
})

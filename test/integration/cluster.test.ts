/**
 * A hub on a 3-server NATS cluster with replicated (R3) streams and buckets: one server is
 * SIGKILLed in the middle of a workload and later restarted. No accepted signal or orchestration
 * is lost or applied twice.
 */
import { afterEach, describe, expect, it } from 'vitest'
import { Client } from '../../runtime/index.ts'
import { connectTo, closeConnection } from '../../runtime/nats/connect.ts'
import { openHub } from '../../runtime/nats/hub.ts'
import { Counter } from '../fixtures/entities.ts'
import { helloSequence } from '../fixtures/workflows.ts'
import { spawnTs, useNatsCluster, waitFor, type SpawnedTs } from '../tooling/harness.ts'

const nats = useNatsCluster(3)
const children: SpawnedTs[] = []
afterEach(() => {
  for (const c of children.splice(0)) c.kill('SIGKILL')
})

describe('three-server NATS cluster', () => {
  it('keeps every accepted signal and orchestration when a server is SIGKILLed and restarted', async () => {
    const hub = 'r3'
    // if it hangs, show what the nodes said
    const dump = setTimeout(() => {
      for (const c of children) process.stderr.write(`--- node ${c.pid}\n${c.lines.slice(-80).join('\n')}\n`)
    }, 75_000)
    const servers = nats.urls.join(',')
    const options = { partitions: 6, replicas: 3, heartbeatMs: 250, leaseMs: 1500 }
    for (const id of ['c1', 'c2']) {
      children.push(
        spawnTs('test/fixtures/node-process.ts', [servers, hub, JSON.stringify({ ...options, nodeId: id })]),
      )
    }
    await Promise.all(children.map((c) => c.waitForLine(/^ready$/, 60_000)))

    const nc = await connectTo(nats.urls, 'inspector')
    const opened = await openHub(nc, hub)
    expect(opened.meta.replicas).toBe(3)
    const info = await opened.jsm.streams.info(opened.names.mailboxStream)
    expect(info.config.num_replicas).toBe(3)
    await closeConnection(nc)

    // The client talks to the server about to die: it must reconnect to another (learnt from the
    // cluster) and still get every reply, including those published while it was away.
    const victim = nats.servers[1]!
    const client = await Client.connect({ servers: nats.urls[1]!, hub, callTimeoutMs: 150_000 })
    const COUNTERS = 50
    const cities = ['Oslo', 'Lima', 'Pune']
    let sent = 0
    let started = 0
    const accepted: Array<Promise<string>> = []
    // Signals are accepted once JetStream stored them (their promise resolved); starts are
    // awaited at the end, since a start answers only after its commit.
    const wave = async (signals: number, starts: number) => {
      for (let i = 0; i < starts; i++) {
        accepted.push(client.start(helloSequence, cities, { instanceId: `r3-${started++}` }))
      }
      await Promise.all(
        Array.from({ length: signals }, (_, i) =>
          client.entity(Counter, `r${(sent + i) % COUNTERS}`).signal.add(1),
        ),
      )
      sent += signals
    }
    await wave(2000, 100)
    await victim.stop('SIGKILL')
    await wave(2000, 100) // while a server is down: publishes retry until a stream leader answers
    await new Promise((r) => setTimeout(r, 3000))
    await wave(1000, 100)
    await victim.restart()
    await wave(1000, 100)
    expect(await Promise.all(accepted)).toHaveLength(started)
    clearTimeout(dump)

    const results = await Promise.all(
      Array.from({ length: started }, (_, i) =>
        client.waitForCompletion<string[]>(`r3-${i}`, { timeoutMs: 120_000 }),
      ),
    )
    expect(results.filter((r) => r.status !== 'Completed').map((r) => r.id)).toEqual([])
    const expected = JSON.stringify(cities.map((c) => `Hello ${c}`))
    expect(results.filter((r) => JSON.stringify(r.output) !== expected).map((r) => r.id)).toEqual([])
    for (const i of [0, 150, 250, 399]) {
      const completed = (await client.getHistory(`r3-${i}`)).filter((e) => e.e === 'completed')
      expect(completed.length, `completions in r3-${i}`).toBe(3)
    }
    await waitFor(
      async () => {
        const totals = await Promise.all(
          Array.from({ length: COUNTERS }, (_, i) => client.entity(Counter, `r${i}`).call.get()),
        )
        return totals.every((t) => t === sent / COUNTERS)
      },
      'exact totals',
      60_000,
    )
    const totals = await Promise.all(
      Array.from({ length: COUNTERS }, (_, i) => client.entity(Counter, `r${i}`).call.get()),
    )
    expect(totals).toEqual(totals.map(() => sent / COUNTERS))
    await client.close()
  }, 300_000)
})

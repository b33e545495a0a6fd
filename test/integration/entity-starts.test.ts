/**
 * Orchestrations started by entity operations (`this.startOrchestration`) on a real nats-server:
 * one instance per operation that succeeded, none for one that threw, under the id the operation
 * returned or was given, an id that is taken left to its instance — and exactly once when the node
 * is killed while operations start instances. Each instance reports back to the entity that started
 * it (test/fixtures/starters.ts), so an instance started twice or never shows in the entity's state.
 */
import { describe, expect, it } from 'vitest'
import { Client, RemoteError } from '../../runtime/index.ts'
import { Starter, registry, type Starts } from '../fixtures/starters.ts'
import { spawnTs, useHub, useNatsServer, waitFor, type SpawnedTs } from '../tooling/harness.ts'

const nats = useNatsServer()
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
const sorted = (ids: string[]) => [...ids].sort()

/**
 * The entity's starts once `reports` instances (default: as many as it started) have reported,
 * and a while later (so that a late report shows).
 */
async function settled(client: Client, key: string, reports?: number, timeoutMs = 10_000): Promise<Starts> {
  const starter = client.entity(Starter, key)
  await waitFor(
    async () => {
      const { started, reported } = await starter.call.starts()
      return reported.length >= (reports ?? started.length)
    },
    `the instances ${key} started reported`,
    timeoutMs,
  )
  await sleep(300)
  return starter.call.starts()
}

describe('orchestrations started by entities', () => {
  const stack = useHub(nats, { hub: 'entity-starts', registry, partitions: 4 })

  it('starts one instance per operation, under the id the operation returned, which runs once', async () => {
    const { client } = stack
    const keys = Array.from({ length: 10 }, (_, k) => `s-${k}`)
    const runs = keys.flatMap((key, k) => [0, 1, 2].map((j) => ({ key, n: k * 10 + j })))
    const ids = await Promise.all(runs.map(({ key, n }) => client.entity(Starter, key).call.kickOff(n)))
    expect(new Set(ids).size).toBe(runs.length)
    const done = await Promise.all(ids.map((id) => client.waitForCompletion<number>(id)))
    expect(done.map((s) => [s.name, s.status, s.input, s.output])).toEqual(
      runs.map((run) => ['reportBack', 'Completed', run, run.n * 2]),
    )
    const states = await Promise.all(keys.map((key) => settled(client, key)))
    for (const [k, { started, reported }] of states.entries()) {
      const mine = ids.filter((_, i) => runs[i]!.key === keys[k])
      expect(sorted(started)).toEqual(sorted(mine))
      expect(sorted(reported)).toEqual(sorted(mine))
    }
  })

  it('starts nothing for an operation that throws', async () => {
    const { client } = stack
    const starter = client.entity(Starter, 'thrower')
    const err = await starter.call.kickOffAndFail(1, 'thrown!1').catch((e: unknown) => e)
    expect(err).toBeInstanceOf(RemoteError)
    expect((err as RemoteError).remoteName).toBe('RangeError')
    await starter.signal.kickOffAndFail(2) // under a new id: only the entity would hear of it
    // from the same entity to the same partition (`!1`): a start sent before would run before this one
    expect(await starter.call.kickOff(3, 'after!1')).toBe('after!1')
    expect((await client.waitForCompletion<number>('after!1')).output).toBe(6)
    expect(await client.getStatus('thrown!1')).toBeUndefined()
    expect(await settled(client, 'thrower')).toEqual({ started: ['after!1'], reported: ['after!1'] })
  })

  it('starts from an asynchronous operation before it resolves', async () => {
    const { client } = stack
    const id = await client.entity(Starter, 'async').call.kickOffLater(4)
    expect((await client.waitForCompletion<number>(id)).output).toBe(8)
    expect(await settled(client, 'async')).toEqual({ started: [id], reported: [id] })
  })

  it('uses the instance id given, and leaves an instance whose id is taken alone', async () => {
    const { client } = stack
    expect(await client.entity(Starter, 'first').call.kickOff(5, 'given!2')).toBe('given!2')
    expect((await client.waitForCompletion<number>('given!2')).output).toBe(10)
    // the operation succeeds; its start is refused where the instance lives, as an orchestration's is
    const second = client.entity(Starter, 'second')
    expect(await second.call.kickOff(7, 'given!2')).toBe('given!2')
    // sent after the refused start, to the same partition (`!2`): it runs after the refusal
    await second.call.kickOff(8, 'marker!2')
    expect((await client.waitForCompletion<number>('marker!2')).output).toBe(16)
    const kept = await client.getStatus('given!2')
    expect([kept?.status, kept?.input, kept?.output]).toEqual(['Completed', { key: 'first', n: 5 }, 10])
    expect((await settled(client, 'first')).reported).toEqual(['given!2'])
    expect(await settled(client, 'second', 1)).toEqual({
      started: ['given!2', 'marker!2'],
      reported: ['marker!2'],
    })
  })
})

describe('orchestrations started by entities across a crash', () => {
  function startNode(hub: string, options: Record<string, unknown> = {}): SpawnedTs {
    return spawnTs('test/fixtures/node-process.ts', [
      nats.url,
      hub,
      // short leases: a restarted node takes over from the killed one within about a second
      JSON.stringify({
        heartbeatMs: 250,
        leaseMs: 1000,
        registryModule: 'test/fixtures/starters.ts',
        workers: 1,
        ...options,
      }),
    ])
  }

  it('starts each instance exactly once when the node is killed while operations start them', async () => {
    const hub = 'entity-starts-crash'
    // small snapshot thresholds: recovery replays records after a checkpoint
    let node = startNode(hub, { partitions: 8, snapshotRecords: 50, snapshotIntervalMs: 300 })
    await node.waitForLine(/^ready$/, 30_000)
    const client = await Client.connect({ servers: nats.url, hub, callTimeoutMs: 60_000 })
    try {
      const ENTITIES = 20
      const OPS = 600
      const acked = new Array<number>(ENTITIES).fill(0)
      const kickOffs = async (from: number, to: number) => {
        const wave: Promise<void>[] = []
        for (let i = from; i < to; i++) {
          const e = i % ENTITIES
          wave.push(
            client
              .entity(Starter, `c-${e}`)
              .signal.kickOff(i)
              .then(() => void acked[e]!++),
          )
          if (wave.length >= 100) await Promise.all(wave.splice(0))
        }
        await Promise.all(wave)
      }
      await kickOffs(0, OPS / 2 - 100)
      // kill while the last kick-offs of the half are in flight and starting instances
      const tail = kickOffs(OPS / 2 - 100, OPS / 2)
      await sleep(20)
      node.kill('SIGKILL')
      await node.exited
      node = startNode(hub)
      await node.waitForLine(/^ready$/, 30_000)
      await tail
      await kickOffs(OPS / 2, OPS)
      expect(acked.reduce((a, b) => a + b, 0)).toBe(OPS)
      const keys = acked.map((_, e) => `c-${e}`)
      const states = await Promise.all(keys.map((key) => settled(client, key, undefined, 30_000)))
      for (const [e, { started, reported }] of states.entries()) {
        expect(started).toHaveLength(acked[e]!)
        expect(new Set(started).size).toBe(started.length)
        // every instance ran once: it reported once, none reported twice or never
        expect(sorted(reported)).toEqual(sorted(started))
      }
    } finally {
      await client.close()
      node.kill('SIGKILL')
    }
  })
})

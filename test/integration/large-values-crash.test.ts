/**
 * Large values across a crash: a node in a child process is SIGKILLed while instances with large
 * inputs, activity results and outputs (all by reference) are in flight, and while signals stream
 * in; a new node recovers. Every instance completes with exactly the right output (so no record
 * references a blob that was not stored), and every acknowledged signal is applied exactly once.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Client } from '../../runtime/index.ts'
import { Counter } from '../fixtures/entities.ts'
import { largeRoundTrip } from '../fixtures/workflows.ts'
import { spawnTs, useNatsServer, waitFor, type SpawnedTs } from '../tooling/harness.ts'

const nats = useNatsServer()
const HUB = 'large-crash'

function startNode(): SpawnedTs {
  return spawnTs('test/fixtures/node-process.ts', [
    nats.url,
    HUB,
    JSON.stringify({
      partitions: 4,
      heartbeatMs: 250,
      leaseMs: 1000,
      snapshotRecords: 20,
      snapshotIntervalMs: 300,
    }),
  ])
}

describe('large values across a SIGKILL', () => {
  let client: Client
  let node: SpawnedTs

  beforeAll(async () => {
    node = startNode()
    await node.waitForLine(/^ready$/, 30_000)
    client = await Client.connect({ servers: nats.url, hub: HUB })
  })
  afterAll(async () => {
    await client?.close()
    node?.kill('SIGKILL')
  })

  it('completes every instance with its exact large output and applies every signal once', async () => {
    const INSTANCES = 12
    const SIZE = 300_000
    const ids: string[] = []
    let signals = 0
    const starts: Array<Promise<void>> = []
    for (let i = 0; i < INSTANCES; i++) {
      const c = String.fromCharCode(97 + i)
      starts.push(
        client.start(largeRoundTrip, { text: c.repeat(SIZE) }, { instanceId: `big-${i}` }).then((id) => {
          ids.push(id)
        }),
      )
      await client.entity(Counter, 'beside').signal.add(1)
      signals++
      if (i === INSTANCES / 2) {
        // kill while the first half is running (blobs being written, records in flight)
        node.kill('SIGKILL')
        await node.exited
        node = startNode()
      }
    }
    await node.waitForLine(/^ready$/, 30_000)
    await Promise.all(starts)
    for (let i = 0; i < INSTANCES; i++) {
      const id = `big-${i}`
      const c = String.fromCharCode(97 + i)
      const done = await client.waitForCompletion<{ text: string; made: number }>(id, { timeoutMs: 60_000 })
      expect(done.status, `instance ${id}: ${JSON.stringify(done.error)}`).toBe('Completed')
      expect(done.output?.made, `activity result of ${id}`).toBe(SIZE)
      expect(done.output?.text === c.repeat(2 * SIZE), `output of ${id} is its input twice`).toBe(true)
    }
    await waitFor(
      async () => (await client.entity(Counter, 'beside').call.get()) === signals,
      `counter 'beside' to reach ${signals} acknowledged signals`,
      20_000,
    )
    expect(await client.entity(Counter, 'beside').call.get(), "counter 'beside'").toBe(signals)
    expect(ids.length).toBe(INSTANCES)
  }, 120_000)
})

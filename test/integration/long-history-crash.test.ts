/**
 * A fan-out whose activity outcomes outgrow one commit record, with the node SIGKILLed midway:
 * the outcomes a record left out (runtime/partition/cursor.ts, `recreatable`) come back because
 * their activities run again after recovery, so the instance completes with every result, each
 * for its own task.
 */
import { describe, expect, it } from 'vitest'
import { Client } from '../../runtime/index.ts'
import { kiloFanOut } from '../fixtures/workflows.ts'
import { spawnTs, useNatsServer, type SpawnedTs } from '../tooling/harness.ts'

const nats = useNatsServer()

function startNode(hub: string): SpawnedTs {
  return spawnTs('test/fixtures/node-process.ts', [
    nats.url,
    hub,
    JSON.stringify({ partitions: 2, heartbeatMs: 250, leaseMs: 1000 }),
  ])
}

describe('a fan-out whose outcomes outgrow a record, across a SIGKILL', () => {
  it('completes with every result once the node is back', async () => {
    const hub = 'fan-crash'
    let node = startNode(hub)
    await node.waitForLine(/^ready$/, 30_000)
    const client = await Client.connect({ servers: nats.url, hub })
    try {
      const id = await client.start(kiloFanOut, 2000)
      await new Promise((resolve) => setTimeout(resolve, 300))
      expect((await client.getStatus(id))?.status, 'still running when killed').toBe('Running')
      node.kill('SIGKILL')
      await node.exited
      node = startNode(hub)
      await node.waitForLine(/^ready$/, 30_000)
      const done = await client.waitForCompletion(id, { timeoutMs: 60_000 })
      expect(done.status, done.error?.message).toBe('Completed')
      expect(done.output, 'results back whole, each for its own task').toBe(2000)
      expect(node.lines.filter((l) => /partition failed/.test(l))).toEqual([])
    } finally {
      await client.close()
      node.kill('SIGKILL')
    }
  }, 120_000)
})

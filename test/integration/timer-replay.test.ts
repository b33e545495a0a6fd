/**
 * A scheduled signal that both the state bucket and the log tail hold fires once. A snapshot
 * writes its items before it moves the checkpoint: after a crash in between, recovery loads the
 * timer from the bucket and then replays the record that set it. This test makes that state by
 * hand — the node stops without a snapshot, and the test writes the timer item as the snapshot
 * would have — so it does not depend on when a kill lands.
 */
import { describe, expect, it } from 'vitest'
import { Client, Node, silentLogger } from '../../runtime/index.ts'
import { closeConnection, connectTo } from '../../runtime/nats/connect.ts'
import { ensureHub } from '../../runtime/nats/hub.ts'
import { PartitionStorage } from '../../runtime/nats/storage.ts'
import { Stamp } from '../fixtures/entities.ts'
import { useNatsServer, waitFor } from '../tooling/harness.ts'

const nats = useNatsServer()

describe('a timer stored by a snapshot whose checkpoint did not move', () => {
  it('fires its scheduled signal once after recovery', async () => {
    const hub = 'timer-replay'
    // no snapshot runs on its own: the timer is in the log only, until the test stores it
    const options = {
      servers: nats.url,
      hub,
      registry: [Stamp],
      partitions: 1,
      placement: 'static' as const,
      snapshotRecords: 1_000_000,
      snapshotIntervalMs: 3_600_000,
      logger: silentLogger,
    }
    const node = await Node.start(options)
    const client = await Client.connect({ servers: nats.url, hub })
    const due = Date.now() + 2_000
    await client.entity(Stamp, 'once').signalAt(due).stamp('scheduled')
    await waitFor(async () => (await client.scheduledSignals(Stamp, 'once')).length === 1, 'timer committed')
    await node.stop()

    // what the snapshot would have written before the crash: the timer item, in the setter's epoch
    const nc = await connectTo(nats.url, 'test')
    const storage = new PartitionStorage(nc, await ensureHub(nc, hub), 0)
    const timers = (await storage.logAfter(0)).flatMap(({ rec }) =>
      rec.w
        .filter(([key, value]) => key.startsWith('t.0.') && value !== null)
        .map((w) => [rec.e, w] as const),
    )
    expect(timers).toHaveLength(1)
    const [[epoch, [key, value]]] = timers as [(typeof timers)[0]]
    await storage.writeItem(key, value, 0, epoch)
    await closeConnection(nc)

    const recovered = await Node.start(options)
    await waitFor(
      async () => (await client.entity(Stamp, 'once').call.stamps()).length > 0,
      'timer fired',
      10_000,
    )
    await new Promise((r) => setTimeout(r, 500)) // a second firing would follow at once
    const stamps = await client.entity(Stamp, 'once').call.stamps()
    expect(stamps.map(([label]) => label)).toEqual(['scheduled'])
    expect(await client.scheduledSignals(Stamp, 'once')).toEqual([])
    await client.close()
    await recovered.stop()
  })
})

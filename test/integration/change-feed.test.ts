/**
 * Change messages go out only while someone may watch: a partition with no watcher stops
 * publishing them after a probe, and a watcher that arrives later still sees every change.
 */
import { describe, expect, it } from 'vitest'
import { closeConnection, connectTo } from '../../runtime/nats/connect.ts'
import { ChangeFeed } from '../../runtime/partition/change-feed.ts'
import { Counter } from '../fixtures/entities.ts'
import { useHub, useNatsServer, waitFor } from '../tooling/harness.ts'

const nats = useNatsServer()

describe('ChangeFeed', () => {
  it('stops publishing when nobody subscribes, and starts again when a watcher joins', async () => {
    const nc = await connectTo(nats.url, 'feed-test')
    try {
      const feed = new ChangeFeed(nc, 'probe.chg.0', 0)
      const bytes = new Uint8Array([1])
      feed.publish(bytes) // publishes, then asks: no responders
      await waitFor(() => !feed.publishing, 'feed off with nobody listening', 5_000)

      const got: number[] = []
      const sub = nc.subscribe('probe.chg.0', { callback: (_, msg) => void got.push(msg.data.length) })
      await nc.flush()
      feed.watcherJoined()
      feed.publish(bytes) // asks again: someone subscribes, so no answer and the feed stays on
      await new Promise((r) => setTimeout(r, 1_300))
      expect(feed.publishing).toBe(true)
      feed.publish(bytes)
      await nc.flush()
      await waitFor(() => got.filter((n) => n === 1).length === 2, 'both changes delivered', 2_000)
      sub.unsubscribe()
    } finally {
      await closeConnection(nc)
    }
  })

  it('ignores a probe answered by nobody once a watcher joined meanwhile', async () => {
    const nc = await connectTo(nats.url, 'feed-race')
    try {
      const feed = new ChangeFeed(nc, 'probe.chg.1', 0)
      feed.publish(new Uint8Array([1])) // probe on its way
      feed.watcherJoined() // before its answer arrives
      await new Promise((r) => setTimeout(r, 200))
      expect(feed.publishing).toBe(true)
    } finally {
      await closeConnection(nc)
    }
  })
})

describe('change messages of a partition', () => {
  const stack = useHub(nats, { hub: 'feed', registry: [Counter], partitions: 1 })

  it('are not published while nobody watches; a later watcher sees every change', async () => {
    const c = stack.client.entity(Counter, 'quiet')
    await c.signal.add(1)
    expect(await c.call.get()).toBe(1) // published: a new owner assumes someone watches
    await new Promise((r) => setTimeout(r, 2_100))
    await c.signal.add(1) // published, and the probe finds nobody
    await waitFor(async () => {
      const before = stack.node.stats().changes
      await c.signal.add(1)
      await c.call.get()
      return stack.node.stats().changes === before
    }, 'change messages stop')

    const total = await c.call.get()
    const values: Array<number | undefined> = []
    const watch = stack.client.watchEntity(Counter, 'quiet').subscribe((v) => values.push(v))
    await waitFor(() => values.length === 1, 'first value')
    for (let i = 0; i < 5; i++) {
      await c.signal.add(1)
      await c.call.get() // a record boundary: watchers see committed states, not every step
    }
    await waitFor(() => values.length === 6, 'five changes')
    watch.unsubscribe()
    expect(values).toEqual([total, total + 1, total + 2, total + 3, total + 4, total + 5])
  })
})

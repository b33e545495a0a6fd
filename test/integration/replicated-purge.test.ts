/**
 * Purges of replicated streams, on a real 3-server cluster. Before nats-server 2.9.18 a member
 * killed while a purge is still in its Raft log replays it on restart as a purge of every message
 * up to the stream's end at the time, whatever the purge's subject or sequence (nats-server issue
 * 4196): the first test shows what the server here does, the others that Basalt does not lose
 * acknowledged data to it. Blob deletions remove messages one by one, and a replicated hub's
 * streams are not cut, however often a node is asked to cut them.
 */
import { jetstream, jetstreamManager, type JetStreamManager } from '@nats-io/jetstream'
import type { NatsConnection } from '@nats-io/transport-node'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Client, Node } from '../../runtime/index.ts'
import type { BlobRef } from '../../runtime/nats/blob-ref.ts'
import { BlobStore } from '../../runtime/nats/blobs.ts'
import { closeConnection, connectTo } from '../../runtime/nats/connect.ts'
import { encode } from '../../runtime/nats/codec.ts'
import { ensureHub, purgesReplaySafely } from '../../runtime/nats/hub.ts'
import { Counter } from '../fixtures/entities.ts'
import { useNatsCluster, waitFor } from '../tooling/harness.ts'

const nats = useNatsCluster(3)
let nc: NatsConnection
let jsm: JetStreamManager
let safe: boolean

beforeAll(async () => {
  nc = await connectTo(nats.urls, 'replicated-purge')
  jsm = await jetstreamManager(nc)
  safe = purgesReplaySafely(nc.info?.version)
})
afterAll(async () => {
  if (nc !== undefined) await closeConnection(nc)
})

/**
 * SIGKILLs a member that follows `stream`, starts it again, waits until it is current, and then
 * asks the leader to step down until that member leads: what the stream serves is then its copy.
 */
async function crashAFollowerAndLetItLead(stream: string): Promise<void> {
  const before = await jsm.streams.info(stream)
  const member = before.cluster?.replicas?.[0]?.name
  if (member === undefined) throw new Error(`${stream} has no follower`)
  const server = nats.servers[Number(member.split('-').pop()) - 1]!
  await server.stop('SIGKILL')
  await server.restart()
  await waitFor(
    async () => {
      const info = await jsm.streams.info(stream)
      return info.cluster?.replicas?.some((r) => r.name === member && r.current) === true
    },
    `${member} current again on ${stream}`,
    30_000,
  )
  await waitFor(
    async () => {
      const info = await jsm.streams.info(stream)
      if (info.cluster?.leader === member) return true
      await nc
        .request(`$JS.API.STREAM.LEADER.STEPDOWN.${stream}`, undefined, { timeout: 5_000 })
        .catch(() => {})
      await new Promise((r) => setTimeout(r, 500))
      return false
    },
    `${member} leading ${stream}`,
    60_000,
  )
}

describe('purges of replicated streams', () => {
  it('are replayed by a member killed after them as a purge up to the end, before nats-server 2.9.18', async () => {
    await jsm.streams.add({ name: 'PURGE_FACT', subjects: ['pf.>'], num_replicas: 3 })
    const js = jetstream(nc)
    for (let i = 1; i <= 100; i++) await js.publish(`pf.${i % 4}`, 'x')
    await jsm.streams.purge('PURGE_FACT', { seq: 51 }) // keeps 51..100
    for (let i = 101; i <= 150; i++) await js.publish(`pf.${i % 4}`, 'x')
    await crashAFollowerAndLetItLead('PURGE_FACT')
    const { state } = await jsm.streams.info('PURGE_FACT')
    // the replay dropped 51..100 from the killed member's copy: acknowledged, then lost
    if (safe) expect([state.first_seq, state.messages]).toEqual([51, 100])
    else expect([state.first_seq, state.messages]).toEqual([101, 50])
  }, 120_000)

  it("deleting a large value keeps every other value's chunks when a member is killed after it", async () => {
    const hub = await ensureHub(nc, 'r3-blobs', { partitions: 1, replicas: 3 })
    const store = new BlobStore(nc, hub.jsm, hub.names, { threshold: 1024, ceiling: 8 * 1024 * 1024 })
    const put = async (fill: string): Promise<BlobRef> => {
      const { ref, written } = store.put(encode(fill.repeat(600_000)), () => fill)
      await written
      return ref
    }
    const kept = await put('k')
    const dropped = await put('d')
    await store.delete([dropped])
    const later = await put('l') // (a member applies the deletion once it hears of later writes)
    await expect(new BlobStore(nc, hub.jsm, hub.names, store.limits).load(dropped)).rejects.toThrow(
      /is missing chunk \d/,
    )
    await crashAFollowerAndLetItLead(hub.names.blobStream)
    // asked of the leader, the member killed (direct gets may reach another replica)
    const chunksLeft = async (ref: BlobRef) => {
      let left = 0
      for (let k = 0; k < ref.chunks; k++) {
        const subject = hub.names.blob(ref.id, String(k))
        if ((await jsm.streams.getMessage(hub.names.blobStream, { last_by_subj: subject })) !== null) left++
      }
      return left
    }
    expect([await chunksLeft(kept), await chunksLeft(later), await chunksLeft(dropped)]).toEqual([
      kept.chunks,
      later.chunks,
      0,
    ])
    const fresh = new BlobStore(nc, hub.jsm, hub.names, store.limits)
    expect(await fresh.load(kept)).toBe('k'.repeat(600_000))
    expect(await fresh.load(later)).toBe('l'.repeat(600_000))
  }, 120_000)

  it('a replicated hub is not cut when a node asks for cuts on a server that replays purges wrongly', async () => {
    const warnings: string[] = []
    const logger = { info: () => {}, warn: (m: string) => warnings.push(m), error: () => {} }
    const options = { servers: nats.urls, hub: 'r3-uncut', partitions: 2, replicas: 3 }
    const node = await Node.start({
      ...options,
      registry: [Counter],
      streamTrimIntervalMs: 200,
      snapshotIntervalMs: 100,
      logger,
    })
    const client = await Client.connect({ servers: nats.urls, hub: 'r3-uncut' })
    try {
      for (let round = 0; round < 10; round++) {
        await Promise.all(Array.from({ length: 20 }, (_, i) => client.entity(Counter, `c${i}`).signal.add(1)))
      }
      expect(await client.entity(Counter, 'c0').call.get()).toBe(10)
      await new Promise((r) => setTimeout(r, 1_500)) // several intervals, several snapshots
      const hub = await ensureHub(nc, 'r3-uncut', { partitions: 2, replicas: 3 })
      const first = (stream: string) => jsm.streams.info(stream).then((i) => i.state.first_seq)
      const cut = { mailbox: await first(hub.names.mailboxStream), log: await first(hub.names.logStream) }
      if (safe) {
        expect(warnings.join('\n')).not.toMatch(/streamTrimIntervalMs/)
        await waitFor(async () => (await first(hub.names.mailboxStream)) > 1, 'the mailbox cut', 30_000)
      } else {
        expect(cut).toEqual({ mailbox: 1, log: 1 })
        expect(warnings.join('\n')).toMatch(
          /streamTrimIntervalMs 200 ignored: .*nats-server 2\.9\.18 or later.*issue 4196.*keep every message/,
        )
      }
    } finally {
      await client.close()
      await node.stop()
    }
  }, 120_000)
})

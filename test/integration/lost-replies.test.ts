/**
 * Replies travel over core NATS (at most once). A reply dropped on the way — the client was
 * reconnecting, its server died — must not turn a committed call into a timeout: the client asks
 * the partition again and gets the reply it kept.
 */
import { afterEach, describe, expect, it } from 'vitest'
import type { NatsConnection } from '@nats-io/transport-node'
import { Client, Node, silentLogger } from '../../runtime/index.ts'
import { RecentReplies, type RepliesEntry } from '../../runtime/partition/recent-replies.ts'
import type { Reply } from '../../actors/wire/messages.ts'
import { Log } from '../fixtures/entities.ts'
import { allWorkflows, helloSequence } from '../fixtures/workflows.ts'
import { Kvm } from '@nats-io/kv'
import { useNatsServer } from '../tooling/harness.ts'
import { PartitionUnavailableError, toErrorInfo } from '../../actors/index.ts'
import { WIRE_VERSION } from '../../actors/wire/index.ts'
import { connectTo } from '../../runtime/nats/connect.ts'
import { HubNames } from '../../runtime/nats/hub.ts'
import { decode, encode } from '../../runtime/nats/index.ts'

const ok = (rid: number, size = 1): Reply => [rid, 1, new Uint8Array(size)]

describe('RecentReplies', () => {
  it('finds the replies of one inbox by request id, oldest first', () => {
    const kept = new RecentReplies()
    kept.remember('a', [ok(1), ok(2)])
    kept.remember('b', [ok(1)])
    kept.remember('a', [ok(3)])
    expect(kept.find('a', [3, 1, 9]).map((r) => r[0])).toEqual([1, 3])
    expect(kept.find('b', [1, 2]).map((r) => r[0])).toEqual([1])
    expect(kept.find('c', [1])).toEqual([])
  })

  it('forgets by age and by bytes, oldest first', () => {
    let now = 0
    const kept = new RecentReplies(1000, 10_000, () => now)
    kept.remember('a', [ok(1)])
    now = 5_000
    kept.remember('a', [ok(2)])
    now = 11_000
    expect(kept.find('a', [1, 2]).map((r) => r[0])).toEqual([2])
    kept.remember('b', [ok(1, 800)]) // over the byte bound: the oldest go
    expect(kept.find('a', [2])).toEqual([])
    expect(kept.find('b', [1])).toHaveLength(1)
    expect(kept.size).toBe(1)
  })

  it('stores the newest batches that fit, and a fresh memory takes them in', () => {
    const kept = new RecentReplies()
    kept.remember('a', [ok(1, 500)])
    kept.remember('b', [ok(2, 100)])
    kept.remember('a', [ok(3, 100)])
    const entries = decode(kept.segment(600, true)!.bytes) as RepliesEntry[] // the oldest does not fit
    expect(entries.map(([, inbox, r]) => [inbox, r.map((x) => x[0])])).toEqual([
      ['b', [2]],
      ['a', [3]],
    ])
    const next = new RecentReplies()
    next.restore(entries)
    expect(next.find('a', [1, 3]).map((r) => r[0])).toEqual([3])
    next.restore([[Date.now(), 'c', [ok(9)]]]) // holds some already: kept as it is
    expect(next.find('c', [9])).toEqual([])
  })

  it('answers at most about maxBytes, but always one reply', () => {
    const kept = new RecentReplies()
    kept.remember('a', [ok(1, 600), ok(2, 600), ok(3, 600)])
    expect(kept.find('a', [1, 2, 3], 1000).map((r) => r[0])).toEqual([1])
    expect(kept.find('a', [1, 2, 3], 10).map((r) => r[0])).toEqual([1])
  })
})

const nats = useNatsServer()
const opened: Array<Node | Client> = []
afterEach(async () => {
  for (const x of opened.splice(0).reverse()) {
    await (x instanceof Node ? x.stop() : x.close()).catch(() => {})
  }
})

/** Drops what `nc` publishes to client inboxes while `drop()` says so (a reply lost in transit). */
function dropReplies(nc: NatsConnection, drop: () => boolean): () => number {
  const publish = nc.publish.bind(nc)
  let dropped = 0
  nc.publish = (subject, payload, options) => {
    if (subject.startsWith('_INBOX_basalt') && drop()) {
      dropped++
      return
    }
    publish(subject, payload, options)
  }
  return () => dropped
}

describe('a reply lost in transit', () => {
  it('reaches the caller when it asks again, and the call is applied once', async () => {
    const hub = 'lost1'
    const node = await Node.start({
      servers: nats.url,
      hub,
      registry: [Log, ...allWorkflows],
      partitions: 4,
      logger: silentLogger,
    })
    opened.push(node)
    const client = await Client.connect({ servers: nats.url, hub, reaskMs: 200 })
    opened.push(client)
    let dropping = true
    const dropped = dropReplies(node.nc, () => dropping)

    const log = client.entity(Log, 'once')
    const [length, id] = await Promise.all([
      log.call.append('x'),
      client.start(helloSequence, ['Oslo'], { instanceId: 'lost-start' }),
    ])
    // (both replies dropped: in one message when the two commits were acknowledged together)
    expect(dropped()).toBeGreaterThanOrEqual(1)
    dropping = false
    expect(length).toBe(1)
    expect(id).toBe('lost-start')
    expect(await log.call.items()).toEqual(['x'])
    expect((await client.waitForCompletion(id)).output).toEqual(['Hello Oslo'])
  })

  /**
   * A call whose reply the first owner drops; the first owner then stops (with a final snapshot
   * when `snapshot`, so that the checkpoint covers the call's record) and a second node takes over.
   */
  async function callAcrossMove(hub: string, reaskMs: number, snapshot: boolean): Promise<void> {
    const options = { servers: nats.url, hub, registry: [Log], partitions: 2, logger: silentLogger }
    const first = await Node.start(options)
    const client = await Client.connect({ servers: nats.url, hub, reaskMs })
    opened.push(client)
    dropReplies(first.nc, () => true)
    const log = client.entity(Log, hub)
    const call = log.call.append('y')
    await new Promise((r) => setTimeout(r, 300)) // committed, its reply dropped
    await first.stop({ snapshot })
    opened.push(await Node.start(options))
    expect(await call).toBe(1)
    expect(await log.call.items()).toEqual(['y'])
  }

  it('reaches the caller from the next owner when the node that answered stopped', async () => {
    await callAcrossMove('lost2', 200, false)
  })

  it('reaches the caller from the next owner even when a checkpoint covered the record first', async () => {
    // no re-ask before the move: the next owner replays nothing of the record, only the kept replies
    await callAcrossMove('lost3', 1500, true)
  })

  it('reach their callers from the next owner when several snapshots stored them in segments', async () => {
    // a snapshot after every record: each stores only the replies since the previous one, and the
    // checkpoint lists the segments; the next owner reads them all
    const hub = 'lost-segments'
    const options = { servers: nats.url, hub, registry: [Log], partitions: 1, logger: silentLogger }
    const first = await Node.start({ ...options, snapshotRecords: 1 })
    const client = await Client.connect({ servers: nats.url, hub, reaskMs: 3000 }) // asks after the move
    opened.push(client)
    dropReplies(first.nc, () => true)
    const log = client.entity(Log, hub)
    const calls: Array<Promise<number>> = []
    for (const item of ['a', 'b', 'c', 'd']) {
      const call = log.call.append(item)
      call.catch(() => {}) // (awaited below; a failed expectation must not leave it unhandled)
      calls.push(call)
      await new Promise((r) => setTimeout(r, 300)) // committed, snapshotted, its reply dropped
    }
    await first.stop({ snapshot: true })
    const kv = await new Kvm(first.nc.isClosed() ? await connectTo(nats.url, 'kv') : first.nc).open(
      new HubNames(hub).stateBucket,
    )
    const ckpt = decode((await kv.get('ckpt.0'))!.value) as { rs?: Array<[number, number, number]> }
    expect(ckpt.rs?.length, 'segments listed').toBeGreaterThan(1)
    opened.push(await Node.start(options))
    expect(await Promise.all(calls)).toEqual([1, 2, 3, 4])
    expect(await log.call.items()).toEqual(['a', 'b', 'c', 'd'])
  })

  it('a query its owner stopped before answering is asked of the next owner at once', async () => {
    // A stopping owner tells the queries it took to ask again (runtime/partition/queries.ts); here
    // a stand-in owner does so once, and the client must ask on, not wait out its 10 s timeout.
    const hub = 'lost-query'
    const options = { servers: nats.url, hub, registry: [Log], partitions: 1, logger: silentLogger }
    await (await Node.start(options)).stop()
    const client = await Client.connect({ servers: nats.url, hub })
    opened.push(client)
    const stale = await connectTo(nats.url, 'stopping-owner')
    let asked = 0
    stale.subscribe(new HubNames(hub).query(0), {
      max: 1,
      callback: (_err, msg) => {
        asked++
        const error = toErrorInfo(new PartitionUnavailableError(0, 'its owner stopped before answering'))
        msg.respond(encode({ v: WIRE_VERSION, ok: 0, error, again: 1 }))
      },
    })
    await stale.flush()
    const started = Date.now()
    const read = client.readEntityState(Log, 'k')
    await new Promise((r) => setTimeout(r, 200)) // asked again meanwhile: no node serves it yet
    opened.push(await Node.start(options))
    expect(await read).toEqual({ exists: false, state: undefined })
    expect(asked).toBe(1)
    expect(Date.now() - started).toBeLessThan(5_000)
    await stale.close()
  })
})

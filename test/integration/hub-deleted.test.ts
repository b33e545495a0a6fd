/**
 * A hub deleted under running nodes (`basalt hub delete --force`): each node notices and stops on
 * its own, writing nothing more — `node.ended` says why — so that when the hub is created again its
 * partitions belong to the nodes of the new hub. Before, a node left running kept its view of the
 * old hub and claimed partitions of the new one at the old epochs, fencing their rightful owners.
 */
import { jetstream, jetstreamManager } from '@nats-io/jetstream'
import { firstValueFrom, toArray } from 'rxjs'
import { afterEach, describe, expect, it } from 'vitest'
import { Client, HubNotFoundError, Node, type NodeOptions } from '../../runtime/index.ts'
import { connectTo } from '../../runtime/nats/connect.ts'
import { HubNames, bucketKeys, deleteHub, ensureHub } from '../../runtime/nats/hub.ts'
import { decode, encode } from '../../runtime/nats/codec.ts'
import { partitionOf } from '../../actors/ids.ts'
import type { ReplyEnvelope } from '../../actors/wire/index.ts'
import { Counter } from '../fixtures/entities.ts'
import { keptLines, keysPerPartition, useNatsServer, waitFor } from '../tooling/harness.ts'

const nats = useNatsServer()
const PARTITIONS = 4
const opened: Array<Node | Client> = []
afterEach(async () => {
  for (const x of opened.splice(0).reverse()) await (x instanceof Node ? x.stop() : x.close()).catch(() => {})
})

function options(hub: string, nodeId: string, lines: string[]): NodeOptions {
  return {
    servers: nats.url,
    hub,
    nodeId,
    registry: [Counter],
    partitions: PARTITIONS,
    heartbeatMs: 200,
    leaseMs: 1000,
    logger: keptLines(lines),
  }
}

async function start(hub: string, nodeId: string, lines: string[] = []): Promise<Node> {
  const node = await Node.start(options(hub, nodeId, lines))
  opened.push(node)
  return node
}

/** Two nodes with epochs raised by restarts (the old epochs that fenced the new hub's owners). */
async function twoNodes(hub: string): Promise<{ a: Node; b: Node; lines: string[] }> {
  const lines: string[] = []
  const a = await start(hub, 'a', lines)
  for (let i = 0; i < 2; i++) await (await start(hub, 'b')).stop()
  const b = await start(hub, 'b', lines)
  const client = await Client.connect({ servers: nats.url, hub })
  opened.push(client)
  for (const key of keysPerPartition(PARTITIONS)) await client.entity(Counter, key).call.add(100)
  return { a, b, lines }
}

describe('a hub deleted under running nodes', () => {
  it('created again at once: the old nodes stop and the new hub is served by its own nodes, exactly', async () => {
    const hub = 'deleted-recreated'
    const { a, b, lines } = await twoNodes(hub)
    const nc = await connectTo(nats.url, 'hub-delete')
    await deleteHub(nc, hub)
    await nc.close()
    const newLines: string[] = []
    const c = await start(hub, 'c', newLines) // creates the hub anew
    for (const old of [a, b]) {
      const why = await old.ended
      expect(why).toBeInstanceOf(HubNotFoundError)
      expect(why.message).toMatch(
        new RegExp(
          `^hub '${hub}' was deleted while node ${old.nodeId} ran on it .*: the node stopped; start it again`,
        ),
      )
    }
    // the new hub holds none of the old counts, and every partition is served by c
    const client = await Client.connect({ servers: nats.url, hub })
    opened.push(client)
    for (const key of keysPerPartition(PARTITIONS)) {
      expect(await client.entity(Counter, key).call.get()).toBe(0)
      for (let i = 0; i < 5; i++) await client.entity(Counter, key).signal.add(1)
      expect(await client.entity(Counter, key).call.get()).toBe(5)
    }
    expect(await c.partitionIds()).toEqual([0, 1, 2, 3])
    expect(newLines.filter((l) => /taken over by a newer owner|stale owner/.test(l))).toEqual([])
    expect(lines.filter((l) => /was deleted while node/.test(l))).toHaveLength(2)
  }, 60_000)

  it('created again by `basalt hub create` with no node of its own: the old node writes nothing into it', async () => {
    // the operator's sequence: signals acknowledged, then `hub delete --force && hub create` at
    // once; the old node's heartbeats, lease and snapshot writes all find the new hub's buckets
    const hub = 'deleted-created-empty'
    const lines: string[] = []
    const a = await Node.start({
      ...options(hub, 'a', lines),
      heartbeatMs: 500,
      leaseMs: 2000,
      snapshotIntervalMs: 1500,
    })
    opened.push(a)
    const client = await Client.connect({ servers: nats.url, hub })
    opened.push(client)
    const keys = keysPerPartition(PARTITIONS)
    await client.entity(Counter, keys[0]!).call.add(1) // committed: the node has items to snapshot
    for (const key of keys) await client.entity(Counter, key).signal.add(5)
    const nc = await connectTo(nats.url, 'hub-recreate')
    await deleteHub(nc, hub)
    const fresh = await ensureHub(nc, hub, { partitions: PARTITIONS })
    const recreated = Date.now()
    const why = await a.ended
    expect(why.message).toMatch(/was deleted while node a ran on it \(and created again since\)/)
    // noticed by its next heartbeat (whose revision went back), not by a placement watch stalling
    expect(Date.now() - recreated).toBeLessThan(4_000)
    await new Promise((resolve) => setTimeout(resolve, 2_000)) // any snapshot or heartbeat in flight lands
    expect(await bucketKeys(fresh.jsm, fresh.names.stateBucket), 'state items in the new hub').toEqual([])
    const meta = await bucketKeys(fresh.jsm, fresh.names.metaBucket)
    for (const key of meta.filter((k) => k !== 'hub')) {
      const entry = await fresh.metaKv.get(key)
      expect(entry === null || entry.operation !== 'PUT', `meta ${key} written by the old node`).toBe(true)
    }
    await nc.close()
    await start(hub, 'c')
    // the old client refuses (its hub is gone); a new one finds none of the old counts
    const refused = await client
      .entity(Counter, keys[0]!)
      .call.get()
      .catch((e: unknown) => e)
    expect(refused).toBeInstanceOf(HubNotFoundError)
    expect((refused as Error).message).toBe(
      `hub '${hub}' was deleted and created again since this client connected: connect again`,
    )
    const again = await Client.connect({ servers: nats.url, hub })
    opened.push(again)
    for (const key of keys) expect(await again.entity(Counter, key).call.get()).toBe(0)
  }, 60_000)

  it('created again while a client ran: its reads say so (connect again), not a mailbox position past the end', async () => {
    const hub = 'recreated-under-client'
    await start(hub, 'a')
    const client = await Client.connect({ servers: nats.url, hub })
    opened.push(client)
    const keys = keysPerPartition(PARTITIONS)
    // positions in the old hub's mailboxes, which the client's reads wait for
    for (const key of keys) for (let i = 0; i < 3; i++) await client.entity(Counter, key).signal.add(1)
    const nc = await connectTo(nats.url, 'hub-delete')
    await deleteHub(nc, hub)
    await nc.close()
    await start(hub, 'c') // creates the hub anew
    const again = `hub '${hub}' was deleted and created again since this client connected: connect again`
    for (const key of keys) {
      const err = await client.readEntityState(Counter, key).catch((e: unknown) => e)
      expect(err, String(err)).toBeInstanceOf(HubNotFoundError)
      expect((err as Error).message).toBe(again)
    }
    // a new client reads the new hub
    const fresh = await Client.connect({ servers: nats.url, hub })
    opened.push(fresh)
    expect(await fresh.readEntityState(Counter, keys[0]!)).toEqual({ exists: false })
  }, 60_000)

  it('created again with another partition count while a client ran: it refuses every message and read, naming both counts, and sends nothing', async () => {
    // (before: it routed by the old count, and every message landed on a partition it does not
    // belong to, dead-lettered there as misrouted: "belongs to partition X, not Y")
    const hub = 'recreated-other-count'
    await start(hub, 'a')
    const client = await Client.connect({ servers: nats.url, hub })
    opened.push(client)
    const keys = keysPerPartition(PARTITIONS)
    for (const key of keys) await client.entity(Counter, key).call.add(1)
    const watch = firstValueFrom(client.watchEntity(Counter, keys[1]!).pipe(toArray())).catch(
      (e: unknown) => e,
    )
    const nc = await connectTo(nats.url, 'hub-delete')
    await deleteHub(nc, hub)
    await nc.close()
    const c = await Node.start({ ...options(hub, 'c', []), partitions: 2 * PARTITIONS }) // creates it anew
    opened.push(c)
    // the client heard the hub created again (hub-guard.ts), before it sent anything
    expect(client.hubReplaced).toBe(true)
    const refusal =
      `hub '${hub}' was deleted and created again since this client connected, now with 8 partitions ` +
      '(this client routes by the 4 it had): connect again'
    const refused = async (what: string, attempt: Promise<unknown>) => {
      const err = await attempt.then(
        () => new Error(`${what} was not refused`),
        (e: unknown) => e,
      )
      expect(err, what).toBeInstanceOf(HubNotFoundError)
      expect((err as Error).message, what).toBe(refusal)
    }
    for (const key of keys) {
      await refused(`signal ${key}`, client.entity(Counter, key).signal.add(1))
      await refused(`call ${key}`, client.entity(Counter, key).call.add(1))
      await refused(`read ${key}`, client.readEntityState(Counter, key))
    }
    await refused('start', client.startByName('neverRegistered', null))
    await refused('raise', client.raiseEvent('o1', 'go'))
    await refused('status', client.getStatus('o1'))
    await refused('list', client.listInstances())
    await refused('entity list', client.listEntities({ type: 'Counter' }))
    // a watch of the old hub ends with the refusal, one made now fails with it
    const ended = await watch
    expect(ended).toBeInstanceOf(HubNotFoundError)
    expect((ended as Error).message).toBe(refusal)
    await refused('watch', firstValueFrom(client.watchEntity(Counter, keys[0]!)))
    // nothing reached the new hub: its mailboxes and dead letters are empty
    const admin = await connectTo(nats.url, 'hub-inspect')
    try {
      const jsm = await jetstreamManager(admin)
      expect((await jsm.streams.info(`BASALT_${hub}_MBX`)).state.messages, 'mailbox messages').toBe(0)
      expect((await jsm.streams.info(`BASALT_${hub}_DLQ`)).state.messages, 'dead letters').toBe(0)
    } finally {
      await admin.close()
    }
    // a new client routes by the new count
    const fresh = await Client.connect({ servers: nats.url, hub })
    opened.push(fresh)
    expect(fresh.partitionCount).toBe(8)
    for (const key of keys) {
      await fresh.entity(Counter, key).signal.add(2)
      expect(await fresh.entity(Counter, key).call.get()).toBe(2)
    }
  }, 60_000)

  it('created again at once after a message found the hub deleted: the next message is refused', async () => {
    const hub = 'recreated-after-gap'
    await start(hub, 'a')
    const client = await Client.connect({ servers: nats.url, hub })
    opened.push(client)
    const [key] = keysPerPartition(PARTITIONS)
    await client.entity(Counter, key!).call.add(1)
    const nc = await connectTo(nats.url, 'hub-recreate')
    try {
      await deleteHub(nc, hub)
      const gone = await client
        .entity(Counter, key!)
        .signal.add(1)
        .catch((e: unknown) => e)
      expect(gone).toBeInstanceOf(HubNotFoundError)
      expect((gone as Error).message).toBe(`hub '${hub}' was deleted: start a node on it to create it again`)
      // created again at once (`basalt hub create --partitions 2`): the client hears the new hub
      // record, and the very next message is refused
      await ensureHub(nc, hub, { partitions: 2 })
      for (const attempt of [
        client.entity(Counter, key!).signal.add(1),
        client.entity(Counter, key!).call.add(1),
        client.readEntityState(Counter, key!),
      ]) {
        const err = await attempt.then(
          () => new Error('not refused'),
          (e: unknown) => e,
        )
        expect(err).toBeInstanceOf(HubNotFoundError)
        expect((err as Error).message).toBe(
          `hub '${hub}' was deleted and created again since this client connected, now with 2 partitions ` +
            '(this client routes by the 4 it had): connect again',
        )
      }
      const jsm = await jetstreamManager(nc)
      expect((await jsm.streams.info(`BASALT_${hub}_MBX`)).state.messages, 'mailbox messages').toBe(0)
    } finally {
      await nc.close()
    }
  }, 60_000)

  it('deleted and not created again: the nodes stop, and a client is told, both saying so', async () => {
    const hub = 'deleted-only'
    const { a, b, lines } = await twoNodes(hub)
    const client = await Client.connect({ servers: nats.url, hub })
    opened.push(client)
    const [key] = keysPerPartition(PARTITIONS)
    await client.entity(Counter, key!).call.add(1)
    const nc = await connectTo(nats.url, 'hub-delete')
    await deleteHub(nc, hub)
    await nc.close()
    // at once, not after the client's publish deadline of about 30 s with a raw "no responders"
    const gone = `hub '${hub}' was deleted: start a node on it to create it again`
    const started = Date.now()
    for (const refused of [
      client.entity(Counter, key!).call.add(1),
      client.entity(Counter, key!).signal.add(1),
      client.readEntityState(Counter, key!), // asked of a partition whose node is stopping
    ]) {
      const err = await refused.catch((e: unknown) => e)
      expect(err).toBeInstanceOf(HubNotFoundError)
      expect((err as Error).message).toBe(gone)
    }
    expect(Date.now() - started).toBeLessThan(8_000)
    for (const old of [a, b]) {
      const why = await old.ended
      expect(why.message).toBe(
        `hub '${hub}' was deleted while node ${old.nodeId} ran on it: the node stopped; start it again to join the hub as it is now`,
      )
    }
    await a.stop() // idempotent after stopping on its own
    // no contradicting lines: graceful-stop marks that fail after the node said it would hand
    // nothing over, or a raw 'jetstream is not enabled' for streams that are gone
    expect(lines.filter((l) => /could not mark a graceful stop|snapshot failed/.test(l))).toEqual([])
    for (const line of lines.filter((l) => /hand-off failed/.test(l)))
      expect(line).toMatch(/was the hub deleted\?/)
  }, 60_000)
})

describe('messages a client sent to the hub as it was before it was created again', () => {
  it("are refused by the new hub's partitions, naming both creations, and never applied", async () => {
    const hub = 'hub-stamped'
    const node = await start(hub, 'n1')
    const client = await Client.connect({ servers: nats.url, hub })
    opened.push(client)
    const [key] = keysPerPartition(PARTITIONS)
    // this client's envelopes carry the creation of the hub it opened: applied
    await client.entity(Counter, key!).call.add(1)
    // what a client of an earlier creation of this hub sends, as a message on its way while the
    // hub was deleted and created again would arrive: the same envelope, another creation
    const nc = await connectTo(nats.url, 'raw')
    const inbox = `${new HubNames(hub).replyInboxPrefix}.earlier-client`
    const replies = nc.subscribe(inbox, { max: 1 })
    const earlier = Date.now() - 60_000
    const call = { k: 'op', t: 'Counter', key, op: 'add', a: [5], r: [inbox, 7] }
    const signal = { k: 'op', t: 'Counter', key, op: 'add', a: [5] }
    const envelope = { v: 1, c: 'earlier-client', q: 1, h: earlier, m: [call, signal] }
    await jetstream(nc).publish(new HubNames(hub).mailbox(partitionOf(key!, PARTITIONS)), encode(envelope))
    await waitFor(() => node.stats().deadLetters === 2, 'both messages dead-lettered')
    let reply: unknown
    for await (const msg of replies) reply = decode(msg.data)
    const refusal = (reply as ReplyEnvelope).r[0]!
    expect(refusal[0]).toBe(7)
    expect(refusal[1]).toBe(0)
    const error = refusal[2] as { name: string; message: string }
    expect(error.name).toBe('HubNotFoundError')
    expect(error.message).toBe(
      `hub 'hub-stamped' was deleted and created again since this client connected (it sent to the ` +
        `hub created at ${new Date(earlier).toISOString()}, this one was created at ` +
        `${new Date(node.hub.meta.created).toISOString()}): connect again`,
    )
    expect(await client.entity(Counter, key!).call.get(), 'neither applied').toBe(1)
    await nc.close()
  })
})

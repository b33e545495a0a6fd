/**
 * A hub whose creation fails part-way — an account's stream limit reached, its store full — is
 * removed again by the call that created it, and the error says why (it said `cannot create hub`
 * and left the metadata bucket behind); what that call did not create stays. (A node user of
 * another hub: test/integration/security.test.ts.)
 */
import { describe, expect, it } from 'vitest'
import { jetstreamManager } from '@nats-io/jetstream'
import { Kvm } from '@nats-io/kv'
import { Client, ConnectionError, Node, StorageFullError, silentLogger } from '../../runtime/index.ts'
import { closeConnection, connectTo } from '../../runtime/nats/connect.ts'
import { encode } from '../../runtime/nats/codec.ts'
import { HubNames, ensureHub, type HubMeta } from '../../runtime/nats/hub.ts'
import { Counter } from '../fixtures/entities.ts'
import { useNatsServer } from '../tooling/harness.ts'

// a hub has seven streams: an account of at most four cannot hold one
const nats = useNatsServer({
  extraConfig: [
    'accounts {',
    '  LIMITED: { jetstream: { max_streams: 4, max_file: 1G, max_mem: 1G }, users: [ { user: limited, password: "pw" } ] }',
    '  LIMITED2: { jetstream: { max_streams: 4, max_file: 1G, max_mem: 1G }, users: [ { user: limited2, password: "pw" } ] }',
    '  FULL: { jetstream: { max_file: 100, max_mem: 1G }, users: [ { user: full, password: "pw" } ] }',
    '  NOJS: { users: [ { user: nojs, password: "pw" } ] }',
    '}',
  ].join('\n'),
})
const as = (user: string) => ({ servers: nats.url, user, password: 'pw' })

/** Runs `work` with a connection as `user`; resolves with what it resolved with and the account's streams. */
async function inAccount<T>(user: string, work: (nc: Awaited<ReturnType<typeof connectTo>>) => Promise<T>) {
  const nc = await connectTo(as(user), 'hub-creation')
  try {
    const outcome = await work(nc).catch((err: unknown) => err as Error)
    const jsm = await jetstreamManager(nc)
    const streams: string[] = []
    for await (const name of jsm.streams.names()) streams.push(name)
    return { outcome, streams: streams.sort(), jsm, nc }
  } finally {
    await closeConnection(nc)
  }
}

describe('a hub creation that fails part-way', () => {
  it("removes the streams and record it created, and says the server's reason", async () => {
    const { outcome, streams } = await inAccount('limited', (nc) => ensureHub(nc, 'x', { partitions: 2 }))
    expect(outcome).toBeInstanceOf(Error)
    expect((outcome as Error).message).toMatch(/^cannot create hub 'x': maximum number of streams reached$/)
    expect(streams, 'streams left in the account').toEqual([])
  })

  it('fails with StorageFullError on a full store, and leaves no metadata bucket', async () => {
    const { outcome, streams } = await inAccount('full', (nc) => ensureHub(nc, 'y', { partitions: 2 }))
    expect(outcome, String(outcome)).toBeInstanceOf(StorageFullError)
    expect((outcome as Error).message).toMatch(
      /^cannot create hub 'y': .+ \(the NATS server's JetStream store is full: free space, or raise jetstream\.max_file_store/,
    )
    expect(streams, 'streams left in the account').toEqual([])
    const started = await Node.start({
      ...as('full'),
      hub: 'y',
      registry: [Counter],
      partitions: 2,
      logger: silentLogger,
    }).catch((err: unknown) => err as Error)
    expect(started).toBeInstanceOf(StorageFullError)
    expect((started as Error).message).toMatch(/^cannot create hub 'y': /)
  })

  it('leaves the streams it added to a hub another process created, and a bucket it found', async () => {
    const names = new HubNames('z')
    const record: HubMeta = { v: 1, partitions: 2, replicas: 1, created: Date.now() }
    // a hub whose record another process wrote, its streams not yet made
    const created = await inAccount('limited2', async (nc) => {
      const meta = await new Kvm(nc).create(names.metaBucket, { history: 1 })
      await meta.create('hub', encode(record))
      return ensureHub(nc, 'z', { partitions: 2 })
    })
    expect((created.outcome as Error).message).toBe("cannot open hub 'z': maximum number of streams reached")
    expect(created.streams).toEqual(
      [`KV_${names.metaBucket}`, names.mailboxStream, names.logStream, names.taskStream].sort(),
    )
    // an empty metadata bucket (nobody's hub): the record this call writes goes, the bucket stays
    const emptied = await inAccount('limited2', async (nc) => {
      const jsm = await jetstreamManager(nc)
      for (const stream of [names.mailboxStream, names.logStream, names.taskStream])
        await jsm.streams.delete(stream)
      await jsm.streams.purge(`KV_${names.metaBucket}`)
      const outcome = await ensureHub(nc, 'z', { partitions: 2 }).catch((err: unknown) => err as Error)
      const kv = await new Kvm(nc).open(names.metaBucket)
      return { outcome, record: await kv.get('hub') }
    })
    const { outcome, record: left } = emptied.outcome as {
      outcome: Error
      record: { operation: string } | null
    }
    expect(outcome.message).toBe("cannot create hub 'z': maximum number of streams reached")
    expect(left === null || left.operation !== 'PUT', 'the record the failed call wrote is gone').toBe(true)
    expect(emptied.streams).toEqual([`KV_${names.metaBucket}`])
  })
})

describe('a server or account without JetStream', () => {
  it('is said plainly, with what to do, by Node.start and Client.connect', async () => {
    const expected =
      /^JetStream is not enabled on the NATS server at nats:\/\/127\.0\.0\.1:\d+ for this user's account: start nats-server with -js \(or a jetstream block in its configuration\), and give the account jetstream: enabled$/
    const node = await Node.start({
      ...as('nojs'),
      hub: 'j',
      registry: [Counter],
      logger: silentLogger,
    }).catch((err: unknown) => err as Error)
    expect(node, String(node)).toBeInstanceOf(ConnectionError)
    expect((node as Error).message).toMatch(expected)
    const client = await Client.connect({ ...as('nojs'), hub: 'j' }).catch((err: unknown) => err as Error)
    expect(client, String(client)).toBeInstanceOf(ConnectionError)
    expect((client as Error).message).toMatch(expected)
  })
})

/**
 * Bad input gets a clear, typed error and harms nothing else: unknown entity types and operations,
 * operations that throw or get wrong types, undecodable mailbox bytes (dead-lettered), payloads
 * over max_payload (refused at the client), unreachable servers and missing hubs.
 */
import { describe, expect, it } from 'vitest'
import { jetstream, jetstreamManager } from '@nats-io/jetstream'
import {
  BadInputError,
  Client,
  ConnectionError,
  Entity,
  HubNotFoundError,
  Node,
  PayloadTooLargeError,
  RemoteError,
  UnknownEntityError,
  UnknownOperationError,
  silentLogger,
} from '../../runtime/index.ts'
import { decode, encode } from '../../runtime/internal.ts'
import { connectTo } from '../../runtime/nats/connect.ts'
import { HubNames } from '../../runtime/nats/hub.ts'
import { Counter } from '../fixtures/entities.ts'
import { freePort } from '../../runtime/dev/nats-server.ts'
import { useHub, useNatsServer, waitFor } from '../tooling/harness.ts'

/** Known to clients but not registered on the node. */
class Unregistered extends Entity<number> {
  initialState() {
    return 0
  }
  poke() {}
}

const nats = useNatsServer()
const hub = 'bad'
const stack = useHub(nats, { hub, registry: [Counter], partitions: 2 })

describe('bad input', () => {
  it('answers a call to an unknown entity type with UnknownEntityError; signals to it harm nothing else', async () => {
    const err = await stack.client
      .entity(Unregistered, 'x')
      .call.poke()
      .catch((e: unknown) => e)
    expect(err).toBeInstanceOf(UnknownEntityError)
    expect(String((err as Error).message)).toMatch(/unknown entity type 'Unregistered'/)
    await stack.client.entity(Unregistered, 'x').signal.poke() // dead-lettered (entity-operations.test.ts)
    await stack.client.entity(Counter, 'x').signal.add(1)
    expect(await stack.client.entity(Counter, 'x').call.get()).toBe(1)
  })

  it('refuses an unknown operation with UnknownOperationError', async () => {
    const proxy = stack.client.entity(Counter, 'y').call as unknown as Record<string, () => Promise<unknown>>
    const err = await proxy.explode!().catch((e: unknown) => e)
    expect(err).toBeInstanceOf(UnknownOperationError)
    expect((err as Error).message).toBe(`entity type 'Counter' has no operation 'explode'`)
    expect(await stack.client.entity(Counter, 'y').call.get()).toBe(0)
  })

  it('passes an operation error for a wrong argument type to the caller; the entity keeps working', async () => {
    const add = stack.client.entity(Counter, 'typed').call.add as unknown as (n: unknown) => Promise<void>
    await stack.client.entity(Counter, 'typed').signal.add(2)
    const err = await add('three').catch((e: unknown) => e)
    expect(err).toBeInstanceOf(RemoteError)
    expect((err as RemoteError).remoteName).toBe('TypeError')
    expect((err as Error).message).toMatch(/add expects a number, got string/)
    expect(await stack.client.entity(Counter, 'typed').call.get()).toBe(2)
  })

  it('rejects bad keys and unserialisable arguments at the client, naming what was wrong', async () => {
    expect(() => stack.client.entity(Counter, '')).toThrow(BadInputError)
    expect(() => stack.client.entity(Counter, 5 as unknown as string)).toThrow(
      /entity key must be a non-empty string/,
    )
    // a lone surrogate: sent as UTF-8 it arrived as another key, refused as for another partition
    expect(() => stack.client.entity(Counter, 'k\uD800')).toThrow(
      /entity key is not well-formed Unicode: it has a lone surrogate/,
    )
    const add = stack.client.entity(Counter, 'ok').signal.add as unknown as (n: unknown) => Promise<void>
    const results = await Promise.allSettled([
      add(Symbol('s')),
      stack.client.entity(Counter, 'ok').signal.add(1),
    ])
    expect(results[0].status).toBe('rejected')
    expect(String((results[0] as PromiseRejectedResult).reason)).toMatch(
      /argument 1 of Counter\.add \(entity 'ok'\) is a symbol, which cannot be sent/,
    )
    expect(results[1].status).toBe('fulfilled')
    expect(await stack.client.entity(Counter, 'ok').call.get()).toBe(1)
  })

  it('refuses a payload over the ceiling at the client, naming the limit; batch-mates still go', async () => {
    // (values larger than max_payload go by reference up to the client's maxValueBytes)
    const client = await Client.connect({ servers: nats.url, hub, maxValueBytes: 1024 * 1024 })
    try {
      const big = 'x'.repeat(2 * 1024 * 1024)
      const add = client.entity(Counter, 'big').signal.add as unknown as (n: unknown) => Promise<void>
      const results = await Promise.allSettled([add(big), client.entity(Counter, 'big').signal.add(7)])
      expect(results[0].status).toBe('rejected')
      const reason = (results[0] as PromiseRejectedResult).reason as Error
      expect(reason).toBeInstanceOf(PayloadTooLargeError)
      expect(reason.message).toMatch(
        /^argument 1 of Counter@big.add is \d+ bytes, over the limit of 1048576 bytes \(maxValueBytes\)$/,
      )
      expect(results[1].status).toBe('fulfilled')
      expect(await client.entity(Counter, 'big').call.get()).toBe(7)
    } finally {
      await client.close()
    }
  })

  it('refuses a state over the ceiling of values by reference; the entity keeps its state', async () => {
    class Blob extends Entity<string> {
      initialState() {
        return ''
      }
      grow(n: number) {
        this.state += 'y'.repeat(n)
      }
      size() {
        return this.state.length
      }
    }
    const blobNode = await Node.start({
      servers: nats.url,
      hub: 'blob',
      registry: [Blob],
      partitions: 1,
      maxValueBytes: 300_000,
      logger: silentLogger,
    })
    const blobClient = await Client.connect({ servers: nats.url, hub: 'blob' })
    await blobClient.entity(Blob, 'b').call.grow(1000)
    const err = await blobClient
      .entity(Blob, 'b')
      .call.grow(600_000)
      .catch((e: unknown) => e)
    expect(err).toBeInstanceOf(PayloadTooLargeError)
    // its sizes cross the wire with it
    expect((err as PayloadTooLargeError).limit).toBe(300_000)
    expect((err as PayloadTooLargeError).size).toBeGreaterThan(600_000)
    expect(await blobClient.entity(Blob, 'b').call.size()).toBe(1000)
    await blobClient.close()
    await blobNode.stop()
  })

  it('moves undecodable mailbox bytes to the dead-letter stream with the reason and keeps going', async () => {
    const names = new HubNames(hub)
    const nc = await connectTo(nats.url, 'raw')
    const js = jetstream(nc)
    const jsm = await jetstreamManager(nc)
    // the signal to an unregistered type in the first test was dead-lettered already
    const before = (await jsm.streams.info(names.deadLetterStream)).state.messages
    const statsBefore = stack.node.stats().deadLetters
    await stack.client.entity(Counter, 'dl').signal.add(1)
    const garbage = [
      Buffer.from('this is not msgpack at all'),
      Buffer.from(encode({ v: 7, c: 'x', q: 1, m: [] })),
      Buffer.from(encode({ v: 1, c: 'x', q: 1, m: [{ k: 'op', t: 'Counter', key: 9, op: 'add', a: [1] }] })),
    ]
    for (let p = 0; p < 2; p++) for (const g of garbage) await js.publish(names.mailbox(p), g)
    await stack.client.entity(Counter, 'dl').signal.add(1)
    expect(await stack.client.entity(Counter, 'dl').call.get()).toBe(2)
    await waitFor(
      async () => (await jsm.streams.info(names.deadLetterStream)).state.messages === before + 6,
      `six more dead letters than the ${before} before`,
    )
    const seqs = [1, 2, 3, 4, 5, 6].map((i) => before + i)
    const first = await jsm.streams.getMessage(names.deadLetterStream, { seq: seqs[0]! })
    expect(first?.header.get('Basalt-Reason')).toMatch(/undecodable|unsupported version|field key/)
    const reasons = await Promise.all(
      seqs.map(async (seq) =>
        (await jsm.streams.getMessage(names.deadLetterStream, { seq }))?.header.get('Basalt-Reason'),
      ),
    )
    expect(reasons.some((r) => /unsupported version 7/.test(r ?? ''))).toBe(true)
    expect(reasons.some((r) => /field key is not a string/.test(r ?? ''))).toBe(true)
    expect(stack.node.stats().deadLetters).toBe(statsBefore + 6)
    expect(stack.node.partitions.size).toBe(2)
    await nc.close()
  })

  it('answers malformed queries with an error naming what was wrong, and keeps serving', async () => {
    const names = new HubNames(hub)
    const nc = await connectTo(nats.url, 'raw-queries')
    const ask = async (bytes: Uint8Array) => decode((await nc.request(names.query(0), bytes)).data, 'answer')
    const answers = await Promise.all([
      ask(Buffer.from('not msgpack')),
      ask(encode({ v: 1, k: 'drop-tables' })),
      ask(encode({ v: 1, k: 'replies', inbox: 5, rids: [1] })),
      ask(encode({ v: 1, k: 'replies', inbox: '_INBOX_basalt.x', rids: 'all' })),
      ask(encode({ v: 1, k: 'read', t: 'no such type!', key: 'k' })),
    ])
    const messages = answers.map((a) => (a as { ok: number; error?: { message: string } }).error?.message)
    expect(answers.every((a) => (a as { ok: number }).ok === 0)).toBe(true)
    expect(messages[0]).toMatch(/undecodable|not an envelope/)
    expect(messages[1]).toMatch(/unknown query kind drop-tables/)
    expect(messages[2]).toMatch(/malformed replies query/)
    expect(messages[3]).toMatch(/malformed replies query/)
    expect(messages[4]).toMatch(/type/)
    // a well-formed replies query for replies nobody sent is answered with none
    const none = await ask(encode({ v: 1, k: 'replies', inbox: '_INBOX_basalt.nobody', rids: [1, 2] }))
    expect(none).toMatchObject({ ok: 1, replies: [] })
    await stack.client.entity(Counter, 'after-queries').signal.add(3)
    expect(await stack.client.entity(Counter, 'after-queries').call.get()).toBe(3)
    expect(stack.node.partitions.size).toBe(2)
    await nc.close()
  })

  it('names the URL when NATS is unreachable, and the hub when it does not exist', async () => {
    const url = `nats://127.0.0.1:${await freePort()}`
    const err = await Node.start({ servers: url, hub: 'x', registry: [Counter], logger: silentLogger }).catch(
      (e: unknown) => e,
    )
    expect(err).toBeInstanceOf(ConnectionError)
    expect((err as Error).message).toContain(`cannot reach NATS at ${url}`)
    await expect(Client.connect({ servers: url, hub: 'x' })).rejects.toThrow(url)
    await expect(Client.connect({ servers: nats.url, hub: 'no-such-hub' })).rejects.toBeInstanceOf(
      HubNotFoundError,
    )
    await expect(Node.start({ servers: nats.url, hub: 'bad name!', registry: [] })).rejects.toThrow(
      /hub name must match/,
    )
  })

  it('refuses a partition or replica count other than the hub was created with, naming both', async () => {
    for (const [option, message] of [
      [{ partitions: 8 }, `hub '${hub}' has 2 partitions, fixed when it was created (asked for 8)`],
      [{ replicas: 3 }, `hub '${hub}' has 1 replica, fixed when it was created (asked for 3)`],
    ] as const) {
      const err = await Node.start({
        servers: nats.url,
        hub,
        registry: [Counter],
        logger: silentLogger,
        ...option,
      })
        .then(async (node) => void (await node.stop()))
        .catch((e: unknown) => e)
      expect(err, JSON.stringify(option)).toBeInstanceOf(BadInputError)
      expect((err as Error).message).toBe(message)
    }
  })

  it('refuses server URLs the NATS client would take for nats://, and a tls:// URL to a server without TLS', async () => {
    const hostPort = nats.url.replace('nats://', '')
    // the NATS client connects to all of these, in plain text
    for (const url of [
      `http://${hostPort}`,
      `https://${hostPort}`,
      `foo://${hostPort}`,
      `${nats.url}/path`,
    ]) {
      const err = await Client.connect({ servers: url, hub }).catch((e: unknown) => e)
      expect(err, url).toBeInstanceOf(BadInputError)
      expect((err as Error).message, url).toContain(`servers "${url}": `)
    }
    await expect(
      Node.start({ servers: `https://${hostPort}`, hub, registry: [Counter], logger: silentLogger }),
    ).rejects.toThrow(
      /^servers "https:.*https:\/\/ is not a NATS URL scheme \(for TLS give tls:\/\/host:4222\)/,
    )
    // this server offers no TLS: tls:// fails instead of going on in plain text
    const err = await Client.connect({ servers: `tls://${hostPort}`, hub, connectTimeoutMs: 2_000 }).catch(
      (e: unknown) => e,
    )
    expect(err).toBeInstanceOf(ConnectionError)
    expect((err as Error).message).toMatch(
      /\(a tls:\/\/ URL requires TLS: give nats:\/\/ for a server without it\)$/,
    )
  })
})

describe('reads of unknown entity types', () => {
  const readsStack = useHub(nats, { hub: 'bad-reads', registry: [Counter], partitions: 2 })
  // The refusals are started together and awaited in turn: a Client call's promise rejected before
  // it is awaited is the application's matter, not an engine bug (it once restarted every
  // partition of the node in this process, and the listing then went unanswered for 10 s).
  it('answers reads of an entity type no node registers with UnknownEntityError, not "does not exist"', async () => {
    // a misspelt type name (the command line passes names) and a class never deployed
    const reader = readsStack.client
    for (const type of [Unregistered, 'Countr']) {
      const name = typeof type === 'string' ? type : type.name
      const refusals = [
        reader.readEntityState(type, 'never-used'),
        reader.listEntities({ type }),
        reader.getLock(type, 'never-used'),
        reader.scheduledSignals(type, 'never-used'),
      ]
      for (const refused of refusals) {
        const err = await refused.catch((e: unknown) => e)
        expect(err, `${name}: ${String(err)}`).toBeInstanceOf(UnknownEntityError)
        expect((err as Error).message).toBe(
          `unknown entity type '${name}' (not in the registry of any node of this hub)`,
        )
      }
    }
    // a registered type reads as before: an entity never touched does not exist
    expect(await reader.readEntityState(Counter, 'never-touched')).toEqual({
      exists: false,
      state: undefined,
    })
    expect(await reader.getLock(Counter, 'never-touched')).toBeNull()
    expect(readsStack.node.stats().failures, 'no partition restarted').toBe(0)
  })
})

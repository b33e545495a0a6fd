/**
 * Fencing: when a second owner takes a partition over with a newer epoch, JetStream itself rejects
 * the older owner's next commit, and the older owner stops that partition. Nothing is lost or
 * applied twice, and reads are answered by the new owner only.
 */
import { afterAll, describe, expect, it } from 'vitest'
import { jetstream } from '@nats-io/jetstream'
import { Client, Node, silentLogger } from '../../runtime/index.ts'
import { connectTo } from '../../runtime/nats/connect.ts'
import { HubNames } from '../../runtime/nats/hub.ts'
import { encode } from '../../runtime/nats/codec.ts'
import { Counter } from '../fixtures/entities.ts'
import { useNatsServer, waitFor } from '../tooling/harness.ts'

const nats = useNatsServer()
const nodes: Node[] = []
afterAll(async () => {
  for (const n of nodes) await n.stop()
})

describe('fencing', () => {
  it('rejects the stale owner at its next commit; the new owner applies everything once', async () => {
    const hub = 'fence'
    const older = await Node.start({
      servers: nats.url,
      hub,
      registry: [Counter],
      partitions: 2,
      placement: 'static', // each static start claims every partition with a fresh epoch
      logger: silentLogger,
    })
    nodes.push(older)
    const client = await Client.connect({ servers: nats.url, hub })
    const keys = ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h']
    await Promise.all(keys.map((k) => client.entity(Counter, k).signal.add(1)))
    expect(await Promise.all(keys.map((k) => client.entity(Counter, k).call.get()))).toEqual(
      keys.map(() => 1),
    )

    const newer = await Node.start({
      servers: nats.url,
      hub,
      registry: [Counter],
      placement: 'static',
      logger: silentLogger,
    })
    nodes.push(newer)
    expect(newer.partitions.size).toBe(2)
    // both still read the mailbox; only the newer one can commit
    await Promise.all(keys.map((k) => client.entity(Counter, k).signal.add(10)))
    await waitFor(() => older.partitions.size === 0, 'the older owner to stop both partitions')
    expect(newer.partitions.size).toBe(2)
    expect(await Promise.all(keys.map((k) => client.entity(Counter, k).call.get()))).toEqual(
      keys.map(() => 11),
    )
    expect(await client.readEntityState(Counter, 'a')).toEqual({ exists: true, state: 11 })
    await client.close()
  })

  it('rejects an append that does not know the latest log position, at the server', async () => {
    const names = new HubNames('fence')
    const nc = await connectTo(nats.url, 'test')
    const js = jetstream(nc)
    const err = await js
      .publish(names.log(0), encode({ v: 1 }), { expect: { lastSubjectSequence: 1 } })
      .catch((e: unknown) => e)
    expect(String(err)).toMatch(/wrong last sequence/i)
    await nc.close()
  })
})

/**
 * Fencing: when a second owner takes a partition over with a newer epoch, JetStream itself rejects
 * the older owner's next commit, and the older owner stops that partition. Nothing is lost or
 * applied twice, and reads are answered by the new owner only. Also documents, with JetStream alone,
 * the server behaviour fencing must not rely on: a stale append that reuses the new owner's message
 * id is acknowledged as a duplicate (issue 9, mechanism 1).
 */
import { afterAll, describe, expect, it } from 'vitest'
import { jetstream, jetstreamManager, StorageType } from '@nats-io/jetstream'
import { Client, Node, silentLogger } from '../../runtime/index.ts'
import { connectTo } from '../../runtime/nats/connect.ts'
import { HubNames } from '../../runtime/nats/hub.ts'
import { decode, encode } from '../../runtime/nats/codec.ts'
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

  // Mechanism 1 of issue 9, with JetStream alone. A new owner's claim reuses the record number the
  // stale owner will use next; when both put only that number in the message id, the server's
  // duplicate check (which nats-server 2.9.10 runs before the expected-sequence check) answers the
  // stale append as a duplicate of the new owner's message: an acknowledgement, not an error. This
  // documents server behaviour that fencing must not rely on; it asserts what the server does.
  it('answers a stale append whose message id the new owner used as a duplicate (server behaviour)', async () => {
    const nc = await connectTo(nats.url, 'test')
    const jsm = await jetstreamManager(nc)
    await jsm.streams.add({
      name: 'FENCE_DUP',
      subjects: ['fdup.log.>'],
      storage: StorageType.File,
      duplicate_window: 120 * 1e9,
    })
    const js = jetstream(nc)
    const subject = 'fdup.log.3'
    const a1 = await js.publish(subject, encode({ owner: 'A', n: 1 }), {
      msgID: 'h.3.1',
      expect: { lastSubjectSequence: 0 },
    })
    expect(a1).toMatchObject({ seq: 1, duplicate: false })
    const b2 = await js.publish(subject, encode({ owner: 'B', n: 2, claim: true }), {
      msgID: 'h.3.2',
      expect: { lastSubjectSequence: a1.seq },
    })
    expect(b2).toMatchObject({ seq: 2, duplicate: false })
    // stale A, not knowing B's claim, appends its record 2 with the same id and a stale expectation
    const stale = await js.publish(subject, encode({ owner: 'A', n: 2 }), {
      msgID: 'h.3.2',
      expect: { lastSubjectSequence: a1.seq },
    })
    expect(stale, 'stale append answered as a duplicate of the new owner message').toMatchObject({
      seq: b2.seq,
      duplicate: true,
    })
    // the stream holds B's claim, not A's record
    const stored = await jsm.streams.getMessage('FENCE_DUP', { last_by_subj: subject })
    expect(stored?.seq).toBe(b2.seq)
    expect(decode(stored!.data)).toEqual({ owner: 'B', n: 2, claim: true })
    // A, taking the answer as its own success, appends record 3 after "its" seq: stored
    const a3 = await js.publish(subject, encode({ owner: 'A', n: 3 }), {
      msgID: 'h.3.3',
      expect: { lastSubjectSequence: stale.seq },
    })
    expect(a3).toMatchObject({ seq: 3, duplicate: false })
    // and B's own record 3 is then answered as a duplicate of A's: split brain A1, B2, A3
    const b3 = await js.publish(subject, encode({ owner: 'B', n: 3 }), {
      msgID: 'h.3.3',
      expect: { lastSubjectSequence: b2.seq },
    })
    expect(b3).toMatchObject({ seq: a3.seq, duplicate: true })
    await jsm.streams.delete('FENCE_DUP')
    await nc.close()
  })
})

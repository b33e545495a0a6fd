/**
 * A hub deleted and created again with another partition count on a 3-server NATS cluster, while a
 * client connected to another server than the node's is in use: the client hears the creation of
 * the hub's metadata stream across the cluster's routes (runtime/client/hub-guard.ts) and refuses
 * its next call, naming both partition counts, without sending anything to the new hub. The same
 * on one server is in hub-deleted.test.ts.
 */
import { jetstreamManager } from '@nats-io/jetstream'
import { afterEach, describe, expect, it } from 'vitest'
import { Client, HubNotFoundError, Node, silentLogger, type NodeOptions } from '../../runtime/index.ts'
import { closeConnection, connectTo } from '../../runtime/nats/connect.ts'
import { deleteHub } from '../../runtime/nats/hub.ts'
import { Counter } from '../fixtures/entities.ts'
import { keysPerPartition, useNatsCluster } from '../tooling/harness.ts'

const nats = useNatsCluster(3)
const PARTITIONS = 4
const opened: Array<Node | Client> = []
afterEach(async () => {
  for (const x of opened.splice(0).reverse()) await (x instanceof Node ? x.stop() : x.close()).catch(() => {})
})

/** The value `attempt` settles with, or the error it rejects with, and how long it took. */
async function outcome(attempt: Promise<unknown>): Promise<{ result: unknown; ms: number }> {
  const started = Date.now()
  const result = await attempt.catch((e: unknown) => e)
  return { result, ms: Date.now() - started }
}

describe('a hub deleted and created again on a three-server cluster', () => {
  it('a client on another server than the node refuses its next call, naming both counts, and sends nothing to the new hub', async () => {
    const hub = 'recreated-cluster'
    const [serverA, serverB] = nats.urls as [string, string, string]
    const options = (nodeId: string, partitions: number): NodeOptions => ({
      servers: serverA,
      hub,
      nodeId,
      registry: [Counter],
      partitions,
      // as a hub on a cluster is run: the metadata stream the client reads elects its leader anew
      replicas: 3,
      heartbeatMs: 200,
      leaseMs: 1000,
      logger: silentLogger,
    })
    const a = await Node.start(options('a', PARTITIONS))
    opened.push(a)
    const client = await Client.connect({ servers: serverB, hub })
    opened.push(client)
    // the client and the node talk to different servers: the advisory crosses a route
    expect(client.nc.info?.port, "the client's server").toBe(nats.servers[1]!.port)
    expect(a.nc.info?.port, "the node's server").toBe(nats.servers[0]!.port)
    const keys = keysPerPartition(PARTITIONS)
    for (const key of keys) expect(await client.entity(Counter, key).call.add(1)).toBeUndefined()
    for (const key of keys) expect(await client.entity(Counter, key).call.get()).toBe(1)

    // `basalt hub delete --force`, then a node that creates the hub anew with twice the partitions
    const admin = await connectTo(serverA, 'hub-delete')
    try {
      await deleteHub(admin, hub)
      const why = await a.ended
      expect(why).toBeInstanceOf(HubNotFoundError)
      const c = await Node.start(options('c', 2 * PARTITIONS))
      opened.push(c)
      const refusal =
        `hub '${hub}' was deleted and created again since this client connected, now with 8 partitions ` +
        '(this client routes by the 4 it had): connect again'
      for (const key of keys) {
        const { result, ms } = await outcome(client.entity(Counter, key).call.add(1))
        expect(result, `call ${key}`).toBeInstanceOf(HubNotFoundError)
        expect((result as Error).message, `call ${key}`).toBe(refusal)
        // heard (or read after a "no responders") at once: not after a call timeout
        expect(ms, `ms before call ${key} was refused`).toBeLessThan(2_000)
      }
      expect(client.hubReplaced).toBe(true)
      for (const attempt of [
        client.entity(Counter, keys[0]!).signal.add(1),
        client.readEntityState(Counter, keys[0]!),
      ]) {
        const { result } = await outcome(attempt)
        expect(result).toBeInstanceOf(HubNotFoundError)
        expect((result as Error).message).toBe(refusal)
      }
      // nothing the client sent reached the new hub: its mailboxes and dead letters are empty
      const jsm = await jetstreamManager(admin)
      expect((await jsm.streams.info(`BASALT_${hub}_MBX`)).state.messages, 'mailbox messages').toBe(0)
      expect((await jsm.streams.info(`BASALT_${hub}_DLQ`)).state.messages, 'dead letters').toBe(0)
      // a new client on the same server routes by the new count, and finds none of the old counts
      const fresh = await Client.connect({ servers: serverB, hub })
      opened.push(fresh)
      expect(fresh.partitionCount).toBe(2 * PARTITIONS)
      for (const key of keys) {
        expect(await fresh.entity(Counter, key).call.get(), `${key} in the new hub`).toBe(0)
        await fresh.entity(Counter, key).signal.add(2)
        expect(await fresh.entity(Counter, key).call.get(), `${key} after one add(2)`).toBe(2)
      }
      expect((await jsm.streams.info(`BASALT_${hub}_DLQ`)).state.messages, 'dead letters').toBe(0)
    } finally {
      await closeConnection(admin)
    }
  }, 60_000)
})

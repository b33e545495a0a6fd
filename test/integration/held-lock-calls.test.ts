/**
 * Calls made with a lock request while a node of the previous version may run on the hub (a node
 * record that does not list the wire feature `f:lock-ops`): the placement agent's gate
 * (`everyNodeHas`) follows every node record, a crashed one until the leader deletes it; it reaches
 * partitions on worker threads; and calls held back wait in the instance record (`lk`) for the
 * grant — across a SIGKILL of the node, sent exactly once, with exact balances. Real nats-server.
 */
import { afterEach, describe, expect, it } from 'vitest'
import path from 'node:path'
import { Client, Node, silentLogger } from '../../runtime/index.ts'
import { closeConnection, connectTo } from '../../runtime/nats/connect.ts'
import { ensureHub } from '../../runtime/nats/hub.ts'
import { decode, encode, itemKey, type KV } from '../../runtime/nats/index.ts'
import type { ActorMessage, EntityOp } from '../../actors/wire/index.ts'
import type { InstanceRecord } from '../../runtime/instances/index.ts'
import { LOCK_OPS, PlacementAgent, type NodeRecord, type PlacementOptions } from '../../placement/index.ts'
import { Account, carriedTransfer, holdAccount } from '../fixtures/workflows.ts'
import { repoRoot, spawnTs, useNatsServer, waitFor, type SpawnedTs } from '../tooling/harness.ts'

const nats = useNatsServer()
const children: SpawnedTs[] = []
afterEach(() => {
  for (const c of children.splice(0)) c.kill('SIGKILL')
})

/** A bare placement agent with a 100 ms heartbeat and a 400 ms lease. */
function agentOptions(nodeId: string, types: string[] | undefined): PlacementOptions {
  return {
    nodeId,
    host: 'test',
    partitions: 2,
    heartbeatMs: 100,
    leaseMs: 400,
    logger: silentLogger,
    running: () => [],
    onChange: () => {},
    onLeaseLost: () => {},
    ...(types === undefined ? {} : { types }),
  }
}

/** The section an instance record holds (`lk`), read from the state bucket once snapshotted. */
async function sectionOf(state: KV, p: number, id: string): Promise<InstanceRecord['lk'] | null> {
  const entry = await state.get(itemKey.instance(p, id))
  if (entry === null || entry.operation !== 'PUT') return null
  return (decode(entry.value, 'instance') as InstanceRecord).lk ?? null
}

/** Waits until the stored record of instance `id` (on partition p) holds a section with `calls` held calls. */
async function heldCalls(state: KV, p: number, id: string, calls: number): Promise<EntityOp[]> {
  let held: EntityOp[] = []
  await waitFor(async () => {
    held = (await sectionOf(state, p, id))?.[2] ?? []
    return held.length === calls
  }, `record of ${id} holding ${calls} calls for the grant`)
  return held
}

describe('the lock-ops gate of a placement agent', () => {
  it('holds only while every node record lists the feature; a crashed node counts until the leader deletes it', async () => {
    const nc = await connectTo({ servers: nats.url }, 'gate-agent-test')
    const agents: PlacementAgent[] = []
    const start = async (nodeId: string, types: string[] | undefined) => {
      const agent = await PlacementAgent.start(hub.metaKv, agentOptions(nodeId, types))
      agents.push(agent)
      return agent
    }
    const current = ['e:Account', LOCK_OPS]
    const hub = await ensureHub(nc, 'gate-agent', { partitions: 2 })
    try {
      const a = await start('a', current)
      await waitFor(() => a.everyNodeHas(LOCK_OPS) && a.isLeader, 'a alone: the feature everywhere')
      // a node of the previous version joins: carried calls stop, and it is given nothing
      const old = await start('old', ['e:Account'])
      await waitFor(() => a.live().includes('old'), 'a sees the node of the previous version')
      expect(a.everyNodeHas(LOCK_OPS)).toBe(false)
      expect(old.everyNodeHas(LOCK_OPS)).toBe(false)
      expect(a.eligible()).toEqual(['a'])
      await waitFor(() => [0, 1].every((p) => a.assignment(p)?.node === 'a'), 'every partition on a')
      // another node of this version changes nothing while the old record is there
      const b = await start('b', current)
      await waitFor(() => b.live().includes('old') && b.live().includes('a'), 'b sees both')
      expect(b.everyNodeHas(LOCK_OPS)).toBe(false)
      expect(a.eligible()).toEqual(['a', 'b'])
      // the old node crashes: its record holds the feature back until the leader deletes it
      old.close()
      expect(a.everyNodeHas(LOCK_OPS)).toBe(false)
      await waitFor(
        () => a.everyNodeHas(LOCK_OPS) && b.everyNodeHas(LOCK_OPS),
        'the leader deleted the crashed record',
      )
      // a record without a registry (an older build) holds it back too; a graceful leave ends that
      const ancient = await start('ancient', undefined)
      await waitFor(() => !a.everyNodeHas(LOCK_OPS), 'a sees the older build')
      expect(a.eligible()).toEqual(['a', 'b'])
      await ancient.leave()
      await waitFor(() => a.everyNodeHas(LOCK_OPS), 'the older build left')
    } finally {
      for (const agent of agents) agent.close()
      await closeConnection(nc)
    }
  })
})

describe('calls made with a lock request on partition threads', () => {
  it('wait in the record while a node of the previous version is on the hub, and travel once it left', async () => {
    const hub = 'gate-threads'
    const nc = await connectTo({ servers: nats.url }, 'gate-threads-test')
    const created = await ensureHub(nc, hub, { partitions: 4 })
    // the heartbeats of a node of the previous version (no wire feature), from before the node starts
    const previous = async () => {
      const record: NodeRecord = {
        id: 'previous',
        host: 'test',
        pid: 1,
        started: Date.now(),
        beat: 1,
        at: Date.now(),
        partitions: [],
        types: ['e:Account', 'o:carriedTransfer', 'o:holdAccount'],
      }
      await created.metaKv.put('node.previous', encode(record))
    }
    await previous()
    const beating = setInterval(() => void previous().catch(() => {}), 150)
    const node = await Node.start({
      servers: nats.url,
      hub,
      registryModule: path.join(repoRoot, 'test/fixtures/threads-registry.ts'),
      workers: 2,
      heartbeatMs: 200,
      leaseMs: 1000,
      snapshotIntervalMs: 200,
      logger: silentLogger,
    })
    const client = await Client.connect({ servers: nats.url, hub })
    try {
      expect(node.placement!.everyNodeHas(LOCK_OPS)).toBe(false)
      const [dst, src] = ['a-dst!1', 'z-src!2'] // dst is locked first, and held by `holder`
      await client.entity(Account, src).call.deposit(10)
      const holder = await client.start(holdAccount, dst, { instanceId: 'holder!0' })
      await waitFor(async () => (await client.getLock(Account, dst)) === holder, `${holder} holds ${dst}`)
      const held = await client.start(
        carriedTransfer,
        { from: src, to: dst, amount: 3 },
        { instanceId: 'held!3' },
      )
      const calls = await heldCalls(created.state, 3, held, 2)
      expect(calls.map((c) => [c.key, c.op, c.a])).toEqual([
        [src, 'withdraw', [3]],
        [dst, 'deposit', [3]],
      ])
      // the node of the previous version leaves: from now on the calls travel with the request
      clearInterval(beating)
      await created.metaKv.delete('node.previous')
      await waitFor(
        () => node.placement!.everyNodeHas(LOCK_OPS),
        'the node sees every record with the feature',
      )
      await new Promise((r) => setTimeout(r, 200)) // (the threads' flag follows at the next reconcile)
      const carried = await client.start(
        carriedTransfer,
        { from: src, to: dst, amount: 3 },
        { instanceId: 'carried!3' },
      )
      // both lock requests wait at dst behind the holder: only the second carries its calls
      let queue: ActorMessage[] = []
      await waitFor(async () => {
        const entry = await created.state.get(itemKey.lock(1, 'Account', dst))
        if (entry === null || entry.operation !== 'PUT') return false
        queue = (decode(entry.value, 'lock') as [string, ActorMessage[]])[1]
        return queue.length === 2
      }, `two lock requests queued at ${dst}`)
      const requests = queue.map((m) => (m.k === 'lock' ? [m.o[0], m.ops?.length ?? 0] : [m.k, -1]))
      expect(requests).toEqual([
        [held, 0],
        [carried, 2],
      ])
      // nothing held in the record (stored by partition 3's own snapshot, which may come a little later)
      await waitFor(
        async () => (await sectionOf(created.state, 3, carried))?.length === 2,
        `stored record of ${carried}: a section with no held calls`,
      )
      await client.raiseEvent(holder, 'go')
      for (const id of [held, carried]) {
        const done = await client.waitForCompletion(id, { timeoutMs: 20_000 })
        expect(done.status, id).toBe('Completed')
        expect(done.output, id).toBe(3)
      }
      expect(await client.entity(Account, src).call.balance()).toBe(4)
      expect(await client.entity(Account, dst).call.balance()).toBe(6)
      const scheduled = async (id: string) => (await client.getHistory(id)).filter((e) => e.e === 'scheduled')
      expect(await scheduled(held)).toEqual(await scheduled(carried))
    } finally {
      clearInterval(beating)
      await client.close()
      await node.stop()
      await closeConnection(nc)
    }
  })
})

describe('calls held for a grant across a crash', () => {
  it('are sent once the grant reaches the recovered partition, exactly once', async () => {
    const hub = 'gate-crash'
    const start = (options: Record<string, unknown>) => {
      const child = spawnTs('test/fixtures/node-process.ts', [
        nats.url,
        hub,
        JSON.stringify({
          partitions: 4,
          heartbeatMs: 250,
          leaseMs: 1000,
          snapshotIntervalMs: 200,
          ...options,
        }),
      ])
      children.push(child)
      return child
    }
    // a node that withholds the feature: its sections hold their calls for the grant
    let node = start({ wireFeatures: [] })
    await node.waitForLine(/^ready$/, 30_000)
    const client = await Client.connect({ servers: nats.url, hub, callTimeoutMs: 30_000 })
    const nc = await connectTo({ servers: nats.url }, 'gate-crash-test')
    try {
      const { state } = await ensureHub(nc, hub)
      const dst = 'a-crash-dst!1'
      const sources = Array.from({ length: 8 }, (_, i) => `z-crash-src-${i}!2`)
      await Promise.all(sources.map((s) => client.entity(Account, s).call.deposit(10)))
      const holder = await client.start(holdAccount, dst, { instanceId: 'crash-holder!0' })
      await waitFor(async () => (await client.getLock(Account, dst)) === holder, `${holder} holds ${dst}`)
      const ids = await Promise.all(
        sources.map((from, i) =>
          client.start(carriedTransfer, { from, to: dst, amount: i + 1 }, { instanceId: `crash-t-${i}!3` }),
        ),
      )
      for (const id of ids) await heldCalls(state, 3, id, 2)
      node.kill('SIGKILL')
      await node.exited
      // the new node has the feature (an upgrade): the held calls still go at the grant, replayed
      // from history at every step
      node = start({ alwaysReplay: true })
      await node.waitForLine(/^ready$/, 30_000)
      await client.raiseEvent(holder, 'go')
      for (const [i, id] of ids.entries()) {
        const done = await client.waitForCompletion(id, { timeoutMs: 30_000 })
        expect(done.status, id).toBe('Completed')
        expect(done.output, id).toBe(i + 1)
        const history = await client.getHistory(id)
        const completed = history.filter((e) => e.e === 'completed').map((e) => (e as { seq: number }).seq)
        expect(completed.sort(), `completions in ${id}`).toEqual([0, 1, 2]) // the grant and each call, once
      }
      const balances = await Promise.all(sources.map((s) => client.entity(Account, s).call.balance()))
      expect(balances).toEqual(sources.map((_, i) => 10 - (i + 1)))
      expect(await client.entity(Account, dst).call.balance()).toBe(36)
      for (const key of [dst, ...sources]) expect(await client.getLock(Account, key), key).toBe(null)
    } finally {
      await client.close()
      await closeConnection(nc)
      node.kill('SIGKILL')
    }
  }, 120_000)
})

/**
 * Outcomes of calls made with a lock request ride with the request to the grant (a request waits
 * on the entity's local queue, attached to its call, and leaves in the round the call completed).
 * This kills the node (SIGKILL) twice in the middle of many concurrent transfers whose balance
 * reads travel that way — the first time while requests that carry an outcome wait in the lock
 * queue of an account another instance holds — and checks the exact outcome: every instance completed, each transfer
 * applied exactly once (the balances are what the transfers' answers add up to), the total kept,
 * no account overdrawn, no lock held. Real nats-server, a node in its own process.
 */
import { afterEach, describe, expect, it } from 'vitest'
import { Client } from '../../runtime/index.ts'
import { closeConnection, connectTo } from '../../runtime/nats/connect.ts'
import { ensureHub } from '../../runtime/nats/hub.ts'
import { decode, itemKey } from '../../runtime/nats/index.ts'
import type { ActorMessage } from '../../actors/wire/index.ts'
import { Account, checkedCarriedTransfer, holdAccount } from '../fixtures/workflows.ts'
import { spawnTs, useNatsServer, waitFor, type SpawnedTs } from '../tooling/harness.ts'

const nats = useNatsServer()
const children: SpawnedTs[] = []
afterEach(() => {
  for (const c of children.splice(0)) c.kill('SIGKILL')
})

describe('call outcomes riding with lock requests across crashes', () => {
  it('leave exact balances: each transfer once, total kept, none overdrawn, no lock held', async () => {
    const hub = 'carried-crash'
    const start = (alwaysReplay: boolean) => {
      const child = spawnTs('test/fixtures/node-process.ts', [
        nats.url,
        hub,
        JSON.stringify({
          partitions: 4,
          heartbeatMs: 250,
          leaseMs: 1000,
          snapshotIntervalMs: 200,
          alwaysReplay,
        }),
      ])
      children.push(child)
      return child
    }
    let node = start(false)
    await node.waitForLine(/^ready$/, 30_000)
    const client = await Client.connect({ servers: nats.url, hub, callTimeoutMs: 30_000 })
    const nc = await connectTo({ servers: nats.url }, 'carried-crash-test')
    try {
      const { state } = await ensureHub(nc, hub)
      // six accounts over the four partitions (the key's `!n` pins it), 20 each
      const accounts = Array.from({ length: 6 }, (_, i) => `acct-${i}!${i % 4}`)
      await Promise.all(accounts.map((a) => client.entity(Account, a).call.deposit(20)))
      let seed = 11
      const random = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31
      const transfers = Array.from({ length: 120 }, () => {
        const f = Math.floor(random() * accounts.length)
        const t = (f + 1 + Math.floor(random() * (accounts.length - 1))) % accounts.length
        return { from: accounts[f]!, to: accounts[t]!, amount: 1 + Math.floor(random() * 12) }
      })
      const startAll = (batch: typeof transfers) =>
        Promise.all(batch.map((t) => client.start(checkedCarriedTransfer, t)))
      // the account that sorts last is held: a transfer to or from it locks the other account, reads
      // its balance there, and waits at the held one with that outcome in its request
      const held = accounts[5]!
      const holder = await client.start(holdAccount, held, { instanceId: 'carried-crash-holder!0' })
      await waitFor(async () => (await client.getLock(Account, held)) === holder, `${holder} holds ${held}`)
      const ids = await startAll(transfers.slice(0, 60))
      // the node is killed once a snapshot stored such a request in the held account's lock queue
      await waitFor(async () => {
        const entry = await state.get(itemKey.lock(1, 'Account', held))
        if (entry === null || entry.operation !== 'PUT') return false
        const queue = (decode(entry.value, 'lock') as [string, ActorMessage[]])[1]
        return queue.some((m) => m.k === 'lock' && (m.res?.length ?? 0) > 0)
      }, `a request with a riding outcome queued at ${held}`)
      node.kill('SIGKILL')
      await node.exited
      // the next owner replays from history at every step
      node = start(true)
      await node.waitForLine(/^ready$/, 30_000)
      await client.raiseEvent(holder, 'go')
      // a second wave; once one of it completed the node is killed again while others are under way
      ids.push(...(await startAll(transfers.slice(60))))
      await client.waitForCompletion(ids[60]!, { timeoutMs: 30_000 })
      node.kill('SIGKILL')
      await node.exited
      node = start(false)
      await node.waitForLine(/^ready$/, 30_000)

      const expected = new Map(accounts.map((a) => [a, 20]))
      let applied = 0
      for (const [i, id] of ids.entries()) {
        const done = await client.waitForCompletion(id, { timeoutMs: 60_000 })
        expect(done.status, `transfer ${id}`).toBe('Completed')
        const history = await client.getHistory(id)
        const completed = history.filter((e) => e.e === 'completed').map((e) => (e as { seq: number }).seq)
        // the grant (0), the two balance reads (1, 2), and the withdraw and deposit (3, 4) if it moved
        const moved = done.output === true
        expect(completed.sort(), `completions in ${id}`).toEqual(moved ? [0, 1, 2, 3, 4] : [0, 1, 2])
        if (!moved) continue
        const t = transfers[i]!
        expected.set(t.from, expected.get(t.from)! - t.amount)
        expected.set(t.to, expected.get(t.to)! + t.amount)
        applied++
      }
      expect(applied, 'some transfers moved money').toBeGreaterThan(0)
      const balances = await Promise.all(accounts.map((a) => client.entity(Account, a).call.balance()))
      expect(balances, 'each applied transfer exactly once').toEqual(accounts.map((a) => expected.get(a)))
      expect(balances.reduce((x, y) => x + y, 0)).toBe(120)
      for (const b of balances) expect(b, `balances ${balances.join(', ')}`).toBeGreaterThanOrEqual(0)
      for (const a of accounts) expect(await client.getLock(Account, a), a).toBe(null)
      expect((await client.waitForCompletion(holder, { timeoutMs: 30_000 })).status).toBe('Completed')
    } finally {
      await client.close()
      await closeConnection(nc)
      node.kill('SIGKILL')
    }
  }, 180_000)
})

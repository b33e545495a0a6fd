/**
 * How many partition-to-partition messages and mailbox publishes a critical section costs: the
 * lock request locks every entity of one partition before it leaves that partition, a section
 * whose instance and entities share a partition publishes nothing, and a release issued with the
 * last calls leaves in the same publish as them (and runs after them: transfers stay exclusive).
 * Keys end in `!<n>` to pin their partition. Both replay modes, against a real nats-server.
 */
import { describe, expect, it } from 'vitest'
import { Node } from '../../runtime/index.ts'
import { orchestration } from '../../actors/orchestration/index.ts'
import { Account } from '../fixtures/workflows.ts'
import { useHub, useNatsServer, waitFor } from '../tooling/harness.ts'

/** Locks two accounts, deposits into both, releases. */
const lockPair = orchestration('lockPair', function* (ctx, keys: [string, string]) {
  const lock = yield* ctx.lock(ctx.entityRef(Account, keys[0]), ctx.entityRef(Account, keys[1]))
  try {
    yield* ctx.all([ctx.callEntity(Account, keys[0]).deposit(1), ctx.callEntity(Account, keys[1]).deposit(1)])
    return 'done'
  } finally {
    lock.release()
  }
})

/** A transfer that releases right after sending its last calls (the unlock travels with them). */
const transferEarlyRelease = orchestration(
  'transferEarlyRelease',
  function* (ctx, t: { from: string; to: string; amount: number }) {
    const lock = yield* ctx.lock(ctx.entityRef(Account, t.from), ctx.entityRef(Account, t.to))
    try {
      if ((yield* ctx.callEntity(Account, t.from).balance()) < t.amount) return false
      const calls = ctx.all([
        ctx.callEntity(Account, t.from).withdraw(t.amount),
        ctx.callEntity(Account, t.to).deposit(t.amount),
      ])
      lock.release()
      yield* calls
      return true
    } finally {
      lock.release()
    }
  },
)

const registry = [Account, lockPair, transferEarlyRelease]
const nats = useNatsServer()

/** Partition messages and mailbox publishes made so far by the node's partitions. */
function hops(node: Node): { messages: number; publishes: number } {
  let messages = 0
  let publishes = 0
  for (const partition of node.partitions.values()) {
    messages += partition.outboxMessages
    publishes += partition.outboxPublishes
  }
  return { messages, publishes }
}

for (const alwaysReplay of [false, true]) {
  describe(`lock hops (alwaysReplay: ${alwaysReplay})`, () => {
    const hub = `lock-hops-${alwaysReplay ? 'replay' : 'cached'}`
    const stack = useHub(nats, { hub, registry, partitions: 4, alwaysReplay })
    const k = (name: string, p: number) => `${name}-${alwaysReplay}!${p}`

    /**
     * Waits until the node's partitions sent `messages` more partition messages than `before`,
     * then checks that no more left and that they took at most `publishes` mailbox publishes.
     */
    async function hopsSettle(
      before: { messages: number; publishes: number },
      messages: number,
      publishes: number,
      phase: string,
    ): Promise<void> {
      let found = { messages: 0, publishes: 0 }
      const now = () => {
        const h = hops(stack.node)
        return (found = { messages: h.messages - before.messages, publishes: h.publishes - before.publishes })
      }
      try {
        await waitFor(() => now().messages >= messages, `${phase}: ${messages} partition messages`)
      } catch (err) {
        throw new Error(`${(err as Error).message}; found ${JSON.stringify(found)}`)
      }
      // a query answered after a commit: the section's last messages were those counted
      await stack.client.getLock(Account, k('probe', 0))
      expect(now().messages, `${phase}: partition messages`).toBe(messages)
      expect(found.publishes, `${phase}: mailbox publishes`).toBeLessThanOrEqual(publishes)
    }

    it('locking two entities of one partition sends one lock message there', async () => {
      const a = k('pair-a', 1)
      const b = k('pair-b', 1)
      const before = hops(stack.node)
      const id = await stack.client.start(lockPair, [a, b], { instanceId: k('pair', 2) })
      const done = await stack.client.waitForCompletion(id, { timeoutMs: 10_000 })
      expect(done.status, `pair ${id}`).toBe('Completed')
      // 2 → 1: one lock request (both entities are locked there), the two calls (one publish), the
      // two unlocks (one publish); 1 → 2: the grant, the two results (one or two publishes)
      await hopsSettle(before, 8, 6, `lock pair ${id}`)
      expect(await stack.client.getLock(Account, a)).toBe(null)
      expect(await stack.client.getLock(Account, b)).toBe(null)
      expect(await stack.client.entity(Account, a).call.balance()).toBe(1)
    })

    it('a critical section on the partition of its instance publishes nothing', async () => {
      const a = k('local-a', 3)
      const b = k('local-b', 3)
      const before = hops(stack.node)
      const id = await stack.client.start(lockPair, [a, b], { instanceId: k('local', 3) })
      const done = await stack.client.waitForCompletion(id, { timeoutMs: 10_000 })
      expect(done.status, `local section ${id}`).toBe('Completed')
      await hopsSettle(before, 0, 0, `local section ${id}`)
      expect(await stack.client.getLock(Account, a)).toBe(null)
      expect(await stack.client.entity(Account, b).call.balance()).toBe(1)
    })

    it('a release sent with the last calls shares their publish and runs after them', async () => {
      const from = k('early-from', 1)
      const to = k('early-to', 2)
      await stack.client.entity(Account, from).call.deposit(10)
      const before = hops(stack.node)
      const id = await stack.client.start(
        transferEarlyRelease,
        { from, to, amount: 4 },
        { instanceId: k('early', 3) },
      )
      const done = await stack.client.waitForCompletion(id, { timeoutMs: 10_000 })
      expect(done.status, `early release ${id}`).toBe('Completed')
      expect(done.output).toBe(true)
      // lock from, lock to, grant, balance and its result, withdraw + unlock (one publish),
      // deposit + unlock (one publish), two results: 11 messages in 9 publishes
      // (released after the results instead: the unlocks would be two more publishes, 11)
      await hopsSettle(before, 11, 9, `early release ${id}`)
      expect(await stack.client.getLock(Account, from)).toBe(null)
      expect(await stack.client.getLock(Account, to)).toBe(null)
      expect(await stack.client.entity(Account, from).call.balance()).toBe(6)
      expect(await stack.client.entity(Account, to).call.balance()).toBe(4)
    })

    it('transfers that release with their last calls stay exclusive: total kept, none overdrawn', async () => {
      const accounts = [k('x', 0), k('y', 1), k('z', 2), k('w', 1)]
      await Promise.all(accounts.map((a) => stack.client.entity(Account, a).call.deposit(20)))
      let seed = 7
      const random = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31
      const ids = await Promise.all(
        Array.from({ length: 60 }, () => {
          const f = Math.floor(random() * accounts.length)
          const t = (f + 1 + Math.floor(random() * (accounts.length - 1))) % accounts.length
          const amount = 1 + Math.floor(random() * 15)
          return stack.client.start(transferEarlyRelease, { from: accounts[f]!, to: accounts[t]!, amount })
        }),
      )
      for (const id of ids) {
        const done = await stack.client.waitForCompletion(id, { timeoutMs: 30_000 })
        expect(done.status, `transfer ${id}`).toBe('Completed')
      }
      const balances = await Promise.all(accounts.map((a) => stack.client.entity(Account, a).call.balance()))
      expect(
        balances.reduce((x, y) => x + y, 0),
        `balances ${balances.join(', ')}`,
      ).toBe(80)
      for (const b of balances) expect(b, `balances ${balances.join(', ')}`).toBeGreaterThanOrEqual(0)
      for (const a of accounts) expect(await stack.client.getLock(Account, a), a).toBe(null)
    })
  })
}

/**
 * How many partition-to-partition messages and mailbox publishes a critical section costs: the
 * lock request locks every entity of one partition before it leaves that partition, a section
 * whose instance and entities share a partition publishes nothing, a call made with the lock
 * request travels in it and its outcome rides on with the request to the grant (the instance takes
 * both in one message and one step), and a release issued with the last calls travels in them
 * (`EntityOp.rl`: each entity unlocks right after its call ran, so transfers stay exclusive). On a
 * hub where a node of the previous version may run (here: a node that withholds the wire features
 * `f:lock-ops` and `f:release-ops`, or only the latter), such a call waits for the grant and goes
 * on its own (one message more), and the release goes as unlock messages of its own after the calls
 * (in the same publish): the same history and results.
 * Keys end in `!<n>` to pin their partition. Both replay modes, against a real nats-server.
 */
import { describe, expect, it } from 'vitest'
import { Node } from '../../runtime/index.ts'
import type { HistoryEvent } from '../../actors/orchestration/index.ts'
import { orchestration } from '../../actors/orchestration/index.ts'
import { Account } from '../fixtures/workflows.ts'
import { useHub, useNatsServer, waitFor, type HubFixture } from '../tooling/harness.ts'

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

/**
 * A transfer whose balance call travels with the lock request (made before waiting for the lock)
 * and whose release goes with its last calls.
 */
const transferCarried = orchestration(
  'transferCarried',
  function* (ctx, t: { from: string; to: string; amount: number }) {
    const locking = ctx.lock(ctx.entityRef(Account, t.from), ctx.entityRef(Account, t.to))
    const balance = ctx.callEntity(Account, t.from).balance()
    const lock = yield* locking
    try {
      if ((yield* balance) < t.amount) return false
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

const registry = [Account, lockPair, transferEarlyRelease, transferCarried]
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
    // a node that publishes no wire feature: to every sender, a node of the previous version is on the hub
    const held = useHub(nats, { hub: `${hub}-held`, registry, partitions: 4, alwaysReplay, wireFeatures: [] })
    // a node of the version before releases travelled with calls
    const unreleased = useHub(nats, {
      hub: `${hub}-unreleased`,
      registry,
      partitions: 4,
      alwaysReplay,
      wireFeatures: ['f:exec-seqs', 'f:lock-ops', 'f:packed-history'],
    })
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
      on: HubFixture = stack,
    ): Promise<void> {
      let found = { messages: 0, publishes: 0 }
      const now = () => {
        const h = hops(on.node)
        return (found = { messages: h.messages - before.messages, publishes: h.publishes - before.publishes })
      }
      try {
        await waitFor(() => now().messages >= messages, `${phase}: ${messages} partition messages`)
      } catch (err) {
        throw new Error(`${(err as Error).message}; found ${JSON.stringify(found)}`)
      }
      // a query answered after a commit: the section's last messages were those counted
      await on.client.getLock(Account, k('probe', 0))
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
      // lock from, lock to, grant, balance and its result, withdraw and deposit each carrying its
      // entity's release, two results: 9 messages in at most 9 publishes (with unlock messages of
      // their own, in the publishes of the calls: 11; released after the results instead: two
      // more publishes)
      await hopsSettle(before, 9, 9, `early release ${id}`)
      expect(await stack.client.getLock(Account, from)).toBe(null)
      expect(await stack.client.getLock(Account, to)).toBe(null)
      expect(await stack.client.entity(Account, from).call.balance()).toBe(6)
      expect(await stack.client.entity(Account, to).call.balance()).toBe(4)
    })

    it('a call made with the lock request travels in it, runs once its entity is locked, and its outcome rides with the request to the grant', async () => {
      const from = k('carried-from', 1)
      const to = k('carried-to', 2)
      await stack.client.entity(Account, from).call.deposit(10)
      const before = hops(stack.node)
      const id = await stack.client.start(
        transferCarried,
        { from, to, amount: 3 },
        { instanceId: k('carried', 3) },
      )
      const done = await stack.client.waitForCompletion(id, { timeoutMs: 10_000 })
      expect(done.status, `carried call ${id}`).toBe('Completed')
      expect(done.output).toBe(true)
      // lock from (with the balance call; 3 → 1), lock to with the balance's outcome (1 → 2), the
      // grant with it (2 → 3), withdraw and deposit carrying the releases, two results: 7
      // messages in at most 7 publishes (the balance's outcome going on its own, 1 → 3, would add
      // a message and a publish; a call of its own after the grant two of each)
      await hopsSettle(before, 7, 7, `carried call ${id}`)
      expect(await stack.client.getLock(Account, from)).toBe(null)
      expect(await stack.client.getLock(Account, to)).toBe(null)
      expect(await stack.client.entity(Account, from).call.balance()).toBe(7)
      expect(await stack.client.entity(Account, to).call.balance()).toBe(3)
    })

    it('a call made with the lock request waits for the grant while a node of the previous version may run', async () => {
      // `from` sorts after `to`: it is locked last, so with the call carried too its result
      // follows the grant, and both histories take their events in the same order
      const from = k('z-from', 1)
      const to = k('a-to', 2)
      const run = async (on: HubFixture, messages: number, publishes: number, phase: string) => {
        await on.client.entity(Account, from).call.deposit(10)
        const before = hops(on.node)
        const id = await on.client.start(
          transferCarried,
          { from, to, amount: 3 },
          { instanceId: k('gate', 3) },
        )
        const done = await on.client.waitForCompletion(id, { timeoutMs: 10_000 })
        expect(done.status, `${phase} ${id}`).toBe('Completed')
        expect(done.output).toBe(true)
        await hopsSettle(before, messages, publishes, `${phase} ${id}`, on)
        expect(await on.client.getLock(Account, from)).toBe(null)
        expect(await on.client.getLock(Account, to)).toBe(null)
        expect(await on.client.entity(Account, from).call.balance()).toBe(7)
        expect(await on.client.entity(Account, to).call.balance()).toBe(3)
        return (await on.client.getHistory(id)).map(({ t: _t, ...e }: HistoryEvent & { t?: number }) => e)
      }
      expect(held.node.placement!.everyNodeHas('f:lock-ops'), 'the gate is off on the held hub').toBe(false)
      expect(stack.node.placement!.everyNodeHas('f:lock-ops'), 'and on on the other').toBe(true)
      expect(unreleased.node.placement!.everyNodeHas('f:release-ops')).toBe(false)
      expect(stack.node.placement!.everyNodeHas('f:release-ops')).toBe(true)
      // lock to (3 → 2), lock from with the balance call (2 → 1), the grant with the balance's
      // outcome (1 → 3), withdraw and deposit carrying the releases, two results: 7 messages in
      // at most 7 publishes (the outcome on its own beside the grant would be one message more)
      const carried = await run(stack, 7, 7, 'carried')
      // the releases as unlock messages of their own (in the calls' publishes): 9 in at most 7
      const unlocked = await run(unreleased, 9, 7, 'released by unlock messages')
      // and the balance call sent by the instance once the grant arrived too: 11 in at most 9
      const sentAfter = await run(held, 11, 9, 'held for the grant')
      // the same events in the same order; only the step boundaries differ (`step` markers): the
      // carried outcome is taken in the grant's step, the held call's in a step of its own. The
      // withdraw and the deposit run at once on two partitions: their two results may come in
      // either order, so a run of results is compared by call, not by arrival
      const events = (history: typeof carried) => {
        const out = history.filter((e) => e.e !== 'step')
        const seqOf = (e: (typeof out)[number]) => (e.e === 'completed' ? (e as { seq: number }).seq : -1)
        for (let i = 0; i < out.length;) {
          let j = i
          while (j < out.length && out[j]!.e === 'completed') j++
          if (j - i > 1) out.splice(i, j - i, ...out.slice(i, j).sort((a, b) => seqOf(a) - seqOf(b)))
          i = Math.max(j, i + 1)
        }
        return out
      }
      expect(events(sentAfter)).toEqual(events(carried))
      expect(events(unlocked)).toEqual(events(carried))
      const grant = carried.findIndex((e) => e.e === 'completed' && e.seq === 0)
      const balance = carried.findIndex((e) => e.e === 'completed' && e.seq === 1)
      expect(grant, 'the grant is in the history before the balance').toBeGreaterThanOrEqual(0)
      expect(balance).toBeGreaterThan(grant)
      expect(
        carried.slice(grant, balance).some((e) => e.e === 'step'),
        'the grant and the balance in one step',
      ).toBe(false)
      expect(
        sentAfter
          .slice(sentAfter.findIndex((e) => e.e === 'completed' && e.seq === 0))
          .some((e) => e.e === 'step'),
      ).toBe(true)
    })

    it('transfers that release with their last calls stay exclusive: total kept, none overdrawn', async () => {
      await exclusiveTransfers(stack)
    })

    it('so do transfers whose calls wait for the grant (a node of the previous version may run)', async () => {
      await exclusiveTransfers(held)
    })

    async function exclusiveTransfers(stack: HubFixture): Promise<void> {
      const accounts = [k('x', 0), k('y', 1), k('z', 2), k('w', 1)]
      await Promise.all(accounts.map((a) => stack.client.entity(Account, a).call.deposit(20)))
      let seed = 7
      const random = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31
      const ids = await Promise.all(
        Array.from({ length: 60 }, () => {
          const f = Math.floor(random() * accounts.length)
          const t = (f + 1 + Math.floor(random() * (accounts.length - 1))) % accounts.length
          const amount = 1 + Math.floor(random() * 15)
          const def = random() < 0.5 ? transferEarlyRelease : transferCarried
          return stack.client.start(def, { from: accounts[f]!, to: accounts[t]!, amount })
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
    }
  })
}

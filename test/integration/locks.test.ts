/**
 * Locks of critical sections never outlive their holder: terminate, purge, a failure inside the
 * section and continue-as-new all release them, a grant that reaches an instance which no longer
 * waits for it is given back, and `getLock` / `forceUnlock` show and release a lock by hand. Both
 * replay modes, against a real nats-server.
 */
import { describe, expect, it } from 'vitest'
import { Client, Node, TimeoutError, silentLogger } from '../../runtime/index.ts'
import { orchestration } from '../../actors/orchestration/index.ts'
import { Account } from '../fixtures/workflows.ts'
import { useHub, useNatsServer, waitFor } from '../tooling/harness.ts'

/** Locks an account, then holds it until the event `go` arrives. */
const holdLock = orchestration('holdLock', function* (ctx, key: string) {
  const lock = yield* ctx.lock(ctx.entityRef(Account, key))
  yield* ctx.waitForEvent('go')
  lock.release()
  return 'released'
})

/** Locks an account, deposits into it and releases. */
const lockAndDeposit = orchestration('lockAndDeposit', function* (ctx, key: string) {
  const lock = yield* ctx.lock(ctx.entityRef(Account, key))
  try {
    yield* ctx.callEntity(Account, key).deposit(1)
    return yield* ctx.callEntity(Account, key).balance()
  } finally {
    lock.release()
  }
})

/** Locks an account and then fails inside the critical section (no release). */
const failInLock = orchestration('failInLock', function* (ctx, key: string) {
  yield* ctx.lock(ctx.entityRef(Account, key))
  yield* ctx.callEntity(Account, key).balance()
  throw new Error(`failed while holding ${key}`)
})

/** Locks an account and continues as new without releasing it; the next execution locks again. */
const lockThenContinue = orchestration(
  'lockThenContinue',
  function* (ctx, input: { key: string; n: number }) {
    yield* ctx.lock(ctx.entityRef(Account, input.key))
    if (input.n === 0) return ctx.continueAsNew({ key: input.key, n: 1 })
    return 'second execution locked too'
  },
)

/** Calls one locked account twice at once, which a critical section refuses: the step fails. */
const twiceAtOnce = orchestration('twiceAtOnce', function* (ctx, key: string) {
  const lock = yield* ctx.lock(ctx.entityRef(Account, key))
  try {
    yield* ctx.all([ctx.callEntity(Account, key).withdraw(10), ctx.callEntity(Account, key).deposit(10)])
  } finally {
    lock.release()
  }
})

const registry = [Account, holdLock, lockAndDeposit, failInLock, lockThenContinue, twiceAtOnce]
const nats = useNatsServer()

for (const alwaysReplay of [false, true]) {
  describe(`locks (alwaysReplay: ${alwaysReplay})`, () => {
    const hub = `locks-${alwaysReplay ? 'replay' : 'cached'}`
    const stack = useHub(nats, { hub, registry, partitions: 4, alwaysReplay })
    const k = (name: string) => `${name}-${alwaysReplay}`

    /** Waits until `key`'s lock holder is `holder` (null: free). */
    async function lockHeldBy(key: string, holder: string | null, phase: string): Promise<void> {
      let found: string | null | undefined
      try {
        await waitFor(
          async () => (found = await stack.client.getLock(Account, key)) === holder,
          `${phase}: lock on Account@${key} held by ${holder}`,
        )
      } catch (err) {
        throw new Error(`${(err as Error).message}; found ${String(found)}`)
      }
    }

    /** Another orchestration can lock the entity and completes. */
    async function nextLockerCompletes(key: string, phase: string): Promise<void> {
      const next = await stack.client.start(lockAndDeposit, key)
      const done = await stack.client.waitForCompletion<number>(next, { timeoutMs: 10_000 })
      expect(done.status, `${phase}: ${next} on Account@${key}`).toBe('Completed')
    }

    it('terminate releases the locks of the instance it ends', async () => {
      const key = k('terminated')
      const holder = await stack.client.start(holdLock, key)
      await lockHeldBy(key, holder, 'after the lock was taken')
      await stack.client.terminate(holder, 'operator')
      await lockHeldBy(key, null, 'after terminate')
      await nextLockerCompletes(key, 'after terminate')
    })

    it('purge of a terminated instance leaves no lock behind', async () => {
      const key = k('purged')
      const holder = await stack.client.start(holdLock, key)
      await lockHeldBy(key, holder, 'after the lock was taken')
      await stack.client.terminate(holder)
      await stack.client.purge(holder)
      await lockHeldBy(key, null, 'after terminate and purge')
      await nextLockerCompletes(key, 'after purge')
    })

    it('a lock granted after its requester was terminated and purged is given back', async () => {
      const key = k('late-grant')
      const first = await stack.client.start(holdLock, key)
      await lockHeldBy(key, first, 'first holder')
      // the second waits in the entity's lock queue; it ends before the lock reaches it
      const second = await stack.client.start(holdLock, key)
      await waitFor(
        async () => (await stack.client.getStatus(second))?.status === 'Running',
        `second requester ${second} running`,
      )
      await stack.client.terminate(second)
      await stack.client.purge(second)
      await stack.client.raiseEvent(first, 'go')
      expect((await stack.client.waitForCompletion(first)).output).toBe('released')
      await lockHeldBy(key, null, 'after the grant to the purged instance')
      await nextLockerCompletes(key, 'after the late grant')
    })

    it('an instance that fails inside its critical section releases the lock', async () => {
      const key = k('failed')
      const id = await stack.client.start(failInLock, key)
      const done = await stack.client.waitForCompletion(id)
      expect(done.status).toBe('Failed')
      await lockHeldBy(key, null, 'after the failure')
      await nextLockerCompletes(key, 'after the failure')
      await stack.client.purge(id)
      await nextLockerCompletes(key, 'after purging the failed instance')
    })

    it('a step that fails sends none of its calls: no half transfer', async () => {
      const key = k('half')
      await stack.client.entity(Account, key).call.deposit(100)
      const done = await stack.client.waitForCompletion(await stack.client.start(twiceAtOnce, key))
      expect(done.status).toBe('Failed')
      expect(done.error?.message).toMatch(/again before its previous call completed/)
      await lockHeldBy(key, null, 'after the failed step')
      // before, the withdraw of the failing step went out: 90
      expect(await stack.client.entity(Account, key).call.balance()).toBe(100)
    })

    it('continue-as-new inside a critical section releases the lock before the next execution', async () => {
      const key = k('continued')
      const id = await stack.client.start(lockThenContinue, { key, n: 0 })
      expect((await stack.client.waitForCompletion(id)).output).toBe('second execution locked too')
      await lockHeldBy(key, null, 'after both executions')
      await nextLockerCompletes(key, 'after continue-as-new')
    })

    it('getLock names the holder and forceUnlock releases it, committed like any change', async () => {
      const key = k('forced')
      expect(await stack.client.getLock(Account, key)).toBeNull()
      const holder = await stack.client.start(holdLock, key)
      await lockHeldBy(key, holder, 'before forceUnlock')
      expect(await stack.client.forceUnlock(Account, key)).toBe(holder)
      expect(await stack.client.getLock(Account, key)).toBeNull()
      expect(await stack.client.forceUnlock(Account, key)).toBeNull()
      await nextLockerCompletes(key, 'after forceUnlock')
      // the holder's own release later does not disturb anyone
      await stack.client.raiseEvent(holder, 'go')
      expect((await stack.client.waitForCompletion(holder)).output).toBe('released')
      expect(await stack.client.getLock(Account, key)).toBeNull()
    })
  })
}

describe('locks across a restart', () => {
  it('a forced release is committed: a new node sees the entity unlocked', async () => {
    const hub = 'locks-restart'
    const key = 'restart'
    let node = await Node.start({ servers: nats.url, hub, registry, partitions: 2, logger: silentLogger })
    const client = await Client.connect({ servers: nats.url, hub })
    try {
      const holder = await client.start(holdLock, key)
      await waitFor(async () => (await client.getLock(Account, key)) === holder, `lock held by ${holder}`)
      expect(await client.forceUnlock(Account, key)).toBe(holder)
      await node.stop()
      node = await Node.start({ servers: nats.url, hub, registry, partitions: 2, logger: silentLogger })
      expect(await client.getLock(Account, key)).toBeNull()
    } finally {
      await client.close()
      await node.stop()
    }
  })
})

describe('a call that waits behind a lock', () => {
  it('times out with an error naming the instance that holds the lock', async () => {
    const hub = 'locks-timeout'
    const key = 'held'
    const node = await Node.start({ servers: nats.url, hub, registry, partitions: 2, logger: silentLogger })
    const client = await Client.connect({ servers: nats.url, hub, callTimeoutMs: 500 })
    try {
      const holder = await client.start(holdLock, key)
      await waitFor(async () => (await client.getLock(Account, key)) === holder, `lock held by ${holder}`)
      const err = await client
        .entity(Account, key)
        .call.balance()
        .catch((e: unknown) => e)
      expect(err).toBeInstanceOf(TimeoutError)
      expect((err as Error).message).toBe(
        `call Account@${key}.balance got no result in 500 ms; the request is stored and may still take effect ` +
          `(a timeout does not cancel it). Account@${key} is locked by instance '${holder}' ` +
          '(calls wait until its critical section ends; basalt entity unlock releases a stuck lock)',
      )
      // an entity nobody locked times out as before (here: never, it answers)
      expect(await client.entity(Account, 'free').call.balance()).toBe(0)
    } finally {
      await client.close()
      await node.stop()
    }
  })
})

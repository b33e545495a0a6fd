/**
 * An entity call from an orchestration that fails — the operation throws, or the entity type is
 * not registered — reaches the orchestration as a failed task it can catch, in both replay modes;
 * inside a critical section the locks are released by the orchestration's `finally`.
 */
import { describe, expect, it } from 'vitest'
import {
  Entity,
  ErrorCode,
  TaskFailedError,
  orchestration,
  type OrchestrationDefinition,
} from '../../runtime/index.ts'
import { Counter } from '../fixtures/entities.ts'
import { useHub, useNatsServer } from '../tooling/harness.ts'

/** Known to the orchestrations but not registered on the node. */
class Unregistered extends Entity<number> {
  initialState() {
    return 0
  }
  poke() {}
}

/** What an orchestration saw when its entity call failed (serialisable). */
interface Caught {
  name: string
  code: string | undefined
  causeName: string | undefined
  causeCode: string | undefined
  message: string
}

function describeCaught(err: unknown): Caught {
  const e = err as TaskFailedError
  const cause = e.cause as { name?: string; code?: string } | undefined
  return { name: e.name, code: e.code, causeName: cause?.name, causeCode: cause?.code, message: e.message }
}

const callsThrowing = orchestration('callsThrowing', function* (ctx, key: string) {
  try {
    yield* ctx.callEntity(Counter, key).failAfterAdding(5)
    return 'no error'
  } catch (err) {
    return describeCaught(err)
  }
})

const callsUnregistered = orchestration('callsUnregistered', function* (ctx, key: string) {
  try {
    yield* ctx.callEntity(Unregistered, key).poke()
    return 'no error'
  } catch (err) {
    return describeCaught(err)
  }
})

/** Fails inside its critical section; the `finally` releases the lock. */
const failsUnderLock = orchestration('failsUnderLock', function* (ctx, key: string) {
  const lock = yield* ctx.lock(ctx.entityRef(Counter, key))
  try {
    yield* ctx.callEntity(Counter, key).failAfterAdding(1)
    return 'no error'
  } finally {
    lock.release()
  }
})

const addsUnderLock = orchestration('addsUnderLock', function* (ctx, key: string) {
  const lock = yield* ctx.lock(ctx.entityRef(Counter, key))
  try {
    yield* ctx.callEntity(Counter, key).add(1)
    return yield* ctx.callEntity(Counter, key).get()
  } finally {
    lock.release()
  }
})

const registry = [Counter, callsThrowing, callsUnregistered, failsUnderLock, addsUnderLock]

const nats = useNatsServer()

for (const alwaysReplay of [false, true]) {
  describe(`failed entity calls from orchestrations (alwaysReplay: ${alwaysReplay})`, () => {
    const stack = useHub(nats, {
      hub: `callfail-${alwaysReplay ? 'replay' : 'cached'}`,
      registry,
      partitions: 4,
      alwaysReplay,
    })

    async function outputOf<I>(def: OrchestrationDefinition<I, unknown>, input: I): Promise<unknown> {
      const id = await stack.client.start(def, input)
      const done = await stack.client.waitForCompletion(id, { timeoutMs: 10_000 })
      expect(done.status, `status of ${def.name} instance ${id}`).toBe('Completed')
      return done.output
    }

    it('gets the error of an operation that throws as a task it can catch', async () => {
      const caught = (await outputOf(callsThrowing, `thrower-${alwaysReplay}`)) as Caught
      expect(caught).toMatchObject({
        name: 'TaskFailedError',
        code: ErrorCode.TaskFailed,
        causeName: 'RemoteError',
        causeCode: ErrorCode.Remote,
      })
      expect(caught.message).toMatch(/refusing after adding 5/)
      // the operation's state change was discarded
      expect(await stack.client.entity(Counter, `thrower-${alwaysReplay}`).call.get()).toBe(0)
    })

    it('gets UnknownEntityError for an entity type the node does not know', async () => {
      const caught = (await outputOf(callsUnregistered, `unknown-${alwaysReplay}`)) as Caught
      expect(caught).toMatchObject({
        name: 'TaskFailedError',
        causeName: 'UnknownEntityError',
        causeCode: ErrorCode.UnknownEntity,
      })
      expect(caught.message).toMatch(/unknown entity type 'Unregistered'/)
    })

    it('releases the lock of a critical section whose entity call failed', async () => {
      const key = `locked-${alwaysReplay}`
      const failed = await stack.client.start(failsUnderLock, key)
      const first = await stack.client.waitForCompletion(failed, { timeoutMs: 10_000 })
      expect(first.status, `status of failsUnderLock instance ${failed}`).toBe('Failed')
      expect(first.error?.message).toMatch(/refusing after adding 1/)
      // the same entity can be locked again, and its operations run
      expect(await outputOf(addsUnderLock, key)).toBe(1)
      expect(await stack.client.entity(Counter, key).call.get()).toBe(1)
    })
  })
}

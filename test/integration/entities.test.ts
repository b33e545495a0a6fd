/** Durable entities end to end on a real nats-server: ordering, calls, errors, reads, lists, watch. */
import { describe, expect, it } from 'vitest'
import { firstValueFrom, take, toArray } from 'rxjs'
import { RemoteError } from '../../runtime/index.ts'
import { Counter, Log } from '../fixtures/entities.ts'
import { useHub, useNatsServer, waitFor } from '../tooling/harness.ts'

const nats = useNatsServer()
const stack = useHub(nats, { hub: 'entities', registry: [Counter, Log], partitions: 8 })

describe('entities', () => {
  it('applies operations on one entity in the order they were sent', async () => {
    const log = stack.client.entity(Log, 'order')
    await Promise.all(Array.from({ length: 500 }, (_, i) => log.signal.append(`m${i}`)))
    const items = await log.call.items()
    expect(items).toEqual(Array.from({ length: 500 }, (_, i) => `m${i}`))
  })

  it('returns call results, typed', async () => {
    const c = stack.client.entity(Counter, 'calls')
    await c.signal.add(40)
    const n: number = await c.call.get()
    expect(n).toBe(40)
    expect(await c.call.slowAdd(2)).toBe(42)
  })

  it('reports an operation that throws to its caller and discards its state change', async () => {
    const c = stack.client.entity(Counter, 'thrower')
    await c.signal.add(5)
    const err = await c.call.failAfterAdding(100).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(RemoteError)
    expect((err as RemoteError).remoteName).toBe('RangeError')
    expect((err as RemoteError).message).toBe('refusing after adding 100')
    expect((err as RemoteError).remoteStack).toMatch(/failAfterAdding/)
    expect(await c.call.get()).toBe(5)
    await c.signal.failAfterAdding(1) // a failing signal harms nothing either
    await c.signal.add(1)
    expect(await c.call.get()).toBe(6)
  })

  it('lets entities signal entities in the same and in other partitions', async () => {
    const targets = Array.from({ length: 20 }, (_, i) => `target-${i}`)
    await Promise.all(
      targets.map((t, i) => stack.client.entity(Counter, `source-${i}`).signal.forward(t, i + 1)),
    )
    await waitFor(async () => {
      const values = await Promise.all(targets.map((t) => stack.client.entity(Counter, t).call.get()))
      return values.every((v, i) => v === i + 1)
    }, 'every forwarded signal applied once')
    await new Promise((r) => setTimeout(r, 200))
    const values = await Promise.all(targets.map((t) => stack.client.entity(Counter, t).call.get()))
    expect(values).toEqual(targets.map((_, i) => i + 1))
  })

  it('deletes state and reads committed state from a client', async () => {
    const c = stack.client.entity(Counter, 'deleted')
    await c.signal.add(3)
    expect(await stack.client.readEntityState(Counter, 'deleted')).toEqual({ exists: true, state: 3 })
    await c.signal.reset()
    expect(await stack.client.readEntityState(Counter, 'deleted')).toEqual({
      exists: false,
      state: undefined,
    })
    expect(await stack.client.readEntityState(Counter, 'never-touched')).toEqual({
      exists: false,
      state: undefined,
    })
  })

  it('lists entities by type and key prefix, page by page', async () => {
    await Promise.all(
      Array.from({ length: 25 }, (_, i) =>
        stack.client.entity(Counter, `list-${String(i).padStart(2, '0')}`).signal.add(1),
      ),
    )
    const seen: string[] = []
    let page = await stack.client.listEntities({ type: Counter, keyPrefix: 'list-', pageSize: 10 })
    seen.push(...page.keys)
    while (page.continuation !== undefined) {
      page = await stack.client.listEntities({
        type: Counter,
        keyPrefix: 'list-',
        pageSize: 10,
        continuation: page.continuation,
      })
      seen.push(...page.keys)
    }
    expect(seen).toEqual(Array.from({ length: 25 }, (_, i) => `list-${String(i).padStart(2, '0')}`))
    expect((await stack.client.listEntities({ type: Log, keyPrefix: 'list-' })).keys).toEqual([])
  })

  it('pushes committed states to watchers', async () => {
    const c = stack.client.entity(Counter, 'watched')
    await c.signal.add(1)
    const values = firstValueFrom(stack.client.watchEntity(Counter, 'watched').pipe(take(4), toArray()))
    await new Promise((r) => setTimeout(r, 100))
    // one value per commit: a call between signals puts each change in its own record
    await c.signal.add(1)
    await c.call.get()
    await c.signal.add(1)
    await c.call.get()
    await c.signal.reset()
    expect(await values).toEqual([1, 2, 3, undefined])
  })
})

/**
 * An entity whose state holds a Set, an error and a regular expression has the same state after
 * its node stopped and another read it back from storage as while it stayed cached (it was an
 * array after the restart, and `this.state.has` failed); arguments and results keep the types too.
 */
import { afterEach, describe, expect, it } from 'vitest'
import { Client, Entity, Node } from '../../runtime/index.ts'
import { useNatsServer } from '../tooling/harness.ts'

const nats = useNatsServer()

interface TagsState {
  tags: Set<string>
  lastError: Error | null
  pattern: RegExp
}

class Tags extends Entity<TagsState> {
  initialState(): TagsState {
    return { tags: new Set(), lastError: null, pattern: /^t-/ }
  }
  tag(t: string): number {
    if (!this.state.pattern.test(t)) this.state.lastError = new RangeError(`bad tag ${t}`)
    else this.state.tags.add(t)
    return this.state.tags.size
  }
  has(t: string): boolean {
    return this.state.tags.has(t)
  }
  echo(value: unknown): unknown {
    return value
  }
}

const opened: Array<Node | Client> = []
afterEach(async () => {
  for (const x of opened.splice(0).reverse()) await (x instanceof Node ? x.stop() : x.close()).catch(() => {})
})

async function node(hub: string): Promise<Node> {
  const n = await Node.start({ servers: nats.url, hub, registry: [Tags], partitions: 2 })
  opened.push(n)
  return n
}

describe('value types kept through storage', () => {
  it('a Set, an error and a RegExp in an entity state survive the node stopping', async () => {
    const hub = 'value-types'
    const first = await node(hub)
    const client = await Client.connect({ servers: nats.url, hub })
    opened.push(client)
    const tags = client.entity(Tags, 'x')
    expect(await tags.call.tag('t-a')).toBe(1)
    expect(await tags.call.tag('nope')).toBe(1)
    await first.stop()
    opened.splice(opened.indexOf(first), 1)
    await node(hub)
    expect(await tags.call.has('t-a')).toBe(true)
    expect(await tags.call.tag('t-b')).toBe(2)
    const read = await client.readEntityState(Tags, 'x')
    expect(read.exists).toBe(true)
    const state = read.state as TagsState
    expect(state.tags).toEqual(new Set(['t-a', 't-b']))
    expect(state.lastError).toBeInstanceOf(RangeError)
    expect(state.lastError?.message).toBe('bad tag nope')
    expect(state.pattern).toEqual(/^t-/)
    // arguments and results too
    const echoed = (await tags.call.echo({ s: new Set([1]), e: new TypeError('t') })) as {
      s: Set<number>
      e: Error
    }
    expect(echoed.s).toEqual(new Set([1]))
    expect(echoed.e).toBeInstanceOf(TypeError)
  }, 30_000)
})

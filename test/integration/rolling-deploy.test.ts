/**
 * A rolling deploy with a node whose registry lacks an entity type and an orchestration: placement
 * gives it no partitions while a node with the full registry is live; while it is the only node it
 * runs everything it knows and keeps what it does not (signals and starts for the missing names)
 * until a full node takes the partitions over. In the end every acknowledged signal is applied
 * exactly once and every instance completes.
 */
import { describe, expect, it } from 'vitest'
import { Entity } from '../../entities/index.ts'
import { orchestration } from '../../actors/orchestration/index.ts'
import { Client, Node, silentLogger } from '../../runtime/index.ts'
import { HubTypes, divergence, eligibleNodes } from '../../placement/registry.ts'
import { readPlacement } from '../../placement/index.ts'
import { formatPlacement } from '../../runtime/cli/placement-command.ts'
import { keptLines, useNatsServer, waitFor } from '../tooling/harness.ts'

class Kept extends Entity<number> {
  initialState() {
    return 0
  }
  add(n: number) {
    this.state += n
  }
}

/** Only in the full registry. */
class Added extends Entity<number> {
  initialState() {
    return 0
  }
  add(n: number) {
    this.state += n
  }
}

/** Only in the full registry. */
const addedFlow = orchestration('addedFlow', function* (ctx, key: string) {
  yield* ctx.callEntity(Added, key).add(100)
  return `done ${key}`
})

const keptFlow = orchestration('keptFlow', function* (_ctx, n: number) {
  return n + 1
})

const full = [Kept, Added, addedFlow, keptFlow]
const partial = [Kept, keptFlow]
const nats = useNatsServer()

describe('registry-aware placement (pure)', () => {
  it('gives partitions only to nodes that know every name a live node knows', () => {
    const regs = new Map([
      ['a', ['e:X', 'o:f']],
      ['b', ['e:X']],
    ])
    expect(eligibleNodes(['a', 'b'], regs)).toEqual(['a'])
    expect(eligibleNodes(['b'], regs)).toEqual(['b'])
    expect(eligibleNodes(['a', 'b', 'old'], regs)).toEqual(['a', 'old']) // no registry: knows all
    const diverged = new Map([
      ['a', ['e:X']],
      ['b', ['e:Y']],
    ])
    expect(eligibleNodes(['a', 'b'], diverged)).toEqual(['a', 'b'])
    // diverged, one node knowing far more: it alone (one odd node does not take a share)
    const odd = new Map([
      ['big1', ['e:X', 'e:Y', 'o:f']],
      ['big2', ['e:X', 'e:Y', 'o:f']],
      ['odd', ['e:X', 'e:Z']],
    ])
    expect(eligibleNodes(['big1', 'big2', 'odd'], odd)).toEqual(['big1', 'big2'])
    expect(divergence(['big1', 'big2', 'odd'], odd)).toEqual(
      new Map([
        ['big1', ['e:Z']],
        ['big2', ['e:Z']],
        ['odd', ['e:Y', 'o:f']],
      ]),
    )
    expect(divergence(['a', 'b'], regs)).toEqual(new Map()) // a knows everything: no divergence
  })

  it('tells a name run here from one known elsewhere and one known nowhere', () => {
    const types = new HubTypes(['e:X'], () => ['e:X', 'e:Y', 'o:f'])
    expect(types.whereIs('e:X')).toBe('here')
    expect(types.whereIs('e:Y')).toBe('elsewhere')
    expect(types.whereIs('e:Typo')).toBe('nowhere')
    expect(types.whereIs('o:f')).toBe('elsewhere')
    expect(new HubTypes(['o:f'], () => ['o:f']).whereIs('o:f')).toBe('here')
  })
})

/** Only on the odd node of the divergence case. */
class Odd extends Entity<number> {
  initialState() {
    return 0
  }
  add(n: number) {
    this.state += n
  }
}

describe('registries that diverge', () => {
  it('a node with an odd registry gets no partitions, and it and the placement table say what is lacking', async () => {
    const hub = 'diverge'
    const base = { servers: nats.url, hub, partitions: 4, heartbeatMs: 200, leaseMs: 1000 }
    const oddLines: string[] = []
    const a = await Node.start({ ...base, registry: full, nodeId: 'full-a', logger: silentLogger })
    const odd = await Node.start({
      ...base,
      registry: [Kept, Odd],
      nodeId: 'odd',
      logger: keptLines(oddLines),
    })
    const client = await Client.connect({ servers: nats.url, hub })
    try {
      await waitFor(
        () => oddLines.some((l) => l.includes('registries diverge')),
        'the odd node warns of the divergence',
      )
      expect(odd.partitions.size, 'the odd node knows 2 of 5 names').toBe(0)
      expect(a.partitions.size).toBe(4)
      expect(oddLines.find((l) => l.includes('registries diverge'))).toContain(
        'This node lacks e:Added, o:addedFlow, o:keptFlow; full-a lacks e:Odd.',
      )
      // the full node's work goes on
      await client.entity(Added, 'd').call.add(2)
      expect((await client.readEntityState(Added, 'd')).state).toBe(2)
      const table = await readPlacement(a.hub.metaKv, a.hub.jsm)
      expect(formatPlacement(hub, table).join('\n')).toContain(
        '    lacks e:Odd: registries diverge (no node knows every name)',
      )
    } finally {
      await client.close()
      await odd.stop()
      await a.stop()
    }
  }, 60_000)
})

describe('rolling deploy with a partial registry', () => {
  it('keeps acknowledged work for names the owner lacks until a node that knows them owns it', async () => {
    const hub = 'rolling'
    const base = {
      servers: nats.url,
      hub,
      partitions: 4,
      heartbeatMs: 200,
      leaseMs: 1000,
      logger: silentLogger,
    }
    const a = await Node.start({ ...base, registry: full, nodeId: 'full-a' })
    const bLines: string[] = []
    const b = await Node.start({ ...base, registry: partial, nodeId: 'partial-b', logger: keptLines(bLines) })
    const client = await Client.connect({ servers: nats.url, hub })
    let c: Node | undefined
    try {
      expect([...b.partitions.keys()], 'partial node while a full node is live').toEqual([])
      expect(a.partitions.size).toBe(4)
      // `basalt placement` says why the partial node gets nothing
      const table = await readPlacement(a.hub.metaKv, a.hub.jsm)
      const partialNode = table.nodes.find((n) => n.id === 'partial-b')!
      expect(partialNode).toMatchObject({ eligible: false, lacks: ['e:Added', 'o:addedFlow'] })
      expect(table.nodes.find((n) => n.id === 'full-a')).toMatchObject({ eligible: true, lacks: [] })
      expect(formatPlacement(hub, table)).toContain(
        '    gets no partitions: its registry lacks e:Added, o:addedFlow (other nodes serve them; ' +
          'a node runs partitions only when it knows every name a live node knows)',
      )

      // the full node leaves: the partial one is all there is, and runs every partition
      await a.stop()
      await waitFor(() => b.partitions.size === 4, 'partial node runs all 4 partitions after full-a left')

      const keys = Array.from({ length: 8 }, (_, i) => `k${i}`)
      for (let round = 0; round < 3; round++) {
        await Promise.all(keys.map((key) => client.entity(Added, key).signal.add(1)))
        await client.entity(Kept, 'kept').signal.add(1)
      }
      const ids = await Promise.all(Array.from({ length: 4 }, (_, i) => client.start(addedFlow, `f${i}`)))
      const kept = await client.start(keptFlow, 41)
      // what it knows runs now; what it lacks is kept, not dropped and not failed
      expect((await client.waitForCompletion(kept)).output).toBe(42)
      expect((await client.readEntityState(Kept, 'kept')).state).toBe(3)
      expect((await client.readEntityState(Added, 'k0')).exists).toBe(false)
      for (const id of ids) expect((await client.getStatus(id))?.status, `instance ${id}`).toBe('Pending')
      // the operator hears of it, and a call that times out says why it waits
      for (const what of ["entity type 'Added'", "orchestration 'addedFlow'"]) {
        expect(
          bLines.filter((l) => l.includes(`holding messages for ${what}, which this node does not run`)),
          bLines.join('\n'),
        ).not.toEqual([])
      }
      const impatient = await Client.connect({ servers: nats.url, hub, callTimeoutMs: 1_500, reaskMs: 300 })
      try {
        const err = await impatient
          .entity(Added, 'k0')
          .call.add(1)
          .catch((e: unknown) => e)
        expect(String(err)).toMatch(
          /^TimeoutError: call Added@k0\.add got no result in 1500 ms; partition \d+'s owner does not run entity type 'Added' \(another node of the hub registers it\): the request is stored and takes effect once a node that runs it serves the partition$/,
        )
      } finally {
        await impatient.close()
      }

      // a full node joins and takes every partition; the partial node is then retired
      c = await Node.start({ ...base, registry: full, nodeId: 'full-c' })
      await waitFor(() => c!.partitions.size === 4, 'full-c runs all 4 partitions')
      expect(b.partitions.size).toBe(0)
      await b.stop()

      for (const id of ids) {
        const done = await client.waitForCompletion<string>(id, { timeoutMs: 15_000 })
        expect(done.status, `instance ${id}: ${done.error?.message}`).toBe('Completed')
      }
      for (const key of keys) {
        // (k0 also took the call that timed out: a timeout does not cancel it)
        expect((await client.readEntityState(Added, key)).state, `Added@${key}`).toBe(key === 'k0' ? 4 : 3)
      }
      for (let i = 0; i < 4; i++) {
        expect((await client.readEntityState(Added, `f${i}`)).state, `Added@f${i}`).toBe(100)
      }
      expect((await client.readEntityState(Kept, 'kept')).state).toBe(3)
    } finally {
      await client.close()
      await c?.stop()
      await b.stop()
      await a.stop()
    }
  })
})

/** Version 1 of an entity type: `add` only. */
class TallyV1 extends Entity<number> {
  static override entityName = 'Tally'
  initialState() {
    return 0
  }
  add(n: number) {
    this.state += n
  }
}

/** Version 2 of the same type: `add` and a new operation, `bump`. */
class TallyV2 extends TallyV1 {
  bump(n: number) {
    this.state += 10 * n
  }
}

describe('rolling deploy that adds an entity operation', () => {
  it('keeps the new operation for a node that runs it, never dead-letters it', async () => {
    // an outside trial: 489 of 3,952 acknowledged signals of an operation added in v2 went to the
    // dead letters while v1 nodes still owned partitions
    const hub = 'rolling-ops'
    const base = { servers: nats.url, hub, partitions: 4, heartbeatMs: 200, leaseMs: 1000 }
    const oldLines: string[] = []
    const old = await Node.start({ ...base, registry: [TallyV1], nodeId: 'v1', logger: keptLines(oldLines) })
    const client = await Client.connect({ servers: nats.url, hub })
    let v2: Node | undefined
    try {
      expect(old.partitions.size).toBe(4)
      // the first v2 node joins: the v1 node, lacking Tally#bump, gives every partition up to it
      v2 = await Node.start({ ...base, registry: [TallyV2], nodeId: 'v2', logger: silentLogger })
      await waitFor(
        () => v2!.partitions.size === 4 && old.partitions.size === 0,
        'the v2 node owns every partition',
      )
      const table = await readPlacement(v2.hub.metaKv, v2.hub.jsm)
      expect(table.nodes.find((n) => n.id === 'v1')).toMatchObject({
        eligible: false,
        lacks: ['e:Tally#bump'],
      })
      // the v2 node goes (a deploy that is rolled back part way): v1 owns all, and keeps every bump
      await v2.stop()
      v2 = undefined
      await waitFor(() => old.partitions.size === 4, 'the v1 node owns every partition again')
      const keys = Array.from({ length: 8 }, (_, i) => `t${i}`)
      const tally = (key: string) => client.entity(TallyV2, key)
      for (const key of keys) {
        await tally(key).signal.add(1)
        await tally(key).signal.bump(1)
      }
      expect(await client.entity(TallyV1, 't0').call.add(0)).toBeUndefined() // add runs on v1
      await waitFor(
        () =>
          oldLines.some((l) =>
            l.includes("operation 'bump' of entity type 'Tally', which this node does not run"),
          ),
        'v1 says it holds the bumps',
      )
      expect(oldLines.filter((l) => l.includes('dead'))).toEqual([])
      // v2 comes back: every bump kept runs there, once
      v2 = await Node.start({ ...base, registry: [TallyV2], nodeId: 'v2b', logger: silentLogger })
      await waitFor(async () => {
        const states = await Promise.all(
          keys.map(async (key) => (await client.readEntityState(TallyV2, key)).state),
        )
        return states.every((s) => s === 11)
      }, 'every add and every bump applied')
      const dead = await client.hub.jsm.streams.info(client.hub.names.deadLetterStream)
      expect(dead.state.messages, 'dead letters').toBe(0)
    } finally {
      await client.close()
      await v2?.stop()
      await old.stop()
    }
  }, 90_000)
})

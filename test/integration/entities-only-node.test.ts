/**
 * A node whose registry has no orchestration at all, on a hub that has instances (an outside trial:
 * `basalt status` and `list` said "this hub runs no orchestrations", and a start or an event got no
 * answer until the client's timeout). Such a node treats instances as any node that lacks their
 * orchestration: status and listings read the stored instances, a start of an orchestration the
 * hub knows is kept as a Pending instance and an event is kept for a node that runs it, each
 * answered at once. Once a node with the full registry is back, every instance completes once.
 * Run with the partitions on the node's thread and on worker threads (each builds its own hosts).
 */
import path from 'node:path'
import { describe, expect, it } from 'vitest'
import { Client, Node, silentLogger, type NodeOptions } from '../../runtime/index.ts'
import { Tally, busy, fullRegistry, waiter } from '../fixtures/entities-only-registry.ts'
import { repoRoot, useNatsServer, waitFor } from '../tooling/harness.ts'

const nats = useNatsServer()

/** Well under the client's timeouts (5 s here, see below): an answer, not a wait for one. */
const PROMPT_MS = 3000

/** Runs `work` and checks it was answered promptly. */
async function prompt<T>(what: string, work: () => Promise<T>): Promise<T> {
  const started = Date.now()
  const result = await work()
  expect(Date.now() - started, `${what} answered in ms`).toBeLessThan(PROMPT_MS)
  return result
}

const entitiesOnly: Record<string, Pick<NodeOptions, 'registry' | 'registryModule' | 'workers'>> = {
  'on the node thread': { registry: [Tally] },
  'on worker threads': {
    registryModule: path.join(repoRoot, 'test/fixtures/entities-only-registry.ts'),
    workers: 2,
  },
}

describe('a node with no orchestrations on a hub with instances', () => {
  for (const [where, registry] of Object.entries(entitiesOnly)) {
    it(`answers for the instances and keeps their work, partitions ${where}`, async () => {
      const hub = `entities-only-${registry.workers ?? 1}`
      const base = {
        servers: nats.url,
        hub,
        partitions: 4,
        heartbeatMs: 200,
        leaseMs: 1000,
        logger: silentLogger,
      }
      const nodes: Node[] = []
      const run = async (options: Partial<NodeOptions>, id: string): Promise<Node> => {
        const node = await Node.start({ ...base, ...options, nodeId: id })
        nodes.push(node)
        await waitFor(async () => (await node.partitionIds()).length === 4, `${id} runs all 4 partitions`)
        return node
      }
      // (the first node creates the hub the client opens)
      const full = await run({ registry: fullRegistry }, 'full-1')
      const client = await Client.connect({
        servers: nats.url,
        hub,
        callTimeoutMs: 5000,
        queryTimeoutMs: 5000,
      })
      try {
        // a full node starts two instances that wait for an event and one whose activity is still
        // running when the node leaves
        for (const id of ['w1', 'w2']) {
          await client.start(waiter, id, { instanceId: id })
          await waitFor(async () => (await client.getStatus(id))?.status === 'Running', `${id} runs`)
        }
        await client.start(busy, { text: 'b1', ms: 1500 }, { instanceId: 'b1' })
        await full.stop()

        const partial = await run(registry, 'entities-only')
        // queries read the stored instances
        const w1 = await prompt('getStatus', () => client.getStatus('w1'))
        expect(w1).toMatchObject({ id: 'w1', name: 'waiter', status: 'Running', input: 'w1' })
        const listed = await prompt('listInstances', () => client.listInstances())
        expect(listed.instances.map((s) => [s.id, s.name, s.status])).toEqual([
          ['b1', 'busy', 'Running'],
          ['w1', 'waiter', 'Running'],
          ['w2', 'waiter', 'Running'],
        ])
        // a start of an orchestration the hub knows is kept as a Pending instance, its event held
        await prompt('start', () => client.start(waiter, 'w3', { instanceId: 'w3' }))
        expect((await client.getStatus('w3'))?.status).toBe('Pending')
        await prompt('raiseEvent to a Pending instance', () => client.raiseEvent('w3', 'go', 'three'))
        // an event for a running instance is accepted and kept for a node that runs it
        await prompt('raiseEvent to a Running instance', () => client.raiseEvent('w1', 'go', 'one'))
        // a name no node ever registered is bad input, at once
        await expect(prompt('start of an unknown name', () => client.start('nosuch', 1))).rejects.toThrow(
          /unknown orchestration 'nosuch'/,
        )
        // entities run as ever
        expect(await client.entity(Tally, 'here').call.add(1)).toBeUndefined()
        expect((await client.readEntityState(Tally, 'here')).state).toBe(1)
        expect((await client.getStatus('w1'))?.status, 'w1 waits for a node that runs it').toBe('Running')
        expect((await client.readEntityState(Tally, 'done')).exists).toBe(false)
        // the activity it lacks is not run here (it would fail as unknown): it stays pending
        await new Promise((resolve) => setTimeout(resolve, 500))
        expect((await client.getStatus('b1'))?.status, 'b1 waits for a node that runs slowUpper').toBe(
          'Running',
        )
        await partial.stop()

        // the full registry is back: what was kept runs, once
        await run({ registry: fullRegistry }, 'full-2')
        await client.raiseEvent('w2', 'go', 'two')
        const outputs: Record<string, unknown> = {}
        for (const id of ['w1', 'w2', 'w3', 'b1']) {
          const done = await client.waitForCompletion(id, { timeoutMs: 15_000 })
          expect(done.status, `${id}: ${done.error?.message}`).toBe('Completed')
          outputs[id] = done.output
          const history = (await client.getStatus(id, { history: true }))?.history ?? []
          const events = (kind: string) => history.filter((e) => e.e === kind)
          expect(events('started'), `${id} started once`).toHaveLength(1)
          expect(events('failed'), `${id} had no task fail`).toEqual([])
          // a waiter took its one event; b1 the outcomes of its activity and of its call to Tally
          if (id === 'b1') expect(events('completed'), 'b1 task outcomes').toHaveLength(2)
          else expect(events('event'), `${id} events`).toHaveLength(1)
        }
        expect(outputs).toEqual({ w1: 'w1:one', w2: 'w2:two', w3: 'w3:three', b1: 'B1' })
        expect((await client.readEntityState(Tally, 'done')).state).toBe(4)
        expect((await client.listInstances({ statuses: ['Completed'] })).instances).toHaveLength(4)
      } finally {
        await client.close()
        for (const node of nodes.reverse()) await node.stop()
      }
    })
  }
})

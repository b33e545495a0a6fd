/**
 * Poison messages that end the process or thread that runs them (crash counting, see
 * runtime/partition/crash-count.ts and careful.ts): an entity operation that calls
 * `process.exit`, or loops forever, used to end every owner of its partition in turn — a node
 * process after the other, or a partition thread restarted forever (a hung one was never even
 * noticed). Now, after two owners ended without committing, the next one runs careful (one unit per
 * record, announced by a probe record); a unit that ends two careful owners is moved to the
 * dead-letter stream, its call fails with PoisonMessageError, and everything else is applied
 * exactly once. Careful mode on an idle partition (restarted again and again by rolling deploys)
 * appends nothing and ends at once.
 */
import path from 'node:path'
import { jetstreamManager } from '@nats-io/jetstream'
import { describe, expect, it } from 'vitest'
import { Client, Node, PoisonMessageError, type Logger } from '../../runtime/index.ts'
import { EntityRegistry } from '../../entities/index.ts'
import { ActivityPool } from '../../runtime/activities/index.ts'
import { InstanceHost } from '../../runtime/instances/index.ts'
import { closeConnection, connectTo } from '../../runtime/nats/connect.ts'
import { encode, type NatsConnection } from '../../runtime/nats/index.ts'
import { ensureHub, HubNames, type Hub } from '../../runtime/nats/hub.ts'
import { PartitionStorage } from '../../runtime/nats/storage.ts'
import { markRecord } from '../../runtime/partition/crash-count.ts'
import { Partition } from '../../runtime/partition/partition.ts'
import { Counter, Poison } from '../fixtures/entities.ts'
import { exitsOnEvent, releasesWithPoison } from '../fixtures/threads-registry.ts'
import { keptLines, repoRoot, spawnTs, useNatsServer, waitFor, type SpawnedTs } from '../tooling/harness.ts'

const nats = useNatsServer()
const fast = { heartbeatMs: 250, leaseMs: 1000 }

/** Owners that end on the poison: the one that first ran it, two normal ones, two careful ones. */
const DEATHS = 5

/** The dead letters of `hub`: their reasons, oldest first. */
async function deadLetterReasons(hub: string): Promise<string[]> {
  const nc = await connectTo(nats.url, 'dlq-reader')
  try {
    const jsm = await jetstreamManager(nc)
    const names = new HubNames(hub)
    const { state } = await jsm.streams.info(names.deadLetterStream)
    const reasons: string[] = []
    for (let seq = state.first_seq; seq <= state.last_seq && state.messages > 0; seq++) {
      const msg = await jsm.streams.getMessage(names.deadLetterStream, { seq }).catch(() => null)
      if (msg !== null) reasons.push(msg.header.get('Basalt-Reason'))
    }
    return reasons
  } finally {
    await nc.close()
  }
}

/** Signals before and after the poison, and the exact counts they must reach. */
async function sendWork(client: Client, phase: number): Promise<void> {
  await Promise.all([
    ...Array.from({ length: 20 }, (_, i) => client.entity(Counter, `n${i % 4}`).signal.add(1)),
    client.entity(Poison, 'p').signal.add(phase),
    client.entity(Poison, 'q').signal.add(phase),
  ])
}

async function expectExactCounts(client: Client): Promise<void> {
  const counters = await Promise.all([0, 1, 2, 3].map((i) => client.entity(Counter, `n${i}`).call.get()))
  expect(counters, 'counter signals, before and after the poison, each applied once').toEqual([
    10, 10, 10, 10,
  ])
  expect(await client.entity(Poison, 'p').call.get(), 'signals to the poisoned entity').toBe(1 + 100)
  expect(await client.entity(Poison, 'q').call.get(), 'signals to another entity').toBe(1 + 100)
}

/** A logger that keeps error lines. */
function keptErrors(): { logger: Logger; errors: string[] } {
  const errors: string[] = []
  const keep = (message: string, fields?: Record<string, unknown>) =>
    errors.push(`${message} ${JSON.stringify(fields ?? {})}`)
  const debug = process.env['POISON_DEBUG'] === '1'
  const show = (message: string, fields?: Record<string, unknown>) =>
    debug && console.log(`${message} ${JSON.stringify(fields ?? {})}`)
  return { logger: { info: show, warn: show, error: (m, f) => (keep(m, f), show(m, f)) }, errors }
}

describe('poison messages that end their process or thread', () => {
  it('in-process partitions: a process.exit operation is dead-lettered after five owners ended, the rest exact', async () => {
    const hub = 'poison-exit'
    const args = [nats.url, hub, JSON.stringify({ partitions: 2, workers: 1, ...fast })]
    let node: SpawnedTs = spawnTs('test/fixtures/node-process.ts', args)
    await node.waitForLine(/^ready$/, 30_000)
    const client = await Client.connect({ servers: nats.url, hub, callTimeoutMs: 180_000 })
    let exits = 0
    try {
      await sendWork(client, 1)
      expect(await client.entity(Poison, 'p').call.get(), 'before the poison').toBe(1)
      let settled = false
      const poisoned = client
        .entity(Poison, 'p')
        .call.exit()
        .then(
          () => 'returned',
          (e: unknown) => e,
        )
        .finally(() => (settled = true))
      await sendWork(client, 100)
      // a supervisor: starts the node again each time it exits, until the call settles
      while (!settled) {
        const code = await Promise.race([node.exited, poisoned.then(() => 'settled' as const)])
        if (code === 'settled') break
        exits++
        if (process.env['POISON_DEBUG'] === '1') console.log(`--- exit ${exits}\n${node.lines.join('\n')}`)
        expect(code, `node exit ${exits}: the poison's process.exit(1)`).toBe(1)
        expect(node.lines.join('\n'), `node exit ${exits}: the exit is logged`).toMatch(
          /error the process is exiting while a node runs in it \(process\.exit called.*\{"code":1\}/,
        )
        if (exits > DEATHS + 2)
          throw new Error(`the node ended ${exits} times; the poison was never dead-lettered`)
        node = spawnTs('test/fixtures/node-process.ts', args)
      }
      const err = await poisoned
      expect(err, 'the poison call fails').toBeInstanceOf(PoisonMessageError)
      expect((err as PoisonMessageError).code).toBe('POISON_MESSAGE')
      expect((err as Error).message).toMatch(
        /Poison@p.*'exit'.*ended its process or thread 2 times in a row \(crash, process\.exit, out of memory, or a hang\)/,
      )
      expect(exits, 'node processes ended by the poison').toBe(DEATHS)
      await expectExactCounts(client)
      const reasons = await deadLetterReasons(hub)
      expect(reasons, 'one dead letter: the poison').toHaveLength(1)
      expect(reasons[0]).toMatch(/Poison@p.*'exit'.*ended its process or thread 2 times in a row/)
      await node.waitForLine(/poison message.*dead-letter/i, 10_000)
      expect(node.child.exitCode, 'the last node still runs').toBeNull()
    } finally {
      await client.close()
      node.kill('SIGKILL')
      await node.exited
    }
  }, 240_000)
})

/** A node with two partition threads on `hub` (errors kept), a short hang timeout, and a client. */
async function threadedNode(hub: string): Promise<{ node: Node; client: Client; errors: string[] }> {
  const { logger, errors } = keptErrors()
  const node = await Node.start({
    servers: nats.url,
    hub,
    registryModule: path.join(repoRoot, 'test/fixtures/threads-registry.ts'),
    workers: 2,
    partitions: 4,
    hangTimeoutMs: 1500,
    logger,
    ...fast,
  })
  const client = await Client.connect({ servers: nats.url, hub, callTimeoutMs: 120_000 })
  return { node, client, errors }
}

describe('poison messages on partition threads', () => {
  it('an event whose orchestration step calls process.exit is dead-lettered and fails its instance', async () => {
    const hub = 'poison-thread-event'
    const { node, client, errors } = await threadedNode(hub)
    try {
      const id = await client.start(exitsOnEvent, undefined)
      const other = await client.start(exitsOnEvent, undefined)
      const raised = client.raiseEvent(id, 'go', 'exit').catch((e: unknown) => e)
      await client.raiseEvent(other, 'go', 'fine')
      expect(await raised, 'raising the poison event fails').toBeInstanceOf(PoisonMessageError)
      const status = await client.waitForCompletion(id, { timeoutMs: 90_000 })
      expect(status.status, 'the instance the poison was addressed to').toBe('Failed')
      expect(status.error?.code).toBe('POISON_MESSAGE')
      expect(status.error?.message).toMatch(
        /instance '.*' step on event 'go' ended its process or thread 2 times/,
      )
      expect((await client.waitForCompletion(other)).output, 'another instance').toBe('fine')
      expect(errors.filter((e) => e.startsWith('partition thread died')).length).toBe(DEATHS)
      const reasons = await deadLetterReasons(hub)
      expect(reasons).toHaveLength(1)
      expect(reasons[0]).toMatch(/step on event 'go' ended its process or thread/)
    } finally {
      await client.close()
      await node.stop()
    }
  }, 120_000)

  it("a dead-lettered operation that carried its section's release still releases the entity", async () => {
    const hub = 'poison-thread-release'
    const { node, client } = await threadedNode(hub)
    try {
      const id = await client.start(releasesWithPoison, 'locked')
      const done = await client.waitForCompletion(id, { timeoutMs: 100_000 })
      expect(done.output, 'the call failed as a poison').toMatch(
        /Poison@locked operation 'exit' ended its process or thread/,
      )
      // (asked until the entity's partition answers: on a loaded machine its thread, restarted
      // after the poison ended it, can take longer than a query's timeout to come back)
      await waitFor(
        async () => (await client.getLock(Poison, 'locked')) === null,
        'the lock went with it',
        60_000,
      )
      await client.entity(Poison, 'locked').signal.add(7)
      expect(await client.entity(Poison, 'locked').call.get(), 'the entity takes work again').toBe(7)
      const reasons = await deadLetterReasons(hub)
      expect(reasons).toHaveLength(1)
      expect(reasons[0]).toMatch(/Poison@locked.*'exit'/)
    } finally {
      await client.close()
      await node.stop()
    }
  }, 120_000)

  for (const op of ['hang', 'exit'] as const) {
    it(`an operation that ${op === 'hang' ? 'loops forever' : 'calls process.exit'} is dead-lettered; the node process goes on, the rest exact`, async () => {
      const hub = `poison-thread-${op}`
      const { node, client, errors } = await threadedNode(hub)
      try {
        await sendWork(client, 1)
        expect(await client.entity(Poison, 'p').call.get()).toBe(1)
        const poisoned = client
          .entity(Poison, 'p')
          .call[op]()
          .then(
            () => 'returned',
            (e: unknown) => e,
          )
        await sendWork(client, 100)
        const err = await poisoned
        expect(err, 'the poison call fails').toBeInstanceOf(PoisonMessageError)
        expect((err as Error).message).toMatch(
          new RegExp(`Poison@p.*'${op}'.*ended its process or thread 2 times`),
        )
        await expectExactCounts(client)
        const deaths = errors.filter((e) => e.startsWith('partition thread died'))
        expect(deaths.length, `thread deaths:\n${deaths.join('\n')}`).toBe(DEATHS)
        if (op === 'hang') {
          const hung = errors.filter((e) => /partition thread hung/.test(e))
          expect(hung.length, 'each hung thread terminated by the watchdog').toBe(DEATHS)
          expect(hung[0]).toMatch(/"partitions":\[/)
        }
        expect(
          errors.some((e) => /poison message.*dead-letter/i.test(e)),
          'the poison logged as an error',
        ).toBe(true)
        const reasons = await deadLetterReasons(hub)
        expect(reasons).toHaveLength(1)
        expect(reasons[0]).toMatch(new RegExp(`Poison@p.*'${op}'`))
      } finally {
        await client.close()
        await node.stop()
      }
    }, 120_000)
  }
})

/** A partition of `hub` run in this process at `epoch` (stopped with `abandon()`, as a crash would). */
function partitionOf(
  nc: NatsConnection,
  hub: Hub,
  epoch: number,
  logs: string[],
  maxBatch = 100,
): Promise<Partition> {
  return Partition.start(nc, hub, 0, {
    registry: new EntityRegistry([Counter]),
    epoch,
    logger: keptLines(logs),
    pipelining: true,
    cacheSize: 100,
    maxBatch,
    snapshotRecords: 1000,
    snapshotIntervalMs: 60_000,
    instances: (port) =>
      new InstanceHost(port, {
        orchestrations: new Map(),
        activities: new ActivityPool([]),
        alwaysReplay: false,
        cacheSize: 100,
      }),
    onStopped: () => {},
  })
}

/**
 * An owner that took work and ended before committing it, as the log shows one: its claim, then
 * the record marked `b` it appends right before its first step (written here as that owner would,
 * with its writer identity, since the test cannot kill it between the two).
 */
async function endedOwner(nc: NatsConnection, hub: Hub, epoch: number, logs: string[]): Promise<void> {
  ;(await partitionOf(nc, hub, epoch, logs)).abandon()
  const storage = new PartitionStorage(nc, hub, 0)
  const last = (await storage.logAfter(0)).at(-1)!
  expect(last.rec.claim, `owner ${epoch}'s claim ends the log`).toBe(1)
  const writer = { e: last.rec.e, o: last.rec.o! }
  const mark = markRecord(last.rec.n + 1, writer, last.rec.pos, last.rec.lq, { b: 1 })
  await storage.append(encode(mark), mark.n, writer, last.seq)
}

describe('careful mode', () => {
  it('an idle partition restarted again and again never runs careful: its owners took no work', async () => {
    const nc = await connectTo(nats.url, 'careful-idle')
    const hub = await ensureHub(nc, 'careful-idle', { partitions: 1 })
    const client = await Client.connect({ servers: nats.url, hub: 'careful-idle' })
    const logs: string[] = []
    let partition: Partition | undefined
    try {
      for (let epoch = 1; epoch <= 4; epoch++) (await partitionOf(nc, hub, epoch, logs)).abandon()
      partition = await partitionOf(nc, hub, 5, logs)
      const careful = logs.filter((l) => l.startsWith('partition starts in careful mode'))
      expect(careful, 'no owner started careful').toEqual([])
      // before it takes any work, the owner answers reads (they wait for one more record)
      expect(await client.readEntityState(Counter, 'a')).toEqual({ exists: false, state: undefined })
      await Promise.all(Array.from({ length: 5 }, () => client.entity(Counter, 'a').signal.add(1)))
      expect(await client.entity(Counter, 'a').call.get()).toBe(5)
      const records = (await new PartitionStorage(nc, hub, 0).logAfter(0)).map(({ rec }) => rec)
      expect(records.slice(0, 5).map((r) => r.claim)).toEqual([1, 1, 1, 1, 1])
      expect(
        records.filter((r) => r.x !== undefined),
        'no probe record',
      ).toEqual([])
      // the fifth owner took work: it said so first, once
      expect(records.slice(5).filter((r) => r.b === 1).length, 'begin marks').toBe(1)
      expect(
        logs.filter((l) => l.startsWith('careful mode ended')),
        'nothing to tell',
      ).toEqual([])
    } finally {
      partition?.abandon()
      await client.close()
      await closeConnection(nc)
    }
  })

  it('owners stopped gracefully with nothing committed append a leave record and never count', async () => {
    const nc = await connectTo(nats.url, 'careful-leave')
    const hub = await ensureHub(nc, 'careful-leave', { partitions: 1 })
    const logs: string[] = []
    try {
      for (let epoch = 1; epoch <= 4; epoch++) await (await partitionOf(nc, hub, epoch, logs)).close()
      expect(logs.filter((l) => l.startsWith('partition starts in careful mode'))).toEqual([])
      const records = (await new PartitionStorage(nc, hub, 0).logAfter(0)).map(({ rec }) => rec)
      expect(records.map((r) => (r.claim === 1 ? 'claim' : r.left === 1 ? 'left' : 'other'))).toEqual(
        Array.from({ length: 4 }, () => ['claim', 'left']).flat(),
      )
    } finally {
      await closeConnection(nc)
    }
  })

  it('with work waiting: one probe per unit, each committed before the next, then normal mode', async () => {
    const nc = await connectTo(nats.url, 'careful-work')
    const hub = await ensureHub(nc, 'careful-work', { partitions: 1 })
    const client = await Client.connect({ servers: nats.url, hub: 'careful-work' })
    const logs: string[] = []
    let partition: Partition | undefined
    try {
      for (let epoch = 1; epoch <= 2; epoch++) await endedOwner(nc, hub, epoch, logs)
      // waiting in the mailbox when the careful owner starts: three messages
      await Promise.all(Array.from({ length: 3 }, (_, i) => client.entity(Counter, `w${i}`).signal.add(1)))
      partition = await partitionOf(nc, hub, 3, logs)
      await waitFor(
        () => logs.some((l) => l.startsWith('careful mode ended')),
        'careful mode to end after the work waiting at the start',
      )
      await Promise.all(Array.from({ length: 10 }, () => client.entity(Counter, 'after').signal.add(1)))
      expect(await client.entity(Counter, 'after').call.get()).toBe(10)
      const counts = await Promise.all([0, 1, 2].map((i) => client.entity(Counter, `w${i}`).call.get()))
      expect(counts).toEqual([1, 1, 1])
      const records = (await new PartitionStorage(nc, hub, 0).logAfter(0)).map(({ rec }) => rec)
      const kinds = records.map((r) =>
        r.claim === 1 ? 'claim' : r.b === 1 ? 'began' : r.x !== undefined ? `probe ${r.x[0]}` : 'work',
      )
      expect(kinds.slice(0, 11), 'each unit: its probe, then its commit').toEqual([
        'claim',
        'began',
        'claim',
        'began',
        'claim',
        'probe m',
        'work',
        'probe m',
        'work',
        'probe m',
        'work',
      ])
      expect(
        kinds.slice(11).filter((k) => k !== 'work'),
        'normal mode afterwards: no probe',
      ).toEqual([])
      expect(logs.find((l) => l.startsWith('careful mode ended'))).toMatch(/"units":3/)
    } finally {
      partition?.abandon()
      await client.close()
      await closeConnection(nc)
    }
  })

  it('runs at most two steps of mailbox messages one by one, then the rest in normal mode', async () => {
    const nc = await connectTo(nats.url, 'careful-bound')
    const hub = await ensureHub(nc, 'careful-bound', { partitions: 1 })
    const client = await Client.connect({ servers: nats.url, hub: 'careful-bound' })
    const logs: string[] = []
    let partition: Partition | undefined
    try {
      for (let epoch = 1; epoch <= 2; epoch++) await endedOwner(nc, hub, epoch, logs)
      // a backlog of 10 when the careful owner starts; with maxBatch 2 it runs 4 of them carefully
      for (let i = 0; i < 10; i++) await client.entity(Counter, `b${i}`).signal.add(1)
      partition = await partitionOf(nc, hub, 3, logs, 2)
      await waitFor(() => logs.some((l) => l.startsWith('careful mode ended')), 'careful mode to end')
      expect(logs.find((l) => l.startsWith('careful mode ended'))).toMatch(/"units":4/)
      const counts = await Promise.all(
        Array.from({ length: 10 }, (_, i) => client.entity(Counter, `b${i}`).call.get()),
      )
      expect(counts, 'every message of the backlog applied once').toEqual(Array.from({ length: 10 }, () => 1))
      const records = (await new PartitionStorage(nc, hub, 0).logAfter(0)).map(({ rec }) => rec)
      expect(records.filter((r) => r.x !== undefined).length, 'probe records').toBe(4)
    } finally {
      partition?.abandon()
      await client.close()
      await closeConnection(nc)
    }
  })
})

/**
 * Trimming the hub's shared streams (runtime/nats/stream-trim.ts), on one server and, with
 * nats-server 2.9.18 or later, on a real 3-server cluster with an R3 hub: while nodes run, the node
 * running partition 0 cuts the mailbox and the log from below; after both nodes are SIGKILLed, a
 * fresh node recovers every partition from what was kept, and every signal and orchestration
 * counts exactly once, before and after the cut.
 */
import { afterEach, describe, expect, it } from 'vitest'
import { Client } from '../../runtime/index.ts'
import { connectTo, closeConnection } from '../../runtime/nats/connect.ts'
import { lastOnSubject, openHub, purgesReplaySafely } from '../../runtime/nats/hub.ts'
import { Counter } from '../fixtures/entities.ts'
import { helloSequence } from '../fixtures/workflows.ts'
import {
  natsServerVersion,
  spawnTs,
  useNatsCluster,
  useNatsServer,
  waitFor,
  type SpawnedTs,
} from '../tooling/harness.ts'

const children: SpawnedTs[] = []
afterEach(() => {
  for (const c of children.splice(0)) c.kill('SIGKILL')
})

/** Starts node processes on a hub of 4 partitions whose streams are cut every 300 ms. */
function nodeOn(urls: string[], hub: string, replicas: number): (id: string) => SpawnedTs {
  const options = {
    partitions: 4,
    replicas,
    heartbeatMs: 250,
    leaseMs: 1500,
    snapshotIntervalMs: 200,
    streamTrimIntervalMs: 300,
  }
  return (id) => {
    const child = spawnTs('test/fixtures/node-process.ts', [
      urls.join(','),
      hub,
      JSON.stringify({ ...options, nodeId: id }),
    ])
    children.push(child)
    return child
  }
}

/**
 * Two nodes under waves of signals and starts while the streams are cut; both SIGKILLed in the
 * middle of a wave after a cut; a fresh node then recovers every partition: exact totals, every
 * instance completed, and the fresh node goes on cutting.
 */
async function cutsWhileNodesRun(urls: string[], hub: string, replicas: number): Promise<void> {
  const startNode = nodeOn(urls, hub, replicas)
  const first = [startNode('t1'), startNode('t2')]
  await Promise.all(first.map((c) => c.waitForLine(/^ready$/, 60_000)))
  const client = await Client.connect({ servers: urls, hub, callTimeoutMs: 60_000 })
  const nc = await connectTo(urls, 'trim-inspector')
  const opened = await openHub(nc, hub)
  const firstSeqs = async () => {
    const [mbx, log] = await Promise.all([
      opened.jsm.streams.info(opened.names.mailboxStream),
      opened.jsm.streams.info(opened.names.logStream),
    ])
    return { mailbox: mbx.state.first_seq, log: log.state.first_seq, mailboxLast: mbx.state.last_seq }
  }
  try {
    const COUNTERS = 40
    let sent = 0
    let started = 0
    const wave = async (signals: number, starts: number) => {
      const runs = Array.from({ length: starts }, () =>
        client.start(helloSequence, ['Oslo'], { instanceId: `trim-${started++}` }),
      )
      for (let i = 0; i < signals; i += 100) {
        await Promise.all(
          Array.from({ length: 100 }, (_, j) =>
            client.entity(Counter, `t${(sent + i + j) % COUNTERS}`).signal.add(1),
          ),
        )
      }
      sent += signals
      await Promise.all(runs)
    }
    await wave(2000, 40)
    const totals = () =>
      Promise.all(Array.from({ length: COUNTERS }, (_, i) => client.entity(Counter, `t${i}`).call.get()))
    await waitFor(
      async () => (await totals()).every((t) => t === sent / COUNTERS),
      'totals before the cut',
      60_000,
    )
    // the cut: both streams start above their first message, the mailbox past most of the wave
    const before = await firstSeqs()
    await waitFor(
      async () => {
        const now = await firstSeqs()
        return now.mailbox > before.mailboxLast / 2 && now.log > 1
      },
      'the mailbox and the log cut from below',
      30_000,
    )

    // killed in the middle of a wave, while cuts go on: recovery needs the records and messages
    // after the last checkpoints, which the cuts must have kept
    const during = wave(2000, 20)
    await waitFor(
      async () => (await firstSeqs()).mailbox > before.mailboxLast,
      'a cut during the wave',
      30_000,
    )
    for (const c of first) c.kill('SIGKILL')
    await Promise.all(first.map((c) => c.exited))
    await during
    const fresh = startNode('t3')
    await fresh.waitForLine(/^ready$/, 60_000)
    await wave(1000, 20)
    await waitFor(async () => (await totals()).every((t) => t === sent / COUNTERS), 'exact totals', 60_000)
    expect(await totals()).toEqual(Array.from({ length: COUNTERS }, () => sent / COUNTERS))
    const results = await Promise.all(
      Array.from({ length: started }, (_, i) => client.waitForCompletion(`trim-${i}`, { timeoutMs: 60_000 })),
    )
    expect(results.filter((r) => r.status !== 'Completed').map((r) => r.id)).toEqual([])
    // and the node that now runs partition 0 goes on cutting
    const later = await firstSeqs()
    await waitFor(
      async () => (await firstSeqs()).mailbox > later.mailbox,
      'cut again by the new node',
      30_000,
    )
  } finally {
    await client.close()
    await closeConnection(nc)
  }
}

/**
 * One partition of four goes idle while the others work on: both cuts pass its last record and its
 * last message (its owner appends a keep record); after a SIGKILL nothing is lost or applied twice.
 */
async function idlePartitionDoesNotHold(urls: string[], hub: string, replicas: number): Promise<void> {
  const spawn = nodeOn(urls, hub, replicas) // (an idle partition appends a keep record after 600 ms)
  const node = spawn('i1')
  await node.waitForLine(/^ready$/, 60_000)
  const client = await Client.connect({ servers: urls, hub, callTimeoutMs: 60_000 })
  const nc = await connectTo(urls, 'idle-inspector')
  const opened = await openHub(nc, hub)
  try {
    // `k!p` is routed to partition p
    const counters = [0, 1, 2, 3].map((p) => client.entity(Counter, `k!${p}`))
    const sent = [0, 0, 0, 0]
    const send = async (to: number[], times: number) => {
      for (let i = 0; i < times; i++) {
        await Promise.all(to.map((p) => counters[p]!.signal.add(1)))
        for (const p of to) sent[p]!++
      }
    }
    await send([0, 1, 2, 3], 50)
    expect(await counters[3]!.call.get()).toBe(50)
    const idleLast = (await lastOnSubject(opened.jsm, opened.names.logStream, opened.names.log(3)))!.seq
    const idleMessage = (await lastOnSubject(
      opened.jsm,
      opened.names.mailboxStream,
      opened.names.mailbox(3),
    ))!.seq
    // partition 3 goes idle while the others work on: the log is cut past its last record
    const busy = (async () => {
      for (let round = 0; round < 40; round++) await send([0, 1, 2], 10)
    })()
    await waitFor(
      async () => (await opened.jsm.streams.info(opened.names.logStream)).state.first_seq > idleLast,
      "the log cut past the idle partition's last record",
      30_000,
    )
    // (its last message, processed long ago, held the mailbox's cut for good: an outside trial)
    await waitFor(
      async () => (await opened.jsm.streams.info(opened.names.mailboxStream)).state.first_seq > idleMessage,
      "the mailbox cut past the idle partition's last message",
      30_000,
    )
    await busy
    // the idle partition still works, and after a kill nothing is lost or applied twice
    await send([3], 5)
    node.kill('SIGKILL')
    await node.exited
    await spawn('i2').waitForLine(/^ready$/, 60_000)
    await send([0, 1, 2, 3], 5)
    expect(await Promise.all(counters.map((c) => c.call.get()))).toEqual(sent)
  } finally {
    await client.close()
    await closeConnection(nc)
  }
}

describe('stream trimming on one server', () => {
  const nats = useNatsServer()
  it('cuts the mailbox and the log while nodes run; a node started after both were killed loses nothing', async () => {
    await cutsWhileNodesRun([nats.url], 'r1-trim', 1)
  }, 180_000)

  it('is not held back by a partition gone idle: its owner moves its last record up, its last message goes', async () => {
    await idlePartitionDoesNotHold([nats.url], 'r1-idle', 1)
  }, 120_000)
})

// a replicated hub is cut only through a server that replays purges correctly (2.9.18 and later);
// on older ones test/integration/replicated-purge.test.ts checks that it is not cut
describe.runIf(purgesReplaySafely(natsServerVersion()))('stream trimming on a replicated hub', () => {
  const nats = useNatsCluster(3)
  it('cuts the mailbox and the log while nodes run; a node started after both were killed loses nothing', async () => {
    await cutsWhileNodesRun(nats.urls, 'r3-trim', 3)
  }, 240_000)

  it('is not held back by a partition gone idle: its owner moves its last record up, its last message goes', async () => {
    await idlePartitionDoesNotHold(nats.urls, 'r3-idle', 3)
  }, 180_000)
})

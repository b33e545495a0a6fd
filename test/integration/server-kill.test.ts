/**
 * The only nats-server killed while a node and a client work, and started again: every signal the
 * client sent is applied exactly once, the ones in flight at the kill included (their answers were
 * lost with the connection, so they are sent again and deduplicated).
 *
 * Then the only nats-server killed with SIGKILL twice, after every mailbox message had been processed
 * and trimmed: nats-server 2.9.10 restored an empty mailbox stream with its sequence back at 1,
 * below the positions the partitions had committed, so the node served nothing and acknowledged
 * signals were skipped. The mailbox is never emptied now (a whole-stream cut keeps the stream's
 * last message, a partition's own purge its last processed one), and a node serves again with
 * exact counts; both ways are tested.
 */
import { jetstreamManager } from '@nats-io/jetstream'
import { describe, expect, it } from 'vitest'
import { Client, Node, silentLogger } from '../../runtime/index.ts'
import { closeConnection, connectTo } from '../../runtime/nats/connect.ts'
import { HubNames } from '../../runtime/nats/hub.ts'
import { Counter } from '../fixtures/entities.ts'
import { useNatsServer, waitFor } from '../tooling/harness.ts'

const nats = useNatsServer()
const keys = Array.from({ length: 10 }, (_, i) => `k${i}`)

describe('the only server killed twice with an emptied mailbox', () => {
  it.each([
    { how: 'cut whole by the node', streamTrimIntervalMs: 300 },
    { how: 'purged by each partition', streamTrimIntervalMs: 0 },
  ])(
    'serves again with exact counts (mailbox $how)',
    async ({ streamTrimIntervalMs }) => {
      const hub = `srvkill-${streamTrimIntervalMs}`
      const options = { servers: nats.url, hub, registry: [Counter], partitions: 2, logger: silentLogger }
      const node = await Node.start({ ...options, snapshotIntervalMs: 100, streamTrimIntervalMs })
      const client = await Client.connect({ servers: nats.url, hub, callTimeoutMs: 10_000 })
      try {
        for (const key of keys) await client.entity(Counter, key).signal.add(1)
        for (const key of keys) expect(await client.entity(Counter, key).call.get(), key).toBe(1)
        // the mailbox is trimmed: only the last processed message is left (a whole-stream cut keeps
        // the stream's last one; each partition's own purge keeps its last one)
        const nc = await connectTo(nats.url, 'srvkill-check')
        try {
          const jsm = await jetstreamManager(nc)
          const stream = new HubNames(hub).mailboxStream
          await waitFor(
            async () => (await jsm.streams.info(stream)).state.messages <= 2,
            'the mailbox trimmed',
          )
          expect((await jsm.streams.info(stream)).state.messages, 'messages kept').toBeGreaterThan(0)
        } finally {
          await closeConnection(nc)
        }
        for (let kill = 0; kill < 2; kill++) {
          await nats.server.stop('SIGKILL')
          await nats.server.restart()
        }
        for (const key of keys) await client.entity(Counter, key).signal.add(1)
        await waitFor(
          async () => {
            const values = await Promise.all(keys.map((key) => client.entity(Counter, key).call.get()))
            return values.every((v) => v === 2)
          },
          'every counter at 2 after the server came back',
          60_000,
        )
      } finally {
        await client.close()
        await node.stop()
      }
    },
    120_000,
  )
})

describe('the only server killed under load', () => {
  it('applies every signal sent before, during and after exactly once', async () => {
    const hubName = 'srvload'
    const options = {
      servers: nats.url,
      hub: hubName,
      registry: [Counter],
      partitions: 4,
      logger: silentLogger,
    }
    const node = await Node.start({ ...options, snapshotIntervalMs: 100 })
    const client = await Client.connect({ servers: nats.url, hub: hubName, callTimeoutMs: 30_000 })
    const counters = Array.from({ length: 8 }, (_, i) => `c${i}`)
    const sent = new Map<string, number>(counters.map((key) => [key, 0]))
    let stop = false
    try {
      // each counter gets signals one after another; a signal resolves once it is stored
      const load = Promise.all(
        counters.map(async (key) => {
          while (!stop) {
            await client.entity(Counter, key).signal.add(1)
            sent.set(key, sent.get(key)! + 1)
          }
        }),
      )
      await waitFor(() => [...sent.values()].every((n) => n >= 20), 'every counter got 20 signals')
      await nats.server.stop('SIGKILL')
      await nats.server.restart()
      const atRestart = new Map(sent)
      await waitFor(
        () => counters.every((key) => sent.get(key)! >= atRestart.get(key)! + 20),
        'every counter got 20 more signals after the restart',
        60_000,
      )
      stop = true
      await load
      for (const key of counters) {
        const value = await client.entity(Counter, key).call.get()
        expect(value, `counter ${key}: applied vs sent`).toBe(sent.get(key))
      }
    } finally {
      stop = true
      await client.close()
      await node.stop()
    }
  }, 120_000)
})

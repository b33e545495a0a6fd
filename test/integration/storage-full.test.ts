/**
 * A NATS server whose JetStream store is full: a client's send fails at once with
 * `StorageFullError` saying what to do (it used to retry until its deadline and then fail with an
 * internal, unexported error class), and a node that cannot join the hub says why.
 */
import { describe, expect, it } from 'vitest'
import { Client, Node, StorageFullError } from '../../runtime/index.ts'
import { Log } from '../fixtures/entities.ts'
import { keptLines, useNatsServer } from '../tooling/harness.ts'

const nats = useNatsServer({ maxFileStore: 300 * 1024 * 1024 })
const hub = 'full'

describe('a full JetStream store', () => {
  it('fails a send at once with StorageFullError; a node that cannot join says why', async () => {
    // the hub exists, and no node reads its mailboxes: what is sent stays stored
    await (
      await Node.start({ servers: nats.url, hub, registry: [Log], partitions: 2, logger: keptLines() })
    ).stop()
    const client = await Client.connect({ servers: nats.url, hub, publishDeadlineMs: 20_000 })
    const lines: string[] = []
    let node: Node | undefined
    try {
      const big = 'x'.repeat(600 * 1024)
      let refused: unknown
      let sent = 0
      for (; sent < 1000 && refused === undefined; sent++) {
        const startedAt = Date.now()
        refused = await client
          .entity(Log, `k${sent}`)
          .signal.append(big)
          .then(
            () => undefined,
            (err: unknown) => {
              // at once, not after publishDeadlineMs
              expect(Date.now() - startedAt, 'ms until the send was refused').toBeLessThan(10_000)
              return err
            },
          )
      }
      expect(refused, `refused after ${sent} sends`).toBeInstanceOf(StorageFullError)
      expect((refused as Error).message).toMatch(
        /^a message to partition \d was not stored: the NATS server's JetStream store is full: free space, or raise jetstream\.max_file_store/,
      )
      expect((refused as StorageFullError).retryable).toBe(true)

      // a node cannot even heartbeat: it says why
      const joined = await Node.start({
        servers: nats.url,
        hub,
        registry: [Log],
        partitions: 2,
        logger: keptLines(lines),
      })
        .then((n) => (node = n))
        .catch((err: unknown) => err)
      expect(joined).toBeInstanceOf(StorageFullError)
      expect((joined as Error).message).toMatch(
        /^node could not join hub 'full': the NATS server's JetStream store is full/,
      )
    } finally {
      await node?.stop().catch(() => {})
      await client.close()
    }
  }, 90_000)
})

/**
 * A deploy that changes an orchestration's code under a running instance: the next step's replay
 * finds a different decision, the instance fails with NonDeterminismError naming the seq and both
 * decisions, and the node logs it (the operator hears of it, not only whoever reads the status).
 */
import { describe, expect, it } from 'vitest'
import { activity, orchestration } from '../../actors/orchestration/index.ts'
import { Client, Node, type Logger } from '../../runtime/index.ts'
import { useNatsServer, waitFor } from '../tooling/harness.ts'

let version = 1
const shout = activity('shout', (s: string) => s.toUpperCase())
const drifting = orchestration('drifting', function* (ctx) {
  if (version === 1) yield* ctx.callActivity(shout, 'a')
  else yield* ctx.createTimer(ctx.now() + 10)
  yield* ctx.waitForEvent('go')
  return 'done'
})

const nats = useNatsServer()

describe('code that no longer replays its history', () => {
  it('fails the instance with NonDeterminismError, and the node logs it', async () => {
    const warnings: string[] = []
    const logger: Logger = {
      info: () => {},
      warn: (message, fields) => void warnings.push(`${message} ${JSON.stringify(fields ?? {})}`),
      error: () => {},
    }
    const hub = 'drift'
    // (every step replays the history: the change of code shows at the next step)
    const node = await Node.start({
      servers: nats.url,
      hub,
      partitions: 2,
      registry: [shout, drifting],
      alwaysReplay: true,
      logger,
    })
    const client = await Client.connect({ servers: nats.url, hub })
    try {
      const id = await client.start(drifting, undefined, { instanceId: 'drift-1' })
      await waitFor(
        async () => (await client.getHistory(id)).some((e) => e.e === 'completed'),
        'the activity to complete',
      )
      version = 2 // the deploy
      await client.raiseEvent(id, 'go')
      const done = await client.waitForCompletion(id, { timeoutMs: 10_000 })
      expect(done.status).toBe('Failed')
      expect(done.error?.name).toBe('NonDeterminismError')
      expect(done.error?.message).toMatch(
        /^orchestration 'drifting' \(instance 'drift-1'\) is not deterministic at seq 0/,
      )
      expect(
        warnings.some(
          (w) =>
            w.startsWith('instance failed: its code no longer replays its history') && w.includes('drift-1'),
        ),
      ).toBe(true)
    } finally {
      version = 1
      await client.close()
      await node.stop()
    }
  })
})

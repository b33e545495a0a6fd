/**
 * `idle-r3`: call latency on an idle replicated hub. A 3-server cluster of its own (whatever
 * `NATS_URL` says), a hub of 8 partitions with 3 replicas, a node and a client in this process; one
 * `add(1)` call at a time, to one counter per partition in turn, 50 ms apart, for `--seconds`
 * (default 120). Measured: the calls' p50, p99 and max, and how many took over 300 ms (a stall: an
 * unloaded call takes a few ms). Checked: every counter equals the calls made to it.
 *
 * It found the replica-before-leader stall of the R3 mailbox reader (runtime/partition/mailbox.ts):
 * about one call in 2,500 waited 3.9 s, and its partition restarted.
 */
import { performance } from 'node:perf_hooks'
import { Client, Node } from '../runtime/index.ts'
// the cluster launcher of the test harness (outage.ts uses it too)
import { startNatsCluster } from '../test/tooling/nats-cluster.ts'
import { quantile, round, VerificationError, type BenchContext } from './common.ts'
import { Counter } from './entities.ts'

const PARTITIONS = 8
const PAUSE_MS = 50
const STALL_MS = 300

export async function runIdleR3(ctx: BenchContext): Promise<void> {
  const seconds = ctx.options.seconds
  const cluster = await startNatsCluster(3)
  const warnings = new Map<string, number>()
  const note = (message: string): void => void warnings.set(message, (warnings.get(message) ?? 0) + 1)
  let node: Node | undefined
  let client: Client | undefined
  try {
    node = await Node.start({
      servers: cluster.urls,
      hub: 'idle-r3',
      partitions: PARTITIONS,
      replicas: 3,
      registry: [Counter],
      logger: { info() {}, warn: note, error: note },
    })
    client = await Client.connect({ servers: cluster.urls, hub: 'idle-r3' })
    // `k!p` is routed to partition p
    const counters = Array.from({ length: PARTITIONS }, (_, p) => client!.entity(Counter, `k!${p}`))
    const made = counters.map(() => 0)
    const latencies: number[] = []
    ctx.log(`idle-r3: one call every ${PAUSE_MS} ms for ${seconds} s`)
    const end = Date.now() + seconds * 1000
    for (let n = 0; Date.now() < end; n++) {
      const p = n % PARTITIONS
      const t0 = performance.now()
      await counters[p]!.call.add(1)
      latencies.push(performance.now() - t0)
      made[p]!++
      await new Promise((resolve) => setTimeout(resolve, PAUSE_MS))
    }
    const totals = await Promise.all(counters.map((c) => c.call.get()))
    if (totals.some((t, p) => t !== made[p]))
      throw new VerificationError(
        `idle-r3: counters ${JSON.stringify(totals)}, calls made ${JSON.stringify(made)}`,
      )
    const params = { seconds, partitions: PARTITIONS, replicas: 3, calls: latencies.length }
    ctx.emit('call_p50_ms', round(quantile(latencies, 0.5), 1), 'ms', params)
    ctx.emit('call_p99_ms', round(quantile(latencies, 0.99), 1), 'ms', params)
    ctx.emit('call_max_ms', round(Math.max(...latencies), 0), 'ms', params)
    ctx.emit('calls_over_300ms', latencies.filter((l) => l > STALL_MS).length, 'calls', params)
    for (const [message, count] of warnings) ctx.log(`idle-r3: node said ${count}×: ${message}`)
  } finally {
    await client?.close()
    await node?.stop()
    await cluster.dispose()
  }
}

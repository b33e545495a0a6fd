/**
 * The orchestration benchmarks other than hello-sequence (bench/hello-sequence.ts): `fan-out-fan-in`
 * and `bank`, each on a fresh hub with a node in this process (`ctx.stack`).
 */
import { performance } from 'node:perf_hooks'
import type { Node } from '../runtime/index.ts'
import { VerificationError, quantile, round, type BenchContext } from './common.ts'
import { BenchAccount, benchWorkflows, fanOutFanIn, transfer } from './workflows.ts'

/** `fan-out-fan-in`: one orchestration with 1,000 parallel activities, then a sum; median of 5 runs. */
export async function runFanOutFanIn(ctx: BenchContext): Promise<void> {
  const n = 1000
  const stack = await ctx.stack({ registry: benchWorkflows })
  try {
    const expected = Array.from({ length: n }, (_, i) => i * i).reduce((a, b) => a + b, 0)
    const runOnce = async () => {
      const t = performance.now()
      const id = await stack.client.start(fanOutFanIn, n)
      const done = await stack.client.waitForCompletion<number>(id)
      if (done.output !== expected)
        throw new VerificationError(`fan-out sum ${String(done.output)} != ${expected}`)
      return (performance.now() - t) / 1000
    }
    for (let i = 0; i < 3; i++) await runOnce()
    const runs: number[] = []
    for (let i = 0; i < 5; i++) runs.push(await runOnce())
    ctx.emit('seconds', quantile(runs, 0.5), 's', { activities: n, runs: runs.length })
  } finally {
    await stack.close()
  }
}

/**
 * `bank`: transfers under a lock over both accounts (1,000 accounts, 256 in flight; `--transfers`,
 * default 3,000, after a warm-up of up to 1,000 untimed ones, as hello-sequence warms up too);
 * checks that the total is kept and no account is overdrawn, and reports what one transfer costs.
 */
export async function runBank(ctx: BenchContext): Promise<void> {
  const accounts = 1000
  const { transfers } = ctx.options
  const stack = await ctx.stack({ registry: benchWorkflows })
  try {
    const { client } = stack
    const key = (i: number) => `acct-${i}`
    await Promise.all(
      Array.from({ length: accounts }, (_, i) => client.entity(BenchAccount, key(i)).signal.deposit(100)),
    )
    let seed = 42
    const random = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31
    const run = async (count: number) => {
      let next = 0
      await Promise.all(
        Array.from({ length: 256 }, async () => {
          while (next++ < count) {
            const from = Math.floor(random() * accounts)
            const to = (from + 1 + Math.floor(random() * (accounts - 1))) % accounts
            const id = await client.start(transfer, {
              from: key(from),
              to: key(to),
              amount: 1 + Math.floor(random() * 50),
            })
            const done = await client.waitForCompletion(id)
            if (done.status !== 'Completed')
              throw new VerificationError(`transfer ${id} ended ${done.status}`)
          }
        }),
      )
    }
    const warmup = Math.min(1000, transfers)
    ctx.log(`bank: warm-up, ${warmup} transfers`)
    await run(warmup)
    ctx.log(`bank: ${transfers} transfers, 256 in flight`)
    const before = hops(stack.node)
    const cpuBefore = process.cpuUsage()
    const serverCpuBefore = ctx.serverCpuMs()
    const t0 = performance.now()
    await run(transfers)
    const seconds = (performance.now() - t0) / 1000
    const cpu = process.cpuUsage(cpuBefore)
    const serverCpuAfter = ctx.serverCpuMs()
    const after = hops(stack.node)
    const balances = await Promise.all(
      Array.from({ length: accounts }, (_, i) => client.entity(BenchAccount, key(i)).call.balance()),
    )
    const total = balances.reduce((a, b) => a + b, 0)
    if (total !== accounts * 100) throw new VerificationError(`total balance ${total} != ${accounts * 100}`)
    if (balances.some((b) => b < 0)) throw new VerificationError('an account is overdrawn')
    const params = { accounts, transfers, warmup, concurrency: 256 }
    ctx.emit('transfers_per_s', transfers / seconds, '1/s', params)
    // what one transfer costs (the node, the client and the benchmark share this process)
    const per = (n: number) => round(n / transfers, 3)
    ctx.emit('partition_messages_per_transfer', per(after.messages - before.messages), '1', params)
    ctx.emit('mailbox_publishes_per_transfer', per(after.publishes - before.publishes), '1', params)
    ctx.emit('local_handoffs_per_transfer', per(after.handOffs - before.handOffs), '1', params)
    ctx.emit('records_per_transfer', per(after.records - before.records), '1', params)
    ctx.emit('node_cpu_us_per_transfer', per(cpu.user + cpu.system), 'us', params)
    // the benchmark's own nats-server only (none with NATS_URL): 10 ms clock ticks, coarse
    if (serverCpuBefore !== undefined && serverCpuAfter !== undefined)
      ctx.emit('server_cpu_us_per_transfer', per((serverCpuAfter - serverCpuBefore) * 1000), 'us', params)
  } finally {
    await stack.close()
  }
}

/**
 * Partition-to-partition messages of a node's partitions, their mailbox publishes and the records'
 * message groups handed over in memory instead, and the node's records.
 */
function hops(node: Node): { messages: number; publishes: number; handOffs: number; records: number } {
  let messages = 0
  let publishes = 0
  let handOffs = 0
  for (const partition of node.partitions.values()) {
    messages += partition.outboxMessages
    publishes += partition.outboxPublishes
    handOffs += partition.outboxHandOffs
  }
  return { messages, publishes, handOffs, records: node.stats().records }
}

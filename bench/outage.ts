/**
 * `outage`: how long a hub is unavailable after a NATS server fault, and that no acknowledged work
 * is lost or applied twice across it. Every run starts servers of its own (whatever `NATS_URL`
 * says: they are stopped and killed), a hub of 8 partitions, a node and a client in this process,
 * and one counter per partition that gets `add(1)` signals one after another, about 100 a second
 * (each acknowledged once stored). Faults (`--faults`, default all three), `--runs` runs each
 * (default 3):
 *
 * - `stop`: the only server stopped (SIGTERM) for 4 s, then started again on the same store;
 * - `kill`: the only server killed (SIGKILL) and started again at once;
 * - `member`: on a 3-server cluster with a replicated hub (R3), the server the node and the client
 *   are connected to killed, and left down.
 *
 * Measured: from the server being back (for `member`: from the kill) until a call to every counter
 * succeeds and keeps succeeding for 8 s (`unavailable_p50_ms` and `unavailable_max_ms` over the
 * runs). Checked: after the signals stop, every counter equals the signals acknowledged to it.
 */
import { performance } from 'node:perf_hooks'
import { Client, Node, silentLogger } from '../runtime/index.ts'
import { startNatsServer, type NatsServer } from '../runtime/dev/index.ts'
// the cluster launcher of the test harness: the benchmarks' only use of test code
import { startNatsCluster } from '../test/tooling/nats-cluster.ts'
import { quantile, round, VerificationError, type BenchContext, type Fault } from './common.ts'
import { Counter } from './entities.ts'

const PARTITIONS = 8

/** `outage`: the faults of `--faults` (default all), `--runs` runs each (default 3). */
export async function runOutage(ctx: BenchContext): Promise<void> {
  for (const fault of ctx.options.faults) {
    const times: number[] = []
    for (let run = 1; run <= ctx.options.runs; run++) {
      ctx.log(`outage: ${fault}, run ${run}/${ctx.options.runs}`)
      times.push(await outageOnce(fault, `outage-${fault}-${run}`))
    }
    const params = { fault, runs: times.length, partitions: PARTITIONS }
    ctx.emit('unavailable_p50_ms', round(quantile(times, 0.5), 0), 'ms', params)
    ctx.emit('unavailable_max_ms', round(Math.max(...times), 0), 'ms', params)
  }
}

/** One run: servers, hub, load, the fault; resolves with the time unavailable, in ms. */
async function outageOnce(fault: Fault, hub: string): Promise<number> {
  const cluster = fault === 'member' ? await startNatsCluster(3) : undefined
  const servers: NatsServer[] = cluster?.servers ?? [await startNatsServer()]
  const urls = servers.map((s) => s.url)
  let node: Node | undefined
  let client: Client | undefined
  try {
    const replicas = cluster === undefined ? {} : { replicas: 3 }
    // the first URL first: the node and the client connect to the server that is then killed
    node = await Node.start({
      servers: urls,
      hub,
      registry: [Counter],
      partitions: PARTITIONS,
      logger: silentLogger,
      ...replicas,
    })
    client = await Client.connect({ servers: urls, hub, callTimeoutMs: 2_000 })
    const keys = onePerPartition()
    const acked = new Map(keys.map((k) => [k, 0]))
    let stop = false
    const c = client
    const load = Promise.all(
      keys.map(async (key) => {
        while (!stop) {
          await c.entity(Counter, key).signal.add(1)
          acked.set(key, acked.get(key)! + 1)
          // paced (about 100 per second per counter): a flood of signals stored faster than the
          // node applies them builds a backlog that calls then wait behind, which is not an outage
          await new Promise((resolve) => setTimeout(resolve, 10))
        }
      }),
    )
    try {
      await new Promise((resolve) => setTimeout(resolve, 500))
      const victim = servers[0]!
      if (fault === 'stop') {
        await victim.stop('SIGTERM')
        await new Promise((resolve) => setTimeout(resolve, 4_000))
        await victim.restart()
      } else if (fault === 'kill') {
        await victim.stop('SIGKILL')
        await victim.restart()
      } else await victim.stop('SIGKILL')
      const unavailable = await unavailableFor(c, keys)
      stop = true
      await load
      const checker = await Client.connect({ servers: urls, hub, callTimeoutMs: 60_000 })
      try {
        for (const key of keys) {
          const value = await checker.entity(Counter, key).call.get()
          if (value !== acked.get(key))
            throw new VerificationError(
              `outage ${fault}: counter ${key} is ${value}, ${acked.get(key)} signals acknowledged`,
            )
        }
      } finally {
        await checker.close()
      }
      return unavailable
    } finally {
      stop = true
      await load.catch(() => {})
    }
  } finally {
    await client?.close().catch(() => {})
    await node?.stop().catch(() => {})
    if (cluster !== undefined) await cluster.dispose()
    else await servers[0]!.dispose()
  }
}

/**
 * Calls every counter in a loop from the fault on, and resolves with the time (ms after the start)
 * at which the last of them answered again, once all have answered for `settleMs` in a row: a
 * partition that answers, then stops (a node whose lease ran out during the outage gives its
 * partitions up a moment after the server is back) counts until it answers again.
 */
async function unavailableFor(client: Client, keys: string[], settleMs = 8_000): Promise<number> {
  const t0 = performance.now()
  const deadline = t0 + 120_000
  const down = new Set(keys)
  let lastChange = t0
  let recovered = 0
  await Promise.all(
    keys.map(async (key) => {
      for (;;) {
        const ok = await client
          .entity(Counter, key)
          .call.get()
          .then(
            () => true,
            () => false,
          )
        const now = performance.now()
        if (ok && down.delete(key)) {
          lastChange = now
          recovered = Math.max(recovered, now - t0)
        } else if (!ok && !down.has(key)) {
          down.add(key)
          lastChange = now
        }
        if (down.size === 0 && now - lastChange >= settleMs) return
        if (now > deadline)
          throw new VerificationError(
            `outage: counters ${[...down].join(', ')} not answering after 2 minutes`,
          )
        await new Promise((resolve) => setTimeout(resolve, 50))
      }
    }),
  )
  return recovered
}

/** One counter key on each partition (a key ending in `!n` lives on partition n). */
function onePerPartition(): string[] {
  return Array.from({ length: PARTITIONS }, (_, p) => `c!${p}`)
}

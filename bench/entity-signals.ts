/**
 * The `entity-signals` benchmark: `add(1)` signals to N counters from one client, issued without
 * awaiting each, until committed; then sequential call latency. With `--workers 1,2` once per
 * thread count, with the CPU of this process and of the benchmark's nats-server per signal.
 */
import { performance } from 'node:perf_hooks'
import { VerificationError, percentile, round, type BenchContext } from './common.ts'
import { Counter } from './entities.ts'

/** `entity-signals`: signals without awaiting each, then call latency (see {@link measureEntitySignals}). */
export async function runEntitySignals(ctx: BenchContext): Promise<void> {
  const { entities, signals, warmup } = ctx.options
  const base = { entities, signals, warmup }
  if (ctx.options.workers !== undefined) {
    // node CPU per signal with its partitions on 1, 2, … worker threads, side by side
    for (const workers of ctx.options.workers) {
      const run = await measureEntitySignals(ctx, true, workers)
      const params = { ...base, partitions: run.partitions, workers }
      ctx.emit('signals_per_s', run.signalsPerS, '1/s', params)
      ctx.emit('call_p50_ms', run.callP50, 'ms', { ...params, calls: CALLS })
      ctx.emit('process_cpu_us_per_signal', run.processCpuUs, 'us', params)
      if (run.serverCpuUs !== undefined) ctx.emit('server_cpu_us_per_signal', run.serverCpuUs, 'us', params)
    }
    return
  }

  const withPipelining = await measureEntitySignals(ctx, true)
  const params = { ...base, partitions: withPipelining.partitions, pipelining: true }
  ctx.emit('signals_per_s', withPipelining.signalsPerS, '1/s', params)
  ctx.emit('call_p50_ms', withPipelining.callP50, 'ms', { ...params, calls: CALLS })
  ctx.emit('call_p99_ms', withPipelining.callP99, 'ms', { ...params, calls: CALLS })
  ctx.emit('durable_signals_per_s', withPipelining.durablePerS, '1/s', params)
  ctx.emit('publishes_per_signal', withPipelining.publishesPerSignal, '1', params)
  ctx.emit('records', withPipelining.records, 'count', params)

  if (!ctx.options.pipeliningCompare) return
  const without = await measureEntitySignals(ctx, false)
  const paramsNp = { ...base, partitions: without.partitions, pipelining: false }
  ctx.emit('signals_per_s_no_pipelining', without.signalsPerS, '1/s', paramsNp)
  ctx.emit('call_p50_ms_no_pipelining', without.callP50, 'ms', { ...paramsNp, calls: CALLS })
  ctx.emit('call_p99_ms_no_pipelining', without.callP99, 'ms', { ...paramsNp, calls: CALLS })
  ctx.emit('records_no_pipelining', without.records, 'count', paramsNp)
}

/** Sequential calls measured for the latency figures, after {@link CALL_WARMUP} unmeasured ones. */
const CALLS = 2_000
const CALL_WARMUP = 200

interface SignalsResult {
  partitions: number
  signalsPerS: number
  durablePerS: number
  publishesPerSignal: number
  records: number
  callP50: number
  callP99: number
  /** CPU of this process (client and node, every thread) over the timed phase, per signal, in µs. */
  processCpuUs: number
  /** CPU of the benchmark's nats-server over the timed phase, per signal, in µs. */
  serverCpuUs: number | undefined
}

/**
 * One run of `entity-signals` on a fresh hub: warm-up, the timed signals (from the first send until
 * a `get()` call to every counter, sent after all signals were durable, has answered — calls go
 * through the same ordered mailbox, so an answer after the signals means they are committed), an
 * exact check of the total, then sequential call latency on one counter.
 */
async function measureEntitySignals(
  ctx: BenchContext,
  pipelining: boolean,
  workers?: number,
): Promise<SignalsResult> {
  const { entities, signals, warmup } = ctx.options
  const label =
    (pipelining ? 'pipelining' : 'no pipelining') + (workers === undefined ? '' : `, ${workers} workers`)
  const stack = await ctx.stack({
    registry: [Counter],
    pipelining,
    ...(workers === undefined ? {} : { workers }),
  })
  try {
    const { client, node } = stack
    const counters = Array.from({ length: entities }, (_, i) => client.entity(Counter, `counter-${i}`))
    const sum = async () => (await Promise.all(counters.map((c) => c.call.get()))).reduce((a, b) => a + b, 0)

    ctx.log(`entity-signals (${label}): warm-up, ${warmup} signals`)
    await Promise.all(Array.from({ length: warmup }, (_, i) => counters[i % entities]!.signal.add(1)))
    const afterWarmup = await sum()
    if (afterWarmup !== warmup)
      throw new VerificationError(`warm-up total is ${afterWarmup}, expected ${warmup}`)

    ctx.log(`entity-signals (${label}): ${signals} signals to ${entities} counters`)
    const publishesBefore = client.publishes
    const recordsBefore = node.stats().records
    const sent: Array<Promise<void>> = new Array(signals)
    const cpuBefore = process.cpuUsage()
    const serverBefore = ctx.serverCpuMs()
    const start = performance.now()
    for (let i = 0; i < signals; i++) sent[i] = counters[i % entities]!.signal.add(1)
    await Promise.all(sent)
    const durable = performance.now()
    const publishes = client.publishes - publishesBefore
    const total = await sum()
    const end = performance.now()
    const cpu = process.cpuUsage(cpuBefore)
    const serverAfter = ctx.serverCpuMs()
    const records = node.stats().records - recordsBefore
    const expected = warmup + signals
    if (total !== expected) {
      throw new VerificationError(`entity-signals (${label}): total is ${total}, expected ${expected}`)
    }

    ctx.log(`entity-signals (${label}): ${CALLS} sequential calls`)
    const one = counters[0]!
    for (let i = 0; i < CALL_WARMUP; i++) await one.call.get()
    const latencies: number[] = new Array(CALLS)
    for (let i = 0; i < CALLS; i++) {
      const t0 = performance.now()
      await one.call.get()
      latencies[i] = performance.now() - t0
    }
    latencies.sort((a, b) => a - b)

    return {
      partitions: node.partitionCount,
      signalsPerS: round(signals / ((end - start) / 1000), 1),
      durablePerS: round(signals / ((durable - start) / 1000), 1),
      publishesPerSignal: round(publishes / signals, 6),
      records,
      callP50: round(percentile(latencies, 50), 3),
      callP99: round(percentile(latencies, 99), 3),
      processCpuUs: round((cpu.user + cpu.system) / signals, 3),
      serverCpuUs:
        serverBefore === undefined || serverAfter === undefined
          ? undefined
          : round(((serverAfter - serverBefore) * 1000) / signals, 3),
    }
  } finally {
    await stack.close()
  }
}

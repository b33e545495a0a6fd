/**
 * Benchmarks: `npm run bench -- [name...] [options]` (no name runs all of them).
 *
 * Starts its own nats-server (unless `NATS_URL` is set) and, per measurement, a node (in this
 * process) and a client on a fresh hub. Prints one JSON line per figure on stdout, then a table
 * (only the JSON lines with `--json`). Exits non-zero when a benchmark's result is wrong. With
 * `--report`, also writes SVG charts and the figures they plot to `docs/bench/` (`bench/report.ts`);
 * `--report-from FILE` draws the charts again from such a figures file without running anything.
 *
 * @example
 * npm run bench -- entity-signals --entities 100 --signals 100000
 * npm run bench -- hello-sequence --concurrency 256,1024,2048 --report
 * NATS_URL=nats://127.0.0.1:4222 npm run bench -- --json
 */
import path from 'node:path'
import { performance } from 'node:perf_hooks'
import { parseArgs } from 'node:util'
import { BadInputError, Client, Node, silentLogger } from '../runtime/index.ts'
import { connectTo, deleteHub } from '../runtime/internal.ts'
import { startNatsServer, type NatsServer } from '../runtime/dev/nats-server.ts'
import {
  VerificationError,
  percentile,
  quantile,
  percentileCurve,
  round,
  setupLabel,
  type BenchContext,
  type Benchmark,
  type Distribution,
  type Figure,
  type Options,
  processCpuMs,
} from './common.ts'
import { positiveInt, positiveIntList } from './args.ts'
import { fileURLToPath } from 'node:url'
import { DEFAULT_REPORT_DIR, FIGURES_FILE } from './report-files.ts'
import type { RenderedChart, ReportData } from './report.ts'
import { BenchAccount, benchWorkflows, fanOutFanIn, transfer } from './workflows.ts'
import { Counter } from './entities.ts'
import { runHelloSequence } from './hello-sequence.ts'
import { runTakeover } from './takeover.ts'

/** The chart renderer (vega, vega-lite): loaded only for --report / --report-from (see report-files.ts). */
const charts = () => import('./report.ts')

/** The registry module of nodes with worker threads (`--workers`). */
const BENCH_REGISTRY = fileURLToPath(new URL('./registry.ts', import.meta.url))

/** Targets from the project's issue, shown in the table. */
const TARGETS: Record<string, { op: '>=' | '<=' | '<'; value: number }> = {
  'entity-signals/signals_per_s': { op: '>=', value: 100_000 },
  'entity-signals/call_p50_ms': { op: '<=', value: 1 },
  'hello-sequence/instances_per_s': { op: '>=', value: 20_000 },
  'hello-sequence/unloaded_p50_ms': { op: '<=', value: 2 },
  'fan-out-fan-in/seconds': { op: '<=', value: 0.05 },
  'bank/transfers_per_s': { op: '>=', value: 5_000 },
  'takeover/crash_takeover_p50_ms': { op: '<', value: 5_000 },
  'takeover/graceful_move_p50_ms': { op: '<', value: 500 },
}

// ---------------------------------------------------------------------------------------------------------
// Benchmarks
// ---------------------------------------------------------------------------------------------------------

const benchmarks: Record<string, Benchmark> = {
  'hello-sequence': {
    description:
      'orchestrations of N activities in a row: throughput with C in flight (--concurrency C,C...: each ' +
      'level), then unloaded latency (--nodes 1,2,3: against that many node processes)',
    run: runHelloSequence,
  },
  'fan-out-fan-in': {
    description: 'one orchestration with 1,000 parallel activities, then a sum',
    async run(ctx) {
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
    },
  },
  bank: {
    description:
      '3,000 transfers under a lock over both accounts (the Bank workload of the paper), 1,000 accounts',
    async run(ctx) {
      const accounts = 1000
      const transfers = 3000
      const stack = await ctx.stack({ registry: benchWorkflows })
      try {
        const { client } = stack
        const key = (i: number) => `acct-${i}`
        await Promise.all(
          Array.from({ length: accounts }, (_, i) => client.entity(BenchAccount, key(i)).signal.deposit(100)),
        )
        let seed = 42
        const random = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31
        const before = hops(stack.node)
        const cpuBefore = process.cpuUsage()
        const t0 = performance.now()
        let next = 0
        await Promise.all(
          Array.from({ length: 256 }, async () => {
            while (next++ < transfers) {
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
        const seconds = (performance.now() - t0) / 1000
        const cpu = process.cpuUsage(cpuBefore)
        const after = hops(stack.node)
        const balances = await Promise.all(
          Array.from({ length: accounts }, (_, i) => client.entity(BenchAccount, key(i)).call.balance()),
        )
        const total = balances.reduce((a, b) => a + b, 0)
        if (total !== accounts * 100)
          throw new VerificationError(`total balance ${total} != ${accounts * 100}`)
        if (balances.some((b) => b < 0)) throw new VerificationError('an account is overdrawn')
        const params = { accounts, transfers, concurrency: 256 }
        ctx.emit('transfers_per_s', transfers / seconds, '1/s', params)
        // what one transfer costs (the node, the client and the benchmark share this process)
        const per = (n: number) => round(n / transfers, 3)
        ctx.emit('partition_messages_per_transfer', per(after.messages - before.messages), '1', params)
        ctx.emit('mailbox_publishes_per_transfer', per(after.publishes - before.publishes), '1', params)
        ctx.emit('records_per_transfer', per(after.records - before.records), '1', params)
        ctx.emit('node_cpu_us_per_transfer', per(cpu.user + cpu.system), 'us', params)
      } finally {
        await stack.close()
      }
    },
  },
  'entity-signals': {
    description:
      'add(1) signals to N counters from one client, issued without awaiting, until committed; then call latency',
    async run(ctx) {
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
          if (run.serverCpuUs !== undefined)
            ctx.emit('server_cpu_us_per_signal', run.serverCpuUs, 'us', params)
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
    },
  },
  takeover: {
    description:
      'partitions of a SIGKILLed node answering again on the others (3 node processes, default lease), ' +
      'then the same for graceful stops (SIGTERM)',
    run: runTakeover,
  },
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

// ---------------------------------------------------------------------------------------------------------
// Runner
// ---------------------------------------------------------------------------------------------------------

function usage(): string {
  const names = Object.entries(benchmarks)
    .map(([name, b]) => `  ${name.padEnd(16)} ${b.description}`)
    .join('\n')
  return [
    'usage: npm run bench -- [name...] [--entities N] [--signals N] [--warmup N] [--json] [--no-pipelining-compare]',
    '         [--instances N] [--concurrency N,N...] [--activities N] [--nodes N,N...] [--kills N] [--partitions N]',
    '         [--workers N,N...] [--metrics on|off] [--node-logs DIR] [--report] [--report-dir DIR]',
    '       npm run bench -- --report-from FILE [--report-dir DIR]',
    '',
    'benchmarks (none named: all):',
    names,
    '',
    '--concurrency (hello-sequence, default 256): instances in flight; a list runs each level in turn.',
    '--nodes (hello-sequence): run against that many node processes, each count in turn.',
    '--kills (takeover, default 5): crash kills, and as many graceful stops, to measure.',
    '--partitions: partitions of every hub (default 32; takeover: 12).',
    '--workers (hello-sequence, entity-signals): the node runs its partitions on that many worker',
    '         threads (serving bench/registry.ts), each count in turn; adds the CPU per instance/signal.',
    '--metrics off: the in-process node records no metrics (default on: recorders and GET /metrics).',
    "--node-logs DIR: write each node process's output to DIR/<hub>-<node>.log.",
    `--report: also write SVG charts and ${FIGURES_FILE} (merged with the one there) to --report-dir`,
    `         (default ${DEFAULT_REPORT_DIR}).`,
    `--report-from FILE: draw the charts again from a ${FIGURES_FILE}, running nothing.`,
    'NATS_URL=nats://host:port uses that server instead of starting one.',
  ].join('\n')
}

/** Where the charts go: `--report` (after the run) or `--report-from FILE` (instead of one). */
interface ReportRequest {
  dir: string
  from: string | undefined
}

function parseOptions(
  argv: string[],
): { names: string[]; options: Options; report: ReportRequest | undefined } | 'help' {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    strict: true,
    options: {
      entities: { type: 'string', default: '100' },
      signals: { type: 'string', default: '100000' },
      instances: { type: 'string', default: '10000' },
      concurrency: { type: 'string', default: '256' },
      activities: { type: 'string', default: '5' },
      warmup: { type: 'string', default: '5000' },
      json: { type: 'boolean', default: false },
      'no-pipelining-compare': { type: 'boolean', default: false },
      nodes: { type: 'string' },
      kills: { type: 'string', default: '5' },
      partitions: { type: 'string' },
      'node-logs': { type: 'string' },
      workers: { type: 'string' },
      metrics: { type: 'string', default: 'on' },
      report: { type: 'boolean', default: false },
      'report-from': { type: 'string' },
      'report-dir': { type: 'string', default: DEFAULT_REPORT_DIR },
      help: { type: 'boolean', short: 'h', default: false },
    },
  })
  if (values.help) return 'help'
  const unknown = positionals.filter((name) => !(name in benchmarks))
  if (unknown.length > 0) throw new Error(`unknown benchmark ${unknown.join(', ')}`)
  const reportFrom = values['report-from']
  if (reportFrom !== undefined && (positionals.length > 0 || values.report))
    throw new Error(
      '--report-from draws charts from a file and runs nothing: give no benchmark, nor --report',
    )
  return {
    report:
      values.report || reportFrom !== undefined ? { dir: values['report-dir'], from: reportFrom } : undefined,
    names: positionals.length > 0 ? [...new Set(positionals)] : Object.keys(benchmarks),
    options: {
      entities: positiveInt('entities', values.entities),
      signals: positiveInt('signals', values.signals),
      instances: positiveInt('instances', values.instances),
      concurrency: positiveIntList('concurrency', values.concurrency),
      activities: positiveInt('activities', values.activities),
      warmup: positiveInt('warmup', values.warmup, 0),
      json: values.json,
      pipeliningCompare: !values['no-pipelining-compare'],
      nodes: values.nodes === undefined ? undefined : positiveIntList('nodes', values.nodes),
      kills: positiveInt('kills', values.kills),
      partitions: values.partitions === undefined ? undefined : positiveInt('partitions', values.partitions),
      nodeLogs: values['node-logs'],
      workers: values.workers === undefined ? undefined : positiveIntList('workers', values.workers),
      metrics: onOff('metrics', values.metrics),
    },
  }
}

async function main(): Promise<number> {
  let parsed: ReturnType<typeof parseOptions>
  try {
    parsed = parseOptions(process.argv.slice(2))
  } catch (err) {
    console.error(`${(err as Error).message}\n\n${usage()}`)
    return 2
  }
  if (parsed === 'help') {
    console.log(usage())
    return 0
  }
  const { names, options, report } = parsed
  const log = (message: string) => {
    if (!options.json) console.error(`[bench] ${message}`)
  }
  // the figures file is read before anything runs: a bad one is refused up front, not after the run
  let previous: ReportData | undefined
  try {
    if (report?.from !== undefined) {
      const { readReport, writeReport } = await charts()
      logCharts(await writeReport(readReport(report.from)!, report.dir), report.dir, log)
      return 0
    }
    if (report !== undefined) {
      const { readReport } = await charts()
      previous = readReport(path.join(report.dir, FIGURES_FILE), true)
    }
  } catch (err) {
    if (!(err instanceof BadInputError)) throw err
    console.error(err.message)
    return 2
  }

  const external = process.env.NATS_URL
  let server: NatsServer | undefined
  if (external === undefined || external === '') {
    server = await startNatsServer()
    log(`nats-server at ${server.url} (store ${server.storeDir})`)
  } else log(`using NATS_URL=${external}`)
  const url = server?.url ?? external!

  const runId = `bench-${Date.now()}`
  let hubs = 0
  const figures: Figure[] = []
  const distributions: Distribution[] = []
  /** Benchmarks that failed: their figures stay out of the report. */
  const failures = new Set<string>()
  try {
    for (const name of names) {
      const ctx: BenchContext = {
        url,
        options,
        log,
        emit(metric, value, unit, params) {
          const figure: Figure = { bench: name, metric, value, unit, params }
          figures.push(figure)
          console.log(JSON.stringify(figure))
        },
        distribution(metric, values, unit, params) {
          distributions.push({ bench: name, metric, unit, params, points: percentileCurve(values) })
        },
        serverCpuMs: () => (server === undefined ? undefined : processCpuMs(server.pid)),
        stack: async ({ registry, pipelining, workers }) => {
          const hub = `${runId}-${++hubs}`
          const node = await Node.start({
            servers: url,
            hub,
            // worker threads import the registry themselves: the benchmarks' module serves them all
            ...(workers === undefined ? { registry } : { registryModule: BENCH_REGISTRY, workers }),
            pipelining,
            // on: recorders and the endpoint (as an operator runs it); off: nothing recorded
            metrics: options.metrics ? {} : false,
            logger: silentLogger,
            ...(options.partitions === undefined ? {} : { partitions: options.partitions }),
          })
          let client: Client
          try {
            client = await Client.connect({ servers: url, hub })
          } catch (err) {
            await node.stop()
            throw err
          }
          return {
            hub,
            node,
            client,
            async close() {
              await client.close()
              await node.stop()
              // Our own server is thrown away at the end; on a shared one, leave nothing behind.
              if (server === undefined) {
                const nc = await connectTo(url, 'basalt-bench')
                await deleteHub(nc, hub).finally(() => nc.close())
              }
            },
          }
        },
        newHub: () => `${runId}-${++hubs}`,
        async dropHub(hub) {
          if (server !== undefined) return
          const nc = await connectTo(url, 'basalt-bench')
          await deleteHub(nc, hub).finally(() => nc.close())
        },
      }
      try {
        await benchmarks[name]!.run(ctx)
      } catch (err) {
        failures.add(name)
        console.error(
          `[bench] ${name} failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`,
        )
      }
    }
  } finally {
    await server?.dispose()
  }
  if (!options.json && figures.length > 0) console.log(`\n${table(figures)}`)
  if (report !== undefined) {
    const { hostDescription, mergeReports, reportOfRun, writeReport } = await charts()
    const ok = <T extends { bench: string }>(items: T[]) => items.filter((i) => !failures.has(i.bench))
    const run = reportOfRun(ok(figures), ok(distributions), {
      ranAt: new Date().toISOString(),
      command: ['npm run bench --', ...process.argv.slice(2)].join(' '),
      host: hostDescription() + (server === undefined ? ', external nats-server' : ''),
    })
    logCharts(await writeReport(mergeReports(previous, run), report.dir), report.dir, log)
  }
  return failures.size > 0 ? 1 : 0
}

/** Says which charts were written and which were skipped (with the command that fills them). */
function logCharts(charts: RenderedChart[], dir: string, log: (message: string) => void): void {
  for (const chart of charts) {
    if ('svg' in chart) log(`wrote ${path.join(dir, chart.file)}`)
    else log(`skipped ${chart.file}: no figures yet (${chart.missing})`)
  }
}

// ---------------------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------------------

function table(figures: Figure[]): string {
  const rows = [['bench', 'metric', 'value', 'unit', 'target']]
  for (const f of figures) {
    const target = TARGETS[`${f.bench}/${f.metric}`]
    const verdict =
      target === undefined
        ? ''
        : `${target.op} ${target.value} ${meets(f.value, target.op, target.value) ? '(met)' : '(missed)'}`
    const setup = setupLabel(f)
    rows.push([
      setup === '' ? f.bench : `${f.bench} (${setup})`,
      f.metric,
      f.value.toLocaleString('en-US', { maximumFractionDigits: 6 }),
      f.unit,
      verdict,
    ])
  }
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)))
  const line = (r: string[]) =>
    r
      .map((cell, i) => (i === 2 ? cell.padStart(widths[i]!) : cell.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd()
  return [line(rows[0]!), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.slice(1).map(line)].join('\n')
}

process.exitCode = await main()

function meets(value: number, op: '>=' | '<=' | '<', target: number): boolean {
  return op === '>=' ? value >= target : op === '<=' ? value <= target : value < target
}

/** A flag that is `on` or `off`; anything else is refused naming the flag. */
function onOff(flag: string, value: string): boolean {
  if (value === 'on') return true
  if (value === 'off') return false
  throw new Error(`--${flag} must be on or off (got ${JSON.stringify(value)})`)
}

/** Partition-to-partition messages and publishes of a node's partitions, and its records. */
function hops(node: Node): { messages: number; publishes: number; records: number } {
  let messages = 0
  let publishes = 0
  for (const partition of node.partitions.values()) {
    messages += partition.outboxMessages
    publishes += partition.outboxPublishes
  }
  return { messages, publishes, records: node.stats().records }
}

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
import { parseArgs } from 'node:util'
import { BadInputError, Client, Node, silentLogger } from '../runtime/index.ts'
import { connectTo, deleteHub } from '../runtime/internal.ts'
import { startNatsServer, type NatsServer } from '../runtime/dev/nats-server.ts'
import {
  percentileCurve,
  setupLabel,
  type BenchContext,
  type Benchmark,
  type Distribution,
  type Figure,
  type Options,
  FAULTS,
  processCpuMs,
} from './common.ts'
import { choiceList, positiveInt, positiveIntList } from './args.ts'
import { fileURLToPath } from 'node:url'
import { DEFAULT_REPORT_DIR, FIGURES_FILE } from './report-files.ts'
import type { RenderedChart, ReportData } from './report.ts'
import { runHelloSequence } from './hello-sequence.ts'
import { runBank, runFanOutFanIn } from './orchestrations.ts'
import { runEntitySignals } from './entity-signals.ts'
import { runTakeover } from './takeover.ts'
import { runOutage } from './outage.ts'
import { runIdleR3 } from './idle-r3.ts'

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
    run: runFanOutFanIn,
  },
  bank: {
    description:
      'transfers under a lock over both accounts (the Bank workload of the paper), 1,000 accounts, 256 in flight',
    run: runBank,
  },
  'entity-signals': {
    description:
      'add(1) signals to N counters from one client, issued without awaiting, until committed; then call latency',
    run: runEntitySignals,
  },
  outage: {
    description:
      'the hub unavailable after the only server is stopped 4 s or killed and restarted, and after an R3 ' +
      'member is killed; every acknowledged signal applied once (servers of its own, whatever NATS_URL)',
    run: runOutage,
  },
  'idle-r3': {
    description:
      'call latency on an idle replicated hub (3-server cluster of its own, 8 partitions): one call every ' +
      '50 ms for --seconds; p50, p99, max and calls over 300 ms',
    run: runIdleR3,
  },
  takeover: {
    description:
      'partitions of a SIGKILLed node answering again on the others (3 node processes, default lease), ' +
      'then the same for graceful stops (SIGTERM)',
    run: runTakeover,
  },
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
    '         [--instances N] [--transfers N] [--concurrency N,N...] [--activities N] [--nodes N,N...] [--kills N] [--runs N] [--faults F,F...] [--seconds N] [--partitions N]',
    '         [--workers N,N...] [--metrics on|off] [--local-delivery on|off] [--node-logs DIR] [--report] [--report-dir DIR]',
    '       npm run bench -- --report-from FILE [--report-dir DIR]',
    '',
    'benchmarks (none named: all):',
    names,
    '',
    '--transfers (bank, default 3000): timed transfers, after a warm-up of up to 1,000.',
    '--concurrency (hello-sequence, default 256): instances in flight; a list runs each level in turn.',
    '--nodes (hello-sequence): run against that many node processes, each count in turn.',
    '--kills (takeover, default 5): crash kills, and as many graceful stops, to measure.',
    '--runs (outage, default 3): runs of each server fault.',
    '--faults (outage, default stop,kill,member): the server faults to run, in that order.',
    '--seconds (idle-r3, default 120): how long calls are made.',
    '--partitions: partitions of every hub (default 32; takeover: 12).',
    '--workers (hello-sequence, entity-signals): the node runs its partitions on that many worker',
    '         threads (serving bench/registry.ts), each count in turn; adds the CPU per instance/signal.',
    '--metrics off: the in-process node records no metrics (default on: recorders and GET /metrics).',
    '--local-delivery off: the in-process node sends messages between its partitions through their',
    '         mailbox streams (default on: handed over in memory).',
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
      transfers: { type: 'string', default: '3000' },
      concurrency: { type: 'string', default: '256' },
      activities: { type: 'string', default: '5' },
      warmup: { type: 'string', default: '5000' },
      json: { type: 'boolean', default: false },
      'no-pipelining-compare': { type: 'boolean', default: false },
      nodes: { type: 'string' },
      kills: { type: 'string', default: '5' },
      runs: { type: 'string', default: '3' },
      seconds: { type: 'string', default: '120' },
      faults: { type: 'string', default: FAULTS.join(',') },
      partitions: { type: 'string' },
      'node-logs': { type: 'string' },
      workers: { type: 'string' },
      metrics: { type: 'string', default: 'on' },
      'local-delivery': { type: 'string', default: 'on' },
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
      transfers: positiveInt('transfers', values.transfers),
      concurrency: positiveIntList('concurrency', values.concurrency),
      activities: positiveInt('activities', values.activities),
      warmup: positiveInt('warmup', values.warmup, 0),
      json: values.json,
      pipeliningCompare: !values['no-pipelining-compare'],
      nodes: values.nodes === undefined ? undefined : positiveIntList('nodes', values.nodes),
      kills: positiveInt('kills', values.kills),
      runs: positiveInt('runs', values.runs),
      seconds: positiveInt('seconds', values.seconds),
      faults: choiceList('faults', values.faults, FAULTS),
      partitions: values.partitions === undefined ? undefined : positiveInt('partitions', values.partitions),
      nodeLogs: values['node-logs'],
      workers: values.workers === undefined ? undefined : positiveIntList('workers', values.workers),
      metrics: onOff('metrics', values.metrics),
      localDelivery: onOff('local-delivery', values['local-delivery']),
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
            localDelivery: options.localDelivery,
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

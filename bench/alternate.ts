/**
 * A/B comparison of two checkouts of the engine by CPU per operation, on a shared machine: runs
 * `bench/run.ts <bench> --json` in checkout A, then in B, then A, B, … (`--pairs`, default 4), so
 * that the load other processes put on the machine falls on both alike, and prints each run's
 * figures and the medians per checkout. Wall throughput swings with that load; the process CPU
 * per instance (`process_cpu_ms_per_instance`, node and client in one process) much less.
 *
 *   NATS_URL=nats://127.0.0.1:4222 node --import tsx bench/alternate.ts /tmp/before . --pairs 6
 *   node --import tsx bench/alternate.ts /tmp/before . -- --instances 20000 --concurrency 1024
 *
 * Arguments after `--` go to every benchmark run; `--args-a "…"` / `--args-b "…"` to one side only
 * (the same checkout twice with `--args-b "--metrics off"` prices an option). Without NATS_URL every run starts its own
 * nats-server (slower, and the server's start-up is not measured anyway).
 */
import { execFileSync } from 'node:child_process'
import path from 'node:path'

/** The figures compared first, when the benchmark reports them; any others it reports follow. */
const PREFERRED = [
  'instances_per_s',
  'process_cpu_ms_per_instance',
  'process_cpu_ms_per_instance_settled',
  'latency_p99_ms',
  'unloaded_p50_ms',
]

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b)
  const mid = Math.floor(sorted.length / 2)
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2
}

/** One benchmark run in `dir`: its figures by metric (the first level's, when there are several). */
function runOnce(dir: string, bench: string, extra: string[]): Map<string, number> {
  const out = execFileSync('node', ['--import', 'tsx', 'bench/run.ts', bench, '--json', ...extra], {
    cwd: dir,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
    maxBuffer: 64 * 1024 * 1024,
  })
  const figures = new Map<string, number>()
  for (const line of out.split('\n')) {
    if (!line.startsWith('{')) continue
    const f = JSON.parse(line) as { metric: string; value: number }
    if (!figures.has(f.metric)) figures.set(f.metric, f.value)
  }
  return figures
}

function main(): number {
  const argv = process.argv.slice(2)
  const dashes = argv.indexOf('--')
  const own = dashes < 0 ? argv : argv.slice(0, dashes)
  const extra = dashes < 0 ? [] : argv.slice(dashes + 1)
  let pairs = 4
  let bench = 'hello-sequence'
  const dirs: string[] = []
  const sideArgs: Record<'A' | 'B', string[]> = { A: [], B: [] }
  for (let i = 0; i < own.length; i++) {
    const a = own[i]!
    if (a === '--pairs') pairs = Number(own[++i])
    else if (a === '--bench') bench = own[++i] ?? bench
    else if (a === '--args-a') sideArgs.A = (own[++i] ?? '').split(' ').filter(Boolean)
    else if (a === '--args-b') sideArgs.B = (own[++i] ?? '').split(' ').filter(Boolean)
    else dirs.push(path.resolve(a))
  }
  if (dirs.length !== 2 || !Number.isInteger(pairs) || pairs < 1) {
    console.error(
      'usage: node --import tsx bench/alternate.ts DIR_A DIR_B [--pairs N] [--bench NAME] [--args-a "ARGS"] [--args-b "ARGS"] [-- bench args]',
    )
    return 2
  }
  const runs: Array<{ label: 'A' | 'B'; figures: Map<string, number> }> = []
  const fmt = (v: number | undefined) => (v === undefined ? '-' : String(Math.round(v * 1000) / 1000))
  let METRICS: string[] = []
  for (let i = 0; i < pairs; i++) {
    for (const label of ['A', 'B'] as const) {
      const figures = runOnce(label === 'A' ? dirs[0]! : dirs[1]!, bench, [...extra, ...sideArgs[label]])
      runs.push({ label, figures })
      if (METRICS.length === 0) {
        // the columns: the preferred figures this benchmark reports, then the rest it reports
        METRICS = [
          ...PREFERRED.filter((m) => figures.has(m)),
          ...[...figures.keys()].filter((m) => !PREFERRED.includes(m)),
        ]
        console.log(['run', ...METRICS].join('\t'))
      }
      console.log([`${label}${i + 1}`, ...METRICS.map((m) => fmt(figures.get(m)))].join('\t'))
    }
  }
  for (const label of ['A', 'B'] as const) {
    const mine = runs.filter((r) => r.label === label)
    const medians = METRICS.map((m) => {
      const values = mine.map((r) => r.figures.get(m)).filter((v): v is number => v !== undefined)
      return values.length === 0 ? undefined : median(values)
    })
    console.log([`${label} median`, ...medians.map(fmt)].join('\t'))
  }
  return 0
}

process.exitCode = main()

/**
 * The long chaos run (`npm run soak`): many seeds of test/chaos/chaos.ts, one after another.
 *
 *   npm run soak -- [--seeds N] [--start-seed S] [--mode single|r3|both] [--duration SECONDS] [--stepdowns] [--verbose]
 *
 * Defaults: 20 seeds from a time-derived start seed, both modes, 40 s of faults per run (issue 9's
 * figures). Prints one summary line per run (and the full report of a failed one), then a line
 * with totals; exits 1 if any run was not exact (lost, duplicated, phantom, unfinished work, a
 * lock left held, or partitions not served again), 2 for a bad command line. `--verbose` also
 * prints each fault as it happens and the nodes' last output lines of every run. `--stepdowns`
 * also asks a stream leader of an R3 hub to step down every 3–6 s (a leader elected moments before
 * may answer before it applied what was committed, on nats-server before 2.11); off by default,
 * so that a seed keeps meaning the faults it meant before.
 */
import { runChaos } from './chaos.ts'
import { formatFailure, formatSummary, type ChaosSummary } from './report.ts'

interface SoakArgs {
  seeds: number
  startSeed: number
  modes: Array<'single' | 'r3'>
  durationMs: number
  verbose: boolean
  stepdowns: boolean
}

function usage(message: string): never {
  console.error(
    `${message}\nusage: npm run soak -- [--seeds N] [--start-seed S] [--mode single|r3|both] [--duration SECONDS] [--stepdowns] [--verbose]`,
  )
  process.exit(2)
}

function parseArgs(argv: string[]): SoakArgs {
  const args: SoakArgs = {
    seeds: 20,
    startSeed: Date.now() % 1_000_000,
    modes: ['single', 'r3'],
    durationMs: 40_000,
    verbose: false,
    stepdowns: false,
  }
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i]
    if (flag === '--verbose') {
      args.verbose = true
      continue
    }
    if (flag === '--stepdowns') {
      args.stepdowns = true
      continue
    }
    const value = argv[++i]
    if (value === undefined) usage(`${flag} needs a value`)
    const number = Number(value)
    switch (flag) {
      case '--seeds':
        if (!Number.isInteger(number) || number < 1)
          usage(`--seeds must be a positive integer (got ${value})`)
        args.seeds = number
        break
      case '--start-seed':
        if (!Number.isInteger(number) || number < 0)
          usage(`--start-seed must be a non-negative integer (got ${value})`)
        args.startSeed = number
        break
      case '--mode':
        if (value === 'both') args.modes = ['single', 'r3']
        else if (value === 'single' || value === 'r3') args.modes = [value]
        else usage(`--mode must be single, r3 or both (got ${value})`)
        break
      case '--duration':
        if (!(number >= 5)) usage(`--duration must be at least 5 seconds (got ${value})`)
        args.durationMs = number * 1000
        break
      default:
        usage(`unknown option ${flag}`)
    }
  }
  return args
}

// Ctrl-C: exit normally, so the exit hooks kill the nodes and servers and remove their stores
process.on('SIGINT', () => process.exit(130))
process.on('SIGTERM', () => process.exit(143))

const args = parseArgs(process.argv.slice(2))
console.log(
  `soak: seeds ${args.startSeed}..${args.startSeed + args.seeds - 1}, modes ${args.modes.join('+')}, ${args.durationMs / 1000} s of faults each`,
)
const results: ChaosSummary[] = []
for (let i = 0; i < args.seeds; i++) {
  for (const mode of args.modes) {
    const seed = args.startSeed + i
    const summary = await runChaos({
      seed,
      mode,
      durationMs: args.durationMs,
      stepdowns: args.stepdowns,
      ...(args.verbose ? { log: (line: string) => console.log(`  ${line}`), keepTails: true } : {}),
    })
    results.push(summary)
    console.log(formatSummary(summary))
    if (!summary.ok) console.log(formatFailure(summary))
    else if (args.verbose) console.log(summary.nodeTails)
  }
}
const sum = (pick: (s: ChaosSummary) => number): number => results.reduce((total, s) => total + pick(s), 0)
const served = results.map((s) => s.servedAgainMs).filter((ms): ms is number => ms !== undefined)
const failed = results.filter((s) => !s.ok)
console.log(
  [
    `total: runs=${results.length} failed=${failed.length}${failed.length > 0 ? ` (seeds ${failed.map((s) => `${s.seed}/${s.mode}`).join(', ')})` : ''}`,
    `kills=${sum((s) => s.kills)} pauses=${sum((s) => s.pauses)} serverRestarts=${sum((s) => s.serverRestarts)} stepdowns=${sum((s) => s.stepdowns)}`,
    `signals=${sum((s) => s.verdict.signalsAcked)} orchestrations=${sum((s) => s.verdict.startsAcked)}`,
    `lost=${sum((s) => s.lost)} duplicated=${sum((s) => s.duplicated)}`,
    `servedAgain max=${served.length > 0 ? (Math.max(...served) / 1000).toFixed(1) : '-'}s` +
      (served.length < results.length ? ` (never in ${results.length - served.length} runs)` : ''),
  ].join(' '),
)
process.exit(failed.length > 0 ? 1 : 0)

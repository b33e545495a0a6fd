/**
 * What the benchmarks share (`bench/run.ts` runs them): the figure format, the options, the context a
 * benchmark runs with, the error that marks a wrong result, and percentile helpers.
 */
import { readFileSync } from 'node:fs'
import type { Client, Node } from '../runtime/index.ts'
import type { RegistryItem } from '../runtime/node/node.ts'

/** One measured figure; printed as one JSON line. */
export interface Figure {
  bench: string
  metric: string
  value: number
  unit: string
  params: Record<string, unknown>
}

/**
 * A measured distribution (e.g. the latency of every instance of a phase), kept as a percentile
 * curve for the charts of `--report` (`bench/report.ts`); not printed as a JSON line.
 */
export interface Distribution {
  bench: string
  metric: string
  unit: string
  params: Record<string, unknown>
  /** `[percentile, value]` pairs, percentile ascending in 0..100 (see {@link percentileCurve}). */
  points: Array<[number, number]>
}

/** Command-line options shared by all benchmarks; each benchmark reads the ones it uses. */
export interface Options {
  entities: number
  signals: number
  instances: number
  /** `bank`: timed transfers (after a warm-up of up to 1,000). */
  transfers: number
  /** `hello-sequence --concurrency 256,1024,2048`: instances in flight, each level in turn. */
  concurrency: number[]
  activities: number
  warmup: number
  json: boolean
  pipeliningCompare: boolean
  /** `hello-sequence --nodes 1,2,3`: run against that many node processes, each count in turn. */
  nodes: number[] | undefined
  /** `takeover`: crash kills, and graceful moves, to measure (default 5 each). */
  kills: number
  /** `outage`: runs of each server fault (default 3). */
  runs: number
  /** `idle-r3`: how long calls are made, in seconds (default 120). */
  seconds: number
  /** `outage`: the server faults to run, in order (default all: stop, kill, member). */
  faults: Fault[]
  /** Partitions of the hubs that node processes serve (default: 12 for `takeover`, else 32). */
  partitions: number | undefined
  /** Directory that receives each node process's output, one file per node (default: none). */
  nodeLogs: string | undefined
  /**
   * `--workers 1,2` (hello-sequence, entity-signals): the in-process node runs its partitions on that
   * many worker threads, each count in turn, serving `bench/registry.ts` (default: no list, the
   * node of `registry` on the calling thread).
   */
  workers: number[] | undefined
  /** `--metrics off`: the node records no metrics (to price them against the default, on). */
  metrics: boolean
  /**
   * `--local-delivery off`: the in-process node sends partition messages through the mailbox even
   * between its own partitions (to price the in-memory hand-over against it).
   */
  localDelivery: boolean
}

/** The server faults of `outage` (bench/outage.ts), in the order they run by default. */
export const FAULTS = ['stop', 'kill', 'member'] as const
export type Fault = (typeof FAULTS)[number]

/** What a benchmark gets to run with. */
export interface BenchContext {
  url: string
  options: Options
  /** Records a figure (and prints its JSON line). */
  emit(metric: string, value: number, unit: string, params: Record<string, unknown>): void
  /** Records a distribution for the charts (kept as a percentile curve, not printed). */
  distribution(metric: string, values: number[], unit: string, params: Record<string, unknown>): void
  /** Progress on stderr (silent with `--json`). */
  log(message: string): void
  /** Starts a node and a client on a fresh hub; `close()` shuts both down (and deletes the hub). */
  stack(options: { registry: RegistryItem[]; pipelining?: boolean; workers?: number }): Promise<Stack>
  /** CPU time the benchmark's own nats-server has used so far, in ms (undefined: external, or no `/proc`). */
  serverCpuMs(): number | undefined
  /** A fresh hub name, for benchmarks that start their own nodes. */
  newHub(): string
  /** Deletes a hub made with {@link newHub} when the server is shared (our own is thrown away). */
  dropHub(hub: string): Promise<void>
}

/** A benchmark in the table of `bench/run.ts`. */
export interface Benchmark {
  description: string
  /** Throws {@link VerificationError} when the result is wrong. */
  run(ctx: BenchContext): Promise<void>
}

/** A node in this process and a client, on a fresh hub. */
export interface Stack {
  hub: string
  node: Node
  client: Client
  close(): Promise<void>
}

/** A benchmark computed a wrong result (the process exits 1). */
export class VerificationError extends Error {
  override readonly name = 'VerificationError'
}

/** Nearest-rank percentile of sorted values. */
export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN
  // rounded first: 99.9 % of 1,000 is 999.0000000000001 in floating point, which is rank 999
  const rank = Math.ceil(round((p / 100) * sorted.length, 9))
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1]!
}

/** Nearest-rank quantile (q in 0..1) of unsorted values. */
export function quantile(values: number[], q: number): number {
  return percentile(
    [...values].sort((a, b) => a - b),
    q * 100,
  )
}

/** Percentiles a {@link Distribution} keeps: every whole one, then ever finer towards the maximum. */
const CURVE_PERCENTILES = [
  ...Array.from({ length: 100 }, (_, i) => i),
  ...Array.from({ length: 9 }, (_, i) => round(99.1 + i * 0.1, 1)),
  99.95,
  99.99,
  100,
]

/**
 * The percentile curve of unsorted `values`: `[p, nearest-rank percentile]` for p = 0, 1, …, 99,
 * 99.1, …, 99.9, 99.95, 99.99 and 100 (the maximum), values rounded to 4 decimals; empty for no
 * values.
 */
export function percentileCurve(values: number[]): Array<[number, number]> {
  if (values.length === 0) return []
  const sorted = [...values].sort((a, b) => a - b)
  return CURVE_PERCENTILES.map((p) => [p, round(p === 0 ? sorted[0]! : percentile(sorted, p), 4)])
}

/** `value` rounded to `digits` decimals. */
export function round(value: number, digits: number): number {
  const f = 10 ** digits
  return Math.round(value * f) / f
}

/** `1 node`, `3 nodes`. */
export function nodesLabel(n: number): string {
  return `${n} node${n === 1 ? '' : 's'}`
}

/**
 * The setup a `hello-sequence` figure was measured with, for the table: `2 nodes, 256 in flight`
 * from its `nodes` (`--nodes`) and `concurrency` (`--concurrency`, a list) params; empty when
 * neither is there, and for the other benchmarks (whose setup does not vary).
 */
export function setupLabel(figure: Pick<Figure, 'bench' | 'params'>): string {
  const { nodes, concurrency, workers } = figure.params
  const threads = typeof workers === 'number' ? `${workers} worker${workers === 1 ? '' : 's'}` : ''
  if (figure.bench !== 'hello-sequence') return threads
  const parts: string[] = threads === '' ? [] : [threads]
  if (typeof nodes === 'number') parts.push(nodesLabel(nodes))
  if (typeof concurrency === 'number') parts.push(`${concurrency} in flight`)
  return parts.join(', ')
}

/**
 * CPU time (user + system) process `pid` has used so far, in ms, from `/proc/<pid>/stat` (clock
 * ticks taken as 10 ms); undefined where there is no `/proc` or the process is gone.
 */
export function processCpuMs(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    // fields after "pid (comm) ": state is field 3, utime 14, stime 15
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    return (Number(fields[11]) + Number(fields[12])) * 10
  } catch {
    return undefined
  }
}

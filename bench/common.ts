/**
 * What the benchmarks share (`bench/run.ts` runs them): the figure format, the options, the context a
 * benchmark runs with, the error that marks a wrong result, and percentile helpers.
 */
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

/** Command-line options shared by all benchmarks; each benchmark reads the ones it uses. */
export interface Options {
  entities: number
  signals: number
  instances: number
  concurrency: number
  activities: number
  warmup: number
  json: boolean
  pipeliningCompare: boolean
  /** `hello-sequence --nodes 1,2,3`: run against that many node processes, each count in turn. */
  nodes: number[] | undefined
  /** `takeover`: crash kills, and graceful moves, to measure (default 5 each). */
  kills: number
  /** Partitions of the hubs that node processes serve (default: 12 for `takeover`, else 32). */
  partitions: number | undefined
  /** Directory that receives each node process's output, one file per node (default: none). */
  nodeLogs: string | undefined
}

/** What a benchmark gets to run with. */
export interface BenchContext {
  url: string
  options: Options
  /** Records a figure (and prints its JSON line). */
  emit(metric: string, value: number, unit: string, params: Record<string, unknown>): void
  /** Progress on stderr (silent with `--json`). */
  log(message: string): void
  /** Starts a node and a client on a fresh hub; `close()` shuts both down (and deletes the hub). */
  stack(options: { registry: RegistryItem[]; pipelining?: boolean }): Promise<Stack>
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
  const rank = Math.ceil((p / 100) * sorted.length)
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1]!
}

/** Nearest-rank quantile (q in 0..1) of unsorted values. */
export function quantile(values: number[], q: number): number {
  return percentile(
    [...values].sort((a, b) => a - b),
    q * 100,
  )
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

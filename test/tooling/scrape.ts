/**
 * Reading a node's Prometheus endpoint in tests: {@link scrape} parses the exposition text into
 * `series → value`, {@link sum} adds the series of one metric whose labels match.
 */
import { expect } from 'vitest'

/** Parsed exposition text: `name{labels}` → value. */
export type Scrape = Map<string, number>

/** GETs `url` (expects 200) and parses every sample line. */
export async function scrape(url: string): Promise<Scrape> {
  const res = await fetch(url)
  expect(res.status, `GET ${url}`).toBe(200)
  const out: Scrape = new Map()
  for (const line of (await res.text()).split('\n')) {
    if (line === '' || line.startsWith('#')) continue
    const at = line.lastIndexOf(' ')
    out.set(line.slice(0, at), Number(line.slice(at + 1)))
  }
  return out
}

/** Sum of the series of `name` whose labels include every `label="value"` given. */
export function sum(s: Scrape, name: string, ...labels: string[]): number {
  let total = 0
  for (const [series, value] of s) {
    const base = series.split('{')[0]
    if (base !== name) continue
    if (labels.every((l) => series.includes(l))) total += value
  }
  return total
}

/** The partitions that have a series of `name` (its `partition` label), ascending. */
export function partitionsOf(s: Scrape, name: string): number[] {
  const out = new Set<number>()
  for (const series of s.keys()) {
    if (series.split('{')[0] !== name) continue
    const m = /partition="(\d+)"/.exec(series)
    if (m !== null) out.add(Number(m[1]))
  }
  return [...out].sort((a, b) => a - b)
}

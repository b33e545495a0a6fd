/**
 * Placement policy: which live node should own each partition. Pure and deterministic, so the
 * leader's decisions can be tested without NATS, and a new leader computes the same table as the
 * old one. The mechanism that carries a decision out (epochs, hand-offs) is in `agent.ts`.
 */

/**
 * Spreads `partitions` evenly over `live` nodes while moving as few as possible: a partition stays
 * with its owner while that owner is live and holds no more than its share; orphans (owner gone or
 * none) and the excess of over-full nodes go to the emptiest nodes. Shares differ by at most one.
 *
 * @param owners current owner per partition (`null`: unassigned)
 * @returns the desired owner per partition (all `null` when no node is live)
 *
 * @example
 * balance(4, ['a', 'b'], ['a', 'a', 'a', null]) // → ['a', 'a', 'b', 'b']
 */
export function balance(
  partitions: number,
  live: readonly string[],
  owners: ReadonlyArray<string | null>,
): Array<string | null> {
  const nodes = [...new Set(live)].sort()
  if (nodes.length === 0) return Array.from({ length: partitions }, () => null)
  const held = new Map<string, number[]>(nodes.map((n) => [n, []]))
  const pool: number[] = []
  for (let p = 0; p < partitions; p++) {
    const list = held.get(owners[p] ?? '')
    if (list === undefined) pool.push(p)
    else list.push(p)
  }
  // Shares: base each, one more for the `extra` nodes that already hold the most (fewest moves).
  const base = Math.floor(partitions / nodes.length)
  let extra = partitions % nodes.length
  const byLoad = [...nodes].sort((a, b) => held.get(b)!.length - held.get(a)!.length || (a < b ? -1 : 1))
  const share = new Map<string, number>()
  for (const n of byLoad) share.set(n, base + (extra-- > 0 ? 1 : 0))
  for (const n of nodes) {
    const list = held.get(n)!
    while (list.length > share.get(n)!) pool.push(list.pop()!)
  }
  pool.sort((a, b) => a - b)
  const desired: Array<string | null> = Array.from({ length: partitions }, () => null)
  for (const [n, list] of held) for (const p of list) desired[p] = n
  for (const p of pool) {
    let best: string | undefined
    for (const n of nodes) {
      const room = share.get(n)! - held.get(n)!.length
      if (room > 0 && (best === undefined || held.get(n)!.length < held.get(best)!.length)) best = n
    }
    held.get(best!)!.push(p)
    desired[p] = best!
  }
  return desired
}

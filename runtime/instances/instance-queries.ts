/**
 * The instance queries of a partition: an instance's status (with its history when asked) and
 * pages of instance summaries by filter. Both are answered after the commit of what they saw.
 * Listings are built from the stored records, corrected by the writes not stored yet and by the
 * records in memory (the newest). Apart from the instance host (instance-host.ts).
 */
import { WIRE_VERSION, type InstanceFilter, type Query, type QueryAnswer } from '../../actors/wire/index.ts'
import { ItemKind, decode, encode, itemKey, partitionFilter, partitionPrefix } from '../nats/index.ts'
import type { HostPort } from '../partition/index.ts'
import type { InstanceCache } from './instance-cache.ts'
import { loadHistory } from './instance-history.ts'
import { matches, summaryOf, type InstanceRecord, type InstanceView } from './instance-model.ts'
import type { HistoryEvent } from '../../actors/orchestration/index.ts'

/** Answers instance queries; false when the query is not about instances. */
export async function answerInstanceQuery(
  port: HostPort,
  cache: InstanceCache,
  query: Query,
  respond: (answer: QueryAnswer) => void,
): Promise<boolean> {
  if (query.k === 'status') {
    const live = await cache.load(query.i)
    let bytes: Uint8Array | null = null
    if (live !== undefined) {
      const view: InstanceView = { ...live.rec, tail: [] }
      if (query.history) {
        // (a long history comes in pages: one answer must fit the server's max_payload)
        const page = historyPage(await loadHistory(port, live), query.hf ?? 0, port.valueLimit)
        view.history = page.events
        if (page.next !== undefined) view.historyNext = page.next
      }
      bytes = encode(view)
    }
    const n = port.roundNumber - 1
    port.afterCommit(() => respond({ v: WIRE_VERSION, ok: 1, instance: bytes, n }))
    return true
  }
  if (query.k === 'instances') {
    const summaries = await listInstances(port, cache, query.f, query.after, query.limit)
    port.afterCommit(() => respond({ v: WIRE_VERSION, ok: 1, ...summaries }))
    return true
  }
  return false
}

/**
 * The events of `history` from index `from` on, as many as fit `budget` encoded bytes (at least
 * one), and the index of the next page when some are left.
 */
export function historyPage(
  history: HistoryEvent[],
  from: number,
  budget: number,
): { events: HistoryEvent[]; next?: number } {
  const start = Number.isSafeInteger(from) && from > 0 ? from : 0
  let bytes = 0
  let end = start
  while (end < history.length) {
    const size = encode(history[end]).length
    if (end > start && bytes + size > budget) break
    bytes += size
    end++
  }
  const events = history.slice(start, end)
  return end < history.length ? { events, next: end } : { events }
}

/** A page of summaries of the instances matching a filter, after an id. */
async function listInstances(
  port: HostPort,
  cache: InstanceCache,
  filter: InstanceFilter,
  after: string,
  limit: number,
): Promise<{ summaries: Array<[string, Uint8Array]>; more: boolean }> {
  // listed from the records (summaries are not stored); cached ones are the newest. The writes
  // committed during the read count too: a purge stored while a large bucket was read showed the
  // purged record again (found by an outside trial, with 15,000 instances and more)
  const values = new Map<string, Uint8Array | InstanceRecord | null>(
    await port.currentItems(
      partitionFilter(ItemKind.Instance, port.p),
      partitionPrefix(ItemKind.Instance, port.p),
    ),
  )
  for (const [id, live] of cache.entries()) values.set(itemKey.instance(port.p, id), live.rec)
  const out: Array<[string, Uint8Array]> = []
  for (const value of values.values()) {
    if (value === null) continue
    const rec = value instanceof Uint8Array ? (decode(value, 'instance') as InstanceRecord) : value
    const s = summaryOf(rec)
    if (s.id <= after || !matches(s, filter)) continue
    out.push([s.id, encode(s)])
  }
  out.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))
  return { summaries: out.slice(0, limit), more: out.length > limit }
}

/** Durable timers of a partition, in memory: a map by item key plus a min-heap by due time. */
import type { TimerValue } from '../../actors/wire/index.ts'

/** Pending timers; the map is the truth, heap entries that no longer match it are skipped. */
export class TimerSet {
  readonly #byKey = new Map<string, TimerValue>()
  readonly #heap: Array<[due: number, key: string]> = []

  get size(): number {
    return this.#byKey.size
  }

  set(key: string, value: TimerValue): void {
    this.#byKey.set(key, value)
    this.#push([value[0], key])
  }

  /** Whether a timer is pending under `key`. */
  has(key: string): boolean {
    return this.#byKey.has(key)
  }

  /** Removes a timer; false when none was pending under `key`. */
  delete(key: string): boolean {
    return this.#byKey.delete(key)
  }

  /** The pending timers, in no particular order (for queries; see entity-queries.ts). */
  values(): IterableIterator<TimerValue> {
    return this.#byKey.values()
  }

  /** Due time of the earliest timer, if any. */
  next(): number | undefined {
    this.#clean()
    return this.#heap[0]?.[0]
  }

  /**
   * Timers due at `now`, earliest first, each once (they stay in the set until deleted). A key set
   * again with the same due time has two heap entries that both match the map — recovery does
   * that when a snapshot stored a timer whose record the log replays too (a crash after the items
   * were written, before the checkpoint moved) — and listing it twice fired it twice.
   */
  due(now: number): Array<[string, TimerValue]> {
    const out: Array<[string, TimerValue]> = []
    const held: Array<[number, string]> = []
    let taken: Set<string> | undefined
    for (;;) {
      this.#clean()
      const top = this.#heap[0]
      if (top === undefined || top[0] > now) break
      this.#pop()
      if (taken?.has(top[1])) continue // the key's second entry: dropped, one is enough
      ;(taken ??= new Set()).add(top[1])
      held.push(top)
      out.push([top[1], this.#byKey.get(top[1])!])
    }
    for (const h of held) this.#push(h)
    return out
  }

  #clean(): void {
    for (;;) {
      const top = this.#heap[0]
      if (top === undefined) return
      const value = this.#byKey.get(top[1])
      if (value !== undefined && value[0] === top[0]) return
      this.#pop()
    }
  }

  #push(item: [number, string]): void {
    const h = this.#heap
    h.push(item)
    let i = h.length - 1
    while (i > 0) {
      const parent = (i - 1) >> 1
      if (h[parent]![0] <= h[i]![0]) break
      ;[h[parent], h[i]] = [h[i]!, h[parent]!]
      i = parent
    }
  }

  #pop(): void {
    const h = this.#heap
    const last = h.pop()!
    if (h.length === 0) return
    h[0] = last
    let i = 0
    for (;;) {
      const l = 2 * i + 1
      const r = l + 1
      let m = i
      if (l < h.length && h[l]![0] < h[m]![0]) m = l
      if (r < h.length && h[r]![0] < h[m]![0]) m = r
      if (m === i) return
      ;[h[m], h[i]] = [h[i]!, h[m]!]
      i = m
    }
  }
}

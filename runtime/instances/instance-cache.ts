/**
 * The orchestration instances a partition holds in memory: each one's record, its loaded history
 * and its live generator (so a step after the first needs no replay), and the ids known to be
 * absent (so a start or query of an unknown id reads the state bucket once). Evicts the least
 * recently used clean instances (CLOCK) past the cache size; an instance with writes not in the
 * state bucket yet stays. Apart from the instance host (instance-host.ts), which runs the steps.
 */
import type { OrchestrationExecutor, HistoryEvent } from '../../actors/orchestration/index.ts'
import { decode, itemKey } from '../nats/index.ts'
import type { HostPort } from '../partition/index.ts'
import type { InstanceRecord } from './instance-model.ts'

/** An instance in memory. */
export interface Live {
  rec: InstanceRecord
  /** The whole history of the current execution (loaded when first needed). */
  history?: HistoryEvent[]
  executor?: OrchestrationExecutor
  used: boolean
  /** Encoded size of the record when last written (estimates a round's size). */
  size?: number
  /** Bytes of user values in the history tail (estimated); a large tail moves into a chunk. */
  tailBytes?: number
  /** Whether the history is loaded with the values of its references (ready for a step). */
  ready?: boolean
}

/** The instances of one partition held in memory. */
export class InstanceCache {
  readonly #live = new Map<string, Live>()
  /** Ids looked up and found absent (not stored, not written since); cleared when it grows. */
  readonly #absent = new Set<string>()

  constructor(
    readonly port: HostPort,
    /** Most instances kept in memory. */
    readonly cacheSize: number,
  ) {}

  /** Whether the id is in memory or known to be absent (no load needed). */
  isKnown(id: string): boolean {
    return this.#live.has(id) || this.#absent.has(id)
  }

  /** The instance in memory, without marking it used. */
  get(id: string): Live | undefined {
    return this.#live.get(id)
  }

  /** Holds a new instance (it exists from now on). */
  set(id: string, live: Live): void {
    this.#live.set(id, live)
    this.#absent.delete(id)
  }

  /** Drops an instance (purged). */
  delete(id: string): void {
    this.#live.delete(id)
  }

  /** The instances in memory (the newest records, for listings). */
  entries(): IterableIterator<[string, Live]> {
    return this.#live.entries()
  }

  /**
   * The instance of an id the client generated (a random UUID): only one this partition created
   * itself can exist, so there is nothing to read from the state bucket.
   */
  fresh(id: string): Live | undefined {
    const cached = this.#live.get(id)
    if (cached !== undefined) return cached
    const key = itemKey.instance(this.port.p, id)
    if (this.port.isPinned(key)) return undefined // purged since: its delete is not stored yet
    this.port.markAbsent(key)
    return undefined
  }

  /** The cached instance of an id, marked as used; undefined when it is not in memory. */
  cached(id: string): Live | undefined {
    const cached = this.#live.get(id)
    if (cached !== undefined) cached.used = true
    return cached
  }

  async load(id: string): Promise<Live | undefined> {
    const cached = this.#live.get(id)
    if (cached !== undefined) {
      cached.used = true
      return cached
    }
    if (this.#absent.has(id)) return undefined
    const bytes = await this.port.readItem(itemKey.instance(this.port.p, id))
    const again = this.#live.get(id)
    if (again !== undefined) return again
    if (bytes === null) {
      if (this.#absent.size >= 10_000) this.#absent.clear()
      this.#absent.add(id)
      return undefined
    }
    const live: Live = {
      rec: decode(bytes, `instance ${id}`) as InstanceRecord,
      used: true,
      size: bytes.length,
      tailBytes: bytes.length,
    }
    this.#live.set(id, live)
    this.evict()
    return live
  }

  evict(): void {
    let excess = this.#live.size - this.cacheSize
    for (const [id, live] of this.#live) {
      if (excess <= 0) return
      if (this.port.isPinned(itemKey.instance(this.port.p, id))) continue
      this.#live.delete(id)
      if (live.used) {
        live.used = false
        this.#live.set(id, live)
      } else excess--
    }
  }
}

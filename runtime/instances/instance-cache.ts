/**
 * The orchestration instances a partition holds in memory: each one's record, its loaded history
 * and its live generator (so a step after the first needs no replay), and the ids known to be
 * absent (so a start or query of an unknown id reads the state bucket once). Past the cache size
 * it evicts clean instances (those with no write outside the state bucket): ended ones first,
 * oldest first (reading one again costs one item read, no replay), then the least recently used
 * running ones (CLOCK). Every way an instance comes in — a start, a load — counts, and an ended
 * instance leaves as soon as its final write is stored, so memory holds the running instances, not
 * every instance the node ever ran. Apart from the instance host (instance-host.ts), which runs
 * the steps.
 */
import type { OrchestrationExecutor, HistoryEvent } from '../../actors/orchestration/index.ts'
import { itemKey } from '../nats/index.ts'
import { decodeRecord } from './history-codec.ts'
import type { HostPort } from '../partition/index.ts'
import { isTerminal, type InstanceRecord } from './instance-model.ts'

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
  /**
   * The record's item key, kept once made: every step writes the record, and a key made anew
   * is a new string to hash for the round's map each time.
   */
  key?: string
}

/** The instances of one partition held in memory. */
export class InstanceCache {
  readonly #live = new Map<string, Live>()
  /** Ids looked up and found absent (not stored, not written since); cleared when it grows. */
  readonly #absent = new Set<string>()
  /** Ended instances still in memory, oldest first, from `#endedHead` on (see {@link ended}). */
  #ended: Array<[id: string, live: Live, key: string]> = []
  #endedHead = 0
  /**
   * Records stored that this node cannot read (of a later format, or damaged), with the error:
   * every message for one is refused with it (instance-host.ts), without reading it again.
   */
  readonly #unreadable = new Map<string, Error>()

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

  /** Holds a new instance (it exists from now on); evicts others past the cache size. */
  set(id: string, live: Live): void {
    this.#live.set(id, live)
    this.#absent.delete(id)
    this.evict(id)
  }

  /**
   * Drops an instance (purged) and notes it absent: its delete is in a round not committed yet,
   * which a read of the item would not see, so a second purge (or any message) arriving meanwhile
   * read the record back and found the instance again.
   */
  delete(id: string): void {
    this.#live.delete(id)
    this.#noteAbsent(id)
  }

  #noteAbsent(id: string): void {
    if (this.#absent.size >= 10_000) this.#absent.clear()
    this.#absent.add(id)
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

  /**
   * Notes that an instance ended: it leaves memory once the write that ended it is stored (until
   * then listings and reads find it here). Reading it again — a query, a late message — costs one
   * item read and no replay, so a node that runs many instances keeps only those still running.
   */
  ended(id: string, live: Live): void {
    this.#ended.push([id, live, itemKey.instance(this.port.p, id)])
    this.sweepEnded()
  }

  /** Drops the ended instances whose final write is stored, oldest first (also after a snapshot). */
  sweepEnded(): void {
    const queue = this.#ended
    while (this.#endedHead < queue.length) {
      const [id, live, key] = queue[this.#endedHead]!
      if (this.#live.get(id) === live && isTerminal(live.rec.status)) {
        if (this.port.isPinned(key)) break // this one (and most likely the later ones) not stored yet
        this.#drop(id, live, key)
      }
      this.#endedHead++
    }
    if (this.#endedHead > 1024 && this.#endedHead * 2 > queue.length) {
      this.#ended = queue.slice(this.#endedHead)
      this.#endedHead = 0
    }
  }

  /** Whether `err` is the error the stored record of `id` cannot be read with (see {@link load}). */
  isUnreadable(id: string, err: unknown): boolean {
    return this.#unreadable.get(id) === err
  }

  /** The cached instance of an id, marked as used; undefined when it is not in memory. */
  cached(id: string): Live | undefined {
    const cached = this.#live.get(id)
    if (cached !== undefined) cached.used = true
    return cached
  }

  /**
   * The instance of an id, read from the state bucket when not in memory; undefined when none is
   * stored. Throws `CodecError` when the stored record cannot be read (a later format, damaged
   * bytes), and the same error on every later load of that id.
   */
  async load(id: string): Promise<Live | undefined> {
    const cached = this.#live.get(id)
    if (cached !== undefined) {
      cached.used = true
      return cached
    }
    if (this.#absent.has(id)) return undefined
    const unreadable = this.#unreadable.get(id)
    if (unreadable !== undefined) throw unreadable
    const bytes = await this.port.readItem(itemKey.instance(this.port.p, id))
    const again = this.#live.get(id)
    if (again !== undefined) return again
    if (bytes === null) {
      this.#noteAbsent(id)
      return undefined
    }
    let rec: InstanceRecord
    try {
      rec = decodeRecord(bytes, `instance ${id}`)
    } catch (err) {
      this.#unreadable.set(id, err as Error)
      throw err
    }
    const live: Live = {
      rec,
      used: true,
      size: bytes.length,
      tailBytes: bytes.length,
    }
    this.#live.set(id, live)
    this.evict(id)
    return live
  }

  /**
   * Past the cache size, evicts down to nine tenths of it (so that the scan is paid once per many
   * instances, not per start), never `keep` (the instance the caller is about to use) nor an
   * instance with writes outside the state bucket.
   */
  evict(keep?: string): void {
    if (this.#live.size <= this.cacheSize) return
    const target = Math.floor(this.cacheSize * 0.9)
    // ended instances first: only queries read them again, and that needs no replay
    for (const [id, live] of this.#live) {
      if (this.#live.size <= target) return
      if (id !== keep && isTerminal(live.rec.status) && this.#evictable(id)) this.#drop(id, live)
    }
    // then running ones, least recently used first (CLOCK: a used one gets a second chance)
    let seen = 0
    const limit = 2 * this.#live.size
    for (const [id, live] of this.#live) {
      if (this.#live.size <= target || ++seen > limit) return
      if (id === keep || !this.#evictable(id)) continue
      if (live.used) {
        live.used = false
        this.#live.delete(id)
        this.#live.set(id, live)
      } else this.#drop(id, live)
    }
  }

  #evictable(id: string): boolean {
    return !this.port.isPinned(itemKey.instance(this.port.p, id))
  }

  /** Drops a clean instance from memory, with what the snapshot knows of its items' revisions. */
  #drop(id: string, live: Live, key = itemKey.instance(this.port.p, id)): void {
    this.#live.delete(id)
    const p = this.port.p
    this.port.forget(key)
    for (let k = 0; k < live.rec.hc; k++) this.port.forget(itemKey.history(p, id, live.rec.hk, k))
  }
}

/**
 * What the nodes of a hub can run, for placement: each node publishes the names in its registry
 * in its heartbeat (`e:<entity type>`, `o:<orchestration>`, `a:<activity>`), and the hub remembers
 * every name a node ever published (the meta key `types`). The leader gives partitions only to
 * nodes that know every name a live node knows (see {@link eligibleNodes}); an owner that still
 * meets a name it lacks asks {@link HubTypes.whereIs} whether another node knows it, and if so keeps
 * the message for later instead of failing or dropping it (runtime/partition/unknown-types.ts).
 *
 * Beside them a node publishes the wire features of its version (`f:<feature>`, {@link
 * WIRE_FEATURES}): message fields an older node would ignore. They are no types: nothing runs
 * under them, so they are never "known elsewhere". They keep an older node from owning partitions
 * while a newer one is live (a missing feature excludes a node even when registries diverge), and
 * a sender uses a feature only once every node record of the hub lists it ({@link everyRecordHas}).
 * Pure.
 */
import { decode, type KV } from '../runtime/nats/index.ts'

/** A registry name as heartbeats carry it, or a wire feature of the node's version (`f:`). */
export type TypeName = `e:${string}` | `o:${string}` | `a:${string}` | `f:${string}`

/**
 * Calls made right after `ctx.lock` travel inside the lock request (`LockMessage.ops`) and run at
 * each entity once it is locked; their outcomes ride on with the request to the grant
 * (`LockMessage.res`, `DoneMessage.res`). A node without it grants the lock and ignores the calls.
 */
export const LOCK_OPS = 'f:lock-ops' satisfies TypeName

/** The wire features this version runs, published in every heartbeat. */
export const WIRE_FEATURES: readonly TypeName[] = [LOCK_OPS]

/** Whether a name is a wire feature (`f:`), not a type a node runs. */
export function isFeature(name: string): boolean {
  return name.startsWith('f:')
}

/**
 * Whether every registry lists `name` (a node record without a registry — an older build — does
 * not). Conservative on purpose: callers pass every node record they know, live or not yet
 * deleted, so a crashed node of an older version holds a feature back until its record is gone.
 *
 * @example everyRecordHas([['e:X', 'f:lock-ops'], ['e:X']], 'f:lock-ops') // → false
 */
export function everyRecordHas(registries: Iterable<readonly string[] | undefined>, name: TypeName): boolean {
  for (const names of registries) if (names === undefined || !names.includes(name)) return false
  return true
}

/** Where a name is known: on this node, only on other nodes (or nodes seen before), or nowhere. */
export type Whereabouts = 'here' | 'elsewhere' | 'nowhere'

/**
 * The nodes that may own partitions: those whose registry holds every name some live node has.
 * A node that publishes no registry (an older build) counts as knowing every type, but no wire
 * feature. When no node knows everything (registries that diverge), those that know the most of
 * the names are eligible — owners then keep what they cannot run (see the module comment) rather
 * than leave partitions unowned, and one misconfigured node (a registry of two types beside nodes
 * of nine) does not take a share of the partitions and hold most of their work — except a node
 * that lacks a wire feature some live node has: it would ignore what the others send (a lock
 * request's calls), so it stays out while one that has the features is live.
 *
 * @example eligibleNodes(['a', 'b'], new Map([['a', ['e:X', 'e:Y']], ['b', ['e:X']]])) // → ['a']
 * @example eligibleNodes(['a', 'b'], new Map([['a', ['e:X', 'e:Y']], ['b', ['e:Z']]])) // → ['a']
 */
export function eligibleNodes(
  live: readonly string[],
  registries: ReadonlyMap<string, readonly string[]>,
): string[] {
  const features = new Set<string>()
  for (const node of live)
    for (const name of registries.get(node) ?? []) if (isFeature(name)) features.add(name)
  const current = live.filter((node) => {
    const names = registries.get(node) ?? []
    for (const feature of features) if (!names.includes(feature)) return false
    return true
  })
  // (never empty when some node has every feature; else — nodes with different ones — all of them)
  const candidates = current.length > 0 ? current : [...live]
  const union = new Set<string>()
  for (const node of live) for (const name of registries.get(node) ?? []) union.add(name)
  const known = (node: string): number => {
    const names = registries.get(node)
    if (names === undefined) return union.size
    const own = new Set(names)
    let count = 0
    for (const name of union) if (own.has(name)) count++
    return count
  }
  const most = Math.max(...candidates.map(known))
  return candidates.filter((node) => known(node) === most)
}

/**
 * The names each live node lacks of those other live nodes know (wire features aside), for the
 * nodes that lack any; empty when some node knows them all — then a node that lacks names simply
 * gets no partitions. Non-empty means registries diverge: whoever owns a partition keeps messages
 * for names it lacks, and they wait until a node that knows them owns it (each node warns).
 */
export function divergence(
  live: readonly string[],
  registries: ReadonlyMap<string, readonly string[]>,
): Map<string, string[]> {
  const union = new Set<string>()
  for (const node of live)
    for (const name of registries.get(node) ?? []) if (!isFeature(name)) union.add(name)
  const lacking = new Map<string, string[]>()
  for (const node of live) {
    const names = registries.get(node)
    if (names === undefined) return new Map() // an older build: knows every type
    const missing = [...union].filter((name) => !names.includes(name)).sort()
    if (missing.length === 0) return new Map()
    lacking.set(node, missing)
  }
  return lacking
}

/** Answers whether a name is known here, elsewhere on the hub, or nowhere. */
export class HubTypes {
  readonly #own: Set<string>

  constructor(
    own: Iterable<string>,
    /** Names the hub knows: remembered ones and those of live nodes. */
    readonly hubNames: () => Iterable<string>,
  ) {
    this.#own = new Set(own)
  }

  /** Where `name` (`e:Type`, `o:name`, `a:name`) is known. */
  whereIs(name: string): Whereabouts {
    if (this.#own.has(name)) return 'here'
    for (const known of this.hubNames()) if (known === name) return 'elsewhere'
    return 'nowhere'
  }
}

/**
 * The registry names in the hub's `types` entry (every name a node of the hub ever published,
 * kept by placement): its strings, nothing else.
 */
export function hubTypeNames(value: Uint8Array): string[] {
  const names = decode(value, 'hub types') as unknown
  return Array.isArray(names) ? names.filter((n): n is string => typeof n === 'string') : []
}

/**
 * The registry names the nodes of a hub published (`e:Counter`, `o:checkout`, …), read from its meta
 * bucket; undefined when the hub keeps no list (static placement never writes one).
 */
export async function readHubTypes(metaKv: KV): Promise<string[] | undefined> {
  const entry = await metaKv.get('types')
  return entry === null ? undefined : hubTypeNames(entry.value)
}

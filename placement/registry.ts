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
 *
 * Apart from placement, a node also adds the operations of its entity types to the meta key
 * `operations` as it starts ({@link rememberOperations}), for `basalt entity signal` to refuse an
 * operation no node has ({@link readHubOperations}).
 */
import { decode, encode, type KV } from '../runtime/nats/index.ts'

/** A registry name as heartbeats carry it, or a wire feature of the node's version (`f:`). */
export type TypeName = `e:${string}` | `o:${string}` | `a:${string}` | `f:${string}`

/**
 * Calls made right after `ctx.lock` travel inside the lock request (`LockMessage.ops`) and run at
 * each entity once it is locked; their outcomes ride on with the request to the grant
 * (`LockMessage.res`, `DoneMessage.res`). A node without it grants the lock and ignores the calls.
 */
export const LOCK_OPS = 'f:lock-ops' satisfies TypeName

/**
 * Each execution of an orchestration instance numbers its commands in a range of its own
 * (`StartedEvent.seq`, `firstSeqOf` in runtime/instances/instance-model.ts). A node without it
 * would replay such a history counting from 0: its recorded outcomes would match no task, and the
 * instance would fail with NonDeterminismError or wait for ever.
 */
export const EXEC_SEQS = 'f:exec-seqs' satisfies TypeName

/**
 * Instance records and history chunks are stored with their history events packed (format 2,
 * runtime/instances/history-codec.ts). A node without it would read a packed history as no events
 * of its own kind: such instances would fail or stall on it.
 */
export const PACKED_HISTORY = 'f:packed-history' satisfies TypeName

/**
 * The last call a critical section makes to an entity in the step that releases it
 * carries the release (`EntityOp.rl`): the entity runs it and then unlocks, with no unlock message
 * of its own. A node without it would run the operation and keep the entity locked for ever.
 */
export const RELEASE_OPS = 'f:release-ops' satisfies TypeName

/** The wire features this version runs, published in every heartbeat. */
export const WIRE_FEATURES: readonly TypeName[] = [EXEC_SEQS, LOCK_OPS, PACKED_HISTORY, RELEASE_OPS]

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
    lacking.set(node, withoutOperationsOfLacked(missing))
  }
  return lacking
}

/**
 * `missing` registry names without the operations (`e:Type#op`) of entity types missing
 * altogether: `['e:Odd', 'e:Odd#add', 'e:X#new']` → `['e:Odd', 'e:X#new']` (for messages).
 */
export function withoutOperationsOfLacked(missing: readonly string[]): string[] {
  const lacked = new Set(missing)
  return missing.filter((name) => {
    const hash = name.lastIndexOf('#')
    return hash < 0 || !lacked.has(name.slice(0, hash))
  })
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

/**
 * The operations of a hub's entity types, by type name (each list sorted): every operation a node
 * of the hub registered for the type as it started, kept in the meta key `operations` (like
 * `types`, nothing is forgotten until the key is deleted). Heartbeats do not carry them: they
 * would grow every heartbeat by every operation name, and placement needs none of them.
 */
export type HubOperations = Record<string, string[]>

/** The meta key of {@link HubOperations}. */
const OPERATIONS_KEY = 'operations'

/**
 * Adds a node's entity operations (`own`: type name → operation names) to the hub's
 * {@link HubOperations}, by compare-and-set (read again and merged when another node wrote it in
 * between); writes nothing when the hub knows them all. Throws what the bucket throws at the
 * fifth conflict in a row, or on any other failure.
 *
 * @example await rememberOperations(hub.metaKv, new Map([['Counter', ['add', 'get']]]))
 */
export async function rememberOperations(
  metaKv: KV,
  own: ReadonlyMap<string, Iterable<string>>,
): Promise<void> {
  if (own.size === 0) return
  for (let attempt = 1; ; attempt++) {
    const entry = await metaKv.get(OPERATIONS_KEY)
    const known = entry === null || entry.operation !== 'PUT' ? undefined : hubOperations(entry.value)
    const merged: HubOperations = { ...known }
    let changed = known === undefined
    for (const [type, operations] of own) {
      const names = new Set([...(merged[type] ?? []), ...operations])
      if (merged[type] !== undefined && names.size === merged[type].length) continue
      merged[type] = [...names].sort()
      changed = true
    }
    if (!changed) return
    try {
      if (entry === null) await metaKv.create(OPERATIONS_KEY, encode(merged))
      else await metaKv.update(OPERATIONS_KEY, encode(merged), entry.revision)
      return
    } catch (err) {
      if (attempt >= 5) throw err
    }
  }
}

/**
 * The hub's {@link HubOperations}, read from its meta bucket; undefined when it keeps none (nodes
 * of an earlier version, or static placement before any node of this one started).
 */
export async function readHubOperations(metaKv: KV): Promise<HubOperations | undefined> {
  const entry = await metaKv.get(OPERATIONS_KEY)
  return entry === null || entry.operation !== 'PUT' ? undefined : hubOperations(entry.value)
}

/** The {@link HubOperations} a value holds: lists of strings by type, nothing else. */
function hubOperations(value: Uint8Array): HubOperations {
  const decoded = decode(value, 'hub operations') as unknown
  const operations: HubOperations = {}
  if (typeof decoded !== 'object' || decoded === null || Array.isArray(decoded)) return operations
  for (const [type, names] of Object.entries(decoded)) {
    if (Array.isArray(names)) operations[type] = names.filter((n): n is string => typeof n === 'string')
  }
  return operations
}

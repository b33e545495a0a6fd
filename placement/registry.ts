/**
 * What the nodes of a hub can run, for placement: each node publishes the names in its registry
 * in its heartbeat (`e:<entity type>`, `o:<orchestration>`, `a:<activity>`), and the hub remembers
 * every name a node ever published (the meta key `types`). The leader gives partitions only to
 * nodes that know every name a live node knows (see {@link eligibleNodes}); an owner that still
 * meets a name it lacks asks {@link HubTypes.whereIs} whether another node knows it, and if so keeps
 * the message for later instead of failing or dropping it (runtime/partition/unknown-types.ts). Pure.
 */

/** A registry name as heartbeats carry it. */
export type TypeName = `e:${string}` | `o:${string}` | `a:${string}`

/** Where a name is known: on this node, only on other nodes (or nodes seen before), or nowhere. */
export type Whereabouts = 'here' | 'elsewhere' | 'nowhere'

/**
 * The nodes that may own partitions: those whose registry holds every name some live node has.
 * A node that publishes no registry (an older build) counts as knowing everything. When no node
 * knows everything (registries that diverge), every live node is eligible: owners then keep what
 * they cannot run (see the module comment) rather than leave partitions unowned.
 *
 * @example eligibleNodes(['a', 'b'], new Map([['a', ['e:X', 'e:Y']], ['b', ['e:X']]])) // → ['a']
 */
export function eligibleNodes(
  live: readonly string[],
  registries: ReadonlyMap<string, readonly string[]>,
): string[] {
  const union = new Set<string>()
  for (const node of live) for (const name of registries.get(node) ?? []) union.add(name)
  const complete = live.filter((node) => {
    const names = registries.get(node)
    if (names === undefined) return true
    const own = new Set(names)
    for (const name of union) if (!own.has(name)) return false
    return true
  })
  return complete.length > 0 ? complete : [...live]
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

  /** Whether the hub knows a name starting with `prefix` that this node lacks. */
  anyElsewhere(prefix: string): boolean {
    for (const known of this.hubNames()) if (known.startsWith(prefix) && !this.#own.has(known)) return true
    return false
  }

  /** Where `name` (`e:Type`, `o:name`, `a:name`) is known. */
  whereIs(name: string): Whereabouts {
    if (this.#own.has(name)) return 'here'
    for (const known of this.hubNames()) if (known === name) return 'elsewhere'
    return 'nowhere'
  }
}

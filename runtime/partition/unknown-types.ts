/**
 * Messages for a type this node does not run. During a rolling deploy an owner may meet an entity
 * type or orchestration that other nodes of the hub know (placement prefers nodes that know every
 * name, see `placement/registry.ts`, but an owner can still meet one while partitions move). Such
 * a message is neither dropped nor failed: it is kept in partition state as a durable timer
 * (`t.<p>.u.*`, see `runtime/nats/item-keys.ts`) and tried again every {@link DEFER_UNKNOWN_MS}; a new owner tries it at once, before
 * anything newer, so per-target order holds. Only a name no node of the hub knows is "unknown":
 * that is bad input (rejected, or dead-lettered).
 */

/** Where a registry name (`e:Type`, `o:name`) is known. */
export type Whereabouts = 'here' | 'elsewhere' | 'nowhere'

/** Answers where a registry name is known (the placement agent's view of the hub). */
export interface TypeDirectory {
  whereIs(name: string): Whereabouts
}

/** How long a message for a type known only elsewhere waits before it is tried again, in ms. */
export const DEFER_UNKNOWN_MS = 2000

/**
 * True when `name` (`e:Type` or `o:name`) is not run here but the hub knows it: the message must
 * be kept for a node that runs it. False when it runs here, and when no node of the hub knows it
 * (bad input: the caller rejects or dead-letters it). Without a directory (static placement)
 * nothing is known elsewhere.
 */
export function knownElsewhere(directory: TypeDirectory | undefined, name: string): boolean {
  return directory?.whereIs(name) === 'elsewhere'
}

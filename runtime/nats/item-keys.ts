/**
 * Every key of the state bucket, in one place: how each kind of item is named, built, parsed and
 * classified (as Netherite's `TrackedObjectKey` keeps kinds, constructors and parsing together).
 * Keys are NATS subject tokens joined by `.`; user text (entity keys, instance ids) goes through
 * `encodeToken`, so it never contains a `.` and every key splits unambiguously.
 *
 * | Kind | Key                                   | Holds                                          |
 * |------|---------------------------------------|------------------------------------------------|
 * | e    | `e.<p>.<type>.<key>`                  | an entity's state                              |
 * | l    | `l.<p>.<type>.<key>`                  | the lock on that entity (same tail as its `e.`) |
 * | o    | `o.<p>.<id>`                          | an orchestration instance's record             |
 * | h    | `h.<p>.<id>.<hk>.<k>`                 | chunk k of an instance's history (write-once)  |
 * | t    | `t.<p>.<n>-<i>`                       | a delayed message (timer i of round n)         |
 * | t    | `t.<p>.u.<n>-<i>`                     | a message for a type run elsewhere (deferred)  |
 * | t    | `t.<p>.o.<id>.<seq or start>`         | an instance's timer                            |
 * | a    | `a.<p>.<id>.<seq>`                    | a pending activity                             |
 * | rep  | `rep.<p>.<slot>`                      | replies sent lately: one segment of them       |
 * | rep  | `rep.<p>`                             | replies sent lately (checkpoints before segments) |
 * | ckpt | `ckpt.<p>`                            | the checkpoint                                 |
 *
 * Timers, locks and pending activities are *eager*: loaded whole at recovery, so an item of those
 * kinds that is not loaded was never stored. History chunks are written once under fresh keys.
 */
import { decodeToken, encodeToken } from '../../actors/index.ts'

/** The kinds of state-bucket items, by key prefix. */
export const ItemKind = {
  Entity: 'e',
  Lock: 'l',
  Instance: 'o',
  History: 'h',
  Timer: 't',
  Activity: 'a',
  Replies: 'rep',
  Checkpoint: 'ckpt',
} as const
/** One of {@link ItemKind}. */
export type ItemKind = (typeof ItemKind)[keyof typeof ItemKind]

/** Marker of the timer keys that hold deferred messages: `t.<p>.u.<n>-<i>` (see unknown-types.ts). */
const DEFERRED = 'u'
/** Marker of the timer keys of orchestration instances: `t.<p>.o.<id>.<seq>`. */
const INSTANCE_TIMER = 'o'

/** A parsed state-bucket key (see the module comment for the layouts). */
export type ParsedItemKey =
  | { kind: 'e' | 'l'; p: number; type: string; key: string }
  | { kind: 'o'; p: number; id: string }
  | { kind: 'h'; p: number; id: string; hk: number; chunk: number }
  | { kind: 't'; p: number; timer: 'round' | 'deferred'; name: string }
  | { kind: 't'; p: number; timer: 'instance'; id: string; seq: number | 'start' }
  | { kind: 'a'; p: number; id: string; seq: number }
  | { kind: 'rep'; p: number; slot?: number }
  | { kind: 'ckpt'; p: number }

/** Builders of every state-bucket key. */
export const itemKey = {
  /** `e.<p>.<type>.<key>`: an entity's state. */
  entity: (p: number, type: string, key: string): string => `e.${p}.${type}.${encodeToken(key)}`,
  /** `l.<p>.<type>.<key>`: the lock on an entity. */
  lock: (p: number, type: string, key: string): string => `l.${p}.${type}.${encodeToken(key)}`,
  /** The lock key of an entity key (`e.…` → `l.…`). */
  lockOf: (entityKey: string): string => swapKind(entityKey, ItemKind.Entity, ItemKind.Lock),
  /** The entity key of a lock key (`l.…` → `e.…`). */
  entityOf: (lockKey: string): string => swapKind(lockKey, ItemKind.Lock, ItemKind.Entity),
  /** `o.<p>.<id>`: an instance's record. */
  instance: (p: number, id: string): string => `o.${p}.${encodeToken(id)}`,
  /** `h.<p>.<id>.<hk>.<k>`: chunk `k` of an instance's history written under chunk key `hk`. */
  history: (p: number, id: string, hk: number, k: number): string => `h.${p}.${encodeToken(id)}.${hk}.${k}`,
  /** `t.<p>.<name>`: a delayed message (`name` is `<round>-<i>`, unique per partition). */
  timer: (p: number, name: string): string => `t.${p}.${name}`,
  /** `t.<p>.u.<name>`: a message kept for a type run elsewhere. */
  deferredTimer: (p: number, name: string): string => `t.${p}.${DEFERRED}.${name}`,
  /** `t.<p>.o.<id>.<seq>`: an instance's timer (`seq` < 0: its delayed start). */
  instanceTimer: (p: number, id: string, seq: number): string =>
    `t.${p}.${INSTANCE_TIMER}.${encodeToken(id)}.${seq < 0 ? 'start' : seq}`,
  /** `a.<p>.<id>.<seq>`: a pending activity. */
  activity: (p: number, id: string, seq: number): string => `a.${p}.${encodeToken(id)}.${seq}`,
  /** `rep.<p>`: the replies a partition sent lately, as checkpoints before segments stored them. */
  replies: (p: number): string => `rep.${p}`,
  /** `rep.<p>.<slot>`: one stored segment of the replies a partition sent lately (a ring of slots). */
  repliesSegment: (p: number, slot: number): string => `rep.${p}.${slot}`,
  /** `ckpt.<p>`: a partition's checkpoint. */
  checkpoint: (p: number): string => `ckpt.${p}`,
} as const

function swapKind(key: string, from: ItemKind, to: ItemKind): string {
  if (!key.startsWith(from + '.')) throw new Error(`'${key}' is not a key of kind '${from}'`)
  return to + key.slice(from.length)
}

const KINDS = new Set<string>(Object.values(ItemKind))

/** The kind of a key, or undefined when it is none of {@link ItemKind}. */
export function kindOf(key: string): ItemKind | undefined {
  const dot = key.indexOf('.')
  const prefix = dot < 0 ? key : key.slice(0, dot)
  return KINDS.has(prefix) ? (prefix as ItemKind) : undefined
}

/** Parses a key; undefined when it is not a well-formed state-bucket key. */
export function parseItemKey(key: string): ParsedItemKey | undefined {
  const parts = key.split('.')
  const kind = kindOf(key)
  if (kind === undefined || parts.length < 2 || !/^\d+$/.test(parts[1]!)) return undefined
  const p = Number(parts[1])
  const rest = parts.slice(2)
  switch (kind) {
    case 'e':
    case 'l':
      return rest.length === 2 ? { kind, p, type: rest[0]!, key: decodeToken(rest[1]!) } : undefined
    case 'o':
      return rest.length === 1 ? { kind, p, id: decodeToken(rest[0]!) } : undefined
    case 'h':
      return rest.length === 3 && isCount(rest[1]!) && isCount(rest[2]!)
        ? { kind, p, id: decodeToken(rest[0]!), hk: Number(rest[1]), chunk: Number(rest[2]) }
        : undefined
    case 't':
      if (rest.length === 1) return { kind, p, timer: 'round', name: rest[0]! }
      if (rest.length === 2 && rest[0] === DEFERRED) return { kind, p, timer: 'deferred', name: rest[1]! }
      if (rest.length === 3 && rest[0] === INSTANCE_TIMER && (rest[2] === 'start' || isCount(rest[2]!))) {
        const seq = rest[2] === 'start' ? 'start' : Number(rest[2])
        return { kind, p, timer: 'instance', id: decodeToken(rest[1]!), seq }
      }
      return undefined
    case 'a':
      return rest.length === 2 && isCount(rest[1]!)
        ? { kind, p, id: decodeToken(rest[0]!), seq: Number(rest[1]) }
        : undefined
    case 'rep':
      if (rest.length === 1 && isCount(rest[0]!)) return { kind, p, slot: Number(rest[0]) }
      return rest.length === 0 ? { kind, p } : undefined
    case 'ckpt':
      return rest.length === 0 ? { kind, p } : undefined
    default: {
      const never: never = kind
      return never
    }
  }
}

function isCount(token: string): boolean {
  return /^\d+$/.test(token)
}

/** Whether items of the key's kind are loaded whole at recovery: timers, locks, pending activities. */
export function isEager(key: string): boolean {
  const kind = kindOf(key)
  return kind === ItemKind.Timer || kind === ItemKind.Lock || kind === ItemKind.Activity
}

/** Whether the key names a write-once item (a history chunk): a write of it creates it. */
export function isWriteOnce(key: string): boolean {
  return kindOf(key) === ItemKind.History
}

/** Whether a timer key holds a message deferred for a type run elsewhere (`t.<p>.u.*`). */
export function isDeferredTimer(key: string, p: number): boolean {
  return key.startsWith(`t.${p}.${DEFERRED}.`)
}

/**
 * The subject filter of every item of `kind` in partition `p` (`t.3.>`; the segments of replies,
 * not the item `rep.<p>` of older versions); for the checkpoint, one per partition, the key itself.
 */
export function partitionFilter(kind: ItemKind, p: number): string {
  return kind === ItemKind.Checkpoint ? `${kind}.${p}` : `${kind}.${p}.>`
}

/** The key prefix of every item of `kind` in partition `p` (`o.3.`), for prefix matches. */
export function partitionPrefix(kind: ItemKind, p: number): string {
  return `${kind}.${p}.`
}

/** The key prefix of the entities of `type` in partition `p` (`e.3.Counter.`). */
export function entityTypePrefix(p: number, type: string): string {
  return `${ItemKind.Entity}.${p}.${type}.`
}

/** The subject filter of the entities of `type` in partition `p` (`e.3.Counter.*`). */
export function entityTypeFilter(p: number, type: string): string {
  return `${entityTypePrefix(p, type)}*`
}

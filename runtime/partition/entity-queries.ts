/**
 * The entity queries of a partition: reads of a committed state, pages of the keys of a type and
 * the scheduled signals held for an entity. All are answered after the commit of what they saw (a stale owner, which cannot commit, never
 * answers). A listing reads the stored keys in the background and corrects them with the writes
 * not stored yet. Apart from the entity host (entity-host.ts), which delegates to these.
 */
import { checkKey, toErrorInfo } from '../../actors/index.ts'
import { WIRE_VERSION, type Query, type QueryAnswer, type TimerValue } from '../../actors/wire/index.ts'
import { entityTypePrefix, itemKey as itemKeys, parseItemKey } from '../nats/index.ts'
import type { HostPort } from './host-port.ts'

/** What the entity queries use of the partition's port. */
export type QueryingPort = Pick<
  HostPort,
  'p' | 'readItem' | 'roundNumber' | 'afterCommit' | 'listStoredKeys' | 'dirtyWrites'
>

/** Answers a read: the state as the loop has it now (waits only for a load from the store). */
export async function readEntity(
  port: QueryingPort,
  cache: ReadonlyMap<string, { bytes: Uint8Array | null }>,
  query: Extract<Query, { k: 'read' }>,
  respond: (answer: QueryAnswer) => void,
): Promise<void> {
  checkKey(query.key)
  const itemKey = itemKeys.entity(port.p, query.t, query.key)
  const cached = cache.get(itemKey)
  const bytes = cached !== undefined ? cached.bytes : await port.readItem(itemKey)
  const n = port.roundNumber - 1 // changes later in this same round are newer
  port.afterCommit(() => respond({ v: WIRE_VERSION, ok: 1, exists: bytes !== null, state: bytes, n }))
}

/**
 * Answers the scheduled signals of an entity: the operations with a future `at` the partition holds
 * as timers for it, as [due time, operation, arguments], earliest first. Arguments go as they are
 * held (a large one stays a reference; the client shows it as a placeholder). A scan of all the
 * partition's timers: a management query, not a hot path.
 */
export function scheduledSignalsOf(
  port: QueryingPort,
  timers: Iterable<TimerValue>,
  query: Extract<Query, { k: 'timers' }>,
  respond: (answer: QueryAnswer) => void,
): void {
  checkKey(query.key)
  const signals: Array<[number, string, unknown[]]> = []
  for (const [due, msg] of timers) {
    if (msg.k === 'op' && msg.t === query.t && msg.key === query.key) signals.push([due, msg.op, msg.a])
  }
  signals.sort((a, b) => a[0] - b[0])
  const n = port.roundNumber - 1
  port.afterCommit(() => respond({ v: WIRE_VERSION, ok: 1, signals, n }))
}

/**
 * Answers a list page: the stored keys, corrected by the writes not yet stored as they are now.
 * The listing itself runs in the background (the loop does not wait for it).
 */
export function listEntities(
  port: QueryingPort,
  query: Extract<Query, { k: 'list' }>,
  respond: (answer: QueryAnswer) => void,
): void {
  const overlay = overlayOf(port, query.t)
  void port
    .listStoredKeys(query.t)
    .then((stored) => {
      const keys = new Set(stored)
      for (const [key, exists] of overlay) {
        if (exists) keys.add(key)
        else keys.delete(key)
      }
      const sorted = [...keys].filter((k) => k.startsWith(query.prefix) && k > query.after).sort()
      const page: QueryAnswer = {
        v: WIRE_VERSION,
        ok: 1,
        keys: sorted.slice(0, query.limit),
        more: sorted.length > query.limit,
      }
      port.afterCommit(() => respond(page))
    })
    .catch((err: unknown) => respond({ v: WIRE_VERSION, ok: 0, error: toErrorInfo(err) }))
}

/** Entity keys of `type` written since the last snapshot, with whether they exist now. */
function overlayOf(port: QueryingPort, type: string): Map<string, boolean> {
  const overlay = new Map<string, boolean>()
  for (const [itemKey, value] of port.dirtyWrites(entityTypePrefix(port.p, type))) {
    const parsed = parseItemKey(itemKey)
    if (parsed?.kind === 'e' && parsed.type === type) overlay.set(parsed.key, value !== null)
  }
  return overlay
}

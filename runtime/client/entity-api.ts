/**
 * The client's entity API beyond the typed handles (handles.ts): committed state reads, lock
 * holders, forced unlocks, scheduled signals, listings of keys and state watches. The public {@link Client} keeps
 * the documented methods and delegates to this helper; queries and calls travel through the call
 * transport (transport.ts). Apart from client.ts so that each file does one job.
 */
import { Observable } from 'rxjs'
import { BadInputError, CodecError, checkKey, describeValue, partitionOf } from '../../actors/index.ts'
import { WIRE_VERSION, type ActorMessage, type Query } from '../../actors/wire/index.ts'
import type { Entity, EntityClass, StateOf } from '../../entities/index.ts'
import { BlobRef, decode, isUnloaded, itemKey as itemKeys } from '../nats/index.ts'
import { readAgainIfMissing } from './blobs.ts'
import type { ApiCore } from './api-core.ts'
import { decodeContinuation, encodeContinuation } from './status.ts'
import { watchItem } from './watch.ts'
import { MAX_ENTITY_PAGE_SIZE, typeNameOf } from './args.ts'
import { checkKnownKeys, checkOptionalString, keysOf } from '../util/index.ts'

/**
 * What {@link Client.readEntityState} returns: the committed state, or none when the entity does
 * not exist. `exists` narrows it: after `if (r.exists)`, `r.state` is an `S`.
 */
export type EntityState<S> = { exists: true; state: S } | { exists: false; state: undefined }

/** One scheduled signal of {@link Client.scheduledSignals}. */
export interface ScheduledSignal {
  /** Due time, ms since the epoch. */
  at: number
  /** Operation name. */
  op: string
  /** Arguments; a large one (stored by reference) is a placeholder string naming its size. */
  args: unknown[]
}

/** What {@link Client.listEntities} lists: a type's keys, optionally under a prefix, a page at a time. */
export interface EntityQuery {
  type: EntityClass | string
  keyPrefix?: string
  pageSize?: number
  continuation?: string
}

/** The keys of an {@link EntityQuery} (anything else is refused: see checkKnownKeys). */
const ENTITY_QUERY_KEYS = keysOf<EntityQuery>({
  type: true,
  keyPrefix: true,
  pageSize: true,
  continuation: true,
})

/** A page of {@link Client.listEntities}. */
export interface EntityPage {
  keys: string[]
  /** Pass back to get the next page; absent on the last page. */
  continuation?: string
}

/** The entity side of a client (see {@link Client} for what each method promises). */
export class EntityApi {
  constructor(readonly core: ApiCore) {}

  /** A value as user code sees it: a reference's value loaded (a promise only then), else itself. */
  value(value: unknown): unknown {
    return isUnloaded(value) ? this.core.blobs.load(value) : value
  }

  /** Reads the committed state of an entity from its partition's owner. */
  async readEntityState<E extends Entity>(
    type: EntityClass<E> | string,
    key: string,
  ): Promise<EntityState<StateOf<E>>> {
    const t = typeNameOf(type)
    checkKey(key)
    // a large state is a reference: loaded here (read again if it was replaced meanwhile)
    return readAgainIfMissing(async () => {
      const answer = await this.#readRaw(t, key)
      const state = answer.state === null ? undefined : decode(answer.state, 'entity state')
      return { exists: answer.exists, state: await this.value(state) } as EntityState<StateOf<E>>
    })
  }

  /**
   * The orchestration instance that holds the lock of an entity, or null when it is not locked.
   * With `now`, asked within `now.timeoutMs` without waiting for this client's earlier messages to
   * be processed (a timed-out call looks up who holds the lock it waits behind).
   */
  async getLock(
    type: EntityClass | string,
    key: string,
    now?: { timeoutMs: number },
  ): Promise<string | null> {
    const t = typeNameOf(type)
    const p = partitionOf(checkKey(key), this.core.partitions)
    const query = { v: WIRE_VERSION, k: 'lock', t, key } as const
    const answer = await (now === undefined
      ? this.core.transport.query(p, query)
      : this.core.transport.query(p, query, now.timeoutMs, true))
    if (!('holder' in answer)) throw new CodecError('unexpected answer to a lock query')
    return answer.holder
  }

  /** The signals scheduled for an entity and not yet due, earliest first. */
  async scheduledSignals(type: EntityClass | string, key: string): Promise<ScheduledSignal[]> {
    const t = typeNameOf(type)
    const p = partitionOf(checkKey(key), this.core.partitions)
    const answer = await this.core.transport.query(p, { v: WIRE_VERSION, k: 'timers', t, key })
    if (!('signals' in answer)) throw new CodecError('unexpected answer to a scheduled signals query')
    return answer.signals
      .map(([at, op, args]) => ({ at, op, args: args.map(placeholderOfRef) }))
      .sort((a, b) => a.at - b.at)
  }

  /** Releases the lock of an entity whoever holds it; resolves with the former holder, or null. */
  async forceUnlock(type: EntityClass | string, key: string): Promise<string | null> {
    const t = typeNameOf(type)
    const msg: ActorMessage = { k: 'unlock', t, key: checkKey(key), o: '', f: 1 }
    return (await this.core.transport.request(msg, () => `forceUnlock ${t}@${key}`)) as string | null
  }

  /** Lists entity keys of a type, sorted, a page at a time, fanned out over all partitions. */
  async listEntities(query: EntityQuery): Promise<EntityPage> {
    const q = checkKnownKeys(query, 'listEntities', 'query', ENTITY_QUERY_KEYS)
    const t = typeNameOf(q.type)
    const limit = q.pageSize === undefined ? 100 : q.pageSize
    if (!Number.isInteger(limit) || limit < 1 || limit > MAX_ENTITY_PAGE_SIZE) {
      throw new BadInputError(
        `pageSize must be a whole number in 1..${MAX_ENTITY_PAGE_SIZE} (got ${describeValue(limit)})`,
      )
    }
    const prefix = checkOptionalString(q.keyPrefix, 'keyPrefix') ?? ''
    const continuation = checkOptionalString(q.continuation, 'continuation')
    const after = continuation === undefined ? '' : decodeContinuation(continuation)
    const pages = await Promise.all(
      Array.from({ length: this.core.partitions }, (_, p) =>
        this.core.transport.query(p, { v: WIRE_VERSION, k: 'list', t, prefix, after, limit }),
      ),
    )
    let more = false
    const keys: string[] = []
    for (const page of pages) {
      if (!('keys' in page)) continue
      keys.push(...page.keys)
      more ||= page.more
    }
    keys.sort()
    more ||= keys.length > limit
    const pageKeys = keys.slice(0, limit)
    const last = pageKeys[pageKeys.length - 1]
    return more && last !== undefined
      ? { keys: pageKeys, continuation: encodeContinuation(last) }
      : { keys: pageKeys }
  }

  /** Committed states of an entity as they happen, pushed by its partition (no polling). */
  watchEntity<E extends Entity>(
    type: EntityClass<E> | string,
    key: string,
  ): Observable<StateOf<E> | undefined> {
    const t = typeNameOf(type)
    checkKey(key)
    const p = partitionOf(key, this.core.partitions)
    const itemKey = itemKeys.entity(p, t, key)
    return watchItem(this.core.nc, this.core.watches, {
      what: `watchEntity(${t}, '${key}')`,
      subject: this.core.hub.names.changes(p),
      itemKey,
      first: async () => {
        const answer = await this.#readRaw(t, key, true)
        return { n: answer.n, value: answer.state }
      },
      toValue: (bytes) =>
        bytes === null ? undefined : (this.value(decode(bytes, 'entity state')) as StateOf<E>),
    })
  }

  /** Reads an entity's committed state, encoded, from its partition's owner. */
  async #readRaw(
    t: string,
    key: string,
    watch = false,
  ): Promise<{ exists: boolean; state: Uint8Array | null; n: number }> {
    const p = partitionOf(key, this.core.partitions)
    const query: Query = { v: WIRE_VERSION, k: 'read', t, key }
    if (watch) query.w = 1
    const answer = await this.core.transport.query(p, query)
    if (!('exists' in answer)) throw new CodecError('unexpected answer to a read')
    return answer
  }
}

/** A value as a listing shows it: a large value held by reference becomes a placeholder. */
function placeholderOfRef(value: unknown): unknown {
  return value instanceof BlobRef ? `<large value, ${value.size} bytes>` : value
}

/**
 * The checks of the client's arguments, shared by every method that takes them: each returns the
 * value it checked (converted where the method's type allows two forms) or throws
 * {@link BadInputError} naming the argument, what it got and what it expects, before anything is
 * sent. Ids and names are checked by the helpers of actors/ids.ts, option objects and their keys by
 * those of runtime/util/options.ts (shared with `Node.start` and `startDashboard`); the rest is here.
 */
import { BadInputError, checkName, checkTypeName, describeValue } from '../../actors/index.ts'
import { isOrchestrationDefinition, type EventDefinition } from '../../actors/orchestration/index.ts'
import type { ActorMessage } from '../../actors/wire/index.ts'
import { entityTypeName, type EntityClass } from '../../entities/index.ts'
import { RuntimeStatus } from '../instances/index.ts'
import { unsendableIn } from '../nats/index.ts'
import { checkKnownKeys, checkOptionalString, keysOf } from '../util/index.ts'
import type { InstanceFilter, InstanceQuery } from './options.ts'

/** Longest timeout a client takes, in ms (Node's timers hold at most this: about 24.8 days). */
export const MAX_TIMEOUT_MS = 2_147_483_647

/** Most keys a page of `client.listEntities` holds. */
export const MAX_ENTITY_PAGE_SIZE = 10_000

/** Most instances a page of `client.listInstances` holds. */
export const MAX_INSTANCE_PAGE_SIZE = 1000

/** Checks a timeout (`what` names it): a positive finite number of ms, at most {@link MAX_TIMEOUT_MS}. */
export function checkTimeout(value: unknown, what: string): number {
  if (typeof value !== 'number' || !(value > 0) || value > MAX_TIMEOUT_MS) {
    throw new BadInputError(
      `${what} must be a positive number of ms, at most ${MAX_TIMEOUT_MS} (got ${describeValue(value)})`,
    )
  }
  return value
}

/** Checks that `type` is an entity class (a typed handle needs the class, not its name). */
export function checkEntityClass<C extends EntityClass<any>>(type: C): C {
  if (typeof type !== 'function') {
    throw new BadInputError(
      `entity type must be an entity class (got ${describeValue(type)}); ` +
        `by type name, use readEntityState and the other reads, or the command line`,
    )
  }
  return type
}

/** The type name of an entity class, or a type name given as such (checked). */
export function typeNameOf(type: EntityClass<any> | string): string {
  if (typeof type === 'string') return checkTypeName(type)
  return entityTypeName(checkEntityClass(type))
}

/** The name of the orchestration `client.start` was given: a definition, or a registered name. */
export function orchestrationName(def: unknown): string {
  if (typeof def === 'string') return checkName(def, 'orchestration')
  if (isOrchestrationDefinition(def)) return checkName(def.name, 'orchestration')
  throw new BadInputError(
    `start: the orchestration must be a definition made by orchestration() or its registered name (got ${describeValue(def)})`,
  )
}

/** The name of the event `client.raiseEvent` was given: an externalEvent() definition, or a name. */
export function eventName(event: unknown): string {
  if (typeof event === 'object' && event !== null && 'name' in event) {
    return checkName((event as EventDefinition<unknown>).name, 'event')
  }
  return checkName(event, 'event')
}

const STATUSES = Object.values(RuntimeStatus) as string[]

/** The keys of `client.purgeInstances`' filter. */
const FILTER_KEYS = keysOf<InstanceFilter>({
  statuses: true,
  createdFrom: true,
  createdTo: true,
  namePrefix: true,
  idPrefix: true,
})

/** The keys of `client.listInstances`' query: a filter and a page. */
const QUERY_KEYS = keysOf<InstanceQuery>({
  statuses: true,
  createdFrom: true,
  createdTo: true,
  namePrefix: true,
  idPrefix: true,
  pageSize: true,
  continuation: true,
})

/** An instance filter as the partitions take it: checked, times in ms since the epoch. */
export interface CheckedInstanceFilter {
  statuses?: RuntimeStatus[]
  createdFrom?: number
  createdTo?: number
  namePrefix?: string
  idPrefix?: string
}

/**
 * Checks a query of `client.listInstances`: no key but those of {@link InstanceQuery}, `pageSize`
 * a whole number in 1..{@link MAX_INSTANCE_PAGE_SIZE}, `continuation` a string, and the filter's
 * fields as {@link checkInstanceFilter} checks them.
 */
export function checkInstanceQuery(query: InstanceQuery): {
  filter: CheckedInstanceFilter
  pageSize: number
  continuation?: string
} {
  const q = checkKnownKeys(query, 'listInstances', 'query', QUERY_KEYS)
  const pageSize = q.pageSize === undefined ? 100 : q.pageSize
  if (!Number.isInteger(pageSize) || pageSize < 1 || pageSize > MAX_INSTANCE_PAGE_SIZE) {
    throw new BadInputError(
      `pageSize must be a whole number in 1..${MAX_INSTANCE_PAGE_SIZE} (got ${describeValue(pageSize)})`,
    )
  }
  const filter = filterFields(q)
  const continuation = checkOptionalString(q.continuation, 'continuation')
  return continuation === undefined ? { filter, pageSize } : { filter, pageSize, continuation }
}

/**
 * Checks the filter of `client.purgeInstances`: no key but those of {@link InstanceFilter} (a
 * page or a misspelt key would be ignored, and a purge then take more than asked), `statuses` an
 * array of runtime statuses, `createdFrom` and `createdTo` a Date or ms since the epoch (returned
 * as ms), the prefixes strings.
 */
export function checkInstanceFilter(filter: InstanceFilter): CheckedInstanceFilter {
  return filterFields(checkKnownKeys(filter, 'purgeInstances', 'filter', FILTER_KEYS))
}

/** The filter's fields of a query or filter whose keys are checked, each checked in turn. */
function filterFields(q: InstanceFilter): CheckedInstanceFilter {
  const filter: CheckedInstanceFilter = {}
  if (q.statuses !== undefined) {
    if (!Array.isArray(q.statuses)) {
      throw new BadInputError(
        `statuses must be an array of statuses (${STATUSES.join(', ')}) (got ${describeValue(q.statuses)})`,
      )
    }
    for (const s of q.statuses as unknown[]) {
      if (typeof s !== 'string' || !STATUSES.includes(s)) {
        throw new BadInputError(
          `statuses: unknown status ${describeValue(s)} (one of ${STATUSES.join(', ')})`,
        )
      }
    }
    filter.statuses = q.statuses
  }
  for (const field of ['createdFrom', 'createdTo'] as const) {
    const v = q[field] as unknown
    if (v === undefined) continue
    const ms = v instanceof Date ? v.getTime() : v
    if (typeof ms !== 'number' || !Number.isFinite(ms)) {
      throw new BadInputError(
        `${field} must be a Date or ms since the epoch (got ${v instanceof Date ? 'an invalid Date' : describeValue(v)})`,
      )
    }
    filter[field] = ms
  }
  for (const field of ['namePrefix', 'idPrefix'] as const) {
    const v = checkOptionalString(q[field], field)
    if (v !== undefined) filter[field] = v
  }
  return filter
}

/**
 * What in a message the wire cannot carry (a function or a symbol, anywhere in a value), described
 * for the error: `argument 1 of Counter.add (entity 'c1') at .cb is a function, …`. Called only
 * once encoding failed, so it costs nothing on the way of messages that encode.
 */
export function findUnsendable(msg: ActorMessage): string | undefined {
  const parts: Array<[unknown, string]> = []
  if (msg.k === 'op') {
    msg.a.forEach((a, i) => parts.push([a, `argument ${i + 1} of ${msg.t}.${msg.op} (entity '${msg.key}')`]))
  } else if (msg.k === 'start') parts.push([msg.in, `input of instance '${msg.i}'`])
  else if (msg.k === 'ev') parts.push([msg.d, `data of event '${msg.n}' for instance '${msg.i}'`])
  else if (msg.k === 'ctl') parts.push([msg.reason, `reason for instance '${msg.i}'`])
  for (const [value, where] of parts) {
    const found = unsendableIn(value, where)
    if (found !== undefined) return found
  }
  return undefined
}

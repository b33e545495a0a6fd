/**
 * Durable entities: classes whose state survives crashes. Public methods are operations; an
 * operation runs alone on its entity (one at a time, in mailbox order) and either commits its state
 * change, its outgoing signals and the orchestrations it starts together, or — when it throws —
 * none of them.
 *
 * This folder knows nothing of NATS: the runtime hands each operation an {@link EntityContext}.
 */
import {
  BadInputError,
  IllegalStateError,
  UnknownOperationError,
  checkInstanceId,
  checkKey,
  checkKnownKeys,
  checkTypeName,
  keysOf,
} from '../actors/index.ts'
import type { ArgumentSchema } from './standard-schema.ts'

/** The keys the options of {@link Entity.startOrchestration} take (anything else is refused). */
const START_ORCHESTRATION_KEYS = keysOf<{ instanceId?: string }>({ instanceId: true })

/** What the runtime provides to a running operation. */
export interface EntityContext {
  /** Entity type name. */
  readonly type: string
  /** Entity key. */
  readonly key: string
  /** Current state (already initialised). */
  state: unknown
  /** Set by {@link Entity.deleteState}. */
  deleted: boolean
  /** Sends a signal to an entity; `at` (ms since the epoch) schedules it. */
  send(type: string, key: string, op: string, args: unknown[], at?: number): void
  /**
   * Starts an instance of orchestration `name` with the operation's commit; returns its id:
   * `instanceId`, else a new unique one.
   */
  start(name: string, input: unknown, instanceId?: string): string
}

/**
 * An orchestration definition as an entity sees it: what `orchestration()` makes (an
 * `OrchestrationDefinition<I, O>`), typed by its input. Written out here because entities/ cannot
 * import actors/orchestration/, which imports entities/.
 */
export interface StartableOrchestration<I> {
  readonly kind: 'orchestration'
  readonly name: string
  readonly fn: (ctx: never, input: I) => unknown
}

const contextSlot = Symbol('basalt.entity.context')

/**
 * Base class of durable entities. `S` is the state type.
 *
 * @example
 * ```ts
 * class Counter extends Entity<number> {
 *   initialState() { return 0 }
 *   add(n: number) { this.state += n }
 *   get() { return this.state }
 * }
 * ```
 */
export abstract class Entity<S = unknown> {
  /** Override to name the entity type independently of the class name (survives minification). */
  static entityName?: string

  /**
   * Argument schemas per operation (Standard Schema: zod, valibot, arktype, or hand-written),
   * checked on the client and again on the node before the operation runs; a failure is a
   * `BadInputError` naming the entity, the operation and the issues. Operations without a schema
   * get their arguments unchecked. See {@link OperationSchemas}.
   *
   * @example static override schemas: OperationSchemas<Counter> = { add: z.number() }
   */
  static schemas?: Readonly<Record<string, ArgumentSchema | undefined>>

  /**
   * How long an asynchronous operation of this type may take, in ms, before it fails with
   * `TimeoutError` and its changes are discarded (default: the node's `entityOperationTimeoutMs`,
   * 30 s; `Infinity`: no limit). A synchronous operation cannot be interrupted.
   */
  static operationTimeoutMs?: number;

  /** @internal */
  [contextSlot]: EntityContext | undefined

  /**
   * The state of a new (or deleted) entity. Runs as part of the operation that finds the entity
   * without a state, so it may read {@link key}; what it throws fails that operation (its caller
   * gets the error) and nothing else.
   */
  abstract initialState(): S

  /** The entity's state; assign to replace it. Only available inside an operation. */
  get state(): S {
    return this.#context().state as S
  }
  set state(value: S) {
    const ctx = this.#context()
    ctx.state = value
    ctx.deleted = false
  }

  /** This entity's key. */
  get key(): string {
    return this.#context().key
  }

  /**
   * Deletes the entity: its state is removed when the operation commits. A later operation sees a
   * fresh {@link initialState}. Only assigning {@link state} afterwards in the same operation keeps
   * a state: a change in place of the fresh state `this.state` then holds is discarded with it.
   */
  deleteState(): void {
    const ctx = this.#context()
    ctx.deleted = true
    ctx.state = this.initialState()
  }

  /**
   * A proxy for signalling another entity from this operation. Signals leave with this operation's
   * commit (and are dropped if the operation throws).
   *
   * @example this.entity(Counter, 'total').signal.add(1)
   */
  entity<E extends Entity>(type: EntityClass<E>, key: string): EntitySignaller<E> {
    const ctx = this.#context()
    const name = entityTypeName(type)
    checkKey(key)
    const send = (op: string, args: unknown[], at?: number) => {
      if (!operationSet(type).has(op)) throw new UnknownOperationError(name, op)
      ctx.send(name, key, op, args, at)
    }
    return {
      signal: signalProxy<InnerSignalProxy<E>>((op, args) => send(op, args)),
      signalAt: (when) => {
        const at = toTime(when, 'signalAt')
        return signalProxy<InnerSignalProxy<E>>((op, args) => send(op, args, at))
      },
    }
  }

  /**
   * Starts an orchestration instance from this operation and returns its id at once: the
   * `instanceId` given, else a new unique id (kept in the state, it names the same instance after
   * any restart: operations are committed, not run again). The start leaves with this operation's
   * commit, exactly once, and not at all if the operation throws. An id that is taken leaves the
   * existing instance alone (the start is refused at the instance's partition and logged), as
   * `ctx.startOrchestration` does in an orchestration.
   *
   * @example const id = this.startOrchestration(shipOrder, { order: this.key })
   */
  startOrchestration<I>(def: StartableOrchestration<I>, input: I, options?: { instanceId?: string }): string {
    const ctx = this.#context()
    if (!isOrchestrationDefinition(def)) {
      throw new BadInputError('startOrchestration needs a definition made by orchestration()')
    }
    if (options !== undefined)
      checkKnownKeys(options, `startOrchestration('${def.name}')`, 'options', START_ORCHESTRATION_KEYS)
    const given = options?.instanceId === undefined ? undefined : checkInstanceId(options.instanceId)
    return ctx.start(def.name, input, given)
  }

  #context(): EntityContext {
    const ctx = this[contextSlot]
    if (ctx === undefined) throw new IllegalStateError('entity state is only available inside an operation')
    return ctx
  }
}

/**
 * Whether `def` is an orchestration definition: the test of `isOrchestrationDefinition`
 * (actors/orchestration/definitions.ts), which entities/ cannot import (see
 * {@link StartableOrchestration}).
 */
function isOrchestrationDefinition(def: unknown): def is StartableOrchestration<unknown> {
  return typeof def === 'object' && def !== null && (def as { kind?: unknown }).kind === 'orchestration'
}

/** A concrete entity class. */
export type EntityClass<E extends Entity = Entity> = (new () => E) & {
  entityName?: string
  schemas?: Readonly<Record<string, ArgumentSchema | undefined>>
  operationTimeoutMs?: number
}

/** The state type of an entity class instance. */
export type StateOf<E> = E extends Entity<infer S> ? S : never

/** Names of the operations of entity `E`: its methods, minus those of the base class. */
export type OperationName<E> = {
  [K in keyof E]: K extends keyof Entity ? never : E[K] extends (...args: never[]) => unknown ? K : never
}[keyof E] &
  string

type Op<E, K extends OperationName<E>> = E[K] extends (...args: infer A) => infer R ? [A, R] : never

/** One-way proxy: each operation returns a promise that resolves once the signal is durable. */
export type SignalProxy<E> = { [K in OperationName<E>]: (...args: Op<E, K>[0]) => Promise<void> }
/** Two-way proxy: each operation resolves to the operation's result. */
export type CallProxy<E> = {
  [K in OperationName<E>]: (...args: Op<E, K>[0]) => Promise<Awaited<Op<E, K>[1]>>
}
/** Proxy for signals sent from inside an entity: fire and forget with the operation's commit. */
export type InnerSignalProxy<E> = { [K in OperationName<E>]: (...args: Op<E, K>[0]) => void }

/** What {@link Entity.entity} returns. */
export interface EntitySignaller<E> {
  signal: InnerSignalProxy<E>
  /** Signals delivered at `when` (a Date or ms since the epoch), never before. */
  signalAt(when: Date | number): InnerSignalProxy<E>
}

/** Builds a proxy whose every property is a function forwarding `(op, args)`. */
export function signalProxy<P>(send: (op: string, args: unknown[]) => unknown): P {
  return new Proxy(
    {},
    {
      get: (_target, prop) => {
        if (typeof prop !== 'string' || prop === 'then') return undefined
        return (...args: unknown[]) => send(prop, args)
      },
    },
  ) as P
}

/** The earliest time taken where a time is expected: a smaller number is a delay given by mistake. */
export const EARLIEST_TIME_MS = Date.UTC(2000, 0, 1)

/** The latest time a Date can hold, in ms since the epoch. */
export const LATEST_TIME_MS = 8.64e15

/**
 * Turns a Date or epoch milliseconds into epoch milliseconds for `what` (`startAt`, `signalAt`);
 * rejects anything else with a {@link BadInputError} naming it: a number before the year 2000
 * (a delay written where the time is expected would otherwise act at once, silently) and one past
 * the latest time a Date can hold.
 *
 * @example toTime(5000, 'signalAt') // BadInputError: signalAt takes a time, not a delay: …
 */
export function toTime(when: Date | number, what = 'a time'): number {
  const at = when instanceof Date ? when.getTime() : when
  if (typeof at !== 'number' || !Number.isFinite(at)) {
    throw new BadInputError(`${what} must be a Date or milliseconds since the epoch (got ${String(when)})`)
  }
  if (at < EARLIEST_TIME_MS) {
    throw new BadInputError(
      `${what} takes a time (a Date or ms since the epoch), not a delay: ${at} is ` +
        `${new Date(at).toISOString()}; for a delay of ${at} ms give Date.now() + ${at}`,
    )
  }
  if (at > LATEST_TIME_MS) {
    throw new BadInputError(
      `${what} is past the latest time a Date can hold (got ${at}, at most ${LATEST_TIME_MS})`,
    )
  }
  return at
}

const typeNames = new WeakMap<EntityClass, string>()

/** The type name of an entity class: its `entityName`, else the class name. */
export function entityTypeName(type: EntityClass): string {
  const known = typeNames.get(type)
  if (known !== undefined) return known
  if (typeof type !== 'function') throw new BadInputError('an entity type must be a class extending Entity')
  const name = checkTypeName(type.entityName ?? type.name)
  typeNames.set(type, name)
  return name
}

/** Attaches or detaches the runtime context of an entity instance. */
export function bindContext(entity: Entity, ctx: EntityContext | undefined): void {
  entity[contextSlot] = ctx
}

const BASE_MEMBERS = new Set([
  'constructor',
  'initialState',
  'state',
  'key',
  'deleteState',
  'entity',
  'startOrchestration',
])

const operationSets = new WeakMap<EntityClass, Set<string>>()

/** {@link operationNames}, computed once per class. */
function operationSet(type: EntityClass): Set<string> {
  let names = operationSets.get(type)
  if (names === undefined) operationSets.set(type, (names = operationNames(type)))
  return names
}

/** The operation names of an entity class: public methods along its prototype chain. */
export function operationNames(type: EntityClass): Set<string> {
  const names = new Set<string>()
  for (
    let proto = type.prototype;
    proto && proto !== Entity.prototype;
    proto = Object.getPrototypeOf(proto)
  ) {
    for (const name of Object.getOwnPropertyNames(proto)) {
      if (BASE_MEMBERS.has(name) || name.startsWith('_')) continue
      const desc = Object.getOwnPropertyDescriptor(proto, name)
      if (desc && typeof desc.value === 'function') names.add(name)
    }
  }
  return names
}

/**
 * The set of entity types a node can run, and the step that runs one operation on one entity
 * object. The registry is shared by every partition of a node; the objects operations run on are
 * not (each partition makes its own with {@link EntityRegistry.instantiate}), so two operations
 * running at once never share an object or its context.
 */
import {
  BadInputError,
  UnknownEntityError,
  UnknownOperationError,
  describeValue,
  isThenable,
} from '../actors/index.ts'
import { Entity, bindContext, type EntityClass, type EntityContext } from './entity.ts'
import { operationTable, type ArgumentSchema } from './operations.ts'

/** Default of {@link RegistryOptions.operationTimeoutMs}: 30 s. */
export const DEFAULT_OPERATION_TIMEOUT_MS = 30_000

/** Settings of a registry. */
export interface RegistryOptions {
  /**
   * How long an asynchronous operation may take, in ms, for types whose class sets no
   * `static operationTimeoutMs` (default 30,000; `Infinity`: no limit).
   */
  operationTimeoutMs?: number
}

/** A registered entity type. */
export interface EntityType {
  name: string
  cls: EntityClass
  operations: ReadonlySet<string>
  /** Argument schemas by operation (undefined: the class declares none). */
  schemas: ReadonlyMap<string, ArgumentSchema> | undefined
  /** Longest an asynchronous operation may take, in ms (`Infinity`: no limit). */
  timeoutMs: number
}

/** Entity types by name. */
export class EntityRegistry {
  readonly #types = new Map<string, EntityType>()
  readonly #timeoutMs: number

  /**
   * Registers entity classes; a second class with the same type name is an error, and so are
   * schemas that name no operation and timeouts that are not positive numbers.
   */
  constructor(classes: Iterable<EntityClass> = [], options: RegistryOptions = {}) {
    this.#timeoutMs = checkTimeout(
      options.operationTimeoutMs ?? DEFAULT_OPERATION_TIMEOUT_MS,
      'entityOperationTimeoutMs',
    )
    for (const cls of classes) this.add(cls)
  }

  /** Registers one entity class. */
  add(cls: EntityClass): void {
    if (!(cls.prototype instanceof Entity)) {
      throw new BadInputError(`${String(cls?.name)} does not extend Entity`)
    }
    const { type: name, names: operations, schemas } = operationTable(cls)
    if (this.#types.has(name)) throw new BadInputError(`entity type '${name}' is registered twice`)
    const timeoutMs =
      cls.operationTimeoutMs === undefined
        ? this.#timeoutMs
        : checkTimeout(cls.operationTimeoutMs, `${name}.operationTimeoutMs`)
    this.#types.set(name, { name, cls, operations, schemas, timeoutMs })
  }

  /** The type named `name`, or undefined. */
  find(name: string): EntityType | undefined {
    return this.#types.get(name)
  }

  /** The type named `name`; throws {@link UnknownEntityError}. */
  get(name: string): EntityType {
    const type = this.#types.get(name)
    if (type === undefined) throw new UnknownEntityError(name)
    return type
  }

  /** Whether `name` is registered. */
  has(name: string): boolean {
    return this.#types.has(name)
  }

  /** Names of all registered types. */
  names(): string[] {
    return [...this.#types.keys()]
  }

  /**
   * The state of a new (or deleted) entity: `initialState()` of `entity` bound to `ctx`, as an
   * operation is, so it may read `this.key`. Throws whatever `initialState()` throws; the caller
   * runs it as part of the operation, which then fails like one that threw.
   */
  initialState(entity: Entity, ctx: EntityContext): unknown {
    bindContext(entity, ctx)
    try {
      return entity.initialState()
    } finally {
      bindContext(entity, undefined)
    }
  }

  /** A fresh object of type `name` to run operations on; throws {@link UnknownEntityError}. */
  instantiate(name: string): Entity {
    return new (this.get(name).cls)()
  }

  /**
   * Cuts `entity` off from the operation it runs (one that was abandoned): from now on its state,
   * key and signals fail with `IllegalStateError`.
   */
  detach(entity: Entity): void {
    bindContext(entity, undefined)
  }

  /**
   * Runs operation `op` with `args` on `entity` (an object of the type `ctx.type`, made by
   * {@link instantiate}) in `ctx`. Returns the operation's result, or a promise of it when the
   * operation is async; the object stays bound to `ctx` until that promise settles, so it must
   * run nothing else meanwhile. Throws for unknown operations and whatever the operation throws.
   */
  run(entity: Entity, ctx: EntityContext, op: string, args: unknown[]): unknown {
    const type = this.get(ctx.type)
    if (!type.operations.has(op)) throw new UnknownOperationError(ctx.type, op)
    const method = (entity as unknown as Record<string, (...a: unknown[]) => unknown>)[op]!
    bindContext(entity, ctx)
    try {
      const result = method.apply(entity, args)
      if (isThenable(result)) {
        return Promise.resolve(result).finally(() => bindContext(entity, undefined))
      }
      bindContext(entity, undefined)
      return result
    } catch (err) {
      bindContext(entity, undefined)
      throw err
    }
  }
}

function checkTimeout(ms: unknown, what: string): number {
  if (typeof ms !== 'number' || !(ms > 0)) {
    throw new BadInputError(`${what} must be a positive number of ms or Infinity (got ${describeValue(ms)})`)
  }
  return ms
}

export { isThenable }

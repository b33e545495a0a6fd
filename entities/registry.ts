/**
 * The set of entity types a node can run, and the step that runs one operation on one entity.
 */
import { BadInputError, UnknownEntityError, UnknownOperationError } from '../actors/errors.ts'
import {
  Entity,
  bindContext,
  entityTypeName,
  operationNames,
  type EntityClass,
  type EntityContext,
} from './entity.ts'

/** A registered entity type. */
export interface EntityType {
  name: string
  cls: EntityClass<any>
  operations: Set<string>
  /** One instance per registry, reused for every operation (state lives in the context). */
  instance: Entity<any>
}

/** Entity types by name. */
export class EntityRegistry {
  readonly #types = new Map<string, EntityType>()

  /** Registers entity classes; a second class with the same type name is an error. */
  constructor(classes: Iterable<EntityClass<any>> = []) {
    for (const cls of classes) this.add(cls)
  }

  /** Registers one entity class. */
  add(cls: EntityClass<any>): void {
    if (!(cls.prototype instanceof Entity)) {
      throw new BadInputError(`${String(cls?.name)} does not extend Entity`)
    }
    const name = entityTypeName(cls)
    if (this.#types.has(name)) throw new BadInputError(`entity type '${name}' is registered twice`)
    this.#types.set(name, { name, cls, operations: operationNames(cls), instance: new cls() })
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

  /** The state of a new entity of type `name`. */
  initialState(name: string): unknown {
    return this.get(name).instance.initialState()
  }

  /**
   * Runs operation `op` with `args` in `ctx`. Returns the operation's result, or a promise of it
   * when the operation is async. Throws for unknown operations and whatever the operation throws.
   */
  run(ctx: EntityContext, op: string, args: unknown[]): unknown {
    const type = this.get(ctx.type)
    if (!type.operations.has(op)) throw new UnknownOperationError(ctx.type, op)
    const method = (type.instance as unknown as Record<string, (...a: unknown[]) => unknown>)[op]!
    bindContext(type.instance, ctx)
    try {
      const result = method.apply(type.instance, args)
      if (isThenable(result)) {
        return Promise.resolve(result).finally(() => bindContext(type.instance, undefined))
      }
      bindContext(type.instance, undefined)
      return result
    } catch (err) {
      bindContext(type.instance, undefined)
      throw err
    }
  }
}

/** Whether a value is promise-like. */
export function isThenable(value: unknown): value is PromiseLike<unknown> {
  return (
    typeof value === 'object' && value !== null && typeof (value as { then?: unknown }).then === 'function'
  )
}

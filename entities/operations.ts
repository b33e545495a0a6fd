/**
 * What is checked before an entity operation runs — on the client, where the class is known, and
 * again on the node that runs it: that the operation exists (a public method of the class), and
 * that its arguments match the schemas the class declares in `static schemas` (any Standard
 * Schema: zod, valibot, arktype or hand-written). Operations without a schema get their arguments
 * unchecked. The facts about a class are computed once and kept per class.
 */
import { BadInputError, UnknownOperationError, counted } from '../actors/index.ts'
import { entityTypeName, operationNames, type EntityClass, type OperationName } from './entity.ts'
import type {
  ArgumentSchema,
  StandardSchemaIssue,
  StandardSchemaResult,
  StandardSchemaV1,
} from './standard-schema.ts'
export type { ArgumentSchema } from './standard-schema.ts'

/**
 * Argument schemas of the operations of entity `E`, for `static schemas` on its class.
 *
 * @example
 * ```ts
 * class Counter extends Entity<number> {
 *   static override schemas: OperationSchemas<Counter> = { add: z.number().finite() }
 *   initialState() { return 0 }
 *   add(n: number) { this.state += n }
 * }
 * ```
 */
export type OperationSchemas<E> = { readonly [K in OperationName<E>]?: ArgumentSchema }

/** The operations of an entity class and their argument schemas. */
export interface OperationTable {
  /** The entity type name. */
  readonly type: string
  /** Names of the operations. */
  readonly names: ReadonlySet<string>
  /** Argument schemas by operation; undefined when the class declares none. */
  readonly schemas: ReadonlyMap<string, ArgumentSchema> | undefined
}

const tables = new WeakMap<EntityClass, OperationTable>()

/**
 * The operations of `cls` and their schemas (computed on first use). Throws
 * {@link BadInputError} when `static schemas` names something that is not an operation or holds
 * something that is not a Standard Schema.
 */
export function operationTable(cls: EntityClass): OperationTable {
  let table = tables.get(cls)
  if (table === undefined) {
    const type = entityTypeName(cls)
    const names = operationNames(cls)
    table = { type, names, schemas: readSchemas(type, names, cls.schemas) }
    tables.set(cls, table)
  }
  return table
}

function readSchemas(
  type: string,
  names: ReadonlySet<string>,
  declared: Readonly<Record<string, ArgumentSchema | undefined>> | undefined,
): Map<string, ArgumentSchema> | undefined {
  if (declared === undefined || declared === null) return undefined
  const schemas = new Map<string, ArgumentSchema>()
  for (const [op, schema] of Object.entries(declared)) {
    if (schema === undefined) continue
    if (!names.has(op)) {
      throw new BadInputError(`${type}.schemas names '${op}', which is not an operation of ${type}`)
    }
    const all = Array.isArray(schema) ? (schema as readonly unknown[]) : [schema]
    if (!all.every(isStandardSchema)) {
      throw new BadInputError(
        `${type}.schemas.${op} must be a Standard Schema (an object with '~standard') or an array of them`,
      )
    }
    schemas.set(op, schema)
  }
  return schemas.size === 0 ? undefined : schemas
}

/**
 * Checks an operation before it is sent: throws {@link UnknownOperationError} when `op` is not an
 * operation of the class, and {@link BadInputError} (naming the entity, the operation and the
 * issues) when a schema refuses the arguments. Only synchronous schemas are applied here — the
 * send must not wait, or operations sent right after it would overtake it; the node applies all.
 * Nothing is allocated for an operation without a schema.
 */
export function checkOperation(table: OperationTable, key: string, op: string, args: unknown[]): void {
  if (!table.names.has(op)) throw new UnknownOperationError(table.type, op)
  const schema = table.schemas?.get(op)
  if (schema !== undefined) {
    const checked = checkArguments(schema, args, table.type, key, op)
    if (isPromise(checked)) checked.catch(() => {}) // left to the node
  }
}

/**
 * Checks `args` against `schema`; returns what the operation runs with — the schemas' output
 * values, which may differ from the input when a schema transforms — or a promise of it when a
 * schema validates asynchronously. Fails with {@link BadInputError} naming `type@key.op` and the
 * issues.
 */
export function checkArguments(
  schema: ArgumentSchema,
  args: unknown[],
  type: string,
  key: string,
  op: string,
): unknown[] | Promise<unknown[]> {
  const single = !Array.isArray(schema)
  const schemas = (single ? [schema] : schema) as readonly StandardSchemaV1[]
  const bad = (detail: string) => new BadInputError(`bad arguments for ${type}@${key}.${op}: ${detail}`)
  if (args.length > schemas.length) {
    throw bad(
      single
        ? `expects 1 argument, got ${args.length}`
        : `expects at most ${counted(schemas.length, 'argument')}, got ${args.length}`,
    )
  }
  const results = schemas.map((s, i) => s['~standard'].validate(args[i]))
  const finish = (done: Array<StandardSchemaResult<unknown>>): unknown[] => {
    const problems: string[] = []
    const values = done.map((result, i) => {
      if (result.issues !== undefined) {
        const where = single ? '' : `argument ${i + 1}: `
        problems.push(...result.issues.map((issue) => where + describeIssue(issue)))
      }
      return (result as { value?: unknown }).value
    })
    if (problems.length > 0) throw bad(problems.join('; '))
    return values
  }
  if (results.some(isPromise)) return Promise.all(results.map((r) => Promise.resolve(r))).then(finish)
  return finish(results as Array<StandardSchemaResult<unknown>>)
}

/**
 * Checks one value against a schema: returns the schema's output value, or a promise of it when
 * the schema validates asynchronously; fails with {@link BadInputError} `bad <what>: <issues>`.
 *
 * @example const input = checkValue(def.input, msg.in, `input of orchestration 'hello'`)
 */
export function checkValue(schema: StandardSchemaV1, value: unknown, what: string): unknown {
  const result = schema['~standard'].validate(value)
  const finish = (done: StandardSchemaResult<unknown>): unknown => {
    if (done.issues !== undefined) {
      throw new BadInputError(`bad ${what}: ${done.issues.map(describeIssue).join('; ')}`)
    }
    return done.value
  }
  return isPromise(result) ? result.then(finish) : finish(result)
}

/**
 * {@link checkValue} where nothing may wait (an orchestration's code, a send that must not be
 * overtaken): `checkedNow` false when the schema validates asynchronously, its promise then
 * left alone.
 */
export function checkValueNow(
  schema: StandardSchemaV1,
  value: unknown,
  what: string,
): { checkedNow: true; value: unknown } | { checkedNow: false } {
  const checked = checkValue(schema, value, what)
  if (!isPromise(checked)) return { checkedNow: true, value: checked }
  checked.catch(() => {})
  return { checkedNow: false }
}

/** Whether `value` is a Standard Schema: an object whose `~standard` has a `validate` function. */
export function isStandardSchema(value: unknown): value is StandardSchemaV1 {
  const props = (value as { '~standard'?: { validate?: unknown } } | null)?.['~standard']
  return typeof props === 'object' && props !== null && typeof props.validate === 'function'
}

function describeIssue(issue: StandardSchemaIssue): string {
  const message = String(issue.message)
  if (issue.path === undefined || issue.path.length === 0) return message
  const path = issue.path.map((p) => String(typeof p === 'object' ? p.key : p)).join('.')
  return `at ${path}: ${message}`
}

function isPromise<T>(value: T | Promise<T>): value is Promise<T> {
  return typeof (value as { then?: unknown } | null)?.then === 'function'
}

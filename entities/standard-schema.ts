/**
 * The Standard Schema interface (https://standardschema.dev, version 1), declared here so that
 * entity classes can describe their operations' arguments with any library that implements it —
 * zod, valibot, arktype, or a hand-written object — without Basalt depending on one of them. The
 * spec asks implementers to copy these types rather than import them; only what Basalt reads is
 * declared, structurally compatible with the spec's `StandardSchemaV1`.
 */

/**
 * A schema: an object with a `~standard` property whose `validate` returns the (possibly
 * transformed) value or the issues found, synchronously or as a promise.
 *
 * @example
 * ```ts
 * const finite: StandardSchemaV1<number> = {
 *   '~standard': {
 *     version: 1,
 *     vendor: 'my-app',
 *     validate: (v) =>
 *       typeof v === 'number' && Number.isFinite(v) ? { value: v } : { issues: [{ message: 'expected a number' }] },
 *   },
 * }
 * ```
 */
export interface StandardSchemaV1<Input = unknown, Output = Input> {
  readonly '~standard': StandardSchemaProps<Input, Output>
}

/** The `~standard` property of a {@link StandardSchemaV1}. */
export interface StandardSchemaProps<Input = unknown, Output = Input> {
  /** The version of the Standard Schema spec: 1. */
  readonly version: 1
  /** The library that made the schema (e.g. `zod`). */
  readonly vendor: string
  /** Checks a value. */
  readonly validate: (value: unknown) => StandardSchemaResult<Output> | Promise<StandardSchemaResult<Output>>
  /** Inferred input and output types (type-level only). */
  readonly types?: { readonly input: Input; readonly output: Output } | undefined
}

/** What `validate` returns: the value when it is valid, else the issues. */
export type StandardSchemaResult<Output> =
  | { readonly value: Output; readonly issues?: undefined }
  | { readonly issues: ReadonlyArray<StandardSchemaIssue> }

/** One problem a schema found. */
export interface StandardSchemaIssue {
  /** What is wrong. */
  readonly message: string
  /** Where in the value, when not at its root. */
  readonly path?: ReadonlyArray<PropertyKey | { readonly key: PropertyKey }> | undefined
}

/**
 * The schema of an operation's arguments: one schema for an operation that takes one argument, or
 * one schema per argument, in order. An argument left out is checked as `undefined`; more
 * arguments than schemas are refused.
 */
export type ArgumentSchema = StandardSchemaV1 | readonly StandardSchemaV1[]

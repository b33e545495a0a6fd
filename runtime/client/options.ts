/**
 * The option and result types of the client's orchestration methods, named so that apps can
 * import them (`import type { StartOptions } from 'basalt'`), and {@link InstanceId}: the id
 * `client.start` returns, which carries the orchestration's output type to `waitForCompletion`.
 */
import type { RuntimeStatus } from '../instances/index.ts'
import type { InstanceStatus } from './status.ts'

/** Key of the type-only member that carries an instance's output type. */
declare const outputType: unique symbol

/**
 * An instance id: a string that also carries, as a type only, the output type `O` of the
 * orchestration it runs, so that `client.waitForCompletion(id)` and `client.getStatus(id)` are
 * typed without a type argument. Any string is an `InstanceId` (of output `unknown`).
 *
 * @example const id = await client.start(hello, ['Tokyo']); (await client.waitForCompletion(id)).output // string[] | undefined
 */
export type InstanceId<O = unknown> = string & { readonly [outputType]?: O }

/**
 * Which instances `client.listInstances` and `client.purgeInstances` take; every field narrows. A
 * field of the wrong kind (an unknown status, a time that is neither a Date nor a number, a prefix
 * that is not a string) is rejected with `BadInputError` naming it, and so is a key not listed
 * here (a misspelt `status` would otherwise narrow nothing).
 */
export interface InstanceFilter {
  /** Only instances in one of these statuses (`Running`, `Completed`, …: see `RuntimeStatus`). */
  statuses?: RuntimeStatus[]
  /** Only instances created at or after this time (Date or ms since the epoch). */
  createdFrom?: Date | number
  /** Only instances created at or before this time (Date or ms since the epoch). */
  createdTo?: Date | number
  /** Only instances of orchestrations whose name starts with this. */
  namePrefix?: string
  /** Only instances whose id starts with this. */
  idPrefix?: string
}

/** Options of `client.start`. */
export interface StartOptions {
  /** The instance id (default: a random UUID); an existing one is rejected unless `replace`. */
  instanceId?: string
  /** Start at this time (Date or ms since the epoch); the instance is Pending until then. */
  startAt?: Date | number
  /** Replace an instance of that id that is in a terminal state (default false). */
  replace?: boolean
}

/** Options of `client.getStatus`. */
export interface StatusOptions {
  /** Include the history events (default false). */
  history?: boolean
}

/** Options of `client.waitForCompletion`. */
export interface WaitOptions {
  /**
   * How long to wait before `TimeoutError`, in ms (default 60 000): a positive number, at most
   * 2^31 - 1 (else `BadInputError`).
   */
  timeoutMs?: number
}

/** A query of `client.listInstances`: a filter and a page. */
export interface InstanceQuery extends InstanceFilter {
  /** Most instances per page: a whole number in 1..1000 (default 100). */
  pageSize?: number
  /** The `continuation` of the previous page. */
  continuation?: string
}

/** A page of `client.listInstances`; `continuation` is set when there are more. */
export interface InstancePage {
  instances: InstanceStatus[]
  continuation?: string
}

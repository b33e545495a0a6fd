/**
 * Basalt's error taxonomy. Every error a user can see has a stable `code` and a `name`, and keeps
 * the underlying `cause`. Errors that crossed the wire (an operation that threw on a node) are
 * rebuilt on the caller's side as {@link RemoteError}s carrying the remote name, message and stack.
 */

/** Stable error codes; match on these rather than on messages. */
export const ErrorCode = {
  BadInput: 'BAD_INPUT',
  UnknownEntity: 'UNKNOWN_ENTITY',
  UnknownOperation: 'UNKNOWN_OPERATION',
  PayloadTooLarge: 'PAYLOAD_TOO_LARGE',
  Codec: 'CODEC',
  Remote: 'REMOTE',
  Timeout: 'TIMEOUT',
  Connection: 'CONNECTION',
  Authorization: 'AUTHORIZATION',
  HubNotFound: 'HUB_NOT_FOUND',
  PartitionUnavailable: 'PARTITION_UNAVAILABLE',
  Fenced: 'FENCED',
  IllegalState: 'ILLEGAL_STATE',
  Closed: 'CLOSED',
  NonDeterminism: 'NON_DETERMINISM',
  TaskFailed: 'TASK_FAILED',
  PoisonMessage: 'POISON_MESSAGE',
  StorageFull: 'STORAGE_FULL',
} as const
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode]

/** Base class of every error Basalt raises on purpose. */
export class BasaltError extends Error {
  /** Stable machine-readable code. */
  readonly code: ErrorCode
  /** Whether repeating the same request later may succeed. */
  readonly retryable: boolean
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown; retryable?: boolean }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause })
    this.code = code
    this.retryable = options?.retryable ?? false
    this.name = new.target.name
  }
}

/** Input that cannot be accepted: wrong type, malformed id, unserialisable value. Not retryable. */
export class BadInputError extends BasaltError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(ErrorCode.BadInput, message, options)
  }
}

/**
 * A start names an instance id that is taken (by an instance that still runs, or without
 * `replace`). A {@link BadInputError} (code `BAD_INPUT`), rebuilt as this class on the caller's
 * side.
 */
export class InstanceExistsError extends BadInputError {
  constructor(id: string, status: string) {
    super(`instance '${id}' already exists with status ${status}`)
  }
}

/**
 * An operation names an orchestration instance that does not exist (never started, or purged):
 * terminate, suspend, resume, purge, raiseEvent. A {@link BadInputError} (code `BAD_INPUT`),
 * rebuilt as this class on the caller's side, so that a bulk purge can pass over an instance
 * somebody else purged first.
 */
export class InstanceNotFoundError extends BadInputError {
  constructor(message: string) {
    super(message)
  }
}

/** An operation or a read names an entity type that the node's registry (or the hub) does not contain. */
export class UnknownEntityError extends BasaltError {
  constructor(
    readonly entityType: string,
    /** Where the type was looked for, in the message. */
    notIn = "the node's registry",
  ) {
    super(ErrorCode.UnknownEntity, `unknown entity type '${entityType}' (not in ${notIn})`)
  }
}

/** An operation names a method the entity class does not define. */
export class UnknownOperationError extends BasaltError {
  constructor(
    readonly entityType: string,
    readonly operation: string,
  ) {
    super(ErrorCode.UnknownOperation, `entity type '${entityType}' has no operation '${operation}'`)
  }
}

/** A message, state or result is larger than what the NATS server accepts. */
export class PayloadTooLargeError extends BasaltError {
  constructor(
    what: string,
    readonly size: number,
    readonly limit: number,
    /** What sets the limit: the server's `max_payload`, or the ceiling of values stored by reference. */
    limitName = 'max_payload',
  ) {
    super(
      ErrorCode.PayloadTooLarge,
      `${what} is ${size} bytes, over the limit of ${limit} bytes (${limitName})`,
    )
  }
}

/** Bytes that do not decode as a Basalt message of a known version. */
export class CodecError extends BasaltError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(ErrorCode.Codec, message, options)
  }
}

/** An error thrown by user code on a node, rebuilt on the caller's side. */
export class RemoteError extends BasaltError {
  constructor(
    /** The `name` of the error that was thrown remotely (e.g. `RangeError`). */
    readonly remoteName: string,
    message: string,
    /** The stack trace captured where it was thrown, if any. */
    readonly remoteStack?: string,
    /** The remote error's `code`, when it had one. */
    readonly remoteCode?: string,
    /**
     * The remote error's own fields with plain values (a `statusCode`, a `retryAfterMs`), as
     * {@link ErrorInfo.details} carried them; empty when it had none.
     */
    readonly details: ErrorDetails = {},
  ) {
    super(ErrorCode.Remote, message)
  }
}

/** A request got no answer in time. The request may still take effect later. */
export class TimeoutError extends BasaltError {
  constructor(message: string) {
    super(ErrorCode.Timeout, message, { retryable: true })
  }
}

/** The NATS server could not be reached. */
export class ConnectionError extends BasaltError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(ErrorCode.Connection, message, { ...options, retryable: true })
  }
}

/**
 * The NATS server refused the credentials (wrong user, password, token, nkey or creds file, or a
 * TLS client certificate it does not accept as a user). Raised by the first connect, at once: not
 * retried, since the same credentials would fail again. The message names the server and the user
 * (never a password, token or seed).
 */
export class AuthorizationError extends BasaltError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(ErrorCode.Authorization, message, options)
  }
}

/** The hub has not been created yet (no node has started on it). */
export class HubNotFoundError extends BasaltError {
  constructor(hub: string, message = `hub '${hub}' does not exist: start a node on it first`) {
    super(ErrorCode.HubNotFound, message)
  }
}

/** No node currently owns the partition, or its owner did not answer. */
export class PartitionUnavailableError extends BasaltError {
  constructor(partition: number, detail: string) {
    super(ErrorCode.PartitionUnavailable, `partition ${partition} is unavailable: ${detail}`, {
      retryable: true,
    })
  }
}

/** A newer owner took over the partition; this owner's commits are rejected. */
export class FencedError extends BasaltError {
  constructor(partition: number, detail: string) {
    super(ErrorCode.Fenced, `partition ${partition} was taken over by a newer owner: ${detail}`)
  }
}

/**
 * The NATS server refused to store a message: its JetStream store (or a limit of the account or
 * stream) is full. Nothing was stored; retryable once an operator freed space or raised the limit.
 */
export class StorageFullError extends BasaltError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(ErrorCode.StorageFull, message, { ...options, retryable: true })
  }
}

/** The object is in a state where the call is not allowed (e.g. closed). */
export class IllegalStateError extends BasaltError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(ErrorCode.IllegalState, message, options)
  }
}

/**
 * A client's method was called after `client.close()` (`client closed: getStatus('o1') after
 * close()`), or the close came while the call waited for its answer. Code `CLOSED`; an
 * {@link IllegalStateError}, as a call pending at close was before it had a class of its own.
 * Not retryable: the client stays closed (connect a new one). Never crosses the wire.
 */
export class ClientClosedError extends IllegalStateError {
  override readonly code: ErrorCode = ErrorCode.Closed
  constructor(
    /** The call, as the message names it: `getStatus('o1')`, `call Counter@c1.get`. */
    readonly call: string,
    /** The call was under way when `close()` came (else it was made after). */
    pending = false,
    options?: { cause?: unknown },
  ) {
    super(
      pending
        ? `client closed: close() ended ${call} before its answer`
        : `client closed: ${call} after close()`,
      options,
    )
  }
}

/** Fields of an error that travel with it: plain values only (see {@link ErrorInfo.details}). */
export type ErrorDetails = Record<string, string | number | boolean | null>

/** Serialisable description of an error, as it travels in replies. */
export interface ErrorInfo {
  name: string
  message: string
  stack?: string
  code?: string
  /**
   * The error's own fields with plain values: `size` and `limit` of a {@link PayloadTooLargeError},
   * the `statusCode` a user's error class sets. At most {@link MAX_DETAILS} of them, strings cut
   * at {@link MAX_DETAIL_CHARS} characters; fields holding objects or functions are left out.
   */
  details?: ErrorDetails
  /**
   * For a {@link TaskFailedError}: the first failure of the chain of tasks that failed one
   * another (what an activity or entity threw, under any number of sub-orchestrations), with its
   * own name, code, details and stack; each task on the way adds its words to the message.
   */
  cause?: ErrorInfo
}

/** Most fields an error carries across the wire in {@link ErrorInfo.details}. */
export const MAX_DETAILS = 16

/** Longest string field an error carries across the wire, in characters. */
export const MAX_DETAIL_CHARS = 1024

/** Own fields of every error that travel elsewhere in {@link ErrorInfo}, or are rebuilt. */
const NOT_DETAILS = new Set(['name', 'message', 'stack', 'code', 'cause', 'retryable'])

/**
 * Captures what a caller needs to know of a thrown value: name, message, code, and the stack of an
 * error thrown by user code (an entity operation, an activity, an orchestration), which the caller
 * gets as {@link RemoteError.remoteStack}. Basalt's own errors travel without their stack: it would
 * show only the node's internals (frames and file paths), never anything the caller can act on.
 */
export function toErrorInfo(err: unknown): ErrorInfo {
  // thrown on again (an orchestration failing with what an entity threw): the remote error itself
  if (err instanceof RemoteError) {
    return {
      name: err.remoteName,
      message: err.message,
      ...(err.remoteStack === undefined ? {} : { stack: err.remoteStack }),
      ...(err.remoteCode === undefined ? {} : { code: err.remoteCode }),
      ...(Object.keys(err.details).length === 0 ? {} : { details: err.details }),
    }
  }
  if (err instanceof Error) {
    const code = (err as { code?: unknown }).code
    const details = detailsOf(err)
    return {
      name: err.name,
      message: err.message,
      ...(err.stack === undefined || err instanceof BasaltError ? {} : { stack: err.stack }),
      ...(typeof code === 'string' ? { code } : {}),
      ...(details === undefined ? {} : { details }),
      // (the first failure only: one of a failed child is the child's own first failure)
      ...(err instanceof TaskFailedError ? { cause: err.failure.cause ?? err.failure } : {}),
    }
  }
  return { name: 'Error', message: describeThrown(err) }
}

/** The own fields of `err` with plain values (see {@link ErrorInfo.details}); undefined when none. */
function detailsOf(err: Error): ErrorDetails | undefined {
  let details: ErrorDetails | undefined
  let count = 0
  for (const key of Object.keys(err)) {
    if (NOT_DETAILS.has(key)) continue
    let value = (err as unknown as Record<string, unknown>)[key]
    if (typeof value === 'string') {
      if (value.length > MAX_DETAIL_CHARS) value = `${value.slice(0, MAX_DETAIL_CHARS - 1)}…`
    } else if (
      typeof value === 'number' ? !Number.isFinite(value) : typeof value !== 'boolean' && value !== null
    )
      continue
    ;(details ??= {})[key] = value as string | number | boolean | null
    if (++count === MAX_DETAILS) break
  }
  return details
}

/**
 * A thrown value that is not an Error, as a message: a string as it is, an object as JSON
 * (`throw { code: 42 }` keeps its fields instead of becoming "[object Object]"), else `String()`.
 */
function describeThrown(value: unknown): string {
  if (typeof value === 'string') return value
  if (typeof value === 'object' && value !== null) {
    try {
      const json = JSON.stringify(value)
      if (json !== undefined) return json.length > 4096 ? `${json.slice(0, 4095)}…` : json
    } catch {
      // circular or a BigInt inside: fall back to String()
    }
  }
  return String(value)
}

/**
 * Rebuilds a typed error from its wire form: Basalt's own errors come back as their own classes,
 * with their name, code and message (so `instanceof UnknownOperationError` and
 * `instanceof InstanceExistsError` work across the wire); anything user code threw comes back as a
 * {@link RemoteError} carrying the remote name, message and stack.
 */
export function fromErrorInfo(info: ErrorInfo): Error {
  const details = info.details ?? {}
  if (info.code === undefined) return new RemoteError(info.name, info.message, info.stack, undefined, details)
  // a subclass that shares its code with its base (InstanceExistsError is BAD_INPUT) by its name
  const build = BY_NAME[`${info.code}/${info.name}`] ?? REBUILD[info.code]
  if (build === undefined) return new RemoteError(info.name, info.message, info.stack, info.code, details)
  const err = build(info)
  // the class's own fields come back (PayloadTooLargeError's size and limit); nothing else is added
  for (const [key, value] of Object.entries(details)) {
    if (Object.hasOwn(err, key) && !NOT_DETAILS.has(key))
      (err as unknown as Record<string, unknown>)[key] = value
  }
  return err
}

/** Basalt's errors that share their code with another class, by `code/name`. */
const BY_NAME: Record<string, (info: ErrorInfo) => BasaltError> = {
  [`${ErrorCode.BadInput}/InstanceExistsError`]: (i) =>
    withMessage(new InstanceExistsError('', ''), i.message),
  [`${ErrorCode.BadInput}/InstanceNotFoundError`]: (i) => new InstanceNotFoundError(i.message),
}

const REBUILD: Record<string, (info: ErrorInfo) => BasaltError> = {
  [ErrorCode.BadInput]: (i) => new BadInputError(i.message),
  [ErrorCode.UnknownEntity]: (i) => withMessage(new UnknownEntityError(''), i.message),
  [ErrorCode.UnknownOperation]: (i) => withMessage(new UnknownOperationError('', ''), i.message),
  [ErrorCode.PayloadTooLarge]: (i) => withMessage(new PayloadTooLargeError('', 0, 0), i.message),
  [ErrorCode.PartitionUnavailable]: (i) => withMessage(new PartitionUnavailableError(-1, ''), i.message),
  [ErrorCode.IllegalState]: (i) => new IllegalStateError(i.message),
  [ErrorCode.Timeout]: (i) => new TimeoutError(i.message),
  [ErrorCode.Codec]: (i) => new CodecError(i.message),
  [ErrorCode.HubNotFound]: (i) => withMessage(new HubNotFoundError(''), i.message),
  [ErrorCode.Fenced]: (i) => withMessage(new FencedError(-1, ''), i.message),
  [ErrorCode.StorageFull]: (i) => new StorageFullError(i.message),
}

function withMessage<E extends Error>(err: E, message: string): E {
  err.message = message
  return err
}

/**
 * Orchestration code did not replay its own history: at some task sequence number it issued a
 * different command (kind or name) than the one recorded, issued one the history lacks, or skipped
 * one the history has. The instance fails with this error rather than continuing on a history that
 * no longer describes its code. Fix: keep old code paths for in-flight instances with
 * `ctx.patched(id)`, or give the changed orchestration a new name or version.
 */
export class NonDeterminismError extends BasaltError {
  constructor(message: string) {
    super(ErrorCode.NonDeterminism, message)
  }
}

/**
 * A task an orchestration awaited (activity, sub-orchestration or entity call) failed. `failure`
 * describes the error thrown where the task ran; the message names the task. The `cause` is the
 * failure rebuilt with {@link fromErrorInfo}. Across the wire (a failed instance's status, the
 * failure of a child instance) it travels with the first failure of its chain as
 * {@link ErrorInfo.cause}: a rebuilt `TaskFailedError` has that as its `failure` (before, only its
 * message and name survived).
 */
export class TaskFailedError extends BasaltError {
  constructor(
    message: string,
    /** The failure of the task, as reported by the activity, child instance or entity. */
    readonly failure: ErrorInfo,
  ) {
    super(ErrorCode.TaskFailed, message, { cause: fromErrorInfo(failure) })
  }
}

REBUILD[ErrorCode.NonDeterminism] = (i) => new NonDeterminismError(i.message)
REBUILD[ErrorCode.TaskFailed] = (i) =>
  new TaskFailedError(i.message, i.cause ?? { name: i.name, message: i.message })

/**
 * A message ended the process or thread that ran it (a crash, `process.exit`, running out of
 * memory, or a hang the node's watchdog ended) each time it ran, so the partition moved it to the
 * dead-letter stream instead of running it again (runtime/partition/careful.ts). Its caller gets
 * this error; the message names the target, the operation and how often it ended its runner.
 */
export class PoisonMessageError extends BasaltError {
  constructor(message: string) {
    super(ErrorCode.PoisonMessage, message)
  }
}

REBUILD[ErrorCode.PoisonMessage] = (i) => new PoisonMessageError(i.message)

/**
 * JetStream error predicates, in one place, over the client library's own codes
 * (`JetStreamApiCodes`, `JetStreamApiError`, `NoRespondersError`) where it names them, and over the
 * few server codes it does not. The lean publish path (fast-js.ts) raises {@link LeanPublishError}
 * with the server's `err_code`, so the same predicates hold for both paths.
 */
import { JetStreamApiCodes, JetStreamApiError } from '@nats-io/jetstream'
import { NoRespondersError } from '@nats-io/transport-node'

/** Server codes the client library does not name. */
export const ServerCodes = {
  /** A request found no responder (a NATS status code, not a JetStream one). */
  NoResponders: 503,
  /** JetStream cluster not available (leaders being elected). */
  ClusterNotAvailable: 10008,
  /** A stream with that name exists already (with another configuration, or created concurrently). */
  StreamNameInUse: 10058,
} as const

/**
 * The code of a {@link LeanPublishError} for a request whose answer was lost with the connection
 * (not a server code): the request may or may not have taken effect.
 */
export const CONNECTION_LOST = -1

/**
 * The code of a {@link LeanPublishError} for a publish the server refused because the connection's
 * NATS user may not publish to its subject (not a server code): it did not take effect.
 */
export const PERMISSION_DENIED = -2

/**
 * An error answer on the lean publish and direct-get path (fast-js.ts), with the server's error
 * code (JetStream `err_code`, or the status code 503 for "no responders").
 */
export class LeanPublishError extends Error {
  constructor(
    message: string,
    /** JetStream `err_code` (10071: wrong last sequence, …), 503 (no responders), or 0. */
    readonly code: number,
    options?: ErrorOptions,
  ) {
    super(message, options)
    this.name = 'LeanPublishError'
  }
}

function codeOf(err: unknown): number | string | undefined {
  if (err instanceof JetStreamApiError) return err.code
  return (err as { code?: number | string } | null | undefined)?.code
}

/**
 * Whether `err` is JetStream's rejection of a fenced write: the expected last sequence (or KV
 * revision) did not match. Looks through `cause` chains.
 */
export function isWrongLastSequence(err: unknown): boolean {
  if (codeOf(err) === JetStreamApiCodes.StreamWrongLastSequence) return true
  const e = err as { message?: unknown; cause?: unknown } | null | undefined
  if (typeof e?.message === 'string' && /wrong last sequence/i.test(e.message)) return true
  return e?.cause !== undefined && e.cause !== err && isWrongLastSequence(e.cause)
}

/** Whether a message get found no message (`JetStreamApiCodes.NoMessageFound`). */
export function isNoMessage(err: unknown): boolean {
  return codeOf(err) === JetStreamApiCodes.NoMessageFound || /no message found/i.test(String(err))
}

/**
 * Whether a request failed because nothing listens on its subject: the client raises
 * `NoRespondersError`, the lean path a {@link LeanPublishError} with code 503.
 */
export function isNoResponders(err: unknown): boolean {
  if (err instanceof NoRespondersError) return true
  const e = err as Error | null | undefined
  return e?.name === 'NoRespondersError' || /no responders|\(503\)/i.test(String(e?.message ?? err))
}

/**
 * Whether a lean request's answer was lost with the connection (it was sent, or queued, before the
 * client reconnected): it may have taken effect, so only a request that is safe to repeat (a
 * publish with a message id, a fenced write, a read) should be tried again.
 */
export function isConnectionLost(err: unknown): boolean {
  return err instanceof LeanPublishError && err.code === CONNECTION_LOST
}

/**
 * Whether a lean request was refused for want of a publish permission on its subject: repeating it
 * helps only once an operator grants the permission.
 */
export function isPermissionDenied(err: unknown): boolean {
  return err instanceof LeanPublishError && err.code === PERMISSION_DENIED
}

/** Whether a lean publish found no stream answering (status 503: e.g. a leader being elected). */
export function isUnavailable(err: unknown): boolean {
  return codeOf(err) === ServerCodes.NoResponders
}

/**
 * Whether the server refused to store a message because its JetStream store, the account's storage
 * limit or a stream's limit is full ("insufficient resources", "insufficient storage resources
 * available", "resource limits exceeded for account", "maximum bytes exceeded"): not worth another
 * try until an operator frees space or raises the limit.
 */
export function isStorageFull(err: unknown): boolean {
  const code = codeOf(err)
  if (code === 10002 || code === 10023 || code === 10028 || code === 10047) return true
  const message = String((err as { message?: unknown } | null | undefined)?.message ?? err)
  return /insufficient (storage )?resources|resource(s| limits) exceeded|maximum (bytes|messages) exceeded/i.test(
    message,
  )
}

/** What an operator is told with an error that {@link isStorageFull} holds. */
export const STORAGE_FULL_HINT =
  "the NATS server's JetStream store is full: free space, or raise jetstream.max_file_store (or the account's or stream's limits)"

/**
 * One line for a NATS or Basalt error in a log: its name and message, with the storage-full hint
 * when it applies; other errors (bugs) add where they were thrown (`at fn (file:line:col)`, the
 * stack's first frame), so that the log line stays one line.
 */
export function describeNatsError(err: unknown): string {
  if (!(err instanceof Error)) return String(err)
  const known =
    err instanceof LeanPublishError ||
    err instanceof JetStreamApiError ||
    (err as { code?: unknown }).code !== undefined
  const where = known ? undefined : /^\s+(at .+)$/m.exec(err.stack ?? '')?.[1]
  const line =
    `${err.name}: ${err.message}`.replace(/\s*\n\s*/g, ' ') + (where === undefined ? '' : ` (${where})`)
  // the client's name for a JetStream request nothing answered: usually a stream that is gone
  if (err.name === 'JetStreamNotEnabled') return `${line} (${NOTHING_ANSWERED})`
  return withStorageHint(err, line)
}

/** What a JetStream request that nothing answered usually means. */
const NOTHING_ANSWERED =
  'nothing answered the JetStream request: the stream it needs is missing (was the hub deleted?), or JetStream is off'

/** `line`, followed by the {@link STORAGE_FULL_HINT} when `err` says the store is full. */
export function withStorageHint(err: unknown, line: string): string {
  return isStorageFull(err) ? `${line} (${STORAGE_FULL_HINT})` : line
}

/** Whether a stream create failed because a stream of that name exists. */
export function isStreamNameInUse(err: unknown): boolean {
  return codeOf(err) === ServerCodes.StreamNameInUse
}

/** Errors of a cluster electing leaders or of a server going away: worth another try. */
export function isTransient(err: unknown): boolean {
  const e = err as { name?: string; message?: string }
  if (e.name === 'TimeoutError' || e.name === 'NoRespondersError' || isConnectionLost(err)) return true
  const code = codeOf(err)
  if (code === ServerCodes.NoResponders || code === '503' || code === ServerCodes.ClusterNotAvailable)
    return true
  return /timeout|no responders|temporarily unavailable|no suitable peers|leader/i.test(String(e.message))
}

/** What a NATS permissions violation refused: `publish` or `subscribe`, and the subject. */
export interface Violation {
  operation: 'publish' | 'subscribe'
  subject: string
}

/**
 * The violation behind `err` (or one of its causes) when the NATS server refused a publish or
 * subscription for lack of permissions (`Permissions Violation for Publish to "…"`), else undefined.
 */
export function permissionViolation(err: unknown): Violation | undefined {
  for (let e = err, depth = 0; e instanceof Error && depth < 5; e = e.cause, depth++) {
    const m = /Permissions Violation for (Publish|Subscription) to "?([^"\s]+)"?/i.exec(e.message)
    if (m !== null) {
      return { operation: m[1]!.toLowerCase() === 'publish' ? 'publish' : 'subscribe', subject: m[2]! }
    }
  }
  return undefined
}

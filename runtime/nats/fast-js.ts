/**
 * A lean JetStream publish and direct-get path for the engine's hot loops (commit appends, item
 * writes, mailbox and outbox publishes, state loads). The NATS client's `js.publish` builds a
 * request object, a timer and an error (for its stack) per call; measured on the 2-core machines
 * that is ~80 µs of client CPU per publish. Here every request shares one reply subscription and
 * one sweeping timer, and the ack is parsed directly: the same wire protocol, a fraction of the CPU.
 */
import type { Msg, MsgHdrs, NatsConnection } from '@nats-io/transport-node'
import { TimeoutError } from '../../actors/index.ts'
import { CONNECTION_LOST, LeanPublishError, PERMISSION_DENIED, ServerCodes } from './errors.ts'

/** Options of {@link FastJetStream.publish}. */
export interface FastPublishOptions {
  msgID?: string
  /** Fences the publish: the subject's last sequence must be this (0: no message yet). */
  expectLastSubjectSeq?: number
  /** Extra headers. */
  headers?: Record<string, string>
}

/** A JetStream publish acknowledgement. */
export interface PublishAck {
  seq: number
  duplicate: boolean
}

interface Waiter {
  resolve(msg: Msg): void
  reject(err: Error): void
  deadline: number
  what: string
  subject: string
}

const perConnection = new WeakMap<NatsConnection, FastJetStream>()

/** The shared {@link FastJetStream} of a connection (one reply subscription per connection). */
export function fastJetStream(nc: NatsConnection): FastJetStream {
  let fast = perConnection.get(nc)
  if (fast === undefined) {
    fast = new FastJetStream(nc)
    perConnection.set(nc, fast)
    void nc.closed().then(() => fast!.close())
  }
  return fast
}

/** Shared reply handling for many concurrent JetStream requests on one connection. */
export class FastJetStream {
  readonly #prefix: string
  readonly #waiters = new Map<number, Waiter>()
  /** Called after each reconnect, once the requests lost with the connection have failed. */
  readonly #onReconnect = new Set<() => void>()
  readonly #sweeper: NodeJS.Timeout
  #next = 0
  /** Requests sent (publishes and gets). */
  requests = 0

  constructor(
    readonly nc: NatsConnection,
    readonly timeoutMs = 10_000,
  ) {
    this.#prefix = `_INBOX_bfj.${nc.info?.client_id ?? 0}.${Math.random().toString(36).slice(2)}.`
    nc.subscribe(`${this.#prefix}*`, {
      callback: (err, msg) => {
        if (err !== null) return
        const id = Number(msg.subject.slice(this.#prefix.length))
        const waiter = this.#waiters.get(id)
        if (waiter === undefined) return
        this.#waiters.delete(id)
        // 503 = no responders: no stream listens on the subject
        if (msg.headers?.code === ServerCodes.NoResponders) {
          waiter.reject(new LeanPublishError(`${waiter.what}: no responders (503)`, ServerCodes.NoResponders))
        } else waiter.resolve(msg)
      },
    })
    this.#sweeper = setInterval(() => this.#sweep(), Math.min(1000, timeoutMs / 4))
    this.#sweeper.unref()
    void this.#watchConnection()
  }

  /** Publishes to a stream subject and resolves with the stored sequence. */
  async publish(subject: string, data: Uint8Array, options: FastPublishOptions = {}): Promise<number> {
    return ackOf(await this.#publish(subject, data, options), subject).seq
  }

  /**
   * Publishes to a stream subject and resolves with the server's acknowledgement: the stored
   * sequence, and whether the server answered from its duplicate window (`duplicate`: a message
   * with the same `msgID` is already stored, at `seq` — not necessarily this one's bytes).
   */
  async publishAck(subject: string, data: Uint8Array, options: FastPublishOptions = {}): Promise<PublishAck> {
    const ack = ackOf(await this.#publish(subject, data, options), subject)
    return { seq: ack.seq, duplicate: ack.duplicate === true }
  }

  #publish(subject: string, data: Uint8Array, options: FastPublishOptions): Promise<Msg> {
    const h =
      options.msgID === undefined &&
      options.expectLastSubjectSeq === undefined &&
      options.headers === undefined
        ? undefined
        : leanHeaders(options)
    return this.#request(subject, data, h, `publish to ${subject}`)
  }

  /**
   * Direct get of the last message on `subject` in `stream` (the stream must allow direct get, as
   * KV buckets do). Resolves null when there is none.
   */
  async lastBySubject(
    stream: string,
    subject: string,
  ): Promise<{
    data: Uint8Array
    seq: number
    operation: string | undefined
    headers: MsgHdrs | undefined
  } | null> {
    const msg = await this.#request(
      `$JS.API.DIRECT.GET.${stream}`,
      new TextEncoder().encode(JSON.stringify({ last_by_subj: subject })),
      undefined,
      `get ${subject}`,
    )
    const h = msg.headers
    if (h !== undefined && h.code === 404) return null
    if (h !== undefined && h.hasError)
      throw new LeanPublishError(`get ${subject}: ${h.code} ${h.description}`, h.code)
    const seq = Number(h?.get('Nats-Sequence'))
    if (!Number.isFinite(seq)) throw new LeanPublishError(`get ${subject}: reply without a sequence`, 0)
    return { data: msg.data, seq, operation: h?.get('KV-Operation') || undefined, headers: h }
  }

  /**
   * A core NATS request (no JetStream), sharing the same reply subscription and timeout sweep.
   * Rejects with a 503 {@link LeanPublishError} when nobody listens on the subject.
   */
  request(subject: string, data: Uint8Array): Promise<Msg> {
    return this.#request(subject, data, undefined, `request to ${subject}`)
  }

  /**
   * Calls `listener` after every reconnect of this connection (one watch of its status events for
   * all, rather than one per listener); the returned function stops it.
   */
  onReconnect(listener: () => void): () => void {
    this.#onReconnect.add(listener)
    return () => this.#onReconnect.delete(listener)
  }

  /**
   * A server refuses a publish its user may not make with an error of the connection (no answer
   * to the request): the requests waiting on that subject fail at once, naming the subject,
   * instead of waiting out the timeout with a bare "no answer" (an outside trial revoked a node's
   * permission on the state bucket: 10 s timeouts, and logs that never said why).
   */
  #refused(error: unknown): void {
    const e = error as { name?: string; operation?: string; subject?: string } | undefined
    if (e?.name !== 'PermissionViolationError' || e.operation !== 'publish' || !e.subject) return
    for (const [id, w] of this.#waiters) {
      if (w.subject !== e.subject) continue
      this.#waiters.delete(id)
      w.reject(
        new LeanPublishError(
          `${w.what}: permission denied: the NATS user of this connection may not publish to '${e.subject}' (docs/SECURITY.md lists what a node and a client need)`,
          PERMISSION_DENIED,
          { cause: error },
        ),
      )
    }
  }

  /** Stops the timer; pending requests fail. */
  close(): void {
    clearInterval(this.#sweeper)
    for (const [, w] of this.#waiters) w.reject(new TimeoutError(`${w.what}: connection closing`))
    this.#waiters.clear()
  }

  #request(subject: string, data: Uint8Array, h: MsgHdrs | undefined, what: string): Promise<Msg> {
    const id = ++this.#next
    this.requests++
    return new Promise<Msg>((resolve, reject) => {
      // (no closure per request: under tsx every named function costs a defineProperty)
      this.#waiters.set(id, { resolve, reject, deadline: Date.now() + this.timeoutMs, what, subject })
      try {
        this.nc.publish(
          subject,
          data,
          h === undefined ? { reply: this.#prefix + id } : { reply: this.#prefix + id, headers: h },
        )
      } catch (err) {
        this.#waiters.delete(id)
        reject(err as Error)
      }
    })
  }

  /**
   * Fails every request still waiting when the client has reconnected: an answer the server sent
   * while the client was away is lost, so waiting on would cost the whole timeout (10 s). Measured
   * with the only server stopped for 4 s under load: commit appends and client sends in flight
   * waited out their timeouts, and the hub answered again 9 s after the server was back. A request
   * queued while the client was away may still be answered: failing it too only makes its caller
   * try again, which every caller that retries does safely (message ids, fenced writes, reads).
   */
  async #watchConnection(): Promise<void> {
    // unit tests hand in connections without status events
    if (typeof this.nc.status !== 'function') return
    try {
      for await (const status of this.nc.status()) {
        if (status.type === 'error') {
          this.#refused(status.error)
          continue
        }
        if (status.type !== 'reconnect') continue
        for (const [id, w] of this.#waiters) {
          this.#waiters.delete(id)
          w.reject(
            new LeanPublishError(
              `${w.what}: the connection to the NATS server was lost before the answer came (it may have taken effect)`,
              CONNECTION_LOST,
            ),
          )
        }
        for (const listener of this.#onReconnect) listener()
      }
    } catch {
      // the connection closed: close() fails what still waits
    }
  }

  #sweep(): void {
    const now = Date.now()
    // insertion order is deadline order (one timeout for all), so stop at the first live one
    for (const [id, w] of this.#waiters) {
      if (w.deadline > now) break
      this.#waiters.delete(id)
      w.reject(new TimeoutError(`${w.what}: no answer in ${this.timeoutMs} ms`))
    }
  }
}

/**
 * The headers of a publish, encoded as the NATS protocol sends them (`NATS/1.0`, one `Key: value`
 * line each, a blank line). The client's `MsgHdrs` keeps a map of arrays and validates and
 * re-encodes on every publish; the connection only calls `encode()` on what it is given, so this
 * hands it the bytes directly. Measured with a sampling allocation profile of a hello-sequence run:
 * the client's header objects were 7 % of everything the node allocated (two item writes and a log
 * append per instance carry headers).
 */
function leanHeaders(options: FastPublishOptions): MsgHdrs {
  let text = 'NATS/1.0'
  if (options.msgID !== undefined) text += `\r\nNats-Msg-Id: ${headerValue('Nats-Msg-Id', options.msgID)}`
  if (options.expectLastSubjectSeq !== undefined) {
    text += `\r\nNats-Expected-Last-Subject-Sequence: ${options.expectLastSubjectSeq}`
  }
  if (options.headers !== undefined) {
    for (const k in options.headers) {
      if (!HEADER_KEY.test(k)) throw new TypeError(`invalid header name '${k}'`)
      text += `\r\n${k}: ${headerValue(k, options.headers[k]!)}`
    }
  }
  const bytes = encoder.encode(`${text}\r\n\r\n`)
  return { encode: () => bytes } as unknown as MsgHdrs
}

const encoder = new TextEncoder()
/** Header names as the NATS client accepts them (printable ASCII but ':' and space). */
const HEADER_KEY = /^[!-9;-~]+$/

function headerValue(key: string, value: string): string {
  if (/[\r\n]/.test(value)) throw new TypeError(`header '${key}' has a line break in its value`)
  return value.trim()
}

/** The acknowledgement in a publish's answer; throws {@link LeanPublishError} for an error answer. */
function ackOf(msg: Msg, subject: string): { seq: number; duplicate?: boolean } {
  const ack = parseJson(msg.data) as {
    seq?: number
    duplicate?: boolean
    error?: { err_code?: number; description?: string }
  }
  if (ack?.error !== undefined) {
    throw new LeanPublishError(
      `publish to ${subject}: ${ack.error.description ?? 'error'}`,
      ack.error.err_code ?? 0,
    )
  }
  if (typeof ack?.seq !== 'number')
    throw new LeanPublishError(`publish to ${subject}: no ack from a stream`, 0)
  return ack as { seq: number; duplicate?: boolean }
}

function parseJson(data: Uint8Array): unknown {
  try {
    return JSON.parse(Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString('utf8'))
  } catch {
    return undefined
  }
}

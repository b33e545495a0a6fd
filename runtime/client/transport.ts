/**
 * How a client's messages travel (the call transport): per partition, signals and calls leave in
 * batches through a {@link PartitionSender}; calls wait for their reply on the client's inbox,
 * which a partition publishes once the call's record is committed; calls waiting long, or across a
 * reconnect, ask the partition again for replies it sent lately; queries go to the owner of a
 * partition, after the client's last publish there (read-your-writes). The entity and instance
 * APIs of `Client` act through it.
 */
import {
  BadInputError,
  ClientClosedError,
  CodecError,
  HubNotFoundError,
  PartitionUnavailableError,
  StorageFullError,
  TimeoutError,
  fromErrorInfo,
  partitionOf,
} from '../../actors/index.ts'
import {
  WIRE_VERSION,
  type ActorMessage,
  type EntityOp,
  type Query,
  type QueryAnswer,
  type Reply,
  type ReplyEnvelope,
  type ReplyTo,
} from '../../actors/wire/index.ts'
import {
  decode,
  decodeEnvelope,
  encode,
  isConnectionLost,
  isNoResponders,
  isStorageFull,
  STORAGE_FULL_HINT,
  fastJetStream,
  hubNow,
  type FastJetStream,
  type Hub,
  BlobStore,
  isUnloaded,
  createInbox,
  type NatsConnection,
  type Subscription,
} from '../nats/index.ts'
import { targetOf } from '../partition/index.ts'
import { describeTypeName, retryWithBackoff } from '../util/index.ts'
import { PartitionSender, type SenderHost } from './sender.ts'
import { HubGuard, deletedError } from './hub-guard.ts'
import { offloadMessage } from './blobs.ts'
import { noTracing, type Tracing } from '../metrics/index.ts'
import { tracedSend } from './client-spans.ts'

/** Timeouts of the transport (see `ClientOptions`). */
export interface TransportOptions {
  callTimeoutMs: number
  queryTimeoutMs: number
  publishDeadlineMs: number
  reaskMs: number
}

export interface PendingCall {
  resolve(value: unknown): void
  reject(err: Error): void
  /** The call in errors: `call Counter@c1.get`. */
  what: () => string
  timer: NodeJS.Timeout
  /** Partition the call went to, and when it left. */
  p: number
  at: number
  /** Its message is stored in the partition's mailbox (the publish was acknowledged). */
  stored?: true
  /** The last re-ask found no node serving the partition. */
  unserved?: boolean
  /**
   * The last re-ask found the call kept for a type the partition's owner does not run, waiting for
   * a node that does (its registry name, `e:Type`).
   */
  held?: string
}

/** The call transport of one client (see the module comment). */
export class CallTransport implements SenderHost {
  readonly #senders = new Map<number, PartitionSender>()
  readonly #calls = new Map<number, PendingCall>()
  /** The last check of whether the hub is gone: when, and its answer (see {@link #hubGone}). */
  #hubCheck: { at: number; gone: Promise<HubNotFoundError | undefined> } | undefined
  /** Mailbox sequence of the last acknowledged publish per partition (for read-your-writes). */
  readonly #lastSeq = new Map<number, number>()
  readonly #inbox: string
  readonly #replySub: Subscription
  readonly #js: FastJetStream
  readonly #maxPayload: number
  /** Whether the hub is still the one this client opened, asked before messages and queries leave. */
  readonly #guard: HubGuard
  #rid = 0
  #closed = false
  #reaskTimer: NodeJS.Timeout | undefined
  /** JetStream publishes made (for benchmarks: signals per publish). */
  publishes = 0

  constructor(
    readonly nc: NatsConnection,
    readonly hub: Hub,
    /** The client's id: its batches are numbered per client and deduplicated on it. */
    readonly id: string,
    readonly options: TransportOptions,
    /** Where large values go by reference (runtime/nats/blobs.ts). */
    readonly blobs: BlobStore,
    /** Where the spans of starts, signals and calls go (runtime/metrics/tracing.ts). */
    readonly tracing: Tracing = noTracing,
    /** Told once when the hub is found deleted and created again (the client fails its watches). */
    onHubReplaced: (refusal: HubNotFoundError) => void = () => {},
  ) {
    this.#guard = new HubGuard(hub, (refusal) => {
      // nothing this client waits for comes from the hub there now
      for (const [rid, call] of this.#calls) {
        this.#calls.delete(rid)
        clearTimeout(call.timer)
        call.reject(this.#guard.refusal())
      }
      onHubReplaced(refusal)
    })
    this.#js = fastJetStream(nc)
    this.#maxPayload = nc.info?.max_payload ?? 1024 * 1024
    this.#inbox = createInbox(hub.names.replyInboxPrefix)
    this.#replySub = nc.subscribe(this.#inbox, {
      callback: (err, msg) => {
        if (err === null) this.#onReplies(msg.data)
      },
    })
    // hears the hub record written anew (a hub created again); sends never wait for a read
    this.#guard.listen(nc)
  }

  /** Whether {@link close} was called. */
  get closed(): boolean {
    return this.#closed
  }

  /**
   * Whether the hub was found deleted and created again since this client connected: every
   * message and query is refused then (see hub-guard.ts).
   */
  get hubReplaced(): boolean {
    return this.#guard.replaced
  }

  /**
   * Stops: waits for queued messages to leave; pending calls fail with `ClientClosedError`, and
   * so does every later message or query.
   */
  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    clearTimeout(this.#reaskTimer)
    await Promise.all([...this.#senders.values()].map((s) => s.idle()))
    for (const [, call] of this.#calls) {
      clearTimeout(call.timer)
      call.reject(new ClientClosedError(call.what(), true))
    }
    this.#calls.clear()
    this.#replySub.unsubscribe()
    this.#guard.close()
  }

  /**
   * Why `what` may not leave now: the client is closed, or its hub was deleted and created again
   * (see hub-guard.ts); undefined when it may.
   */
  #refused(what: () => string): Error | undefined {
    if (this.#closed) return new ClientClosedError(what())
    if (this.#guard.replaced) return this.#guard.refusal()
    return undefined
  }

  /**
   * The connection is back: the hub record is read once (one written meanwhile was not heard);
   * nothing waits for that read.
   */
  reconnected(): void {
    if (!this.#closed) this.#guard.check()
  }

  /**
   * Sends any actor message one-way (an activity worker's result); resolves once it is stored in
   * the mailbox. Its values are encoded as the node encodes them (a function as undefined).
   */
  send(msg: ActorMessage): Promise<void> {
    const refused = this.#refused(() => `sending a '${msg.k}' message`)
    if (refused !== undefined) return Promise.reject(refused)
    return new Promise<void>((resolve, reject) =>
      this.#sender(targetOf(msg)).add({ msg, resolve, reject, lenient: true }),
    )
  }

  /** Sends an entity signal; resolves once it is stored in the mailbox. In a span when tracing. */
  signal(msg: EntityOp): Promise<void> {
    if (this.tracing.on) return tracedSend(this.tracing, msg, false, () => this.#signal(msg))
    return this.#signal(msg)
  }

  #signal(msg: EntityOp): Promise<void> {
    const refused = this.#refused(() => `signal ${msg.t}@${msg.key}.${msg.op}`)
    if (refused !== undefined) return Promise.reject(refused)
    if (!Array.isArray(msg.a)) return Promise.reject(new BadInputError('arguments must be an array'))
    return new Promise<void>((resolve, reject) => this.#sender(msg.key).add({ msg, resolve, reject }))
  }

  /** Every waiting call asks again for its reply (after a reconnect: it may have been dropped). */
  reaskAll(): void {
    void this.#reask(0)
  }

  /**
   * Sends a message that expects a reply after the partition committed it. A start or an entity
   * call is in a span when tracing.
   */
  request(
    msg: ActorMessage & { r?: ReplyTo },
    what: () => string,
    timeoutMs = this.options.callTimeoutMs,
    timedOut?: TimeoutMessage,
  ): Promise<unknown> {
    if (this.tracing.on)
      return tracedSend(this.tracing, msg, true, () => this.#request(msg, what, timeoutMs, timedOut))
    return this.#request(msg, what, timeoutMs, timedOut)
  }

  #request(
    msg: ActorMessage & { r?: ReplyTo },
    what: () => string,
    timeoutMs: number,
    timedOut: TimeoutMessage = (call) => `${what()} got no result in ${timeoutMs} ms${afterTimeout(call)}`,
  ): Promise<unknown> {
    const refused = this.#refused(what)
    if (refused !== undefined) return Promise.reject(refused)
    const rid = ++this.#rid
    msg.r = [this.#inbox, rid]
    return new Promise<unknown>((resolve, reject) => {
      const timer = setTimeout(() => {
        const call = this.#calls.get(rid)
        this.#calls.delete(rid)
        reject(new TimeoutError(timedOut(call)))
      }, timeoutMs)
      const sender = this.#sender(targetOf(msg))
      this.#calls.set(rid, { resolve, reject, what, timer, p: sender.p, at: Date.now() })
      this.#armReask()
      sender.add({ msg, rid })
    })
  }

  /** When the hub this client opened was created (see {@link SenderHost}). */
  get hubCreated(): number {
    return this.hub.meta.created
  }

  /** A call's message is stored in its partition's mailbox (see {@link SenderHost}). */
  storedCall(rid: number): void {
    const call = this.#calls.get(rid)
    if (call !== undefined) call.stored = true
  }

  /** A call's message could not be sent (see {@link SenderHost}). */
  failCall(rid: number, err: Error): void {
    const call = this.#calls.get(rid)
    if (call === undefined) return
    this.#calls.delete(rid)
    clearTimeout(call.timer)
    call.reject(err)
  }

  #sender(key: string): PartitionSender {
    const p = partitionOf(key, this.hub.meta.partitions)
    let sender = this.#senders.get(p)
    if (sender === undefined) {
      sender = new PartitionSender(this, p)
      this.#senders.set(p, sender)
    }
    return sender
  }

  /** Publishes one envelope to partition p, retrying until the deadline. */
  async publishEnvelope(p: number, q: number, bytes: Uint8Array): Promise<void> {
    const seq = await retryWithBackoff(
      async () => {
        // never by the partition count of a hub deleted and created since (see hub-guard.ts)
        const ready = this.#guard.ready()
        if (ready !== undefined) await ready
        this.publishes++
        try {
          return await this.#js.publish(this.hub.names.mailbox(p), bytes, { msgID: `${this.id}.${p}.${q}` })
        } catch (err) {
          // no stream takes the subject: a cluster electing a leader (retry), or the hub deleted
          throw (isNoResponders(err) ? await this.#hubGone() : undefined) ?? err
        }
      },
      {
        firstDelayMs: 20,
        maxDelayMs: 1000,
        deadline: Date.now() + this.options.publishDeadlineMs,
        // a full store stays full until an operator acts, a deleted hub stays deleted: say so at once
        retryable: (err) => !this.nc.isClosed() && !isStorageFull(err) && !(err instanceof HubNotFoundError),
      },
    ).catch((err: unknown) => {
      if (isStorageFull(err))
        throw new StorageFullError(`a message to partition ${p} was not stored: ${STORAGE_FULL_HINT}`)
      throw err
    })
    if (seq > (this.#lastSeq.get(p) ?? 0)) this.#lastSeq.set(p, seq)
  }

  /**
   * The error to give when the hub this client opened is gone — deleted (`basalt hub delete`), or
   * deleted and created again — else undefined (also when NATS cannot tell). Asked when a publish
   * or a query finds nothing listening (a hub found gone is read again a second later: a cluster
   * recovering from a restart must not pass for a deletion); at most one check a second, shared.
   */
  #hubGone(): Promise<HubNotFoundError | undefined> {
    const now = Date.now()
    if (this.#hubCheck !== undefined && now - this.#hubCheck.at < 1000) return this.#hubCheck.gone
    const gone = hubNow(this.hub).then(
      ({ fate, now }) =>
        fate === 'same'
          ? undefined
          : fate === 'deleted'
            ? deletedError(this.hub.names.hub)
            : this.#guard.found(now!),
      () => undefined,
    )
    this.#hubCheck = { at: now, gone }
    return gone
  }

  /** Largest message the server accepts. */
  get maxPayload(): number {
    return this.#maxPayload
  }

  /** Stores a message's large values by reference (blobs first); rejects over the ceiling. */
  offload(msg: ActorMessage): Promise<void> {
    return offloadMessage(this.blobs, msg)
  }

  #onReplies(data: Uint8Array): void {
    let env: ReplyEnvelope
    try {
      env = decodeEnvelope(data, 'reply') as unknown as ReplyEnvelope
    } catch {
      return
    }
    this.#settle(env.r)
  }

  #settle(replies: Reply[]): void {
    for (const reply of replies) {
      const call = this.#calls.get(reply[0])
      if (call === undefined) continue // a re-sent reply, or one whose call timed out
      this.#calls.delete(reply[0])
      clearTimeout(call.timer)
      if (reply[1] === 1) {
        try {
          const value = decode(reply[2], 'call result')
          if (isUnloaded(value)) this.blobs.load(value).then(call.resolve, call.reject)
          else call.resolve(value)
        } catch (err) {
          call.reject(err as CodecError)
        }
      } else {
        const err = fromErrorInfo(reply[2])
        // a partition of a hub created since this client connected refused it: read the record
        if (err instanceof HubNotFoundError) this.#guard.check()
        call.reject(err)
      }
    }
  }

  #markServed(rids: number[], unserved: boolean): void {
    for (const rid of rids) {
      const call = this.#calls.get(rid)
      if (call !== undefined) call.unserved = unserved
    }
  }

  #armReask(): void {
    if (this.#reaskTimer !== undefined || this.#closed) return
    this.#reaskTimer = setTimeout(() => {
      this.#reaskTimer = undefined
      void this.#reask(this.options.reaskMs)
    }, this.options.reaskMs)
    this.#reaskTimer.unref()
  }

  /**
   * Asks again for the replies of calls waiting at least `minAge` ms. Replies leave a partition
   * over core NATS once committed; one sent while this client was reconnecting is gone, and the
   * partition keeps what it sent lately to answer this.
   */
  async #reask(minAge: number): Promise<void> {
    const now = Date.now()
    const byPartition = new Map<number, number[]>()
    for (const [rid, call] of this.#calls) {
      if (now - call.at < minAge) continue
      let rids = byPartition.get(call.p)
      if (rids === undefined) byPartition.set(call.p, (rids = []))
      if (rids.length < 4096) rids.push(rid)
    }
    await Promise.all(
      [...byPartition].map(async ([p, rids]) => {
        try {
          const query: Query = { v: WIRE_VERSION, k: 'replies', inbox: this.#inbox, rids }
          const answer = await this.query(p, query, this.options.reaskMs)
          this.#markServed(rids, false)
          if ('replies' in answer) {
            const held = new Map(answer.held ?? [])
            for (const rid of rids) {
              const call = this.#calls.get(rid)
              if (call !== undefined) call.held = held.get(rid)
            }
            this.#settle(answer.replies)
          }
        } catch (err) {
          // no owner now, or no answer: the next round asks again
          if (err instanceof PartitionUnavailableError && /no node served/.test(err.message))
            this.#markServed(rids, true)
        }
      }),
    )
    if (this.#calls.size > 0) this.#armReask()
  }

  /**
   * Asks partition p's owner. While no node serves p (a move or take-over in progress, or no node
   * up yet) the query is retried with backoff until `timeoutMs` has passed; queries only read.
   * The answer sees this client's earlier publishes to p (read-your-writes) unless `now` is set:
   * then it is answered at once with what the partition has processed so far.
   */
  async query(
    p: number,
    query: Query,
    timeoutMs = this.options.queryTimeoutMs,
    now = false,
  ): Promise<Exclude<QueryAnswer, { ok: 0 }>> {
    const refused = this.#refused(() => queryName(query, p))
    if (refused !== undefined) throw refused
    const seq = now ? undefined : this.#lastSeq.get(p)
    if (seq !== undefined) query.s = seq
    const bytes = encode(query)
    const deadline = Date.now() + timeoutMs
    let answer: QueryAnswer
    try {
      answer = await retryWithBackoff(
        async () => {
          // never by the partition count of a hub deleted and created since (see hub-guard.ts)
          const ready = this.#guard.ready()
          if (ready !== undefined) await ready
          const left = deadline - Date.now()
          // the lean path shares one reply subscription; it has one timeout for all requests
          const msg = await (
            left >= this.#js.timeoutMs
              ? this.#js.request(this.hub.names.query(p), bytes)
              : this.nc.request(this.hub.names.query(p), bytes, { timeout: Math.max(left, 1) })
          ).catch(async (err: unknown) => {
            // no node serves p: a move under way, no node up, or the hub deleted
            throw (isNoResponders(err) ? await this.#hubGone() : undefined) ?? err
          })
          const answer = decodeEnvelope(msg.data, 'query answer') as unknown as QueryAnswer
          // the owner stopped before it could answer (a move, a restart): ask the next one
          if (answer.ok === 0 && answer.again === 1) throw new AskAgain(fromErrorInfo(answer.error))
          return answer
        },
        {
          firstDelayMs: 25,
          maxDelayMs: 500,
          deadline,
          // a query only reads: one whose answer was lost with the connection is asked again
          retryable: (err) =>
            (err instanceof AskAgain || isNoResponders(err) || isConnectionLost(err)) && !this.nc.isClosed(),
        },
      )
    } catch (err) {
      // cut off by close(): NATS's own error (a closed connection) would not say why
      if (this.#closed) throw new ClientClosedError(queryName(query, p), true, { cause: err })
      if (err instanceof AskAgain) throw err.refusal
      if (err instanceof HubNotFoundError) throw err
      if (isNoResponders(err))
        throw new PartitionUnavailableError(
          p,
          `no node served it for ${timeoutMs} ms (is a node running on this hub?)`,
        )
      if (/timeout|no answer/i.test(String((err as Error).message ?? err)))
        throw new PartitionUnavailableError(p, `its owner did not answer in time`)
      throw err
    }
    if (answer.ok === 0) {
      // a read waiting for a position this client reached in the mailbox of a hub that was deleted
      // and created again (the new mailbox is shorter): say that, not the protocol error
      if (seq !== undefined && PAST_END.test(answer.error.message)) {
        const gone = await this.#hubGone()
        if (gone !== undefined) throw gone
      }
      throw fromErrorInfo(answer.error)
    }
    return answer
  }
}

/** A query in errors: `a 'status' query to partition 3`. */
function queryName(query: Query, p: number): string {
  return `a '${query.k}' query to partition ${p}`
}

/** The message of a query answered for waiting past the end of its partition's mailbox. */
const PAST_END = /^query waits for mailbox position \d+, but the mailbox of partition \d+ ends at/

/** The message of a request's {@link TimeoutError}, from what is known of the call (undefined: nothing). */
export type TimeoutMessage = (call: PendingCall | undefined) => string

/**
 * What a timed-out call's error adds: whether its message was stored (it then still takes effect:
 * a timeout does not cancel it) and whether a node served its partition when last asked.
 */
export function afterTimeout(
  call: Pick<PendingCall, 'p' | 'stored' | 'unserved' | 'held'> | undefined,
): string {
  if (call === undefined) return ''
  if (call.stored !== true)
    // the publish may have been stored with its acknowledgement lost (a server restart): retry a
    // start with the same instance id, which refuses a second one
    return '; whether the request was stored is unknown (no acknowledgement arrived): it may still take effect'
  const owner = ownerNote(call)
  if (call.held !== undefined)
    return `${owner}: the request is stored and takes effect once a node that runs it serves the partition`
  if (call.unserved === true) return `${owner}: the request is stored and takes effect once it is served`
  return '; the request is stored and may still take effect (a timeout does not cancel it)'
}

/**
 * Why a node did not answer, as far as the client knows: the partition had no owner when last
 * asked, or its owner does not run the type (`''`: neither). For requests that change nothing
 * (a wait) as for calls.
 */
export function ownerNote(call: Pick<PendingCall, 'p' | 'unserved' | 'held'> | undefined): string {
  if (call?.held !== undefined)
    return `; partition ${call.p}'s owner does not run ${describeTypeName(call.held)} (another node of the hub registers it)`
  if (call?.unserved === true)
    return (
      `; partition ${call.p} had no owner when last asked (no node running on this hub, or its owner ` +
      `restarting it after a failure)`
    )
  return ''
}

/** A partition's owner stopped before it answered a query: the query is asked again. */
class AskAgain extends Error {
  constructor(readonly refusal: Error) {
    super(refusal.message)
  }
}

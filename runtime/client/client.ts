/**
 * The client: typed entity proxies (signal, call, scheduled signal), state reads, listing and
 * watch streams, and the orchestration API. Signals to one partition issued within the same tick
 * travel as one JetStream message; each caller's promise resolves when JetStream has stored its
 * message (durable), and calls resolve with the operation's result once the partition has
 * committed it. How messages, calls and queries travel is in transport.ts (its outgoing batching
 * in sender.ts), the entity proxies in handles.ts, watch streams in watch.ts.
 */
import { Observable } from 'rxjs'
import {
  BadInputError,
  CodecError,
  TimeoutError,
  checkKey,
  checkTypeName,
  partitionOf,
} from '../../actors/index.ts'
import type {
  EventDefinition,
  HistoryEvent,
  OrchestrationDefinition,
} from '../../actors/orchestration/index.ts'
import { randomUUID } from 'node:crypto'
import {
  isTerminal,
  summaryOf,
  type InstanceRecord,
  type InstanceSummary,
  type InstanceView,
} from '../instances/index.ts'
import {
  WIRE_VERSION,
  type ActorMessage,
  type ControlMessage,
  type ReplyTo,
  type StartMessage,
  type EntityOp,
  type Query,
  type QueryAnswer,
} from '../../actors/wire/index.ts'
import {
  entityTypeName,
  operationTable,
  toTime,
  type EntityClass,
  type StateOf,
  type Entity,
} from '../../entities/index.ts'
import {
  decode,
  encode,
  openHub,
  type Hub,
  closeConnection,
  connectTo,
  pickConnection,
  type ConnectionOptions,
  createInbox,
  type NatsConnection,
  BlobStore,
  checkedBlobLimits,
  type BlobLimits,
  isUnloaded,
  itemKey as itemKeys,
} from '../nats/index.ts'
import { Handle, type EntityHandle } from './handles.ts'
import { CallTransport } from './transport.ts'
import { isMissingBlob, loadSummary, loadView, offloadMessage, readAgainIfMissing } from './blobs.ts'
import { watchItem } from './watch.ts'
import {
  decodeContinuation,
  encodeContinuation,
  fromSummary,
  toStatus,
  type InstanceStatus,
} from './status.ts'
import type {
  InstanceFilter,
  InstanceId,
  InstancePage,
  InstanceQuery,
  StartOptions,
  StatusOptions,
  WaitOptions,
} from './options.ts'

/**
 * Options of {@link Client.connect}: where NATS is and how to log in there (`servers`,
 * credentials, TLS: see {@link ConnectionOptions}), the hub, and timeouts.
 */
export interface ClientOptions extends ConnectionOptions {
  /** Hub name; the hub must exist (a node created it). */
  hub: string
  /** How long a call waits for its result, in ms (default 30,000). */
  callTimeoutMs?: number
  /** How long reads and list pages wait for the partition owner, in ms (default 10,000). */
  queryTimeoutMs?: number
  /** How long publishing keeps retrying before a signal is reported failed, in ms (default 30,000). */
  publishDeadlineMs?: number
  /**
   * A call still waiting after this many ms asks its partition again for the reply, which core
   * NATS may have dropped while this client reconnected (default 2,000). Right after a reconnect
   * every waiting call asks.
   */
  reaskMs?: number
  /**
   * A message that does not fit in one JetStream message has its values over this many encoded
   * bytes stored by reference first (default 32 kB).
   */
  blobThresholdBytes?: number
  /** Largest value sent by reference, in encoded bytes (default 64 MB); above: `PayloadTooLargeError`. */
  maxValueBytes?: number
}

/** What {@link Client.readEntityState} returns. */
export interface EntityState<S> {
  exists: boolean
  /** The committed state, or undefined when the entity does not exist. */
  state: S | undefined
}

/** A page of {@link Client.listEntities}. */
export interface EntityPage {
  keys: string[]
  /** Pass back to get the next page; absent on the last page. */
  continuation?: string
}

/** A connection to a hub. */
export class Client {
  /** How messages, calls and queries travel (see transport.ts). */
  readonly #transport: CallTransport
  /** Outcomes that came with start replies, until a waitForCompletion takes them. */
  readonly #ended = new Map<string, InstanceView>()
  /** Catch-up reads of the active watches, run after a reconnect. */
  readonly #watches = new Set<() => void>()
  /** @internal Large values by reference (runtime/nats/blobs.ts). */
  readonly blobs: BlobStore

  private constructor(
    /** @internal */ readonly nc: NatsConnection,
    /** @internal */ readonly hub: Hub,
    /** @internal */ readonly id: string,
    /** @internal */ readonly options: Required<
      Omit<ClientOptions, keyof ConnectionOptions | 'hub' | 'blobThresholdBytes' | 'maxValueBytes'>
    >,
    limits: BlobLimits,
  ) {
    this.blobs = new BlobStore(nc, hub.jsm, hub.names, limits)
    this.#transport = new CallTransport(nc, hub, id, options, this.blobs)
    void this.#watchReconnects()
  }

  /**
   * Connects to a hub. Throws `ConnectionError` naming the URL when NATS is unreachable,
   * `AuthorizationError` when the server refuses the credentials, and `HubNotFoundError` when no
   * node has created the hub yet.
   */
  static async connect(options: ClientOptions): Promise<Client> {
    const limits = checkedBlobLimits(options)
    const nc = await connectTo(pickConnection(options), 'basalt-client')
    try {
      const hub = await openHub(nc, options.hub)
      return new Client(
        nc,
        hub,
        createInbox('c').slice(2),
        {
          callTimeoutMs: options.callTimeoutMs ?? 30_000,
          queryTimeoutMs: options.queryTimeoutMs ?? 10_000,
          publishDeadlineMs: options.publishDeadlineMs ?? 30_000,
          reaskMs: options.reaskMs ?? 2_000,
        },
        limits,
      )
    } catch (err) {
      await nc.close().catch(() => {})
      throw err
    }
  }

  /** Number of partitions of the hub. */
  get partitionCount(): number {
    return this.hub.meta.partitions
  }

  /**
   * Typed handle to entity `key` of class `type`.
   *
   * @example
   * await client.entity(Counter, 'c1').signal.add(5)
   * const n = await client.entity(Counter, 'c1').call.get()
   */
  entity<E extends Entity>(type: EntityClass<E>, key: string): EntityHandle<E> {
    return new Handle<E>(this, operationTable(type), checkKey(key))
  }

  /**
   * Reads the committed state of an entity from its partition's owner. `type` is the class, or
   * its type name (as the command line gives it).
   */
  async readEntityState<E extends Entity>(
    type: EntityClass<E> | string,
    key: string,
  ): Promise<EntityState<StateOf<E>>> {
    const t = typeNameOf(type)
    checkKey(key)
    // a large state is a reference: loaded here (read again if it was replaced meanwhile)
    return readAgainIfMissing(async () => {
      const answer = await this.#readRaw(t, key)
      const state = answer.state === null ? undefined : decode(answer.state, 'entity state')
      return { exists: answer.exists, state: (await this.#value(state)) as StateOf<E> | undefined }
    })
  }

  /**
   * The orchestration instance that holds the lock of an entity (a critical section, see
   * `ctx.lock`), or null when it is not locked. Read like {@link readEntityState}: after the
   * caller's own earlier messages, answered once the partition committed what it saw.
   *
   * @example const holder = await client.getLock(Account, 'alice') // 'a1b2…' or null
   */
  async getLock(type: EntityClass | string, key: string): Promise<string | null> {
    const t = typeNameOf(type)
    const p = partitionOf(checkKey(key), this.partitionCount)
    const answer = await this.#query(p, { v: WIRE_VERSION, k: 'lock', t, key })
    if (!('holder' in answer)) throw new CodecError('unexpected answer to a lock query')
    return answer.holder
  }

  /**
   * Releases the lock of an entity whoever holds it (a management action for a lock whose holder
   * is stuck); operations that waited for it then run. Sent through the entity's mailbox and
   * committed like any change; resolves with the instance that held the lock, or null when the
   * entity was not locked. A holder that still runs keeps going as if it held the lock (its own
   * release later is ignored), so use it when the holder is gone or stuck for good.
   *
   * @example await client.forceUnlock(Account, 'alice') // → the former holder's id, or null
   */
  async forceUnlock(type: EntityClass | string, key: string): Promise<string | null> {
    const t = typeNameOf(type)
    const msg: ActorMessage = { k: 'unlock', t, key: checkKey(key), o: '', f: 1 }
    return (await this.#request(msg, () => `forceUnlock ${t}@${key}`)) as string | null
  }

  /**
   * Lists entity keys of a type, sorted, a page at a time, fanned out over all partitions.
   *
   * @example
   * let page = await client.listEntities({ type: Counter, pageSize: 100 })
   * while (page.continuation) page = await client.listEntities({ type: Counter, continuation: page.continuation })
   */
  async listEntities(query: {
    type: EntityClass | string
    keyPrefix?: string
    pageSize?: number
    continuation?: string
  }): Promise<EntityPage> {
    const t = typeNameOf(query.type)
    const limit = query.pageSize ?? 100
    if (!Number.isInteger(limit) || limit < 1 || limit > 10_000) {
      throw new BadInputError(`pageSize must be an integer in 1..10000 (got ${limit})`)
    }
    const prefix = query.keyPrefix ?? ''
    const after = query.continuation === undefined ? '' : decodeContinuation(query.continuation)
    const pages = await Promise.all(
      Array.from({ length: this.partitionCount }, (_, p) =>
        this.#query(p, { v: WIRE_VERSION, k: 'list', t, prefix, after, limit }),
      ),
    )
    let more = false
    const keys: string[] = []
    for (const page of pages) {
      if (!('keys' in page)) continue
      keys.push(...page.keys)
      more ||= page.more
    }
    keys.sort()
    more ||= keys.length > limit
    const pageKeys = keys.slice(0, limit)
    const last = pageKeys[pageKeys.length - 1]
    return more && last !== undefined
      ? { keys: pageKeys, continuation: encodeContinuation(last) }
      : { keys: pageKeys }
  }

  /**
   * Committed states of an entity as they happen, pushed by its partition (no polling). The first
   * value is the current state; `undefined` means the entity does not exist (or was deleted).
   * `type` is the class, or its type name (as the dashboard gives it).
   */
  watchEntity<E extends Entity>(
    type: EntityClass<E> | string,
    key: string,
  ): Observable<StateOf<E> | undefined> {
    const t = typeNameOf(type)
    checkKey(key)
    const p = partitionOf(key, this.partitionCount)
    const itemKey = itemKeys.entity(p, t, key)
    return watchItem(
      this.nc,
      this.hub.names.changes(p),
      this.#watches,
      itemKey,
      async () => {
        const answer = await this.#readRaw(t, key, true)
        return { n: answer.n, value: answer.state }
      },
      (bytes) => (bytes === null ? undefined : (this.#value(decode(bytes, 'entity state')) as StateOf<E>)),
    )
  }

  /** Closes the connection; pending calls fail with `IllegalStateError`. */
  async close(): Promise<void> {
    if (this.#transport.closed) return
    await this.#transport.close()
    await closeConnection(this.nc)
  }

  // ---------------------------------------------------------------------------------------------

  /** @internal Stores a message's large values by reference (see client-blobs.ts). */
  offload(msg: ActorMessage): Promise<void> {
    return offloadMessage(this.blobs, msg)
  }

  /**
   * A value as user code sees it: a reference's value loaded from the blob stream (a promise only
   * then), else the value itself.
   */
  #value(value: unknown): unknown {
    return isUnloaded(value) ? this.blobs.load(value) : value
  }

  /** @internal Sends any actor message one-way (activity workers return results this way). */
  sendMessage(msg: ActorMessage): Promise<void> {
    return this.#transport.send(msg)
  }

  /** @internal */
  signalOp(msg: EntityOp): Promise<void> {
    return this.#transport.signal(msg)
  }

  /** @internal */
  callOp(msg: EntityOp): Promise<unknown> {
    return this.#request(msg, () => `call ${msg.t}@${msg.key}.${msg.op}`)
  }

  /** @internal A call's message could not be sent. */
  failCall(rid: number, err: Error): void {
    this.#transport.failCall(rid, err)
  }

  /** @internal Publishes one envelope to partition p, retrying until the deadline. */
  publishEnvelope(p: number, q: number, bytes: Uint8Array): Promise<void> {
    return this.#transport.publishEnvelope(p, q, bytes)
  }

  /** @internal Largest message the server accepts. */
  get maxPayload(): number {
    return this.#transport.maxPayload
  }

  /** JetStream publishes made (for benchmarks: signals per publish). */
  get publishes(): number {
    return this.#transport.publishes
  }

  /** Sends a message that expects a reply after the partition committed it. */
  #request(msg: ActorMessage & { r?: ReplyTo }, what: () => string, timeoutMs?: number): Promise<unknown> {
    return this.#transport.request(msg, what, timeoutMs)
  }

  /** Asks partition p's owner (see {@link CallTransport.query}). */
  #query(p: number, query: Query, timeoutMs?: number): Promise<Exclude<QueryAnswer, { ok: 0 }>> {
    return this.#transport.query(p, query, timeoutMs)
  }

  /**
   * After a reconnect, every waiting call asks again (its reply may have been dropped meanwhile)
   * and every watch reads its item again.
   */
  async #watchReconnects(): Promise<void> {
    for await (const status of this.nc.status()) {
      if (status.type !== 'reconnect' || this.#transport.closed) continue
      setTimeout(() => {
        this.#transport.reaskAll()
        for (const refresh of this.#watches) refresh()
      }, 250).unref()
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Orchestrations

  /**
   * Starts an orchestration instance; resolves with its id once the start is committed. An id
   * that exists is rejected with `InstanceExistsError`, unless the instance is in a terminal state
   * and `replace` is set. `startAt` schedules the start (status Pending until then). The id
   * carries the orchestration's output type, so `waitForCompletion(id)` needs no type argument.
   *
   * @example const id = await client.start(helloSequence, ['Tokyo', 'Seattle'])
   */
  async start<I, O>(
    def: OrchestrationDefinition<I, O>,
    input: I,
    options: StartOptions = {},
  ): Promise<InstanceId<O>> {
    return (await this.startByName(def.name, input, options)) as InstanceId<O>
  }

  /**
   * @internal {@link start} by the orchestration's registered name, for callers that have no
   * definition at hand (the command line). An unknown name fails the instance on the node.
   */
  async startByName(
    name: string,
    input: unknown,
    options: { instanceId?: string; startAt?: Date | number; replace?: boolean } = {},
  ): Promise<string> {
    const id = options.instanceId ?? randomUUID()
    checkKey(id)
    const msg: StartMessage = { k: 'start', i: id, n: name, in: input }
    if (options.instanceId === undefined) msg.fresh = 1
    if (options.replace) msg.replace = true
    if (options.startAt !== undefined) msg.at = toTime(options.startAt)
    this.#ended.delete(id)
    const answer = await this.#request(msg, () => `start of ${name} '${id}'`)
    // an instance that ended in the round that started it comes back with its outcome
    if (Array.isArray(answer)) this.#remember(id, answer[1] as InstanceView)
    return id
  }

  /** Keeps the outcome of an instance this client started, for its next waitForCompletion. */
  #remember(id: string, view: InstanceView): void {
    if (this.#ended.size >= 10_000) this.#ended.delete(this.#ended.keys().next().value!)
    this.#ended.set(id, view)
  }

  /**
   * Raises an external event, named by an {@link externalEvent} definition (its payload type
   * checked) or by a plain name; fails with `BadInputError` when the instance does not exist or
   * ended. @example await client.raiseEvent(id, approval, { by: 'ana' })
   */
  async raiseEvent<T>(instanceId: string, event: EventDefinition<T>, data: T): Promise<void>
  async raiseEvent(instanceId: string, name: string, data?: unknown): Promise<void>
  async raiseEvent(
    instanceId: string,
    event: string | EventDefinition<unknown>,
    data?: unknown,
  ): Promise<void> {
    const name = typeof event === 'object' && event !== null ? event.name : event
    await this.#request({ k: 'ev', i: checkKey(instanceId), n: name, d: data }, () => `raiseEvent '${name}'`)
  }

  /** Terminates a running instance. */
  async terminate(instanceId: string, reason?: string): Promise<void> {
    const msg: ControlMessage = { k: 'ctl', i: checkKey(instanceId), op: 'terminate' }
    if (reason !== undefined) msg.reason = reason
    await this.#request(msg, () => `terminate '${instanceId}'`)
  }

  /** Suspends a running instance: events are held until {@link resume}. */
  async suspend(instanceId: string): Promise<void> {
    await this.#request({ k: 'ctl', i: checkKey(instanceId), op: 'suspend' }, () => `suspend '${instanceId}'`)
  }

  /** Resumes a suspended instance. */
  async resume(instanceId: string): Promise<void> {
    await this.#request({ k: 'ctl', i: checkKey(instanceId), op: 'resume' }, () => `resume '${instanceId}'`)
  }

  /** Removes a finished instance and its history. */
  async purge(instanceId: string): Promise<void> {
    this.#ended.delete(instanceId)
    await this.#request({ k: 'ctl', i: checkKey(instanceId), op: 'purge' }, () => `purge '${instanceId}'`)
  }

  /** Purges every finished instance matching the filter; resolves with how many. */
  async purgeInstances(filter: InstanceFilter): Promise<number> {
    let purged = 0
    let page = await this.listInstances({ ...filter, pageSize: 500 })
    for (;;) {
      const done = page.instances.filter((i) => isTerminal(i.status))
      await Promise.all(done.map((i) => this.purge(i.id)))
      purged += done.length
      if (page.continuation === undefined) return purged
      page = await this.listInstances({ ...filter, pageSize: 500, continuation: page.continuation })
    }
  }

  /** Status of an instance (undefined when it does not exist); `history` includes the events. */
  async getStatus<O = unknown>(
    instanceId: InstanceId<O> | string,
    options: StatusOptions = {},
  ): Promise<InstanceStatus<O> | undefined> {
    const p = partitionOf(checkKey(instanceId), this.partitionCount)
    return readAgainIfMissing(async () => {
      const answer = await this.#query(p, {
        v: WIRE_VERSION,
        k: 'status',
        i: instanceId,
        history: options.history === true,
      })
      if (!('instance' in answer) || answer.instance === null) return undefined
      const view = decode(answer.instance, 'instance') as InstanceView
      await loadView(this.blobs, view)
      return toStatus<O>(view, options.history === true)
    })
  }

  /** The history of an instance. */
  async getHistory(instanceId: string): Promise<HistoryEvent[]> {
    const status = await this.getStatus(instanceId, { history: true })
    if (status === undefined) throw new BadInputError(`instance '${instanceId}' does not exist`)
    return status.history ?? []
  }

  /**
   * Waits (server side, no polling) until the instance reaches Completed, Failed or Terminated.
   * Throws `TimeoutError` after `timeoutMs` (default 60 s) and `BadInputError` for unknown ids.
   * The output is typed by the id `start` returned; for a plain string id, a type argument says
   * what to expect (unchecked). @example const { output } = await client.waitForCompletion(id)
   */
  async waitForCompletion<O = unknown>(
    instanceId: InstanceId<O> | string,
    options: WaitOptions = {},
  ): Promise<InstanceStatus<O>> {
    const deadline = Date.now() + (options.timeoutMs ?? 60_000)
    checkKey(instanceId)
    const ended = this.#ended.get(instanceId)
    if (ended !== undefined) {
      this.#ended.delete(instanceId)
      await loadView(this.blobs, ended)
      return toStatus<O>(ended, false)
    }
    for (;;) {
      const left = deadline - Date.now()
      if (left <= 0)
        throw new TimeoutError(
          `instance '${instanceId}' did not complete in ${options.timeoutMs ?? 60_000} ms`,
        )
      // The wait travels in the mailbox like any message (batched with others to the partition)
      // and is answered after a commit; the owner holds it at most `ms`, then answers 'not yet'.
      const ms = Math.min(left, 5_000)
      let answer: unknown
      try {
        answer = await this.#request(
          { k: 'wait', i: instanceId, ms },
          () => `wait for instance '${instanceId}'`,
          ms + this.options.queryTimeoutMs,
        )
      } catch (err) {
        // the owner changed and forgot the wait: ask again
        if (err instanceof TimeoutError && Date.now() < deadline) continue
        throw err
      }
      if (answer === 0) continue
      if (answer === null) throw new BadInputError(`instance '${instanceId}' does not exist`)
      const view = answer as InstanceView
      try {
        await loadView(this.blobs, view)
      } catch (err) {
        // purged meanwhile: its status says what is left
        if (!isMissingBlob(err)) throw err
        const status = await this.getStatus<O>(instanceId)
        if (status === undefined) throw new BadInputError(`instance '${instanceId}' does not exist`)
        return status
      }
      return toStatus<O>(view, false)
    }
  }

  /** Lists instances by status, creation time, name and id prefix, a page at a time. */
  async listInstances(query: InstanceQuery = {}): Promise<InstancePage> {
    const { pageSize, continuation, ...filter } = query
    const limit = pageSize ?? 100
    const after = continuation === undefined ? '' : decodeContinuation(continuation)
    const pages = await Promise.all(
      Array.from({ length: this.partitionCount }, (_, p) =>
        this.#query(p, { v: WIRE_VERSION, k: 'instances', f: filter, after, limit }),
      ),
    )
    let more = false
    const all: InstanceSummary[] = []
    for (const page of pages) {
      if (!('summaries' in page)) continue
      for (const [, bytes] of page.summaries) all.push(decode(bytes, 'instance summary') as InstanceSummary)
      more ||= page.more
    }
    // (a large custom status is a reference)
    for (const s of all) if (isUnloaded(s.custom)) await loadSummary(this.blobs, s)
    all.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
    more ||= all.length > limit
    const instances = all.slice(0, limit).map(fromSummary)
    const last = instances[instances.length - 1]
    return more && last !== undefined
      ? { instances, continuation: encodeContinuation(last.id) }
      : { instances }
  }

  /** Status changes of an instance as they commit (pushed; first value is the current status). */
  watchStatus(instanceId: string): Observable<InstanceStatus | undefined> {
    const p = partitionOf(checkKey(instanceId), this.partitionCount)
    return watchItem(
      this.nc,
      this.hub.names.changes(p),
      this.#watches,
      itemKeys.instance(p, instanceId),
      async () => {
        const answer = await this.#query(p, { v: WIRE_VERSION, k: 'status', i: instanceId, w: 1 })
        if (!('instance' in answer)) throw new CodecError('unexpected answer to a status query')
        return { n: answer.n, value: answer.instance }
      },
      (bytes) => {
        if (bytes === null) return undefined
        const s = decode(bytes, 'summary') as InstanceSummary
        return isUnloaded(s.custom) ? loadSummary(this.blobs, s).then(fromSummary) : fromSummary(s)
      },
      // records change with every step; watchers see (and compare) their summaries
      (bytes) => encode(summaryOf(decode(bytes, 'instance') as InstanceRecord)),
    )
  }

  async #readRaw(
    t: string,
    key: string,
    watch = false,
  ): Promise<{ exists: boolean; state: Uint8Array | null; n: number }> {
    const p = partitionOf(key, this.partitionCount)
    const query: Query = { v: WIRE_VERSION, k: 'read', t, key }
    if (watch) query.w = 1
    const answer = await this.#query(p, query)
    if (!('exists' in answer)) throw new CodecError('unexpected answer to a read')
    return answer
  }
}

/** The type name of an entity class, or a type name given as such (checked). */
function typeNameOf(type: EntityClass<any> | string): string {
  return typeof type === 'string' ? checkTypeName(type) : entityTypeName(type)
}

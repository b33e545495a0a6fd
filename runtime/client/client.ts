/**
 * The client: typed entity proxies (signal, call, scheduled signal), state reads, listing and
 * watch streams, and the orchestration API. Signals to one partition issued within the same tick
 * travel as one JetStream message; each caller's promise resolves when JetStream has stored its
 * message (durable), and calls resolve with the operation's result once the partition has
 * committed it. How messages, calls and queries travel is in transport.ts (its outgoing batching
 * in sender.ts), the entity proxies in handles.ts, watch streams in watch.ts.
 */
import { createInbox, type NatsConnection } from '@nats-io/transport-node'
import { Observable } from 'rxjs'
import { BadInputError, CodecError, TimeoutError } from '../../actors/errors.ts'
import { checkKey, partitionOf } from '../../actors/ids.ts'
import type { HistoryEvent, OrchestrationDefinition } from '../../actors/orchestration/index.ts'
import { randomUUID } from 'node:crypto'
import {
  isTerminal,
  summaryOf,
  type InstanceRecord,
  type InstanceSummary,
  type InstanceView,
} from '../instances/instance-model.ts'
import {
  WIRE_VERSION,
  type ActorMessage,
  type ControlMessage,
  type InstanceFilter,
  type ReplyTo,
  type StartMessage,
  type EntityOp,
  type Query,
  type QueryAnswer,
} from '../../actors/wire/messages.ts'
import {
  entityTypeName,
  operationTable,
  toTime,
  type EntityClass,
  type StateOf,
  type Entity,
} from '../../entities/index.ts'
import { decode, encode } from '../nats/codec.ts'
import { openHub, type Hub } from '../nats/hub.ts'
import { closeConnection, connectTo } from '../nats/connect.ts'
import { itemKey as itemKeys } from '../nats/item-keys.ts'
import { Handle, type EntityHandle } from './handles.ts'
import { CallTransport } from './transport.ts'
import { watchItem } from './watch.ts'
import {
  decodeContinuation,
  encodeContinuation,
  fromSummary,
  toStatus,
  type InstanceStatus,
} from './status.ts'

/** Options of {@link Client.connect}. */
export interface ClientOptions {
  /** NATS server URL(s). */
  servers: string | string[]
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

  private constructor(
    readonly nc: NatsConnection,
    readonly hub: Hub,
    readonly id: string,
    readonly options: Required<Omit<ClientOptions, 'servers' | 'hub'>>,
  ) {
    this.#transport = new CallTransport(nc, hub, id, options)
    void this.#watchReconnects()
  }

  /**
   * Connects to a hub. Throws `ConnectionError` naming the URL when NATS is unreachable, and
   * `HubNotFoundError` when no node has created the hub yet.
   */
  static async connect(options: ClientOptions): Promise<Client> {
    const nc = await connectTo(options.servers, 'basalt-client')
    try {
      const hub = await openHub(nc, options.hub)
      return new Client(nc, hub, createInbox('c').slice(2), {
        callTimeoutMs: options.callTimeoutMs ?? 30_000,
        queryTimeoutMs: options.queryTimeoutMs ?? 10_000,
        publishDeadlineMs: options.publishDeadlineMs ?? 30_000,
        reaskMs: options.reaskMs ?? 2_000,
      })
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
  entity<E extends Entity<any>>(type: EntityClass<E>, key: string): EntityHandle<E> {
    return new Handle<E>(this, operationTable(type), checkKey(key))
  }

  /** Reads the committed state of an entity from its partition's owner. */
  async readEntityState<E extends Entity<any>>(
    type: EntityClass<E>,
    key: string,
  ): Promise<EntityState<StateOf<E>>> {
    const answer = await this.#readRaw(entityTypeName(type), checkKey(key))
    return {
      exists: answer.exists,
      state: answer.state === null ? undefined : (decode(answer.state, 'entity state') as StateOf<E>),
    }
  }

  /**
   * The orchestration instance that holds the lock of an entity (a critical section, see
   * `ctx.lock`), or null when it is not locked. Read like {@link readEntityState}: after the
   * caller's own earlier messages, answered once the partition committed what it saw.
   *
   * @example const holder = await client.getLock(Account, 'alice') // 'a1b2…' or null
   */
  async getLock(type: EntityClass<any>, key: string): Promise<string | null> {
    const t = entityTypeName(type)
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
  async forceUnlock(type: EntityClass<any>, key: string): Promise<string | null> {
    const t = entityTypeName(type)
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
    type: EntityClass<any>
    keyPrefix?: string
    pageSize?: number
    continuation?: string
  }): Promise<EntityPage> {
    const t = entityTypeName(query.type)
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
   */
  watchEntity<E extends Entity<any>>(type: EntityClass<E>, key: string): Observable<StateOf<E> | undefined> {
    const t = entityTypeName(type)
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
      (bytes) => (bytes === null ? undefined : (decode(bytes, 'entity state') as StateOf<E>)),
    )
  }

  /** Closes the connection; pending calls fail with `IllegalStateError`. */
  async close(): Promise<void> {
    if (this.#transport.closed) return
    await this.#transport.close()
    await closeConnection(this.nc)
  }

  // ---------------------------------------------------------------------------------------------

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
   * and `replace` is set. `startAt` schedules the start (status Pending until then).
   *
   * @example const id = await client.start(helloSequence, ['Tokyo', 'Seattle'])
   */
  async start<I, O>(
    def: OrchestrationDefinition<I, O>,
    input: I,
    options: { instanceId?: string; startAt?: Date | number; replace?: boolean } = {},
  ): Promise<string> {
    const id = options.instanceId ?? randomUUID()
    checkKey(id)
    const msg: StartMessage = { k: 'start', i: id, n: def.name, in: input }
    if (options.instanceId === undefined) msg.fresh = 1
    if (options.replace) msg.replace = true
    if (options.startAt !== undefined) msg.at = toTime(options.startAt)
    this.#ended.delete(id)
    const answer = await this.#request(msg, () => `start of ${def.name} '${id}'`)
    // an instance that ended in the round that started it comes back with its outcome
    if (Array.isArray(answer)) this.#remember(id, answer[1] as InstanceView)
    return id
  }

  /** Keeps the outcome of an instance this client started, for its next waitForCompletion. */
  #remember(id: string, view: InstanceView): void {
    if (this.#ended.size >= 10_000) this.#ended.delete(this.#ended.keys().next().value!)
    this.#ended.set(id, view)
  }

  /** Raises an external event; fails with `BadInputError` when the instance does not exist or ended. */
  async raiseEvent(instanceId: string, name: string, data?: unknown): Promise<void> {
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
    instanceId: string,
    options: { history?: boolean } = {},
  ): Promise<InstanceStatus<O> | undefined> {
    const p = partitionOf(checkKey(instanceId), this.partitionCount)
    const answer = await this.#query(p, {
      v: WIRE_VERSION,
      k: 'status',
      i: instanceId,
      history: options.history === true,
    })
    if (!('instance' in answer) || answer.instance === null) return undefined
    return toStatus<O>(decode(answer.instance, 'instance') as InstanceRecord, options.history === true)
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
   */
  async waitForCompletion<O = unknown>(
    instanceId: string,
    options: { timeoutMs?: number } = {},
  ): Promise<InstanceStatus<O>> {
    const deadline = Date.now() + (options.timeoutMs ?? 60_000)
    checkKey(instanceId)
    const ended = this.#ended.get(instanceId)
    if (ended !== undefined) {
      this.#ended.delete(instanceId)
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
      return toStatus<O>(answer as InstanceRecord, false)
    }
  }

  /** Lists instances by status, creation time, name and id prefix, a page at a time. */
  async listInstances(
    query: InstanceFilter & { pageSize?: number; continuation?: string } = {},
  ): Promise<{ instances: InstanceStatus[]; continuation?: string }> {
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
      (bytes) => (bytes === null ? undefined : fromSummary(decode(bytes, 'summary') as InstanceSummary)),
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

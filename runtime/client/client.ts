/**
 * The client: typed entity proxies (signal, call, scheduled signal), state reads, listing and
 * watch streams, and the orchestration API. Signals to one partition issued within the same tick
 * travel as one JetStream message; each caller's promise resolves when JetStream has stored its
 * message (durable), and calls resolve with the operation's result once the partition has
 * committed it. How messages, calls and queries travel is in transport.ts (its outgoing batching
 * in sender.ts), the entity proxies in handles.ts, watch streams in watch.ts.
 */
import type { Observable } from 'rxjs'
import {
  BadInputError,
  BasaltError,
  ClientClosedError,
  TimeoutError,
  checkKey,
  describeValue,
} from '../../actors/index.ts'
import type {
  EventDefinition,
  HistoryEvent,
  OrchestrationDefinition,
} from '../../actors/orchestration/index.ts'
import type { ActorMessage, EntityOp } from '../../actors/wire/index.ts'
import { operationTable, type EntityClass, type StateOf, type Entity } from '../../entities/index.ts'
import {
  openHub,
  type Hub,
  checkConnectionOptions,
  closeConnection,
  connectTo,
  pickConnection,
  type ConnectionOptions,
  createInbox,
  type NatsConnection,
  BlobStore,
  checkedBlobLimits,
  type BlobLimits,
  HubNames,
} from '../nats/index.ts'
import { Handle, type EntityHandle } from './handles.ts'
import { CallTransport } from './transport.ts'
import type { ApiCore } from './api-core.ts'
import {
  EntityApi,
  type EntityPage,
  type EntityQuery,
  type EntityState,
  type ScheduledSignal,
} from './entity-api.ts'
import { InstanceApi } from './instance-api.ts'
import { Watches } from './watch.ts'
import { offloadMessage } from './blobs.ts'
import { checkEntityClass, checkTimeout } from './args.ts'
import { keysOf } from '../util/index.ts'
import type { InstanceStatus } from './status.ts'
import { checkTracingOptions, loadTracing, type Tracing, type TracingOptions } from '../metrics/index.ts'
import type {
  InstanceFilter,
  InstanceId,
  InstancePage,
  InstanceQuery,
  StartOptions,
  StatusOptions,
  WaitOptions,
} from './options.ts'

export type { EntityPage, EntityQuery, EntityState, ScheduledSignal } from './entity-api.ts'

/**
 * Options of {@link Client.connect}: where NATS is and how to log in there (`servers`,
 * credentials, TLS: see {@link ConnectionOptions}), the hub, and timeouts (each a positive number
 * of ms, at most 2^31 - 1; else `BadInputError` at connect).
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
  /**
   * OpenTelemetry spans for `start`, signals and calls (default: the global tracer provider's
   * tracer when `@opentelemetry/api` is installed and a provider is registered before connecting;
   * else none, at no cost). See docs/OPERATIONS.md, "Tracing".
   */
  tracing?: TracingOptions
}

/** The keys of {@link ClientOptions} beside the connection's (anything else is refused: see checkKnownKeys). */
const CLIENT_OWN_KEYS = keysOf<Omit<ClientOptions, keyof ConnectionOptions>>({
  hub: true,
  callTimeoutMs: true,
  queryTimeoutMs: true,
  publishDeadlineMs: true,
  reaskMs: true,
  blobThresholdBytes: true,
  maxValueBytes: true,
  tracing: true,
})

/** How long a timed-out call looks for the holder of the lock it waited behind, in ms. */
const LOCK_LOOKUP_MS = 1000

/** A connection to a hub. */
export class Client {
  /** How messages, calls and queries travel (see transport.ts). */
  readonly #transport: CallTransport
  /** The entity API beyond the typed handles (entity-api.ts). */
  readonly #entities: EntityApi
  /** The orchestration API (instance-api.ts). */
  readonly #instances: InstanceApi
  /** The open watches: caught up after a reconnect, completed by close(). */
  readonly #watches = new Watches()
  /** @internal Large values by reference (runtime/nats/blobs.ts). */
  readonly blobs: BlobStore

  private constructor(
    /** @internal */ readonly nc: NatsConnection,
    /** @internal */ readonly hub: Hub,
    /** @internal */ readonly id: string,
    /** @internal */ readonly options: Required<
      Omit<
        ClientOptions,
        keyof ConnectionOptions | 'hub' | 'blobThresholdBytes' | 'maxValueBytes' | 'tracing'
      >
    >,
    limits: BlobLimits,
    /** @internal Where this client's spans go (and those of a node's activity workers). */
    readonly tracing: Tracing,
  ) {
    this.blobs = new BlobStore(nc, hub.jsm, hub.names, limits)
    // a hub deleted and created again: the watches of the old one end with the client's refusal
    this.#transport = new CallTransport(nc, hub, id, options, this.blobs, tracing, (refusal) =>
      this.#watches.failAll(refusal),
    )
    const core: ApiCore = {
      nc,
      hub,
      blobs: this.blobs,
      transport: this.#transport,
      watches: this.#watches,
      partitions: hub.meta.partitions,
      queryTimeoutMs: options.queryTimeoutMs,
    }
    this.#entities = new EntityApi(core)
    this.#instances = new InstanceApi(core)
    void this.#watchReconnects()
  }

  /**
   * Connects to a hub. Throws `ConnectionError` naming the URL when NATS is unreachable,
   * `AuthorizationError` when the server refuses the credentials, and `HubNotFoundError` when no
   * node has created the hub yet; `BadInputError` at once for unusable options (a key it does not
   * know, no `servers`, a bad hub name, a timeout that is not a positive number of ms).
   */
  static async connect(options: ClientOptions): Promise<Client> {
    if (options === undefined) {
      // (checkKnownKeys takes no options as none; connect needs at least servers and a hub)
      throw new BadInputError('the options of Client.connect must be an object (got undefined)')
    }
    checkConnectionOptions(options, 'Client.connect', CLIENT_OWN_KEYS)
    checkTracingOptions(options.tracing, 'Client.connect')
    new HubNames(options.hub) // checks the name before connecting
    for (const name of ['callTimeoutMs', 'queryTimeoutMs', 'publishDeadlineMs', 'reaskMs'] as const) {
      if (options[name] !== undefined) checkTimeout(options[name], name)
    }
    const limits = checkedBlobLimits(options)
    const tracing = await loadTracing(options.tracing, options.hub)
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
        tracing,
      )
    } catch (err) {
      await nc.close().catch(() => {})
      throw err
    }
  }

  /** Number of partitions of the hub (as it was when this client connected: it routes by them). */
  get partitionCount(): number {
    return this.hub.meta.partitions
  }

  /**
   * @internal Whether this client found its hub deleted and created again since it connected: it
   * then refuses every call with `HubNotFoundError` (connect again).
   */
  get hubReplaced(): boolean {
    return this.#transport.hubReplaced
  }

  /**
   * Typed handle to entity `key` of class `type`. Throws `BadInputError` at once when `type` is
   * not an entity class (a type name is not enough here: the handle is typed by the class) or
   * `key` is not a non-empty string of at most 1024 bytes. Its operations reject an operation the
   * class lacks (`UnknownOperationError`), and arguments that fail the class's schemas or hold a
   * function or symbol (`BadInputError`, naming the argument), before sending.
   *
   * @example
   * await client.entity(Counter, 'c1').signal.add(5)
   * const n = await client.entity(Counter, 'c1').call.get()
   */
  entity<E extends Entity>(type: EntityClass<E>, key: string): EntityHandle<E> {
    return new Handle<E>(this, operationTable(checkEntityClass(type)), checkKey(key))
  }

  /**
   * Reads the committed state of an entity from its partition's owner. `type` is the class, or
   * its type name (as the command line gives it). `BadInputError` at once for a type that is
   * neither (or a malformed name) and for a bad key; the same holds for {@link getLock},
   * {@link scheduledSignals}, {@link forceUnlock}, {@link listEntities} and {@link watchEntity}.
   * `UnknownEntityError` for a type that no node of the hub registers (a misspelt name, a class
   * never deployed) of which nothing is stored; the same holds for {@link getLock},
   * {@link scheduledSignals}, {@link listEntities} and {@link forceUnlock}.
   */
  async readEntityState<E extends Entity>(
    type: EntityClass<E> | string,
    key: string,
  ): Promise<EntityState<StateOf<E>>> {
    return this.#open(
      () => `readEntityState(${typeArg(type)}, ${arg(key)})`,
      () => this.#entities.readEntityState(type, key),
    )
  }

  /**
   * The orchestration instance that holds the lock of an entity (a critical section, see
   * `ctx.lock`), or null when it is not locked. Read like {@link readEntityState}: after the
   * caller's own earlier messages, answered once the partition committed what it saw.
   *
   * @example const holder = await client.getLock(Account, 'alice') // 'a1b2…' or null
   */
  async getLock(type: EntityClass | string, key: string): Promise<string | null> {
    return this.#open(
      () => `getLock(${typeArg(type)}, ${arg(key)})`,
      () => this.#entities.getLock(type, key),
    )
  }

  /**
   * The signals scheduled for an entity (sent with `signalAt`, or by an entity or orchestration with
   * a delay) that are not yet due, earliest first: due time (ms since the epoch), operation and
   * arguments (a large argument, stored by reference, shows as a placeholder string). Read like
   * {@link readEntityState}; a signal leaves the list once it is delivered. Rejects with
   * UnknownEntityError for a type no node of the hub registers, as {@link readEntityState} does.
   *
   * @example await client.scheduledSignals(Reminder, 'alice') // [{ at: 1764530000000, op: 'ring', args: ['tea'] }]
   */
  async scheduledSignals(type: EntityClass | string, key: string): Promise<ScheduledSignal[]> {
    return this.#open(
      () => `scheduledSignals(${typeArg(type)}, ${arg(key)})`,
      () => this.#entities.scheduledSignals(type, key),
    )
  }

  /**
   * Releases the lock of an entity whoever holds it (a management action for a lock whose holder
   * is stuck); operations that waited for it then run. Sent through the entity's mailbox and
   * committed like any change; resolves with the instance that held the lock, or null when the
   * entity was not locked — `UnknownEntityError` instead when no node of the hub registers the
   * type (a misspelt name), as {@link getLock} does. A holder that still runs keeps going as if it held the lock (its own
   * release later is ignored), so use it when the holder is gone or stuck for good.
   *
   * @example await client.forceUnlock(Account, 'alice') // → the former holder's id, or null
   */
  async forceUnlock(type: EntityClass | string, key: string): Promise<string | null> {
    return this.#open(
      () => `forceUnlock(${typeArg(type)}, ${arg(key)})`,
      () => this.#entities.forceUnlock(type, key),
    )
  }

  /**
   * Lists entity keys of a type, sorted, a page at a time, fanned out over all partitions.
   * `BadInputError` at once for a key the query does not have, a `pageSize` not a whole number in
   * 1..10000, or a `keyPrefix` or `continuation` that is not a string.
   *
   * @example
   * let page = await client.listEntities({ type: Counter, pageSize: 100 })
   * while (page.continuation) page = await client.listEntities({ type: Counter, continuation: page.continuation })
   */
  async listEntities(query: EntityQuery): Promise<EntityPage> {
    return this.#open(
      () => 'listEntities(…)',
      () => this.#entities.listEntities(query),
    )
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
    return this.#entities.watchEntity(type, key)
  }

  /**
   * Closes the connection. Calls still waiting for their result fail with `ClientClosedError` (an
   * `IllegalStateError`, code `CLOSED`), and so does every method called afterwards, naming itself
   * (`client closed: getStatus('o1') after close()`). Open watches (`watchStatus`, `watchEntity`)
   * complete; one subscribed after the close errors with `ClientClosedError`. Closing again does
   * nothing.
   */
  async close(): Promise<void> {
    if (this.#transport.closed) return
    const closing = this.#transport.close()
    this.#watches.endAll()
    await closing
    await closeConnection(this.nc)
  }

  /**
   * Runs a public method's `run`: after close() it rejects with `ClientClosedError` naming the
   * call, and a call that close() cut off rejects with one naming it too, rather than with the
   * connection's own error (NATS's `ClosedConnectionError` says nothing of why) or with the
   * error of the query or message inside it that the close ended (its cause).
   */
  async #open<T>(what: () => string, run: () => Promise<T>): Promise<T> {
    if (this.#transport.closed) throw new ClientClosedError(what())
    try {
      return await run()
    } catch (err) {
      const cutOff = err instanceof ClientClosedError || !(err instanceof BasaltError)
      if (this.#transport.closed && cutOff) throw new ClientClosedError(what(), true, { cause: err })
      throw err
    }
  }

  // ---------------------------------------------------------------------------------------------

  /** @internal Stores a message's large values by reference (see client-blobs.ts). */
  offload(msg: ActorMessage): Promise<void> {
    return offloadMessage(this.blobs, msg)
  }

  /** @internal Sends any actor message one-way (activity workers return results this way). */
  sendMessage(msg: ActorMessage): Promise<void> {
    return this.#transport.send(msg)
  }

  /** @internal */
  signalOp(msg: EntityOp): Promise<void> {
    return this.#transport.signal(msg)
  }

  /**
   * @internal A call's `TimeoutError` names the instance that holds the entity's lock when one
   * does (a call waits behind a critical section, DF semantics): asked once, when it timed out,
   * without waiting behind the call itself, and for at most {@link LOCK_LOOKUP_MS} (the caller
   * asked for its timeout; no node up must not add a query's whole patience to it).
   */
  callOp(msg: EntityOp): Promise<unknown> {
    return this.#transport
      .request(msg, () => `call ${msg.t}@${msg.key}.${msg.op}`)
      .catch(async (err: unknown) => {
        if (!(err instanceof TimeoutError)) throw err
        const holder = await this.#entities
          .getLock(msg.t, msg.key, { timeoutMs: LOCK_LOOKUP_MS })
          .catch(() => null)
        if (holder === null) throw err
        throw new TimeoutError(
          `${err.message}. ${msg.t}@${msg.key} is locked by instance '${holder}' (calls wait until its critical section ends; basalt entity unlock releases a stuck lock)`,
        )
      })
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

  /**
   * After a reconnect, the hub record is read once (hub-guard.ts), every waiting call asks again
   * (its reply may have been dropped meanwhile) and every watch reads its item again.
   */
  async #watchReconnects(): Promise<void> {
    for await (const status of this.nc.status()) {
      if (status.type !== 'reconnect' || this.#transport.closed) continue
      this.#transport.reconnected()
      setTimeout(() => {
        this.#transport.reaskAll()
        this.#watches.refreshAll()
      }, 250).unref()
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Orchestrations

  /**
   * Starts an orchestration instance; resolves with its id once the start is committed. The
   * orchestration is its definition (input and output typed) or its registered name (as the
   * command line gives it; input unchecked, output `unknown` unless a type argument says). An id
   * that exists is rejected with `InstanceExistsError`, unless the instance is in a terminal state
   * and `replace` is set. `startAt` schedules the start (status Pending until then). The id
   * carries the orchestration's output type, so `waitForCompletion(id)` needs no type argument.
   *
   * Fails at once, before sending, with `BadInputError` naming the argument: an orchestration that
   * is neither a definition nor a non-empty name, an option it does not know, a bad `instanceId`
   * (not a non-empty string of at most 1024 bytes), `startAt` or `replace`, or an input holding a
   * function or symbol. A name the node has
   * not registered is rejected by the node, also with `BadInputError` (`unknown orchestration`).
   *
   * @example const id = await client.start(helloSequence, ['Tokyo', 'Seattle'])
   * @example const id = await client.start('helloSequence', ['Tokyo'], { instanceId: 'h1' })
   */
  async start<I, O>(
    def: OrchestrationDefinition<I, O>,
    input: I,
    options?: StartOptions,
  ): Promise<InstanceId<O>>
  async start<O = unknown>(name: string, input?: unknown, options?: StartOptions): Promise<InstanceId<O>>
  async start(
    def: OrchestrationDefinition<unknown, unknown> | string,
    input?: unknown,
    options?: StartOptions,
  ): Promise<InstanceId> {
    return this.#open(
      () =>
        `start(${typeof def === 'string' ? arg(def) : String((def as { name?: unknown } | null)?.name)}, …)`,
      () => this.#instances.start(def, input, options),
    )
  }

  /** @internal {@link start} by the orchestration's registered name (kept for the command line). */
  async startByName(name: string, input: unknown, options?: StartOptions): Promise<string> {
    return this.#open(
      () => `start(${arg(name)}, …)`,
      () => this.#instances.start(name, input, options),
    )
  }

  /**
   * Raises an external event, named by an {@link externalEvent} definition (its payload type
   * checked) or by a plain name; fails with `BadInputError` when the instance does not exist or
   * ended, and at once, before sending, when the instance id or the event name is not a non-empty
   * string or the data holds a function or symbol. @example await client.raiseEvent(id, approval, { by: 'ana' })
   */
  async raiseEvent<T>(instanceId: string, event: EventDefinition<T>, data: T): Promise<void>
  async raiseEvent(instanceId: string, name: string, data?: unknown): Promise<void>
  async raiseEvent(
    instanceId: string,
    event: string | EventDefinition<unknown>,
    data?: unknown,
  ): Promise<void> {
    return this.#open(
      () => `raiseEvent(${arg(instanceId)}, …)`,
      () => this.#instances.raiseEvent(instanceId, event, data),
    )
  }

  /**
   * Terminates a running instance. `BadInputError` at once for an id that is not a non-empty
   * string or a reason that is not a string.
   */
  async terminate(instanceId: string, reason?: string): Promise<void> {
    return this.#open(
      () => `terminate(${arg(instanceId)})`,
      () => this.#instances.terminate(instanceId, reason),
    )
  }

  /** Suspends a running instance: events are held until {@link resume}. Ids checked as {@link terminate}. */
  async suspend(instanceId: string): Promise<void> {
    return this.#open(
      () => `suspend(${arg(instanceId)})`,
      () => this.#instances.suspend(instanceId),
    )
  }

  /** Resumes a suspended instance. Ids checked as {@link terminate}. */
  async resume(instanceId: string): Promise<void> {
    return this.#open(
      () => `resume(${arg(instanceId)})`,
      () => this.#instances.resume(instanceId),
    )
  }

  /** Removes a finished instance and its history. Ids checked as {@link terminate}. */
  async purge(instanceId: string): Promise<void> {
    return this.#open(
      () => `purge(${arg(instanceId)})`,
      () => this.#instances.purge(instanceId),
    )
  }

  /**
   * Purges every finished instance matching the filter; resolves with how many. A bad filter is
   * rejected at once as in {@link listInstances}, and so is a key it does not have (`status` for
   * `statuses`, a `pageSize`): nothing is purged then.
   */
  async purgeInstances(filter: InstanceFilter): Promise<number> {
    return this.#open(
      () => 'purgeInstances(…)',
      () => this.#instances.purgeInstances(filter),
    )
  }

  /**
   * Status of an instance (undefined when it does not exist); `history` includes the events.
   * `BadInputError` at once for an id that is not a non-empty string, an option it does not know,
   * or a `history` that is not a boolean.
   */
  async getStatus<O = unknown>(
    instanceId: InstanceId<O> | string,
    options: StatusOptions = {},
  ): Promise<InstanceStatus<O> | undefined> {
    return this.#open(
      () => `getStatus(${arg(instanceId)})`,
      () => this.#instances.getStatus<O>(instanceId, options),
    )
  }

  /** The history of an instance; `BadInputError` for a bad or unknown id. */
  async getHistory(instanceId: string): Promise<HistoryEvent[]> {
    return this.#open(
      () => `getHistory(${arg(instanceId)})`,
      () => this.#instances.getHistory(instanceId),
    )
  }

  /**
   * Waits (server side, no polling) until the instance reaches Completed, Failed or Terminated.
   * Throws `TimeoutError` after `timeoutMs` (default 60 s) and `BadInputError` for unknown ids,
   * and at once for a bad id, an option it does not know or a `timeoutMs` that is not a positive
   * number of ms.
   * The output is typed by the id `start` returned; for a plain string id, a type argument says
   * what to expect (unchecked). @example const { output } = await client.waitForCompletion(id)
   */
  async waitForCompletion<O = unknown>(
    instanceId: InstanceId<O> | string,
    options: WaitOptions = {},
  ): Promise<InstanceStatus<O>> {
    return this.#open(
      () => `waitForCompletion(${arg(instanceId)})`,
      () => this.#instances.waitForCompletion<O>(instanceId, options),
    )
  }

  /**
   * Lists instances by status, creation time, name and id prefix, a page at a time. Rejects at
   * once with `BadInputError` naming the field: a key the query does not have (naming the keys it
   * has), `pageSize` not a whole number in 1..1000, a status not among `RuntimeStatus`,
   * `createdFrom`/`createdTo` neither a Date nor ms, a prefix or `continuation` that is not a
   * string (or not a token of a previous page).
   */
  async listInstances(query: InstanceQuery = {}): Promise<InstancePage> {
    return this.#open(
      () => 'listInstances(…)',
      () => this.#instances.listInstances(query),
    )
  }

  /**
   * Status changes of an instance as they commit (pushed; first value is the current status).
   * Each value is what {@link getStatus} (without history) answers at that commit: `input`,
   * `output` once Completed, `error` once Failed or Terminated, `customStatus`, the times.
   * `undefined` while no instance has the id (not started yet, or purged): the watch goes on, and
   * an instance started under the id later is followed. Throws `BadInputError` at once for an id
   * that is not a non-empty string.
   */
  watchStatus(instanceId: string): Observable<InstanceStatus | undefined> {
    return this.#instances.watchStatus(instanceId)
  }
}

/** An argument as a call names it in errors: a string quoted, anything else described. */
function arg(value: unknown): string {
  return typeof value === 'string' ? `'${value}'` : describeValue(value)
}

/** An entity type as a call names it in errors: the class's name, or the name given. */
function typeArg(type: unknown): string {
  return typeof type === 'function' ? type.name : arg(type)
}

/**
 * The client's orchestration API: start, events and control messages, status, history, waits for
 * completion, listings and status watches. The public {@link Client} keeps the documented methods
 * and delegates to this helper; messages, calls and queries travel through the call transport
 * (transport.ts). Apart from client.ts so that each file does one job.
 */
import { Observable } from 'rxjs'
import { randomUUID } from 'node:crypto'
import {
  CodecError,
  InstanceNotFoundError,
  TimeoutError,
  checkInstanceId,
  partitionOf,
} from '../../actors/index.ts'
import type {
  EventDefinition,
  HistoryEvent,
  OrchestrationDefinition,
} from '../../actors/orchestration/index.ts'
import { WIRE_VERSION, type ControlMessage, type StartMessage } from '../../actors/wire/index.ts'
import { checkValueNow, toTime } from '../../entities/index.ts'
import {
  isTerminal,
  type InstanceRecord,
  type InstanceSummary,
  type InstanceView,
} from '../instances/index.ts'
import { BlobRef, decode, encode, isUnloaded, itemKey as itemKeys } from '../nats/index.ts'
import { isMissingBlob, loadSummary, loadView, readAgainIfMissing } from './blobs.ts'
import type { ApiCore } from './api-core.ts'
import {
  decodeContinuation,
  encodeContinuation,
  fromSummary,
  statusFieldsOf,
  toStatus,
  type InstanceStatus,
  type StatusFields,
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
import { watchItem } from './watch.ts'
import { ownerNote } from './transport.ts'
import {
  checkInstanceFilter,
  checkInstanceQuery,
  checkTimeout,
  eventName,
  orchestrationName,
} from './args.ts'

/**
 * How long past its deadline a `waitForCompletion` still waits for the answer of an owner that was
 * asked to hold the wait until then (the answer travels after a commit).
 */
const WAIT_GRACE_MS = 500
import { checkKnownKeys, checkOptionalBoolean, checkOptionalString, keysOf } from '../util/index.ts'

/** The keys each options argument takes (anything else is refused: see checkKnownKeys). */
const START_KEYS = keysOf<StartOptions>({ instanceId: true, startAt: true, replace: true })
const STATUS_KEYS = keysOf<StatusOptions>({ history: true })
const WAIT_KEYS = keysOf<WaitOptions>({ timeoutMs: true })

/** The orchestration side of a client (see {@link Client} for what each method promises). */
export class InstanceApi {
  /** Outcomes that came with start replies, until a waitForCompletion takes them. */
  readonly #ended = new Map<string, StatusFields>()

  constructor(readonly core: ApiCore) {}

  /**
   * Starts an orchestration instance, given by its definition or its registered name; resolves
   * with its id once the start is committed.
   */
  async start<I, O>(
    def: OrchestrationDefinition<I, O> | string,
    input: I,
    options?: StartOptions,
  ): Promise<InstanceId<O>> {
    const name = orchestrationName(def)
    const opts = checkKnownKeys(options, 'start', 'options', START_KEYS)
    // (the node checks again, asynchronous schemas too, and runs the instance with the output)
    const schema = typeof def === 'object' ? def.input : undefined
    if (schema !== undefined) checkValueNow(schema, input, `input of orchestration '${name}'`)
    const id = opts.instanceId === undefined ? randomUUID() : checkInstanceId(opts.instanceId)
    // (sl: an outcome answered with the start leaves out the id, name and input sent here)
    const msg: StartMessage = { k: 'start', i: id, n: name, in: input, sl: 1 }
    if (opts.instanceId === undefined) msg.fresh = 1
    if (checkOptionalBoolean(opts.replace, 'replace') === true) msg.replace = true
    if (opts.startAt !== undefined) msg.at = toTime(opts.startAt, 'startAt')
    this.#ended.delete(id)
    const answer = await this.core.transport.request(msg, () => `start of ${name} '${id}'`)
    // an instance that ended in the round that started it comes back with its outcome
    // (an older node sends them too, and the input as stored; so does a node whose schema gave
    // the input the instance runs with)
    if (Array.isArray(answer)) {
      const outcome = answer[1] as Omit<StatusFields, 'id' | 'name' | 'input'> & { input?: unknown }
      this.#remember(id, { id, name, input, ...outcome })
    }
    return id as InstanceId<O>
  }

  /** Keeps the outcome of an instance this client started, for its next waitForCompletion. */
  #remember(id: string, view: StatusFields): void {
    if (this.#ended.size >= 10_000) this.#ended.delete(this.#ended.keys().next().value!)
    this.#ended.set(id, view)
  }

  /** Raises an external event, named by a definition or by a plain name. */
  async raiseEvent(
    instanceId: string,
    event: string | EventDefinition<unknown>,
    data?: unknown,
  ): Promise<void> {
    const i = checkInstanceId(instanceId)
    const name = eventName(event)
    // (a wait through the definition checks again, and gets the schema's output)
    const schema = typeof event === 'object' ? event.schema : undefined
    if (schema !== undefined) checkValueNow(schema, data, `data of event '${name}'`)
    await this.core.transport.request({ k: 'ev', i, n: name, d: data }, () => `raiseEvent '${name}'`)
  }

  /** Terminates a running instance. */
  async terminate(instanceId: string, reason?: string): Promise<void> {
    const msg: ControlMessage = { k: 'ctl', i: checkInstanceId(instanceId), op: 'terminate' }
    if (checkOptionalString(reason, 'the reason of terminate') !== undefined) msg.reason = reason
    await this.core.transport.request(msg, () => `terminate '${instanceId}'`)
  }

  /** Suspends a running instance: events are held until {@link resume}. */
  async suspend(instanceId: string): Promise<void> {
    await this.core.transport.request(
      { k: 'ctl', i: checkInstanceId(instanceId), op: 'suspend' },
      () => `suspend '${instanceId}'`,
    )
  }

  /** Resumes a suspended instance. */
  async resume(instanceId: string): Promise<void> {
    await this.core.transport.request(
      { k: 'ctl', i: checkInstanceId(instanceId), op: 'resume' },
      () => `resume '${instanceId}'`,
    )
  }

  /** Removes a finished instance and its history. */
  async purge(instanceId: string): Promise<void> {
    const i = checkInstanceId(instanceId)
    this.#ended.delete(i)
    await this.core.transport.request({ k: 'ctl', i, op: 'purge' }, () => `purge '${instanceId}'`)
  }

  /**
   * Purges every finished instance matching the filter; resolves with how many this call purged
   * (one purged meanwhile by someone else, or listed a moment after its purge, is passed over).
   */
  async purgeInstances(filter: InstanceFilter): Promise<number> {
    // checked as a filter (the listing below would take a page's keys too), before anything is sent
    checkInstanceFilter(filter)
    let purged = 0
    let page = await this.listInstances({ ...filter, pageSize: 500 })
    for (;;) {
      const done = page.instances.filter((i) => isTerminal(i.status))
      purged += await purgeEach(
        (id) => this.purge(id),
        done.map((i) => i.id),
      )
      if (page.continuation === undefined) return purged
      page = await this.listInstances({ ...filter, pageSize: 500, continuation: page.continuation })
    }
  }

  /** Status of an instance (undefined when it does not exist). */
  async getStatus<O = unknown>(
    instanceId: InstanceId<O> | string,
    options: StatusOptions = {},
  ): Promise<InstanceStatus<O> | undefined> {
    const p = partitionOf(checkInstanceId(instanceId), this.core.partitions)
    const history = checkOptionalBoolean(
      checkKnownKeys(options, 'getStatus', 'options', STATUS_KEYS).history,
      'history',
    )
    return readAgainIfMissing(async () => {
      const view = await this.#view(p, instanceId, history === true)
      if (view === undefined) return undefined
      await loadView(this.core.blobs, view)
      return toStatus<O>(view, history === true)
    })
  }

  /**
   * An instance's view as its partition answers it; with `history`, the whole history, read page
   * by page when it does not fit one answer (read again from the start if the instance continued
   * as new between pages: a page of another execution does not belong).
   */
  async #view(p: number, id: string, history: boolean): Promise<InstanceView | undefined> {
    const ask = async (hf?: number): Promise<InstanceView | undefined> => {
      const answer = await this.core.transport.query(p, {
        v: WIRE_VERSION,
        k: 'status',
        i: id,
        history,
        ...(hf === undefined ? {} : { hf }),
      })
      if (!('instance' in answer) || answer.instance === null) return undefined
      return decode(answer.instance, 'instance') as InstanceView
    }
    for (let attempt = 0; ; attempt++) {
      const first = await ask()
      if (first?.historyNext === undefined) return first
      const events = [...(first.history ?? [])]
      let last = first
      let whole = true
      while (last.historyNext !== undefined) {
        const page = await ask(last.historyNext)
        if (page === undefined || page.hk !== first.hk || page.exec !== first.exec) {
          whole = false // purged, or continued as new: read it again
          break
        }
        events.push(...(page.history ?? []))
        last = page
      }
      if (whole || attempt >= 3) {
        const { historyNext: _, ...view } = last
        return { ...view, history: events }
      }
    }
  }

  /** The history of an instance. */
  async getHistory(instanceId: string): Promise<HistoryEvent[]> {
    const status = await this.getStatus(instanceId, { history: true })
    if (status === undefined) throw new InstanceNotFoundError(`instance '${instanceId}' does not exist`)
    return status.history ?? []
  }

  /** Waits (server side, no polling) until the instance reaches Completed, Failed or Terminated. */
  async waitForCompletion<O = unknown>(
    instanceId: InstanceId<O> | string,
    options: WaitOptions = {},
  ): Promise<InstanceStatus<O>> {
    checkInstanceId(instanceId)
    const { timeoutMs: given = 60_000 } = checkKnownKeys(options, 'waitForCompletion', 'options', WAIT_KEYS)
    const timeoutMs = checkTimeout(given, 'timeoutMs')
    const deadline = Date.now() + timeoutMs
    const ended = this.#ended.get(instanceId)
    if (ended !== undefined) {
      this.#ended.delete(instanceId)
      await loadView(this.core.blobs, ended)
      return toStatus<O>(ended, false)
    }
    for (;;) {
      const left = deadline - Date.now()
      if (left <= 0) throw new TimeoutError(`instance '${instanceId}' did not complete in ${timeoutMs} ms`)
      // The wait travels in the mailbox like any message (batched with others to the partition)
      // and is answered after a commit; the owner holds it at most `ms`, then answers 'not yet'.
      // Its answer is awaited past `ms` (a commit, a busy owner), but never much past the deadline:
      // with no node serving the partition, the wait fails when the caller said, naming why.
      const ms = Math.min(left, 5_000)
      let answer: unknown
      try {
        answer = await this.core.transport.request(
          { k: 'wait', i: instanceId, ms },
          () => `wait for instance '${instanceId}'`,
          Math.min(ms + this.core.queryTimeoutMs, left + WAIT_GRACE_MS),
          (call) => `instance '${instanceId}' did not complete in ${timeoutMs} ms${ownerNote(call)}`,
        )
      } catch (err) {
        // the owner changed and forgot the wait: ask again
        if (err instanceof TimeoutError && Date.now() < deadline) continue
        throw err
      }
      if (answer === 0) continue
      if (answer === null) throw new InstanceNotFoundError(`instance '${instanceId}' does not exist`)
      const view = answer as InstanceView
      try {
        await loadView(this.core.blobs, view)
      } catch (err) {
        // purged meanwhile: its status says what is left
        if (!isMissingBlob(err)) throw err
        const status = await this.getStatus<O>(instanceId)
        if (status === undefined) throw new InstanceNotFoundError(`instance '${instanceId}' does not exist`)
        return status
      }
      return toStatus<O>(view, false)
    }
  }

  /** Lists instances by status, creation time, name and id prefix, a page at a time. */
  async listInstances(query: InstanceQuery = {}): Promise<InstancePage> {
    const { filter, pageSize: limit, continuation } = checkInstanceQuery(query)
    const after = continuation === undefined ? '' : decodeContinuation(continuation)
    const pages = await Promise.all(
      Array.from({ length: this.core.partitions }, (_, p) =>
        this.core.transport.query(p, { v: WIRE_VERSION, k: 'instances', f: filter, after, limit }),
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
    for (const s of all) if (isUnloaded(s.custom)) await loadSummary(this.core.blobs, s)
    all.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
    more ||= all.length > limit
    const instances = all.slice(0, limit).map(fromSummary)
    const last = instances[instances.length - 1]
    return more && last !== undefined
      ? { instances, continuation: encodeContinuation(last.id) }
      : { instances }
  }

  /**
   * Status changes of an instance as they commit (pushed): each value what {@link getStatus}
   * (without history) would answer at that commit — input, output, error, custom status — read
   * from the records the change messages carry.
   */
  watchStatus(instanceId: string): Observable<InstanceStatus | undefined> {
    const p = partitionOf(checkInstanceId(instanceId), this.core.partitions)
    /** The large values of the last status emitted, loaded: the next one needs most of them. */
    let kept: BlobRef[] = []
    const toValue = async (fields: StatusFields): Promise<InstanceStatus> => {
      await loadView(this.core.blobs, fields, kept)
      kept = [fields.input, fields.output, fields.custom].filter((v) => v instanceof BlobRef)
      return toStatus(fields, false)
    }
    return watchItem(this.core.nc, this.core.watches, {
      what: `watchStatus('${instanceId}')`,
      subject: this.core.hub.names.changes(p),
      itemKey: itemKeys.instance(p, instanceId),
      first: async () => {
        const answer = await this.core.transport.query(p, {
          v: WIRE_VERSION,
          k: 'status',
          i: instanceId,
          w: 1,
        })
        if (!('instance' in answer)) throw new CodecError('unexpected answer to a status query')
        return { n: answer.n, value: answer.instance }
      },
      toValue: (bytes) => {
        if (bytes === null) return undefined
        const fields = decode(bytes, 'instance status') as StatusFields
        // (no promise unless a large value must be loaded)
        const large = isUnloaded(fields.input) || isUnloaded(fields.output) || isUnloaded(fields.custom)
        return large ? toValue(fields) : toStatus(fields, false)
      },
      // records change with every step; watchers see (and compare) what a status shows of them
      project: (bytes) => encode(statusFieldsOf(decode(bytes, 'instance') as InstanceRecord)),
    })
  }
}

/**
 * Purges each of `ids` through `purge`; resolves with how many it purged. One that does not exist
 * (any more: purged meanwhile by someone else, or listed a moment after its purge) is passed over;
 * any other failure rejects. `client.purgeInstances` and `basalt purge --status … --before …`.
 */
export async function purgeEach(purge: (id: string) => Promise<void>, ids: string[]): Promise<number> {
  const purged = await Promise.all(
    ids.map((id) =>
      purge(id).then(
        () => 1,
        (err: unknown) => {
          if (err instanceof InstanceNotFoundError) return 0
          throw err
        },
      ),
    ),
  )
  return purged.reduce((a: number, b) => a + b, 0)
}

/**
 * Orchestration instances in a partition: one more kind of actor, with the same rounds, commits,
 * snapshots and exactly-once machinery as entities. An instance's record (status, input, output,
 * history) is the item `o.<p>.<id>`; a small summary `s.<p>.<id>` serves listings and watchers.
 * The live generator (cursor) stays cached between steps; after recovery or eviction the engine
 * replays the history. Activities start on this node at once (before the commit), and their
 * pending set is the items `a.<p>.<id>.<seq>`, re-run after a crash.
 */
import { BadInputError, IllegalStateError, toErrorInfo, type ErrorInfo } from '../actors/errors.ts'
import { encodeToken } from '../actors/ids.ts'
import {
  WIRE_VERSION,
  type ActorMessage,
  type ControlMessage,
  type DoneMessage,
  type EventMessage,
  type InstanceFilter,
  type Query,
  type QueryAnswer,
  type ReplyTo,
  type StartMessage,
} from '../actors/messages.ts'
import {
  OrchestrationExecutor,
  type Command,
  type HistoryEvent,
  type NewEvent,
  type OrchestrationDefinition,
} from '../actors/orchestration/index.ts'
import type { ActivityPool, ActivityTask } from './activities.ts'
import { decode, encode } from './codec.ts'
import type { Logger } from './logger.ts'

/** Runtime status of an instance (Durable Functions' names). */
export const RuntimeStatus = {
  Pending: 'Pending',
  Running: 'Running',
  Completed: 'Completed',
  ContinuedAsNew: 'ContinuedAsNew',
  Failed: 'Failed',
  Terminated: 'Terminated',
  Suspended: 'Suspended',
} as const
export type RuntimeStatus = (typeof RuntimeStatus)[keyof typeof RuntimeStatus]

const TERMINAL = new Set<string>([RuntimeStatus.Completed, RuntimeStatus.Failed, RuntimeStatus.Terminated])

/** Whether a status is final. */
export function isTerminal(status: string): boolean {
  return TERMINAL.has(status)
}

/** The persisted state of an instance. */
export interface InstanceRecord {
  v: 1
  id: string
  name: string
  status: RuntimeStatus
  input: unknown
  output?: unknown
  error?: ErrorInfo
  custom?: unknown
  created: number
  updated: number
  completed?: number
  history: HistoryEvent[]
  /** Events that arrived while suspended. */
  buffered: NewEvent[]
  parent?: [string, number]
  /** Number of executions (continue-as-new increments it). */
  exec: number
  /** Pending timer and activity task numbers (for terminate and purge). */
  timers: number[]
  activities: number[]
}

/** What listings and watchers see of an instance. */
export interface InstanceSummary {
  id: string
  name: string
  status: RuntimeStatus
  created: number
  updated: number
  completed?: number
  custom?: unknown
}

/** What a partition offers to its instances. */
export interface PartitionPort {
  readonly p: number
  readonly logger: Logger
  readItem(key: string): Promise<Uint8Array | null>
  isPinned(key: string): boolean
  write(key: string, bytes: Uint8Array | (() => Uint8Array) | null, sizeHint?: number): void
  send(msg: ActorMessage): void
  replyTo(to: ReplyTo, reply: [number, 1, Uint8Array] | [number, 0, ErrorInfo]): void
  setTimer(key: string, due: number, msg: ActorMessage): void
  cancelTimer(key: string): void
  afterCommit(fn: () => void): void
  enqueueLocal(msg: ActorMessage): void
  listKeys(filter: string): Promise<string[]>
  /** Number of the record the current round will become. */
  readonly roundNumber: number
  dirtyWrites(prefix: string): Iterable<[string, Uint8Array | null]>
}

/** What the partition calls on its instance host. */
export interface InstanceHandler {
  /** Adds the instance a message addresses to `into`, for preloading. */
  want(msg: ActorMessage, into: Set<string>): void
  preload(ids: Set<string>): Promise<void>
  handle(msg: StartMessage | EventMessage | DoneMessage | ControlMessage): Promise<void>
  /** Answers instance queries; false when the query is not about instances. */
  answer(query: Query, respond: (answer: QueryAnswer) => void): Promise<boolean>
  replayActivity(key: string, value: Uint8Array | null): void
  recovered(): void
  close(): void
}

/** The orchestration side of a node: definitions, activities and engine options. */
export interface Workflows {
  orchestrations: Map<string, OrchestrationDefinition<any, any>>
  activities: ActivityPool
  alwaysReplay: boolean
  cacheSize: number
  /** Where activities go when the local backlog reaches `threshold` (absent: always local). */
  offload?: { threshold: number; publish(task: ActivityTask): void }
}

interface Live {
  rec: InstanceRecord
  executor?: OrchestrationExecutor
  used: boolean
  /** Encoded size of the record when last written (estimates a round's size). */
  size?: number
}

/** Error for a start with an id that is taken. */
export class InstanceExistsError extends BadInputError {
  constructor(id: string, status: string) {
    super(`instance '${id}' already exists with status ${status}`)
    this.name = 'InstanceExistsError'
  }
}

/** Instances of one partition. */
export class InstanceHost implements InstanceHandler {
  readonly #live = new Map<string, Live>()
  readonly #waiters = new Map<string, Array<(rec: InstanceRecord) => void>>()
  readonly #pending = new Map<string, ActivityTask>()
  #closed = false

  constructor(
    readonly port: PartitionPort,
    readonly workflows: Workflows,
  ) {}

  want(msg: ActorMessage, into: Set<string>): void {
    if (msg.k === 'start' || msg.k === 'ev' || msg.k === 'done' || msg.k === 'ctl') {
      if (!this.#live.has(msg.i)) into.add(msg.i)
    }
  }

  async preload(ids: Set<string>): Promise<void> {
    await Promise.all([...ids].map((id) => this.#load(id)))
  }

  async handle(msg: StartMessage | EventMessage | DoneMessage | ControlMessage): Promise<void> {
    switch (msg.k) {
      case 'start':
        return this.#start(msg)
      case 'ev':
        return this.#event(msg)
      case 'done':
        return this.#done(msg)
      case 'ctl':
        return this.#control(msg)
    }
  }

  // ---------------------------------------------------------------------------------------------

  async #start(msg: StartMessage): Promise<void> {
    const def = this.workflows.orchestrations.get(msg.n)
    if (def === undefined)
      return this.#fail(msg.r, new BadInputError(`unknown orchestration '${msg.n}'`), msg.pa)
    const live = await this.#load(msg.i)
    if (live !== undefined && live.rec.status !== RuntimeStatus.Pending) {
      if (!isTerminal(live.rec.status) || !msg.replace) {
        return this.#fail(msg.r, new InstanceExistsError(msg.i, live.rec.status), msg.pa)
      }
      this.#forgetTasks(live.rec)
    }
    const now = Date.now()
    const rec: InstanceRecord = {
      v: 1,
      id: msg.i,
      name: msg.n,
      status: RuntimeStatus.Running,
      input: msg.in,
      created: live?.rec.created ?? now,
      updated: now,
      history: [],
      buffered: [],
      exec: (live?.rec.exec ?? 0) + 1,
      timers: [],
      activities: [],
      ...(msg.pa === undefined ? {} : { parent: msg.pa }),
    }
    this.#live.set(msg.i, { rec, used: true })
    if (msg.r !== undefined) this.port.replyTo(msg.r, [msg.r[1], 1, encode(msg.i)])
    if (msg.at !== undefined && msg.at > now) {
      rec.status = RuntimeStatus.Pending
      this.port.setTimer(this.#timerKey(msg.i, -1), msg.at, {
        ...msg,
        r: undefined,
        at: undefined,
      } as StartMessage)
      this.#save(rec)
      return
    }
    this.#step(this.#live.get(msg.i)!, [{ e: 'started', input: rec.input, execution: rec.exec }])
  }

  async #event(msg: EventMessage): Promise<void> {
    const live = await this.#load(msg.i)
    if (live === undefined || isTerminal(live.rec.status)) {
      const why = live === undefined ? 'does not exist' : `is ${live.rec.status}`
      return this.#fail(msg.r, new BadInputError(`cannot raise event '${msg.n}': instance '${msg.i}' ${why}`))
    }
    if (msg.r !== undefined) this.port.replyTo(msg.r, [msg.r[1], 1, encode(null)])
    this.#feed(live, { e: 'event', name: msg.n, data: msg.d } as NewEvent)
  }

  async #done(msg: DoneMessage): Promise<void> {
    const live = await this.#load(msg.i)
    if (live === undefined || isTerminal(live.rec.status)) return
    const rec = live.rec
    const at = rec.activities.indexOf(msg.s)
    if (at >= 0) {
      rec.activities.splice(at, 1)
      this.#pending.delete(this.#activityKey(rec.id, msg.s))
      this.port.write(this.#activityKey(rec.id, msg.s), null)
    }
    const t = rec.timers.indexOf(msg.s)
    if (t >= 0) rec.timers.splice(t, 1)
    const event = (
      msg.ok === 1
        ? { e: 'completed', seq: msg.s, result: msg.v }
        : { e: 'failed', seq: msg.s, error: msg.err }
    ) as NewEvent
    this.#feed(live, event)
  }

  async #control(msg: ControlMessage): Promise<void> {
    const live = await this.#load(msg.i)
    if (live === undefined) return this.#fail(msg.r, new BadInputError(`instance '${msg.i}' does not exist`))
    const rec = live.rec
    const ok = () => msg.r !== undefined && this.port.replyTo(msg.r, [msg.r[1], 1, encode(rec.status)])
    switch (msg.op) {
      case 'terminate':
        if (isTerminal(rec.status))
          return this.#fail(msg.r, new IllegalStateError(`instance '${rec.id}' is ${rec.status}`))
        this.#finish(live, RuntimeStatus.Terminated, undefined, {
          name: 'TerminatedError',
          message: msg.reason ?? 'terminated',
        })
        return void ok()
      case 'suspend':
        if (rec.status !== RuntimeStatus.Running) {
          return this.#fail(
            msg.r,
            new IllegalStateError(`cannot suspend instance '${rec.id}': it is ${rec.status}`),
          )
        }
        rec.status = RuntimeStatus.Suspended
        this.#save(rec)
        return void ok()
      case 'resume':
        if (rec.status !== RuntimeStatus.Suspended) {
          return this.#fail(
            msg.r,
            new IllegalStateError(`cannot resume instance '${rec.id}': it is ${rec.status}`),
          )
        }
        rec.status = RuntimeStatus.Running
        ok()
        this.#step(live, rec.buffered.splice(0))
        return
      case 'purge':
        if (!isTerminal(rec.status)) {
          return this.#fail(
            msg.r,
            new IllegalStateError(`cannot purge instance '${rec.id}': it is ${rec.status}`),
          )
        }
        this.#forgetTasks(rec)
        this.port.write(this.#recordKey(rec.id), null)
        this.port.write(this.#summaryKey(rec.id), null)
        this.#live.delete(rec.id)
        return void ok()
    }
  }

  /** Delivers an event to a running instance, or buffers it while suspended or pending. */
  #feed(live: Live, event: NewEvent): void {
    if (live.rec.status !== RuntimeStatus.Running) {
      live.rec.buffered.push(event)
      this.#save(live.rec)
      return
    }
    this.#step(live, [event])
  }

  /** Runs one orchestration step and carries out its commands. */
  #step(live: Live, events: NewEvent[]): void {
    const rec = live.rec
    const def = this.workflows.orchestrations.get(rec.name)
    if (def === undefined) {
      this.#finish(
        live,
        RuntimeStatus.Failed,
        undefined,
        toErrorInfo(new BadInputError(`unknown orchestration '${rec.name}'`)),
      )
      return
    }
    live.executor ??= new OrchestrationExecutor(def, rec.id, {
      alwaysReplay: this.workflows.alwaysReplay,
      logSink: (line, level) =>
        this.port.logger[level === 'debug' ? 'info' : level](line, { instance: rec.id }),
    })
    const now = Date.now()
    const result = live.executor.step(rec.history, events, now)
    rec.history.push(...result.appended)
    rec.updated = now
    if (result.customStatus !== undefined) rec.custom = result.customStatus
    for (const command of result.commands) this.#command(rec, command)
    switch (result.status) {
      case 'running':
        this.#save(rec)
        return
      case 'completed':
        this.#finish(live, RuntimeStatus.Completed, result.output, undefined)
        return
      case 'failed':
        this.#finish(live, RuntimeStatus.Failed, undefined, result.error)
        return
      case 'continuedAsNew': {
        const next = result.continueAsNew!
        rec.history = []
        rec.input = next.input
        rec.exec++
        rec.timers = []
        rec.activities = []
        live.executor = undefined
        this.#step(live, [{ e: 'started', input: next.input, execution: rec.exec }, ...next.carriedEvents])
        return
      }
    }
  }

  #command(rec: InstanceRecord, c: Command): void {
    const id = rec.id
    switch (c.c) {
      case 'activity': {
        const task: ActivityTask = {
          instanceId: id,
          seq: c.seq,
          name: c.name,
          input: c.input,
          attempt: c.attempt ?? 1,
        }
        const key = this.#activityKey(id, c.seq)
        this.port.write(key, encode([task.instanceId, task.seq, task.name, task.input, task.attempt]))
        rec.activities.push(c.seq)
        this.#runActivity(key, task)
        return
      }
      case 'timer':
        rec.timers.push(c.seq)
        this.port.setTimer(this.#timerKey(id, c.seq), c.fireAt, { k: 'done', i: id, s: c.seq, ok: 1 })
        return
      case 'cancelTimer': {
        const at = rec.timers.indexOf(c.seq)
        if (at >= 0) rec.timers.splice(at, 1)
        this.port.cancelTimer(this.#timerKey(id, c.seq))
        return
      }
      case 'sub':
        this.port.send({ k: 'start', i: c.instanceId, n: c.name, in: c.input, pa: [id, c.seq] })
        return
      case 'call':
        this.port.send({ k: 'op', t: c.entity[0], key: c.entity[1], op: c.op, a: c.args, ro: [id, c.seq] })
        return
      case 'signal':
        this.port.send({ k: 'op', t: c.entity[0], key: c.entity[1], op: c.op, a: c.args })
        return
      case 'start':
        this.port.send({ k: 'start', i: c.instanceId, n: c.name, in: c.input })
        return
      case 'lock': {
        const [first, ...rest] = c.entities
        if (first === undefined) this.port.enqueueLocal({ k: 'done', i: id, s: c.seq, ok: 1 })
        else this.port.send({ k: 'lock', t: first[0], key: first[1], o: [id, c.seq], rest })
        return
      }
      case 'unlock':
        for (const [t, key] of c.entities) this.port.send({ k: 'unlock', t, key, o: id })
        return
    }
  }

  #runActivity(key: string, task: ActivityTask, mayOffload = true): void {
    this.#pending.set(key, task)
    const { activities, offload } = this.workflows
    if (mayOffload && offload !== undefined && activities.backlog >= offload.threshold) {
      // this node is busy: hand the task to every node's workers once the schedule is durable
      this.port.afterCommit(() => offload.publish(task))
      return
    }
    void activities.run(task).then((outcome) => {
      if (this.#closed || !this.#pending.has(key)) return
      this.port.enqueueLocal(
        outcome.ok === 1
          ? { k: 'done', i: task.instanceId, s: task.seq, ok: 1, v: outcome.value }
          : { k: 'done', i: task.instanceId, s: task.seq, ok: 0, err: outcome.error },
      )
    })
  }

  #finish(live: Live, status: RuntimeStatus, output: unknown, error: ErrorInfo | undefined): void {
    const rec = live.rec
    const now = Date.now()
    rec.status = status
    rec.updated = now
    rec.completed = now
    if (output !== undefined) rec.output = output
    if (error !== undefined) rec.error = error
    this.#forgetTasks(rec)
    live.executor = undefined
    if (rec.parent !== undefined) {
      const [parent, seq] = rec.parent
      this.port.send(
        status === RuntimeStatus.Completed
          ? { k: 'done', i: parent, s: seq, ok: 1, v: output }
          : { k: 'done', i: parent, s: seq, ok: 0, err: error ?? { name: 'Error', message: status } },
      )
    }
    this.#save(rec)
    const waiters = this.#waiters.get(rec.id)
    if (waiters !== undefined) {
      this.#waiters.delete(rec.id)
      this.port.afterCommit(() => waiters.forEach((w) => w(rec)))
    }
  }

  /** Cancels an instance's timers and forgets its pending activities. */
  #forgetTasks(rec: InstanceRecord): void {
    for (const seq of rec.timers) this.port.cancelTimer(this.#timerKey(rec.id, seq))
    this.port.cancelTimer(this.#timerKey(rec.id, -1))
    for (const seq of rec.activities) {
      const key = this.#activityKey(rec.id, seq)
      this.#pending.delete(key)
      this.port.write(key, null)
    }
    rec.timers = []
    rec.activities = []
  }

  #fail(to: ReplyTo | undefined, err: Error, parent?: [string, number]): void {
    if (to !== undefined) this.port.replyTo(to, [to[1], 0, toErrorInfo(err)])
    else if (parent !== undefined)
      this.port.send({ k: 'done', i: parent[0], s: parent[1], ok: 0, err: toErrorInfo(err) })
    else this.port.logger.warn('instance message rejected', { p: this.port.p, error: err.message })
  }

  /** Writes the record and summary lazily: however many steps this round runs, one encode each. */
  #save(rec: InstanceRecord): void {
    const live = this.#live.get(rec.id)
    const hint = (live?.size ?? 256) + 256
    this.port.write(
      this.#recordKey(rec.id),
      () => {
        const bytes = encode(rec)
        if (live !== undefined) live.size = bytes.length
        return bytes
      },
      hint,
    )
    this.port.write(this.#summaryKey(rec.id), () => encode(summaryOf(rec)), 256)
  }

  async #load(id: string): Promise<Live | undefined> {
    const cached = this.#live.get(id)
    if (cached !== undefined) {
      cached.used = true
      return cached
    }
    const bytes = await this.port.readItem(this.#recordKey(id))
    const again = this.#live.get(id)
    if (again !== undefined) return again
    if (bytes === null) return undefined
    const live: Live = { rec: decode(bytes, `instance ${id}`) as InstanceRecord, used: true }
    this.#live.set(id, live)
    this.#evict()
    return live
  }

  #evict(): void {
    let excess = this.#live.size - this.workflows.cacheSize
    for (const [id, live] of this.#live) {
      if (excess <= 0) return
      if (this.port.isPinned(this.#recordKey(id))) continue
      this.#live.delete(id)
      if (live.used) {
        live.used = false
        this.#live.set(id, live)
      } else excess--
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Queries

  async answer(query: Query, respond: (answer: QueryAnswer) => void): Promise<boolean> {
    if (query.k === 'status') {
      const live = await this.#load(query.i)
      const bytes =
        live === undefined ? null : encode(query.history ? live.rec : { ...live.rec, history: [] })
      const n = this.port.roundNumber - 1
      this.port.afterCommit(() => respond({ v: WIRE_VERSION, ok: 1, instance: bytes, n }))
      return true
    }
    if (query.k === 'wait') {
      const live = await this.#load(query.i)
      if (live === undefined || isTerminal(live.rec.status)) {
        const bytes = live === undefined ? null : encode({ ...live.rec, history: [] })
        this.port.afterCommit(() => respond({ v: WIRE_VERSION, ok: 1, instance: bytes, n: 0 }))
        return true
      }
      let list = this.#waiters.get(query.i)
      if (list === undefined) this.#waiters.set(query.i, (list = []))
      const waiter = (rec: InstanceRecord) => {
        clearTimeout(timer)
        respond({ v: WIRE_VERSION, ok: 1, instance: encode({ ...rec, history: [] }), n: 0 })
      }
      const timer = setTimeout(
        () => {
          const waiting = this.#waiters.get(query.i)
          const at = waiting?.indexOf(waiter) ?? -1
          if (at >= 0) waiting!.splice(at, 1)
          respond({ v: WIRE_VERSION, ok: 1, instance: null, n: -1 })
        },
        Math.max(0, Math.min(query.ms, 60_000)),
      )
      list.push(waiter)
      return true
    }
    if (query.k === 'instances') {
      const summaries = await this.#list(query.f, query.after, query.limit)
      this.port.afterCommit(() => respond({ v: WIRE_VERSION, ok: 1, ...summaries }))
      return true
    }
    return false
  }

  async #list(
    filter: InstanceFilter,
    after: string,
    limit: number,
  ): Promise<{ summaries: Array<[string, Uint8Array]>; more: boolean }> {
    const prefix = `s.${this.port.p}.`
    const values = new Map<string, Uint8Array | null>()
    const keys = await this.port.listKeys(`${prefix}>`)
    await Promise.all(keys.map(async (k) => values.set(k, await this.port.readItem(k))))
    for (const [k, v] of this.port.dirtyWrites(prefix)) values.set(k, v)
    const out: Array<[string, Uint8Array]> = []
    for (const bytes of values.values()) {
      if (bytes === null) continue
      const s = decode(bytes, 'instance summary') as InstanceSummary
      if (s.id <= after || !matches(s, filter)) continue
      out.push([s.id, bytes])
    }
    out.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))
    return { summaries: out.slice(0, limit), more: out.length > limit }
  }

  // ---------------------------------------------------------------------------------------------
  // Recovery

  replayActivity(key: string, value: Uint8Array | null): void {
    if (value === null) {
      this.#pending.delete(key)
      return
    }
    const [instanceId, seq, name, input, attempt] = decode(value, `activity ${key}`) as [
      string,
      number,
      string,
      unknown,
      number,
    ]
    this.#pending.set(key, { instanceId, seq, name, input, attempt })
  }

  recovered(): void {
    // at-least-once: every activity scheduled but not completed runs again
    for (const [key, task] of [...this.#pending]) this.#runActivity(key, task, false)
  }

  close(): void {
    this.#closed = true
  }

  #recordKey(id: string): string {
    return `o.${this.port.p}.${encodeToken(id)}`
  }
  #summaryKey(id: string): string {
    return `s.${this.port.p}.${encodeToken(id)}`
  }
  #activityKey(id: string, seq: number): string {
    return `a.${this.port.p}.${encodeToken(id)}.${seq}`
  }
  #timerKey(id: string, seq: number): string {
    return `t.${this.port.p}.o.${encodeToken(id)}.${seq < 0 ? 'start' : seq}`
  }
}

/** The summary of an instance record. */
export function summaryOf(rec: InstanceRecord): InstanceSummary {
  return {
    id: rec.id,
    name: rec.name,
    status: rec.status,
    created: rec.created,
    updated: rec.updated,
    ...(rec.completed === undefined ? {} : { completed: rec.completed }),
    ...(rec.custom === undefined ? {} : { custom: rec.custom }),
  }
}

function matches(s: InstanceSummary, f: InstanceFilter): boolean {
  if (f.statuses !== undefined && f.statuses.length > 0 && !f.statuses.includes(s.status)) return false
  if (f.createdFrom !== undefined && s.created < f.createdFrom) return false
  if (f.createdTo !== undefined && s.created > f.createdTo) return false
  if (f.namePrefix !== undefined && !s.name.startsWith(f.namePrefix)) return false
  if (f.idPrefix !== undefined && !s.id.startsWith(f.idPrefix)) return false
  return true
}

/**
 * Orchestration instances in a partition: one more kind of actor, with the same rounds, commits,
 * snapshots and exactly-once machinery as entities. An instance's record (status, input, output,
 * the newest history events) is the item `o.<p>.<id>`; older history lives in append-only chunks
 * `h.<p>.<id>.<hk>.<k>`, each written once, so a round encodes only what is new (not the whole
 * history). Watchers get the records from the change messages; listings read them too.
 * The live generator (cursor) stays cached between steps; after recovery or eviction the engine
 * replays the history. Activities start on this node at once (before the commit), and their
 * pending set is the items `a.<p>.<id>.<seq>`, re-run after a crash.
 * The data model is in instance-model.ts, the partition's port in runtime/partition/instance-port.ts;
 * the history chunks are handled by instance-history.ts, held waits for completion by
 * completion-waits.ts.
 */
import {
  ItemKind,
  itemKey,
  partitionFilter,
  partitionPrefix,
  decode,
  encode,
  BlobRef,
  isUnloaded,
  valueOf,
} from '../nats/index.ts'
import {
  BadInputError,
  IllegalStateError,
  PayloadTooLargeError,
  toErrorInfo,
  type ErrorInfo,
} from '../../actors/index.ts'
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
  type WaitMessage,
  type ActivityOutcome,
  type ActivityTask,
} from '../../actors/wire/index.ts'
import {
  OrchestrationExecutor,
  type Command,
  type HistoryEvent,
  type NewEvent,
  type StepResult,
} from '../../actors/orchestration/index.ts'
import {
  DEFER_UNKNOWN_MS,
  boundOutcome,
  checkSize,
  sizeOf,
  type InstanceHandler,
  type PartitionPort,
} from '../partition/index.ts'
import { isThenable } from '../../actors/index.ts'
import { CompletionWaits } from './completion-waits.ts'
import { chunkTail, dropHistory, loadHistory, refsOf } from './instance-history.ts'
import {
  RuntimeStatus,
  isTerminal,
  matches,
  summaryOf,
  type InstanceRecord,
  type InstanceView,
  type Workflows,
} from './instance-model.ts'

interface Live {
  rec: InstanceRecord
  /** The whole history of the current execution (loaded when first needed). */
  history?: HistoryEvent[]
  executor?: OrchestrationExecutor
  used: boolean
  /** Encoded size of the record when last written (estimates a round's size). */
  size?: number
  /** Bytes of user values in the history tail (estimated); a large tail moves into a chunk. */
  tailBytes?: number
  /** Whether the history is loaded with the values of its references (ready for a step). */
  ready?: boolean
}

/** A held wait for completion: where its answer goes, and when it gives up. */
/** The answer to a wait for an instance that does not exist. */
const NO_INSTANCE = encode(null)

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
  /** Held waits for completion. */
  readonly #waits: CompletionWaits
  readonly #pending = new Map<string, ActivityTask>()
  /** Ids looked up and found absent (not stored, not written since); cleared when it grows. */
  readonly #absent = new Set<string>()
  #closed = false
  /** Largest single value of an instance, and largest total one step may add (value-limits.ts). */
  readonly #valueLimit: number
  readonly #stepLimit: number
  /** Largest value kept inline; larger ones are stored by reference (blobs.ts). */
  readonly #inline: number
  /** Size in the record of the value {@link #bound} returned last (no allocation per value). */
  #size = 0

  constructor(
    readonly port: PartitionPort,
    readonly workflows: Workflows,
  ) {
    this.#valueLimit = Math.floor(port.valueLimit / 4)
    this.#stepLimit = port.valueLimit
    this.#inline = Math.min(port.blobs.limits.threshold, this.#valueLimit)
    this.#waits = new CompletionWaits(port, this.#valueLimit)
  }

  want(msg: ActorMessage, into: Set<string>): void {
    if (msg.k === 'start' && msg.fresh === 1) return
    if (msg.k === 'start' || msg.k === 'ev' || msg.k === 'done' || msg.k === 'ctl' || msg.k === 'wait') {
      if (!this.#live.has(msg.i) && !this.#absent.has(msg.i)) into.add(msg.i)
    }
  }

  async preload(ids: Set<string>): Promise<void> {
    await Promise.all([...ids].map((id) => this.#load(id)))
  }

  handle(
    msg: StartMessage | EventMessage | DoneMessage | ControlMessage | WaitMessage,
  ): void | Promise<void> {
    switch (msg.k) {
      case 'start':
        return this.#start(msg)
      case 'ev':
        return this.#event(msg)
      case 'done':
        return this.#done(msg)
      case 'ctl':
        return this.#control(msg)
      case 'wait':
        return this.#wait(msg)
    }
  }

  // ---------------------------------------------------------------------------------------------

  #start(msg: StartMessage): void | Promise<void> {
    const def = this.workflows.orchestrations.get(msg.n)
    if (def === undefined) {
      if (!this.port.knownElsewhere(`o:${msg.n}`))
        return this.#fail(msg.r, new BadInputError(`unknown orchestration '${msg.n}'`), msg.pa)
      // another node runs it (a rolling deploy): the instance waits as Pending, started again later
      msg = { ...msg, at: Math.max(msg.at ?? 0, Date.now() + DEFER_UNKNOWN_MS) }
      delete msg.fresh
    }
    if (isUnloaded(msg.in)) {
      // a large input stored by reference: the first step needs its value
      return this.port.blobs.load(msg.in).then(
        () => this.#start(msg),
        (err: unknown) => this.#fail(msg.r, err as Error, msg.pa),
      )
    }
    try {
      msg.in = this.#bound(msg.in, () => `input of instance '${msg.i}' (${msg.n})`)
    } catch (err) {
      return this.#fail(msg.r, err as Error, msg.pa)
    }
    if (msg.fresh === 1) return this.#startWith(msg, this.#fresh(msg.i))
    const cached = this.#cached(msg.i)
    if (cached !== undefined) return this.#startWith(msg, cached)
    return this.#load(msg.i).then((live) => this.#startWith(msg, live))
  }

  #startWith(msg: StartMessage, live: Live | undefined): void {
    if (live !== undefined && live.rec.status !== RuntimeStatus.Pending) {
      if (!isTerminal(live.rec.status) || !msg.replace) {
        return this.#fail(msg.r, new InstanceExistsError(msg.i, live.rec.status), msg.pa)
      }
      this.#forgetTasks(live.rec)
    }
    if (live !== undefined) dropHistory(this.port, live.rec)
    // a Pending instance keeps its execution number and the events raised while it waited
    const pending = live?.rec.status === RuntimeStatus.Pending ? live.rec : undefined
    const now = Date.now()
    const rec: InstanceRecord = {
      v: 1,
      id: msg.i,
      name: msg.n,
      status: RuntimeStatus.Running,
      input: msg.in,
      created: live?.rec.created ?? now,
      updated: now,
      hk: this.port.roundNumber,
      hc: 0,
      tail: [],
      buffered: [],
      exec: pending?.exec ?? (live?.rec.exec ?? 0) + 1,
      timers: [],
      activities: [],
      ...(msg.pa === undefined ? {} : { parent: msg.pa }),
    }
    this.#live.set(msg.i, { rec, history: [], used: true, ready: true })
    this.#absent.delete(msg.i)
    if (msg.r !== undefined) {
      // Answered at the seal: with the outcome too when the instance ended in this same round
      // (a client's waitForCompletion then needs no round trip).
      const live = this.#live.get(msg.i)!
      this.port.replyTo(msg.r, [
        msg.r[1],
        1,
        () =>
          this.#live.get(msg.i) === live && isTerminal(rec.status)
            ? encode([msg.i, { ...rec, tail: [] }])
            : encode(msg.i),
      ])
    }
    if (msg.at !== undefined && msg.at > now) {
      rec.status = RuntimeStatus.Pending
      if (pending !== undefined) rec.buffered = pending.buffered
      this.port.setTimer(this.#timerKey(msg.i, -1), msg.at, {
        ...msg,
        r: undefined,
        at: undefined,
        fresh: undefined,
      } as StartMessage)
      this.#save(rec)
      return
    }
    this.port.metrics.started(rec.name)
    this.#step(this.#live.get(msg.i)!, [
      { e: 'started', input: rec.input, execution: rec.exec },
      ...(pending?.buffered ?? []),
    ])
  }

  async #event(msg: EventMessage): Promise<void> {
    const live = await this.#load(msg.i)
    if (live === undefined || isTerminal(live.rec.status)) {
      const why = live === undefined ? 'does not exist' : `is ${live.rec.status}`
      return this.#fail(msg.r, new BadInputError(`cannot raise event '${msg.n}': instance '${msg.i}' ${why}`))
    }
    try {
      if (isUnloaded(msg.d)) await this.port.blobs.load(msg.d)
      msg.d = this.#bound(msg.d, () => `data of event '${msg.n}' for instance '${msg.i}'`)
      const size = this.#size
      if (live.rec.status !== RuntimeStatus.Running && live.rec.buffered.length > 0) {
        // held in the record until the instance runs again: bounded like one step
        const buffered = encode(live.rec.buffered).length + size
        if (buffered > this.#stepLimit) {
          const what = `the events held for ${live.rec.status} instance '${msg.i}' with event '${msg.n}'`
          throw new PayloadTooLargeError(what, buffered, this.#stepLimit)
        }
      }
    } catch (err) {
      return this.#fail(msg.r, err as Error)
    }
    if (msg.r !== undefined) this.port.replyTo(msg.r, [msg.r[1], 1, encode(null)])
    await this.#feed(live, { e: 'event', name: msg.n, data: msg.d } as NewEvent, msg)
  }

  #done(msg: DoneMessage): void | Promise<void> {
    if (isUnloaded(msg.v)) {
      // a large result stored by reference: the step needs its value (a lost one fails the task)
      return this.port.blobs.load(msg.v).then(
        () => this.#done(msg),
        (err: unknown) => this.#done({ k: 'done', i: msg.i, s: msg.s, ok: 0, err: toErrorInfo(err) }),
      )
    }
    const cached = this.#cached(msg.i)
    if (cached !== undefined) return this.#doneWith(msg, cached)
    return this.#load(msg.i).then((live) => this.#doneWith(msg, live))
  }

  #doneWith(msg: DoneMessage, live: Live | undefined): void | Promise<void> {
    if (msg.lk !== undefined && live?.rec.lk?.[0] !== msg.s) return this.#giveBack(msg, live)
    if (live === undefined || isTerminal(live.rec.status)) return
    const rec = live.rec
    const at = rec.activities.indexOf(msg.s)
    if (at >= 0) {
      rec.activities.splice(at, 1)
      this.#forgetActivity(this.#activityKey(rec.id, msg.s))
    }
    const t = rec.timers.indexOf(msg.s)
    if (t >= 0) rec.timers.splice(t, 1)
    return this.#feed(live, this.#taskOutcome(rec, msg), msg)
  }

  /**
   * The event a task's outcome becomes. A result too large for the instance record fails the
   * task with PayloadTooLargeError (the orchestration can catch it); a huge error is shortened.
   */
  #taskOutcome(rec: InstanceRecord, msg: DoneMessage): NewEvent {
    const limit = this.#valueLimit
    if (msg.ok === 1) {
      try {
        const result = this.#bound(
          msg.v,
          () => `result of task ${msg.s} of instance '${rec.id}' (${rec.name})`,
        )
        return { e: 'completed', seq: msg.s, result } as NewEvent
      } catch (err) {
        return { e: 'failed', seq: msg.s, error: toErrorInfo(err) }
      }
    }
    const error = msg.err ?? { name: 'Error', message: 'task failed' }
    if (sizeOf(error, limit) <= limit) return { e: 'failed', seq: msg.s, error }
    return {
      e: 'failed',
      seq: msg.s,
      error: { name: String(error.name).slice(0, 200), message: String(error.message).slice(0, 4096) },
    }
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
        if (live.ready !== true && !(await this.#prepare(live))) return
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
        this.#releaseLocks(rec)
        // its large values go once the purge is durable
        this.#dropRefsAfterCommit(await this.#refsOfRecord(live))
        dropHistory(this.port, rec)
        this.port.write(this.#recordKey(rec.id), null)
        this.#live.delete(rec.id)
        return void ok()
    }
  }

  /** Answers a wait at once when the instance ended or does not exist, else holds it. */
  async #wait(msg: WaitMessage): Promise<void> {
    const to = msg.r
    if (to === undefined) return
    const live = await this.#load(msg.i)
    if (live === undefined) return this.port.replyTo(to, [to[1], 1, NO_INSTANCE])
    if (isTerminal(live.rec.status)) return this.port.replyTo(to, [to[1], 1, encodeOutcome(live.rec)])
    this.#waits.hold(msg.i, to, msg.ms)
  }

  /**
   * Delivers an event to a running instance, or buffers it while suspended or pending. A promise
   * only when the history has to be read first.
   */
  #feed(live: Live, event: NewEvent, msg: EventMessage | DoneMessage): void | Promise<void> {
    if (live.rec.status !== RuntimeStatus.Running) {
      live.rec.buffered.push(event)
      this.#save(live.rec)
      return
    }
    const name = live.rec.name
    if (!this.workflows.orchestrations.has(name) && this.port.knownElsewhere(`o:${name}`)) {
      // another node runs this orchestration (a rolling deploy): keep the message for it
      const kept = { ...msg }
      if (kept.k === 'ev') delete kept.r // answered already
      return this.port.defer(kept)
    }
    if (live.ready !== true) {
      return this.#prepare(live).then((ready) => {
        if (ready) this.#step(live, [event])
      })
    }
    this.#step(live, [event])
  }

  /**
   * Loads the history and the values of the references it holds (and of events held while
   * suspended), so that a step can run. Resolves false when that fails — a blob that cannot be
   * read — after failing the instance with the error (never the partition).
   */
  async #prepare(live: Live): Promise<boolean> {
    try {
      const history = await loadHistory(this.port, live)
      const refs = refsOf(live.rec.buffered, refsOf(history, [], true), true)
      if (refs.length > 0) await this.port.blobs.loadAll(refs)
      live.ready = true
      return true
    } catch (err) {
      this.port.logger.warn('instance history or its large values cannot be read', {
        p: this.port.p,
        instance: live.rec.id,
        error: String(err),
      })
      this.#finish(live, RuntimeStatus.Failed, undefined, toErrorInfo(err))
      return false
    }
  }

  /** The references an instance holds: its record's values, its history, held events. */
  async #refsOfRecord(live: Live): Promise<BlobRef[]> {
    const rec = live.rec
    const refs: BlobRef[] = []
    for (const v of [rec.input, rec.output, rec.custom]) if (v instanceof BlobRef) refs.push(v)
    refsOf(rec.buffered, refs)
    try {
      refsOf(await loadHistory(this.port, live), refs)
    } catch (err) {
      this.port.logger.warn('history not read: its large values stay stored', {
        p: this.port.p,
        instance: rec.id,
        error: String(err),
      })
    }
    // (one value may appear in several places)
    return [...new Map(refs.map((r) => [r.id, r])).values()]
  }

  /** Deletes blobs once the open round (which drops their last references) is durable. */
  #dropRefsAfterCommit(refs: BlobRef[]): void {
    if (refs.length === 0) return
    this.port.afterCommit(
      () =>
        void this.port.blobs.delete(refs, (err) =>
          this.port.logger.warn('large value not deleted (left as an orphan)', {
            p: this.port.p,
            error: String(err),
          }),
        ),
    )
  }

  /** Bounds `obj[key]` in place (see {@link #bound}); returns its size in the record. */
  #store<T extends object, K extends keyof T>(obj: T, key: K, what: () => string): number {
    const value = obj[key]
    const stored = this.#bound(value, what)
    if (stored !== value) obj[key] = stored as T[K]
    return this.#size
  }

  /**
   * A value as the instance stores it: itself up to the inline size, else a reference whose blob
   * the open round waits for (blobs.ts). Sets {@link #size} to its size in the record. Throws
   * `PayloadTooLargeError` over the ceiling and `CodecError` for a value that cannot be encoded.
   */
  #bound(value: unknown, what: () => string): unknown {
    if (value instanceof BlobRef) {
      this.#size = 128
      return value
    }
    const size = sizeOf(value, this.#inline)
    if (size <= this.#inline) {
      this.#size = size
      return value
    }
    const { ref, written } = this.port.blobs.put(encode(value), what)
    this.port.holdFor(written)
    this.#size = 128
    return ref.attach(value)
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
      unwrap: valueOf,
      logSink: (line, level) =>
        this.port.logger[level === 'debug' ? 'info' : level](line, { instance: rec.id }),
    })
    const now = Date.now()
    const history = live.history
    if (history === undefined) throw new IllegalStateError(`history of instance '${rec.id}' is not loaded`)
    this.port.metrics.stepping()
    const result = live.executor.step(history, events, now)
    this.port.metrics.stepped(rec.name)
    let sizes: number[]
    try {
      sizes = this.#measureStep(rec, result)
    } catch (err) {
      // the step's values cannot be stored: the instance fails without them (its history keeps
      // what was committed before this step)
      this.#finish(live, RuntimeStatus.Failed, undefined, toErrorInfo(err))
      return
    }
    for (const ev of result.appended) {
      history.push(ev)
      rec.tail.push(ev)
    }
    live.tailBytes = (live.tailBytes ?? 0) + sizes[0]!
    rec.updated = now
    // (from the event, which holds the reference of a large status; the step result has the value)
    for (const ev of result.appended) if (ev.e === 'customStatus') rec.custom = ev.value
    for (let i = 0; i < result.commands.length; i++) this.#command(rec, result.commands[i]!, sizes[i + 1]!)
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
        this.#releaseLocks(rec)
        // the values of the ended execution go once its end is durable (not those carried over)
        const carried = new Set<BlobRef>(refsOf(next.carriedEvents))
        if (next.input instanceof BlobRef) carried.add(next.input)
        if (rec.custom instanceof BlobRef) carried.add(rec.custom)
        this.#dropRefsAfterCommit(refsOf(history).filter((r) => !carried.has(r)))
        dropHistory(this.port, rec)
        rec.hk = this.port.roundNumber
        live.history = []
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

  /**
   * Sizes of what a step adds: [history bytes, then one per command]. Values over the inline size
   * are replaced by references, in the events and commands and in the result (see {@link #bound}).
   * Throws PayloadTooLargeError naming the value when one is over the ceiling (or an error over
   * the value limit), or the step is over the step limit; CodecError for a value that cannot be
   * encoded.
   */
  #measureStep(rec: InstanceRecord, result: StepResult): number[] {
    const limit = this.#valueLimit
    const of = `of instance '${rec.id}' (${rec.name})`
    let history = 0
    for (const ev of result.appended) {
      history += 24
      switch (ev.e) {
        case 'started':
          history += this.#store(ev, 'input', () => `input ${of}`)
          break
        case 'completed':
          history += this.#store(ev, 'result', () => `result of task ${ev.seq} ${of}`)
          break
        case 'failed':
          history += checkSize(ev.error, limit, () => `error of task ${ev.seq} ${of}`)
          break
        case 'event':
          history += this.#store(ev, 'data', () => `data of event '${ev.name}' ${of}`)
          break
        case 'customStatus':
          // kept in the record's field too
          history += 2 * this.#store(ev, 'value', () => `custom status ${of}`)
          break
        case 'finished':
          if (ev.status === 'completed') {
            const size = this.#store(ev, 'output', () => `output ${of}`)
            result.output = ev.output
            history += 2 * size
          } else if (ev.status === 'failed') history += checkSize(ev.error, limit, () => `error ${of}`)
          else {
            const size = this.#store(ev, 'input', () => `continue-as-new input ${of}`)
            if (result.continueAsNew !== undefined) result.continueAsNew.input = ev.input
            history += 2 * size
          }
          break
        default:
          break
      }
    }
    const sizes = [history]
    let total = history
    for (const c of result.commands) {
      let size = 64
      switch (c.c) {
        case 'activity':
          size += this.#store(c, 'input', () => `input of activity '${c.name}' (task ${c.seq}) ${of}`)
          break
        case 'sub':
        case 'start':
          size += this.#store(c, 'input', () => `input of instance '${c.instanceId}' started ${of}`)
          break
        case 'call':
        case 'signal': {
          let args: unknown[] | undefined
          for (let i = 0; i < c.args.length; i++) {
            const arg = this.#bound(
              c.args[i],
              () => `argument ${i + 1} of ${c.entity[0]}@${c.entity[1]}.${c.op} ${of}`,
            )
            size += this.#size
            if (arg !== c.args[i]) (args ??= c.args.slice())[i] = arg
          }
          if (args !== undefined) c.args = args
          break
        }
        default:
          break
      }
      sizes.push(size)
      total += size
    }
    if (total > this.#stepLimit) {
      throw new PayloadTooLargeError(
        `a step ${of} (${result.commands.length} commands and ${result.appended.length} history events)`,
        total,
        this.#stepLimit,
      )
    }
    return sizes
  }

  #command(rec: InstanceRecord, c: Command, size: number): void {
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
        // encoded at the seal, if the activity is still pending then (a fast one is not)
        this.port.write(
          key,
          () => encode([task.instanceId, task.seq, task.name, task.input, task.attempt]),
          size,
        )
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
        else {
          rec.lk = [c.seq, c.entities]
          this.port.send({ k: 'lock', t: first[0], key: first[1], o: [id, c.seq], rest, all: c.entities })
        }
        return
      }
      case 'unlock':
        delete rec.lk
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
    if (isUnloaded(task.input)) {
      // a large input stored by reference (a task re-run after recovery): load it first
      void this.port.blobs.load(task.input).then(
        () => this.#runActivity(key, task, false),
        (err: unknown) => this.#deliverOutcome(key, task, { ok: 0, error: toErrorInfo(err) }),
      )
      return
    }
    // a synchronous activity's result is queued at once: the instance's next step runs in the
    // same round (one record, one encode of the instance for its whole run)
    const outcome = activities.start(task)
    if (isThenable(outcome)) void outcome.then((done) => this.#deliverOutcome(key, task, done))
    else this.#deliverOutcome(key, task, outcome)
  }

  #deliverOutcome(key: string, task: ActivityTask, outcome: ActivityOutcome): void {
    if (this.#closed || !this.#pending.has(key)) return
    // the result waits in the partition's local queue, which is part of the commit record: a large
    // one goes by reference (the round waits for its blob), one over the ceiling fails the task
    outcome = boundOutcome(task, outcome, this.#inline, (value, what) => this.#bound(value, what))
    this.port.enqueueLocal(
      outcome.ok === 1
        ? { k: 'done', i: task.instanceId, s: task.seq, ok: 1, v: outcome.value }
        : { k: 'done', i: task.instanceId, s: task.seq, ok: 0, err: outcome.error },
    )
  }

  #finish(live: Live, status: RuntimeStatus, output: unknown, error: ErrorInfo | undefined): void {
    const rec = live.rec
    const now = Date.now()
    if (status === RuntimeStatus.Completed) this.port.metrics.completed(rec.name)
    if (status === RuntimeStatus.Failed) this.port.metrics.failed(rec.name)
    rec.status = status
    rec.updated = now
    rec.completed = now
    if (output !== undefined) rec.output = output
    if (error !== undefined) rec.error = error
    this.#forgetTasks(rec)
    this.#releaseLocks(rec)
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
    this.#waits.release(rec.id, () => encodeOutcome(rec))
  }

  /** Cancels an instance's timers and forgets its pending activities. */
  #forgetTasks(rec: InstanceRecord): void {
    for (const seq of rec.timers) this.port.cancelTimer(this.#timerKey(rec.id, seq))
    this.port.cancelTimer(this.#timerKey(rec.id, -1))
    for (const seq of rec.activities) this.#forgetActivity(this.#activityKey(rec.id, seq))
    rec.timers = []
    rec.activities = []
  }

  /**
   * Releases the critical section an instance asked for (held, or still being acquired): it ended,
   * was purged, or continued as new. A part still being acquired is given back when its grant
   * arrives ({@link #giveBack}). The caller saves or deletes the record.
   */
  #releaseLocks(rec: InstanceRecord): void {
    if (rec.lk === undefined) return
    for (const [t, key] of rec.lk[1]) this.port.send({ k: 'unlock', t, key, o: rec.id })
    delete rec.lk
  }

  /**
   * A lock was granted to an instance that no longer waits for it (it ended or was purged before
   * the grant arrived, or asked for another section since): the entities go back at once. Those
   * of the section the instance holds now stay (a lock's owner is the instance id).
   */
  #giveBack(msg: DoneMessage, live: Live | undefined): void {
    const current = new Set((live?.rec.lk?.[1] ?? []).map(([t, key]) => `${t}@${key}`))
    for (const [t, key] of msg.lk!) {
      if (!current.has(`${t}@${key}`)) this.port.send({ k: 'unlock', t, key, o: msg.i })
    }
  }

  /** Forgets a pending activity; its large input (only in the activity's item) goes after the commit. */
  #forgetActivity(key: string): void {
    const task = this.#pending.get(key)
    this.#pending.delete(key)
    this.port.dropItem(key)
    if (task?.input instanceof BlobRef) this.#dropRefsAfterCommit([task.input])
  }

  #fail(to: ReplyTo | undefined, err: Error, parent?: [string, number]): void {
    if (to !== undefined) this.port.replyTo(to, [to[1], 0, toErrorInfo(err)])
    else if (parent !== undefined)
      this.port.send({ k: 'done', i: parent[0], s: parent[1], ok: 0, err: toErrorInfo(err) })
    else this.port.logger.warn('instance message rejected', { p: this.port.p, error: err.message })
  }

  /**
   * Writes the record lazily: however many steps this round runs, one encode.
   * Once the record's history tail is long, it moves into a chunk item of its own (written once).
   */
  #save(rec: InstanceRecord): void {
    const live = this.#live.get(rec.id)
    // a tail whose values are large moves into a chunk early, so the record stays bounded
    const tailBytes = live?.tailBytes ?? 0
    const chunks = rec.hc
    chunkTail(this.port, rec, tailBytes >= this.#valueLimit)
    if (live !== undefined && rec.hc !== chunks) live.tailBytes = 0
    const hint = (live?.size ?? 256) + 256 + (rec.hc !== chunks ? tailBytes : 0)
    this.port.write(
      this.#recordKey(rec.id),
      () => {
        const bytes = encode(rec)
        if (live !== undefined) live.size = bytes.length
        return bytes
      },
      hint,
    )
  }

  /**
   * The instance of an id the client generated (a random UUID): only one this partition created
   * itself can exist, so there is nothing to read from the state bucket.
   */
  #fresh(id: string): Live | undefined {
    const cached = this.#live.get(id)
    if (cached !== undefined) return cached
    const key = this.#recordKey(id)
    if (this.port.isPinned(key)) return undefined // purged since: its delete is not stored yet
    this.port.markAbsent(key)
    return undefined
  }

  /** The cached instance of an id, marked as used; undefined when it is not in memory. */
  #cached(id: string): Live | undefined {
    const cached = this.#live.get(id)
    if (cached !== undefined) cached.used = true
    return cached
  }

  async #load(id: string): Promise<Live | undefined> {
    const cached = this.#live.get(id)
    if (cached !== undefined) {
      cached.used = true
      return cached
    }
    if (this.#absent.has(id)) return undefined
    const bytes = await this.port.readItem(this.#recordKey(id))
    const again = this.#live.get(id)
    if (again !== undefined) return again
    if (bytes === null) {
      if (this.#absent.size >= 10_000) this.#absent.clear()
      this.#absent.add(id)
      return undefined
    }
    const live: Live = {
      rec: decode(bytes, `instance ${id}`) as InstanceRecord,
      used: true,
      size: bytes.length,
      tailBytes: bytes.length,
    }
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
      let bytes: Uint8Array | null = null
      if (live !== undefined) {
        const view: InstanceView = { ...live.rec, tail: [] }
        if (query.history) view.history = await loadHistory(this.port, live)
        bytes = encode(view)
      }
      const n = this.port.roundNumber - 1
      this.port.afterCommit(() => respond({ v: WIRE_VERSION, ok: 1, instance: bytes, n }))
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
    // listed from the records (summaries are not stored); cached ones are the newest
    const values = new Map<string, Uint8Array | InstanceRecord | null>()
    for (const [k, v] of await this.port.readItems(partitionFilter(ItemKind.Instance, this.port.p)))
      values.set(k, v)
    for (const [k, v] of this.port.dirtyWrites(partitionPrefix(ItemKind.Instance, this.port.p)))
      values.set(k, v)
    for (const [id, live] of this.#live) values.set(this.#recordKey(id), live.rec)
    const out: Array<[string, Uint8Array]> = []
    for (const value of values.values()) {
      if (value === null) continue
      const rec = value instanceof Uint8Array ? (decode(value, 'instance') as InstanceRecord) : value
      const s = summaryOf(rec)
      if (s.id <= after || !matches(s, filter)) continue
      out.push([s.id, encode(s)])
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
    this.#waits.close()
  }

  #recordKey(id: string): string {
    return itemKey.instance(this.port.p, id)
  }
  #activityKey(id: string, seq: number): string {
    return itemKey.activity(this.port.p, id, seq)
  }
  #timerKey(id: string, seq: number): string {
    return itemKey.instanceTimer(this.port.p, id, seq)
  }
}

/** An ended instance's record without its history, as waits are answered. */
function encodeOutcome(rec: InstanceRecord): Uint8Array {
  return encode({ ...rec, tail: [] })
}

/**
 * Orchestration instances in a partition: one more kind of actor, with the same rounds, commits,
 * snapshots and exactly-once machinery as entities. An instance's record (status, input, output,
 * the newest history events) is the item `o.<p>.<id>`; older history lives in append-only chunks
 * `h.<p>.<id>.<hk>.<k>`, each written once, so a round encodes only what is new (not the whole
 * history). Watchers get the records from the change messages; listings read them too.
 * The live generator (cursor) stays cached between steps; after recovery or eviction the engine
 * replays the history. Activities start on this node at once (before the commit), and their
 * pending set is the items `a.<p>.<id>.<seq>`, re-run after a crash.
 * This host handles the messages (start, events, task outcomes, control, waits) and how an
 * instance ends. The data model is in instance-model.ts, the partition's port in
 * runtime/partition/host-port.ts; a step and its commands are instance-steps.ts, the instances in
 * memory instance-cache.ts, value bounds instance-values.ts, activities instance-activities.ts,
 * queries instance-queries.ts, history chunks instance-history.ts, held waits for completion
 * completion-waits.ts.
 */
import { itemKey, encode, isUnloaded } from '../nats/index.ts'
import {
  BadInputError,
  InstanceNotFoundError,
  ErrorCode,
  IllegalStateError,
  PayloadTooLargeError,
  toErrorInfo,
  type ErrorInfo,
} from '../../actors/index.ts'
import {
  type ActorMessage,
  type ControlMessage,
  type DoneMessage,
  type EventMessage,
  type Query,
  type QueryAnswer,
  type ReplyTo,
  type StartMessage,
  type WaitMessage,
} from '../../actors/wire/index.ts'
import { type NewEvent } from '../../actors/orchestration/index.ts'
import { checkValue, isThenable } from '../../entities/index.ts'
import { DEFER_UNKNOWN_MS, sizeOf, type InstanceHandler, type HostPort } from '../partition/index.ts'
import { CompletionWaits } from './completion-waits.ts'
import { InstanceCache, type Live } from './instance-cache.ts'
import { answerInstanceQuery } from './instance-queries.ts'
import { InstanceValues } from './instance-values.ts'
import { InstanceActivities, type CompletedAtOnce } from './instance-activities.ts'
import { InstanceSteps } from './instance-steps.ts'
import { chunkTail, dropHistory, loadHistory, refsOf } from './instance-history.ts'
import { encodeRecord } from './history-codec.ts'
import {
  InstanceExistsError,
  RECORD_FORMAT,
  RuntimeStatus,
  firstSeqOf,
  isTerminal,
  outcomeFieldsOf,
  statusFieldsOf,
  type InstanceRecord,
  type Workflows,
} from './instance-model.ts'

/** The messages an instance host applies. */
type InstanceMessage = StartMessage | EventMessage | DoneMessage | ControlMessage | WaitMessage

/** The answer to a wait for an instance that does not exist. */
const NO_INSTANCE = encode(null)
/** A slim answer to a start (`StartMessage.sl`) whose instance has not ended yet. */
const SLIM_STARTED = encode(0)

/** Instances of one partition. */
export class InstanceHost implements InstanceHandler {
  /** The instances in memory (instance-cache.ts). */
  readonly #cache: InstanceCache
  /** How values are bounded and stored by reference (instance-values.ts). */
  readonly #values: InstanceValues
  /** Held waits for completion. */
  readonly #waits: CompletionWaits
  /** The activities its instances scheduled and that have not completed (instance-activities.ts). */
  readonly #activities: InstanceActivities
  /** Runs a step and carries out its commands (instance-steps.ts). */
  readonly #steps: InstanceSteps
  /** Outcomes of activities that completed at once, for the steps after the current one (see #step). */
  readonly #atOnce: CompletedAtOnce[] = []
  /** Whether #step is taking those outcomes now (the steps they cause add theirs to the same loop). */
  #draining = false
  constructor(
    readonly port: HostPort,
    readonly workflows: Workflows,
  ) {
    this.#values = new InstanceValues(port)
    this.#cache = new InstanceCache(port, workflows.cacheSize)
    this.#activities = new InstanceActivities(port, workflows, this.#values, (done) =>
      this.#atOnce.push(done),
    )
    this.#steps = new InstanceSteps({
      port,
      workflows,
      values: this.#values,
      activities: this.#activities,
      finish: (live, status, output, error) => this.#finish(live, status, output, error),
      save: (rec) => this.#save(rec),
      releaseLocks: (rec) => this.#releaseLocks(rec),
      forgetTasks: (rec) => this.#forgetTasks(rec),
    })
    this.#waits = new CompletionWaits(port, this.#values.valueLimit)
  }

  want(msg: ActorMessage, into: Set<string>): void {
    if (msg.k === 'start' && msg.fresh === 1) return
    if (msg.k === 'start' || msg.k === 'ev' || msg.k === 'done' || msg.k === 'ctl' || msg.k === 'wait') {
      if (!this.#cache.isKnown(msg.i)) into.add(msg.i)
    }
  }

  async preload(ids: Set<string>): Promise<void> {
    await Promise.all(
      [...ids].map((id) =>
        // (a record this node cannot read fails the messages for it, not the round: see handle)
        this.#cache.load(id).catch((err: unknown) => {
          if (!this.#cache.isUnreadable(id, err)) throw err
        }),
      ),
    )
  }

  /**
   * Applies a message for an instance. One whose stored record this node cannot read (of a later
   * format, or damaged) is refused with the error naming why — answered to its sender, or to the
   * parent that started it — or, with no one to tell (a task's outcome, an event raised by an
   * orchestration), moved to the dead-letter stream: never applied to something else, and the
   * partition goes on with every other instance.
   */
  handle(msg: InstanceMessage): void | Promise<void> {
    try {
      const applied = this.#handle(msg)
      return applied === undefined ? undefined : applied.catch((err: unknown) => this.#unreadable(msg, err))
    } catch (err) {
      return this.#unreadable(msg, err)
    }
  }

  #unreadable(msg: InstanceMessage, err: unknown): void | Promise<void> {
    if (!this.#cache.isUnreadable(msg.i, err)) throw err
    const to = msg.k === 'done' ? undefined : msg.r
    const parent = msg.k === 'start' ? msg.pa : undefined
    if (to !== undefined || parent !== undefined) return this.#fail(to, err as Error, parent)
    return this.port.deadLetterMessage(msg, (err as Error).message)
  }

  #handle(msg: InstanceMessage): void | Promise<void> {
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
      this.port.notRunHere(`o:${msg.n}`)
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
    if (def?.input !== undefined && msg.ck !== 1) {
      // the instance runs with, and stores, what the schema gives
      const start = msg
      let checked: unknown
      try {
        checked = checkValue(def.input, msg.in, `input of orchestration '${msg.n}'`)
      } catch (err) {
        return this.#fail(msg.r, err as Error, msg.pa)
      }
      if (isThenable(checked)) {
        return Promise.resolve(checked).then(
          (value) => this.#start({ ...start, in: value, ck: 1 }),
          (err: unknown) => this.#fail(start.r, err as Error, start.pa),
        )
      }
      msg = { ...msg, in: checked, ck: 1 }
    }
    try {
      msg.in = this.#values.bound(msg.in, () => `input of instance '${msg.i}' (${msg.n})`)
    } catch (err) {
      return this.#fail(msg.r, err as Error, msg.pa)
    }
    if (msg.fresh === 1) return this.#startWith(msg, this.#cache.fresh(msg.i))
    const cached = this.#cache.cached(msg.i)
    if (cached !== undefined) return this.#startWith(msg, cached)
    return this.#cache.load(msg.i).then((live) => this.#startWith(msg, live))
  }

  #startWith(msg: StartMessage, live: Live | undefined): void | Promise<void> {
    // A Pending instance is started by the message its timer held (the timer is gone by then);
    // any other start finds the id taken, as a running one's (a second start replaced it, and the
    // first start's input never ran)
    if (
      live !== undefined &&
      (live.rec.status !== RuntimeStatus.Pending || this.port.hasTimer(this.#timerKey(msg.i, -1)))
    ) {
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
      v: RECORD_FORMAT,
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
      ...(msg.tc === undefined ? {} : { tc: msg.tc }),
    }
    this.#cache.set(msg.i, { rec, history: [], used: true, ready: true })
    if (msg.r !== undefined) {
      // Answered at the seal: with the outcome too when the instance ended in this same round
      // (a client's waitForCompletion then needs no round trip). A slim answer (`sl`) leaves out
      // what the client sent, the id included: [0, outcome], or 0.
      const live = this.#cache.get(msg.i)!
      const startedExec = rec.exec
      const slim = msg.sl === 1
      const checked = msg.ck === 1
      this.port.replyTo(msg.r, [
        msg.r[1],
        1,
        () =>
          this.#cache.get(msg.i) === live && isTerminal(rec.status)
            ? encode(slim ? [0, outcomeFieldsOf(rec, startedExec, checked)] : [msg.i, statusFieldsOf(rec)])
            : slim
              ? SLIM_STARTED
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
    // (a replaced instance's execution numbers its commands in a range of its own, as after a
    // continue-as-new: outcomes the replaced one left on their way match none of them)
    const seq = firstSeqOf(rec.exec)
    return this.#step(this.#cache.get(msg.i)!, [
      { e: 'started', input: rec.input, execution: rec.exec, ...(seq === 0 ? {} : { seq }) },
      ...(pending?.buffered ?? []),
    ])
  }

  async #event(msg: EventMessage): Promise<void> {
    const live = await this.#cache.load(msg.i)
    if (live === undefined || isTerminal(live.rec.status)) {
      const message = `cannot raise event '${msg.n}': instance '${msg.i}'`
      return this.#fail(
        msg.r,
        live === undefined
          ? new InstanceNotFoundError(`${message} does not exist`)
          : new BadInputError(`${message} is ${live.rec.status}`),
      )
    }
    try {
      if (isUnloaded(msg.d)) await this.port.blobs.load(msg.d)
      msg.d = this.#values.bound(msg.d, () => `data of event '${msg.n}' for instance '${msg.i}'`)
      const size = this.#values.size
      if (live.rec.status !== RuntimeStatus.Running && live.rec.buffered.length > 0) {
        // held in the record until the instance runs again: bounded like one step
        const buffered = encode(live.rec.buffered).length + size
        if (buffered > this.#values.stepLimit) {
          const what = `the events held for ${live.rec.status} instance '${msg.i}' with event '${msg.n}'`
          throw new PayloadTooLargeError(what, buffered, this.#values.stepLimit)
        }
      }
    } catch (err) {
      return this.#fail(msg.r, err as Error)
    }
    if (msg.r !== undefined) this.port.replyTo(msg.r, [msg.r[1], 1, encode(null)])
    await this.#feed(live, [{ e: 'event', name: msg.n, data: msg.d } as NewEvent], msg)
  }

  #done(msg: DoneMessage): void | Promise<void> {
    if (msg.res?.some((r) => isUnloaded(r.v)) === true) {
      // outcomes riding with a grant whose large results are stored by reference
      return this.#values.loadOutcomes(msg.res).then((res) => this.#done({ ...msg, res }))
    }
    if (isUnloaded(msg.v)) {
      // a large result stored by reference: the step needs its value (a lost one fails the task)
      return this.port.blobs.load(msg.v).then(
        () => this.#done(msg),
        (err: unknown) => this.#done({ k: 'done', i: msg.i, s: msg.s, ok: 0, err: toErrorInfo(err) }),
      )
    }
    const cached = this.#cache.cached(msg.i)
    if (cached !== undefined) return this.#doneWith(msg, cached)
    return this.#cache.load(msg.i).then((live) => this.#doneWith(msg, live))
  }

  #doneWith(msg: DoneMessage, live: Live | undefined): void | Promise<void> {
    if (msg.lk !== undefined && live?.rec.lk?.[0] !== msg.s) return this.#giveBack(msg, live)
    if (live === undefined || isTerminal(live.rec.status)) return
    const rec = live.rec
    const at = rec.activities.indexOf(msg.s)
    if (rec.status !== RuntimeStatus.Running && !this.#mayHold(rec, msg)) {
      // A suspended instance holds what arrives in its record, up to what one step may take (as
      // events): the outcomes of a fan-out that completed meanwhile grew the record past what a
      // commit record holds, and the partition failed at every commit. Past that, an activity
      // stays pending and runs again when the instance resumes; another outcome waits as a
      // deferred message.
      if (at >= 0) return this.#activities.dropOutcome(rec.id, msg.s)
      return this.port.defer(msg)
    }
    if (this.#steps.sendHeldCalls(rec, msg.s)) this.#save(rec) // whatever becomes of the grant below
    if (at >= 0) {
      rec.activities.splice(at, 1)
      this.#activities.forget(rec.id, msg.s)
    }
    const t = rec.timers.indexOf(msg.s)
    if (t >= 0) rec.timers.splice(t, 1)
    // (a grant brings the outcomes of the calls that travelled in its request: one step takes all)
    return this.#feed(live, this.#values.taskOutcomes(rec, msg), msg)
  }

  async #control(msg: ControlMessage): Promise<void> {
    const live = await this.#cache.load(msg.i)
    if (live === undefined)
      return this.#fail(msg.r, new InstanceNotFoundError(`instance '${msg.i}' does not exist`))
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
        {
          const stepped = this.#step(live, rec.buffered.splice(0))
          this.#activities.rerunDropped(rec.id)
          return stepped
        }
      case 'purge':
        if (!isTerminal(rec.status)) {
          return this.#fail(
            msg.r,
            new IllegalStateError(`cannot purge instance '${rec.id}': it is ${rec.status}`),
          )
        }
        {
          // its large values go once the purge is durable
          const refs = await this.#values.refsOfRecord(live)
          // a purge of the same instance that ran while this one read its history went first
          if (this.#cache.get(rec.id) !== live)
            return this.#fail(msg.r, new InstanceNotFoundError(`instance '${msg.i}' does not exist`))
          this.#values.dropAfterCommit(refs)
        }
        this.#forgetTasks(rec)
        this.#releaseLocks(rec)
        dropHistory(this.port, rec)
        this.port.write(this.#recordKey(rec.id), null)
        this.#cache.delete(rec.id)
        return void ok()
    }
  }

  /** Answers a wait at once when the instance ended or does not exist, else holds it. */
  async #wait(msg: WaitMessage): Promise<void> {
    const to = msg.r
    if (to === undefined) return
    const live = await this.#cache.load(msg.i)
    if (live === undefined) return this.port.replyTo(to, [to[1], 1, NO_INSTANCE])
    if (isTerminal(live.rec.status)) return this.port.replyTo(to, [to[1], 1, encodeOutcome(live.rec)])
    this.#waits.hold(msg.i, to, msg.ms)
  }

  /** Whether an instance that is not running can hold the outcome `msg` in its record too. */
  #mayHold(rec: InstanceRecord, msg: DoneMessage): boolean {
    const limit = this.#values.stepLimit
    return encode(rec.buffered).length + sizeOf(msg, limit) <= limit
  }

  /**
   * Delivers an event to a running instance, or buffers it while suspended or pending. A promise
   * only when the history has to be read first.
   */
  #feed(live: Live, events: NewEvent[], msg: EventMessage | DoneMessage): void | Promise<void> {
    if (live.rec.status !== RuntimeStatus.Running) {
      live.rec.buffered.push(...events)
      this.#save(live.rec)
      return
    }
    const name = live.rec.name
    if (!this.workflows.orchestrations.has(name) && this.port.knownElsewhere(`o:${name}`)) {
      // another node runs this orchestration (a rolling deploy): keep the message for it
      const kept = { ...msg }
      if (kept.k === 'ev') delete kept.r // answered already
      this.port.notRunHere(`o:${name}`)
      return this.port.defer(kept)
    }
    if (live.ready !== true) {
      return this.#prepare(live).then((ready) => {
        if (ready) return this.#step(live, events)
      })
    }
    return this.#step(live, events)
  }

  /**
   * Runs a step, then the steps the outcomes of activities that completed at once call for (see
   * instance-activities.ts), theirs in turn, in the order they completed, until none is left: an
   * instance whose activities are all synchronous runs to its end here, in one round. While the
   * round is full, the outcomes left become pending activities and wait in the local queue, as
   * those of other activities do. A promise only when a step had to wait (a load).
   */
  #step(live: Live, events: NewEvent[]): void | Promise<void> {
    this.#steps.run(live, events)
    if (this.#draining) return
    this.#draining = true
    let waiting: Promise<void> | undefined
    try {
      waiting = this.#drainAtOnce()
    } finally {
      if (waiting === undefined) this.#draining = false
    }
    return waiting?.finally(() => (this.#draining = false))
  }

  #drainAtOnce(): Promise<void> | undefined {
    for (let next = this.#atOnce.shift(); next !== undefined; next = this.#atOnce.shift()) {
      const live = this.#cache.cached(next.msg.i)
      // (an instance that ended meanwhile takes no outcome)
      if (live === undefined || isTerminal(live.rec.status)) continue
      if (!this.port.hasRoom()) {
        // the round is full: the outcome waits in the local queue, its activity pending
        live.rec.activities.push(next.msg.s)
        this.#activities.pend(next)
        continue
      }
      const waiting = this.#doneWith(next.msg, live)
      if (waiting !== undefined) return waiting.then(() => this.#drainAtOnce())
    }
    return undefined
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
    // (a deploy that changed the code under running instances: the operator should hear of it)
    if (error?.code === ErrorCode.NonDeterminism)
      this.port.logger.warn('instance failed: its code no longer replays its history', {
        p: this.port.p,
        instance: rec.id,
        name: rec.name,
        error: error.message,
      })
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
    this.#cache.ended(rec.id, live)
  }

  /** Cancels an instance's timers and forgets its pending activities. */
  #forgetTasks(rec: InstanceRecord): void {
    for (const seq of rec.timers) this.port.cancelTimer(this.#timerKey(rec.id, seq))
    this.port.cancelTimer(this.#timerKey(rec.id, -1))
    for (const seq of rec.activities) this.#activities.forget(rec.id, seq)
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
    const live = this.#cache.get(rec.id)
    // a tail whose values are large moves into a chunk early, so the record stays bounded
    const tailBytes = live?.tailBytes ?? 0
    const chunks = rec.hc
    chunkTail(this.port, rec, tailBytes >= this.#values.valueLimit)
    if (live !== undefined && rec.hc !== chunks) live.tailBytes = 0
    const hint = (live?.size ?? 256) + 256 + (rec.hc !== chunks ? tailBytes : 0)
    this.port.write(
      live === undefined ? this.#recordKey(rec.id) : (live.key ??= this.#recordKey(rec.id)),
      () => {
        const bytes = encodeRecord(rec)
        if (live !== undefined) live.size = bytes.length
        return bytes
      },
      hint,
    )
  }

  // ---------------------------------------------------------------------------------------------
  // Queries (instance-queries.ts)

  /** Answers instance queries; false when the query is not about instances. */
  answer(query: Query, respond: (answer: QueryAnswer) => void): Promise<boolean> {
    return answerInstanceQuery(this.port, this.#cache, query, respond)
  }

  // ---------------------------------------------------------------------------------------------
  // Recovery

  /** Rebuilds a pending activity from its item `a.*` (at recovery). */
  replayActivity(key: string, value: Uint8Array | null): void {
    this.#activities.replay(key, value)
  }

  recovered(): void {
    this.#activities.recovered()
  }

  async failInstance(id: string, error: Error): Promise<void> {
    const live = await this.#cache.load(id)
    if (live === undefined || isTerminal(live.rec.status)) return
    this.#finish(live, RuntimeStatus.Failed, undefined, toErrorInfo(error))
  }

  snapshotted(): void {
    this.#cache.sweepEnded()
  }

  close(): void {
    this.#activities.close()
    this.#waits.close()
  }

  #recordKey(id: string): string {
    return itemKey.instance(this.port.p, id)
  }
  #timerKey(id: string, seq: number): string {
    return itemKey.instanceTimer(this.port.p, id, seq)
  }
}

/** What a wait for an ended instance is answered with: its status fields (no history, no tasks). */
function encodeOutcome(rec: InstanceRecord): Uint8Array {
  return encode(statusFieldsOf(rec))
}

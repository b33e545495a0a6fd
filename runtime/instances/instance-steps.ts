/**
 * One step of an orchestration instance: the replay engine (actors/orchestration/) runs the
 * instance's code over its history and the new events; the step's values are bounded
 * (instance-values.ts), its events appended to the history, and its commands carried out —
 * activities scheduled, durable timers armed, messages sent to entities and other instances,
 * critical sections asked for — all in the open round. A continue-as-new starts the next
 * execution in the same step. Apart from the instance host (instance-host.ts), which decides
 * when a step runs and how an instance ends.
 */
import {
  BadInputError,
  IllegalStateError,
  PayloadTooLargeError,
  toErrorInfo,
  type ErrorInfo,
} from '../../actors/index.ts'
import { OrchestrationExecutor, type Command, type NewEvent } from '../../actors/orchestration/index.ts'
import { BlobRef, copyOf, itemKey } from '../nats/index.ts'
import type { HostPort } from '../partition/index.ts'
import type { InstanceActivities } from './instance-activities.ts'
import type { Live } from './instance-cache.ts'
import { dropHistory, refsOf } from './instance-history.ts'
import { RuntimeStatus, firstSeqOf, type InstanceRecord, type Workflows } from './instance-model.ts'
import type { InstanceValues } from './instance-values.ts'
import { endStep, sendContext, stepSpan } from './instance-spans.ts'
import { activityCallId } from '../../actors/wire/index.ts'
import type { ActivityTask, EntityOp, LockMessage, StartMessage } from '../../actors/wire/index.ts'

/** What a step needs of the instance host. */
export interface StepHost {
  readonly port: HostPort
  readonly workflows: Workflows
  readonly values: InstanceValues
  readonly activities: InstanceActivities
  /** Ends an instance with a final status (see InstanceHost). */
  finish(live: Live, status: RuntimeStatus, output: unknown, error: ErrorInfo | undefined): void
  /** Writes the record lazily in the open round. */
  save(rec: InstanceRecord): void
  /** Releases the critical section the instance asked for. */
  releaseLocks(rec: InstanceRecord): void
  /** Cancels the instance's timers and forgets its pending activities. */
  forgetTasks(rec: InstanceRecord): void
}

/** Runs the steps of a partition's instances. */
export class InstanceSteps {
  /** Trace context of the step running now (instance-spans.ts); undefined when not tracing. */
  #tc: string | undefined
  /** The releases the calls of the step being carried out carry (see releasesOf). */
  #releases: Releases | undefined

  constructor(readonly host: StepHost) {}

  /**
   * Runs one orchestration step and carries out its commands; in a span when tracing. `carried`:
   * how many of the events a continue-as-new carried over (the first step of its execution).
   */
  run(live: Live, events: NewEvent[], carried = 0): void {
    if (!this.host.port.tracing.on) return this.#run(live, events, carried)
    const span = stepSpan(this.host.port, live.rec)
    // an instance started without a trace context: its first step's span holds its later ones
    live.rec.tc ??= span.context
    const outer = this.#tc
    this.#tc = span.context
    try {
      this.#run(live, events, carried)
    } finally {
      this.#tc = outer
      endStep(span, live.rec)
    }
  }

  #run(live: Live, events: NewEvent[], carried: number): void {
    const rec = live.rec
    const def = this.host.workflows.orchestrations.get(rec.name)
    if (def === undefined) {
      this.host.finish(
        live,
        RuntimeStatus.Failed,
        undefined,
        toErrorInfo(new BadInputError(`unknown orchestration '${rec.name}'`)),
      )
      return
    }
    live.executor ??= new OrchestrationExecutor(def, rec.id, {
      alwaysReplay: this.host.workflows.alwaysReplay,
      unwrap: ownCopy,
      logSink: (line, level) =>
        this.host.port.logger[level === 'debug' ? 'info' : level](line, { instance: rec.id }),
    })
    const now = Date.now()
    const history = live.history
    if (history === undefined) throw new IllegalStateError(`history of instance '${rec.id}' is not loaded`)
    this.host.port.metrics.stepping()
    const result = live.executor.step(history, events, now)
    this.host.port.metrics.stepped(rec.name)
    let sizes: number[]
    try {
      sizes = this.host.values.measureStep(rec, result)
    } catch (err) {
      // the step's values cannot be stored: the instance fails without them (its history keeps
      // what was committed before this step)
      const error = carried > 0 ? this.#carriedTooLarge(rec, carried, err) : err
      this.host.finish(live, RuntimeStatus.Failed, undefined, toErrorInfo(error))
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
    this.#releases = this.host.port.releaseWithCalls() ? releasesOf(result.commands) : undefined
    for (let i = 0; i < result.commands.length; i++)
      this.#command(rec, result.commands[i]!, sizes[i + 1]!, result.commands)
    this.#releases = undefined
    switch (result.status) {
      case 'running':
        this.host.save(rec)
        return
      case 'completed':
        this.host.finish(live, RuntimeStatus.Completed, result.output, undefined)
        return
      case 'failed':
        this.host.finish(live, RuntimeStatus.Failed, undefined, result.error)
        return
      case 'continuedAsNew': {
        const next = result.continueAsNew!
        this.host.releaseLocks(rec)
        // what the ended execution still waited for is not the next one's: its timers and
        // activities go (their outcomes, and those of children and entity calls, find no task of
        // their seq in the next execution, which numbers its own from firstSeqOf)
        this.host.forgetTasks(rec)
        // the values of the ended execution go once its end is durable (not those carried over)
        const carried = new Set<BlobRef>(refsOf(next.carriedEvents))
        if (next.input instanceof BlobRef) carried.add(next.input)
        if (rec.custom instanceof BlobRef) carried.add(rec.custom)
        this.host.values.dropAfterCommit(refsOf(history).filter((r) => !carried.has(r)))
        dropHistory(this.host.port, rec)
        rec.hk = this.host.port.roundNumber
        live.history = []
        rec.input = next.input
        rec.exec++
        live.executor = undefined
        this.run(
          live,
          [
            { e: 'started', input: next.input, execution: rec.exec, seq: firstSeqOf(rec.exec) },
            ...next.carriedEvents,
          ],
          next.carriedEvents.length,
        )
        return
      }
    }
  }

  /**
   * The error of a first step over the step limit because of the events continue-as-new carried
   * over (one step takes them all, and one commit record holds the step): says so and what to do,
   * where the step's own words name only its size. Any other error as it is.
   */
  #carriedTooLarge(rec: InstanceRecord, carried: number, err: unknown): unknown {
    if (!(err instanceof PayloadTooLargeError) || err.limit !== this.host.values.stepLimit) return err
    return new PayloadTooLargeError(
      `the first step of execution ${rec.exec} of instance '${rec.id}' (${rec.name}), with the ` +
        `${carried} unconsumed events continue-as-new carried over (consume them before continuing, ` +
        `or continue with { preserveUnprocessedEvents: false }),`,
      err.size,
      err.limit,
    )
  }

  #command(rec: InstanceRecord, c: Command, size: number, step: readonly Command[]): void {
    const id = rec.id
    switch (c.c) {
      case 'activity': {
        const task: ActivityTask = {
          instanceId: id,
          seq: c.seq,
          name: c.name,
          input: c.input,
          attempt: c.attempt ?? 1,
          id: activityCallId(id, rec.hk, c.first ?? c.seq),
        }
        if (this.#tc !== undefined) task.tc = this.#tc
        // (one that completed at once is not pending: its outcome is on its way to the next step)
        if (!this.host.activities.schedule(task, size)) rec.activities.push(c.seq)
        return
      }
      case 'timer':
        rec.timers.push(c.seq)
        this.host.port.setTimer(itemKey.instanceTimer(this.host.port.p, id, c.seq), c.fireAt, {
          k: 'done',
          i: id,
          s: c.seq,
          ok: 1,
        })
        return
      case 'cancelTimer': {
        const at = rec.timers.indexOf(c.seq)
        if (at >= 0) rec.timers.splice(at, 1)
        this.host.port.cancelTimer(itemKey.instanceTimer(this.host.port.p, id, c.seq))
        return
      }
      case 'sub':
        this.host.port.send(
          this.#traced(rec, { k: 'start', i: c.instanceId, n: c.name, in: c.input, pa: [id, c.seq] }),
        )
        return
      case 'call': {
        // a call made right after the lock request travels with it (see the 'lock' case)
        if (c.lock !== undefined) return
        const op = this.#callOf(rec, c)
        if (this.#releases?.carriers.has(c) === true) op.rl = 1
        this.host.port.send(op)
        return
      }
      case 'signal':
        this.host.port.send(
          this.#traced(rec, { k: 'op', t: c.entity[0], key: c.entity[1], op: c.op, a: c.args }),
        )
        return
      case 'start':
        this.host.port.send(this.#traced(rec, { k: 'start', i: c.instanceId, n: c.name, in: c.input }))
        return
      case 'lock': {
        const [first, ...rest] = c.entities
        if (first === undefined) this.host.port.enqueueLocal({ k: 'done', i: id, s: c.seq, ok: 1 })
        else {
          const lock: LockMessage = {
            k: 'lock',
            t: first[0],
            key: first[1],
            o: [id, c.seq],
            rest,
            all: c.entities,
          }
          const ops: EntityOp[] = []
          for (const s of step) if (s.c === 'call' && s.lock === c.seq) ops.push(this.#callOf(rec, s))
          // While some node of the hub would ignore calls in a lock request (placement/registry.ts)
          // they wait in the record and go when the grant arrives (sendHeldCalls): as if the code
          // had awaited the lock first. Only the messages that carry them and their outcomes differ
          // (and the steps that take those outcomes), not the events of the history.
          if (ops.length === 0) rec.lk = [c.seq, c.entities]
          else if (this.host.port.carryCalls()) {
            rec.lk = [c.seq, c.entities]
            lock.ops = ops
          } else rec.lk = [c.seq, c.entities, ops]
          this.host.port.send(lock)
        }
        return
      }
      case 'unlock': {
        delete rec.lk
        // (an entity whose last call of this step carried the release needs no unlock)
        const carried = this.#releases?.carried.get(c)
        for (const [t, key] of c.entities)
          if (carried?.has(entityName(t, key)) !== true) this.host.port.send({ k: 'unlock', t, key, o: id })
        return
      }
    }
  }

  /**
   * The grant of lock task `seq` arrived: the calls made with that request that waited in the
   * record (see the 'lock' case) go now, before anything the step sends, so a release right after
   * the grant runs after them at each entity. True when there were such calls (the caller saves).
   */
  sendHeldCalls(rec: InstanceRecord, seq: number): boolean {
    const section = rec.lk
    if (section?.[0] !== seq || section[2] === undefined) return false
    for (const call of section[2]) this.host.port.send(call)
    rec.lk = [section[0], section[1]]
    return true
  }

  /** The operation message of an entity call. */
  #callOf(rec: InstanceRecord, c: Extract<Command, { c: 'call' }>): EntityOp {
    return this.#traced(rec, {
      k: 'op',
      t: c.entity[0],
      key: c.entity[1],
      op: c.op,
      a: c.args,
      ro: [rec.id, c.seq],
    })
  }

  /** A message a step sends, with the trace context of its own span when the step is traced. */
  #traced<M extends StartMessage | EntityOp>(rec: InstanceRecord, msg: M): M {
    if (this.#tc === undefined) return msg
    const tc = sendContext(this.host.port, this.#tc, rec, msg)
    if (tc !== undefined) msg.tc = tc
    return msg
  }
}

/**
 * A value of the history as the code gets it: a copy of its own, decoded as a replay after a
 * restart decodes it from storage. The history's events hold the values until the round's record
 * is encoded at the seal, so code that changed a result, an event's data or its input in place
 * (`r.push(4)`) wrote the change into the history, and a replay applied it twice; and a Map an
 * activity returned here was a Map live and a plain object after a restart. A large value
 * (stored by reference: its blob, written once, cannot change) is given as it is, uncopied.
 */
function ownCopy(value: unknown): unknown {
  return value instanceof BlobRef ? value.value : copyOf(value)
}

/** Which calls of a step carry a release, and the entities each release leaves to them. */
interface Releases {
  carriers: Set<Command>
  carried: Map<Command, Set<string>>
}

const entityName = (type: string, key: string): string => `${type}\u0000${key}`

/**
 * The releases a step's calls can carry (`EntityOp.rl`): for each entity a release (`unlock`)
 * names, the last call to it issued before the release in the same step — not one that travels
 * with a lock request, nor one before another lock or release of the step. The entity runs that
 * call, then unlocks: one message instead of two, in the order the entity would have seen them.
 * (A section never signals an entity it locked: such code is refused.) Undefined when the step
 * releases nothing.
 */
export function releasesOf(step: readonly Command[]): Releases | undefined {
  let releases: Releases | undefined
  for (let i = 0; i < step.length; i++) {
    const release = step[i]!
    if (release.c !== 'unlock') continue
    for (const [type, key] of release.entities) {
      for (let j = i - 1; j >= 0; j--) {
        const c = step[j]!
        if (c.c === 'lock' || c.c === 'unlock') break
        if (c.c !== 'call' || c.lock !== undefined) continue
        if (c.entity[0] !== type || c.entity[1] !== key) continue
        releases ??= { carriers: new Set(), carried: new Map() }
        releases.carriers.add(c)
        let carried = releases.carried.get(release)
        if (carried === undefined) releases.carried.set(release, (carried = new Set()))
        carried.add(entityName(type, key))
        break
      }
    }
  }
  return releases
}

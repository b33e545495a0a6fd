/**
 * How an orchestration instance stores the values its steps produce: inline up to a size, else by
 * reference to a blob the open round waits for (runtime/nats/blobs.ts); each value bounded by a
 * limit, and each step's total by another (runtime/partition/value-limits.ts). Also which blobs an
 * instance holds and their deletion once a round that drops them is durable. Apart from the
 * instance host (instance-host.ts), which calls these on every step.
 */
import { PayloadTooLargeError, counted, toErrorInfo } from '../../actors/index.ts'
import type { HistoryEvent, NewEvent, StepResult } from '../../actors/orchestration/index.ts'
import type { ActivityOutcome, ActivityTask, DoneMessage } from '../../actors/wire/index.ts'
import { BlobRef, encode, isUnloaded, unencodable } from '../nats/index.ts'
import { boundOutcome, checkSize, sizeOf, type HostPort } from '../partition/index.ts'
import type { Live } from './instance-cache.ts'
import { loadHistory, refsOf } from './instance-history.ts'
import type { InstanceRecord } from './instance-model.ts'

/** "of instance '<id>' (<name>)", for error messages. */
const of = (rec: InstanceRecord): string => `of instance '${rec.id}' (${rec.name})`
type Described<E extends string, T> = Extract<T, { e: E }>
const describeInput = (rec: InstanceRecord) => `input ${of(rec)}`
const describeResult = (rec: InstanceRecord, ev: Described<'completed', HistoryEvent>) =>
  `result of task ${ev.seq} ${of(rec)}`
const describeTaskError = (rec: InstanceRecord, ev: { seq: number }) => `error of task ${ev.seq} ${of(rec)}`
const describeError = (rec: InstanceRecord) => `error ${of(rec)}`
const describeEvent = (rec: InstanceRecord, ev: Described<'event', HistoryEvent>) =>
  `data of event '${ev.name}' ${of(rec)}`
const describeCustom = (rec: InstanceRecord) => `custom status ${of(rec)}`
const describeOutput = (rec: InstanceRecord) => `output ${of(rec)}`
const describeContinued = (rec: InstanceRecord) => `continue-as-new input ${of(rec)}`
const describeActivityInput = (rec: InstanceRecord, c: { name: string; seq: number }) =>
  `input of activity '${c.name}' (task ${c.seq}) ${of(rec)}`
const describeStartInput = (rec: InstanceRecord, c: { instanceId: string }) =>
  `input of instance '${c.instanceId}' started ${of(rec)}`

/** The value bounds of the instances of one partition. */
export class InstanceValues {
  /** Largest single value of an instance, and largest total one step may add (value-limits.ts). */
  readonly valueLimit: number
  readonly stepLimit: number
  /** Largest value kept inline; larger ones are stored by reference (blobs.ts). */
  readonly inline: number
  /** Size in the record of the value {@link bound} returned last (no allocation per value). */
  size = 0
  /**
   * The value {@link #sizeOf} measured last, and its bytes when it had to encode it and found it
   * over the inline size: such a value is stored from these bytes instead of being encoded again
   * (a large value costs one encode). Cleared once used, so no large buffer outlives its step.
   */
  #encodedValue: unknown = undefined
  #encodedBytes: Uint8Array | undefined = undefined
  readonly #keepEncoded = (bytes: Uint8Array): void => {
    if (bytes.length > this.inline) this.#encodedBytes = bytes
  }
  readonly #measure = (value: unknown): number => this.#sizeOf(value)
  readonly #store = (value: unknown, what: () => string): unknown => this.bound(value, what)

  constructor(readonly port: HostPort) {
    this.valueLimit = Math.floor(port.valueLimit / 4)
    this.stepLimit = port.valueLimit
    this.inline = Math.min(port.blobs.limits.threshold, this.valueLimit)
  }

  /** The references an instance holds: its record's values, its history, held events. */
  async refsOfRecord(live: Live): Promise<BlobRef[]> {
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
  dropAfterCommit(refs: BlobRef[]): void {
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

  /**
   * A value as the instance stores it: itself up to the inline size, else a reference whose blob
   * the open round waits for (blobs.ts). Sets {@link size} to its size in the record. Throws
   * `PayloadTooLargeError` over the ceiling and `CodecError` for a value that cannot be encoded.
   */
  bound(value: unknown, what: () => string): unknown {
    return this.#boundSized(value, this.#sizeOf(value), what)
  }

  /** The encoded size of a value (a reference: -1), as {@link bound} compares it to the inline size. */
  #sizeOf(value: unknown): number {
    if (value instanceof BlobRef) return -1
    // (measured just before: boundOutcome sizes a result, then stores it)
    if (value === this.#encodedValue && this.#encodedBytes !== undefined) return this.#encodedBytes.length
    this.#encodedBytes = undefined
    this.#encodedValue = value
    // strict: a function in a value is refused, not stored as undefined (see sizeOf)
    return sizeOf(value, this.inline, this.#keepEncoded, true)
  }

  /** {@link bound} of a value whose {@link #sizeOf} is known (measured once per value). */
  #boundSized(value: unknown, size: number, what: () => string): unknown {
    if (size < 0) {
      this.size = 128
      return value
    }
    const bytes = this.#encodedValue === value ? this.#encodedBytes : undefined
    this.#encodedBytes = this.#encodedValue = undefined
    if (size <= this.inline) {
      this.size = size
      return value
    }
    const { ref, written } = this.port.blobs.put(bytes ?? encode(value), what)
    this.port.holdFor(written)
    this.size = 128
    return ref.attach(value)
  }

  /**
   * An activity's outcome as the instance takes it (value-limits.ts `boundOutcome`): a large
   * result goes by reference, sized and stored with one encode.
   */
  boundOutcome(task: ActivityTask, outcome: ActivityOutcome): ActivityOutcome {
    return boundOutcome(task, outcome, this.inline, this.#store, this.#measure)
  }

  /**
   * Sizes of what a step adds: [history bytes, then one per command]. Values over the inline size
   * are replaced by references, in the events and commands and in the result (see {@link bound}).
   * Throws PayloadTooLargeError naming the value when one is over the ceiling (or an error over
   * the value limit), or the step is over the step limit; BadInputError naming the value and the
   * place in it of a function or symbol (which no value of an instance may hold: dropped, replay
   * would see another value than the live step), CodecError for another value that cannot be
   * encoded.
   */
  measureStep(rec: InstanceRecord, result: StepResult): number[] {
    // (no closure per value: the words of an error are built by a function of the module, and
    // only when a value is over the inline size)
    let history = 0
    for (const ev of result.appended) {
      history += 24
      switch (ev.e) {
        case 'started':
          history += this.#stored(ev, 'input', rec, describeInput)
          break
        case 'completed':
          history += this.#stored(ev, 'result', rec, describeResult)
          break
        case 'failed':
          history += this.#checked(ev.error, rec, ev, describeTaskError)
          break
        case 'event':
          history += this.#stored(ev, 'data', rec, describeEvent)
          break
        case 'customStatus':
          // kept in the record's field too
          history += 2 * this.#stored(ev, 'value', rec, describeCustom)
          break
        case 'finished':
          if (ev.status === 'completed') {
            const size = this.#stored(ev, 'output', rec, describeOutput)
            result.output = ev.output
            history += 2 * size
          } else if (ev.status === 'failed') history += this.#checked(ev.error, rec, ev, describeError)
          else {
            const size = this.#stored(ev, 'input', rec, describeContinued)
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
          size += this.#stored(c, 'input', rec, describeActivityInput)
          break
        case 'sub':
        case 'start':
          size += this.#stored(c, 'input', rec, describeStartInput)
          break
        case 'call':
        case 'signal': {
          let args: unknown[] | undefined
          for (let i = 0; i < c.args.length; i++) {
            const value = c.args[i]
            let measured: number
            try {
              measured = this.#sizeOf(value)
            } catch (err) {
              throw unencodable(
                value,
                `argument ${i + 1} of ${c.entity[0]}@${c.entity[1]}.${c.op} ${of(rec)}`,
                err,
              )
            }
            if (measured >= 0 && measured <= this.inline) {
              size += measured
              continue
            }
            const arg = this.#boundArg(rec, c, i, measured)
            size += this.size
            if (arg !== value) (args ??= c.args.slice())[i] = arg
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
    if (total > this.stepLimit) {
      // (a fan-out of a few thousand tasks gets here: say how to issue them)
      const hint =
        result.commands.length > 1
          ? '; issue fewer tasks in one step: await them in batches, or fan out through sub-orchestrations'
          : ''
      throw new PayloadTooLargeError(
        `a step ${of(rec)} (${counted(result.commands.length, 'command')} and ${counted(result.appended.length, 'history event')}${hint})`,
        total,
        this.stepLimit,
      )
    }
    return sizes
  }

  /** {@link bound} of a large argument of an entity call or signal. */
  #boundArg(
    rec: InstanceRecord,
    c: { entity: [string, string]; op: string; args: unknown[] },
    i: number,
    size: number,
  ): unknown {
    return this.#boundSized(
      c.args[i],
      size,
      () => `argument ${i + 1} of ${c.entity[0]}@${c.entity[1]}.${c.op} ${of(rec)}`,
    )
  }

  /**
   * Bounds `obj[key]` in place (see {@link bound}) and returns its size in the record; the words
   * of an error come from `describe`, and a closure for them is made only for a large value.
   */
  #stored<T extends object, K extends keyof T & string>(
    obj: T,
    key: K,
    rec: InstanceRecord,
    describe: (rec: InstanceRecord, obj: T) => string,
  ): number {
    const value = obj[key]
    let size: number
    try {
      size = this.#sizeOf(value)
    } catch (err) {
      throw unencodable(value, describe(rec, obj), err)
    }
    if (size >= 0 && size <= this.inline) return size
    const stored = this.#boundSized(value, size, () => describe(rec, obj))
    if (stored !== value) obj[key] = stored as T[K]
    return this.size
  }

  /** {@link checkSize} against the value limit, with the error's words from `describe`. */
  #checked<T>(
    value: unknown,
    rec: InstanceRecord,
    obj: T,
    describe: (rec: InstanceRecord, obj: T) => string,
  ): number {
    const size = sizeOf(value, this.valueLimit)
    return size <= this.valueLimit ? size : checkSize(value, this.valueLimit, () => describe(rec, obj))
  }

  /**
   * The events of a task's outcome: one, or for a grant that brings the outcomes of the calls that
   * travelled in its request (`res`), the grant's and then theirs, in the order their entities
   * were locked — the order in which the instance would have seen them had it awaited the lock
   * before calling — to be taken in one step.
   */
  taskOutcomes(rec: InstanceRecord, msg: DoneMessage): NewEvent[] {
    const events = [this.taskOutcome(rec, msg)]
    for (const r of msg.res ?? []) if (r.i === msg.i) events.push(this.taskOutcome(rec, r))
    return events
  }

  /**
   * Loads the large results (stored by reference) of the call outcomes that rode with a grant; an
   * outcome whose result cannot be read becomes a failure of that call (never of the partition).
   */
  async loadOutcomes(res: DoneMessage[]): Promise<DoneMessage[]> {
    const load = async (r: DoneMessage): Promise<DoneMessage> => {
      if (!isUnloaded(r.v)) return r
      try {
        await this.port.blobs.load(r.v)
        return r
      } catch (err) {
        return { k: 'done', i: r.i, s: r.s, ok: 0, err: toErrorInfo(err) }
      }
    }
    return Promise.all(res.map(load))
  }

  /**
   * The event a task's outcome becomes. A result too large for the instance record fails the
   * task with PayloadTooLargeError (the orchestration can catch it); a huge error is shortened.
   */
  taskOutcome(rec: InstanceRecord, msg: DoneMessage): NewEvent {
    const limit = this.valueLimit
    if (msg.ok === 1) {
      try {
        const result = this.bound(
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
}

/**
 * How an orchestration instance stores the values its steps produce: inline up to a size, else by
 * reference to a blob the open round waits for (runtime/nats/blobs.ts); each value bounded by a
 * limit, and each step's total by another (runtime/partition/value-limits.ts). Also which blobs an
 * instance holds and their deletion once a round that drops them is durable. Apart from the
 * instance host (instance-host.ts), which calls these on every step.
 */
import { PayloadTooLargeError, toErrorInfo } from '../../actors/index.ts'
import type { NewEvent, StepResult } from '../../actors/orchestration/index.ts'
import type { DoneMessage } from '../../actors/wire/index.ts'
import { BlobRef, encode } from '../nats/index.ts'
import { checkSize, sizeOf, type HostPort } from '../partition/index.ts'
import type { Live } from './instance-cache.ts'
import { loadHistory, refsOf } from './instance-history.ts'
import type { InstanceRecord } from './instance-model.ts'

/** The value bounds of the instances of one partition. */
export class InstanceValues {
  /** Largest single value of an instance, and largest total one step may add (value-limits.ts). */
  readonly valueLimit: number
  readonly stepLimit: number
  /** Largest value kept inline; larger ones are stored by reference (blobs.ts). */
  readonly inline: number
  /** Size in the record of the value {@link bound} returned last (no allocation per value). */
  size = 0

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

  /** Bounds `obj[key]` in place (see {@link bound}); returns its size in the record. */
  store<T extends object, K extends keyof T>(obj: T, key: K, what: () => string): number {
    const value = obj[key]
    const stored = this.bound(value, what)
    if (stored !== value) obj[key] = stored as T[K]
    return this.size
  }

  /**
   * A value as the instance stores it: itself up to the inline size, else a reference whose blob
   * the open round waits for (blobs.ts). Sets {@link size} to its size in the record. Throws
   * `PayloadTooLargeError` over the ceiling and `CodecError` for a value that cannot be encoded.
   */
  bound(value: unknown, what: () => string): unknown {
    if (value instanceof BlobRef) {
      this.size = 128
      return value
    }
    const size = sizeOf(value, this.inline)
    if (size <= this.inline) {
      this.size = size
      return value
    }
    const { ref, written } = this.port.blobs.put(encode(value), what)
    this.port.holdFor(written)
    this.size = 128
    return ref.attach(value)
  }

  /**
   * Sizes of what a step adds: [history bytes, then one per command]. Values over the inline size
   * are replaced by references, in the events and commands and in the result (see {@link bound}).
   * Throws PayloadTooLargeError naming the value when one is over the ceiling (or an error over
   * the value limit), or the step is over the step limit; CodecError for a value that cannot be
   * encoded.
   */
  measureStep(rec: InstanceRecord, result: StepResult): number[] {
    const limit = this.valueLimit
    // (the words of an error message, built only when one is thrown)
    const of = () => `of instance '${rec.id}' (${rec.name})`
    let history = 0
    for (const ev of result.appended) {
      history += 24
      switch (ev.e) {
        case 'started':
          history += this.store(ev, 'input', () => `input ${of()}`)
          break
        case 'completed':
          history += this.store(ev, 'result', () => `result of task ${ev.seq} ${of()}`)
          break
        case 'failed':
          history += checkSize(ev.error, limit, () => `error of task ${ev.seq} ${of()}`)
          break
        case 'event':
          history += this.store(ev, 'data', () => `data of event '${ev.name}' ${of()}`)
          break
        case 'customStatus':
          // kept in the record's field too
          history += 2 * this.store(ev, 'value', () => `custom status ${of()}`)
          break
        case 'finished':
          if (ev.status === 'completed') {
            const size = this.store(ev, 'output', () => `output ${of()}`)
            result.output = ev.output
            history += 2 * size
          } else if (ev.status === 'failed') history += checkSize(ev.error, limit, () => `error ${of()}`)
          else {
            const size = this.store(ev, 'input', () => `continue-as-new input ${of()}`)
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
          size += this.store(c, 'input', () => `input of activity '${c.name}' (task ${c.seq}) ${of()}`)
          break
        case 'sub':
        case 'start':
          size += this.store(c, 'input', () => `input of instance '${c.instanceId}' started ${of()}`)
          break
        case 'call':
        case 'signal': {
          let args: unknown[] | undefined
          for (let i = 0; i < c.args.length; i++) {
            const arg = this.bound(
              c.args[i],
              () => `argument ${i + 1} of ${c.entity[0]}@${c.entity[1]}.${c.op} ${of()}`,
            )
            size += this.size
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
    if (total > this.stepLimit) {
      throw new PayloadTooLargeError(
        `a step ${of()} (${result.commands.length} commands and ${result.appended.length} history events)`,
        total,
        this.stepLimit,
      )
    }
    return sizes
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

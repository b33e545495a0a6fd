/**
 * What a step stores (runtime/instances/instance-values.ts), against a fake port: small values
 * stay inline with their sizes counted, large ones go by reference, and a value over the ceiling
 * or an error over the value limit is refused with a message naming it and its instance.
 */
import { describe, expect, it } from 'vitest'
import { PayloadTooLargeError } from '../../actors/index.ts'
import type { StepResult } from '../../actors/orchestration/index.ts'
import type { ActivityTask } from '../../actors/wire/index.ts'
import { BlobRef } from '../../runtime/nats/index.ts'
import type { HostPort } from '../../runtime/partition/index.ts'
import { InstanceValues } from '../../runtime/instances/instance-values.ts'
import type { InstanceRecord } from '../../runtime/instances/instance-model.ts'

const THRESHOLD = 1_000
const CEILING = 5_000

function fakeValues(): { values: InstanceValues; held: number; blobs: number } {
  const seen = { held: 0, blobs: 0 }
  const port = {
    valueLimit: 40_000,
    blobs: {
      limits: { threshold: THRESHOLD, ceiling: CEILING },
      put(bytes: Uint8Array, what: () => string) {
        if (bytes.length > CEILING)
          throw new PayloadTooLargeError(what(), bytes.length, CEILING, 'maxValueBytes')
        seen.blobs++
        return { ref: new BlobRef(`b${seen.blobs}`, bytes.length, 1, 'd'), written: Promise.resolve() }
      },
    },
    holdFor() {
      seen.held++
    },
  } as unknown as HostPort
  const values = new InstanceValues(port)
  return {
    values,
    get held() {
      return seen.held
    },
    get blobs() {
      return seen.blobs
    },
  }
}

const rec = { id: 'i-1', name: 'flow' } as InstanceRecord

function step(partial: Partial<StepResult>): StepResult {
  return { appended: [], commands: [], status: 'running', ...partial } as StepResult
}

describe('measureStep', () => {
  it('counts small values inline and changes nothing', () => {
    const { values, blobs } = fakeValues()
    const result = step({
      appended: [
        { e: 'completed', seq: 1, result: 'Hello' },
        { e: 'step', t: 1 },
      ],
      commands: [
        { c: 'activity', seq: 2, name: 'hello', input: 'city', attempt: 1 },
        { c: 'call', seq: 3, entity: ['Counter', 'a'], op: 'add', args: [1, 'x'] },
      ],
    })
    const sizes = values.measureStep(rec, result)
    expect(sizes).toHaveLength(3)
    expect(sizes[0]).toBeGreaterThan(48)
    expect(sizes[1]).toBeGreaterThan(64)
    expect(sizes[2]).toBeGreaterThan(64)
    expect(result.commands[0]).toMatchObject({ input: 'city' })
    expect(blobs).toBe(0)
  })

  it('stores a large activity input and call argument by reference, held for the round', () => {
    const fake = fakeValues()
    const big = 'x'.repeat(2_000)
    const result = step({
      commands: [
        { c: 'activity', seq: 2, name: 'hello', input: big, attempt: 1 },
        { c: 'call', seq: 3, entity: ['Doc', 'd'], op: 'set', args: [1, big] },
      ],
    })
    fake.values.measureStep(rec, result)
    const [activity, call] = result.commands as Array<{ input?: unknown; args?: unknown[] }>
    expect(activity!.input).toBeInstanceOf(BlobRef)
    expect(call!.args![0]).toBe(1)
    expect(call!.args![1]).toBeInstanceOf(BlobRef)
    expect(fake.blobs).toBe(2)
    expect(fake.held).toBe(2)
  })

  it('names the value, the task and the instance when a value is over the ceiling', () => {
    const { values } = fakeValues()
    const huge = 'y'.repeat(CEILING + 10)
    expect(() =>
      values.measureStep(
        rec,
        step({ commands: [{ c: 'activity', seq: 4, name: 'hello', input: huge, attempt: 1 }] }),
      ),
    ).toThrow(/^input of activity 'hello' \(task 4\) of instance 'i-1' \(flow\) is \d+ bytes/)
    expect(() =>
      values.measureStep(
        rec,
        step({ commands: [{ c: 'signal', entity: ['Doc', 'd'], op: 'set', args: ['a', huge] }] }),
      ),
    ).toThrow(/^argument 2 of Doc@d\.set of instance 'i-1' \(flow\) is \d+ bytes/)
    expect(() =>
      values.measureStep(rec, step({ appended: [{ e: 'completed', seq: 7, result: huge }] })),
    ).toThrow(/^result of task 7 of instance 'i-1' \(flow\) is \d+ bytes/)
  })

  it('refuses an error over the value limit, naming its task', () => {
    const { values } = fakeValues()
    const error = { name: 'Error', message: 'z'.repeat(20_000) }
    expect(() => values.measureStep(rec, step({ appended: [{ e: 'failed', seq: 9, error }] }))).toThrow(
      /^error of task 9 of instance 'i-1' \(flow\) is \d+ bytes/,
    )
    expect(() =>
      values.measureStep(rec, step({ appended: [{ e: 'finished', status: 'failed', error }] })),
    ).toThrow(/^error of instance 'i-1' \(flow\) is \d+ bytes/)
  })

  it('encodes a large value once: the bytes that sized it are the bytes stored', () => {
    // (msgpack calls toJSON of a class instance each time it encodes one)
    let encodes = 0
    class Report {
      toJSON() {
        encodes++
        return { text: 'r'.repeat(2_000) }
      }
    }
    const fake = fakeValues()
    const result = step({
      appended: [{ e: 'completed', seq: 1, result: new Report() }],
      commands: [
        { c: 'activity', seq: 2, name: 'hello', input: new Report(), attempt: 1 },
        { c: 'call', seq: 3, entity: ['Doc', 'd'], op: 'set', args: [new Report()] },
      ],
    })
    fake.values.measureStep(rec, result)
    expect(fake.blobs).toBe(3)
    expect(encodes, 'encodes of three large values').toBe(3)
    expect(fake.values.bound(new Report(), () => 'a result')).toBeInstanceOf(BlobRef)
    expect(encodes).toBe(4)
    const task = { instanceId: 'i-1', seq: 5, name: 'report', input: null, attempt: 1 }
    const outcome = fake.values.boundOutcome(task as ActivityTask, { ok: 1, value: new Report() })
    expect(outcome.ok === 1 && outcome.value).toBeInstanceOf(BlobRef)
    expect(encodes, 'an activity result sized, then stored').toBe(5)
    expect(fake.values.boundOutcome(task as ActivityTask, { ok: 1, value: 'small' })).toEqual({
      ok: 1,
      value: 'small',
    })
  })
})

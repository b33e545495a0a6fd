/**
 * How NATS errors read in a node's log (runtime/nats/errors.ts): a full JetStream store is
 * recognised by code or by the server's words and gets a hint saying what to do; known NATS and
 * Basalt errors take one line, and only unknown ones (bugs) keep their stack.
 */
import { describe, expect, it } from 'vitest'
import { FencedError } from '../../actors/index.ts'
import {
  LeanPublishError,
  STORAGE_FULL_HINT,
  describeNatsError,
  isStorageFull,
} from '../../runtime/nats/index.ts'

describe('NATS errors in logs', () => {
  it('recognises a full store by its code or its words', () => {
    expect(isStorageFull(new LeanPublishError('publish to x: insufficient resources', 10023))).toBe(true)
    expect(isStorageFull(new LeanPublishError('publish to x: something', 10047))).toBe(true)
    expect(isStorageFull(new Error('insufficient storage resources available'))).toBe(true)
    expect(isStorageFull(new Error('maximum bytes exceeded'))).toBe(true)
    // an account's storage limit (jetstream { max_file: … } of the account)
    expect(isStorageFull(new Error('resource limits exceeded for account'))).toBe(true)
    expect(isStorageFull(new LeanPublishError('publish to x: wrong last sequence: 4', 10071))).toBe(false)
  })

  it('writes known errors in one line, with the hint when the store is full', () => {
    const full = new LeanPublishError('publish to $KV.state.ckpt.6: insufficient resources', 10023)
    expect(describeNatsError(full)).toBe(
      `LeanPublishError: publish to $KV.state.ckpt.6: insufficient resources (${STORAGE_FULL_HINT})`,
    )
    expect(describeNatsError(new FencedError(3, 'epoch 4'))).toBe(
      'FencedError: partition 3 was taken over by a newer owner: epoch 4',
    )
    // a bug: one line still, with where it was thrown
    expect(describeNatsError(new TypeError('x is undefined'))).toMatch(
      /^TypeError: x is undefined \(at .*nats-errors\.test\.ts:\d+:\d+\)?\)$/,
    )
    expect(describeNatsError(new Error('two\nlines'))).toMatch(/^Error: two lines \(at [^\n]+\)$/)
  })

  it("explains the client's 'jetstream is not enabled' for a request nothing answered", () => {
    const err = Object.assign(new Error('jetstream is not enabled'), {
      name: 'JetStreamNotEnabled',
      code: 503,
    })
    expect(describeNatsError(err)).toBe(
      'JetStreamNotEnabled: jetstream is not enabled (nothing answered the JetStream request: the stream ' +
        'it needs is missing (was the hub deleted?), or JetStream is off)',
    )
  })
})

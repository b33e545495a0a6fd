/**
 * How `basalt history` describes events (runtime/cli/instance-commands.ts): values as JSON, and an
 * event without a value (a fired timer, a call that returned nothing) without "undefined".
 */
import { describe, expect, it } from 'vitest'
import { describeEvent } from '../../runtime/cli/instance-commands.ts'

describe('describeEvent', () => {
  it('leaves out a value that is not there, and shows one that is as JSON', () => {
    expect(describeEvent({ e: 'completed', seq: 3 })).toBe('#3')
    expect(describeEvent({ e: 'completed', seq: 4, result: 'hi' })).toBe('#4 "hi"')
    expect(describeEvent({ e: 'event', name: 'go' })).toBe('go')
    expect(describeEvent({ e: 'event', name: 'data', data: { n: 1 } })).toBe('data {"n":1}')
    expect(describeEvent({ e: 'finished', status: 'completed' })).toBe('completed')
    expect(describeEvent({ e: 'finished', status: 'completed', output: 0 })).toBe('completed 0')
    expect(describeEvent({ e: 'finished', status: 'continuedAsNew' })).toBe('continued as new')
  })
})

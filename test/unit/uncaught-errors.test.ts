/**
 * Which escaped errors count as user code (runtime/node/uncaught-errors.ts): a frame in a file
 * outside Basalt's own folders and outside node_modules; no stack at all counts as user code.
 */
import { describe, expect, it } from 'vitest'
import { isClientOutcome, isFromUserCode } from '../../runtime/node/uncaught-errors.ts'

const own = ['/srv/basalt/runtime/', '/srv/basalt/actors/', '/srv/basalt/entities/', '/srv/basalt/placement/']

function stack(...frames: string[]): string {
  return ['Error: boom', ...frames.map((f) => `    at ${f}`)].join('\n')
}

describe('isFromUserCode', () => {
  it('finds a user frame behind Node internals, as a timer callback throws it', () => {
    const s = stack(
      'Timeout._onTimeout (file:///home/app/src/registry.mjs:5:44)',
      'listOnTimeout (node:internal/timers:581:17)',
      'process.processTimers (node:internal/timers:519:7)',
    )
    expect(isFromUserCode(s, own)).toBe(true)
  })

  it('counts frames of Basalt, of node_modules and of Node as not user code', () => {
    const s = stack(
      'Partition.#cycle (file:///srv/basalt/runtime/partition/partition.ts:120:5)',
      'Object.callback (/srv/basalt/node_modules/@nats-io/nats-core/lib/protocol.js:474:9)',
      'processTicksAndRejections (node:internal/process/task_queues:95:5)',
      'async Promise.all (index 0)',
    )
    expect(isFromUserCode(s, own)).toBe(false)
  })

  it('finds user code in a path frame without a function name, and in a test or example folder', () => {
    expect(isFromUserCode(stack('/home/app/dist/ops.js:10:3'), own)).toBe(true)
    expect(isFromUserCode(stack('Counter.add (file:///srv/basalt/test/fixtures/entities.ts:3:1)'), own)).toBe(
      true,
    )
    expect(isFromUserCode(stack('new Foo (/home/app/node_modules/lib/index.js:1:2)'), own)).toBe(false)
  })

  it('counts an error without a stack (a promise rejected with a plain value) as user code', () => {
    expect(isFromUserCode(undefined, own)).toBe(true)
  })

  it('tells a rejected Client call (a frame in runtime/client/) from a bug of the engine', () => {
    // a call the application started and awaits later: after the first await its stack holds
    // only Basalt frames, so it is not user code, but it is no engine bug either
    const rejectedCall = stack(
      'UNKNOWN_ENTITY (/srv/basalt/actors/errors.ts:327:49)',
      'fromErrorInfo (/srv/basalt/actors/errors.ts:309:15)',
      'CallTransport.query (/srv/basalt/runtime/client/transport.ts:366:32)',
      'process.processTicksAndRejections (node:internal/process/task_queues:95:5)',
      'EntityApi.getLock (/srv/basalt/runtime/client/entity-api.ts:87:20)',
    )
    expect(isFromUserCode(rejectedCall, own)).toBe(false)
    expect(isClientOutcome(rejectedCall, '/srv/basalt')).toBe(true)
    const engineBug = stack('Partition.#cycle (file:///srv/basalt/runtime/partition/partition.ts:120:5)')
    expect(isClientOutcome(engineBug, '/srv/basalt')).toBe(false)
    expect(isClientOutcome(undefined, '/srv/basalt')).toBe(false)
  })
})

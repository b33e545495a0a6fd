/**
 * Where an escaped error came from (runtime/node/uncaught-errors.ts `originOf`): user code (a frame
 * outside Basalt and outside node_modules, or no frame of Basalt or its engine's libraries at all),
 * a rejected Client call (a frame in runtime/client/), or Basalt's own code and engine libraries.
 */
import { describe, expect, it } from 'vitest'
import { originOf } from '../../runtime/node/uncaught-errors.ts'

const root = '/srv/basalt'

function stack(...frames: string[]): string {
  return ['Error: boom', ...frames.map((f) => `    at ${f}`)].join('\n')
}

describe('originOf', () => {
  it('finds a user frame behind Node internals, as a timer callback throws it', () => {
    const s = stack(
      'Timeout._onTimeout (file:///home/app/src/registry.mjs:5:44)',
      'listOnTimeout (node:internal/timers:581:17)',
      'process.processTimers (node:internal/timers:519:7)',
    )
    expect(originOf(s, root)).toBe('user')
  })

  it("counts frames of Basalt and of the engine's libraries (nats.js, msgpackr) as Basalt's", () => {
    const s = stack(
      'Partition.#cycle (file:///srv/basalt/runtime/partition/partition.ts:120:5)',
      'Object.callback (/srv/basalt/node_modules/@nats-io/nats-core/lib/protocol.js:474:9)',
      'processTicksAndRejections (node:internal/process/task_queues:95:5)',
      'async Promise.all (index 0)',
    )
    expect(originOf(s, root)).toBe('basalt')
    // a nats.js promise Basalt dropped: after its first await only the library's frames remain
    expect(
      originOf(stack('PublishAck (/srv/basalt/node_modules/@nats-io/jetstream/lib/js.js:9:1)'), root),
    ).toBe('basalt')
  })

  it('finds user code in a path frame without a function name, and in a test or example folder', () => {
    expect(originOf(stack('/home/app/dist/ops.js:10:3'), root)).toBe('user')
    expect(originOf(stack('Counter.add (file:///srv/basalt/test/fixtures/entities.ts:3:1)'), root)).toBe(
      'user',
    )
  })

  it("counts an application's library, Node's own modules and a missing stack as user code", () => {
    // an HTTP client's promise an activity forgot: only the library's frames
    const axios = stack(
      'settle (/home/app/node_modules/axios/lib/core/settle.js:19:12)',
      'IncomingMessage.handleStreamEnd (/home/app/node_modules/axios/lib/adapters/http.js:599:11)',
      'processTicksAndRejections (node:internal/process/task_queues:95:5)',
    )
    expect(originOf(axios, root)).toBe('user')
    // a fetch nobody awaited (undici inside Node), a file read with no frame at all
    expect(originOf(stack('node:internal/deps/undici/undici:13502:13'), root)).toBe('user')
    expect(originOf("Error: ENOENT: no such file or directory, open 'x'", root)).toBe('user')
    expect(originOf(undefined, root)).toBe('user')
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
    expect(originOf(rejectedCall, root)).toBe('client')
    // the same in the built package
    expect(
      originOf(
        stack('CallTransport.query (/app/node_modules/basalt/dist/runtime/client/transport.js:1:1)'),
        '/app/node_modules/basalt/dist',
      ),
    ).toBe('client')
    // and the built package under tsx or --enable-source-maps: its maps name the sources beside dist/
    const mapped = stack(
      'CallTransport.#settle (/app/node_modules/basalt/runtime/client/transport.ts:304:26)',
      'process.processTicksAndRejections (node:internal/process/task_queues:95:5)',
    )
    expect(originOf(mapped, '/app/node_modules/basalt/dist')).toBe('client')
    expect(
      originOf(
        stack('Partition.#cycle (/app/node_modules/basalt/runtime/partition/partition.ts:1:1)'),
        '/app/node_modules/basalt/dist',
      ),
    ).toBe('basalt')
  })

  it('knows Basalt installed as a package (its own folders inside node_modules)', () => {
    const installed = '/app/node_modules/basalt/dist'
    const engineBug = stack(
      'Partition.#cycle (/app/node_modules/basalt/dist/runtime/partition/partition.js:1:1)',
    )
    expect(originOf(engineBug, installed)).toBe('basalt')
    expect(originOf(stack('settle (/app/node_modules/axios/lib/core/settle.js:19:12)'), installed)).toBe(
      'user',
    )
  })
})

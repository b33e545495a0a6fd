/**
 * The client's argument checks without a server: orchestration and event names, entity classes,
 * timeouts, instance queries, option objects with keys they do not have (each method refuses
 * them, sending nothing), and values the wire cannot carry (functions, symbols: found and named).
 */
import { describe, expect, it } from 'vitest'
import { BadInputError, CodecError } from '../../actors/index.ts'
import { orchestration } from '../../actors/orchestration/index.ts'
import {
  MAX_INSTANCE_PAGE_SIZE,
  checkEntityClass,
  checkInstanceFilter,
  checkInstanceQuery,
  checkTimeout,
  eventName,
  findUnsendable,
  orchestrationName,
} from '../../runtime/client/args.ts'
import { checkKnownKeys, keysOf } from '../../runtime/util/index.ts'
import type { ApiCore } from '../../runtime/client/api-core.ts'
import { Client } from '../../runtime/client/client.ts'
import { EntityApi } from '../../runtime/client/entity-api.ts'
import { InstanceApi } from '../../runtime/client/instance-api.ts'
import { encode, encodeChecked } from '../../runtime/nats/codec.ts'
import { Counter } from '../fixtures/entities.ts'

describe('orchestrations, events and entity classes', () => {
  it('takes an orchestration by definition or by name', () => {
    const def = orchestration('named', function* () {})
    expect(orchestrationName(def)).toBe('named')
    expect(orchestrationName('byName')).toBe('byName')
    for (const bad of [null, undefined, 42, {}, { name: 'x' }, '']) {
      expect(() => orchestrationName(bad)).toThrow(BadInputError)
    }
    expect(() => orchestrationName(null)).toThrow(/orchestration must be a definition .* \(got null\)/)
    expect(() => orchestrationName('')).toThrow(/orchestration name must be a non-empty string/)
  })

  it('takes an event by definition or by name', () => {
    expect(eventName('approve')).toBe('approve')
    expect(eventName({ kind: 'event', name: 'approve' })).toBe('approve')
    expect(() => eventName(42)).toThrow(/^event name must be a non-empty string .*\(got number 42\)$/)
  })

  it('wants an entity class for a typed handle', () => {
    expect(checkEntityClass(Counter)).toBe(Counter)
    expect(() => checkEntityClass('Counter' as never)).toThrow(
      /entity type must be an entity class \(got string "Counter"\)/,
    )
    expect(() => checkEntityClass(null as never)).toThrow(BadInputError)
  })
})

describe('timeouts and instance queries', () => {
  it('takes timeouts that are positive numbers of ms', () => {
    expect(checkTimeout(5, 'timeoutMs')).toBe(5)
    for (const bad of ['abc', 0, -1, Number.NaN, Number.POSITIVE_INFINITY, 2 ** 31, null]) {
      expect(() => checkTimeout(bad, 'timeoutMs')).toThrow(BadInputError)
    }
    expect(() => checkTimeout('abc', 'timeoutMs')).toThrow(
      /^timeoutMs must be a positive number of ms.*"abc"/,
    )
  })

  it('checks every field of an instance query, naming it', () => {
    expect(checkInstanceQuery({})).toEqual({ filter: {}, pageSize: 100 })
    const at = new Date(1_700_000_000_000)
    expect(
      checkInstanceQuery({
        statuses: ['Running'],
        createdFrom: at,
        createdTo: 5,
        idPrefix: 'a',
        pageSize: MAX_INSTANCE_PAGE_SIZE,
        continuation: 'c',
      }),
    ).toEqual({
      filter: { statuses: ['Running'], createdFrom: at.getTime(), createdTo: 5, idPrefix: 'a' },
      pageSize: 1000,
      continuation: 'c',
    })
    const cases: Array<[object, RegExp]> = [
      [{ pageSize: -1 }, /^pageSize must be a whole number in 1\.\.1000 \(got number -1\)$/],
      [{ pageSize: 0 }, /pageSize .* \(got number 0\)/],
      [{ pageSize: 1.5 }, /pageSize/],
      [{ pageSize: 1e9 }, /pageSize/],
      [{ statuses: ['Bogus'] }, /^statuses: unknown status string "Bogus" \(one of Pending, Running/],
      [{ statuses: 'Completed' }, /^statuses must be an array/],
      [
        { createdFrom: 'yesterday' },
        /^createdFrom must be a Date or ms since the epoch \(got string "yesterday"\)$/,
      ],
      [{ createdTo: new Date('nope') }, /^createdTo .* \(got an invalid Date\)$/],
      [{ namePrefix: 5 }, /^namePrefix must be a string \(got number 5\)$/],
      [{ continuation: 5 }, /^continuation must be a string/],
    ]
    for (const [query, message] of cases) {
      expect(() => checkInstanceQuery(query as never)).toThrow(BadInputError)
      expect(() => checkInstanceQuery(query as never)).toThrow(message)
    }
  })
})

describe('values the wire cannot carry', () => {
  it('rejects functions and symbols anywhere in what a client sends; the lenient codec is unchanged', () => {
    expect(() => encodeChecked([1, { f: () => 1 }])).toThrow(CodecError)
    expect(() => encodeChecked({ a: Symbol('s') })).toThrow(CodecError)
    expect(encodeChecked({ a: [1, 'x', new Uint8Array(2)] })).toEqual(
      encode({ a: [1, 'x', new Uint8Array(2)] }),
    )
    expect(() => encode({ f: () => 1 })).not.toThrow()
  })

  it('names where the function or symbol is', () => {
    expect(findUnsendable({ k: 'op', t: 'Counter', key: 'c1', op: 'add', a: [() => 1] })).toBe(
      "argument 1 of Counter.add (entity 'c1') is a function, which cannot be sent (functions and symbols do not cross the wire)",
    )
    expect(
      findUnsendable({ k: 'op', t: 'Counter', key: 'c1', op: 'set', a: [1, { x: [0, Symbol('s')] }] }),
    ).toMatch(/^argument 2 of Counter\.set \(entity 'c1'\) at \.x\[1\] is a symbol/)
    expect(findUnsendable({ k: 'start', i: 'x', n: 'o', in: { cb: () => 1 } })).toMatch(
      /^input of instance 'x' at \.cb is a function/,
    )
    expect(findUnsendable({ k: 'ev', i: 'x', n: 'go', d: new Map([['k', () => 1]]) })).toMatch(
      /^data of event 'go' for instance 'x' at \.get\("k"\) is a function/,
    )
    const circular: Record<string, unknown> = {}
    circular.self = circular
    expect(findUnsendable({ k: 'start', i: 'x', n: 'o', in: circular })).toBeUndefined()
  })
})

describe('option objects with keys they do not have', () => {
  it('lists the keys of an options type', () => {
    expect(keysOf<{ a?: number; b: string }>({ a: true, b: true })).toEqual(['a', 'b'])
  })

  it('takes the known keys and no options at all; refuses any other key, naming it and the known ones', () => {
    const known = ['statuses', 'idPrefix']
    const filter = { statuses: ['Failed'], idPrefix: undefined }
    expect(checkKnownKeys(filter, 'purgeInstances', 'filter', known)).toBe(filter)
    expect(checkKnownKeys(undefined, 'purgeInstances', 'filter', known)).toEqual({})
    const refused = (value: unknown) =>
      expect(() => checkKnownKeys(value as object, 'purgeInstances', 'filter', known))
    refused({ status: 'Failed' }).toThrow(BadInputError)
    refused({ status: 'Failed' }).toThrow(
      /^purgeInstances: unknown filter key 'status' \(known: statuses, idPrefix\)$/,
    )
    // (a key present but undefined is still a misspelling)
    refused({ statuses: [], status: undefined, Idprefix: 'a' }).toThrow(
      /^purgeInstances: unknown filter keys 'status', 'Idprefix' \(known: statuses, idPrefix\)$/,
    )
    refused('Failed').toThrow(/^the filter of purgeInstances must be an object \(got string "Failed"\)$/)
    refused(null).toThrow(/must be an object \(got null\)/)
    refused(['statuses']).toThrow(/must be an object \(got array\)/)
    expect(() => checkKnownKeys({ histroy: true }, 'getStatus', 'options', ['history'])).toThrow(
      /^getStatus: unknown option 'histroy' \(known: history\)$/,
    )
  })

  it('refuses a purge filter with a misspelt key or a page, and a query with keys it does not have', () => {
    expect(checkInstanceFilter({ statuses: ['Failed'], createdTo: new Date(5) })).toEqual({
      statuses: ['Failed'],
      createdTo: 5,
    })
    expect(() => checkInstanceFilter({ status: 'Failed' } as never)).toThrow(
      /^purgeInstances: unknown filter key 'status' \(known: statuses, createdFrom, createdTo, namePrefix, idPrefix\)$/,
    )
    expect(() => checkInstanceFilter({ pageSize: 5 } as never)).toThrow(/unknown filter key 'pageSize'/)
    expect(() => checkInstanceFilter({ statuses: ['Bogus'] } as never)).toThrow(/unknown status/)
    expect(() => checkInstanceFilter('Failed' as never)).toThrow(
      /the filter of purgeInstances must be an object/,
    )
    expect(() => checkInstanceQuery({ pagesize: 2, status: ['Bogus'] } as never)).toThrow(
      /^listInstances: unknown query keys 'pagesize', 'status' \(known: statuses, .*, pageSize, continuation\)$/,
    )
    expect(() => checkInstanceQuery({ pageSize: null } as never)).toThrow(/^pageSize .* \(got null\)$/)
  })
})

describe('each method refuses unknown option keys before sending anything', () => {
  /** An API core whose transport records what would be sent, and sends nothing. */
  function fakeCore(): { core: ApiCore; sent: unknown[] } {
    const sent: unknown[] = []
    const record = (msg: unknown) => {
      sent.push(msg)
      return Promise.reject(new Error('sent'))
    }
    const transport = { request: record, query: (_p: number, q: unknown) => record(q), send: record }
    return { core: { partitions: 2, queryTimeoutMs: 1000, transport } as unknown as ApiCore, sent }
  }

  /** What a call rejected with (or threw). */
  async function failure(fn: () => unknown): Promise<Error> {
    try {
      await fn()
    } catch (err) {
      return err as Error
    }
    throw new Error('expected a rejection')
  }

  it('the orchestration methods', async () => {
    const { core, sent } = fakeCore()
    const api = new InstanceApi(core)
    const cases: Array<[() => unknown, RegExp]> = [
      [
        () => api.purgeInstances({ status: 'Failed' } as never),
        /^purgeInstances: unknown filter key 'status' \(known: statuses, /,
      ],
      [
        () => api.listInstances({ pagesize: 2, status: ['Bogus'] } as never),
        /^listInstances: unknown query keys 'pagesize', 'status'/,
      ],
      [
        () => api.start('hello', 1, { instanceID: 'x' } as never),
        /^start: unknown option 'instanceID' \(known: instanceId, startAt, replace\)$/,
      ],
      [
        () => api.start('hello', 1, { replace: 'yes' } as never),
        /^replace must be true or false \(got string "yes"\)$/,
      ],
      [
        () => api.getStatus('i1', { histroy: true } as never),
        /^getStatus: unknown option 'histroy' \(known: history\)$/,
      ],
      [
        () => api.getStatus('i1', { history: 1 } as never),
        /^history must be true or false \(got number 1\)$/,
      ],
      [
        () => api.waitForCompletion('i1', { timeout: 5 } as never),
        /^waitForCompletion: unknown option 'timeout' \(known: timeoutMs\)$/,
      ],
      [
        () => api.waitForCompletion('i1', { timeoutMs: null } as never),
        /^timeoutMs must be a positive number/,
      ],
    ]
    for (const [call, message] of cases) {
      const err = await failure(call)
      expect(err, String(message)).toBeInstanceOf(BadInputError)
      expect(err.message).toMatch(message)
    }
    expect(sent).toEqual([])
  })

  it('listEntities', async () => {
    const { core, sent } = fakeCore()
    const api = new EntityApi(core)
    const err = await failure(() => api.listEntities({ type: 'Counter', prefix: 'a' } as never))
    expect(err).toBeInstanceOf(BadInputError)
    expect(err.message).toBe(
      "listEntities: unknown query key 'prefix' (known: type, keyPrefix, pageSize, continuation)",
    )
    await expect(api.listEntities({ type: 'Counter', pageSize: null } as never)).rejects.toThrow(
      /^pageSize must be a whole number in 1\.\.10000 \(got null\)$/,
    )
    expect(sent).toEqual([])
  })

  it('Client.connect, before it connects', async () => {
    // (port 1: had it tried to connect, the error would be a ConnectionError)
    const err = await failure(() =>
      Client.connect({ servers: 'nats://127.0.0.1:1', hub: 'h', callTimeout: 5 } as never),
    )
    expect(err).toBeInstanceOf(BadInputError)
    expect(err.message).toMatch(
      /^Client\.connect: unknown option 'callTimeout' \(known: servers, user, .*, hub, callTimeoutMs, .*, tracing\)$/,
    )
    await expect(Client.connect(null as never)).rejects.toThrow(
      /^the options of Client\.connect must be an object \(got null\)$/,
    )
  })
})

/**
 * Ids and names checked by actors/ids.ts (their errors naming what they are), and Basalt's errors
 * keeping their class, name, code and message across the wire (toErrorInfo, then fromErrorInfo).
 */
import { describe, expect, it } from 'vitest'
import {
  AuthorizationError,
  BadInputError,
  BasaltError,
  ClientClosedError,
  CodecError,
  ConnectionError,
  FencedError,
  HubNotFoundError,
  IllegalStateError,
  InstanceExistsError,
  PartitionUnavailableError,
  PayloadTooLargeError,
  RemoteError,
  StorageFullError,
  TimeoutError,
  UnknownEntityError,
  UnknownOperationError,
  checkInstanceId,
  checkKey,
  checkName,
  fromErrorInfo,
  toErrorInfo,
} from '../../actors/index.ts'
import { NonDeterminismError, TaskFailedError, orchestration } from '../../actors/orchestration/index.ts'
import * as publicApi from '../../runtime/index.ts'

describe('ids and names', () => {
  it('names what an id is in its error', () => {
    expect(() => checkInstanceId(42)).toThrow(/^instance id must be a non-empty string \(got number 42\)$/)
    expect(() => checkInstanceId('x'.repeat(1025))).toThrow(/^instance id is longer than 1024 bytes/)
    expect(() => checkKey('')).toThrow(/^entity key must be a non-empty string \(got string ""\)$/)
    // sent as UTF-8 it would read back as another key, of another partition
    expect(() => checkKey('a\uD800')).toThrow(
      /^entity key is not well-formed Unicode: it has a lone surrogate/,
    )
    expect(checkKey('a\uD83D\uDE00')).toBe('a😀')
    expect(() => checkInstanceId(null)).toThrow(BadInputError)
    expect(checkInstanceId('i-1')).toBe('i-1')
  })

  it('checks names of orchestrations, activities and events, naming what they are', () => {
    expect(checkName('approve', 'event')).toBe('approve')
    expect(() => checkName(42, 'event')).toThrow(
      /^event name must be a non-empty string .*\(got number 42\)$/,
    )
    expect(() => checkName('x'.repeat(257), 'activity')).toThrow(/activity name .* at most 256/)
    expect(() => orchestration('', function* () {})).toThrow(/^orchestration name must be a non-empty string/)
  })
})

describe('errors across the wire', () => {
  const errors: BasaltError[] = [
    new BadInputError('bad'),
    new InstanceExistsError('i1', 'Running'),
    new UnknownEntityError('Nope'),
    new UnknownOperationError('Counter', 'nope'),
    new PayloadTooLargeError('state of Counter@c', 10, 5),
    new CodecError('undecodable'),
    new TimeoutError('slow'),
    new HubNotFoundError('h'),
    new PartitionUnavailableError(3, 'no owner'),
    new FencedError(2, 'epoch 4'),
    new IllegalStateError('closed'),
    new StorageFullError('full'),
    new NonDeterminismError('step 2 differs'),
    new TaskFailedError("activity 'x' failed", { name: 'Error', message: 'x' }),
  ]
  for (const err of errors) {
    it(`rebuilds ${err.name} as its own class, with its name, code and message`, () => {
      const back = fromErrorInfo(toErrorInfo(err)) as BasaltError
      expect(back.constructor).toBe(err.constructor)
      expect(back.name).toBe(err.name)
      expect(back.code).toBe(err.code)
      expect(back.message).toBe(err.message)
    })
  }

  it('keeps InstanceExistsError a BadInputError, exported where it was', () => {
    const back = fromErrorInfo(toErrorInfo(new InstanceExistsError('i1', 'Running')))
    expect(back).toBeInstanceOf(publicApi.InstanceExistsError)
    expect(back).toBeInstanceOf(publicApi.BadInputError)
    expect((back as BasaltError).message).toBe("instance 'i1' already exists with status Running")
  })

  it('names the call in a ClientClosedError, an IllegalStateError of code CLOSED, exported from the package', () => {
    const after = new ClientClosedError("getStatus('o1')")
    expect(after).toBeInstanceOf(IllegalStateError)
    expect(after).toBeInstanceOf(publicApi.ClientClosedError)
    expect(after).toMatchObject({ name: 'ClientClosedError', code: 'CLOSED', retryable: false })
    expect(after.message).toBe("client closed: getStatus('o1') after close()")
    const cause = new Error('closed connection')
    const pending = new ClientClosedError('call Counter@c.get', true, { cause })
    expect(pending.message).toBe('client closed: close() ended call Counter@c.get before its answer')
    expect(pending.cause).toBe(cause)
  })

  it('rebuilds what user code threw as a RemoteError', () => {
    const back = fromErrorInfo(toErrorInfo(new RangeError('r')))
    expect(back).toBeInstanceOf(RemoteError)
    expect((back as RemoteError).remoteName).toBe('RangeError')
    // connection-side errors do not cross the wire; they stay remote if they ever do
    expect(fromErrorInfo(toErrorInfo(new ConnectionError('c')))).toBeInstanceOf(RemoteError)
    expect(fromErrorInfo(toErrorInfo(new AuthorizationError('a')))).toBeInstanceOf(RemoteError)
  })

  it("keeps an error's own plain fields: Basalt's on the rebuilt class, a user's in details", () => {
    const tooLarge = fromErrorInfo(toErrorInfo(new PayloadTooLargeError('state of Counter@c', 10, 5)))
    expect(tooLarge).toMatchObject({ size: 10, limit: 5 })
    expect(fromErrorInfo(toErrorInfo(new UnknownOperationError('Counter', 'nope')))).toMatchObject({
      entityType: 'Counter',
      operation: 'nope',
    })

    class HttpError extends Error {
      statusCode = 503
      retry = true
      body = { nested: 'left out' }
      hint = 'x'.repeat(5000)
      callback = () => 0
    }
    const info = toErrorInfo(new HttpError('upstream down'))
    expect(info.details).toEqual({ statusCode: 503, retry: true, hint: `${'x'.repeat(1023)}…` })
    const back = fromErrorInfo(info) as RemoteError
    expect(back).toBeInstanceOf(RemoteError)
    expect(back.details).toEqual(info.details)
    // thrown on (an orchestration failing with what an entity threw): the remote error itself travels
    expect(toErrorInfo(back)).toEqual(info)
    expect(toErrorInfo(new RangeError('plain')).details).toBeUndefined()
  })

  it('keeps what a thrown non-Error value holds: an object as JSON, a string as it is', () => {
    expect(toErrorInfo({ code: 42, why: 'no' })).toEqual({ name: 'Error', message: '{"code":42,"why":"no"}' })
    expect(toErrorInfo('plain words')).toEqual({ name: 'Error', message: 'plain words' })
    expect(toErrorInfo(7)).toEqual({ name: 'Error', message: '7' })
    const circular: Record<string, unknown> = {}
    circular['self'] = circular
    expect(toErrorInfo(circular).message).toBe('[object Object]')
  })
})

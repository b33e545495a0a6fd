/**
 * The lean JetStream publish path (runtime/nats/fast-js.ts) writes its headers as bytes of its
 * own: the server must see them exactly as the NATS client would send them — deduplication by
 * message id, the expected-last-subject-sequence fence, and extra headers stored with the message.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { jetstreamManager } from '@nats-io/jetstream'
import type { NatsConnection } from '@nats-io/transport-node'
import { connectTo, closeConnection } from '../../runtime/nats/connect.ts'
import { FastJetStream, fastJetStream } from '../../runtime/nats/fast-js.ts'
import { isConnectionLost, isWrongLastSequence } from '../../runtime/nats/errors.ts'
import { useNatsServer } from '../tooling/harness.ts'

const nats = useNatsServer()
let nc: NatsConnection

beforeAll(async () => {
  nc = await connectTo(nats.url)
  const jsm = await jetstreamManager(nc)
  await jsm.streams.add({ name: 'FASTJS', subjects: ['fastjs.>'], duplicate_window: 60_000_000_000 })
})
afterAll(async () => {
  await closeConnection(nc)
})

describe('lean publish headers', () => {
  it('deduplicates by message id', async () => {
    const fast = fastJetStream(nc)
    const first = await fast.publishAck('fastjs.dedup', new Uint8Array([1]), { msgID: 'm-1' })
    const again = await fast.publishAck('fastjs.dedup', new Uint8Array([2]), { msgID: 'm-1' })
    expect(first.duplicate).toBe(false)
    expect(again).toEqual({ seq: first.seq, duplicate: true })
  })

  it('fences on the subject last sequence', async () => {
    const fast = fastJetStream(nc)
    const seq = await fast.publish('fastjs.fence', new Uint8Array([1]), { expectLastSubjectSeq: 0 })
    await expect(
      fast.publish('fastjs.fence', new Uint8Array([2]), { expectLastSubjectSeq: 0 }),
    ).rejects.toSatisfy(isWrongLastSequence)
    const next = await fast.publish('fastjs.fence', new Uint8Array([3]), { expectLastSubjectSeq: seq })
    expect(next).toBeGreaterThan(seq)
  })

  it('stores extra headers with the message, as the client reads them back', async () => {
    const fast = fastJetStream(nc)
    const seq = await fast.publish('fastjs.hdr', new Uint8Array([7]), {
      msgID: 'h-1',
      headers: { 'Basalt-Epoch': '12', 'Basalt-Reason': ' padded ' },
    })
    const jsm = await jetstreamManager(nc)
    const stored = await jsm.streams.getMessage('FASTJS', { seq })
    expect(stored?.header.get('Basalt-Epoch')).toBe('12')
    expect(stored?.header.get('Basalt-Reason')).toBe('padded')
    expect(stored?.header.get('Nats-Msg-Id')).toBe('h-1')
    expect(stored?.data).toEqual(new Uint8Array([7]))
  })

  it('refuses a header value with a line break, naming the header', async () => {
    const fast = fastJetStream(nc)
    await expect(
      fast.publish('fastjs.bad', new Uint8Array([1]), { headers: { 'Basalt-Reason': 'a\r\nb' } }),
    ).rejects.toThrow(/Basalt-Reason/)
  })
})

// last in this file: it restarts the server under the connections of the tests above
describe('a connection lost and made again', () => {
  it('fails the requests still waiting at once, long before their timeout', async () => {
    const own = await connectTo(nats.url, 'fastjs-reconnect')
    try {
      // a subscriber that never answers, and a timeout far past the test's own
      const fast = new FastJetStream(own, 600_000)
      own.subscribe('fastjs.silent', { callback: () => {} })
      await own.flush()
      const waiting = fast.request('fastjs.silent', new Uint8Array([1]))
      const outcome = waiting.then(
        () => 'answered',
        (err: unknown) => err,
      )
      await nats.server.stop('SIGKILL')
      await nats.server.restart()
      const err = await outcome
      expect(isConnectionLost(err), String(err)).toBe(true)
      expect(String(err)).toMatch(
        /request to fastjs\.silent: the connection to the NATS server was lost before the answer came/,
      )
      // the connection serves again
      await expect(fast.publish('fastjs.after', new Uint8Array([1]))).resolves.toBeGreaterThan(0)
      fast.close()
    } finally {
      await closeConnection(own)
    }
  }, 30_000)
})

/**
 * Messages are not trusted further than they deserve (issue 8, item 9): a message published to the
 * wrong partition's mailbox, an undecodable message inside a partition envelope, a lock request
 * whose carried calls are malformed, a reply subject outside the hub's inboxes, error answers that
 * would leak internals, garbage on a change feed and a query waiting for a mailbox position that
 * will never come. Each gets a contained outcome; nothing else is harmed. Raw messages are
 * published with a plain NATS connection.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { jetstream, jetstreamManager, type JetStreamClient } from '@nats-io/jetstream'
import type { NatsConnection } from '@nats-io/transport-node'
import { RemoteError, type Logger } from '../../runtime/index.ts'
import { decode, encode } from '../../runtime/internal.ts'
import { partitionOf } from '../../actors/ids.ts'
import type { ReplyEnvelope } from '../../actors/wire/messages.ts'
import { HubNames } from '../../runtime/nats/hub.ts'
import { closeConnection, connectTo } from '../../runtime/nats/connect.ts'
import { Counter } from '../fixtures/entities.ts'
import { useHub, useNatsServer, waitFor } from '../tooling/harness.ts'

const nats = useNatsServer()
const hub = 'trust'
const names = new HubNames(hub)
const P = 4
const warnings: Array<[string, Record<string, unknown> | undefined]> = []
const logger: Logger = { info() {}, warn: (m, f) => void warnings.push([m, f]), error() {} }
const stack = useHub(nats, { hub, registry: [Counter], partitions: P, logger })

/** A key of `prefix` whose partition is `p`. */
function keyOn(p: number, prefix: string): string {
  for (let i = 0; ; i++) if (partitionOf(`${prefix}${i}`, P) === p) return `${prefix}${i}`
}

/** Every message in the hub's dead-letter stream: its reason header and bytes. */
async function deadLetters(): Promise<Array<{ reason: string; data: Uint8Array; seq: string }>> {
  const jsm = await jetstreamManager(raw)
  const info = await jsm.streams.info(names.deadLetterStream)
  const out: Array<{ reason: string; data: Uint8Array; seq: string }> = []
  for (let seq = info.state.first_seq; seq <= info.state.last_seq && info.state.messages > 0; seq++) {
    const m = await jsm.streams.getMessage(names.deadLetterStream, { seq }).catch(() => null)
    if (m === null) continue
    out.push({
      reason: m.header.get('Basalt-Reason'),
      data: m.data,
      seq: m.header.get('Basalt-Mailbox-Seq'),
    })
  }
  return out
}

let raw: NatsConnection
let js: JetStreamClient
let q = 0
/** Publishes one raw client envelope to partition p's mailbox. */
async function publishClient(p: number, messages: unknown[]): Promise<number> {
  const ack = await js.publish(names.mailbox(p), encode({ v: 1, c: 'raw-client', q: ++q, m: messages }))
  return ack.seq
}

beforeAll(async () => {
  raw = await connectTo(nats.url, 'raw')
  js = jetstream(raw)
})
afterAll(async () => {
  await closeConnection(raw)
})

describe('a message published to the wrong partition', () => {
  it('is dead-lettered with the reason, never applied there; a call gets BadInputError', async () => {
    const key = keyOn(2, 'misrouted-')
    await stack.client.entity(Counter, key).signal.add(1)
    const inbox = `_INBOX_basalt.${hub}.raw-misrouted`
    const replies: ReplyEnvelope[] = []
    const sub = raw.subscribe(inbox, {
      callback: (_, m) => void replies.push(decode(m.data) as ReplyEnvelope),
    })
    await raw.flush()
    const seq = await publishClient(3, [
      { k: 'op', t: 'Counter', key, op: 'add', a: [5] },
      { k: 'op', t: 'Counter', key, op: 'add', a: [7], r: [inbox, 1] },
    ])
    await waitFor(() => replies.length === 1, `reply to the misrouted call of ${key}`)
    const reply = replies[0]!.r[0]!
    expect(reply[1], 'the misrouted call failed').toBe(0)
    expect((reply[2] as { code: string; message: string }).code).toBe('BAD_INPUT')
    expect((reply[2] as { message: string }).message).toMatch(/belongs to partition 2, not 3/)
    const page = await stack.client.listEntities({ type: Counter, keyPrefix: key })
    expect(page.keys, `keys listed for ${key}`).toEqual([key])
    expect(await stack.client.entity(Counter, key).call.get()).toBe(1)
    const letters = (await deadLetters()).filter((d) => d.seq === String(seq))
    expect(letters.map((d) => d.reason)).toEqual([
      expect.stringMatching(new RegExp(`Counter@${key} belongs to partition 2, not 3`)),
      expect.stringMatching(new RegExp(`Counter@${key} belongs to partition 2, not 3`)),
    ])
    expect((decode(letters[0]!.data) as { a: number[] }).a).toEqual([5])
    sub.unsubscribe()
  })
})

describe('a partition envelope with an undecodable inner message', () => {
  it('dead-letters that message and applies the others exactly once', async () => {
    const key = keyOn(1, 'inner-')
    const op = (n: number) => encode({ k: 'op', t: 'Counter', key, op: 'add', a: [n] })
    const garbage = Buffer.from('not msgpack \xc1 at all')
    const misrouted = encode({ k: 'op', t: 'Counter', key: keyOn(0, 'elsewhere-'), op: 'add', a: [100] })
    const env = encode({ v: 1, p: 77, g: [[5, [op(1), garbage, op(2), misrouted]]] })
    const first = await js.publish(names.mailbox(1), env)
    await js.publish(names.mailbox(1), env) // a re-send of the same record: skipped
    await stack.client.entity(Counter, key).signal.add(4)
    expect(await stack.client.entity(Counter, key).call.get()).toBe(7)
    const letters = (await deadLetters()).filter((d) => d.seq === String(first.seq))
    expect(letters.map((d) => d.reason)).toEqual([
      expect.stringMatching(/undecodable/),
      expect.stringMatching(/belongs to partition 0, not 1/),
    ])
    expect(Buffer.from(letters[0]!.data).equals(garbage)).toBe(true)
    expect(stack.node.partitions.size).toBe(P)
  })
})

describe('a lock request whose carried calls are malformed', () => {
  it('is dead-lettered with the reason and locks nothing; the partition goes on', async () => {
    const key = keyOn(2, 'locked-')
    const lock = (ops: unknown) =>
      encode({ k: 'lock', t: 'Counter', key, o: ['someone', 0], rest: [], all: [['Counter', key]], ops })
    const elsewhere = {
      k: 'op',
      t: 'Counter',
      key: keyOn(2, 'unlocked-'),
      op: 'add',
      a: [1],
      ro: ['someone', 1],
    }
    const add = encode({ k: 'op', t: 'Counter', key, op: 'add', a: [2] })
    const env = encode({ v: 1, p: 78, g: [[1, [lock('oops'), lock([elsewhere]), add]]] })
    const first = await js.publish(names.mailbox(2), env)
    await stack.client.entity(Counter, key).signal.add(3)
    expect(await stack.client.entity(Counter, key).call.get()).toBe(5)
    expect(await stack.client.getLock(Counter, key)).toBe(null)
    const letters = (await deadLetters()).filter((d) => d.seq === String(first.seq))
    expect(letters.map((d) => d.reason)).toEqual([
      expect.stringMatching(/message field ops is not an array/),
      expect.stringMatching(
        new RegExp(`holds a call to Counter@${elsewhere.key}, which the lock request does not lock`),
      ),
    ])
    expect(stack.node.partitions.size).toBe(P)
  })
})

describe('a lock request or grant whose riding call outcomes are malformed', () => {
  it('is dead-lettered with the reason naming res and locks nothing; the partition goes on', async () => {
    const key = keyOn(2, 'riding-')
    const lock = encode({
      k: 'lock',
      t: 'Counter',
      key,
      o: ['someone', 0],
      rest: [],
      all: [['Counter', key]],
      res: 'oops',
    })
    const outcome = { k: 'done', i: 'someone-else', s: 1, ok: 1, v: 1 }
    const grant = encode({
      k: 'done',
      i: keyOn(2, 'inst-'),
      s: 0,
      ok: 1,
      lk: [['Counter', key]],
      res: [outcome],
    })
    const add = encode({ k: 'op', t: 'Counter', key, op: 'add', a: [2] })
    const env = encode({ v: 1, p: 79, g: [[1, [lock, grant, add]]] })
    const first = await js.publish(names.mailbox(2), env)
    await stack.client.entity(Counter, key).signal.add(3)
    expect(await stack.client.entity(Counter, key).call.get()).toBe(5)
    expect(await stack.client.getLock(Counter, key)).toBe(null)
    const letters = (await deadLetters()).filter((d) => d.seq === String(first.seq))
    expect(letters.map((d) => d.reason)).toEqual([
      expect.stringMatching(/message field res is not an array/),
      expect.stringMatching(/message field res holds an outcome for instance 'someone-else'/),
    ])
    expect(stack.node.partitions.size).toBe(P)
  })
})

describe('a reply subject outside the hub inboxes', () => {
  it('gets no reply published there (a warning instead); the operation still applies', async () => {
    const key = keyOn(0, 'reply-')
    const stolen: string[] = []
    const good: ReplyEnvelope[] = []
    const inbox = `_INBOX_basalt.${hub}.raw-replies`
    const subs = [
      raw.subscribe('$JS.API.STREAM.DELETE.NO_SUCH_STREAM', {
        callback: (_, m) => void stolen.push(m.subject),
      }),
      raw.subscribe('elsewhere.>', { callback: (_, m) => void stolen.push(m.subject) }),
      raw.subscribe(inbox, { callback: (_, m) => void good.push(decode(m.data) as ReplyEnvelope) }),
    ]
    await raw.flush()
    warnings.length = 0
    await publishClient(0, [
      { k: 'op', t: 'Counter', key, op: 'add', a: [1], r: ['$JS.API.STREAM.DELETE.NO_SUCH_STREAM', 1] },
      { k: 'op', t: 'Counter', key, op: 'add', a: [1], r: ['elsewhere.x', 2] },
      { k: 'op', t: 'Counter', key, op: 'add', a: [1], r: [`_INBOX_basalt.${hub}.*`, 3] },
      { k: 'op', t: 'Counter', key, op: 'add', a: [1], r: [`_INBOX_basalt.other-hub.x`, 4] },
    ])
    await publishClient(0, [{ k: 'op', t: 'Counter', key, op: 'get', a: [], r: [inbox, 5] }])
    await waitFor(() => good.length === 1, 'the reply to the valid inbox')
    await raw.flush()
    expect(decode((good[0]!.r[0] as [number, 1, Uint8Array])[2])).toBe(4)
    expect(stolen).toEqual([])
    expect(warnings.filter(([m]) => /reply subject/.test(m)).map(([, f]) => f?.['inbox'])).toEqual([
      '$JS.API.STREAM.DELETE.NO_SUCH_STREAM',
      'elsewhere.x',
      `_INBOX_basalt.${hub}.*`,
      '_INBOX_basalt.other-hub.x',
    ])
    for (const sub of subs) sub.unsubscribe()
  })
})

describe('a query naming a reply subject that is not an inbox', () => {
  it('is not answered (a warning instead); queries from inboxes are', async () => {
    const stolen: string[] = []
    const sub = raw.subscribe('elsewhere.>', { callback: (_, m) => void stolen.push(m.subject) })
    await raw.flush()
    warnings.length = 0
    const query = encode({ v: 1, k: 'replies', inbox: `_INBOX_basalt.${hub}.nobody`, rids: [1] })
    raw.publish(names.query(0), query, { reply: 'elsewhere.answers' })
    raw.publish(names.query(0), query, { reply: `${names.mailbox(0)}` })
    const answer = decode((await raw.request(names.query(0), query)).data) as { ok: number }
    expect(answer.ok).toBe(1)
    await raw.flush()
    expect(stolen).toEqual([])
    expect(warnings.filter(([m]) => /query reply subject/.test(m)).map(([, f]) => f?.['reply'])).toEqual([
      'elsewhere.answers',
      names.mailbox(0),
    ])
    sub.unsubscribe()
  })
})

describe('error answers', () => {
  it('carry name, code, message and plain fields only for protocol errors, in query answers and replies', async () => {
    const answer = decode(
      (await raw.request(names.query(0), encode({ v: 1, k: 'read', t: 'no such type!', key: 'k' }))).data,
    ) as { ok: number; error: Record<string, unknown> }
    expect(answer.ok).toBe(0)
    // no stack, no node paths (an error with fields of its own carries them too, plain values)
    expect(Object.keys(answer.error).sort()).toEqual(['code', 'message', 'name'])
    const inbox = `_INBOX_basalt.${hub}.raw-errors`
    const replies: ReplyEnvelope[] = []
    const sub = raw.subscribe(inbox, {
      callback: (_, m) => void replies.push(decode(m.data) as ReplyEnvelope),
    })
    await raw.flush()
    const key = keyOn(0, 'errors-')
    await publishClient(0, [{ k: 'op', t: 'Counter', key, op: 'noSuchOp', a: [], r: [inbox, 1] }])
    await waitFor(() => replies.length === 1, 'the reply to an unknown operation')
    const error = (replies[0]!.r[0] as unknown as [number, 0, Record<string, unknown>])[2]
    expect(Object.keys(error).sort()).toEqual(['code', 'details', 'message', 'name'])
    expect(error['details']).toEqual({ entityType: 'Counter', operation: 'noSuchOp' })
    sub.unsubscribe()
  })

  it('keep the remote stack of an error thrown by user code', async () => {
    const err = await stack.client
      .entity(Counter, 'user-error')
      .call.failAfterAdding(1)
      .catch((e: unknown) => e)
    expect(err).toBeInstanceOf(RemoteError)
    expect((err as RemoteError).remoteStack).toMatch(/RangeError: refusing after adding 1\n\s+at /)
  })
})

describe('garbage on a change feed', () => {
  it('is skipped by watchers, which keep receiving changes', async () => {
    const key = keyOn(3, 'watched-')
    const seen: Array<number | undefined> = []
    const errors: unknown[] = []
    const sub = stack.client
      .watchEntity(Counter, key)
      .subscribe({ next: (v) => seen.push(v), error: (e: unknown) => errors.push(e) })
    await waitFor(() => seen.length === 1, `first value of ${key}`)
    raw.publish(names.changes(3), Buffer.from('garbage, not msgpack \xc1'))
    raw.publish(names.changes(3), encode({ v: 1, n: 'x', w: 5 }))
    raw.publish(names.changes(3), encode({ v: 1, n: 1, w: [[7, 7]] }))
    await raw.flush()
    await stack.client.entity(Counter, key).signal.add(3)
    await waitFor(() => seen.length === 2, `second value of ${key} (seen ${JSON.stringify(seen)})`)
    expect(errors).toEqual([])
    expect(seen).toEqual([undefined, 3])
    await stack.client.entity(Counter, key).signal.add(2)
    await waitFor(() => seen.length === 3, `third value of ${key} (seen ${JSON.stringify(seen)})`)
    expect(seen).toEqual([undefined, 3, 5])
    sub.unsubscribe()
  })
})

describe('a query waiting for a mailbox position', () => {
  it('is answered with BadInputError when the position is past the mailbox end or not a number', async () => {
    const ask = async (s: unknown) =>
      decode(
        (
          await raw.request(names.query(2), encode({ v: 1, k: 'read', t: 'Counter', key: 'k', s }), {
            timeout: 5_000,
          })
        ).data,
      ) as { ok: number; error?: { code: string; message: string } }
    const [far, text, negative] = await Promise.all([ask(1e15), ask('soon'), ask(-1)])
    expect(far.ok).toBe(0)
    expect(far.error?.code).toBe('BAD_INPUT')
    expect(far.error?.message).toMatch(/mailbox position 1000000000000000, .* ends at \d+/)
    expect(text.error?.message).toMatch(/s must be a non-negative integer/)
    expect(negative.error?.message).toMatch(/s must be a non-negative integer/)
    // a position that exists is waited for and answered
    const key = keyOn(2, 'position-')
    await stack.client.entity(Counter, key).signal.add(2)
    expect(await stack.client.readEntityState(Counter, key)).toEqual({ exists: true, state: 2 })
  })
})

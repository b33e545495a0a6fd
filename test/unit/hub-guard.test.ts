/**
 * A client's check of its hub (runtime/client/hub-guard.ts) against a hub record it is handed and
 * what it hears on the record's subject: nothing read and nothing held while it hears nothing, a
 * record of another hub held for one read and refused for good with both partition counts, a
 * claim the read does not bear out (or NATS not answering) no reason to refuse. The real deletion
 * and creation are in test/integration/hub-deleted.test.ts.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { HubNotFoundError } from '../../actors/index.ts'
import {
  CONFIRM_MS,
  HUB_CHECK_MS,
  HubGuard,
  READ_WAIT_MS,
  RETRY_MS,
  recreatedError,
} from '../../runtime/client/hub-guard.ts'
import { encode } from '../../runtime/nats/codec.ts'
import { HubNames, type Hub, type HubMeta } from '../../runtime/nats/hub.ts'
import type { NatsConnection } from '../../runtime/nats/index.ts'
import type { Logger } from '../../runtime/util/index.ts'

const opened: HubMeta = { v: 1, partitions: 4, replicas: 1, created: 1_700_000_000_000 }
const other: HubMeta = { ...opened, partitions: 8, created: opened.created + 1 }
const refusal =
  "hub 'orders' was deleted and created again since this client connected, now with 8 partitions " +
  '(this client routes by the 4 it had): connect again'

/**
 * A hub whose record reads as `record()` returns it (an Error: NATS fails the read; null: none),
 * after `delayMs`.
 */
function hubReading(record: () => HubMeta | null | Error, delayMs = 0): { hub: Hub; reads: () => number } {
  let reads = 0
  const jsm = {
    streams: {
      getMessage: async () => {
        reads++
        if (delayMs > 0) await new Promise((resolve) => setTimeout(resolve, delayMs))
        const now = record()
        if (now instanceof Error) throw now
        if (now === null) throw Object.assign(new Error('no message found'), { code: 10037 })
        return { data: encode(now), seq: 1, header: undefined }
      },
    },
  }
  return { hub: { names: new HubNames('orders'), meta: opened, jsm } as unknown as Hub, reads: () => reads }
}

/**
 * A connection that records the subjects subscribed to and hands the subscription's callback to
 * the test (`deliver`): the advisory heard, or the server refusing the subscription.
 */
function advisoryConnection(): {
  nc: NatsConnection
  subjects: string[]
  deliver: (err: Error | null, msg: unknown) => void
} {
  let callback: ((err: Error | null, msg: unknown) => void) | undefined
  const subjects: string[] = []
  const nc = {
    subscribe: (subject: string, opts: { callback: typeof callback }) => {
      subjects.push(subject)
      callback = opts.callback
      return { unsubscribe() {} }
    },
    flush: async () => {},
  } as unknown as NatsConnection
  return { nc, subjects, deliver: (err, msg) => callback!(err, msg) }
}

describe('HubGuard', () => {
  beforeEach(() => {
    vi.useFakeTimers({ now: 1_000_000 })
  })
  afterEach(() => {
    vi.useRealTimers()
  })

  it('lets messages go at once, reading nothing, while it hears nothing', async () => {
    const { hub, reads } = hubReading(() => opened)
    const guard = new HubGuard(hub, () => {})
    for (let i = 0; i < 5; i++) {
      expect(guard.ready()).toBeUndefined()
      await vi.advanceTimersByTimeAsync(10 * HUB_CHECK_MS)
    }
    expect(reads()).toBe(0)
  })

  it('the metadata stream heard created holds messages for one read; another hub found, everything is refused for good', async () => {
    let now: HubMeta = opened
    const { hub, reads } = hubReading(() => now)
    const told: HubNotFoundError[] = []
    const guard = new HubGuard(hub, (refusal) => told.push(refusal))
    now = other
    guard.heard()
    const held = guard.ready()
    expect(held).toBeInstanceOf(Promise)
    const refused = await held!.catch((e: unknown) => e)
    expect(refused).toBeInstanceOf(HubNotFoundError)
    expect((refused as Error).message).toBe(refusal)
    expect(guard.replaced).toBe(true)
    expect(told.map((e) => e.message)).toEqual([refusal])
    // for good, without reading again
    guard.heard()
    guard.check()
    await vi.advanceTimersByTimeAsync(10 * CONFIRM_MS)
    await expect(guard.ready()).rejects.toThrow(refusal)
    expect(reads()).toBe(1)
    expect(told).toHaveLength(1)
  })

  it('a creation heard where the read finds the hub opened (not a new one) refuses nothing', async () => {
    const { hub, reads } = hubReading(() => opened)
    const guard = new HubGuard(hub, () => {})
    guard.heard()
    await expect(guard.ready()).resolves.toBeUndefined()
    expect(guard.ready()).toBeUndefined()
    expect(guard.replaced).toBe(false)
    expect(reads()).toBe(1)
  })

  it('a creation heard before the record is stored: messages wait while it is read again, until it is there', async () => {
    let now: HubMeta | null = null
    const { hub, reads } = hubReading(() => now)
    const guard = new HubGuard(hub, () => {})
    guard.heard()
    const held = guard.ready()!
    await vi.advanceTimersByTimeAsync(3 * RETRY_MS)
    expect(reads()).toBeGreaterThanOrEqual(3)
    now = other
    const refused = held.catch((e: unknown) => e)
    await vi.advanceTimersByTimeAsync(RETRY_MS)
    expect(((await refused) as Error).message).toBe(refusal)
    expect(guard.replaced).toBe(true)
  })

  it('a creation heard whose record is not there in READ_WAIT_MS: messages go, and a later read still finds it', async () => {
    let now: HubMeta | null = null
    const { hub } = hubReading(() => now)
    const guard = new HubGuard(hub, () => {})
    guard.heard()
    const held = guard.ready()!
    await vi.advanceTimersByTimeAsync(READ_WAIT_MS)
    await expect(held).resolves.toBeUndefined()
    expect(guard.ready(), 'no longer held').toBeUndefined()
    expect(guard.replaced).toBe(false)
    now = other
    await vi.advanceTimersByTimeAsync(CONFIRM_MS)
    expect(guard.replaced).toBe(true)
    await expect(guard.ready()).rejects.toThrow(refusal)
  })

  it('a read not answered in READ_WAIT_MS lets messages go, and still counts when it answers', async () => {
    const { hub } = hubReading(() => other, 10 * READ_WAIT_MS)
    const guard = new HubGuard(hub, () => {})
    guard.heard()
    const held = guard.ready()!
    await vi.advanceTimersByTimeAsync(READ_WAIT_MS)
    await expect(held).resolves.toBeUndefined()
    expect(guard.ready()).toBeUndefined()
    await vi.advanceTimersByTimeAsync(10 * READ_WAIT_MS)
    expect(guard.replaced).toBe(true)
    await expect(guard.ready()).rejects.toThrow(refusal)
  })

  it('a read after a reconnect holds nothing; a missing record is read again CONFIRM_MS later, a few times', async () => {
    let now: HubMeta | null = null
    const { hub, reads } = hubReading(() => now)
    const guard = new HubGuard(hub, () => {})
    guard.check()
    expect(guard.ready()).toBeUndefined()
    await vi.advanceTimersByTimeAsync(10 * CONFIRM_MS)
    expect(reads(), 'read, then twice more').toBe(3)
    expect(guard.replaced, 'a deletion refuses nothing here').toBe(false)
    // the next reconnect reads again, and finds the hub created again meanwhile
    now = other
    guard.check()
    expect(guard.ready()).toBeUndefined()
    await vi.advanceTimersByTimeAsync(0)
    expect(guard.replaced).toBe(true)
  })

  it('NATS not answering is no reason to refuse', async () => {
    const { hub } = hubReading(() => new Error('TIMEOUT'))
    const guard = new HubGuard(hub, () => {})
    guard.heard()
    const held = guard.ready()!
    await vi.advanceTimersByTimeAsync(READ_WAIT_MS)
    await expect(held).resolves.toBeUndefined()
    guard.check()
    await vi.advanceTimersByTimeAsync(10 * CONFIRM_MS)
    expect(guard.replaced).toBe(false)
    expect(guard.ready()).toBeUndefined()
  })

  it('listens for the creation of the metadata stream and reads once; refused that subscription, it reads while sending, at most every HUB_CHECK_MS', async () => {
    const { hub, reads } = hubReading(() => opened)
    const warned: string[] = []
    const logger = { info() {}, error() {}, warn: (m: string) => void warned.push(m) } as Logger
    const { nc, subjects, deliver } = advisoryConnection()
    const guard = new HubGuard(hub, () => {}, logger)
    guard.listen(nc)
    expect(subjects).toEqual(['$JS.EVENT.ADVISORY.STREAM.CREATED.KV_basalt_orders_meta'])
    await vi.advanceTimersByTimeAsync(0)
    expect(reads(), 'the read after subscribing').toBe(1)
    // the advisory heard: a read holds messages, and finds the hub opened
    deliver(null, {})
    await expect(guard.ready()).resolves.toBeUndefined()
    expect(reads()).toBe(2)
    // a user with the permissions of an earlier version
    deliver(Object.assign(new Error('Permissions Violation for Subscription'), {}), {
      data: new Uint8Array(),
    })
    expect(warned).toHaveLength(1)
    expect(warned[0]).toMatch(
      /may not subscribe to \$JS\.EVENT\.ADVISORY\.STREAM\.CREATED\.KV_basalt_orders_meta/,
    )
    expect(guard.ready(), 'no read due yet').toBeUndefined()
    await vi.advanceTimersByTimeAsync(HUB_CHECK_MS)
    // a read due: the message waits for it (sent meanwhile, it could reach a hub created again)
    const held = guard.ready()
    expect(held, 'the read holds the message').toBeInstanceOf(Promise)
    await expect(held).resolves.toBeUndefined()
    expect(reads()).toBe(3)
    expect(guard.ready(), 'read less than HUB_CHECK_MS ago').toBeUndefined()
    expect(reads()).toBe(3)
  })

  it('refused the subscription, it refuses the message whose read finds the hub created again', async () => {
    let now: HubMeta = opened
    const { hub, reads } = hubReading(() => now, 5)
    const replaced: string[] = []
    const { nc, deliver } = advisoryConnection()
    const logger = { info() {}, warn() {}, error() {} } as Logger
    const guard = new HubGuard(hub, (refusal) => void replaced.push(refusal.message), logger)
    guard.listen(nc)
    deliver(new Error('Permissions Violation for Subscription'), {})
    await vi.advanceTimersByTimeAsync(HUB_CHECK_MS)
    expect(reads()).toBe(1)
    now = other // deleted and created again with 8 partitions
    const first = guard.ready()!
    const second = guard.ready()!
    expect(reads(), 'one read for both').toBe(2)
    const outcomes = Promise.allSettled([first, second])
    await vi.advanceTimersByTimeAsync(5)
    for (const outcome of await outcomes) {
      expect(outcome.status).toBe('rejected')
      expect((outcome as PromiseRejectedResult).reason).toBeInstanceOf(HubNotFoundError)
      expect((outcome as PromiseRejectedResult).reason.message).toBe(refusal)
    }
    expect(replaced).toEqual([refusal])
    await expect(guard.ready()).rejects.toThrow(refusal)
  })

  it('refused the subscription, a read that gets no answer holds messages at most READ_WAIT_MS', async () => {
    const { hub } = hubReading(() => opened, 10 * READ_WAIT_MS)
    const { nc, deliver } = advisoryConnection()
    const guard = new HubGuard(hub, () => {}, { info() {}, warn() {}, error() {} } as Logger)
    guard.listen(nc)
    deliver(new Error('Permissions Violation for Subscription'), {})
    await vi.advanceTimersByTimeAsync(HUB_CHECK_MS)
    let settled = false
    const held = guard.ready()!.then(() => (settled = true))
    await vi.advanceTimersByTimeAsync(READ_WAIT_MS - 1)
    expect(settled).toBe(false)
    await vi.advanceTimersByTimeAsync(1)
    await held
    expect(settled).toBe(true)
    expect(guard.replaced).toBe(false)
  })

  it('the refusal leaves the counts out when they are the same', () => {
    expect(recreatedError('h', opened, { ...opened, created: 5 }).message).toBe(
      "hub 'h' was deleted and created again since this client connected: connect again",
    )
    expect(recreatedError('h', opened, { ...opened, partitions: 1, created: 5 }).message).toBe(
      "hub 'h' was deleted and created again since this client connected, now with 1 partition " +
        '(this client routes by the 4 it had): connect again',
    )
  })
})

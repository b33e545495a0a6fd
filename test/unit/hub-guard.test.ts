/**
 * A client's check of its hub (runtime/client/hub-guard.ts) against a hub record it is handed:
 * read at most every HUB_CHECK_MS while it finds the hub it opened, a hub created again refused
 * for good with both partition counts, NATS not answering no reason to refuse. The real deletion
 * and creation are in test/integration/hub-deleted.test.ts.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { HubNotFoundError } from '../../actors/index.ts'
import { HUB_CHECK_MS, HubGuard, READ_WAIT_MS, recreatedError } from '../../runtime/client/hub-guard.ts'
import { encode } from '../../runtime/nats/codec.ts'
import { HubNames, type Hub, type HubMeta } from '../../runtime/nats/hub.ts'

const opened: HubMeta = { v: 1, partitions: 4, replicas: 1, created: 1_700_000_000_000 }

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

describe('HubGuard', () => {
  beforeEach(() => {
    vi.useFakeTimers({ now: 1_000_000 })
  })
  afterEach(() => {
    vi.useRealTimers()
  })

  it('reads the hub record at most every HUB_CHECK_MS while it finds the hub it opened', async () => {
    const { hub, reads } = hubReading(() => opened)
    const guard = new HubGuard(hub, () => {}, Date.now())
    expect(guard.ready(), 'read at connect').toBeUndefined()
    vi.advanceTimersByTime(HUB_CHECK_MS)
    const first = guard.ready()
    expect(first).toBeInstanceOf(Promise)
    // messages handed over while it reads wait for the same read
    expect(guard.ready()).toBe(first)
    await first
    expect(guard.ready()).toBeUndefined()
    expect(reads()).toBe(1)
    vi.advanceTimersByTime(HUB_CHECK_MS)
    await guard.ready()
    expect(reads()).toBe(2)
  })

  it('a hub created again is refused for good, naming both partition counts', async () => {
    let now: HubMeta = opened
    const { hub, reads } = hubReading(() => now)
    const told: HubNotFoundError[] = []
    const guard = new HubGuard(hub, (refusal) => told.push(refusal), Date.now())
    now = { ...opened, partitions: 8, created: opened.created + 1 }
    vi.advanceTimersByTime(HUB_CHECK_MS)
    const refused = await guard.ready()!.catch((e: unknown) => e)
    const message =
      "hub 'orders' was deleted and created again since this client connected, now with 8 partitions " +
      '(this client routes by the 4 it had): connect again'
    expect(refused).toBeInstanceOf(HubNotFoundError)
    expect((refused as Error).message).toBe(message)
    expect(guard.replaced).toBe(true)
    expect(told.map((e) => e.message)).toEqual([message])
    // for good, without reading again
    vi.advanceTimersByTime(10 * HUB_CHECK_MS)
    await expect(guard.ready()).rejects.toThrow(message)
    expect(reads()).toBe(1)
    expect(told).toHaveLength(1)
  })

  it('a missing record is read again a second later: deleted, or created again meanwhile', async () => {
    let now: HubMeta | null = null
    const { hub } = hubReading(() => now)
    const guard = new HubGuard(hub, () => {}, 0)
    const deleted = guard.ready()!.catch((e: unknown) => e)
    await vi.advanceTimersByTimeAsync(1000)
    expect(((await deleted) as Error).message).toBe(
      "hub 'orders' was deleted: start a node on it to create it again",
    )
    expect(guard.replaced, 'a deletion is not for good').toBe(false)
    const recreated = (vi.advanceTimersByTime(HUB_CHECK_MS), guard.ready()!.catch((e: unknown) => e))
    now = { ...opened, created: opened.created + 1 }
    await vi.advanceTimersByTimeAsync(1000)
    expect(((await recreated) as Error).message).toBe(
      "hub 'orders' was deleted and created again since this client connected: connect again",
    )
    expect(guard.replaced).toBe(true)
  })

  it('NATS not answering the read is no reason to refuse', async () => {
    const { hub } = hubReading(() => new Error('TIMEOUT'))
    const guard = new HubGuard(hub, () => {}, 0)
    await expect(guard.ready()).resolves.toBeUndefined()
    expect(guard.replaced).toBe(false)
  })

  it('a read not answered in READ_WAIT_MS lets messages go, starts no other, and still counts when it answers', async () => {
    let now: HubMeta = opened
    const { hub, reads } = hubReading(() => now, 10 * READ_WAIT_MS)
    const guard = new HubGuard(hub, () => {}, 0)
    const first = guard.ready()!
    now = { ...opened, partitions: 2, created: opened.created + 1 }
    await vi.advanceTimersByTimeAsync(READ_WAIT_MS)
    await expect(first).resolves.toBeUndefined()
    // while it is out, messages do not wait, and no other read starts
    await vi.advanceTimersByTimeAsync(2 * HUB_CHECK_MS)
    expect(guard.ready()).toBeUndefined()
    expect(reads()).toBe(1)
    // its answer, a hub created again, refuses from then on
    await vi.advanceTimersByTimeAsync(10 * READ_WAIT_MS)
    expect(guard.replaced).toBe(true)
    await expect(guard.ready()).rejects.toThrow(
      /now with 2 partitions \(this client routes by the 4 it had\)/,
    )
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

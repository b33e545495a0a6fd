/** The mailbox stall watch, with a fake partition (no NATS). */
import { afterEach, describe, expect, it } from 'vitest'
import { StallWatch, type StallWatchPort } from '../../runtime/partition/stall-watch.ts'
import { waitFor } from '../tooling/harness.ts'

const watches: StallWatch[] = []
afterEach(() => {
  for (const w of watches.splice(0)) w.stop()
})

function fake(overrides: Partial<StallWatchPort> = {}, idleMs = 40, patienceMs?: number) {
  const seen = { asked: 0, stalls: [] as string[] }
  const port: StallWatchPort = {
    idle: () => true,
    position: () => 10,
    lastStored: async () => {
      seen.asked++
      return 9
    },
    stalled: (reason) => seen.stalls.push(reason),
    ...overrides,
  }
  const watch = new StallWatch(port, idleMs, patienceMs)
  watches.push(watch)
  return { watch, seen }
}

describe('stall watch', () => {
  it('reports messages that wait past the position while nothing is delivered', async () => {
    const { seen } = fake({ lastStored: async () => 12 })
    await waitFor(() => seen.stalls.length > 0, 'a stall')
    expect(seen.stalls[0]).toMatch(/messages up to 12 wait past position 10/)
  })

  it('stays quiet while the partition is caught up, asking less and less often', async () => {
    const { seen } = fake()
    await new Promise((r) => setTimeout(r, 700))
    expect(seen.stalls).toEqual([])
    // intervals 40, 80, 160, 320 ms…: a handful of questions, not one every tick
    expect(seen.asked).toBeGreaterThan(0)
    expect(seen.asked).toBeLessThan(6)
  })

  it('never asks while messages arrive or wait in the inbox', async () => {
    let busy = true
    const { watch, seen } = fake({ idle: () => !busy, lastStored: async () => 99 })
    const feed = setInterval(() => watch.delivered(), 10)
    await new Promise((r) => setTimeout(r, 300))
    clearInterval(feed)
    expect(seen.asked).toBe(0)
    busy = false
    await waitFor(() => seen.stalls.length > 0, 'a stall once idle')
  })

  it('after a reconnect, asks within a second or two instead of waiting idleMs', async () => {
    // a consumer lost with a restarted server: messages wait, none come; idleMs is a minute here
    const { watch, seen } = fake({ lastStored: async () => 12 }, 60_000)
    watch.delivered()
    watch.reconnected()
    await waitFor(() => seen.stalls.length > 0, 'a stall reported soon after the reconnect', 5_000)
    expect(seen.stalls[0]).toMatch(
      /wait past position 10, none delivered for \d+ ms \(the connection was made again lately\)/,
    )
  })

  it('abandons a check still waiting at a reconnect (its request was lost) and asks again', async () => {
    // the first question is sent while the server is down and never answered
    let asked = 0
    const { watch, seen } = fake({
      lastStored: () => (++asked === 1 ? new Promise<number>(() => {}) : Promise.resolve(12)),
    })
    await waitFor(() => asked === 1, 'the first question asked')
    watch.reconnected()
    await waitFor(() => seen.stalls.length > 0, 'a stall reported after the reconnect', 5_000)
    expect(asked).toBeGreaterThanOrEqual(2)
  })

  it('asks again when the stream does not answer within its patience (a stream without a leader)', async () => {
    // the first question is never answered (as one waiting out the client's 5 s); no reconnect
    let asked = 0
    const { seen } = fake(
      { lastStored: () => (++asked === 1 ? new Promise<number>(() => {}) : Promise.resolve(12)) },
      40,
      200,
    )
    await waitFor(() => seen.stalls.length > 0, 'a stall reported after the unanswered question', 2_000)
    expect(asked).toBe(2)
  })
})

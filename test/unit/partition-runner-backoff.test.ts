/**
 * The partition runner (runtime/node/partition-runner.ts) against fakes of its agent and threads:
 * a start that fails at once is retried after the growing restart delay, not at every reconcile
 * step (on an R3 hub whose streams were deleted under it, a node looped at ~1,800 failed starts
 * per second).
 */
import { describe, expect, it } from 'vitest'
import { noNodeMetrics } from '../../runtime/metrics/index.ts'
import { PartitionRunner, retryCapMs, type PartitionRunnerDeps } from '../../runtime/node/partition-runner.ts'
import { LeanPublishError, PERMISSION_DENIED } from '../../runtime/nats/errors.ts'
import { AuthorizationError } from '../../actors/index.ts'
import type { PartitionThreads } from '../../runtime/node/partition-threads.ts'
import type { PlacementAgent } from '../../placement/index.ts'

/** A runner whose every start of partition 0 fails with `error()`, and the delays it logs. */
function failingRunner(error: () => Error) {
  const seen = { starts: 0, delays: [] as number[] }
  const threads = {
    hubNames: () => {},
    setCarryCalls: () => {},
    setReleaseWithCalls: () => {},
    startPartition: async () => {
      seen.starts++
      throw error()
    },
  } as unknown as PartitionThreads
  const agent = {
    types: { hubNames: () => [] },
    everyNodeHas: () => true,
    wanted: () => new Map([[0, 1]]),
    handoffs: () => [],
  } as unknown as PlacementAgent
  const logger = {
    info: () => {},
    warn: () => {},
    error: (_m: string, f?: { retryInMs?: number }) => {
      if (f?.retryInMs !== undefined) seen.delays.push(f.retryInMs)
    },
  }
  const deps = {
    settings: { logger },
    metrics: noNodeMetrics,
    onIdle: () => {},
  } as unknown as PartitionRunnerDeps
  const runner = new PartitionRunner(deps)
  runner.useThreads(threads)
  runner.follow(agent)
  return { runner, seen }
}

describe('PartitionRunner', () => {
  it('retries a start NATS could not answer (a timeout) at most a second apart', async () => {
    const timeout = failingRunner(() => Object.assign(new Error('timeout'), { name: 'TimeoutError' }))
    const other = failingRunner(() => new Error('stream not found'))
    try {
      timeout.runner.reconcile()
      other.runner.reconcile()
      await new Promise((resolve) => setTimeout(resolve, 3_600))
      // 200, 400, 800, then capped at 1,000 ms; any other failure keeps doubling
      expect(timeout.seen.delays.slice(0, 5)).toEqual([200, 400, 800, 1000, 1000])
      expect(other.seen.delays.slice(0, 4)).toEqual([200, 400, 800, 1600])
    } finally {
      for (const { runner } of [timeout, other]) {
        runner.halt()
        runner.cancelRestarts()
      }
    }
  })

  it('retries a start that fails at once after a growing delay, whatever reconciles in between', async () => {
    const { runner, seen } = failingRunner(() => new Error('stream not found'))
    const kicks = setInterval(() => runner.reconcile(), 5) // other placement work reconciling often
    try {
      runner.reconcile()
      await new Promise((resolve) => setTimeout(resolve, 1000))
      // retried after 200, then 400 ms: 3 starts in 1 s (a start at every reconcile: ~200)
      expect(seen.starts).toBeGreaterThanOrEqual(2)
      expect(seen.starts).toBeLessThanOrEqual(4)
    } finally {
      clearInterval(kicks)
      runner.halt()
      runner.cancelRestarts()
    }
  })

  it("caps the delay at 5 s for a failure the server's permissions caused, so work goes on soon after they are given back", () => {
    const denied = new LeanPublishError(
      "publish to pr.log.0: permission denied: the NATS user may not publish to 'pr.log.0'",
      PERMISSION_DENIED,
    )
    expect(retryCapMs(denied)).toBe(5000)
    expect(retryCapMs(new Error('partition 0 failed', { cause: denied }))).toBe(5000)
    expect(retryCapMs(new AuthorizationError('not permitted'))).toBe(5000)
    expect(retryCapMs(new Error('nats: Permissions Violation for Publish to "pr.log.0"'))).toBe(5000)
    expect(retryCapMs(Object.assign(new Error('timeout'), { name: 'TimeoutError' }))).toBe(1000)
    expect(retryCapMs(new Error('stream not found'))).toBeUndefined() // doubling up to 30 s
  })
})

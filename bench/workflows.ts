/** Orchestrations and activities used by the benchmarks (the paper's workloads, in small). */
import { activity, orchestration } from '../actors/orchestration/index.ts'
import { Entity } from '../entities/index.ts'

/** A trivial activity, as in the paper's HelloSequence. */
export const hello = activity('bench.hello', (city: string) => `Hello ${city}`)

/** `n` activities in a row. */
export const helloSequence = orchestration('bench.helloSequence', function* (ctx, n: number) {
  const out: string[] = []
  for (let i = 0; i < n; i++) out.push(yield* ctx.callActivity(hello, `city-${i}`))
  return out.length
})

/** A trivial numeric activity. */
export const square = activity('bench.square', (x: number) => x * x)

/** One orchestration fanning out `n` activities, then summing. */
export const fanOutFanIn = orchestration('bench.fanOutFanIn', function* (ctx, n: number) {
  const results = yield* ctx.all(Array.from({ length: n }, (_, i) => ctx.callActivity(square, i)))
  return results.reduce((a, b) => a + b, 0)
})

/** A bank account. */
export class BenchAccount extends Entity<number> {
  initialState() {
    return 0
  }
  deposit(n: number) {
    this.state += n
  }
  withdraw(n: number) {
    if (n > this.state) throw new Error('insufficient funds')
    this.state -= n
  }
  balance() {
    return this.state
  }
}

/**
 * The paper's Bank workload with a critical section over both accounts. The balance call travels
 * with the lock request (it runs as soon as the source account is locked), and the release goes
 * out with the last two calls (each account runs its call, then its unlock): the accounts are
 * held two round trips less than with a call after the grant and a release after the results.
 */
export const transfer = orchestration(
  'bench.transfer',
  function* (ctx, t: { from: string; to: string; amount: number }) {
    const locking = ctx.lock(ctx.entityRef(BenchAccount, t.from), ctx.entityRef(BenchAccount, t.to))
    const balanceCall = ctx.callEntity(BenchAccount, t.from).balance()
    const lock = yield* locking
    try {
      const balance = yield* balanceCall
      if (balance < t.amount) return false
      const moved = ctx.all([
        ctx.callEntity(BenchAccount, t.from).withdraw(t.amount),
        ctx.callEntity(BenchAccount, t.to).deposit(t.amount),
      ])
      lock.release()
      yield* moved
      return true
    } finally {
      lock.release()
    }
  },
)

export const benchWorkflows = [hello, helloSequence, square, fanOutFanIn, BenchAccount, transfer]

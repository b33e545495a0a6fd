/**
 * Orchestration examples (Durable Functions' classic patterns): hello-sequence, fan-out/fan-in,
 * a bank transfer under a lock on both accounts, an approval raced against a timer, an eternal
 * monitor using continue-as-new, and a saga that compensates on failure (and one that then fails).
 */
import { activity, orchestration } from '../../actors/orchestration/index.ts'
import type { Client } from '../../runtime/index.ts'
import { Account } from '../bank/index.ts'

export const sayHello = activity('sayHello', async (city: string) => `Hello ${city}`)

/** Five activities in a row. */
export const helloSequence = orchestration('helloSequence', function* (ctx) {
  const out: string[] = []
  for (const city of ['Tokyo', 'Seattle', 'London', 'Cairo', 'Lima'])
    out.push(yield* ctx.callActivity(sayHello, city))
  return out
})

export const wordLength = activity('wordLength', (word: string) => word.length)

/** N activities in parallel, then a sum. */
export const fanOutFanIn = orchestration('fanOutFanIn', function* (ctx, words: string[]) {
  const lengths = yield* ctx.all(words.map((w) => ctx.callActivity(wordLength, w)))
  return lengths.reduce((a, b) => a + b, 0)
})

/** Moves money between two accounts inside a critical section over both (the paper's Bank). */
export const transfer = orchestration(
  'transfer',
  function* (ctx, t: { from: string; to: string; amount: number }) {
    const lock = yield* ctx.lock(ctx.entityRef(Account, t.from), ctx.entityRef(Account, t.to))
    try {
      const balance = yield* ctx.callEntity(Account, t.from).balance()
      if (balance < t.amount) return false
      yield* ctx.all([
        ctx.callEntity(Account, t.from).withdraw(t.amount),
        ctx.callEntity(Account, t.to).deposit(t.amount),
      ])
      return true
    } finally {
      lock.release()
    }
  },
)

/** Waits for an 'approve' event, or gives up when the timer fires first. */
export const approval = orchestration('approval', function* (ctx, timeoutMs: number) {
  const timer = ctx.createTimer(ctx.now() + timeoutMs)
  const decision = ctx.waitForEvent<{ by: string }>('approve')
  const winner = yield* ctx.any([decision, timer])
  if (winner === decision) {
    timer.cancel()
    return `approved by ${decision.result?.by ?? '?'}`
  }
  return 'escalated: no approval in time'
})

export const checkHealth = activity('checkHealth', (round: number) =>
  round % 3 === 2 ? 'degraded' : 'healthy',
)

/** An eternal monitor: checks, sleeps, continues as new (bounded history), stops after N rounds. */
export const monitor = orchestration(
  'monitor',
  function* (ctx, s: { round: number; rounds: number; seen: string[] }) {
    const health = yield* ctx.callActivity(checkHealth, s.round)
    const seen = [...s.seen, health]
    ctx.setCustomStatus({ round: s.round, health })
    if (s.round + 1 >= s.rounds) return seen
    yield* ctx.createTimer(ctx.now() + 20)
    ctx.continueAsNew({ round: s.round + 1, rounds: s.rounds, seen })
    return seen
  },
)

export const bookFlight = activity('bookFlight', (trip: string) => `flight for ${trip}`)
export const bookHotel = activity('bookHotel', (trip: string) => `hotel for ${trip}`)
export const bookCar = activity('bookCar', (trip: string) => {
  if (trip.includes('island')) throw new Error(`no cars on ${trip}`)
  return `car for ${trip}`
})
export const cancelBooking = activity('cancelBooking', (booking: string) => `cancelled ${booking}`)

/** Books three things; if one fails, undoes the ones already booked, in reverse order. */
export const saga = orchestration('saga', function* (ctx, trip: string) {
  const done: string[] = []
  try {
    done.push(yield* ctx.callActivity(bookFlight, trip))
    done.push(yield* ctx.callActivity(bookHotel, trip))
    done.push(yield* ctx.callActivity(bookCar, trip))
    return { ok: true, booked: done }
  } catch (err) {
    const undone: string[] = []
    for (const booking of [...done].reverse()) undone.push(yield* ctx.callActivity(cancelBooking, booking))
    return { ok: false, error: (err as Error).message, undone }
  }
})

/** Like {@link saga}, but fails after compensating: the instance ends Failed with the cause. */
export const strictSaga = orchestration('strictSaga', function* (ctx, trip: string) {
  const done: string[] = []
  try {
    done.push(yield* ctx.callActivity(bookFlight, trip))
    done.push(yield* ctx.callActivity(bookHotel, trip))
    done.push(yield* ctx.callActivity(bookCar, trip))
    return done
  } catch (err) {
    for (const booking of [...done].reverse()) yield* ctx.callActivity(cancelBooking, booking)
    throw err
  }
})

/** Everything a node needs for these examples (the Account entity comes from the bank example). */
export const workflowRegistry = [
  sayHello,
  helloSequence,
  wordLength,
  fanOutFanIn,
  transfer,
  approval,
  checkHealth,
  monitor,
  bookFlight,
  bookHotel,
  bookCar,
  cancelBooking,
  saga,
  strictSaga,
]

/** Runs each example once and prints what happened; throws if an outcome is wrong. */
export async function runWorkflowExamples(client: Client, log: (line: string) => void): Promise<void> {
  const check = (ok: boolean, what: string) => {
    if (!ok) throw new Error(`workflow example failed: ${what}`)
  }
  const hello = await client.waitForCompletion<string[]>(await client.start(helloSequence, undefined))
  log(`hello-sequence: ${hello.output?.join(', ')}`)
  check(hello.output?.length === 5, 'hello-sequence returns five greetings')

  const words = Array.from({ length: 100 }, (_, i) => `word-${i}`)
  const sum = await client.waitForCompletion<number>(await client.start(fanOutFanIn, words))
  log(`fan-out/fan-in: ${words.length} parallel activities, total length ${sum.output}`)
  check(sum.output === words.reduce((a, w) => a + w.length, 0), 'fan-out sum')

  const [a, b] = [`wf-alice-${Date.now()}`, `wf-bob-${Date.now()}`]
  await client.entity(Account, a).call.open(100)
  await client.entity(Account, b).call.open(100)
  const moved = await client.waitForCompletion<boolean>(
    await client.start(transfer, { from: a, to: b, amount: 70 }),
  )
  const refused = await client.waitForCompletion<boolean>(
    await client.start(transfer, { from: a, to: b, amount: 70 }),
  )
  const balances = [
    await client.entity(Account, a).call.balance(),
    await client.entity(Account, b).call.balance(),
  ]
  log(
    `transfer under lock: 70 moved=${moved.output}, second 70 refused=${refused.output === false}, balances ${balances.join('/')}`,
  )
  check(
    moved.output === true && refused.output === false && balances[0] === 30 && balances[1] === 170,
    'transfers',
  )

  const approved = await client.start(approval, 60_000)
  await client.raiseEvent(approved, 'approve', { by: 'alice' })
  const late = await client.start(approval, 200)
  const [ok, timedOut] = await Promise.all([
    client.waitForCompletion(approved),
    client.waitForCompletion(late),
  ])
  log(`approval: ${String(ok.output)}; without an answer: ${String(timedOut.output)}`)
  check(ok.output === 'approved by alice' && String(timedOut.output).startsWith('escalated'), 'approval')

  const mon = await client.waitForCompletion<string[]>(
    await client.start(monitor, { round: 0, rounds: 5, seen: [] }),
  )
  log(
    `monitor: 5 rounds via continue-as-new: ${mon.output?.join(', ')}; last custom status ${JSON.stringify(mon.customStatus)}`,
  )
  check(mon.output?.length === 5, 'monitor rounds')

  const trip = await client.waitForCompletion<{ ok: boolean }>(await client.start(saga, 'Lisbon'))
  const island = await client.waitForCompletion<{ ok: boolean; undone: string[] }>(
    await client.start(saga, 'island of Sark'),
  )
  log(`saga: Lisbon ${JSON.stringify(trip.output)}`)
  log(`saga: Sark ${JSON.stringify(island.output)}`)
  check(trip.output?.ok === true && island.output?.ok === false && island.output.undone.length === 2, 'saga')
}

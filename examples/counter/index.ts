/**
 * The counter example: one durable entity driven through every client feature — signals, a call,
 * a scheduled signal, a state read, a watch stream and a listing. Run it through `npm run demo`.
 */
import { firstValueFrom, takeWhile, tap, timeout, toArray } from 'rxjs'
import { Entity, type Client, type EntityClass } from '../../runtime/index.ts'

/** A durable counter. Public methods are its operations. */
export class Counter extends Entity<number> {
  /** A new counter starts at zero. */
  initialState(): number {
    return 0
  }
  /** Adds `n` to the counter. */
  add(n: number): void {
    if (typeof n !== 'number' || !Number.isFinite(n))
      throw new TypeError(`add expects a number, got ${String(n)}`)
    this.state += n
  }
  /** The current value. */
  get(): number {
    return this.state
  }
  /** Deletes the counter: it disappears from listings and a later operation starts from zero. */
  reset(): void {
    this.deleteState()
  }
}

/** Entity types of the counter example, for a node's `registry`. */
export const counterRegistry: Array<EntityClass<any>> = [Counter]

/** What {@link runCounterExample} observed, for tests and summaries. */
export interface CounterExampleResult {
  /** Value of counter `c` at the end (7). */
  value: number
  /** Value of `c` just after the scheduled signal was sent (it must not have fired yet). */
  beforeSchedule: number
  /** Values pushed by `watchEntity` from subscription until the value 6 (`undefined` = no entity). */
  watched: Array<number | undefined>
  /** `listEntities` result for keys starting with `c`. */
  keys: string[]
}

/** Key of the counter the example works on. */
const KEY = 'c'
/** Other counters created so that the listing shows more than one key. */
const OTHERS = ['c-east', 'c-west']

/**
 * Runs the counter example against a hub whose node registers {@link Counter}, reporting each step
 * through `log`. It first resets the counters it uses, so it can run again on the same hub. Throws
 * when the scheduled signal does not apply within 5 s of its due time.
 *
 * @example
 * const result = await runCounterExample(client, console.log)
 */
export async function runCounterExample(
  client: Client,
  log: (line: string) => void,
): Promise<CounterExampleResult> {
  const c = client.entity(Counter, KEY)

  await Promise.all([KEY, ...OTHERS].map((key) => client.entity(Counter, key).call.reset()))
  const fresh = await client.readEntityState(Counter, KEY)
  log(`reset counters ${[KEY, ...OTHERS].join(', ')} (deleteState); '${KEY}' exists now: ${fresh.exists}`)

  // Watch committed states: subscribe first, wait for the current state, then change it.
  let subscribed!: () => void
  const ready = new Promise<void>((resolve) => (subscribed = resolve))
  const watching = firstValueFrom(
    client.watchEntity(Counter, KEY).pipe(
      tap({ next: () => subscribed(), error: () => subscribed() }),
      takeWhile((value) => value !== 6, true),
      toArray(),
      timeout(10_000),
    ),
  )
  watching.catch(() => {}) // awaited below; do not let an early failure count as unhandled
  await ready

  await c.signal.add(1)
  await c.signal.add(2)
  await c.signal.add(3)
  log(`signalled add(1), add(2), add(3) to '${KEY}' (each resolved once durably queued)`)
  const value = await c.call.get()
  log(`call get() on '${KEY}' -> ${value}`)
  const watched = await watching // completes (and unsubscribes) once it saw 6
  const pushed = watched.map((v) => (v === undefined ? '(none)' : String(v))).join(' -> ')
  log(`watchEntity pushed: ${pushed} (one value per commit; operations committed together push once)`)

  const due = Date.now() + 300
  await c.signalAt(due).add(1)
  const beforeSchedule = await c.call.get()
  log(`scheduled add(1) for 300 ms from now; value right after scheduling: ${beforeSchedule}`)
  await sleep(400)
  let state = await client.readEntityState(Counter, KEY)
  for (const deadline = Date.now() + 5000; state.state !== 7 && Date.now() < deadline;) {
    await sleep(25)
    state = await client.readEntityState(Counter, KEY)
  }
  if (state.state !== 7)
    throw new Error(`the scheduled add(1) did not apply: state is ${String(state.state)}`)
  log(
    `readEntityState ${Date.now() - due + 300} ms after scheduling: exists=${state.exists}, ` +
      `state=${state.state} (the scheduled add(1) fired)`,
  )

  await Promise.all(OTHERS.map((key, i) => client.entity(Counter, key).signal.add(10 * (i + 1))))
  const page = await client.listEntities({ type: Counter, keyPrefix: 'c', pageSize: 100 })
  log(`listEntities(Counter, prefix 'c'): ${page.keys.join(', ')}`)

  return { value: state.state, beforeSchedule, watched, keys: page.keys }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}

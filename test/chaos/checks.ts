/**
 * The end of a chaos run (test/chaos/chaos.ts): the reads and calls that probe what the hub
 * holds once the faults are over. Every one has a deadline or a bounded number of attempts, so a
 * hub that stopped serving makes the run fail with a report, never hang: liveness sweeps, the
 * drain of every instance, the lock check (a call to a locked entity waits until the unlock),
 * and the final reads of every tally and instance.
 */
import { InstanceNotFoundError, type Client } from '../../runtime/index.ts'
import type { Ledger, StartRecord } from './ledger.ts'
import { Tally, type TallyState } from './workload.ts'

/** Resolves after `ms`. */
function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)))
}

/** Runs `fn` over `items`, at most `limit` at once. */
export async function mapLimit<T, R>(
  items: readonly T[],
  limit: number,
  fn: (item: T) => Promise<R>,
): Promise<R[]> {
  const out: R[] = new Array<R>(items.length)
  let next = 0
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++
      out[i] = await fn(items[i]!)
    }
  }
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker))
  return out
}

/** Rejects with `what` after `ms` unless `promise` settles first. */
export function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer in ${ms} ms`)), ms)
  })
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer))
}

/** Reads every key in parallel; returns the partitions whose read failed. */
export async function sweep(client: Client, liveKeys: string[]): Promise<number[]> {
  const answers = await Promise.allSettled(liveKeys.map((key) => client.readEntityState(Tally, key)))
  return answers.flatMap((answer, p) => (answer.status === 'rejected' ? [p] : []))
}

/**
 * Waits for every instance that exists to end; returns each one's status (undefined: no
 * instance; left out when it cannot be read).
 */
export async function drainInstances(
  client: Client,
  starts: StartRecord[],
  deadline: number,
): Promise<Map<string, { status: string; output: unknown } | undefined>> {
  const result = new Map<string, { status: string; output: unknown } | undefined>()
  await mapLimit(starts, 64, async (start) => {
    try {
      const status = await client.waitForCompletion(start.instanceId, {
        timeoutMs: Math.max(1, deadline - Date.now()),
      })
      result.set(start.instanceId, { status: status.status, output: status.output })
    } catch (err) {
      if (err instanceof InstanceNotFoundError) {
        result.set(start.instanceId, undefined)
        return
      }
      // not ended in time: report what it is now (left out when it cannot be read)
      const status = await client.getStatus(start.instanceId).catch((e: unknown) => e as Error)
      if (!(status instanceof Error))
        result.set(
          start.instanceId,
          status === undefined ? undefined : { status: status.status, output: status.output },
        )
    }
  })
  return result
}

/** Calls every lock key (a call waits while a lock is held); returns those not answered in time. */
export async function heldLocks(
  client: Client,
  ledger: Ledger,
  deadline: number,
  lostReplies: { count: number },
): Promise<string[]> {
  const keys = ledger.tallyKeys().filter((key) => key.startsWith('lk-'))
  const answered = await Promise.all(
    keys.map((key) => callUntilAnswered(client, key, Math.max(deadline, Date.now() + 10_000), lostReplies)),
  )
  return keys.filter((_, i) => !answered[i])
}

/**
 * Calls `Tally(key).get()` until one call is answered (true) or `deadline` passes (false). A call
 * unanswered after 10 s is sent again (its reply may be lost, a documented limit), and counted.
 */
export async function callUntilAnswered(
  client: Client,
  key: string,
  deadline: number,
  lostReplies: { count: number },
): Promise<boolean> {
  const attempts: Array<Promise<unknown>> = []
  while (Date.now() < deadline) {
    attempts.push(client.entity(Tally, key).call.get())
    const wait = Math.min(10_000, Math.max(1, deadline - Date.now()))
    // any attempt answered so far counts; a rejected one is simply retried
    const answered = await within(Promise.any(attempts), wait, key).then(
      () => true,
      () => false,
    )
    if (answered) return true
    lostReplies.count++
    await sleep(250)
  }
  return false
}

/** Runs a read up to `attempts` times; rejects with the last error. */
async function retried<T>(read: () => Promise<T>, attempts: number): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await read()
    } catch (err) {
      if (attempt >= attempts) throw err
    }
  }
}

/** A tally's counts for a message; "none" when it does not exist. */
export function describeTally(state: TallyState | undefined): string {
  return state === undefined ? 'none' : `n ${state.n}, duplicates ${state.dn}`
}

/** Reads every tally (undefined: it does not exist); a key that cannot be read is left out. */
export async function readTallies(
  client: Client,
  keys: string[],
  attempts: number,
): Promise<Map<string, TallyState | undefined>> {
  const states = await mapLimit(keys, 64, (key) =>
    retried(() => client.readEntityState(Tally, key), attempts).catch(() => null),
  )
  const tallies = new Map<string, TallyState | undefined>()
  keys.forEach((key, i) => {
    const read = states[i]
    if (read !== null && read !== undefined) tallies.set(key, read.state)
  })
  return tallies
}

/** The status of every instance now (undefined: it does not exist; left out when unreadable). */
export async function readInstances(
  client: Client,
  starts: StartRecord[],
  attempts: number,
): Promise<Map<string, { status: string; output: unknown } | undefined>> {
  const result = new Map<string, { status: string; output: unknown } | undefined>()
  await mapLimit(starts, 64, async (start) => {
    const status = await retried(() => client.getStatus(start.instanceId), attempts).catch(
      (e: unknown) => e as Error,
    )
    if (!(status instanceof Error))
      result.set(
        start.instanceId,
        status === undefined ? undefined : { status: status.status, output: status.output },
      )
  })
  return result
}

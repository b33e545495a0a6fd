/**
 * Waits for completion held by one partition's instance host: a client's `waitForCompletion`
 * travels as a `wait` message and, while its instance runs, is held here. It is answered with the
 * outcome by the commit that records it, or with "not yet" once its time is up (the client then
 * asks again).
 */
import type { ReplyTo } from '../../actors/wire/index.ts'
import { encode } from '../nats/index.ts'
import type { HostPort } from '../partition/index.ts'

const SWEEP_MS = 250
/** Longest a wait is held, whatever the client asked. */
const MAX_HOLD_MS = 60_000
/** The answer to a wait that timed out (the client asks again). */
const NOT_YET = encode(0)

interface Waiter {
  r: ReplyTo
  deadline: number
}

/** The held waits of one partition, by instance id. */
export class CompletionWaits {
  readonly #waiters = new Map<string, Waiter[]>()
  #sweeper: NodeJS.Timeout | undefined
  #closed = false

  constructor(
    readonly port: Pick<HostPort, 'replyTo' | 'afterCommit'>,
    /** Largest outcome answered to several waits at once (each copy goes into the record). */
    readonly outcomeLimit = Infinity,
  ) {}

  /** Holds a wait for instance `id` for up to `ms`. */
  hold(id: string, to: ReplyTo, ms: number): void {
    let list = this.#waiters.get(id)
    if (list === undefined) this.#waiters.set(id, (list = []))
    list.push({ r: to, deadline: Date.now() + Math.max(0, Math.min(ms, MAX_HOLD_MS)) })
    this.#sweeper ??= setInterval(() => this.#sweep(), SWEEP_MS)
  }

  /** Answers every wait for `id` with the outcome (encoded only when someone waits). */
  release(id: string, outcome: () => Uint8Array): void {
    const waiters = this.#waiters.get(id)
    if (waiters === undefined) return
    // answered with the commit that records the outcome
    this.#waiters.delete(id)
    const bytes = outcome()
    // Every answer is a copy in the commit record: a large outcome for many waits is answered
    // "not yet" instead, and each client asks again in a message (and a record) of its own.
    const answer = waiters.length > 1 && bytes.length * waiters.length > this.outcomeLimit ? NOT_YET : bytes
    for (const w of waiters) this.port.replyTo(w.r, [w.r[1], 1, answer])
  }

  /** Stops the sweep (the partition closes); held waits time out at their clients. */
  close(): void {
    this.#closed = true
    clearInterval(this.#sweeper)
  }

  /** Answers the waits whose time is up with 'not yet'. */
  #sweep(): void {
    if (this.#closed) return
    const now = Date.now()
    let answered = false
    for (const [id, list] of this.#waiters) {
      const keep = list.filter((w) => w.deadline > now)
      if (keep.length === list.length) continue
      for (const w of list) if (w.deadline <= now) this.port.replyTo(w.r, [w.r[1], 1, NOT_YET])
      answered = true
      if (keep.length === 0) this.#waiters.delete(id)
      else this.#waiters.set(id, keep)
    }
    if (answered) this.port.afterCommit(() => {})
    if (this.#waiters.size === 0) {
      clearInterval(this.#sweeper)
      this.#sweeper = undefined
    }
  }
}

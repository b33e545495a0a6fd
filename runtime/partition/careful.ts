/**
 * Careful mode: how a partition finds, and dead-letters, a message that ends the process or
 * thread running it (see crash-count.ts for when a new owner starts careful, and
 * docs/ARCHITECTURE.md, "Poison messages").
 *
 * In careful mode the loop takes ONE unit of work per round — a due timer, the local queue's head,
 * or one mailbox message — and waits for that round's commit before the next (no pipelining).
 * Before running a unit it appends a probe record naming it (`x` on an otherwise empty record), so
 * if the unit ends the owner, the next owner reads "probe X, then a claim" at the end of the log.
 * A unit that ended two careful owners is condemned: the next owner, when the unit comes up, probes
 * it once more and commits a round that moves it to the dead-letter stream instead of running it,
 * and fails its call with {@link PoisonMessageError}. Normal mode does none of this.
 *
 * Careful mode ends once the work that the owners which ended could have taken is done: the
 * mailbox messages stored when this owner started, but at most {@link CAREFUL_MAILBOX_ROUNDS}
 * times `maxBatch` of them, every timer due then, and the local messages they caused (at most
 * `maxBatch` local units past the mailbox horizon, so local ping-pong between entities cannot keep
 * it careful forever). An owner that ended read no mailbox message stored after it ended. And an
 * owner that ended without committing anything ended before its first record was durable: in its
 * first round (one step: at most `maxBatch` mailbox messages) or in the step after it, taken while
 * that record was being appended. So the poison is within the bound; were it ever beyond (an
 * append slower than a whole step), the careful units committed meanwhile moved the position
 * forward, the next owner that ends makes the next one careful from there, and the poison is
 * reached. Without the bound, a partition that two owners left in a row for any reason (two
 * kills while its consumer was stalled) would work through its whole backlog at two appends per
 * message. With nothing
 * waiting — an idle partition restarted repeatedly by rolling deploys — careful mode ends at once,
 * having appended nothing. While careful, background snapshots wait: a checkpoint would hide the
 * probes and claims from the next owner's count.
 *
 * The partitions of one process (or partition thread) end together. So that a careful partition's
 * innocent unit is not blamed for another's poison, careful units of one process or thread run one
 * at a time, from the probe to the unit's commit ({@link CAREFUL_GATE}): when the process ends, one
 * probe at most is open. A partition in normal mode on the same process is not held back; its
 * poison can end a careful unit's run, but to dead-letter that unit it must do so twice, each time
 * within the unit's round trip.
 */
import type { ProbeUnit } from '../../actors/wire/index.ts'
import { Semaphore, type Logger } from '../util/index.ts'
import type { Commits } from './commit.ts'
import { unitKey, type CrashVerdict, type Suspect } from './crash-count.ts'
import type { MailboxCursor } from './cursor.ts'
import type { Intake } from './intake.ts'
import { poisonError } from './poison.ts'
import type { TimerSet } from './timers.ts'

/** Mailbox messages a careful owner runs one by one at most, in `maxBatch` (see the module comment). */
export const CAREFUL_MAILBOX_ROUNDS = 2

/** Careful units of this process or thread (module state is per thread) run one at a time. */
const CAREFUL_GATE = new Semaphore(1)

/** The parts of a partition careful mode drives. */
export interface CarefulCore {
  readonly p: number
  readonly logger: Logger
  readonly maxBatch: number
  /** The rounds, and the way a probe record goes into the log (`appendMark`). */
  readonly commits: Commits
  readonly intake: Intake
  readonly cursor: MailboxCursor
  readonly timers: TimerSet
  /** Whether the partition stopped. */
  isStopped(): boolean
  /** Careful mode ended: the loop goes on in normal mode. */
  ended(): void
}

/** One owner's careful mode (see the module comment). */
export class CarefulMode {
  /** The unit to dead-letter when it comes up, if two careful owners ended on it. */
  #condemned: Suspect | undefined
  /** Last mailbox sequence of the partition when careful mode began (unknown: infinite). */
  #mailboxHorizon = Infinity
  /** Timers due at or before this time were due when careful mode began. */
  #timersHorizon = 0
  /** Local units run after the mailbox horizon was passed. */
  #localPast = 0
  /** Mailbox units run (or dead-lettered) in careful mode. */
  #mailboxUnits = 0
  /** Units run (or dead-lettered) in careful mode. */
  units = 0
  /** Whether this partition holds {@link CAREFUL_GATE}. */
  #holding = false

  constructor(
    readonly core: CarefulCore,
    readonly verdict: CrashVerdict,
  ) {
    this.#condemned = verdict.condemned
  }

  /** Reads the horizon: what was waiting when this owner started. */
  begin(lastMailboxSeq: number): void {
    this.#mailboxHorizon = lastMailboxSeq
    this.#timersHorizon = Date.now()
  }

  /**
   * One careful cycle: commits what waits in the open round, or probes, runs and commits one unit;
   * returns at once while a record is in flight (its commit kicks the loop again).
   */
  async cycle(): Promise<void> {
    const { commits, intake } = this.core
    if (commits.inflight !== null) return
    if (!commits.open.isEmpty) {
      commits.seal() // work that joined the round meanwhile (afterCommit waiters, ...), on its own
      return
    }
    await intake.core.queries.answerReady()
    if (this.#done()) {
      this.#end()
      return
    }
    const unit = intake.nextUnit(Date.now())
    if (unit === undefined) return // the mailbox reader has not caught up yet: it kicks the loop
    await CAREFUL_GATE.acquire()
    this.#holding = true
    if (this.core.isStopped()) return this.release()
    const condemned = this.#condemned !== undefined && unitKey(unit) === unitKey(this.#condemned.unit)
    if (!(await this.#probe(unit))) return this.release()
    this.units++
    if (unit[0] === 'm') this.#mailboxUnits++
    if (unit[0] === 'l' && this.#pastMailbox()) this.#localPast++
    if (condemned) {
      const deaths = this.#condemned!.deaths
      this.#condemned = undefined
      await intake.condemnUnit(unit, (msg) => poisonError(msg, deaths))
    } else await intake.runUnit(unit)
    commits.open.touched = true // the unit's record: even if it wrote nothing, it says the unit ran through
    commits.open.waiters.push(() => this.release())
    commits.seal()
  }

  /** Lets the next careful unit of this process or thread run (its own is committed, or stopped). */
  release(): void {
    if (!this.#holding) return
    this.#holding = false
    CAREFUL_GATE.release()
  }

  /**
   * Whether the work waiting when careful mode began is done (see the module comment): normal
   * mode takes whatever came after.
   */
  #done(): boolean {
    const { cursor, maxBatch, timers } = this.core
    if (!this.#pastMailbox()) return false
    if (timers.due(this.#timersHorizon).length > 0) return false
    return cursor.local.length === 0 || this.#localPast >= maxBatch
  }

  /** Whether the mailbox part of the careful work is done (see the module comment). */
  #pastMailbox(): boolean {
    return (
      this.core.cursor.pos[0] > this.#mailboxHorizon ||
      this.#mailboxUnits >= CAREFUL_MAILBOX_ROUNDS * this.core.maxBatch
    )
  }

  #end(): void {
    const { logger, p } = this.core
    if (this.units > 0 || this.verdict.suspects.length > 0)
      logger.warn('careful mode ended; the partition runs normally', { p, units: this.units })
    this.core.ended()
  }

  /** Appends a probe record naming `unit`; false if the partition stopped (fenced or failed). */
  async #probe(unit: ProbeUnit): Promise<boolean> {
    const { commits } = this.core
    const n = commits.open.n
    try {
      // the unit's round takes the next number: whatever joins it while the probe is appended (an
      // activity's outcome, a waiter) is committed with the unit
      await commits.appendMark({ x: unit })
      return true
    } catch (err) {
      commits.stopOnAppendError(n, err)
      return false
    }
  }
}

/**
 * Crash counting: what the tail of a partition's commit log says about owners that ended without
 * committing (see docs/ARCHITECTURE.md, "Poison messages"). A message whose processing ends the
 * process or thread (a crash, `process.exit`, running out of memory, a hang ended by the watchdog)
 * is never committed, so every new owner would run it again and end the same way. Every recovery
 * appends a claim record, and an owner appends one more record, marked `b`, right before it first
 * takes work: so owners that took work and committed nothing show at the end of the replayed log
 * as claims each followed by that mark and nothing else. After {@link CAREFUL_AFTER_CLAIMS} of them
 * the next owner runs in careful mode (careful.ts): one unit of work per record, each announced
 * by a probe record naming it. A probe followed by a claim means its owner ended while running
 * that unit; a unit that ended {@link POISON_AFTER_DEATHS} careful owners is a poison message and
 * is dead-lettered. Owners that never took work — an idle partition restarted by rolling deploys,
 * an owner whose mailbox consumer stalled and which was then killed — do not count. An owner that
 * stops gracefully having committed nothing appends a record marked `left` (its claim does not
 * count); a node that restarts a partition whose previous run on it stopped with an internal
 * failure (a NATS error, say: the run was alive) names that run in its claim (`fo`), so that run
 * does not count either. One unrelated crash (a node killed at the wrong moment) never
 * dead-letters an innocent message: it takes two careful owners dying on the same unit.
 *
 * A record marked `keep` (an idle owner moving its last record up on a replicated hub) counts for
 * nothing. A pure function of the records (their `claim`, `b`, `x`, `left`, `keep` and `fo` fields),
 * so it is tested without NATS.
 */
import {
  WIRE_VERSION,
  type ActorMessage,
  type CommitRecord,
  type LogWriter,
  type MailboxPosition,
  type ProbeUnit,
} from '../../actors/wire/index.ts'

/** Owners in a row that took work and ended without committing, after which a new owner starts careful. */
export const CAREFUL_AFTER_CLAIMS = 2

/** Careful owners that must end on the same unit before it is dead-lettered. */
export const POISON_AFTER_DEATHS = 2

/** A unit that ended its owner: which one, and how many owners it ended while probed. */
export interface Suspect {
  unit: ProbeUnit
  deaths: number
}

/** What a new owner makes of the replayed log's tail. */
export interface CrashVerdict {
  /**
   * Owners in a row, since the last record that committed work, that took work and ended without
   * committing (the one whose claim came last included; ours, being appended now, not).
   */
  idleClaims: number
  /** Whether to start in careful mode. */
  careful: boolean
  /** The unit to dead-letter before anything else, if one ended enough careful owners. */
  condemned: Suspect | undefined
  /** Every unit whose probe was followed by a claim, and not committed since. */
  suspects: Suspect[]
}

/** A stable string for a unit (map key, log field). */
export function unitKey(unit: ProbeUnit): string {
  return unit.join(':')
}

/** The records crash counting reads. */
export type CountedRecord = Pick<CommitRecord, 'claim' | 'x' | 'left' | 'b' | 'keep' | 'o' | 'fo'>

/**
 * Reads the records a new owner replays (those the log fence admitted, in log order) and counts
 * claims and probes (see the module comment). Feed it with {@link add}; read {@link verdict}.
 */
export class CrashCount {
  /** Owners before the last claim's that took work and ended without committing, in a row. */
  #ended = 0
  /** The last claim's owner, while it committed nothing: its token, and whether it took work. */
  #open: { owner: number | undefined; began: boolean } | undefined
  /** The last probe, until the next record tells whether its unit was committed. */
  #probe: ProbeUnit | undefined
  /** Token of the last probe's writer. */
  #probeOwner: number | undefined
  readonly #suspects = new Map<string, Suspect>()

  /** Counts one replayed record. */
  add(rec: CountedRecord): void {
    // an idle owner's record that only moves its last record up: no work, no end
    if (rec.keep === 1) return
    if (rec.left === 1) {
      // the last claim's owner stopped gracefully: it did not end
      this.#open = undefined
      return
    }
    if (rec.b === 1) {
      // the last claim's owner took work: ending before a commit now counts
      if (this.#open !== undefined) this.#open.began = true
      return
    }
    if (rec.claim === 1) {
      // the previous run stopped with an internal failure, alive (its node says so): not an end
      const failed = rec.fo !== undefined
      if (this.#open?.began === true && !(failed && this.#open.owner === rec.fo)) this.#ended++
      if (failed && this.#probeOwner === rec.fo) this.#probe = undefined
      this.#open = { owner: rec.o, began: false }
      // its owner wrote the probe, then ended before committing the unit
      if (this.#probe !== undefined) {
        const key = unitKey(this.#probe)
        const suspect = this.#suspects.get(key)
        if (suspect === undefined) this.#suspects.set(key, { unit: this.#probe, deaths: 1 })
        else suspect.deaths++
      }
      this.#probe = undefined
      return
    }
    if (rec.x !== undefined) {
      if (this.#open !== undefined) this.#open.began = true
      this.#probe = rec.x
      this.#probeOwner = rec.o
      return
    }
    // a record that committed work: the owner made progress; a probed unit right before it was
    // committed (or dead-lettered), so it is no longer suspect. Other suspects stay: a unit that
    // ended an owner keeps its count until it runs through (timers that came due meanwhile may
    // run before it, and must not wipe its count).
    this.#ended = 0
    this.#open = undefined
    if (this.#probe !== undefined) this.#suspects.delete(unitKey(this.#probe))
    this.#probe = undefined
  }

  /**
   * What the records counted so far say (see {@link CrashVerdict}), for the owner about to claim:
   * a probe at the very end was followed by that claim, so its unit ended the last owner.
   */
  verdict(): CrashVerdict {
    const suspects = [...this.#suspects.values()].map((s) => ({ ...s }))
    if (this.#probe !== undefined) {
      const key = unitKey(this.#probe)
      const known = suspects.find((s) => unitKey(s.unit) === key)
      if (known !== undefined) known.deaths++
      else suspects.push({ unit: this.#probe, deaths: 1 })
    }
    let condemned: Suspect | undefined
    for (const s of suspects) {
      if (s.deaths >= POISON_AFTER_DEATHS && (condemned === undefined || s.deaths > condemned.deaths))
        condemned = s
    }
    // the last claim's owner ended too (we are taking over), if it had taken work
    const idleClaims = this.#ended + (this.#open?.began === true ? 1 : 0)
    return {
      idleClaims,
      careful: idleClaims >= CAREFUL_AFTER_CLAIMS || suspects.length > 0,
      condemned,
      suspects,
    }
  }
}

/** The verdict over a list of records (in log order). */
export function crashVerdict(records: Iterable<CountedRecord>): CrashVerdict {
  const count = new CrashCount()
  for (const rec of records) count.add(rec)
  return count.verdict()
}

/**
 * A record that carries no work, only a mark for crash counting: a probe (`x`, careful.ts) or a
 * leave (`left`, an owner stopping gracefully with nothing committed). Same position and local
 * queue as the state it follows, no writes: a node that knows neither field replays it as empty.
 */
export function markRecord(
  n: number,
  writer: LogWriter,
  pos: MailboxPosition,
  lq: ActorMessage[],
  mark: { x: ProbeUnit } | { left: 1 } | { b: 1 } | { keep: 1 },
): CommitRecord {
  return {
    v: WIRE_VERSION,
    n,
    e: writer.e,
    o: writer.o!,
    ...mark,
    pos,
    w: [],
    dc: [],
    dp: [],
    out: [],
    rep: [],
    lq,
  }
}

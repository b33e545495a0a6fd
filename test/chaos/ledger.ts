/**
 * The accounting of a chaos run: what the client sent and how each send ended, and the exact
 * check of what the hub holds afterwards. Pure: no I/O.
 *
 * Every send is numbered. A signal to `Tally(key)` carries the next id of that key (1, 2, 3, …);
 * an orchestration's effect carries an id of its effect key; a locked orchestration carries its
 * own number, added to both keys it locks. A send ends *acknowledged* (its promise resolved: the
 * signal is stored, the start committed) or *unknown* (its promise rejected, e.g. while a server
 * restarted: it may or may not have been stored). The check, per id:
 *
 * - acknowledged signal: its id is in its tally exactly once (missing = lost);
 * - unknown signal: its id is in its tally at most once (0 or 1 both fine);
 * - acknowledged start: the instance exists, is Completed with the expected output, and its id is
 *   in each of its tallies exactly once (no instance = lost start; not completed = unfinished;
 *   id missing = lost effect);
 * - unknown start: the instance exists, and then exactly as acknowledged, or does not exist,
 *   and then its id is in none of its tallies (present = phantom);
 * - every tally: no id applied twice (duplicated), no id that nothing sent or no existing
 *   instance explains (phantom);
 * - no lock held once everything completed.
 */
import { partitionOf } from '../../actors/ids.ts'
import { idsOf, type TallyState } from './workload.ts'

/** How a send ended. */
export type Outcome = 'pending' | 'acked' | 'unknown'

/** One orchestration start. */
export interface StartRecord {
  readonly instanceId: string
  readonly kind: 'effect' | 'locked'
  /** The tallies its id goes to. */
  readonly keys: readonly string[]
  readonly id: number
  /** Expected output once Completed. */
  readonly output: number
  outcome: Outcome
}

/** What the hub holds at the end, as read by the runner. */
export interface Observed {
  /** Every tally the ledger names; `undefined` when it does not exist; left out when unreadable. */
  readonly tallies: ReadonlyMap<string, TallyState | undefined>
  /** Every instance the ledger started: undefined when it does not exist; left out when unreadable. */
  readonly instances: ReadonlyMap<string, { status: string; output: unknown } | undefined>
  /** Tallies whose lock was still held (a call to them was not answered). */
  readonly locksHeld: readonly string[]
}

/** The result of {@link Ledger.check}. */
export interface Verdict {
  signalsAcked: number
  signalsUnknown: number
  /** Unknown signals that were applied (once). */
  signalsUnknownApplied: number
  startsAcked: number
  startsUnknown: number
  /** Unknown starts whose instance exists. */
  startsUnknownApplied: number
  /** Acknowledged work missing: signals, starts, effects. One line each. */
  lost: string[]
  /** How many lost, per partition of the lost send's target (the tally, or the instance). */
  lostByPartition: Record<number, number>
  /** Applications beyond the first, one line per tally (with the count). */
  duplicated: string[]
  /** How many applications beyond the first, in all. */
  duplicatedCount: number
  /** Ids applied that no send or no existing instance explains. */
  phantom: string[]
  /** Existing instances not Completed with the expected output. */
  unfinished: string[]
  locksHeld: string[]
}

/** What the client sent during a run, and how each send ended. */
export class Ledger {
  /** Per signal key: outcome of each id (index id - 1). */
  readonly signals = new Map<string, Outcome[]>()
  readonly starts = new Map<string, StartRecord>()
  /** Next effect id per effect key. */
  readonly #effectIds = new Map<string, number>()
  #locked = 0

  /** @param partitions the hub's partition count, to name the partition of each finding */
  constructor(readonly partitions: number) {}

  /** Records a loss on `key`'s partition. */
  #lose(verdict: Verdict, key: string, line: string): void {
    const p = partitionOf(key, this.partitions)
    verdict.lostByPartition[p] = (verdict.lostByPartition[p] ?? 0) + 1
    verdict.lost.push(line)
  }

  /** `key (p<n>)`: a tally or instance id with its partition. */
  #where(key: string): string {
    return `${key} (p${partitionOf(key, this.partitions)})`
  }

  /** Records a signal to `key` about to be sent; returns its id. */
  signal(key: string): number {
    let outcomes = this.signals.get(key)
    if (outcomes === undefined) this.signals.set(key, (outcomes = []))
    outcomes.push('pending')
    return outcomes.length
  }

  /** Records how signal `id` to `key` ended. */
  settleSignal(key: string, id: number, outcome: 'acked' | 'unknown'): void {
    const outcomes = this.signals.get(key)
    if (outcomes === undefined || outcomes[id - 1] === undefined) throw new Error(`no signal ${key}#${id}`)
    outcomes[id - 1] = outcome
  }

  /** Records an effect start on `key` about to be sent. */
  effectStart(instanceId: string, key: string): StartRecord {
    const id = (this.#effectIds.get(key) ?? 0) + 1
    this.#effectIds.set(key, id)
    return this.#add({ instanceId, kind: 'effect', keys: [key], id, output: id + 1, outcome: 'pending' })
  }

  /** Records a locked start on two keys about to be sent. */
  lockedStart(instanceId: string, keys: [string, string]): StartRecord {
    const id = ++this.#locked
    return this.#add({ instanceId, kind: 'locked', keys, id, output: id, outcome: 'pending' })
  }

  #add(record: StartRecord): StartRecord {
    if (this.starts.has(record.instanceId)) throw new Error(`instance ${record.instanceId} started twice`)
    this.starts.set(record.instanceId, record)
    return record
  }

  /** Sends whose promise has not settled yet. */
  pending(): number {
    let n = 0
    for (const outcomes of this.signals.values()) for (const o of outcomes) if (o === 'pending') n++
    for (const start of this.starts.values()) if (start.outcome === 'pending') n++
    return n
  }

  /** Every tally key the ledger names (signal, effect and lock keys). */
  tallyKeys(): string[] {
    const keys = new Set(this.signals.keys())
    for (const start of this.starts.values()) for (const key of start.keys) keys.add(key)
    return [...keys].sort()
  }

  /** Checks the observed end state exactly; see the module header. Pending sends count as unknown. */
  check(observed: Observed): Verdict {
    const verdict: Verdict = {
      signalsAcked: 0,
      signalsUnknown: 0,
      signalsUnknownApplied: 0,
      startsAcked: 0,
      startsUnknown: 0,
      startsUnknownApplied: 0,
      lost: [],
      lostByPartition: {},
      duplicated: [],
      duplicatedCount: 0,
      phantom: [],
      unfinished: [],
      locksHeld: [...observed.locksHeld],
    }
    /** Per tally key: the ids some send or existing instance explains. */
    const explained = new Map<string, Set<number>>()
    const explain = (key: string, id: number): void => {
      let ids = explained.get(key)
      if (ids === undefined) explained.set(key, (ids = new Set()))
      ids.add(id)
    }
    /** Per tally key: ids of starts whose instance does not exist, with the instance id. */
    const orphans = new Map<string, Map<number, string>>()
    const orphan = (key: string, id: number, instanceId: string): void => {
      let ids = orphans.get(key)
      if (ids === undefined) orphans.set(key, (ids = new Map()))
      ids.set(id, instanceId)
    }
    const applied = new Map<string, Set<number>>()
    const appliedIds = (key: string): Set<number> => {
      let ids = applied.get(key)
      if (ids === undefined) applied.set(key, (ids = idsOf(observed.tallies.get(key)?.r ?? [])))
      return ids
    }

    for (const [key, outcomes] of this.signals) {
      const readable = observed.tallies.has(key) // an unreadable tally is reported by the runner
      const ids = appliedIds(key)
      outcomes.forEach((outcome, i) => {
        const id = i + 1
        explain(key, id)
        if (outcome === 'acked') {
          verdict.signalsAcked++
          if (readable && !ids.has(id)) this.#lose(verdict, key, `signal #${id} to ${this.#where(key)}`)
        } else {
          verdict.signalsUnknown++
          if (ids.has(id)) verdict.signalsUnknownApplied++
        }
      })
    }

    for (const start of this.starts.values()) {
      const acked = start.outcome === 'acked'
      if (acked) verdict.startsAcked++
      else verdict.startsUnknown++
      if (!observed.instances.has(start.instanceId)) {
        // unreadable, so not judged (the runner reports it); its ids are not phantoms either
        for (const key of start.keys) explain(key, start.id)
        continue
      }
      const instance = observed.instances.get(start.instanceId)
      if (instance === undefined) {
        if (acked) {
          this.#lose(
            verdict,
            start.instanceId,
            `start ${this.#where(start.instanceId)}: instance does not exist`,
          )
        }
        // not explained: an id applied without an instance is phantom
        for (const key of start.keys) orphan(key, start.id, start.instanceId)
        continue
      }
      if (!acked) verdict.startsUnknownApplied++
      for (const key of start.keys) {
        explain(key, start.id)
        if (observed.tallies.has(key) && !appliedIds(key).has(start.id)) {
          this.#lose(
            verdict,
            key,
            `effect #${start.id} of ${this.#where(start.instanceId)} on ${this.#where(key)}, instance ${instance.status}`,
          )
        }
      }
      if (instance.status !== 'Completed') {
        verdict.unfinished.push(`${this.#where(start.instanceId)} is ${instance.status}`)
      } else if (instance.output !== start.output) {
        verdict.unfinished.push(
          `${this.#where(start.instanceId)} completed with ${JSON.stringify(instance.output)}, expected ${start.output}`,
        )
      }
    }

    for (const key of this.tallyKeys()) {
      const state = observed.tallies.get(key)
      if (state === undefined) continue
      if (state.dn > 0) {
        verdict.duplicatedCount += state.dn
        verdict.duplicated.push(
          `${this.#where(key)}: ${state.dn} applied again (ids ${state.d.slice(0, 20).join(', ')})`,
        )
      }
      const ids = appliedIds(key)
      if (ids.size !== state.n)
        verdict.phantom.push(`${this.#where(key)}: n = ${state.n} but ${ids.size} ids in its set`)
      const known = explained.get(key) ?? new Set<number>()
      const unexplained = [...ids].filter((id) => !known.has(id))
      const ofMissing = unexplained.filter((id) => orphans.get(key)?.has(id) === true)
      const neverSent = unexplained.filter((id) => orphans.get(key)?.has(id) !== true)
      if (ofMissing.length > 0) {
        const which = ofMissing.slice(0, 20).map((id) => `${id} by ${orphans.get(key)?.get(id)}`)
        verdict.phantom.push(`${this.#where(key)}: ids ${which.join(', ')} applied, instance does not exist`)
      }
      if (neverSent.length > 0) {
        verdict.phantom.push(
          `${this.#where(key)}: ids ${neverSent.slice(0, 20).join(', ')} applied, never sent`,
        )
      }
    }
    return verdict
  }
}

/** True when a verdict shows nothing lost, duplicated, phantom, unfinished or locked. */
export function isExact(verdict: Verdict): boolean {
  return (
    verdict.lost.length === 0 &&
    verdict.duplicatedCount === 0 &&
    verdict.phantom.length === 0 &&
    verdict.unfinished.length === 0 &&
    verdict.locksHeld.length === 0
  )
}

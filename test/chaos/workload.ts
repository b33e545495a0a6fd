/**
 * The registry of the chaos test (test/chaos/chaos.ts), loaded by its node processes
 * (test/chaos/node.ts) and by the test's client.
 *
 * `Tally` is a counter that remembers *which* numbered adds it applied: `add(id)` adds id to a
 * set kept as sorted ranges (compact, since each key receives ids 1, 2, 3, … in order), and an id
 * that is already in the set is recorded as a duplicate instead. A plain counter can hide a loss
 * and a duplicate on the same key (they cancel out); the set cannot, and it names the lost or
 * duplicated message. It is the chaos test's counter.
 *
 * Orchestrations: `chaosEffect` runs an activity and then calls `Tally(key).add(id)`;
 * `chaosLocked` takes `ctx.lock` on two tallies, adds its id to both inside the critical section
 * and releases the lock; `chaosCarried` does the same with its first call made right after
 * `ctx.lock`, so that the call travels inside the lock request (`LockMessage.ops`);
 * `chaosReleasing` releases in the step of its last call, which carries the release.
 */
import { activity, orchestration } from '../../actors/orchestration/index.ts'
import { Entity } from '../../entities/index.ts'

/** State of a {@link Tally}. */
export interface TallyState {
  /** How many distinct ids were applied. */
  n: number
  /** The applied ids, as sorted, disjoint, non-adjacent inclusive ranges `[from, to]`. */
  r: Array<[number, number]>
  /** Ids applied again while already in the set (the first 1,000). */
  d: number[]
  /** How many times an id was applied again (all of them). */
  dn: number
}

/** Most duplicate ids a tally lists (it counts them all in `dn`). */
const MAX_LISTED_DUPLICATES = 1_000

/** A counter that records which numbered adds it applied; see the module header. */
export class Tally extends Entity<TallyState> {
  initialState(): TallyState {
    return { n: 0, r: [], d: [], dn: 0 }
  }

  /** Applies add number `id` (a positive integer): into the set, or counted as a duplicate. */
  add(id: number) {
    if (!Number.isInteger(id) || id < 1) throw new TypeError(`add expects a positive integer id, got ${id}`)
    if (!insertId(this.state.r, id)) {
      this.state.dn++
      if (this.state.d.length < MAX_LISTED_DUPLICATES) this.state.d.push(id)
      return
    }
    this.state.n++
  }

  get(): TallyState {
    return this.state
  }
}

/**
 * Inserts `id` into sorted, disjoint, non-adjacent ranges, merging neighbours. Returns false
 * (and changes nothing) when `id` is already in a range.
 */
export function insertId(ranges: Array<[number, number]>, id: number): boolean {
  let i = ranges.length - 1
  while (i >= 0 && ranges[i]![0] > id) i--
  const left = i >= 0 ? ranges[i]! : undefined
  if (left !== undefined && id <= left[1]) return false
  const right = ranges[i + 1]
  const joinsLeft = left !== undefined && left[1] === id - 1
  const joinsRight = right !== undefined && right[0] === id + 1
  if (joinsLeft && joinsRight) {
    left[1] = right[1]
    ranges.splice(i + 1, 1)
  } else if (joinsLeft) left[1] = id
  else if (joinsRight) right[0] = id
  else ranges.splice(i + 1, 0, [id, id])
  return true
}

/** Expands ranges into the set of ids they hold. */
export function idsOf(ranges: ReadonlyArray<readonly [number, number]>): Set<number> {
  const ids = new Set<number>()
  for (const [from, to] of ranges) for (let id = from; id <= to; id++) ids.add(id)
  return ids
}

/** A short asynchronous step, so activities are in flight when a node dies. */
export const chaosStep = activity('chaosStep', async (id: number) => {
  await new Promise((resolve) => setTimeout(resolve, 5))
  return id + 1
})

/** Input of {@link chaosEffect}. */
export interface EffectInput {
  key: string
  id: number
}

/** Runs {@link chaosStep}, then adds `id` to `Tally(key)`; returns the step's result. */
export const chaosEffect = orchestration('chaosEffect', function* (ctx, input: EffectInput) {
  const step = yield* ctx.callActivity(chaosStep, input.id)
  yield* ctx.callEntity(Tally, input.key).add(input.id)
  return step
})

/** Input of {@link chaosLocked}. */
export interface LockedInput {
  keys: [string, string]
  id: number
}

/** Locks two tallies, adds `id` to each inside the critical section, releases; returns `id`. */
export const chaosLocked = orchestration('chaosLocked', function* (ctx, input: LockedInput) {
  const lock = yield* ctx.lock(ctx.entityRef(Tally, input.keys[0]), ctx.entityRef(Tally, input.keys[1]))
  try {
    for (const key of input.keys) yield* ctx.callEntity(Tally, key).add(input.id)
  } finally {
    lock.release()
  }
  return input.id
})

/** {@link chaosLocked} with the first call carried by the lock request, the second after the grant. */
export const chaosCarried = orchestration('chaosCarried', function* (ctx, input: LockedInput) {
  const locking = ctx.lock(ctx.entityRef(Tally, input.keys[0]), ctx.entityRef(Tally, input.keys[1]))
  const first = ctx.callEntity(Tally, input.keys[0]).add(input.id)
  const lock = yield* locking
  try {
    yield* first
    yield* ctx.callEntity(Tally, input.keys[1]).add(input.id)
  } finally {
    lock.release()
  }
  return input.id
})

/**
 * {@link chaosLocked} releasing in the step that makes its last call: the call carries the release
 * (`EntityOp.rl`), and its entity unlocks right after it ran.
 */
export const chaosReleasing = orchestration('chaosReleasing', function* (ctx, input: LockedInput) {
  const lock = yield* ctx.lock(ctx.entityRef(Tally, input.keys[0]), ctx.entityRef(Tally, input.keys[1]))
  try {
    yield* ctx.callEntity(Tally, input.keys[0]).add(input.id)
    const last = ctx.callEntity(Tally, input.keys[1]).add(input.id)
    lock.release()
    yield* last
  } finally {
    lock.release()
  }
  return input.id
})

/** Everything a chaos node runs. */
export const chaosRegistry = [Tally, chaosStep, chaosEffect, chaosLocked, chaosCarried, chaosReleasing]

/**
 * The seeded part of a chaos run: a small PRNG (mulberry32) and the fault plan it draws. The plan
 * is drawn whole before the run starts, from the seed alone, so a seed always means the same
 * faults at the same offsets on the same node slots (the timing of the engine under them varies).
 * Pure: no I/O, no clocks.
 */
import { mulberry32 as bankPrng } from '../../examples/bank/index.ts'

/** A seeded pseudo-random generator of floats in [0, 1) (mulberry32). */
export type Rng = () => number

/** mulberry32, the bank example's seeded PRNG: a 32-bit state, good enough spread for test schedules. */
export const mulberry32: (seed: number) => Rng = bankPrng

/** A float in [min, max). */
export function uniform(rng: Rng, min: number, max: number): number {
  return min + (max - min) * rng()
}

/** An integer in [0, n). */
export function below(rng: Rng, n: number): number {
  return Math.floor(rng() * n)
}

/** One fault action at `at` ms after the faults began. Node slots are 0..2; members 0..2 on R3. */
export type FaultEvent =
  | { at: number; kind: 'kill'; slot: number }
  | { at: number; kind: 'pause'; slot: number }
  | { at: number; kind: 'resume'; slot: number }
  | { at: number; kind: 'serverKill'; member: number }
  | { at: number; kind: 'serverStart'; member: number }
  | { at: number; kind: 'stepdown'; stream: StreamKind }

/** The hub's streams whose leader a `stepdown` fault moves (on R3). */
export type StreamKind = 'mailbox' | 'log' | 'state' | 'meta'
const STREAM_KINDS: readonly StreamKind[] = ['mailbox', 'log', 'state', 'meta']

/** What {@link planFaults} needs. */
export interface PlanOptions {
  /** How long faults go on, in ms. */
  durationMs: number
  /** Node slots (default 3). */
  slots?: number
  /** Servers: 1, or 3 for a cluster (one member is down at a time). */
  servers: number
  /** On a cluster, also ask stream leaders to step down (default false). */
  stepdowns?: boolean
}

/**
 * Draws the fault plan: about one SIGSTOP per 8 s (at least one), each 2–5 s long (past the 1 s
 * lease) on a slot not already paused then; a node SIGKILLed (and replaced at once) every 2–4 s,
 * never one that is paused (so every pause ends in a SIGCONT of the same process: a stale owner
 * that wakes up); about one server SIGKILL per 40 s (at least one), down 0.3–2 s, never two at
 * once; with `stepdowns` on a cluster, a stream leader stepping down every 3–6 s. Every fault is
 * reverted before `durationMs` ends. Events are sorted by time.
 */
export function planFaults(rng: Rng, opts: PlanOptions): FaultEvent[] {
  const slots = opts.slots ?? 3
  const d = opts.durationMs
  const events: FaultEvent[] = []
  const paused: Array<{ slot: number; from: number; to: number }> = []
  const pausedAt = (at: number): Set<number> =>
    new Set(paused.filter((p) => p.from <= at + 1_000 && at - 1_000 <= p.to).map((p) => p.slot))
  const pauses = Math.max(1, Math.round(d / 8_000))
  for (let i = 0; i < pauses; i++) {
    const length = uniform(rng, 2_000, 5_000)
    const at = uniform(rng, 1_000, Math.max(1_000, d - length - 500))
    const busy = new Set(paused.filter((p) => p.from <= at + length && at <= p.to).map((p) => p.slot))
    const free = Array.from({ length: slots }, (_, slot) => slot).filter((slot) => !busy.has(slot))
    const slot = free[below(rng, free.length)]
    if (slot === undefined) continue
    paused.push({ slot, from: at, to: at + length })
    events.push({ at, kind: 'pause', slot }, { at: at + length, kind: 'resume', slot })
  }
  for (let at = uniform(rng, 1_500, 4_000); at < d - 1_000; at += uniform(rng, 2_000, 4_000)) {
    // a second either side of a pause counts as paused, so the kill never races the SIGSTOP/SIGCONT
    const busy = pausedAt(at)
    const free = Array.from({ length: slots }, (_, slot) => slot).filter((slot) => !busy.has(slot))
    const slot = free[below(rng, free.length)]
    if (slot !== undefined) events.push({ at, kind: 'kill', slot })
  }
  const restarts = Math.max(1, Math.round(d / 40_000))
  const window = (d * 0.6) / restarts
  for (let i = 0; i < restarts; i++) {
    // one restart per window, so they never overlap (a window is at least 12 s on a 20 s run)
    const at = d * 0.2 + window * i + uniform(rng, 0, Math.max(0, window - 2_500))
    const member = below(rng, opts.servers)
    events.push(
      { at, kind: 'serverKill', member },
      { at: at + uniform(rng, 300, 2_000), kind: 'serverStart', member },
    )
  }
  // on a cluster, a stream leader asked to step down every 3–6 s: a leader elected moments before
  // may answer before it applied what was committed (nats-server before 2.11). Drawn after
  // everything else, so the plans of earlier seeds keep their other faults.
  if (opts.servers > 1 && opts.stepdowns === true) {
    for (let at = uniform(rng, 2_000, 5_000); at < d - 1_000; at += uniform(rng, 3_000, 6_000))
      events.push({ at, kind: 'stepdown', stream: STREAM_KINDS[below(rng, STREAM_KINDS.length)]! })
  }
  // CHAOS_ONLY=kill,pause,server,stepdown keeps only those kinds of fault (to narrow a failure down)
  const only = process.env['CHAOS_ONLY']?.split(',')
  const kept =
    only === undefined
      ? events
      : events.filter((e) => only.some((k) => e.kind.startsWith(k) || (k === 'pause' && e.kind === 'resume')))
  return kept.sort((a, b) => a.at - b.at)
}

/** Counts of each fault kind in a plan. */
export function countFaults(plan: readonly FaultEvent[]): {
  kills: number
  pauses: number
  serverRestarts: number
  stepdowns: number
} {
  return {
    kills: plan.filter((e) => e.kind === 'kill').length,
    pauses: plan.filter((e) => e.kind === 'pause').length,
    serverRestarts: plan.filter((e) => e.kind === 'serverKill').length,
    stepdowns: plan.filter((e) => e.kind === 'stepdown').length,
  }
}

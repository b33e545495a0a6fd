/**
 * The short chaos test of issue 9 (the long one is `npm run soak`, test/chaos/soak.ts): one seeded
 * run on a single nats-server and one on a 3-server cluster with `replicas: 3`, each with about
 * 25 s of node SIGKILLs, a SIGSTOP past the lease and a server SIGKILL and restart, then exact
 * checks of every send (test/chaos/ledger.ts) and a liveness check. The seed comes from
 * `CHAOS_SEED` when set, else from the clock; it is printed, and a failure prints the command that
 * replays it. Also unit tests of the accounting itself, so that a pass means what it says.
 * The file takes about 2.5 minutes; a run whose partitions never come back ends within about 4 minutes.
 */
import { describe, expect, it } from 'vitest'
import { keyPerPartition, runChaos } from '../chaos/chaos.ts'
import { formatFailure, formatSummary, type ChaosSummary } from '../chaos/report.ts'
import { Ledger } from '../chaos/ledger.ts'
import { mulberry32, planFaults } from '../chaos/plan.ts'
import { insertId, type TallyState } from '../chaos/workload.ts'
import { partitionOf } from '../../actors/ids.ts'

const envSeed = process.env['CHAOS_SEED']
const seed = envSeed !== undefined && envSeed !== '' ? Number(envSeed) : Date.now() % 1_000_000
if (!Number.isInteger(seed) || seed < 0)
  throw new Error(`CHAOS_SEED must be a non-negative integer (got ${envSeed})`)

/** A tally state holding `ids`, as the entity builds it. */
function tally(ids: number[], duplicates: number[] = []): TallyState {
  const state: TallyState = { n: 0, r: [], d: [], dn: 0 }
  for (const id of ids) if (insertId(state.r, id)) state.n++
  state.d.push(...duplicates)
  state.dn = duplicates.length
  return state
}

describe('chaos accounting', () => {
  it('keeps applied ids as merged ranges and refuses an id twice', () => {
    const ranges: Array<[number, number]> = []
    for (const id of [1, 2, 3, 7, 5, 4, 9]) expect(insertId(ranges, id)).toBe(true)
    expect(ranges).toEqual([
      [1, 5],
      [7, 7],
      [9, 9],
    ])
    expect(insertId(ranges, 3)).toBe(false)
    expect(insertId(ranges, 8)).toBe(true)
    expect(ranges).toEqual([
      [1, 5],
      [7, 9],
    ])
  })

  it('counts acknowledged sends exactly and unknown ones as 0 or 1', () => {
    const ledger = new Ledger(16)
    for (let i = 0; i < 4; i++)
      ledger.settleSignal('s-0', ledger.signal('s-0'), i === 2 ? 'unknown' : 'acked')
    const e1 = ledger.effectStart('e-1', 'o-0')
    e1.outcome = 'acked'
    const e2 = ledger.effectStart('e-2', 'o-0')
    e2.outcome = 'unknown'
    const l1 = ledger.lockedStart('l-1', ['lk-0', 'lk-1'])
    l1.outcome = 'acked'
    const done = { status: 'Completed' }
    const exact = ledger.check({
      tallies: new Map([
        ['s-0', tally([1, 2, 4])], // unknown #3 not applied: fine
        ['o-0', tally([1])], // e-2 does not exist, its id absent: fine
        ['lk-0', tally([1])],
        ['lk-1', tally([1])],
      ]),
      instances: new Map([
        ['e-1', { ...done, output: 2 }],
        ['e-2', undefined],
        ['l-1', { ...done, output: 1 }],
      ]),
      locksHeld: [],
    })
    expect(exact).toMatchObject({ lost: [], duplicated: [], phantom: [], unfinished: [], duplicatedCount: 0 })
    expect(exact).toMatchObject({ signalsAcked: 3, signalsUnknown: 1, signalsUnknownApplied: 0 })
    expect(exact).toMatchObject({ startsAcked: 2, startsUnknown: 1, startsUnknownApplied: 0 })

    const broken = ledger.check({
      tallies: new Map([
        ['s-0', tally([1, 3, 4, 5], [4])], // #2 lost, #4 twice, #5 never sent
        ['o-0', tally([2])], // e-1's effect lost; e-2 applied without an instance
        ['lk-0', tally([1])],
        ['lk-1', tally([])], // l-1's effect on lk-1 lost
      ]),
      instances: new Map([
        ['e-1', { status: 'Running', output: undefined }],
        ['e-2', undefined],
        ['l-1', undefined], // acknowledged start gone
      ]),
      locksHeld: ['lk-0'],
    })
    expect(broken.lost).toEqual([
      'signal #2 to s-0 (p7)',
      'effect #1 of e-1 (p2) on o-0 (p11), instance Running',
      'start l-1 (p9): instance does not exist',
    ])
    expect(broken.lostByPartition).toEqual({ 7: 1, 11: 1, 9: 1 })
    expect(broken.duplicatedCount).toBe(1)
    expect(broken.phantom).toEqual([
      'lk-0 (p5): ids 1 by l-1 applied, instance does not exist',
      'o-0 (p11): ids 2 by e-2 applied, instance does not exist',
      's-0 (p7): ids 5 applied, never sent',
    ])
    expect(broken.unfinished).toEqual(['e-1 (p2) is Running'])

    // an unreadable tally or instance is not judged (the runner reports it) and explains its ids
    const unreadable = ledger.check({
      tallies: new Map([
        ['o-0', tally([1, 2])],
        ['lk-0', tally([1])],
        ['lk-1', tally([1])],
      ]),
      instances: new Map([['e-1', { ...done, output: 2 }]]),
      locksHeld: [],
    })
    expect(unreadable).toMatchObject({
      lost: [],
      phantom: [],
      unfinished: [],
      signalsAcked: 3,
      startsAcked: 2,
    })
    expect(broken.locksHeld).toEqual(['lk-0'])
  })

  it('draws the same fault plan from the same seed, with every kind of fault', () => {
    for (let seed = 0; seed < 100; seed++) {
      const plan = planFaults(mulberry32(seed), { durationMs: 20_000, servers: 3, stepdowns: true })
      expect(planFaults(mulberry32(seed), { durationMs: 20_000, servers: 3, stepdowns: true })).toEqual(plan)
      // stepdowns come last: the other faults are those of the plan without them
      expect(plan.filter((e) => e.kind !== 'stepdown')).toEqual(
        planFaults(mulberry32(seed), { durationMs: 20_000, servers: 3 }),
      )
      for (const kind of ['kill', 'pause', 'resume', 'serverKill', 'serverStart', 'stepdown'])
        expect(
          plan.some((e) => e.kind === kind),
          `seed ${seed}: ${kind}`,
        ).toBe(true)
      expect(Math.max(...plan.map((e) => e.at))).toBeLessThan(20_000)
      // stream leaders step down on a cluster only
      const single = planFaults(mulberry32(seed), { durationMs: 20_000, servers: 1, stepdowns: true })
      expect(single.filter((e) => e.kind === 'stepdown')).toEqual([])
      // a paused node is never killed: every pause ends with a SIGCONT of the same process
      for (const pause of plan.filter((e) => e.kind === 'pause')) {
        const resume = plan.find((e) => e.kind === 'resume' && e.slot === pause.slot && e.at > pause.at)!
        const killed = plan.filter(
          (e) => e.kind === 'kill' && e.slot === pause.slot && e.at >= pause.at && e.at <= resume.at,
        )
        expect(killed, `seed ${seed}: kills of a paused slot`).toEqual([])
      }
    }
  })

  it('finds one liveness key per partition', () => {
    const keys = keyPerPartition(16)
    expect(keys.map((key) => partitionOf(key, 16))).toEqual(Array.from({ length: 16 }, (_, p) => p))
  })
})

/** Prints the summary (and the full report when the run failed), then asserts it is exact. */
function expectExact(summary: ChaosSummary): void {
  console.log(formatSummary(summary))
  if (!summary.ok) console.log(formatFailure(summary))
  expect(summary.kills, 'node kills').toBeGreaterThan(0)
  expect(summary.pauses, 'pauses').toBeGreaterThan(0)
  expect(summary.serverRestarts, 'server restarts').toBeGreaterThan(0)
  expect(summary.verdict.signalsAcked, 'acknowledged signals').toBeGreaterThan(1_000)
  expect(summary.verdict.startsAcked, 'acknowledged starts').toBeGreaterThan(20)
  expect(
    summary.ok,
    `${formatSummary(summary)}\nreplay: ${summary.replay}\n${summary.failures.join('\n')}`,
  ).toBe(true)
}

describe(`chaos (seed ${seed}; replay with CHAOS_SEED=${seed})`, () => {
  console.log(`chaos seed ${seed} (replay: CHAOS_SEED=${seed} npx vitest run test/chaos.test.ts)`)
  const short = { durationMs: 25_000, livenessTimeoutMs: 30_000, drainTimeoutMs: 40_000 }

  it('single server: every acknowledged send applied once, all partitions served again', async () => {
    expectExact(await runChaos({ seed, mode: 'single', ...short }))
  }, 300_000)

  // On a 3-server cluster with replicas: 3 (docs/ARCHITECTURE.md, "Known limits on a NATS
  // cluster", says what it takes on nats-server 2.9.10). CHAOS_R3=0 skips it; many seeds:
  // `npm run soak -- --mode r3`.
  it.skipIf(process.env['CHAOS_R3'] === '0')(
    'R3 cluster: every acknowledged send applied once, all partitions served again',
    async () => {
      expectExact(await runChaos({ seed, mode: 'r3', ...short }))
    },
    300_000,
  )
})

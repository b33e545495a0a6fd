/**
 * The report of a chaos run (test/chaos/chaos.ts): what a run found ({@link ChaosSummary}), the
 * command line that replays its seed, and how it is printed — one summary line per run, and the
 * full report of a failed one. Apart from the run itself, so that the test
 * (test/integration/chaos.test.ts) and the soak script (soak.ts) print runs the same way.
 */
import type { Verdict } from './ledger.ts'

/** What a run found. */
export interface ChaosSummary {
  seed: number
  mode: 'single' | 'r3'
  durationMs: number
  kills: number
  pauses: number
  serverRestarts: number
  /** Stream leaders asked to step down (R3 only). */
  stepdowns: number
  /** Nodes that exited without being killed (e.g. started while their only server was down). */
  nodeExits: number
  verdict: Verdict
  /** Work lost in all (signals, starts, effects). */
  lost: number
  duplicated: number
  /** Time from the end of the faults until every partition answered, in ms; undefined: never. */
  servedAgainMs: number | undefined
  /** Partitions that did not answer in the last liveness sweep. */
  unserved: number[]
  drainMs: number
  /** Barrier and lock-check calls sent again because no answer came in 10 s. */
  callsAskedAgain: number
  /**
   * What the mailbox and log streams hold at the end against all they ever stored (`mbx 120/5000
   * log 30/900`): on R3 the streams are cut whole from below while the faults run.
   */
  streamsKept: string
  /** Rejections of sends, by error name. */
  rejections: Record<string, number>
  /** Everything wrong, one line each (at most 40 per kind). */
  failures: string[]
  ok: boolean
  /** The command line that replays this run. */
  replay: string
  /** Last output lines of every node (filled only when the run failed). */
  nodeTails: string
  /** Placement table and stream health at the end (filled only when the run failed). */
  hubState: string
}

/** The command line that replays a seed. */
export function replayCommand(seed: number, mode: 'single' | 'r3'): string {
  const test = mode === 'single' ? 'single server' : 'R3 cluster'
  return `CHAOS_SEED=${seed} npx vitest run test/chaos.test.ts -t '${test}'  (or: npm run soak -- --start-seed ${seed} --seeds 1 --mode ${mode})`
}

/** One line per run: the figures the acceptance asks for. */
export function formatSummary(s: ChaosSummary): string {
  const v = s.verdict
  const served =
    s.servedAgainMs === undefined
      ? `never (${s.unserved.join(',')})`
      : `${(s.servedAgainMs / 1000).toFixed(1)}s`
  return [
    `seed=${s.seed} mode=${s.mode} faults=${s.durationMs / 1000}s`,
    `kills=${s.kills} pauses=${s.pauses} serverRestarts=${s.serverRestarts}` +
      (s.stepdowns > 0 ? ` stepdowns=${s.stepdowns}` : '') +
      ` nodeExits=${s.nodeExits}`,
    `signals=${v.signalsAcked} acked (+${v.signalsUnknown} unknown, ${v.signalsUnknownApplied} applied)`,
    `orchestrations=${v.startsAcked} acked (+${v.startsUnknown} unknown, ${v.startsUnknownApplied} exist)`,
    `lost=${s.lost} duplicated=${s.duplicated} phantom=${v.phantom.length} unfinished=${v.unfinished.length} locksHeld=${v.locksHeld.length}`,
    `kept=${s.streamsKept}`,
    `servedAgain=${served} drain=${(s.drainMs / 1000).toFixed(1)}s` +
      (s.callsAskedAgain > 0 ? ` callsAskedAgain=${s.callsAskedAgain}` : ''),
    s.ok ? 'OK' : 'FAIL',
  ].join(' ')
}

/** The full report of a failed run: summary, failures, replay command, node output. */
export function formatFailure(s: ChaosSummary): string {
  return [
    `chaos run FAILED: ${formatSummary(s)}`,
    `replay: ${s.replay}`,
    `rejected sends: ${JSON.stringify(s.rejections)}`,
    `lost per partition: ${JSON.stringify(s.verdict.lostByPartition)}`,
    ...s.failures.map((f) => `  ${f}`),
    s.hubState,
    s.nodeTails,
  ].join('\n')
}

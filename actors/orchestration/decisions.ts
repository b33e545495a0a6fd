/**
 * The decisions of one execution, in seq order, and the check that makes replay deterministic.
 * Every decision the code makes takes the next seq; live, it is recorded (an appended history
 * event) and emitted (a command); in replay, it is compared with the history's record of the same
 * step, and a difference makes the execution fatal. Patch markers ride along: recorded live,
 * looked up among the step's recorded markers in replay. Apart from the context (context.ts),
 * which says what each call of the orchestration API decides; this file keeps how a decision is
 * numbered, recorded and checked.
 */
import { NonDeterminismError } from '../errors.ts'
import type { Command, HistoryEvent, OrchestrationDefinition, ScheduledEvent } from './types.ts'
import { describe, sameDecision, type Decision } from './support.ts'

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never

/** The decisions of one execution (see the module comment); one per execution. @internal */
export class Decisions {
  /** Set when replay diverged from the history; the execution is dead. */
  fatal: NonDeterminismError | undefined
  /** Where live decisions and consumed events go (the step's appended events). */
  out: HistoryEvent[] = []
  /** New commands of the live step. */
  commands: Command[] = []

  #replaying = true
  #seq = 0
  readonly #patches = new Map<string, boolean>()
  #expected: Decision[] = []
  #cursor = 0
  #stepNumber = 0

  constructor(
    readonly definition: OrchestrationDefinition<any, any>,
    readonly instanceId: string,
    /** The seq of the execution's first decision (see `StartEvent.seq`). */
    readonly firstSeq = 0,
  ) {
    this.#seq = firstSeq
  }

  /** Whether the step under way replays the history (else it is live). */
  get replaying(): boolean {
    return this.#replaying
  }

  /** The seq the next decision takes. */
  get seq(): number {
    return this.#seq
  }

  /** Starts a step: replaying the history's decisions `expected`, or live (`expected` undefined). */
  beginStep(expected: Decision[] | undefined): void {
    this.#stepNumber++
    this.#replaying = expected !== undefined
    this.#expected = expected ?? []
    this.#cursor = 0
    this.out = []
    this.commands = []
  }

  /** Ends a replayed step: every decision the history recorded must have been made again. */
  endReplayedStep(): void {
    this.#skipPatches()
    const left = this.#expected[this.#cursor]
    if (left !== undefined && this.fatal === undefined) {
      const seq = left.e === 'scheduled' ? left.seq : this.#seq
      this.fatal = this.nonDeterminism(
        seq,
        `the history has ${describe(left)}, but the code did not issue it`,
      )
    }
  }

  /** Takes the next seq for a decision; records and emits it (live) or checks it (replay). */
  issue(decision: DistributiveOmit<ScheduledEvent, 'e' | 'seq'>, command: (seq: number) => Command): number {
    const seq = this.#seq++
    const record = { e: 'scheduled', seq, ...decision } as ScheduledEvent
    if (!this.#replaying) {
      this.out.push(record)
      this.commands.push(command(seq))
      return seq
    }
    this.#skipPatches()
    const recorded = this.#expected[this.#cursor]
    if (recorded === undefined || recorded.e !== 'scheduled') {
      throw (this.fatal ??= this.nonDeterminism(
        seq,
        `the code issued ${describe(record)}, which the history does not have in step ${this.#stepNumber}`,
      ))
    }
    if (!sameDecision(recorded, record)) {
      throw (this.fatal ??= this.nonDeterminism(
        seq,
        `the history has ${describe(recorded)}, but the code issued ${describe(record)}`,
      ))
    }
    this.#cursor++
    return seq
  }

  /** Records an event the live step consumed (nothing in replay: the history has it). */
  record(ev: HistoryEvent): void {
    if (!this.#replaying) this.out.push(ev)
  }

  /** Whether the patch `id` applies: live, always (and recorded); in replay, if the step has it. */
  patched(id: string): boolean {
    const known = this.#patches.get(id)
    if (known !== undefined) return known
    let found = !this.#replaying
    if (this.#replaying) {
      for (let i = this.#cursor; i < this.#expected.length; i++) {
        const d = this.#expected[i]!
        if (d.e !== 'patch') break
        if (d.id === id) {
          this.#expected.splice(i, 1)
          found = true
          break
        }
      }
    } else this.out.push({ e: 'patch', id })
    this.#patches.set(id, found)
    return found
  }

  /** Builds a non-determinism error naming the orchestration, instance and seq. */
  nonDeterminism(seq: number, detail: string): NonDeterminismError {
    return new NonDeterminismError(
      `orchestration '${this.definition.name}' (instance '${this.instanceId}') is not deterministic at seq ${seq}: ${detail}`,
    )
  }

  #skipPatches(): void {
    while (this.#expected[this.#cursor]?.e === 'patch') this.#cursor++
  }
}

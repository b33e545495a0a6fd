/**
 * The span of one activity execution (runtime/metrics/tracing.ts), on the node of the instance
 * (an internal span) or on a worker that took the task from the work queue (a consumer span):
 * a child of the orchestration step that scheduled the task (its context travels in the task,
 * `tc`). A failed outcome marks the span ERROR. An activity re-run after a crash (at least once)
 * gets a second span; a replay of history runs no activity and makes none. Only called when
 * tracing is on.
 */
import { isThenable } from '../../actors/index.ts'
import type { ActivityOutcome, ActivityTask } from '../../actors/wire/index.ts'
import { SpanKind, type TraceSpan, type Tracing } from '../metrics/index.ts'

/**
 * Runs an activity inside its span; the outcome comes back as `run` gives it (at once when `run`
 * returns a value). `partition` is the instance's partition when known (not on workers).
 */
export function tracedActivity(
  tracing: Tracing,
  task: ActivityTask,
  partition: number | undefined,
  run: () => ActivityOutcome | Promise<ActivityOutcome>,
): ActivityOutcome | Promise<ActivityOutcome> {
  const span = tracing.span(
    `activity ${task.name}`,
    partition === undefined ? SpanKind.Consumer : SpanKind.Internal,
    task.tc,
    {
      'basalt.activity': task.name,
      'basalt.instance_id': task.instanceId,
      'basalt.activity.attempt': task.attempt,
      ...(partition === undefined ? {} : { 'basalt.partition': partition }),
    },
  )
  let outcome: ActivityOutcome | Promise<ActivityOutcome>
  try {
    outcome = run()
  } catch (err) {
    // (activity runners report errors as outcomes; this is for a runner that throws anyway)
    span.fail(err as Error)
    span.end()
    throw err
  }
  if (!isThenable(outcome)) return ended(span, outcome)
  return outcome.then((done) => ended(span, done))
}

function ended(span: TraceSpan, outcome: ActivityOutcome): ActivityOutcome {
  if (outcome.ok === 0) span.fail(outcome.error)
  span.end()
  return outcome
}

/**
 * The spans of orchestration instances (runtime/metrics/tracing.ts): one consumer span per live
 * step, a child of the context the instance was started with (the client's `start` span, the
 * parent orchestration's, or the first step's when the start carried none — kept in the instance
 * record as `tc`, so steps after a restart or a recovery join the same trace); and a short span
 * per message a step sends to start a sub-orchestration or call or signal an entity, whose
 * context the message carries. Only live steps get spans: a replay of recorded history runs
 * inside the step that needed it, and recovery replays commit records without running
 * orchestration code. Only called when tracing is on.
 */
import type { EntityOp, StartMessage } from '../../actors/wire/index.ts'
import { SpanKind, type TraceSpan } from '../metrics/index.ts'
import type { HostPort } from '../partition/index.ts'
import { RuntimeStatus, type InstanceRecord } from './instance-model.ts'

/** Starts the span of a step of `rec`'s instance. */
export function stepSpan(port: Pick<HostPort, 'p' | 'tracing'>, rec: InstanceRecord): TraceSpan {
  return port.tracing.span(`orchestration ${rec.name}`, SpanKind.Consumer, rec.tc, {
    'basalt.partition': port.p,
    'basalt.instance_id': rec.id,
    'basalt.orchestration': rec.name,
    'basalt.execution': rec.exec,
  })
}

/** Ends a step's span: ERROR when the step failed the instance. */
export function endStep(span: TraceSpan, rec: InstanceRecord): void {
  if (rec.status === RuntimeStatus.Failed && rec.error !== undefined) span.fail(rec.error)
  span.end()
}

/**
 * The trace context for a message a step sends (a span ended at once: the message's receiver
 * continues the trace), or undefined for a message that starts no span of its own.
 */
export function sendContext(
  port: Pick<HostPort, 'p' | 'tracing'>,
  parent: string,
  rec: InstanceRecord,
  msg: StartMessage | EntityOp,
): string | undefined {
  const attributes = {
    'basalt.partition': port.p,
    'basalt.instance_id': rec.id,
    'basalt.orchestration': rec.name,
  }
  const span =
    msg.k === 'start'
      ? port.tracing.span(
          `${msg.pa === undefined ? 'start' : 'sub-orchestration'} ${msg.n}`,
          msg.pa === undefined ? SpanKind.Producer : SpanKind.Client,
          parent,
          { ...attributes, 'basalt.child.instance_id': msg.i, 'basalt.child.orchestration': msg.n },
        )
      : port.tracing.span(
          `${msg.ro === undefined ? 'signal' : 'call'} ${msg.t}.${msg.op}`,
          msg.ro === undefined ? SpanKind.Producer : SpanKind.Client,
          parent,
          {
            ...attributes,
            'basalt.entity.type': msg.t,
            'basalt.entity.key': msg.key,
            'basalt.entity.operation': msg.op,
          },
        )
  span.end()
  return span.context
}

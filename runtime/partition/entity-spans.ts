/**
 * The span of an entity operation (runtime/metrics/tracing.ts): a child of the caller's span when
 * the message carries a trace context (a client's signal or call, an orchestration's), else the
 * root of a trace. A server span for a call, a consumer span for a signal. Only called when
 * tracing is on: the entity host checks `port.tracing.on` first, so nothing here runs otherwise.
 */
import type { EntityOp } from '../../actors/wire/index.ts'
import { SpanKind, type TraceSpan } from '../metrics/index.ts'
import type { HostPort } from './host-port.ts'

/** Starts the span of an operation about to run on an entity of partition `port.p`. */
export function entitySpan(port: Pick<HostPort, 'p' | 'tracing'>, msg: EntityOp): TraceSpan {
  const call = msg.r !== undefined || msg.ro !== undefined
  return port.tracing.span(`entity ${msg.t}.${msg.op}`, call ? SpanKind.Server : SpanKind.Consumer, msg.tc, {
    'basalt.partition': port.p,
    'basalt.entity.type': msg.t,
    'basalt.entity.key': msg.key,
    'basalt.entity.operation': msg.op,
    ...(msg.ro === undefined ? {} : { 'basalt.instance_id': msg.ro[0] }),
  })
}

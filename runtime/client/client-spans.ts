/**
 * The client's spans (runtime/metrics/tracing.ts): `start <orchestration>` and `call
 * <Type>.<op>` (client spans, ended when the partition's reply arrives) and `signal
 * <Type>.<op>` (a producer span, ended once the signal is stored in the mailbox). The message
 * carries the span's trace context (`tc`), so the partition's spans join the caller's trace.
 * Other messages (events, control, waits) get no span. Only called when tracing is on.
 */
import type { ActorMessage } from '../../actors/wire/index.ts'
import { SpanKind, type Tracing } from '../metrics/index.ts'

/** Sends `msg` through `send` inside its span (when it is a start or an entity operation). */
export function tracedSend<T>(
  tracing: Tracing,
  msg: ActorMessage,
  call: boolean,
  send: () => Promise<T>,
): Promise<T> {
  let span
  // (the parent is the caller's active span, when the application runs a context manager)
  if (msg.k === 'start') {
    span = tracing.span(
      `start ${msg.n}`,
      SpanKind.Client,
      undefined,
      { 'basalt.instance_id': msg.i, 'basalt.orchestration': msg.n },
      true,
    )
  } else if (msg.k === 'op') {
    span = tracing.span(
      `${call ? 'call' : 'signal'} ${msg.t}.${msg.op}`,
      call ? SpanKind.Client : SpanKind.Producer,
      undefined,
      { 'basalt.entity.type': msg.t, 'basalt.entity.key': msg.key, 'basalt.entity.operation': msg.op },
      true,
    )
  } else return send()
  const tc = span.context
  if (tc !== undefined) msg.tc = tc
  const s = span
  return send().then(
    (value) => {
      s.end()
      return value
    },
    (err: unknown) => {
      s.fail(err as Error)
      s.end()
      throw err
    },
  )
}

/**
 * The trace context field of the wire model (`tc`) and the tracing module that fills it
 * (runtime/metrics/tracing.ts), without a server: the W3C string round-trips, a malformed one is
 * ignored, the codec checks the field, and a message sent while not tracing — no provider
 * registered, tracing off, or an invalid span — carries no `tc` and encodes to the same bytes
 * as a message of a build without tracing.
 */
import { afterEach, describe, expect, it } from 'vitest'
import { trace } from '@opentelemetry/api'
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base'
import { checkMessage, type EntityOp, type StartMessage } from '../../actors/wire/index.ts'
import { CodecError } from '../../actors/index.ts'
import { encode } from '../../runtime/nats/index.ts'
import {
  SpanKind,
  formatTraceContext,
  loadTracing,
  noSpan,
  noTracing,
  parseTraceContext,
  type Tracing,
} from '../../runtime/metrics/index.ts'
import { tracedSend } from '../../runtime/client/client-spans.ts'

const TRACE = '4bf92f3577b34da6a3ce929d0e0e4736'
const SPAN = '00f067aa0ba902b7'

describe('the trace context string', () => {
  it('round-trips a traceparent, with and without a tracestate', () => {
    const plain = formatTraceContext(TRACE, SPAN, 1)
    expect(plain).toBe(`00-${TRACE}-${SPAN}-01`)
    expect(parseTraceContext(plain)).toEqual({ traceId: TRACE, spanId: SPAN, flags: 1 })
    const withState = formatTraceContext(TRACE, SPAN, 0, 'vendor=abc,other=1')
    expect(withState).toBe(`00-${TRACE}-${SPAN}-00 vendor=abc,other=1`)
    expect(parseTraceContext(withState)).toEqual({
      traceId: TRACE,
      spanId: SPAN,
      flags: 0,
      state: 'vendor=abc,other=1',
    })
  })

  it('ignores a malformed or all-zero context', () => {
    for (const bad of [
      '',
      'nonsense',
      `01-${TRACE}-${SPAN}-01`,
      `00-${'0'.repeat(32)}-${SPAN}-01`,
      `00-${TRACE}-${'0'.repeat(16)}-01`,
    ]) {
      expect(parseTraceContext(bad), JSON.stringify(bad)).toBeUndefined()
    }
  })
})

describe('the tc field of messages', () => {
  const start: StartMessage = { k: 'start', i: 'i1', n: 'hello', in: null }

  it('is accepted as a string and refused otherwise', () => {
    expect(checkMessage({ ...start, tc: `00-${TRACE}-${SPAN}-01` })).toMatchObject({
      tc: `00-${TRACE}-${SPAN}-01`,
    })
    expect(() => checkMessage({ ...start, tc: 42 })).toThrow(CodecError)
    expect(() => checkMessage({ ...start, tc: 42 })).toThrow('message field tc is not a string')
  })

  it('is absent when not tracing: no span, no field, the same bytes', async () => {
    const before = encode({ ...start })
    const msg: StartMessage = { ...start }
    await tracedSend(noTracing, msg, true, async () => {})
    expect('tc' in msg).toBe(false)
    expect(encode(msg)).toEqual(before)
    // a tracer whose spans have no valid context (OpenTelemetry's no-op tracer) adds nothing either
    const invalid: Tracing = { on: true, span: () => noSpan }
    const op: EntityOp = { k: 'op', t: 'Counter', key: 'k', op: 'add', a: [1] }
    await tracedSend(invalid, op, false, async () => {})
    expect('tc' in op).toBe(false)
  })
})

describe('loadTracing', () => {
  afterEach(() => trace.disable())

  it('is off when no provider is registered, or when switched off', async () => {
    trace.disable()
    expect((await loadTracing(undefined, 'h')).on).toBe(false)
    trace.setGlobalTracerProvider(new BasicTracerProvider())
    expect((await loadTracing({ enabled: false }, 'h')).on).toBe(false)
    expect((await loadTracing(undefined, 'h')).on).toBe(true)
  })

  it('puts the span context on a message and parents the receiver on it', async () => {
    const exporter = new InMemorySpanExporter()
    const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] })
    const tracing = await loadTracing({ tracer: provider.getTracer('test') }, 'hub1')
    expect(tracing.on).toBe(true)
    const msg: StartMessage = { k: 'start', i: 'i1', n: 'hello', in: null }
    await tracedSend(tracing, msg, true, async () => {})
    const sent = parseTraceContext(msg.tc!)
    expect(sent, `tc ${msg.tc}`).toBeDefined()
    const child = tracing.span('orchestration hello', SpanKind.Consumer, msg.tc, {
      'basalt.instance_id': 'i1',
    })
    child.end()
    const [client, consumer] = exporter.getFinishedSpans()
    expect(client!.name).toBe('start hello')
    expect(client!.spanContext().spanId).toBe(sent!.spanId)
    expect(consumer!.spanContext().traceId).toBe(sent!.traceId)
    expect(consumer!.parentSpanContext?.spanId).toBe(sent!.spanId)
    expect(consumer!.attributes['basalt.hub']).toBe('hub1')
  })
})

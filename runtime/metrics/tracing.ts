/**
 * OpenTelemetry traces, at no cost when they are off. `@opentelemetry/api` is an optional peer
 * dependency: {@link loadTracing} imports it once (when a node starts or a client connects) and
 * returns {@link noTracing} when it is missing, when tracing is switched off, or when no tracer
 * provider is registered — the engine then checks one boolean (`tracing.on`) and does nothing
 * more: no span objects, no attributes, no trace context on messages.
 *
 * The engine never sees OpenTelemetry's types: it starts spans through the small {@link Tracing}
 * interface, with a parent given explicitly as a W3C trace context string (no context manager is
 * needed) and gets back the span's own context to carry in a message (`tc` in actors/wire/), in
 * an instance record, or in an activity task. The only module that imports `@opentelemetry/*`
 * (an ESLint rule keeps it so).
 */
import type * as Otel from '@opentelemetry/api'
import { BadInputError, describeValue } from '../../actors/index.ts'
import { checkKnownKeys, checkOptionalBoolean, keysOf } from '../util/index.ts'

/** How a span relates to the messages around it (OpenTelemetry's `SpanKind`, by name). */
export const SpanKind = {
  Internal: 0,
  Server: 1,
  Client: 2,
  Producer: 3,
  Consumer: 4,
} as const
export type SpanKind = (typeof SpanKind)[keyof typeof SpanKind]

/** Attributes of a span (OpenTelemetry's, kept to what Basalt sets). */
export type SpanAttributes = Record<string, string | number | boolean>

/**
 * An OpenTelemetry `Tracer` (from `@opentelemetry/api`), typed structurally so that Basalt's
 * declarations do not need the optional package.
 */
export interface TracerLike {
  // (any: OpenTelemetry's own SpanOptions, Context and Span, which these declarations cannot name)
  startSpan(name: string, options?: any, context?: any): any
}

/** What a span records of an error: an `Error`, or an error description from the wire. */
export interface SpanError {
  name?: string
  message?: string
  stack?: string
  code?: string
}

/** A span the engine started; end it exactly once. */
export interface TraceSpan {
  /**
   * The span's W3C trace context for a message or a record (`traceparent`, then a space and the
   * `tracestate` when there is one); undefined when the span has no valid context.
   */
  readonly context: string | undefined
  /** Records an error on the span (`recordException`) and sets its status to ERROR. */
  fail(error: SpanError): void
  end(): void
}

/** Starts spans (see the module comment). */
export interface Tracing {
  /** False for {@link noTracing}: callers skip building names and attributes. */
  readonly on: boolean
  /**
   * Starts a span as a child of `parent` (a context from {@link TraceSpan.context}), or, when
   * `parent` is undefined or malformed, as the root of a new trace — or with `fromActive`, as a
   * child of the application's active span (the client's spans, under a context manager).
   */
  span(
    name: string,
    kind: SpanKind,
    parent: string | undefined,
    attributes: SpanAttributes,
    fromActive?: boolean,
  ): TraceSpan
}

/**
 * Tracing settings of `Node.start` and `Client.connect`. Default: the tracer of the global tracer
 * provider (`trace.setGlobalTracerProvider`, registered before the node starts or the client
 * connects); nothing at all when none is registered or `@opentelemetry/api` is not installed.
 */
export interface TracingOptions {
  /** The tracer to use instead of the global provider's (`provider.getTracer('basalt')`). */
  tracer?: TracerLike
  /** Set to false to switch tracing off even when a provider is registered. */
  enabled?: boolean
}

/** The keys of {@link TracingOptions}. */
const TRACING_KEYS = keysOf<TracingOptions>({ tracer: true, enabled: true })

/**
 * Checks the `tracing` option of `method` (`Node.start`, `Client.connect`): an object of
 * {@link TracingOptions}' keys, `tracer` something with a `startSpan` method, `enabled` a boolean.
 * Throws `BadInputError` naming the option (a tracer that is not one would fail every span later).
 */
export function checkTracingOptions(
  value: TracingOptions | undefined,
  method: string,
): TracingOptions | undefined {
  if (value === undefined) return undefined
  const options = checkKnownKeys(value, method, 'tracing', TRACING_KEYS)
  const tracer: unknown = options.tracer
  if (tracer !== undefined && typeof (tracer as Partial<TracerLike> | null)?.startSpan !== 'function') {
    throw new BadInputError(
      `tracing.tracer must be an OpenTelemetry Tracer, with a startSpan method (got ${describeValue(tracer)})`,
    )
  }
  checkOptionalBoolean(options.enabled, 'tracing.enabled')
  return options
}

const nothing = (): void => {}

/** A span that records nothing. */
export const noSpan: TraceSpan = { context: undefined, fail: nothing, end: nothing }

/** Tracing that is off: every span is {@link noSpan}. */
export const noTracing: Tracing = { on: false, span: () => noSpan }

/** The name tracers of Basalt are registered under. */
export const TRACER_NAME = 'basalt'

/**
 * Loads `@opentelemetry/api` (once per process) and returns the tracing to use; {@link noTracing}
 * when the package is missing, `enabled` is false, or no tracer is given and no provider is
 * registered. Every span gets the attribute `basalt.hub` = `hub`. Never throws.
 */
export async function loadTracing(options: TracingOptions | undefined, hub: string): Promise<Tracing> {
  if (options?.enabled === false) return noTracing
  const api = await importApi()
  if (api === undefined) return noTracing
  const tracer = (options?.tracer as Otel.Tracer | undefined) ?? registeredTracer(api)
  return tracer === undefined ? noTracing : new OtelTracing(api, tracer, hub)
}

let loaded: Promise<typeof Otel | undefined> | undefined

function importApi(): Promise<typeof Otel | undefined> {
  return (loaded ??= import('@opentelemetry/api').then(
    (m) => m as typeof Otel,
    () => undefined,
  ))
}

/** The global provider's tracer, or undefined when no provider was registered. */
function registeredTracer(api: typeof Otel): Otel.Tracer | undefined {
  const provider = api.trace.getTracerProvider()
  if (provider instanceof api.ProxyTracerProvider) return provider.getDelegateTracer(TRACER_NAME)
  return provider.getTracer(TRACER_NAME)
}

/** Tracing over an OpenTelemetry tracer. */
class OtelTracing implements Tracing {
  readonly on = true

  constructor(
    readonly api: typeof Otel,
    readonly tracer: Otel.Tracer,
    readonly hub: string,
  ) {}

  span(
    name: string,
    kind: SpanKind,
    parent: string | undefined,
    attributes: SpanAttributes,
    fromActive = false,
  ): TraceSpan {
    attributes['basalt.hub'] = this.hub
    const parentContext = parent === undefined ? undefined : this.#contextOf(parent)
    const span =
      parentContext !== undefined
        ? this.tracer.startSpan(name, { kind, attributes }, parentContext)
        : fromActive
          ? this.tracer.startSpan(name, { kind, attributes })
          : this.tracer.startSpan(name, { kind, attributes, root: true })
    return new OtelSpan(this.api, span)
  }

  #contextOf(tc: string): Otel.Context | undefined {
    const parsed = parseTraceContext(tc)
    if (parsed === undefined) return undefined
    const spanContext: Otel.SpanContext = {
      traceId: parsed.traceId,
      spanId: parsed.spanId,
      traceFlags: parsed.flags,
      isRemote: true,
      ...(parsed.state === undefined ? {} : { traceState: this.api.createTraceState(parsed.state) }),
    }
    return this.api.trace.setSpanContext(this.api.ROOT_CONTEXT, spanContext)
  }
}

class OtelSpan implements TraceSpan {
  constructor(
    readonly api: typeof Otel,
    readonly span: Otel.Span,
  ) {}

  get context(): string | undefined {
    const c = this.span.spanContext()
    if (!this.api.isSpanContextValid(c)) return undefined
    return formatTraceContext(c.traceId, c.spanId, c.traceFlags, c.traceState?.serialize())
  }

  fail(error: SpanError): void {
    const name = error.name ?? 'Error'
    const message = error.message ?? ''
    this.span.recordException({
      name,
      message,
      ...(error.stack === undefined ? {} : { stack: error.stack }),
      ...(error.code === undefined ? {} : { code: error.code }),
    })
    this.span.setStatus({ code: this.api.SpanStatusCode.ERROR, message: `${name}: ${message}` })
  }

  end(): void {
    this.span.end()
  }
}

const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/

/** A W3C trace context string (see {@link TraceSpan.context}) taken apart; undefined if malformed. */
export function parseTraceContext(
  tc: string,
): { traceId: string; spanId: string; flags: number; state?: string } | undefined {
  const space = tc.indexOf(' ')
  const m = TRACEPARENT.exec(space < 0 ? tc : tc.slice(0, space))
  if (m === null || /^0+$/.test(m[1]!) || /^0+$/.test(m[2]!)) return undefined
  const state = space < 0 ? '' : tc.slice(space + 1)
  return {
    traceId: m[1]!,
    spanId: m[2]!,
    flags: parseInt(m[3]!, 16),
    ...(state === '' ? {} : { state }),
  }
}

/** The W3C trace context string of a span: `traceparent`, then ` tracestate` when not empty. */
export function formatTraceContext(traceId: string, spanId: string, flags: number, state?: string): string {
  const parent = `00-${traceId}-${spanId}-${(flags & 0xff).toString(16).padStart(2, '0')}`
  return state === undefined || state === '' ? parent : `${parent} ${state}`
}

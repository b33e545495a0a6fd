/**
 * OpenTelemetry traces (issue 11, section 3) with the in-memory exporter of
 * `@opentelemetry/sdk-trace-base`, registered as the global tracer provider (no context manager:
 * the engine passes parents explicitly). A hello-sequence gives one trace — the client's start,
 * six orchestration steps under it, five activity spans under the steps that scheduled them; an
 * orchestration's entity call and sub-orchestration join its trace; a failing activity's span is
 * ERROR; `alwaysReplay` duplicates no span; steps after a node restart stay in the instance's
 * trace; offloaded activities parent on their steps too; and a node and client started with no
 * provider registered produce no spans and put no trace context on any message.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { trace, SpanKind, SpanStatusCode } from '@opentelemetry/api'
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  SimpleSpanProcessor,
  type ReadableSpan,
} from '@opentelemetry/sdk-trace-base'
import { orchestration } from '../../actors/orchestration/index.ts'
import { Client, Node, silentLogger } from '../../runtime/index.ts'
import { helloSequence, sayHello } from '../../examples/workflows/index.ts'
import { Counter } from '../fixtures/entities.ts'
import { approval, boom, failing, fanOut, double } from '../fixtures/workflows.ts'
import { useNatsServer, waitFor } from '../tooling/harness.ts'
import { closeConnection, connectTo, decode, decodeEnvelope, openHub } from '../../runtime/nats/index.ts'

/** Calls and signals an entity, and runs a sub-orchestration. */
const counting = orchestration('counting', function* (ctx, key: string) {
  ctx.signalEntity(Counter, key).add(2)
  const n = yield* ctx.callEntity(Counter, key).get()
  const sum = yield* ctx.callSubOrchestration(fanOut, 2)
  return [n, sum]
})

const registry = [Counter, helloSequence, sayHello, failing, boom, counting, fanOut, double, approval]
/** No snapshot during a test: the mailboxes keep every message for {@link mailboxMessages}. */
const noSnapshots = { snapshotIntervalMs: 600_000, snapshotRecords: 1_000_000 }

const exporter = new InMemorySpanExporter()
const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] })

const parentOf = (s: ReadableSpan) => s.parentSpanContext?.spanId
const idOf = (s: ReadableSpan) => s.spanContext().spanId
const traceOf = (s: ReadableSpan) => s.spanContext().traceId

/** The spans of one trace, once `count` of them have ended. */
async function spansOf(
  traceId: () => string | undefined,
  count: number,
  what: string,
): Promise<ReadableSpan[]> {
  let found: ReadableSpan[] = []
  try {
    await waitFor(() => {
      const id = traceId()
      found = id === undefined ? [] : exporter.getFinishedSpans().filter((s) => traceOf(s) === id)
      return found.length >= count
    }, `${what}: ${count} spans in one trace`)
  } catch (err) {
    const names = found.map((s) => s.name).join(', ')
    throw new Error(`${(err as Error).message}; expected ${count}, found ${found.length}: ${names}`)
  }
  return found
}

/** The trace of the client's `start` span of an instance. */
function startTrace(instanceId: string): string | undefined {
  const start = exporter
    .getFinishedSpans()
    .find((s) => s.name.startsWith('start ') && s.attributes['basalt.instance_id'] === instanceId)
  return start === undefined ? undefined : traceOf(start)
}

/** Every actor message stored in a hub's mailbox stream (from clients and from partitions). */
async function mailboxMessages(hub: string): Promise<Array<Record<string, unknown>>> {
  const nc = await connectTo(nats.url, 'tracing-inspector')
  try {
    const { jsm, names } = await openHub(nc, hub)
    const info = await jsm.streams.info(names.mailboxStream)
    const out: Array<Record<string, unknown>> = []
    for (let seq = info.state.first_seq; seq <= info.state.last_seq; seq++) {
      const m = await jsm.streams.getMessage(names.mailboxStream, { seq }).catch(() => null)
      if (m === null) continue
      const env = decodeEnvelope(m.data, `mailbox message ${seq} of ${hub}`)
      if (Array.isArray(env.m)) out.push(...(env.m as Array<Record<string, unknown>>))
      for (const [, msgs] of (env.g ?? []) as Array<[number, Uint8Array[]]>) {
        for (const bytes of msgs) out.push(decode(bytes, 'partition message') as Record<string, unknown>)
      }
    }
    return out
  } finally {
    await closeConnection(nc)
  }
}

const nats = useNatsServer()

describe('with no tracer provider registered', () => {
  let node: Node
  let client: Client

  beforeAll(async () => {
    trace.disable()
    node = await Node.start({
      servers: nats.url,
      hub: 'untraced',
      registry,
      ...noSnapshots,
      partitions: 2,
      logger: silentLogger,
    })
    client = await Client.connect({ servers: nats.url, hub: 'untraced' })
  })
  afterAll(async () => {
    await client?.close()
    await node?.stop()
  })

  it('runs a hello-sequence and an entity call without spans or errors', async () => {
    // a provider registered after the node started and the client connected is not used
    trace.setGlobalTracerProvider(provider)
    try {
      const id = await client.start(helloSequence, undefined)
      const done = await client.waitForCompletion(id)
      expect(done.status, `instance ${id}`).toBe('Completed')
      await client.entity(Counter, 'untraced').call.add(1)
      expect(await client.entity(Counter, 'untraced').call.get()).toBe(1)
      expect(exporter.getFinishedSpans().map((s) => s.name)).toEqual([])
      // and no message carries a trace context (the encoding does not grow)
      const messages = await mailboxMessages('untraced')
      expect(messages.length, 'messages in the mailboxes of hub untraced').toBeGreaterThan(0)
      expect(messages.filter((m) => 'tc' in m)).toEqual([])
    } finally {
      trace.disable()
    }
  })
})

describe('with a tracer provider registered', () => {
  let node: Node
  let replaying: Node
  let client: Client
  let replayClient: Client
  let offloading: Node
  let offloadClient: Client

  beforeAll(async () => {
    trace.setGlobalTracerProvider(provider)
    node = await Node.start({
      servers: nats.url,
      hub: 'traced',
      registry,
      ...noSnapshots,
      partitions: 2,
      logger: silentLogger,
    })
    client = await Client.connect({ servers: nats.url, hub: 'traced' })
    replaying = await Node.start({
      servers: nats.url,
      hub: 'replayed',
      registry,
      partitions: 2,
      logger: silentLogger,
      alwaysReplay: true,
    })
    replayClient = await Client.connect({ servers: nats.url, hub: 'replayed' })
    offloading = await Node.start({
      servers: nats.url,
      hub: 'offloaded',
      registry,
      partitions: 2,
      logger: silentLogger,
      offloadThreshold: 0,
    })
    offloadClient = await Client.connect({ servers: nats.url, hub: 'offloaded' })
  })
  afterAll(async () => {
    await client?.close()
    await replayClient?.close()
    await node?.stop()
    await offloadClient?.close()
    await replaying?.stop()
    await offloading?.stop()
    trace.disable()
  })

  /** Checks the shape of a hello-sequence's trace; returns its spans. */
  async function helloTrace(
    c: Client,
    hub: string,
    activityKind = SpanKind.INTERNAL,
  ): Promise<ReadableSpan[]> {
    const id = await c.start(helloSequence, undefined)
    expect((await c.waitForCompletion(id)).status, `instance ${id}`).toBe('Completed')
    const spans = await spansOf(() => startTrace(id), 12, `hello-sequence ${id} on ${hub}`)
    const start = spans.filter((s) => s.name === 'start helloSequence')
    const steps = spans.filter((s) => s.name === 'orchestration helloSequence')
    const activities = spans.filter((s) => s.name === 'activity sayHello')
    expect(spans.map((s) => s.name).sort(), `spans of ${id}`).toEqual(
      [
        ...Array(5).fill('activity sayHello'),
        ...Array(6).fill('orchestration helloSequence'),
        'start helloSequence',
      ].sort(),
    )
    expect(start[0]!.kind).toBe(SpanKind.CLIENT)
    expect(parentOf(start[0]!), 'the start span is the root').toBeUndefined()
    for (const step of steps) {
      expect(parentOf(step), `parent of step ${idOf(step)}`).toBe(idOf(start[0]!))
      expect(step.kind).toBe(SpanKind.CONSUMER)
      expect(step.attributes).toMatchObject({
        'basalt.hub': hub,
        'basalt.instance_id': id,
        'basalt.orchestration': 'helloSequence',
      })
      expect(typeof step.attributes['basalt.partition']).toBe('number')
    }
    // each activity under the step that scheduled it: the first five steps, one each
    const stepIds = new Set(steps.map(idOf))
    const parents = activities.map(parentOf)
    expect(new Set(parents).size, 'one activity per scheduling step').toBe(5)
    for (const p of parents) expect(stepIds.has(p!), `activity parent ${p} is a step`).toBe(true)
    for (const a of activities) {
      expect(a.attributes).toMatchObject({ 'basalt.activity': 'sayHello', 'basalt.instance_id': id })
      expect(a.kind, `kind of activity span ${idOf(a)}`).toBe(activityKind)
      expect(a.status.code).not.toBe(SpanStatusCode.ERROR)
    }
    return spans
  }

  it('gives one hello-sequence one trace: start → six steps → five activities', async () => {
    await helloTrace(client, 'traced')
  })

  it('duplicates no span with alwaysReplay', async () => {
    await helloTrace(replayClient, 'replayed')
  })

  it('parents offloaded activities (run by a worker) on their steps too', async () => {
    await helloTrace(offloadClient, 'offloaded', SpanKind.CONSUMER)
  })

  it('links an entity call, a signal and a sub-orchestration into the instance trace', async () => {
    const id = await client.start(counting, 'k1')
    const done = await client.waitForCompletion(id)
    expect(done.status, `instance ${id}`).toBe('Completed')
    // start, steps of counting, the signal, the call, two entity operations, the sub-orchestration
    // span, its steps and its two activities
    const spans = await spansOf(() => startTrace(id), 14, `counting ${id}`)
    const byName = (name: string) => spans.filter((s) => s.name === name)
    const call = byName('call Counter.get')
    const op = byName('entity Counter.get')
    expect(call.length, 'call spans').toBe(1)
    expect(op.length, 'entity operation spans').toBe(1)
    expect(call[0]!.kind).toBe(SpanKind.CLIENT)
    expect(op[0]!.kind).toBe(SpanKind.SERVER)
    expect(parentOf(op[0]!)).toBe(idOf(call[0]!))
    expect(op[0]!.attributes).toMatchObject({
      'basalt.entity.type': 'Counter',
      'basalt.entity.key': 'k1',
      'basalt.entity.operation': 'get',
    })
    const signalOp = byName('entity Counter.add')
    expect(signalOp.length, 'signalled operation spans').toBe(1)
    expect(signalOp[0]!.kind).toBe(SpanKind.CONSUMER)
    expect(parentOf(signalOp[0]!)).toBe(idOf(byName('signal Counter.add')[0]!))
    const steps = new Set(byName('orchestration counting').map(idOf))
    expect(steps.has(parentOf(call[0]!)!), 'the call is under a step of the caller').toBe(true)
    const sub = byName('sub-orchestration fanOut')
    expect(sub.length).toBe(1)
    const childSteps = byName('orchestration fanOut')
    expect(childSteps.length, 'steps of the sub-orchestration').toBeGreaterThan(0)
    for (const s of childSteps) expect(parentOf(s)).toBe(idOf(sub[0]!))
    expect(byName('activity double').length).toBe(2)
    // the trace context travelled in the client's start message
    const messages = await mailboxMessages('traced')
    const startOf = (i: string) => messages.find((m) => m.k === 'start' && m.i === i)
    expect(startOf(id)?.tc, `tc of the start of ${id}`).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/)
  })

  it('marks a failing activity span and the failed step ERROR', async () => {
    const id = await client.start(failing, undefined)
    expect((await client.waitForCompletion(id)).status, `instance ${id}`).toBe('Failed')
    const spans = await spansOf(() => startTrace(id), 4, `failing ${id}`)
    const activity = spans.find((s) => s.name === 'activity boom')!
    expect(activity.status.code).toBe(SpanStatusCode.ERROR)
    expect(activity.status.message).toContain('kaboom')
    expect(activity.events.map((e) => e.name)).toContain('exception')
    const last = spans.filter((s) => s.name === 'orchestration failing').at(-1)!
    expect(last.status.code, 'the step that failed the instance').toBe(SpanStatusCode.ERROR)
  })

  it('a client call to an entity gives a call span and its operation span', async () => {
    await client.entity(Counter, 'k2').call.add(3)
    await client.entity(Counter, 'k2').signal.add(1)
    let call: ReadableSpan | undefined
    await waitFor(
      () => (call = exporter.getFinishedSpans().find((s) => s.name === 'call Counter.add')) !== undefined,
      'the client call span of Counter@k2.add',
    )
    const ops = await spansOf(() => traceOf(call!), 2, 'call Counter@k2.add')
    const op = ops.find((s) => s.name === 'entity Counter.add')!
    expect(parentOf(op)).toBe(idOf(call!))
    expect(op.attributes['basalt.entity.key']).toBe('k2')
  })

  it('marks a failing entity operation and its client call ERROR', async () => {
    await expect(client.entity(Counter, 'k3').call.failAfterAdding(1)).rejects.toThrow(
      'refusing after adding 1',
    )
    let call: ReadableSpan | undefined
    await waitFor(
      () =>
        (call = exporter.getFinishedSpans().find((s) => s.name === 'call Counter.failAfterAdding')) !==
        undefined,
      'the client call span of Counter@k3.failAfterAdding',
    )
    const spans = await spansOf(() => traceOf(call!), 2, 'call Counter@k3.failAfterAdding')
    const op = spans.find((s) => s.name === 'entity Counter.failAfterAdding')!
    expect(op.status.code, 'the operation span').toBe(SpanStatusCode.ERROR)
    expect(op.status.message).toContain('RangeError: refusing after adding 1')
    expect(op.events.map((e) => e.name)).toContain('exception')
    expect(call!.status.code, 'the client call span').toBe(SpanStatusCode.ERROR)
  })

  it('keeps the steps after a node restart in the instance trace', async () => {
    const id = await client.start(approval, 60_000)
    await waitFor(async () => (await client.getStatus(id))?.status === 'Running', `approval ${id} Running`)
    await node.stop()
    node = await Node.start({
      servers: nats.url,
      hub: 'traced',
      registry,
      ...noSnapshots,
      partitions: 2,
      logger: silentLogger,
    })
    await client.raiseEvent(id, 'approve', { by: 'ops' })
    expect((await client.waitForCompletion(id)).status, `instance ${id}`).toBe('Completed')
    const spans = await spansOf(() => startTrace(id), 3, `approval ${id} across a restart`)
    const start = spans.find((s) => s.name === 'start approval')!
    const steps = spans.filter((s) => s.name === 'orchestration approval')
    expect(steps.length, 'one step before the restart, one after').toBe(2)
    for (const s of steps) expect(parentOf(s)).toBe(idOf(start))
  })
})

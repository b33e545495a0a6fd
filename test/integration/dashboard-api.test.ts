/**
 * The dashboard's HTTP API without a browser: the answers of its action routes — 409 for what the
 * instance's state refuses (an event raised on an instance that ended, terminating a terminated
 * one, suspending one that is not running…), 400 for bad input, 404 for an instance that does not
 * exist — and its event streams when the dashboard drops its client (the hub deleted and created
 * again): they end, so that the browser's EventSource connects again, to the new client, instead
 * of staying open and silent for good.
 */
import http from 'node:http'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startDashboard, type Dashboard } from '../../runtime/dashboard/index.ts'
import { connectTo, deleteHub } from '../../runtime/nats/index.ts'
import { Node } from '../../runtime/node/index.ts'
import { Client } from '../../runtime/client/index.ts'
import { silentLogger } from '../../runtime/util/index.ts'
import { Counter } from '../fixtures/entities.ts'
import { approval, boom, failing } from '../fixtures/workflows.ts'
import { useHub, useNatsServer, waitFor } from '../tooling/harness.ts'

const nats = useNatsServer()
const stack = useHub(nats, { hub: 'dash-api', partitions: 2, registry: [Counter, approval, failing, boom] })

/** POSTs an action as the dashboard's page does; the status and the `error` of the answer. */
async function act(
  dashboard: Dashboard,
  id: string,
  action: string,
  body: unknown = {},
): Promise<{ status: number; error?: string }> {
  const res = await fetch(`${dashboard.url}api/instances/${encodeURIComponent(id)}/${action}`, {
    method: 'POST',
    headers: { 'x-basalt-dashboard': '1', 'content-type': 'application/json' },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  })
  const answer = (await res.json()) as { error?: string }
  return { status: res.status, ...(answer.error === undefined ? {} : { error: answer.error }) }
}

async function statusOf(id: string, want: string): Promise<void> {
  await waitFor(async () => (await stack.client.getStatus(id))?.status === want, `${id} ${want}`, 15_000)
}

describe('dashboard actions over HTTP', () => {
  let dashboard: Dashboard
  beforeAll(async () => {
    dashboard = await startDashboard({ servers: nats.url, hub: 'dash-api', port: 0, allowActions: true })
  })
  afterAll(async () => {
    await dashboard?.close()
  })

  it('an event raised on an instance that ended is a conflict (409) naming the instance and its status', async () => {
    const completed = await stack.client.start(approval, 60_000, { instanceId: 'api-completed' })
    expect(await act(dashboard, completed, 'raise', { name: 'approve', data: 'ann' })).toEqual({
      status: 200,
    })
    await statusOf(completed, 'Completed')
    // (before: 400, as if the request were malformed)
    expect(await act(dashboard, completed, 'raise', { name: 'approve', data: 'bob' })).toEqual({
      status: 409,
      error: "cannot raise event 'approve': instance 'api-completed' is Completed",
    })

    const terminated = await stack.client.start(approval, 60_000, { instanceId: 'api-terminated' })
    expect(await act(dashboard, terminated, 'terminate', { reason: 'no' })).toEqual({ status: 200 })
    await statusOf(terminated, 'Terminated')
    expect(await act(dashboard, terminated, 'raise', { name: 'approve' })).toEqual({
      status: 409,
      error: "cannot raise event 'approve': instance 'api-terminated' is Terminated",
    })

    const failed = await stack.client.start(failing, undefined, { instanceId: 'api-failed' })
    await statusOf(failed, 'Failed')
    expect(await act(dashboard, failed, 'raise', { name: 'approve' })).toEqual({
      status: 409,
      error: "cannot raise event 'approve': instance 'api-failed' is Failed",
    })
  })

  it('every action the status refuses is 409; bad input 400; an unknown instance 404', async () => {
    const running = await stack.client.start(approval, 60_000, { instanceId: 'api-running' })
    await statusOf(running, 'Running')
    // refused by the instance's state
    const resume = await act(dashboard, running, 'resume')
    expect(resume.status, resume.error).toBe(409)
    expect(resume.error).toBe("cannot resume instance 'api-running': it is Running")
    const purge = await act(dashboard, running, 'purge')
    expect(purge).toEqual({ status: 409, error: "cannot purge instance 'api-running': it is Running" })
    expect(await act(dashboard, running, 'suspend')).toEqual({ status: 200 })
    await statusOf(running, 'Suspended')
    expect(await act(dashboard, running, 'suspend')).toEqual({
      status: 409,
      error: "cannot suspend instance 'api-running': it is Suspended",
    })
    // an event for a suspended instance is held, not refused
    expect(await act(dashboard, running, 'raise', { name: 'approve', data: 'cy' })).toEqual({ status: 200 })
    expect(await act(dashboard, running, 'resume')).toEqual({ status: 200 })
    await statusOf(running, 'Completed')
    for (const action of ['terminate', 'suspend', 'resume']) {
      const refused = await act(dashboard, running, action)
      expect(refused.status, `${action}: ${refused.error}`).toBe(409)
      expect(refused.error, action).toMatch(/'api-running'.* Completed$/)
    }

    // bad input
    expect(await act(dashboard, running, 'raise', { data: 1 })).toEqual({
      status: 400,
      error: "bad body field 'name': give the event name",
    })
    expect((await act(dashboard, running, 'raise', '{"name":')).status).toBe(400)

    // no such instance
    for (const action of ['raise', 'terminate', 'suspend', 'resume', 'purge']) {
      const missing = await act(dashboard, 'api-nobody', action, { name: 'approve' })
      expect(missing.status, `${action}: ${missing.error}`).toBe(404)
      expect(missing.error, action).toMatch(/instance 'api-nobody' does not exist$/)
    }

    // once purged, it is gone: 404, not 409
    expect(await act(dashboard, running, 'purge')).toEqual({ status: 200 })
    expect((await act(dashboard, running, 'raise', { name: 'approve' })).status).toBe(404)
  })
})

/** An event stream read over HTTP: the events as they arrive, and whether the server ended it. */
interface OpenStream {
  events: Array<{ event: string; data: unknown }>
  /** Resolves when the server ends the response. */
  ended: Promise<void>
  hasEnded: () => boolean
  close: () => void
}

function openStream(url: string): Promise<OpenStream> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { headers: { accept: 'text/event-stream' } }, (res) => {
      if (res.statusCode !== 200) return reject(new Error(`${url}: HTTP ${res.statusCode}`))
      const events: OpenStream['events'] = []
      let buffer = ''
      let done = false
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => {
        buffer += chunk
        let end: number
        while ((end = buffer.indexOf('\n\n')) >= 0) {
          const block = buffer.slice(0, end)
          buffer = buffer.slice(end + 2)
          const event = /^event: (.*)$/m.exec(block)?.[1]
          const data = /^data: (.*)$/m.exec(block)?.[1]
          if (event !== undefined && data !== undefined) events.push({ event, data: JSON.parse(data) })
        }
      })
      const ended = new Promise<void>((resolveEnd) =>
        res.on('end', () => {
          done = true
          resolveEnd()
        }),
      )
      resolve({ events, ended, hasEnded: () => done, close: () => req.destroy() })
    })
    req.on('error', reject)
  })
}

describe('dashboard event streams when the dashboard connects anew', () => {
  it('a hub deleted and created again: the streams of the old client end, and new ones deliver', async () => {
    const hub = 'dash-api-again'
    const nodeOptions = { servers: nats.url, hub, registry: [Counter, approval], logger: silentLogger }
    const first = await Node.start({ ...nodeOptions, partitions: 2 })
    const dashboard = await startDashboard({ servers: nats.url, hub, port: 0 })
    const streams: OpenStream[] = []
    let second: Node | undefined
    try {
      const client = await Client.connect({ servers: nats.url, hub })
      try {
        await client.start(approval, 60_000, { instanceId: 'watched' })
        await client.entity(Counter, 'c').call.add(1)
      } finally {
        await client.close()
      }
      const instance = await openStream(`${dashboard.url}api/stream/instances/watched`)
      const entity = await openStream(`${dashboard.url}api/stream/entities/Counter/c`)
      const feed = await openStream(`${dashboard.url}api/stream/instances`)
      const stats = await openStream(`${dashboard.url}api/stream/stats`)
      streams.push(instance, entity, feed, stats)
      await waitFor(() => instance.events.some((e) => e.event === 'status'), 'the instance status', 10_000)
      await waitFor(() => entity.events.some((e) => e.event === 'state'), 'the entity state', 10_000)
      await waitFor(() => feed.events.some((e) => e.event === 'ready'), 'the feed ready', 10_000)

      // the hub deleted and created again, with another partition count
      await first.stop()
      const nc = await connectTo(nats.url, 'dash-api-delete')
      await deleteHub(nc, hub)
      await nc.close()
      second = await Node.start({ ...nodeOptions, partitions: 4 })
      // the dashboard notices when a page asks (it reads the hub record at most every 2 s)
      await waitFor(
        async () => {
          const res = await fetch(`${dashboard.url}api/overview`)
          return (
            res.status === 200 && ((await res.json()) as { hub: { partitions: number } }).hub.partitions === 4
          )
        },
        'the dashboard showing the hub created again',
        15_000,
      )
      // (before: open and silent for good, the browser never connecting again)
      await Promise.race([
        Promise.all([instance.ended, entity.ended, feed.ended]),
        new Promise((_, reject) => setTimeout(() => reject(new Error('the streams did not end')), 5_000)),
      ])
      // the telemetry stream belongs to no client: it goes on
      expect(stats.hasEnded()).toBe(false)

      // connected again (as the browser does), a stream delivers the new hub's changes
      const again = await openStream(`${dashboard.url}api/stream/instances/watched`)
      streams.push(again)
      await waitFor(() => again.events.some((e) => e.event === 'missing'), 'missing in the new hub', 10_000)
      const fresh = await Client.connect({ servers: nats.url, hub })
      try {
        await fresh.start(approval, 60_000, { instanceId: 'watched' })
      } finally {
        await fresh.close()
      }
      await waitFor(
        () => again.events.some((e) => e.event === 'status' && (e.data as { id?: string }).id === 'watched'),
        'the status of the instance started in the new hub',
        10_000,
      )
      expect(again.hasEnded()).toBe(false)
    } finally {
      for (const s of streams) s.close()
      await dashboard.close()
      await second?.stop()
      await first.stop()
    }
  }, 60_000)

  it('closing the dashboard ends its streams', async () => {
    const dashboard = await startDashboard({ servers: nats.url, hub: 'dash-api', port: 0 })
    const id = await stack.client.start(approval, 60_000)
    const stream = await openStream(`${dashboard.url}api/stream/instances/${id}`)
    try {
      await waitFor(() => stream.events.some((e) => e.event === 'status'), 'the status', 10_000)
      await dashboard.close()
      await stream.ended
    } finally {
      stream.close()
    }
  })
})

/**
 * The dashboard's HTTP API without a browser: the answers of its action routes — 409 for what the
 * instance's state refuses (an event raised on an instance that ended, terminating a terminated
 * one, suspending one that is not running…), 400 for bad input, 404 for an instance that does not
 * exist.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startDashboard, type Dashboard } from '../../runtime/dashboard/index.ts'
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

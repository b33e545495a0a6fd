/**
 * The web dashboard end to end in a real browser: a hub served by a node running the examples,
 * the dashboard on it, and Debian's chromium driven by playwright-core checking what a person
 * would see — an instance appearing and completing live, its five activities, a failed saga's
 * error, an approval completed by an event raised from the page, an entity's state changing on
 * screen with its scheduled signals, every partition in the partition map with figures from node telemetry samples — and
 * the server's answers to bad input (404, 400, 403) and to a NATS that is down; and the partition
 * map fed by a real node's samples, in this thread and on two worker threads; and the guards
 * against other sites: actions refused from another origin or without the page's header (also from
 * a page of another origin in the browser), a foreign Host refused (DNS rebinding, also in the
 * browser), a host name allowed by the operator answered and its page's buttons working; values of
 * megabytes (an instance's input, output and activity result, an entity's state) shipped and shown
 * as placeholders with their size, the page quick. Screenshots of each page go to
 * .basalt/screenshots/.
 */
import { existsSync, mkdirSync } from 'node:fs'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import path from 'node:path'
import { chromium, type Browser, type Page } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { bankRegistry } from '../../examples/bank/index.ts'
import { Counter, counterRegistry } from '../../examples/counter/index.ts'
import { approval, helloSequence, strictSaga, workflowRegistry } from '../../examples/workflows/index.ts'
import type { NodeStats } from '../../runtime/metrics/stats.ts'
import { zeroCounters } from '../../runtime/metrics/stats.ts'
import { startDashboard, type Dashboard } from '../../runtime/dashboard/index.ts'
import { startNatsServer } from '../../runtime/dev/index.ts'
import { connectTo, deleteHub, jetstream } from '../../runtime/nats/index.ts'
import { Node, type NodeOptions } from '../../runtime/node/index.ts'
import { Client } from '../../runtime/client/index.ts'
import { Counter as FixtureCounter, Log } from '../fixtures/entities.ts'
import { registry as fixtureRegistry } from '../fixtures/threads-registry.ts'
import { helloSequence as fixtureHello, largeRoundTrip, largeText } from '../fixtures/workflows.ts'
import { silentLogger } from '../../runtime/util/index.ts'
import { partitionOf } from '../../actors/ids.ts'
import { repoRoot, spawnTs, useHub, useNatsServer, waitFor } from '../tooling/harness.ts'

const CHROMIUM = '/usr/bin/chromium'
const PARTITIONS = 4
const shots = path.join(repoRoot, '.basalt', 'screenshots')

const nats = useNatsServer()
const stack = useHub(nats, {
  hub: 'dash',
  partitions: PARTITIONS,
  registry: [...counterRegistry, ...bankRegistry, ...workflowRegistry, Log, largeText, largeRoundTrip],
})

describe('dashboard in chromium', () => {
  let dashboard: Dashboard
  let browser: Browser
  let page: Page

  beforeAll(async () => {
    if (!existsSync(CHROMIUM)) {
      throw new Error(`no chromium at ${CHROMIUM}: run 'bash .ci/setup' (it installs Debian's chromium)`)
    }
    mkdirSync(shots, { recursive: true })
    dashboard = await startDashboard({ servers: nats.url, hub: 'dash', port: 0, allowActions: true })
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
        // names that reach this machine, as a DNS name (or a rebinding attacker's) would
        '--host-resolver-rules=MAP dash.test 127.0.0.1, MAP evil.test 127.0.0.1',
      ],
    })
    page = await browser.newPage({ viewport: { width: 1366, height: 800 } })
    page.on('pageerror', (err) => console.error(`page error: ${err.message}`))
  }, 30_000)

  afterAll(async () => {
    await browser?.close()
    await dashboard?.close()
  })

  const open = async (hash: string) => {
    await page.goto(`${dashboard.url}#${hash}`)
  }
  const shot = (name: string) => page.screenshot({ path: path.join(shots, `${name}.png`), fullPage: true })

  it('overview: the partition map lists every partition, with figures from telemetry samples', async () => {
    // synthetic samples a second apart, of a newer owner than the real node (epoch 1000), so that
    // the figures are known exactly: records/s = 40 × (p + 1)
    const sample = (at: number, records: number): NodeStats => ({
      v: 1,
      node: 'synthetic-node',
      hub: 'dash',
      at,
      startedAt: at - 60_000,
      partitions: Array.from({ length: PARTITIONS }, (_, p) => ({
        p,
        epoch: 1000,
        backlog: p,
        lastSnapshotAt: at - 5_000,
        cacheSize: 0,
        counters: { ...zeroCounters(), records: records * (p + 1) },
      })),
      totals: { ...zeroCounters(), steps: records, signals: records * 2 },
      activities: { queued: 0, running: 0, offloaded: 0 },
    })
    await open('/')
    await page.locator('[data-testid=partition-map] tbody tr').first().waitFor()
    const subject = stack.client.hub.names.stats('synthetic-node')
    const now = Date.now()
    stack.client.nc.publish(subject, JSON.stringify(sample(now - 2000, 60)))
    stack.client.nc.publish(subject, JSON.stringify(sample(now - 1000, 100)))
    stack.client.nc.publish(subject, JSON.stringify(sample(now, 140)))
    const rows = page.locator('[data-testid=partition-map] tbody tr')
    await waitFor(async () => (await rows.count()) === PARTITIONS, 'partition map rows', 10_000)
    const partitions = await rows.evaluateAll((trs) => trs.map((tr) => tr.getAttribute('data-partition')))
    expect(partitions).toEqual(['0', '1', '2', '3'])
    // records/s of partition 2: (140 - 100) * 3 per second
    await waitFor(
      async () => (await rows.nth(2).locator('td').nth(4).textContent()) === '120',
      'records/s of partition 2 from two samples: expected 120',
    )
    expect(await rows.nth(0).locator('td').nth(1).textContent()).toBe(stack.node.nodeId)
    // every stream `basalt hub info` lists, the blobs' included
    const streams = await page.locator('[data-testid=streams] tbody td.mono').allTextContents()
    expect(streams.sort()).toEqual([...stack.client.hub.names.streams].sort())
    const overview = (await (await fetch(`${dashboard.url}api/overview`)).json()) as {
      streams: Array<{ stream: string; messages: number | null; bytes: number | null }>
    }
    expect(overview.streams.map((s) => s.stream)).toEqual(stack.client.hub.names.streams)
    expect(overview.streams.find((s) => s.stream === stack.client.hub.names.blobStream)).toMatchObject({
      messages: expect.any(Number) as number,
      bytes: expect.any(Number) as number,
    })
    await shot('overview')
  })

  /**
   * A real node (in this thread, or on two worker threads) publishes its samples: after a workload
   * every row of the partition map has the node as owner, a backlog number and a records/s figure,
   * and some partition shows records/s above 0 while signals flow. With `docs`, hello sequences flow
   * too and it waits for a snapshot of every partition and a few seconds of charts: the screenshot
   * is docs/img/dashboard-overview.png.
   */
  const realOverview = async (hub: string, options: Partial<NodeOptions>, name: string, docs = false) => {
    const node = await Node.start({
      servers: nats.url,
      hub,
      partitions: PARTITIONS,
      logger: silentLogger,
      dashboard: { port: 0 },
      ...options,
    } as NodeOptions)
    const client = await Client.connect({ servers: nats.url, hub })
    try {
      await page.goto(`${node.dashboardUrl!}#/`)
      const rows = page.locator('[data-testid=partition-map] tbody tr')
      await waitFor(async () => (await rows.count()) === PARTITIONS, `${hub}: partition map rows`, 10_000)
      const keys = Array.from({ length: 40 }, (_, i) => `k${i}`)
      const cells = () =>
        rows.evaluateAll((trs) =>
          trs.map((tr) => [...tr.querySelectorAll('td')].map((td) => td.textContent ?? '')),
        )
      let seen: string[][] = []
      const startedAt = Date.now()
      await waitFor(
        async () => {
          await Promise.all(keys.map((k) => client.entity(FixtureCounter, k).signal.add(1)))
          if (docs)
            for (let i = 0; i < 4; i++) void client.start(fixtureHello, ['Lima', 'Oslo']).catch(() => {})
          seen = await cells()
          return (
            seen.every((r) => r[1] === node.nodeId && /^\d+$/.test(r[3]!) && /^[\d.,]+$/.test(r[4]!)) &&
            seen.some((r) => Number(r[4]!.replace(/,/g, '')) > 0) &&
            (!docs || (seen.every((r) => r[5] !== '—') && Date.now() - startedAt > 5000))
          )
        },
        `${hub}: every partition owned by ${node.nodeId} with a backlog and records/s, one above 0`,
        15_000,
      )
      expect(
        seen.map((r) => r[0]),
        JSON.stringify(seen),
      ).toEqual(['0', '1', '2', '3'])
      await shot(name)
    } finally {
      await client.close()
      await node.stop()
    }
  }

  it('overview on a real node: owner, backlog and records/s of every partition from its samples', async () => {
    await realOverview(
      'dash-real',
      { registry: fixtureRegistry, snapshotIntervalMs: 500 },
      'overview-real',
      true,
    )
  }, 30_000)

  it('overview on a real node with two worker threads: the same figures', async () => {
    await realOverview(
      'dash-real-threads',
      { registryModule: path.join(repoRoot, 'test/fixtures/threads-registry.ts'), workers: 2 },
      'overview-real-threads',
    )
  }, 30_000)

  it('instances: a hello-sequence appears and completes live; its history shows five activities', async () => {
    await open('/instances')
    await page.locator('[data-testid=instances]').waitFor()
    const id = await stack.client.start(helloSequence, undefined)
    const row = page.locator(`[data-testid=instances] tr[data-instance="${id}"]`)
    await row.waitFor({ timeout: 10_000 })
    await row.locator('[data-status=Completed]').waitFor({ timeout: 10_000 })
    await shot('instances')
    // filtered by status, name and id prefix: still there; by another status: gone
    await page.getByLabel('status').selectOption('Completed')
    await page.getByLabel('name starts with').fill('helloSeq')
    await page.getByLabel('id starts with').fill(id.slice(0, 8))
    await page.getByRole('button', { name: 'Filter' }).click()
    await waitFor(() => page.url().includes('status=Completed'), 'the filter in the URL')
    await row.waitFor()
    await page.getByLabel('status').selectOption('Failed')
    await page.getByRole('button', { name: 'Filter' }).click()
    await page.getByText('No instances match.').waitFor()
    await open('/instances')
    await row.locator('a').click()
    await page.locator('[data-testid=timeline]').waitFor()
    await waitFor(
      async () => (await page.locator('[data-testid=activity-count]').textContent()) === '5',
      `activity count of ${id}: expected 5`,
    )
    const activities = page.locator('[data-testid=timeline] tr[data-kind=activity][data-outcome=completed]')
    expect(await activities.count()).toBe(5)
    expect(await page.locator('[data-testid=output]').textContent()).toContain('Hello Lima')
    await shot('instance')
  })

  it('a failed saga shows its error', async () => {
    const id = await stack.client.start(strictSaga, 'island of Sark')
    const end = await stack.client.waitForCompletion(id)
    expect(end.status).toBe('Failed')
    await open(`/instance/${id}`)
    await page.locator('[data-testid=error]').waitFor()
    expect(await page.locator('[data-testid=error]').textContent()).toContain('no cars on island of Sark')
    expect(await page.locator('h2 [data-status=Failed]').count()).toBe(1)
    await shot('instance-failed')
  })

  it('values of 3 MB travel as placeholders with their size: small answers and events, a quick page', async () => {
    const text = 'L'.repeat(3_000_000)
    const id = await stack.client.start(largeRoundTrip, { text })
    expect((await stack.client.waitForCompletion(id)).status).toBe('Completed')
    // whole: input {"text":"L…"}, the activity's 3,000,000 L, output { text: 6,000,000 L, made }
    const sizes = {
      input: JSON.stringify({ text }).length,
      result: 3_000_002,
      output: JSON.stringify({ text: text + text, made: 3_000_000 }).length,
    }
    type Placeholder = { $truncated: true; bytes: number; preview: string }
    type Answer = {
      input: Placeholder
      output: Placeholder
      timeline: Array<{ kind: string; data?: Placeholder; result?: Placeholder }>
    }
    const res = await fetch(`${dashboard.url}api/instances/${id}`)
    const body = await res.text()
    expect(res.status, body.slice(0, 300)).toBe(200)
    expect(body.length, `size of the answer for ${id}`).toBeLessThan(200_000)
    const inst = JSON.parse(body) as Answer
    expect(inst.input).toMatchObject({ $truncated: true, bytes: sizes.input })
    expect(inst.input.preview.startsWith('{"text":"LLL')).toBe(true)
    expect(inst.output).toMatchObject({ $truncated: true, bytes: sizes.output })
    expect(inst.timeline.find((r) => r.kind === 'activity')?.result).toMatchObject({ bytes: sizes.result })
    expect(inst.timeline.find((r) => r.kind === 'started')?.data).toMatchObject({ bytes: sizes.input })
    // the event stream of the instance (summaries: status and custom status) is small too
    const status = await firstEvent(`${dashboard.url}api/stream/instances/${id}`)
    expect(status.length, `size of the first status event of ${id}`).toBeLessThan(200_000)
    expect(JSON.parse(status)).toMatchObject({ id, status: 'Completed' })

    await open(`/instance/${id}`)
    const input = page.locator('[data-testid=input]')
    await input.waitFor({ timeout: 10_000 })
    expect(await input.textContent()).toMatch(/^\(3,000,011 bytes, shortened\) \{"text":"L{100}/)
    expect(await page.locator('[data-testid=output]').textContent()).toContain(
      `(${sizes.output.toLocaleString('en-US')} bytes, shortened) {"text":"LLL`,
    )
    const activity = page.locator('[data-testid=timeline] tr[data-kind=activity] td.detail')
    expect(await activity.textContent()).toContain('(3,000,002 bytes, shortened) "LLL')
    expect(await page.getByTestId('shortened-note').textContent()).toContain(`basalt status ${id}`)
    await shot('instance-large')

    // an entity whose state is 3 MB: its answer, its first state event and its page
    const key = 'dash-large'
    await stack.client.entity(Log, key).call.append(text)
    const entity = await fetch(`${dashboard.url}api/entities/Log/${key}`)
    const entityBody = await entity.text()
    expect(entity.status, entityBody.slice(0, 300)).toBe(200)
    expect(entityBody.length, `size of the answer for Log@${key}`).toBeLessThan(200_000)
    expect(JSON.parse(entityBody)).toMatchObject({
      exists: true,
      state: { $truncated: true, bytes: 3_000_004 },
    })
    const state = await firstEvent(`${dashboard.url}api/stream/entities/Log/${key}`)
    expect(state.length, `size of the first state event of Log@${key}`).toBeLessThan(200_000)
    expect(JSON.parse(state)).toMatchObject({ $truncated: true, bytes: 3_000_004 })
    await open(`/entity/Log/${key}`)
    const shownState = page.locator('[data-testid=entity-state]')
    await waitFor(
      async () => (await shownState.textContent())?.startsWith('(3,000,004 bytes, shortened) ["LLL') === true,
      `state of Log@${key} shown shortened, found ${(await shownState.textContent())?.slice(0, 80)}`,
    )
    expect(await page.getByTestId('shortened-note').textContent()).toContain(`basalt entity get Log ${key}`)
    await shot('entity-large')
  })

  it('raising the approval event from the page completes a waiting approval', async () => {
    const id = await stack.client.start(approval, 60_000)
    await open(`/instance/${id}`)
    await page.locator('h2 [data-status=Running]').waitFor()
    await page.getByLabel('event name').fill('approve')
    await page.getByLabel('event data').fill('{"by":"ana"}')
    await page.getByRole('button', { name: 'Raise event' }).click()
    await page.locator('h2 [data-status=Completed]').waitFor({ timeout: 10_000 })
    expect(await page.locator('[data-testid=output]').textContent()).toContain('approved by ana')
    expect(await page.locator('[data-testid=timeline] tr[data-kind=event]').count()).toBe(1)
  })

  it("an entity's state changes on screen after a signal; its scheduled signals are listed", async () => {
    const key = 'dash-counter'
    await stack.client.entity(Counter, key).call.add(5)
    await open('/entities')
    // the types the hub's nodes registered are offered
    await page.locator('a', { hasText: /^Counter$/ }).click()
    await page.locator(`[data-testid=entities] a`, { hasText: key }).click()
    const state = page.locator('[data-testid=entity-state]')
    await waitFor(
      async () => (await state.textContent())?.trim() === '5',
      `state of Counter@${key}: expected 5`,
    )
    await page.locator('[data-testid=no-scheduled]').waitFor({ timeout: 10_000 })
    // a signal scheduled for later shows once the page reads the entity again (on the next change)
    const due = Date.now() + 10 * 60_000
    await stack.client.entity(Counter, key).signalAt(due).add(100)
    await stack.client.entity(Counter, key).signal.add(2)
    await waitFor(
      async () => (await state.textContent())?.trim() === '7',
      `state of Counter@${key} after signal add(2): expected 7, found ${await state.textContent()}`,
    )
    const scheduled = page.locator('[data-testid=scheduled] tbody tr')
    await waitFor(
      async () => (await scheduled.count()) === 1,
      `scheduled signals of Counter@${key} on the page: expected 1 row, found ${await scheduled.count()}`,
    )
    const cells = await scheduled.first().locator('td').allTextContents()
    expect(cells.slice(2), `operation and arguments of the signal due at ${due}`).toEqual(['add', '[100]'])
    expect(cells[1], 'due time shown').not.toBe('—')
    expect(await page.locator('[data-testid=lock]').textContent()).toBe('not locked')
    await shot('entity')
  })

  it('dead letters page lists what the stream holds, with its reason', async () => {
    await open('/dead-letters')
    await page.getByText('No dead letters.').waitFor()
    // the entity page's event stream (and its watch) ended when the browser left the page
    await waitFor(
      () => dashboard.openStreams() === 0,
      `open event streams after leaving the entity page: expected 0, found ${dashboard.openStreams()}`,
    )
    // a mailbox message that does not decode (0xc1 is no msgpack value) goes to the dead letters
    const mailbox = stack.client.hub.names.mailbox(1)
    await jetstream(stack.client.nc).publish(mailbox, new Uint8Array([0xc1]))
    const rows = page.locator('[data-testid=dead-letters] tbody tr')
    await waitFor(async () => {
      if ((await rows.count()) > 0) return true
      await page.getByRole('button', { name: 'Refresh' }).click()
      return false
    }, `a dead letter for the undecodable message on ${mailbox}`)
    expect(await rows.count()).toBe(1)
    const cells = await rows.first().locator('td').allTextContents()
    expect(cells[2]).toBe(stack.client.hub.names.deadLetter(1))
    expect(cells[3]).toBe('1')
    expect(cells[4]).not.toBe('—')
    await shot('dead-letters')
  })

  it('bad input: unknown instance 404 naming it, bad parameter 400 naming it', async () => {
    const missing = await fetch(`${dashboard.url}api/instances/no-such-instance`)
    expect(missing.status).toBe(404)
    expect(((await missing.json()) as { error: string }).error).toContain("'no-such-instance'")
    const bad = await fetch(`${dashboard.url}api/instances?pageSize=lots`)
    expect(bad.status).toBe(400)
    expect(((await bad.json()) as { error: string }).error).toContain("'pageSize'")
    const badStatus = await fetch(`${dashboard.url}api/instances?status=Sleeping`)
    expect(badStatus.status).toBe(400)
    expect(((await badStatus.json()) as { error: string }).error).toContain("'status'")
    await open('/instance/no-such-instance')
    await page.getByText("instance 'no-such-instance' does not exist").waitFor()
    // its event stream says so the same way (not `status` with null data), and stays open: an
    // instance started under the id arrives as `status`, and the page that waited shows it
    const id = `dash-later-${Date.now()}`
    await open(`/instance/${id}`)
    await page.getByText(`instance '${id}' does not exist`).waitFor()
    const events = await eventStream(`${dashboard.url}api/stream/instances/${id}`)
    try {
      expect(events.status).toBe(200)
      expect(await events.next()).toEqual({
        event: 'missing',
        data: { error: `instance '${id}' does not exist` },
      })
      await stack.client.start(approval, 60_000, { instanceId: id })
      expect(await events.next()).toMatchObject({ event: 'status', data: { id, name: 'approval' } })
    } finally {
      await events.close()
    }
    await page
      .locator('h2', { hasText: `Instance ${id}` })
      .locator('[data-status]')
      .waitFor({ timeout: 10_000 })
    await stack.client.terminate(id)
    // an entity type no node registers is not there either (not an entity that does not exist)
    const ghost = await fetch(`${dashboard.url}api/entities/Ghost/x`)
    expect(ghost.status).toBe(404)
    expect(((await ghost.json()) as { error: string }).error).toContain("unknown entity type 'Ghost'")
  })

  it('bad input: a misspelt filter 400 naming it, a body field named as one, a malformed page address', async () => {
    // a misspelt filter would otherwise list everything, as if none were given
    for (const url of [
      'api/instances?stauts=Failed',
      'api/entities?type=Counter&prefx=c',
      'api/dead-letters?lmit=5',
    ]) {
      const res = await fetch(`${dashboard.url}${url}`)
      const body = (await res.json()) as { error: string }
      expect(res.status, `${url}: ${JSON.stringify(body)}`).toBe(400)
      expect(body.error).toMatch(/^bad query parameter '(stauts|prefx|lmit)': unknown here \(known: /)
    }
    // the event name of a raise is in the JSON body, not in the query
    const id = await stack.client.start(approval, 60_000)
    const raise = await fetch(`${dashboard.url}api/instances/${id}/raise`, {
      method: 'POST',
      headers: { 'x-basalt-dashboard': '1', 'content-type': 'application/json' },
      body: '{"data":1}',
    })
    expect(raise.status).toBe(400)
    expect(((await raise.json()) as { error: string }).error).toBe(
      "bad body field 'name': give the event name",
    )
    await stack.client.terminate(id)
    // an address that is no valid percent-encoding shows its page, not the last one shown
    await open(`/instance/${id}`)
    await page.locator('h2', { hasText: `Instance ${id}` }).waitFor()
    const errors: string[] = []
    const onError = (err: Error) => errors.push(err.message)
    page.on('pageerror', onError)
    try {
      await open('/instance/%E0%A4%A')
      await page.getByText("instance '%E0%A4%A' does not exist").waitFor({ timeout: 5_000 })
    } finally {
      page.off('pageerror', onError)
    }
    expect(errors, 'errors on the page').toEqual([])
  })

  it('shows an entity and an instance whose key and id are long, as Basalt allows (1024 bytes)', async () => {
    const key = `k-${'é'.repeat(500)}` // 1,002 bytes, 3,006 characters percent-encoded
    await stack.client.entity(Counter, key).signal.add(3)
    const entity = await fetch(`${dashboard.url}api/entities/Counter/${encodeURIComponent(key)}`)
    const body = (await entity.json()) as { key: string; state: unknown }
    expect(entity.status, JSON.stringify(body).slice(0, 300)).toBe(200)
    expect(body).toMatchObject({ key, state: 3 })
    const id = `i-${'x'.repeat(1000)}`
    await stack.client.start(approval, 60_000, { instanceId: id })
    const instance = await fetch(`${dashboard.url}api/instances/${id}`)
    expect(instance.status, (await instance.clone().text()).slice(0, 300)).toBe(200)
    expect(((await instance.json()) as { id: string }).id).toBe(id)
    const events = await eventStream(`${dashboard.url}api/stream/instances/${id}`)
    try {
      expect(events.status).toBe(200)
      expect(await events.next()).toMatchObject({ event: 'status', data: { id } })
    } finally {
      await events.close()
    }
    const terminate = await fetch(`${dashboard.url}api/instances/${id}/terminate`, {
      method: 'POST',
      headers: { 'x-basalt-dashboard': '1' },
    })
    expect(terminate.status, await terminate.text()).toBe(200)
    // what the router refuses before any route answers as the routes do, with `error` saying what
    const badUrl = await fetch(`${dashboard.url}api/instances/%ff`)
    expect(badUrl.status).toBe(400)
    expect(((await badUrl.json()) as { error: string }).error).toBe(
      "'/api/instances/%ff' is not a valid url component",
    )
    const noRoute = await fetch(`${dashboard.url}api/nothing-here`)
    expect(noRoute.status).toBe(404)
    expect(((await noRoute.json()) as { error: string }).error).toBe('no route GET /api/nothing-here')
  })

  it('lists the registry names by kind, the wire features of node versions apart', async () => {
    type Types = { entities: string[]; orchestrations: string[]; features: string[] }
    let types: Types | undefined
    await waitFor(async () => {
      types = (await (await fetch(`${dashboard.url}api/types`)).json()) as Types
      return types.features.length > 0
    }, 'the hub remembers the names of its node')
    expect(types!.entities).toContain('Counter')
    expect(types!.features).toEqual(['exec-seqs', 'lock-ops', 'packed-history', 'release-ops'])
    expect([...types!.entities, ...types!.orchestrations].filter((n) => n.includes('lock-ops'))).toEqual([])
  })

  it('a read-only dashboard refuses actions with 403', async () => {
    const readOnly = await startDashboard({ servers: nats.url, hub: 'dash', port: 0 })
    try {
      const id = await stack.client.start(approval, 60_000)
      const res = await fetch(`${readOnly.url}api/instances/${id}/terminate`, {
        method: 'POST',
        headers: { 'x-basalt-dashboard': '1' },
      })
      expect(res.status).toBe(403)
      expect(((await res.json()) as { error: string }).error).toContain('--allow-actions')
      expect((await stack.client.getStatus(id))?.status).toBe('Running')
      await stack.client.terminate(id)
    } finally {
      await readOnly.close()
    }
  })

  /** Waits until the instance has the status (through the client, not the page). */
  const statusOf = (id: string, status: string) =>
    waitFor(async () => (await stack.client.getStatus(id))?.status === status, `${id}: status ${status}`)

  it('actions are refused from another origin or without the page header; the instance runs on', async () => {
    const id = await stack.client.start(approval, 60_000)
    await statusOf(id, 'Running')
    const terminate = `${dashboard.url}api/instances/${id}/terminate`
    // what fetch(url, { method: 'POST', mode: 'no-cors', body: 'x' }) on any web page sends
    const noCors = await request(terminate, {
      method: 'POST',
      headers: { origin: 'http://evil.example', 'content-type': 'text/plain' },
      body: 'x',
    })
    expect(noCors.status, noCors.body).toBe(403)
    expect(errorOf(noCors)).toContain("origin 'http://evil.example'")
    // another origin with the header and JSON (what a preflight would have been asked for)
    for (const action of ['terminate', 'purge', 'suspend', 'raise']) {
      const foreign = await request(`${dashboard.url}api/instances/${id}/${action}`, {
        method: 'POST',
        headers: {
          origin: 'http://evil.example',
          'x-basalt-dashboard': '1',
          'content-type': 'application/json',
        },
        body: '{"name":"approve"}',
      })
      expect(foreign.status, `${action}: ${foreign.body}`).toBe(403)
    }
    // no header (and no Origin, as from a script or a browser that leaves it out): refused
    const noHeader = await request(terminate, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{}',
    })
    expect(noHeader.status, noHeader.body).toBe(403)
    expect(errorOf(noHeader)).toContain("missing header 'X-Basalt-Dashboard'")
    // the CORS preflight is not approved: no Access-Control-Allow-* header comes back
    const preflight = await request(terminate, {
      method: 'OPTIONS',
      headers: {
        origin: 'http://evil.example',
        'access-control-request-method': 'POST',
        'access-control-request-headers': 'x-basalt-dashboard',
      },
    })
    expect(preflight.status).toBe(403)
    expect(Object.keys(preflight.headers).filter((h) => h.startsWith('access-control-'))).toEqual([])
    expect((await stack.client.getStatus(id))?.status).toBe('Running')
    // the page's own request (its origin, the header) is taken
    const own = await request(terminate, {
      method: 'POST',
      headers: {
        origin: dashboard.url.slice(0, -1),
        'x-basalt-dashboard': '1',
        'content-type': 'application/json',
      },
      body: '{"reason":"own page"}',
    })
    expect(own.status, own.body).toBe(200)
    await statusOf(id, 'Terminated')
    // what the instance's state refuses conflicts with it (409), a purged one is gone (404)
    const pageHeaders = {
      origin: dashboard.url.slice(0, -1),
      'x-basalt-dashboard': '1',
      'content-type': 'application/json',
    }
    const again = await request(terminate, { method: 'POST', headers: pageHeaders, body: '{}' })
    expect(again.status, again.body).toBe(409)
    expect(again.body).toContain('is Terminated')
    const purge = terminate.replace(/terminate$/, 'purge')
    expect((await request(purge, { method: 'POST', headers: pageHeaders, body: '{}' })).status).toBe(200)
    const gone = await request(purge, { method: 'POST', headers: pageHeaders, body: '{}' })
    expect(gone.status, gone.body).toBe(404)
  })

  it('in the browser, a page of another origin cannot take an action', async () => {
    const id = await stack.client.start(approval, 60_000)
    await statusOf(id, 'Running')
    const elsewhere = http.createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/html' }).end('<h1>another site</h1>')
    })
    await new Promise<void>((resolve) => elsewhere.listen(0, '127.0.0.1', resolve))
    try {
      await page.goto(`http://localhost:${(elsewhere.address() as AddressInfo).port}/`)
      const outcome = await page.evaluate(async (url) => {
        const results: string[] = []
        // a simple request goes out without a preflight (its answer unreadable): the server refuses it
        await fetch(`${url}/terminate`, { method: 'POST', mode: 'no-cors', body: 'x' }).then(
          () => results.push('sent'),
          () => results.push('blocked'),
        )
        // with the page's header the browser asks first; the server does not approve: never sent
        await fetch(`${url}/terminate`, {
          method: 'POST',
          headers: { 'x-basalt-dashboard': '1', 'content-type': 'application/json' },
          body: '{}',
        }).then(
          () => results.push('sent'),
          () => results.push('blocked'),
        )
        return results
      }, `${dashboard.url}api/instances/${id}`)
      expect(outcome).toEqual(['sent', 'blocked'])
      expect((await stack.client.getStatus(id))?.status).toBe('Running')
    } finally {
      elsewhere.close()
      await stack.client.terminate(id)
    }
  })

  it('a foreign Host (DNS rebinding) is refused: the page, its files, the API and the event streams', async () => {
    const port = dashboard.port
    for (const p of [
      '',
      'ui/app.js',
      'api/config',
      'api/instances',
      'api/stream/stats',
      'api/stream/instances',
    ]) {
      const res = await request(`${dashboard.url}${p}`, { headers: { host: `attacker.example:${port}` } })
      expect(res.status, `/${p}: ${res.body}`).toBe(403)
      expect(errorOf(res)).toContain(`host 'attacker.example:${port}' is not allowed`)
      expect(errorOf(res)).toContain('--allow-host attacker.example')
    }
    const action = await request(`${dashboard.url}api/instances/x/terminate`, {
      method: 'POST',
      headers: {
        host: `attacker.example:${port}`,
        origin: `http://attacker.example:${port}`,
        'x-basalt-dashboard': '1',
      },
    })
    expect(action.status).toBe(403)
    expect(errorOf(action)).toContain("host 'attacker.example")
    // its own names, on any port (an SSH tunnel): answered
    for (const host of [`localhost:${port}`, `127.0.0.1:${port}`, `[::1]:${port}`, 'localhost:9999']) {
      expect((await request(`${dashboard.url}api/config`, { headers: { host } })).status, host).toBe(200)
    }
    // a browser sent to the dashboard by a name that is not its own (as after DNS rebinding)
    await page.goto(`http://evil.test:${port}/`)
    expect(await page.locator('body').textContent()).toContain("host 'evil.test")
  })

  it('a host name allowed with allowedHosts is answered, and the buttons of its page work', async () => {
    const named = await startDashboard({
      servers: nats.url,
      hub: 'dash',
      port: 0,
      allowActions: true,
      allowedHosts: ['dash.test'],
    })
    try {
      const host = `dash.test:${named.port}`
      expect((await request(named.url, { headers: { host } })).status).toBe(200)
      expect(errorOf(await request(`${named.url}api/config`, { headers: { host: 'other.test' } }))).toContain(
        'localhost, 127.0.0.1, [::1], dash.test',
      )
      // in the browser, by that name: Terminate, then Purge, from the page's buttons
      const id = await stack.client.start(approval, 60_000)
      await statusOf(id, 'Running')
      await page.goto(`http://${host}/#/instance/${id}`)
      await page.locator('h2 [data-status=Running]').waitFor()
      await page.getByRole('button', { name: 'Terminate' }).click()
      await page.locator('h2 [data-status=Terminated]').waitFor({ timeout: 10_000 })
      expect((await stack.client.getStatus(id))?.status).toBe('Terminated')
      await page.getByRole('button', { name: 'Purge' }).click()
      await page.getByTestId('action-result').filter({ hasText: 'purge: done' }).waitFor()
      await waitFor(async () => (await stack.client.getStatus(id)) === undefined, `${id} purged`)
    } finally {
      await named.close()
    }
  })

  it('NATS down: the page says so and the server keeps answering', async () => {
    const down = await startDashboard({ servers: 'nats://127.0.0.1:1', hub: 'dash', port: 0 })
    try {
      const res = await fetch(`${down.url}api/overview`)
      expect(res.status).toBe(503)
      expect(((await res.json()) as { error: string }).error).toMatch(/unreachable/i)
      await page.goto(`${down.url}#/`)
      await page
        .getByRole('alert')
        .filter({ hasText: /unreachable/i })
        .waitFor()
      expect((await fetch(`${down.url}api/config`)).status).toBe(200)
    } finally {
      await down.close()
    }
  })

  it('NATS lost after start: the page says so, the server keeps answering', async () => {
    const server = await startNatsServer()
    const node = await Node.start({
      servers: server.url,
      hub: 'lost',
      partitions: 1,
      registry: counterRegistry,
      logger: silentLogger,
    })
    await node.stop()
    const lost = await startDashboard({ servers: server.url, hub: 'lost', port: 0 })
    try {
      expect((await fetch(`${lost.url}api/overview`)).status, 'while NATS is up').toBe(200)
      await server.stop('SIGKILL')
      const res = await fetch(`${lost.url}api/overview`)
      expect(res.status, await res.clone().text()).toBe(503)
      expect(((await res.json()) as { error: string }).error).toMatch(/NATS/)
      await page.goto(`${lost.url}#/`)
      await page.getByRole('alert').filter({ hasText: /NATS/ }).waitFor()
      expect((await fetch(`${lost.url}api/config`)).status).toBe(200)
    } finally {
      await lost.close()
      await server.dispose()
    }
  }, 30_000)

  it('hub deleted while shown: every page says so by name, the server keeps answering', async () => {
    const first = await Node.start({
      servers: nats.url,
      hub: 'dash-deleted',
      partitions: 1,
      registry: [...counterRegistry, ...workflowRegistry],
      logger: silentLogger,
    })
    const shown = await startDashboard({
      servers: nats.url,
      hub: 'dash-deleted',
      port: 0,
      allowActions: true,
    })
    try {
      expect((await fetch(`${shown.url}api/overview`)).status, 'before').toBe(200)
      // an action from the page: its client now waits, in its reads, for its place in the mailbox
      const client = await Client.connect({ servers: nats.url, hub: 'dash-deleted' })
      try {
        await client.start(approval, 60_000, { instanceId: 'dash-deleted-old' })
      } finally {
        await client.close()
      }
      const terminate = await fetch(`${shown.url}api/instances/dash-deleted-old/terminate`, {
        method: 'POST',
        headers: { 'x-basalt-dashboard': '1' },
      })
      expect(terminate.status, await terminate.text()).toBe(200)
      await first.stop()
      const nc = await connectTo(nats.url, 'dash-delete')
      await deleteHub(nc, 'dash-deleted')
      await nc.close()
      // (before: "stream not found" with 500 on the overview, types and dead letters)
      for (const api of [
        'overview',
        'types',
        'dead-letters',
        'entities?type=Counter',
        'entities/Counter/a',
      ]) {
        const res = await fetch(`${shown.url}api/${api}`)
        expect(res.status, api).toBe(503)
        expect(((await res.json()) as { error: string }).error, api).toBe(
          "hub 'dash-deleted' was deleted: start a node on it to create it again",
        )
      }
      await page.goto(`${shown.url}#/`)
      await page
        .getByRole('alert')
        .filter({ hasText: /was deleted/ })
        .waitFor()
      expect((await fetch(`${shown.url}api/config`)).status).toBe(200)
      // created again, with more partitions: the dashboard shows the new hub whole (it kept its
      // client of the old one: reads waited for positions of the old mailboxes and failed, and
      // listings asked the old hub's one partition only)
      const again = await Node.start({
        servers: nats.url,
        hub: 'dash-deleted',
        partitions: 4,
        registry: [...counterRegistry, ...workflowRegistry],
        logger: silentLogger,
      })
      try {
        const keys = new Map<number, string>()
        for (let i = 0; keys.size < 4; i++) keys.set(partitionOf(`a${i}`, 4), `a${i}`)
        const ids = [...keys.values()].map((k) => `dash-deleted-${k}`)
        const client = await Client.connect({ servers: nats.url, hub: 'dash-deleted' })
        try {
          for (const key of keys.values()) await client.entity(Counter, key).signal.add(4)
          for (const id of ids) await client.start(approval, 60_000, { instanceId: id })
        } finally {
          await client.close()
        }
        let last = ''
        await waitFor(
          async () => {
            const res = await fetch(`${shown.url}api/instances`)
            last = `${res.status} ${await res.text()}`
            // within a check of the hub record (2 s) the dashboard's client is one of the new hub
            return res.status === 200 && ids.every((id) => last.includes(`"${id}"`))
          },
          'the instance listing of the hub created again',
          15_000,
        ).catch((err: Error) => Promise.reject(new Error(`${err.message}; last answer: ${last}`)))
        const listed = JSON.parse(last.slice(4)) as { instances: Array<{ id: string }> }
        expect(listed.instances.map((i) => i.id).sort()).toEqual([...ids].sort())
        for (const key of keys.values()) {
          const res = await fetch(`${shown.url}api/entities/Counter/${key}`)
          const body = (await res.json()) as unknown
          expect(res.status, JSON.stringify(body)).toBe(200)
          expect(body, key).toMatchObject({ exists: true, state: 4 })
        }
        expect((await fetch(`${shown.url}api/overview`)).status).toBe(200)
      } finally {
        await again.stop()
      }
    } finally {
      await shown.close()
      await first.stop()
    }
  }, 60_000)

  it('basalt dashboard serves the page and its assets, read-only by default', async () => {
    const cli = spawnTs('runtime/cli/basalt.mjs', [
      'dashboard',
      '--servers',
      nats.url,
      '--hub',
      'dash',
      '--port',
      '0',
      '--allow-host',
      'dash.test',
    ])
    try {
      const line = await cli.waitForLine(/^dashboard http:\/\/127\.0\.0\.1:\d+\/ /, 20_000)
      const url = line.split(' ')[1]!
      expect(line).toContain('read-only')
      const index = await fetch(url)
      expect(index.status).toBe(200)
      for (const asset of [
        'ui/app.js',
        'ui/style.css',
        'vendor/preact-htm.js',
        'vendor/uplot.js',
        'vendor/uplot.css',
      ]) {
        expect((await fetch(`${url}${asset}`)).status, asset).toBe(200)
      }
      expect((await fetch(`${url}api/instances/x/purge`, { method: 'POST' })).status).toBe(403)
      // --allow-host: that name is answered, another is refused with the flag to allow it
      const port = new URL(url).port
      expect((await request(`${url}api/config`, { headers: { host: `dash.test:${port}` } })).status).toBe(200)
      const other = await request(`${url}api/config`, { headers: { host: `other.test:${port}` } })
      expect(other.status).toBe(403)
      expect(errorOf(other)).toContain('--allow-host other.test')
      cli.kill('SIGTERM')
      expect(await cli.exited, cli.lines.join('\n')).toBe(0)
    } finally {
      cli.kill('SIGKILL')
    }
  }, 30_000)

  it('Node.start({ dashboard }) serves the dashboard until the node stops', async () => {
    const node = await Node.start({
      servers: nats.url,
      hub: 'dash-node',
      partitions: 2,
      registry: counterRegistry,
      logger: silentLogger,
      dashboard: { port: 0 },
    })
    const url = node.dashboardUrl!
    try {
      expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/$/)
      const overview = (await (await fetch(`${url}api/overview`)).json()) as { hub: { partitions: number } }
      expect(overview.hub.partitions).toBe(2)
    } finally {
      await node.stop()
    }
    await expect(fetch(`${url}api/config`), 'the dashboard stopped with the node').rejects.toThrow()
  })
})

interface Answer {
  status: number
  headers: http.IncomingHttpHeaders
  body: string
}

/** One HTTP request with headers fetch would not send as given (Host, Origin); its answer. */
function request(
  url: string,
  options: { method?: string; headers?: Record<string, string>; body?: string } = {},
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      url,
      { method: options.method ?? 'GET', headers: options.headers ?? {} },
      (res) => {
        let body = ''
        res.setEncoding('utf8')
        res.on('data', (chunk: string) => (body += chunk))
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }))
      },
    )
    req.on('error', reject)
    req.end(options.body)
  })
}

/** The data of the first event of a server-sent-event stream; the stream is closed then. */
async function firstEvent(url: string): Promise<string> {
  const abort = new AbortController()
  const res = await fetch(url, { signal: abort.signal })
  const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader()
  let text = ''
  try {
    for (;;) {
      const event = /^event: .*\ndata: (.*)\n\n/m.exec(text)
      if (event !== null) return event[1]!
      const { value, done } = await reader.read()
      if (done) throw new Error(`${url}: the stream ended before an event (read ${text.slice(0, 200)})`)
      text += value
    }
  } finally {
    abort.abort()
    await reader.cancel().catch(() => {})
  }
}

/** A server-sent-event stream being read: its HTTP status and its events one by one. */
async function eventStream(url: string): Promise<{
  status: number
  next(): Promise<{ event: string; data: unknown }>
  close(): Promise<void>
}> {
  const abort = new AbortController()
  const res = await fetch(url, { signal: abort.signal })
  const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader()
  let text = ''
  return {
    status: res.status,
    async next() {
      for (;;) {
        const event = /^event: (.*)\ndata: (.*)\n\n/m.exec(text)
        if (event !== null) {
          text = text.slice(event.index + event[0].length)
          return { event: event[1]!, data: JSON.parse(event[2]!) as unknown }
        }
        const { value, done } = await reader.read()
        if (done) throw new Error(`${url}: the stream ended before an event (read ${text.slice(0, 200)})`)
        text += value
      }
    },
    async close() {
      abort.abort()
      await reader.cancel().catch(() => {})
    },
  }
}

/** The `error` of a JSON answer. */
function errorOf(answer: Answer): string {
  return (JSON.parse(answer.body) as { error: string }).error
}

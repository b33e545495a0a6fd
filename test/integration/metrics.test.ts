/**
 * Prometheus metrics and the node telemetry sample (issue 11, section 2): a node serves
 * `GET /metrics`; around a workload of signals, hello-sequence orchestrations and one failing
 * orchestration, the counters move by exactly the workload's amounts, the histograms fill, and the
 * sample on `H.stats.<node>` carries the same totals.
 */
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Registry } from 'prom-client'
import { Client, HubNotFoundError, Node, silentLogger } from '../../runtime/index.ts'
import { closeConnection, connectTo } from '../../runtime/nats/connect.ts'
import { HubNames, openHub } from '../../runtime/nats/hub.ts'
import type { NodeStats } from '../../runtime/metrics/index.ts'
import type { NatsConnection } from '../../runtime/nats/index.ts'
import { Counter } from '../fixtures/entities.ts'
import { boom, failing, helloSequence, sayHello } from '../fixtures/workflows.ts'
import { freePort } from '../../runtime/dev/nats-server.ts'
import { spawnTs, useNatsServer, waitFor } from '../tooling/harness.ts'
import { scrape, sum } from '../tooling/scrape.ts'

describe('metrics of a node', () => {
  const hub = 'metrics'
  const nats = useNatsServer()
  let node: Node
  let client: Client
  let listener: NatsConnection
  const samples: NodeStats[] = []

  beforeAll(async () => {
    node = await Node.start({
      servers: nats.url,
      hub,
      registry: [Counter, helloSequence, sayHello, failing, boom],
      partitions: 2,
      logger: silentLogger,
      snapshotIntervalMs: 200,
      metrics: {},
    })
    client = await Client.connect({ servers: nats.url, hub })
    listener = await connectTo({ servers: nats.url }, 'stats-listener')
    const sub = listener.subscribe(new HubNames(hub).stats(node.nodeId))
    void (async () => {
      for await (const m of sub) samples.push(JSON.parse(new TextDecoder().decode(m.data)) as NodeStats)
    })()
  })
  afterAll(async () => {
    await client?.close()
    await node?.stop()
    if (listener !== undefined) await closeConnection(listener)
  })

  it('serves GET /metrics on 127.0.0.1 and answers 404 elsewhere', async () => {
    const url = node.metricsUrl!
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/metrics$/)
    const other = await fetch(url.replace('/metrics', '/other'))
    expect(other.status).toBe(404)
    const s = await scrape(url)
    // every series is labelled with its hub
    expect(s.get('basalt_partitions_owned{hub="metrics"}'), 'partitions owned').toBe(2)
    expect(s.get('basalt_partitions_gained_total{hub="metrics"}'), 'partitions gained').toBe(2)
    expect(
      [...s.keys()].filter((series) => !series.includes('{hub="metrics"')),
      'series without hub',
    ).toEqual([])
  })

  it('moves the counters by exactly the workload, fills the histograms, and publishes the same totals', async () => {
    const url = node.metricsUrl!
    const before = await scrape(url)
    const signals = 25
    const keys = ['a', 'b', 'c', 'd', 'e']
    for (let i = 0; i < signals; i++) await client.entity(Counter, keys[i % keys.length]!).signal.add(1)
    for (const key of keys) {
      expect(await client.entity(Counter, key).call.get(), `counter ${key}`).toBe(signals / keys.length)
    }
    const hellos = 4
    const ids = await Promise.all(
      Array.from({ length: hellos }, (_, i) => client.start(helloSequence, [`A${i}`, `B${i}`])),
    )
    for (const id of ids)
      expect((await client.waitForCompletion(id)).status, `instance ${id}`).toBe('Completed')
    const failed = await client.start(failing, undefined)
    expect((await client.waitForCompletion(failed)).status, `instance ${failed}`).toBe('Failed')

    const after = await scrape(url)
    const moved = (name: string, ...labels: string[]) =>
      sum(after, name, ...labels) - sum(before, name, ...labels)
    const counter = ['type="Counter"']
    expect(moved('basalt_entity_operations_total', ...counter, 'operation="add"'), 'Counter.add ops').toBe(
      signals,
    )
    expect(moved('basalt_entity_operations_total', ...counter, 'operation="get"'), 'Counter.get ops').toBe(
      keys.length,
    )
    const hello = 'name="helloSequence"'
    expect(moved('basalt_orchestrations_started_total', hello), 'helloSequence started').toBe(hellos)
    expect(moved('basalt_orchestrations_completed_total', hello), 'helloSequence completed').toBe(hellos)
    expect(moved('basalt_orchestrations_failed_total', hello), 'helloSequence failed').toBe(0)
    const fail = 'name="failing"'
    expect(moved('basalt_orchestrations_started_total', fail), 'failing started').toBe(1)
    expect(moved('basalt_orchestrations_completed_total', fail), 'failing completed').toBe(0)
    expect(moved('basalt_orchestrations_failed_total', fail), 'failing failed').toBe(1)
    // one step to start, one per activity result: 3 per hello-sequence of two cities, 2 for failing
    expect(moved('basalt_orchestration_step_duration_seconds_count', hello), 'helloSequence steps').toBe(
      3 * hellos,
    )
    expect(moved('basalt_orchestration_step_duration_seconds_count', fail), 'failing steps').toBe(2)
    const records = moved('basalt_records_total')
    expect(records, 'records committed').toBeGreaterThan(0)
    expect(moved('basalt_commit_latency_seconds_count'), 'commit latencies observed').toBe(records)
    expect(moved('basalt_record_messages_count'), 'records sealed').toBeGreaterThanOrEqual(records)
    expect(moved('basalt_record_messages_sum'), 'messages in records').toBe(moved('basalt_messages_total'))
    expect(moved('basalt_dead_letters_total'), 'dead letters').toBe(0)
    expect(moved('basalt_dedup_drops_total'), 'duplicates dropped').toBe(0)
    expect(sum(after, 'basalt_cache_misses_total'), 'entity states read').toBeGreaterThanOrEqual(keys.length)
    expect(moved('basalt_cache_hits_total'), 'operations on cached states').toBeGreaterThan(0)
    expect(sum(after, 'basalt_cache_entities'), 'entities in memory').toBe(keys.length)
    await waitFor(
      async () => sum(await scrape(url), 'basalt_snapshot_duration_seconds_count') > 0,
      'a snapshot duration observed after the workload (snapshotIntervalMs 200)',
    )
    await waitFor(
      async () => sum(await scrape(url), 'basalt_snapshot_lag_records') === 0,
      'snapshot lag back to 0 records once the snapshots caught up',
    )

    // the telemetry sample says the same (cumulative since the node started)
    const want = {
      started: sum(after, 'basalt_orchestrations_started_total'),
      completed: sum(after, 'basalt_orchestrations_completed_total'),
      failed: sum(after, 'basalt_orchestrations_failed_total'),
      entityOps: sum(after, 'basalt_entity_operations_total'),
    }
    expect(want, 'workload totals since the node started').toEqual({
      started: hellos + 1,
      completed: hellos,
      failed: 1,
      entityOps: signals + keys.length,
    })
    const from = samples.length
    await waitFor(
      () => samples.slice(from).some((s) => s.totals.started === want.started && s.totals.failed === 1),
      `a sample on ${new HubNames(hub).stats(node.nodeId)} with ${want.started} started, 1 failed`,
    )
    const sample = samples.slice(from).find((s) => s.totals.started === want.started)!
    expect(sample.v).toBe(1)
    expect(sample.node).toBe(node.nodeId)
    expect(sample.hub).toBe(hub)
    expect(sample.totals).toMatchObject({ ...want, signals, steps: 3 * hellos + 2 })
    expect(sample.totals.records, 'records in the sample').toBeGreaterThanOrEqual(
      sum(after, 'basalt_records_total'),
    )
    expect(sample.partitions.map((p) => p.p)).toEqual([0, 1])
    expect(
      sample.partitions.reduce((n, p) => n + p.cacheSize, 0),
      'cache size in the sample',
    ).toBe(keys.length)
    expect(sample.partitions.every((p) => p.epoch > 0 && p.backlog === 0)).toBe(true)
    expect(sample.activities).toEqual({ queued: 0, running: 0, offloaded: 0 })
  })

  it("merges into the user's own registry", async () => {
    const mine = new Registry()
    const merged = Registry.merge([mine, node.metricsRegistry])
    const text = await merged.metrics()
    // (the hub label survives the merge: it is in the values, not the registry's default labels)
    expect(text).toMatch(/^basalt_records_total\{hub="metrics",partition="0"\} \d+$/m)
    expect(text).toMatch(/^# TYPE basalt_commit_latency_seconds histogram$/m)
  })
})

describe('metrics: false', () => {
  const nats = useNatsServer()

  it('records nothing, serves nothing and publishes no telemetry sample, and the node works as ever', async () => {
    const hub = 'metrics-off'
    const node = await Node.start({
      servers: nats.url,
      hub,
      registry: [Counter],
      partitions: 2,
      logger: silentLogger,
      metrics: false,
    })
    const listener = await connectTo({ servers: nats.url }, 'stats-listener-off')
    const client = await Client.connect({ servers: nats.url, hub })
    try {
      let heard = 0
      const sub = listener.subscribe(new HubNames(hub).stats('*'))
      void (async () => {
        for await (const _ of sub) heard++
      })()
      for (let i = 0; i < 10; i++) await client.entity(Counter, `off-${i % 3}`).call.add(1)
      expect((await client.readEntityState(Counter, 'off-0')).state).toBe(4)
      expect(node.metricsUrl).toBeUndefined()
      const text = await node.metricsRegistry.metrics()
      expect(text).not.toMatch(/^basalt_entity_operations_total\{.*\} [1-9]/m)
      // the sample would go out at once and every second: none in 1.5 s
      await new Promise((resolve) => setTimeout(resolve, 1500))
      expect(heard, 'telemetry samples heard').toBe(0)
    } finally {
      await client.close()
      await node.stop()
      await closeConnection(listener)
    }
  })
})

describe('basalt node --metrics-port', () => {
  const nats = useNatsServer()

  it('serves GET /metrics on the port and prints where', { timeout: 30_000 }, async () => {
    const hub = 'cli-metrics'
    const port = await freePort()
    const child = spawnTs('runtime/cli/basalt.mjs', [
      'node',
      '--servers',
      nats.url,
      '--hub',
      hub,
      '--load',
      'test/fixtures/registry.ts',
      '--node-id',
      'metrics-node-1',
      '--partitions',
      '2',
      '--metrics-port',
      String(port),
    ])
    try {
      await child.waitForLine(new RegExp(`^metrics at http://127\\.0\\.0\\.1:${port}/metrics$`), 20_000)
      const client = await Client.connect({ servers: nats.url, hub })
      try {
        await client.entity(Counter, 'm').signal.add(2)
        expect(await client.entity(Counter, 'm').call.get()).toBe(2)
      } finally {
        await client.close()
      }
      const s = await scrape(`http://127.0.0.1:${port}/metrics`)
      expect(sum(s, 'basalt_entity_operations_total', 'type="Counter"'), 'Counter ops of the CLI node').toBe(
        2,
      )
      expect(sum(s, 'basalt_partitions_owned')).toBe(2)
    } finally {
      child.kill('SIGTERM')
    }
    expect(await child.exited, child.lines.join('\n')).toBe(0)
  })

  it('--metrics-port 0 serves on a free port and prints which', { timeout: 30_000 }, async () => {
    const child = spawnTs('runtime/cli/basalt.mjs', [
      ...['node', '--servers', nats.url, '--hub', 'cli-metrics-any', '--load', 'test/fixtures/registry.ts'],
      ...['--partitions', '1', '--workers', '1', '--metrics-port', '0'],
    ])
    try {
      // refused before ('expected an integer from 1 to 65535'), though the in-use message offers 0
      const line = await child.waitForLine(/^metrics at /, 20_000)
      const port = Number(/^metrics at http:\/\/127\.0\.0\.1:(\d+)\/metrics$/.exec(line)?.[1])
      expect(port, line).toBeGreaterThan(0)
      expect(sum(await scrape(`http://127.0.0.1:${port}/metrics`), 'basalt_partitions_owned')).toBe(1)
    } finally {
      child.kill('SIGTERM')
    }
    expect(await child.exited, child.lines.join('\n')).toBe(0)
  })

  it(
    'refuses a --metrics-host that is no address of this machine, naming the flag',
    { timeout: 30_000 },
    async () => {
      const child = spawnTs('runtime/cli/basalt.mjs', [
        ...[
          'node',
          '--servers',
          nats.url,
          '--hub',
          'cli-metrics-host',
          '--load',
          'test/fixtures/registry.ts',
        ],
        // 192.0.2.1: TEST-NET-1, documentation only (was the bare 'listen EADDRNOTAVAIL …')
        ...['--metrics-port', '0', '--metrics-host', '192.0.2.1'],
      ])
      expect(await child.exited, child.lines.join('\n')).toBe(1)
      expect(child.lines).toContain(
        'basalt node: metrics host 192.0.2.1 is not an address of this machine: give one of its ' +
          'addresses (--metrics-host, metrics.host), e.g. 127.0.0.1, or 0.0.0.0 for every interface',
      )
    },
  )

  it(
    'refuses a taken port, naming it, before it creates anything on the hub',
    { timeout: 30_000 },
    async () => {
      const hub = 'cli-metrics-taken'
      const taken = http.createServer()
      await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve))
      const port = (taken.address() as AddressInfo).port
      try {
        const child = spawnTs('runtime/cli/basalt.mjs', [
          ...['node', '--servers', nats.url, '--hub', hub, '--load', 'test/fixtures/registry.ts'],
          ...['--metrics-port', String(port)],
        ])
        expect(await child.exited, child.lines.join('\n')).toBe(1)
        expect(child.lines).toContain(
          `basalt node: metrics port ${port} on 127.0.0.1 is in use (another process listens there): ` +
            'give another port (--metrics-port, metrics.port), or 0 for any free one',
        )
      } finally {
        taken.close()
      }
      // nothing was created: a corrected start may still choose the partition count
      const nc = await connectTo({ servers: nats.url })
      try {
        await expect(openHub(nc, hub)).rejects.toThrow(HubNotFoundError)
      } finally {
        await closeConnection(nc)
      }
    },
  )
})

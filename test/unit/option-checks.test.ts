/**
 * The option checks of the entry points, without a server: `Node.start`, `startDashboard` and
 * `Client.connect` refuse a key they do not know — at the top and in the objects nested in their
 * options (`tls`, `metrics`, `dashboard`, `tracing`) — and an option of the wrong type, naming the
 * option, before anything is bound or connected (the servers below are never reached).
 */
import { describe, expect, it } from 'vitest'
import { Registry } from 'prom-client'
import { BadInputError } from '../../actors/index.ts'
import { Client } from '../../runtime/client/client.ts'
import { startDashboard } from '../../runtime/dashboard/index.ts'
import { Node } from '../../runtime/node/node.ts'
import { checkNodeOptions, type NodeOptions } from '../../runtime/node/node-options.ts'
import {
  checkOptionalCount,
  checkOptionalMs,
  checkOptionalOneOf,
  checkOptionalStrings,
} from '../../runtime/util/index.ts'
import { silentLogger } from '../../runtime/util/index.ts'
import { Counter } from '../fixtures/entities.ts'

/** Where no server listens: a check that let an option through would fail to connect instead. */
const base = { servers: 'nats://127.0.0.1:1', hub: 'h' }

/** What `fn` threw or rejected with. */
async function failure(fn: () => unknown): Promise<Error> {
  try {
    await fn()
  } catch (err) {
    return err as Error
  }
  throw new Error('expected a failure')
}

/** Expects `fn` to fail with a `BadInputError` whose message matches `message`. */
async function refused(fn: () => unknown, message: RegExp): Promise<void> {
  const err = await failure(fn)
  expect(err, String(err)).toBeInstanceOf(BadInputError)
  expect(err.message).toMatch(message)
}

describe('Node.start', () => {
  const check = (options: Record<string, unknown>) => () =>
    checkNodeOptions({ ...base, ...options } as unknown as NodeOptions)

  it('takes every option of NodeOptions, each of its type', () => {
    const options: Required<NodeOptions> = {
      ...base,
      user: 'u',
      password: 'p',
      token: 't',
      nkey: 'n',
      credsFile: 'c',
      tls: { ca: 'a', cert: 'c', key: 'k' },
      name: 'n',
      connectTimeoutMs: 1000,
      inboxPrefix: '_I',
      partitions: 8,
      replicas: 1,
      registry: [Counter],
      registryModule: new URL('file:///tmp/registry.ts'),
      workers: 0,
      hangTimeoutMs: 0,
      handleUncaughtErrors: false,
      alwaysReplay: true,
      activityConcurrency: 1,
      activityTimeoutMs: 10,
      offloadThreshold: 0,
      nodeId: 'n1',
      pipelining: false,
      localDelivery: false,
      cacheSize: 0,
      entityOperationTimeoutMs: Infinity,
      maxBatch: 1,
      snapshotRecords: 1,
      snapshotIntervalMs: 1,
      streamTrimIntervalMs: 0,
      placement: 'static',
      heartbeatMs: 100,
      leaseMs: 200,
      readyTimeoutMs: 1,
      partitionsToRun: [0, 3],
      logger: silentLogger,
      blobThresholdBytes: 1,
      maxValueBytes: 2,
      metrics: { port: 0, host: '::1', registry: new Registry() },
      dashboard: { port: 0, host: 'localhost', allowActions: true, allowedHosts: ['x'] },
      tracing: { enabled: false, tracer: { startSpan: () => undefined } },
      wireFeatures: [],
    }
    expect(checkNodeOptions(options)).toBe(options)
    expect(() => checkNodeOptions({ ...base, metrics: false })).not.toThrow()
  })

  it('refuses a key it does not know, naming it and the known ones', async () => {
    await refused(
      check({ partitons: 8 }),
      /^Node\.start: unknown option 'partitons' \(known: servers, .*, partitions, /,
    )
    await refused(
      check({ snapshotIntervalMS: 10, Hub: 'x' }),
      /^Node\.start: unknown options 'snapshotIntervalMS', 'Hub' \(known: .*snapshotIntervalMs.*\)$/,
    )
    // Node.start itself, before anything connects (nothing listens at base.servers)
    await refused(() => Node.start({ ...base, partitons: 8 } as never), /unknown option 'partitons'/)
    await refused(() => Node.start(undefined as never), /^the options of Node\.start must be an object/)
  })

  it('refuses a key it does not know in tls, metrics, dashboard and tracing', async () => {
    await refused(
      check({ tls: { cetr: 'x' } }),
      /^Node\.start: unknown tls key 'cetr' \(known: ca, cert, key\)$/,
    )
    await refused(check({ tls: 'x' }), /^the tls of Node\.start must be an object \(got string "x"\)$/)
    await refused(
      check({ metrics: { prot: 9464 } }),
      /^Node\.start: unknown metrics key 'prot' \(known: port, host, registry\)$/,
    )
    await refused(
      check({ dashboard: { port: 0, alowActions: true } }),
      /^Node\.start: unknown dashboard key 'alowActions' \(known: port, host, allowActions, allowedHosts\)$/,
    )
    await refused(
      check({ tracing: { enable: false } }),
      /^Node\.start: unknown tracing key 'enable' \(known: tracer, enabled\)$/,
    )
    await refused(() => Node.start({ ...base, tls: { cetr: 'x' } } as never), /unknown tls key 'cetr'/)
  })

  it('refuses an option of the wrong type, naming it and what it takes', async () => {
    const cases: Array<[Record<string, unknown>, RegExp]> = [
      [{ partitions: '8' }, /^partitions must be a whole number in 1\.\.1024 \(got string "8"\)$/],
      [{ replicas: 0 }, /^replicas must be a whole number, 1 or more \(got number 0\)$/],
      [{ workers: 1.5 }, /^workers must be a whole number, 0 or more \(got number 1\.5\)$/],
      [{ logger: 'x' }, /^logger must be an object with info, warn and error methods.*\(got string "x"\)$/],
      [{ logger: { info() {} } }, /^logger must be .*\(got an object without warn, error\)$/],
      [{ placement: 'Static' }, /^placement must be 'dynamic' or 'static' \(got string "Static"\)$/],
      [{ pipelining: 'false' }, /^pipelining must be true or false \(got string "false"\)$/],
      [{ localDelivery: 1 }, /^localDelivery must be true or false \(got number 1\)$/],
      [{ heartbeatMs: '1000' }, /^heartbeatMs must be a positive number of ms \(got string "1000"\)$/],
      [
        { hangTimeoutMs: -1 },
        /^hangTimeoutMs must be a number of ms, 0 or more \(0: never\) \(got number -1\)$/,
      ],
      [{ snapshotIntervalMs: Infinity }, /^snapshotIntervalMs must be a positive number of ms/],
      [{ cacheSize: -1 }, /^cacheSize must be a whole number, 0 or more/],
      [{ maxBatch: 0 }, /^maxBatch must be a whole number, 1 or more/],
      [{ nodeId: 5 }, /^nodeId must be a string \(got number 5\)$/],
      [{ registry: Counter }, /^registry must be an array of entity classes, .* \(got function\)$/],
      [{ registryModule: 5 }, /^registryModule must be a path, a file URL or a package name/],
      [{ partitionsToRun: [-1] }, /^partitionsToRun must be an array of partition numbers/],
      [{ wireFeatures: 'v2' }, /^wireFeatures must be an array of strings \(got string "v2"\)$/],
      [{ hub: 'bad name!' }, /hub name must match/],
      [{ connectTimeoutMs: 0 }, /^connectTimeoutMs must be a positive number of ms \(got number 0\)$/],
      [{ user: 5 }, /^user must be a string \(got number 5\)$/],
      [{ tls: { ca: 5 } }, /^tls\.ca must be a string \(got number 5\)$/],
      [
        { metrics: { port: '9464' } },
        /^metrics\.port must be a port number in 0\.\.65535 \(got string "9464"\)$/,
      ],
      [{ metrics: { registry: {} } }, /^metrics\.registry must be a prom-client Registry/],
      [{ metrics: true }, /^the metrics of Node\.start must be an object \(got boolean true\)$/],
      [
        { dashboard: { port: 70000 } },
        /^dashboard\.port must be a port number in 0\.\.65535 \(got number 70000\)$/,
      ],
      [{ dashboard: {} }, /^dashboard\.port is missing/],
      [{ dashboard: { port: 0, allowedHosts: 'x' } }, /^dashboard\.allowedHosts must be an array of strings/],
      [{ tracing: { tracer: {} } }, /^tracing\.tracer must be an OpenTelemetry Tracer/],
      [{ tracing: { enabled: 'no' } }, /^tracing\.enabled must be true or false/],
    ]
    for (const [options, message] of cases) await refused(check(options), message)
    await refused(() => Node.start({ ...base, workers: 1.5 }), /^workers must be a whole number/)
  })

  it('does not show a secret of the wrong type', async () => {
    const err = await failure(check({ password: 12345678 }))
    expect(err.message).toBe('password must be a string (got number)')
  })
})

describe('startDashboard', () => {
  it('refuses a key it does not know, in its options and in tls, before it listens', async () => {
    await refused(
      () => startDashboard({ ...base, port: 0, alowActions: true } as never),
      /^startDashboard: unknown option 'alowActions' \(known: servers, .*, hub, port, host, allowActions, allowedHosts, optionNames\)$/,
    )
    await refused(
      () => startDashboard({ ...base, port: 0, tls: { CA: 'x' } } as never),
      /^startDashboard: unknown tls key 'CA'/,
    )
  })

  it('refuses an option of the wrong type', async () => {
    const cases: Array<[Record<string, unknown>, RegExp]> = [
      [{ port: '8233' }, /^port must be a port number in 0\.\.65535 \(got string "8233"\)$/],
      [{ host: 127 }, /^host must be a string/],
      [{ allowActions: 'yes' }, /^allowActions must be true or false/],
      [{ allowedHosts: ['a', 1] }, /^allowedHosts must be an array of strings \(got an element number 1\)$/],
      [{ hub: '' }, /hub name must match/],
    ]
    for (const [options, message] of cases) {
      await refused(() => startDashboard({ ...base, ...options } as never), message)
    }
  })
})

describe('Client.connect', () => {
  it('refuses a key it does not know in tls and tracing, and a tracer that is none', async () => {
    await refused(
      () => Client.connect({ ...base, tls: { cetr: 'x' } } as never),
      /^Client\.connect: unknown tls key 'cetr' \(known: ca, cert, key\)$/,
    )
    await refused(
      () => Client.connect({ ...base, tracing: { enable: false } } as never),
      /^Client\.connect: unknown tracing key 'enable'/,
    )
    await refused(
      () => Client.connect({ ...base, tracing: { tracer: 'x' } } as never),
      /^tracing\.tracer must be/,
    )
  })
})

describe('the shared checks', () => {
  it('count, ms, one-of and string list', () => {
    expect(checkOptionalCount(undefined, 'n', 1)).toBeUndefined()
    expect(checkOptionalCount(3, 'n', 1)).toBe(3)
    expect(() => checkOptionalCount(Number.MAX_SAFE_INTEGER + 2, 'n', 1)).toThrow(/whole number/)
    expect(checkOptionalMs(0, 't', '0: never')).toBe(0)
    expect(() => checkOptionalMs(0, 't')).toThrow(/^t must be a positive number of ms \(got number 0\)$/)
    expect(() => checkOptionalMs(NaN, 't')).toThrow(/got number NaN/)
    expect(checkOptionalOneOf('a', 'x', ['a', 'b'])).toBe('a')
    expect(checkOptionalStrings(['a'], 'l')).toEqual(['a'])
    expect(() => checkOptionalStrings([null], 'l')).toThrow(/got an element null/)
  })
})

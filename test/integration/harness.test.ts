import { writeFileSync } from 'node:fs'
import path from 'node:path'
import { jetstream, jetstreamManager, StorageType, type JetStreamManager } from '@nats-io/jetstream'
import { connect, type NatsConnection } from '@nats-io/transport-node'
import { afterEach, describe, expect, it } from 'vitest'
import {
  findNatsServer,
  freePort,
  NatsServerMissingError,
  startNatsServer,
  type NatsServer,
} from '../../runtime/dev/nats-server.ts'
import {
  isProcessAlive,
  spawnTs,
  tempDir,
  useNatsCluster,
  useNatsServer,
  waitFor,
} from '../tooling/harness.ts'

/** Connections opened by a test, closed after it. */
const connections: NatsConnection[] = []

afterEach(async () => {
  await Promise.allSettled(connections.splice(0).map((nc) => nc.close()))
})

/** Connects to `servers` and tracks the connection for closing. */
async function open(servers: string | string[]): Promise<NatsConnection> {
  const nc = await connect({ servers, timeout: 2_000, maxReconnectAttempts: -1, reconnectTimeWait: 100 })
  connections.push(nc)
  return nc
}

/** Number of messages in `stream`. */
async function messageCount(jsm: JetStreamManager, stream: string): Promise<number> {
  return (await jsm.streams.info(stream)).state.messages
}

describe('single server', () => {
  const nats = useNatsServer()

  it('publishes and subscribes through the server', async () => {
    expect(nats.url).toBe(`nats://127.0.0.1:${nats.server.port}`)
    const nc = await open(nats.url)
    const sub = nc.subscribe('greet.*', { max: 1 })
    nc.publish('greet.world', 'hello')
    for await (const msg of sub) {
      expect(msg.subject).toBe('greet.world')
      expect(msg.string()).toBe('hello')
    }
  })

  it('keeps JetStream data across restart on the same port', async () => {
    const nc = await open(nats.url)
    const jsm = await jetstreamManager(nc)
    await jsm.streams.add({ name: 'KEEP', subjects: ['keep.>'], storage: StorageType.File })
    await jetstream(nc).publish('keep.one', 'persisted')
    const pidBefore = nats.server.pid
    await nats.server.restart()
    expect(nats.server.pid).not.toBe(pidBefore)
    expect(isProcessAlive(pidBefore)).toBe(false)
    const nc2 = await open(nats.url)
    const jsm2 = await jetstreamManager(nc2)
    const msg = await jsm2.streams.getMessage('KEEP', { seq: 1 })
    expect(msg?.string()).toBe('persisted')
  })

  it('restarts after a SIGKILL stop', async () => {
    const nc = await open(nats.url)
    const jsm = await jetstreamManager(nc)
    await jsm.streams.add({ name: 'KILL', subjects: ['kill.>'], storage: StorageType.File })
    await jetstream(nc).publish('kill.one', 'acked')
    const pid = nats.server.pid
    await nats.server.stop('SIGKILL')
    expect(isProcessAlive(pid)).toBe(false)
    await nats.server.stop() // stopping a stopped server is a no-op
    await nats.server.restart()
    const jsm2 = await jetstreamManager(await open(nats.url))
    expect(await messageCount(jsm2, 'KILL')).toBe(1)
  })

  it('pauses and resumes the process', async () => {
    const nc = await open(nats.url)
    nats.server.pause()
    await expect(nc.request('nobody.home', '', { timeout: 300 })).rejects.toThrow()
    nats.server.resume()
    await waitFor(async () => {
      await nc.flush()
      return true
    }, 'flush after resume')
  })
})

describe('standalone servers', () => {
  it('removes the temp store dir it created on dispose, keeps a given one', async () => {
    const own = await startNatsServer({ jetstream: false })
    const given = tempDir()
    const other = await startNatsServer({ storeDir: given, maxPayload: 8 * 1024 * 1024, name: 'given' })
    expect(other.storeDir).toBe(given)
    const nc = await open(other.url)
    expect(nc.info?.max_payload).toBe(8 * 1024 * 1024)
    await Promise.all([own.dispose(), other.dispose()])
    const { existsSync } = await import('node:fs')
    expect(existsSync(own.storeDir)).toBe(false)
    expect(existsSync(path.join(given, 'nats-server.log'))).toBe(true)
  })

  it('fails with the log tail when the port is taken', async () => {
    const first = await startNatsServer({ jetstream: false })
    try {
      await expect(startNatsServer({ port: first.port, jetstream: false })).rejects.toMatchObject({
        code: 'NATS_SERVER_START_FAILED',
        message: expect.stringMatching(/address already in use/) as unknown,
      })
    } finally {
      await first.dispose()
    }
  })

  it('freePort returns a usable port', async () => {
    const port = await freePort()
    expect(port).toBeGreaterThan(0)
    const server: NatsServer = await startNatsServer({ port, jetstream: false })
    expect(server.url).toBe(`nats://127.0.0.1:${port}`)
    await server.dispose()
  })
})

describe('missing binary', () => {
  const saved = process.env['NATS_SERVER_BIN']

  afterEach(() => {
    if (saved === undefined) delete process.env['NATS_SERVER_BIN']
    else process.env['NATS_SERVER_BIN'] = saved
  })

  it('throws NatsServerMissingError when NATS_SERVER_BIN points nowhere', async () => {
    process.env['NATS_SERVER_BIN'] = '/nonexistent/nats-server'
    expect(() => findNatsServer()).toThrow(NatsServerMissingError)
    await expect(startNatsServer()).rejects.toMatchObject({
      name: 'NatsServerMissingError',
      code: 'NATS_SERVER_MISSING',
      message:
        'nats-server not found on PATH (or at $NATS_SERVER_BIN); install it with: apt-get install nats-server',
    })
  })

  it('honours NATS_SERVER_BIN when it exists', () => {
    const real = findNatsServer()
    process.env['NATS_SERVER_BIN'] = real
    expect(findNatsServer()).toBe(real)
  })
})

describe('helpers', () => {
  it('waitFor times out with a clear message', async () => {
    await expect(waitFor(() => false, 'never', 50)).rejects.toThrow('timed out after 50ms waiting for: never')
    let calls = 0
    await waitFor(() => ++calls >= 3, 'third call')
    expect(calls).toBe(3)
  })

  it('spawnTs runs a TypeScript file and collects its output', async () => {
    const file = path.join(tempDir(), 'child.mts')
    const source = [
      'const greeting: string = process.argv[2] ?? "none"',
      'console.log(`ready ${greeting} ${process.env.CHILD_FLAG}`)',
      'console.error("on stderr")',
      'setInterval(() => undefined, 1000)',
    ].join('\n')
    writeFileSync(file, source)
    const child = spawnTs(file, ['hi'], { CHILD_FLAG: 'set' })
    expect(await child.waitForLine(/^ready/, 20_000)).toBe('ready hi set')
    await child.waitForLine(/stderr/)
    child.kill('SIGTERM')
    expect(await child.exited).toBeNull()
    await expect(child.waitForLine(/never printed/)).rejects.toThrow(/exited before printing/)
  })
})

describe('three-server cluster', () => {
  const nats = useNatsCluster(3)

  it('keeps an R3 stream writable while one server is down, and takes it back', async () => {
    expect(new Set(nats.urls).size).toBe(3)
    const nc = await open(nats.urls)
    const jsm = await jetstreamManager(nc)
    await jsm.streams.add({ name: 'R3', subjects: ['r3.>'], num_replicas: 3, storage: StorageType.File })
    const js = jetstream(nc, { timeout: 2_000 })
    await js.publish('r3.a', 'one', { msgID: 'one' })

    const leaderName = (await jsm.streams.info('R3')).cluster?.leader
    const victim = nats.servers.find((s) => path.basename(s.storeDir) === leaderName) ?? nats.servers[0]
    if (victim === undefined) throw new Error('no server to stop')
    await victim.stop('SIGKILL')

    // Publishing may fail while a new stream leader is elected; msgID makes the retry idempotent.
    await waitFor(
      async () => (await js.publish('r3.a', 'two', { msgID: 'two' })).seq === 2,
      'publish with a server down',
      30_000,
    )

    await victim.restart()
    await waitFor(
      async () => {
        const info = await jsm.streams.info('R3')
        const replicas = info.cluster?.replicas ?? []
        return (
          info.state.messages === 2 && replicas.length === 2 && replicas.every((r) => r.current && !r.offline)
        )
      },
      'restarted server to catch up',
      30_000,
    )
  })
})

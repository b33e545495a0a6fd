/**
 * Secured NATS (issue 10, section 3): nodes and clients connect to nats-servers that require users
 * and passwords (with the exact node and client permissions of runtime/nats/permissions.ts), a
 * token, an nkey, and mutual TLS with certificates made by `openssl` at test time; two accounts
 * keep hub `a` and hub `b` apart; a wrong password fails at once with an error that says
 * authorization failed and does not contain the password.
 */
import { execFileSync } from 'node:child_process'
import { readFileSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { firstValueFrom, filter } from 'rxjs'
import { jetstream, jetstreamManager } from '@nats-io/jetstream'
import { nkeys } from '@nats-io/transport-node'
import {
  AuthorizationError,
  Client,
  ConnectionError,
  HubNotFoundError,
  Node,
  clientPermissions,
  nodePermissions,
  renderPermissions,
  silentLogger,
  type ConnectionOptions,
} from '../../runtime/index.ts'
import { closeConnection, connectTo } from '../../runtime/nats/connect.ts'
import { startDashboard } from '../../runtime/dashboard/index.ts'
import { HubNames, deleteHub, ensureHub, openHub } from '../../runtime/nats/hub.ts'
import { HUB_CHECK_MS } from '../../runtime/client/hub-guard.ts'
import { partitionOf } from '../../actors/ids.ts'
import { fastJetStream, isPermissionDenied } from '../../runtime/nats/index.ts'
import { Counter, Log } from '../fixtures/entities.ts'
import { helloSequence, sayHello } from '../fixtures/workflows.ts'
import { keptLines, spawnTs, tempDir, useNatsServer, waitFor } from '../tooling/harness.ts'

const NODE_PASSWORD = 'node-s3cret-pw'
const INTRUDER = new Uint8Array([0xde, 0xad])
const CLIENT_PASSWORD = 'client-s3cret-pw'

/** Starts a node and a client with the given connection options; both are stopped by `stop`. */
async function startStack(
  nodeConnection: ConnectionOptions,
  clientConnection: ConnectionOptions,
  hub: string,
): Promise<{ node: Node; client: Client; stop(): Promise<void> }> {
  const node = await Node.start({
    ...nodeConnection,
    hub,
    registry: [Counter, Log, helloSequence, sayHello],
    partitions: 2,
    logger: silentLogger,
  })
  let client: Client
  try {
    client = await Client.connect({ ...clientConnection, hub })
  } catch (err) {
    await node.stop()
    throw err
  }
  return {
    node,
    client,
    async stop() {
      await client.close()
      await node.stop()
    },
  }
}

/** Signals, calls, reads, watches and runs an orchestration with an activity: a client's whole job. */
async function exercise(client: Client, key: string): Promise<void> {
  const counter = client.entity(Counter, key)
  await counter.signal.add(2)
  expect(await counter.call.get(), `counter ${key} after add(2)`).toBe(2)
  expect(await client.readEntityState(Counter, key)).toEqual({ exists: true, state: 2 })
  const watched = firstValueFrom(client.watchEntity(Counter, key).pipe(filter((v) => v === 5)))
  await counter.signal.add(3)
  expect(await watched, `watch of counter ${key}`).toBe(5)
  const id = await client.start(helloSequence, ['Oslo', 'Lima'])
  const done = await client.waitForCompletion(id)
  expect(done.status, `instance ${id}`).toBe('Completed')
  expect(done.output).toEqual(['Hello Oslo', 'Hello Lima'])
  const page = await client.listInstances({ namePrefix: 'helloSequence' })
  expect(page.instances.map((i) => i.id)).toContain(id)
}

/** Whether `promise` rejects within `ms`; returns the error. */
async function rejection(promise: Promise<unknown>, ms = 5_000): Promise<Error> {
  const started = Date.now()
  const outcome = await promise.then(
    () => new Error('expected a rejection, got success'),
    (err: unknown) => err as Error,
  )
  expect(Date.now() - started, `failed after ${Date.now() - started} ms, expected < ${ms}`).toBeLessThan(ms)
  return outcome
}

/** A server `authorization` block of users, each with its password and rendered permissions. */
function authorization(users: Array<{ user: string; password: string; permissions: string }>): string {
  return [
    'authorization {',
    '  users: [',
    ...users.flatMap((u) => [`    { user: ${u.user}, password: "${u.password}"`, u.permissions, '    }']),
    '  ]',
    '}',
  ].join('\n')
}

describe('users and passwords, with the node and client permissions', () => {
  const hub = 'h'
  const nats = useNatsServer({
    extraConfig: authorization([
      { user: 'node', password: NODE_PASSWORD, permissions: renderPermissions(nodePermissions(hub), 6) },
      {
        user: 'client',
        password: CLIENT_PASSWORD,
        permissions: renderPermissions(clientPermissions(hub), 6),
      },
    ]),
  })
  const asNode = () => ({ servers: nats.url, user: 'node', password: NODE_PASSWORD })
  const asClient = () => ({ servers: nats.url, user: 'client', password: CLIENT_PASSWORD })
  let stack: Awaited<ReturnType<typeof startStack>>
  beforeAll(async () => {
    stack = await startStack(asNode(), asClient(), hub)
  })
  afterAll(async () => {
    await stack?.stop()
  })

  it('runs a node and a client with exactly the documented permissions', async () => {
    await exercise(stack.client, 'perm-1')
  })

  it('lets the client user send and read large values (by reference, in the blob stream)', async () => {
    // over max_payload: the client stores the argument as a blob before it sends the signal
    const huge = 'h'.repeat(1_200_000)
    await stack.client.entity(Log, 'big-1').signal.append(huge)
    // over 32 kB: the node keeps the state by reference; the client reads it with a direct get
    const big = 'b'.repeat(40_000)
    await stack.client.entity(Log, 'big-2').signal.append(big)
    const read = await stack.client.readEntityState(Log, 'big-2')
    expect(read.state?.[0]?.length, 'length of the 40 kB state of big-2 as the client user reads it').toBe(
      big.length,
    )
    const stored = await stack.client.readEntityState(Log, 'big-1')
    expect(stored.state?.[0]?.length, 'length of the 1.2 MB state of big-1 as the client user reads it').toBe(
      huge.length,
    )
  })

  it('takes the user and password from a server URL, and keeps them out of messages', async () => {
    const url = nats.url.replace('nats://', `nats://client:${CLIENT_PASSWORD}@`)
    const client = await Client.connect({ servers: url, hub })
    try {
      await client.entity(Counter, 'url-1').signal.add(1)
      expect(await client.entity(Counter, 'url-1').call.get()).toBe(1)
    } finally {
      await client.close()
    }
    const wrong = nats.url.replace('nats://', 'nats://client:wrong-url-pw@')
    const err = await rejection(Client.connect({ servers: wrong, hub }))
    expect(err).toBeInstanceOf(AuthorizationError)
    expect(err.message).not.toContain('wrong-url-pw')
    expect(err.message).toContain(`authorization failed at NATS ${nats.url} (as user 'client')`)
  })

  it('keeps the client user from writing the commit log, the state or the streams', async () => {
    const names = new HubNames(hub)
    const nc = await connectTo(asClient(), 'intruder')
    try {
      const js = jetstream(nc, { timeout: 1_000 })
      const log = await rejection(js.publish(names.log(0), INTRUDER))
      expect(String(log), `publish to ${names.log(0)}`).toMatch(/permission|timeout|no responders/i)
      const state = await rejection(js.publish(names.stateSubject('e.0.Counter.x'), INTRUDER))
      expect(String(state), 'publish to the state bucket').toMatch(/permission|timeout|no responders/i)
      const jsm = await jetstreamManager(nc, { checkAPI: false, timeout: 1_000 })
      const del = await rejection(jsm.streams.delete(names.logStream))
      expect(String(del), `delete of ${names.logStream}`).toMatch(/permission|timeout|no responders/i)
      const admin = await jetstreamManager(stack.node.nc)
      const info = await admin.streams.info(names.logStream)
      for (let seq = info.state.first_seq; seq <= info.state.last_seq; seq++) {
        const m = await admin.streams.getMessage(names.logStream, { seq }).catch(() => null)
        expect(m?.data, `commit log record ${seq}`).not.toEqual(INTRUDER)
      }
    } finally {
      await closeConnection(nc)
    }
    await exercise(stack.client, 'perm-2') // the hub is unharmed
  })

  it('fails a lean publish the user may not make at once, naming the subject (not a 10 s "no answer")', async () => {
    const names = new HubNames(hub)
    const nc = await connectTo(asClient(), 'intruder')
    try {
      const subject = names.stateSubject('e.0.Counter.denied')
      const err = await rejection(fastJetStream(nc).publish(subject, INTRUDER), 3_000)
      expect(isPermissionDenied(err), String(err)).toBe(true)
      expect(err.message).toContain(`may not publish to '${subject}'`)
      // the connection goes on: a permitted request still gets its answer
      expect(await stack.client.entity(Counter, 'perm-3').call.get()).toBe(0)
    } finally {
      await closeConnection(nc)
    }
  })

  it('refuses a client of a hub its user may not read with AuthorizationError naming the hub', async () => {
    for (const hub of ['billing', 'H']) {
      const err = await rejection(Client.connect({ ...asClient(), hub }))
      expect(err, String(err)).toBeInstanceOf(AuthorizationError)
      expect(err.message).toMatch(
        new RegExp(
          `^the NATS user may not read hub '${hub}' \\(.*Permissions Violation for Publish to .*\\): check the hub name`,
        ),
      )
      expect(err.message).not.toContain(CLIENT_PASSWORD)
    }
  })

  it('has the dashboard say which permission its NATS user lacks, with 403, when run as the client', async () => {
    const dashboard = await startDashboard({ ...asClient(), hub, port: 0 })
    try {
      const res = await fetch(`${dashboard.url}api/dead-letters`)
      expect(res.status).toBe(403)
      expect(((await res.json()) as { error: string }).error).toMatch(
        /^the dashboard's NATS user may not publish to \$JS\.API\.\S+: run the dashboard with the node's permissions/,
      )
    } finally {
      await dashboard.close()
    }
  })

  it('serves the whole dashboard as the node user: dead letters, live samples, watches, prompt replies', async () => {
    // the node block is what SECURITY.md gives the dashboard for its dead letters, and what
    // `Node.start({ dashboard })` runs with: its live parts must work with it too
    const dashboard = await startDashboard({ ...asNode(), hub, port: 0, allowActions: true })
    try {
      expect((await fetch(`${dashboard.url}api/dead-letters`)).status, 'dead letters as the node').toBe(200)
      const stats = await sseEvents(`${dashboard.url}api/stream/stats`)
      try {
        // a sample arrives each second: without the subscription only the first, empty view comes
        const deadline = Date.now() + 10_000
        let nodes = 0
        while (nodes === 0 && Date.now() < deadline) {
          const next = await Promise.race([
            stats.next(),
            new Promise<null>((resolve) => setTimeout(resolve, deadline - Date.now(), null)),
          ])
          nodes = (next?.data as { nodes: unknown[] } | undefined)?.nodes.length ?? 0
        }
        expect(nodes, 'nodes in the telemetry the dashboard of the node user shows').toBeGreaterThan(0)
      } finally {
        await stats.close()
      }
      const id = await stack.client.start(helloSequence, ['Kyiv'])
      await stack.client.waitForCompletion(id)
      const watch = await sseEvents(`${dashboard.url}api/stream/instances/${id}`)
      try {
        const first = await watch.next()
        expect(first.event, `first event of the watch of ${id}: ${JSON.stringify(first.data)}`).toBe('status')
      } finally {
        await watch.close()
      }
      // an action's reply reaches the dashboard's client inbox at once (not through a re-ask)
      const started = Date.now()
      const res = await fetch(`${dashboard.url}api/instances/${id}/terminate`, {
        method: 'POST',
        headers: { 'X-Basalt-Dashboard': '1' },
      })
      expect(res.status, await res.text()).toBe(409)
      expect(Date.now() - started, 'ms until the refused terminate was answered').toBeLessThan(1_000)
    } finally {
      await dashboard.close()
    }
  })

  it('fails fast on a wrong password, saying authorization failed, without the password', async () => {
    const err = await rejection(
      Client.connect({ servers: nats.url, user: 'client', password: 'not-the-password', hub }),
    )
    expect(err).toBeInstanceOf(AuthorizationError)
    expect((err as AuthorizationError).code).toBe('AUTHORIZATION')
    expect(err.message).toMatch(
      /^authorization failed at NATS nats:\/\/127\.0\.0\.1:\d+ \(as user 'client'\)/,
    )
    expect(err.message).not.toContain('not-the-password')
    const nodeErr = await rejection(
      Node.start({ servers: nats.url, user: 'node', password: 'bad-node-pw', hub, registry: [Counter] }),
    )
    expect(nodeErr).toBeInstanceOf(AuthorizationError)
    expect(nodeErr.message).not.toContain('bad-node-pw')
  })

  it('logs the CLI in from flags or NATS_* variables; a wrong password exits 1 without showing it', async () => {
    const run = async (args: string[], env: Record<string, string> = {}) => {
      const child = spawnTs('runtime/cli/basalt.mjs', ['placement', '--hub', hub, ...args], env)
      return { code: await child.exited, output: child.lines.join('\n') }
    }
    const fromEnv = await run([], { NATS_URL: nats.url, NATS_USER: 'node', NATS_PASSWORD: NODE_PASSWORD })
    expect(fromEnv.code, fromEnv.output).toBe(0)
    expect(fromEnv.output).toMatch(new RegExp(`^hub ${hub}: 2 partitions`, 'm'))
    const wrong = await run(['--servers', nats.url, '--user', 'node', '--password', 'cli-wrong-pw'])
    expect(wrong.code, wrong.output).toBe(1)
    expect(wrong.output).toMatch(/^basalt placement: authorization failed at NATS .* \(as user 'node'\)/m)
    expect(wrong.output).not.toContain('cli-wrong-pw')
  })

  it('runs the client-like CLI commands as the client user; hub info and dlq name the permission they lack', async () => {
    const env = { NATS_URL: nats.url, NATS_USER: 'client', NATS_PASSWORD: CLIENT_PASSWORD, BASALT_HUB: hub }
    const run = async (...args: string[]) => {
      const child = spawnTs('runtime/cli/basalt.mjs', args, env)
      return { code: await child.exited, lines: child.lines, output: child.lines.join('\n') }
    }
    const ok = async (...args: string[]) => {
      const ran = await run(...args)
      expect(ran.code, `basalt ${args.join(' ')} as the client user:\n${ran.output}`).toBe(0)
      return ran
    }
    await ok('start', 'helloSequence', '--id', 'cli-perm-1', '--input', '["Oslo"]')
    await ok('wait', 'cli-perm-1')
    await Promise.all([
      ok('placement'),
      ok('status', 'cli-perm-1'),
      ok('history', 'cli-perm-1'),
      ok('list', '--prefix', 'cli-perm-'),
      ok('entity', 'signal', 'Counter', 'cli-perm', 'add', '--args', '2'),
    ])
    await ok('entity', 'call', 'Counter', 'cli-perm', 'get')
    await Promise.all([ok('entity', 'get', 'Counter', 'cli-perm'), ok('entity', 'list', 'Counter')])
    await ok('start', 'helloSequence', '--id', 'cli-perm-2', '--input', '["Oslo"]')
    // (it has completed by now: the node's answer shows the command got through)
    const terminated = await run('terminate', 'cli-perm-2')
    expect(terminated.output).toMatch(
      /^(terminated cli-perm-2|basalt terminate: instance 'cli-perm-2' is Completed)$/,
    )
    await ok('purge', 'cli-perm-1')
    await ok('purge', '--status', 'Completed,Terminated', '--before', '0s')
    for (const args of [
      ['hub', 'info'],
      ['dlq', 'list'],
    ]) {
      const refused = await run(...args)
      expect(refused.code, refused.output).toBe(1)
      expect(refused.lines).toHaveLength(1)
      expect(refused.lines[0]).toMatch(
        new RegExp(
          `^basalt ${args.join(' ')}: not permitted: the NATS user may not publish to \\$JS\\.API\\.\\S+; ` +
            `this command needs the node's permissions \\(docs/SECURITY\\.md`,
        ),
      )
    }
  }, 90_000)

  it('has every command refuse a hub its user may not read by naming the hub, not a JetStream subject', async () => {
    const env = { NATS_URL: nats.url, NATS_USER: 'client', NATS_PASSWORD: CLIENT_PASSWORD }
    const cases: Array<[command: string, hub: string, args: string[]]> = [
      ['list', 'other', []],
      ['entity get', 'H', ['Counter', 'c']], // the hub is 'h': names are case-sensitive
      ['hub info', 'other', []],
    ]
    const runs = await Promise.all(
      cases.map(async ([command, other, args]) => {
        const child = spawnTs('runtime/cli/basalt.mjs', [...command.split(' '), ...args, '--hub', other], env)
        return { command, other, code: await child.exited, lines: child.lines }
      }),
    )
    for (const { command, other, code, lines } of runs) {
      expect(code, lines.join('\n')).toBe(1)
      expect(lines, `basalt ${command} --hub ${other}`).toHaveLength(1)
      expect(lines[0]).toMatch(
        new RegExp(
          `^basalt ${command}: the NATS user may not read hub '${other}' \\(.*Permissions Violation for Publish to .*\\): ` +
            "check the hub name \\(names are case-sensitive\\) and that the user has this hub's permissions",
        ),
      )
      expect(lines[0]).not.toContain(CLIENT_PASSWORD)
    }
  }, 60_000)
})

describe("creating a hub outside the node user's permissions", () => {
  // sec-node has the documented node block of hub 'sec'; admin may do anything
  const nats = useNatsServer({
    extraConfig: authorization([
      {
        user: 'sec-node',
        password: NODE_PASSWORD,
        permissions: renderPermissions(nodePermissions('sec'), 6),
      },
      { user: 'admin', password: NODE_PASSWORD, permissions: '' },
    ]),
  })
  const asSecNode = () => ({ servers: nats.url, user: 'sec-node', password: NODE_PASSWORD })
  const asAdmin = () => ({ servers: nats.url, user: 'admin', password: NODE_PASSWORD })
  /** The streams of the server's account whose name holds `hub`, as the admin lists them. */
  const streamsOf = async (hub: string): Promise<string[]> => {
    const nc = await connectTo(asAdmin(), 'lister')
    try {
      const jsm = await jetstreamManager(nc)
      const names: string[] = []
      for await (const name of jsm.streams.names()) if (name.includes(`_${hub}_`)) names.push(name)
      return names.sort()
    } finally {
      await closeConnection(nc)
    }
  }
  const refusal = (hub: string) =>
    new RegExp(
      `cannot create hub '${hub}': not permitted: the NATS user may not publish to \\$KV\\.basalt_${hub}_meta\\.hub; ` +
        `check the hub name \\(names are case-sensitive\\) and that the user has the node's permissions for hub '${hub}'`,
    )

  it('fails Node.start and `basalt node` saying what was refused, and leaves nothing of the hub behind', async () => {
    const err = await rejection(
      Node.start({ ...asSecNode(), hub: 'other', registry: [Counter], partitions: 2, logger: silentLogger }),
    )
    expect(err, String(err)).toBeInstanceOf(AuthorizationError)
    expect(err.message).toMatch(new RegExp(`^${refusal('other').source}`))
    expect(await streamsOf('other'), 'streams of hub other after Node.start failed').toEqual([])

    const node = spawnTs('runtime/cli/basalt.mjs', [
      'node',
      ...['--servers', nats.url, '--user', 'sec-node', '--password', NODE_PASSWORD],
      ...['--hub', 'other', '--partitions', '2', '--load', 'test/fixtures/registry.ts'],
    ])
    const code = await node.exited
    expect(code, node.lines.join('\n')).toBe(1)
    expect(node.lines.at(-1)).toMatch(new RegExp(`^basalt node: ${refusal('other').source}`))
    expect(node.lines.join('\n')).not.toContain(NODE_PASSWORD)
    expect(await streamsOf('other'), 'streams of hub other after basalt node failed').toEqual([])

    // the user's own hub is created as before
    const sec = await connectTo(asSecNode(), 'sec-node')
    try {
      expect((await ensureHub(sec, 'sec', { partitions: 2 })).meta.partitions).toBe(2)
    } finally {
      await closeConnection(sec)
    }
    expect(await streamsOf('sec')).toEqual(new HubNames('sec').streams.sort())
  }, 60_000)

  it('still creates a hub raced by a creator that may not create it, and by one that may', async () => {
    const [admin, admin2, secNode] = await Promise.all([
      connectTo(asAdmin(), 'admin'),
      connectTo(asAdmin(), 'admin-2'),
      connectTo(asSecNode(), 'sec-node'),
    ])
    try {
      // who starts first, and by how much, changes from round to round
      const later = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))
      for (let round = 0; round < 8; round++) {
        const hub = `raced${round}`
        const [secLater, adminLater] = round < 4 ? [0, round * 4] : [(round - 4) * 4, 0]
        const [refused, first, second] = await Promise.allSettled([
          later(secLater).then(() => ensureHub(secNode, hub, { partitions: 2 })),
          later(adminLater).then(() => ensureHub(admin, hub, { partitions: 2 })),
          later(adminLater * 2).then(() => ensureHub(admin2, hub, { partitions: 2 })),
        ])
        if (first.status === 'rejected') throw first.reason
        if (second.status === 'rejected') throw second.reason
        expect(second.value.meta, `round ${round}: both creators opened the same hub`).toEqual(
          first.value.meta,
        )
        // sec-node may not write the hub record: it fails, or opens the hub the admin created
        if (refused.status === 'rejected') expect(refused.reason).toBeInstanceOf(AuthorizationError)
        expect(await streamsOf(hub), `round ${round}: streams of hub ${hub}`).toEqual(
          new HubNames(hub).streams.sort(),
        )
        expect((await openHub(admin, hub)).meta).toEqual(first.value.meta)
      }
    } finally {
      await Promise.all([closeConnection(admin), closeConnection(admin2), closeConnection(secNode)])
    }
  }, 60_000)
})

describe('credentials changed while a node runs', () => {
  const hub = 'pw'
  const users = (password: string) =>
    authorization([{ user: 'node', password, permissions: renderPermissions(nodePermissions(hub), 6) }])
  const nats = useNatsServer({ extraConfig: users(NODE_PASSWORD) })

  it('ends `basalt node` with a line that says the server refused its credentials', async () => {
    const node = spawnTs('runtime/cli/basalt.mjs', [
      'node',
      '--servers',
      nats.url,
      '--user',
      'node',
      '--password',
      NODE_PASSWORD,
      '--hub',
      hub,
      '--partitions',
      '2',
      '--workers',
      '1',
      '--load',
      'test/fixtures/registry.ts',
    ])
    await node.waitForLine(/running on hub pw/, 30_000)
    // the operator changes the node user's password and reloads the server (SIGHUP)
    const config = path.join(nats.server.storeDir, 'nats-server.conf')
    writeFileSync(config, readFileSync(config, 'utf8').replace(NODE_PASSWORD, 'a-new-pw'))
    process.kill(nats.server.pid, 'SIGHUP')
    const code = await Promise.race([
      node.exited,
      new Promise((r) => setTimeout(() => r('still running'), 30_000)),
    ])
    const output = node.lines.join('\n')
    expect(code, output).toBe(1)
    expect(output).toMatch(
      /connection to NATS closed unexpectedly: the server refused the node's credentials/,
    )
    expect(output).not.toContain(NODE_PASSWORD)
  })
})

describe('a permission withdrawn while a node runs, then given back', () => {
  const hub = 'pr'
  // withdrawn: the node user may no longer append to the commit log
  const users = (withdrawn: boolean) =>
    authorization([
      {
        user: 'node',
        password: NODE_PASSWORD,
        permissions: renderPermissions(nodePermissions(hub), 6).replace(
          /publish: \{ allow: (\[[^\]]*\]) \}/,
          withdrawn ? `publish: { allow: $1, deny: ["${hub}.log.>"] }` : '$&',
        ),
      },
      {
        user: 'client',
        password: CLIENT_PASSWORD,
        permissions: renderPermissions(clientPermissions(hub), 6),
      },
    ])
  const nats = useNatsServer({ extraConfig: users(false) })

  it('refuses the commits at once, saying why, and applies every signal once when it is back', async () => {
    const lines: string[] = []
    const node = await Node.start({
      servers: nats.url,
      user: 'node',
      password: NODE_PASSWORD,
      hub,
      registry: [Counter],
      partitions: 2,
      logger: keptLines(lines, ['warn', 'error']),
    })
    const client = await Client.connect({
      servers: nats.url,
      user: 'client',
      password: CLIENT_PASSWORD,
      hub,
      callTimeoutMs: 60_000,
    })
    try {
      const counters = ['a', 'b', 'c', 'd'].map((k) => client.entity(Counter, k))
      for (const c of counters) await c.signal.add(1)
      for (const c of counters) expect(await c.call.get()).toBe(1)
      // the operator withdraws the node user's permission to append to the commit log
      const config = path.join(nats.server.storeDir, 'nats-server.conf')
      const reload = (withdrawn: boolean) => {
        const text = readFileSync(config, 'utf8')
        const start = text.indexOf('authorization {')
        writeFileSync(
          config,
          text.slice(0, start) + users(withdrawn) + text.slice(text.indexOf('\n}', start) + 2),
        )
        process.kill(nats.server.pid, 'SIGHUP')
      }
      reload(true)
      await new Promise((r) => setTimeout(r, 500))
      // the client may still send: its signals are stored, but no partition can commit them
      for (let i = 0; i < 10; i++) for (const c of counters) await c.signal.add(1)
      await waitFor(
        () => lines.some((l) => l.includes(`may not publish to '${hub}.log.`)),
        'a log line naming the refused subject',
        5_000,
      )
      reload(false)
      // each call waits behind the signals sent before it: all of them, applied once
      for (const c of counters) expect(await c.call.get()).toBe(11)
    } finally {
      await client.close()
      await node.stop()
    }
  })
})

describe("a client user without the permission to hear its hub created again (an earlier version's client block)", () => {
  // the client block of runtime/nats/permissions.ts less the subscription to the advisory of the
  // hub's metadata stream created: the client reads the hub record while it sends instead
  // (runtime/client/hub-guard.ts)
  const hub = 'ol'
  const advisory = `$JS.EVENT.ADVISORY.STREAM.CREATED.KV_basalt_${hub}_meta`
  const documented = clientPermissions(hub)
  const older = { ...documented, subscribe: documented.subscribe.filter((s) => s !== advisory) }
  const nats = useNatsServer({
    extraConfig: authorization([
      { user: 'node', password: NODE_PASSWORD, permissions: renderPermissions(nodePermissions(hub), 6) },
      { user: 'client', password: CLIENT_PASSWORD, permissions: renderPermissions(older, 6) },
    ]),
  })
  const asNode = () => ({ servers: nats.url, user: 'node', password: NODE_PASSWORD })
  const asClient = () => ({ servers: nats.url, user: 'client', password: CLIENT_PASSWORD })
  const opened: Array<Node | Client> = []
  afterAll(async () => {
    for (const x of opened.splice(0).reverse())
      await (x instanceof Node ? x.stop() : x.close()).catch(() => {})
  })
  const start = async (nodeId: string, partitions: number): Promise<Node> => {
    const node = await Node.start({
      ...asNode(),
      hub,
      nodeId,
      registry: [Counter],
      partitions,
      heartbeatMs: 200,
      leaseMs: 1000,
      logger: silentLogger,
    })
    opened.push(node)
    return node
  }

  it('works and warns once; after the hub is deleted and created again it refuses, and sends nothing to the new hub', async () => {
    expect(older.subscribe).toEqual(documented.subscribe.slice(0, -1))
    // the client takes no logger: its warnings go to the console (consoleLogger, on stderr)
    const printed: string[] = []
    const spy = vi.spyOn(console, 'error').mockImplementation((...args: unknown[]) => {
      printed.push(args.map(String).join(' '))
    })
    const warnings = () => printed.filter((l) => l.includes(' warn '))
    try {
      const a = await start('a', 4)
      const client = await Client.connect({ ...asClient(), hub })
      opened.push(client)
      const keys = ['a', 'b', 'c', 'd']
      for (const key of keys) await client.entity(Counter, key).signal.add(1)
      for (const key of keys) expect(await client.entity(Counter, key).call.add(1)).toBeUndefined()
      for (const key of keys)
        expect(await client.readEntityState(Counter, key)).toEqual({ exists: true, state: 2 })
      await waitFor(() => warnings().length > 0, 'the warning of the refused subscription', 5_000)
      expect(warnings()).toHaveLength(1)
      expect(warnings()[0]).toContain(
        `basalt client warn may not subscribe to ${advisory}: reading the hub record while sending instead ` +
          '(give the client user this subscribe permission, docs/SECURITY.md)',
      )
      expect(warnings()[0]).toContain('Permissions Violation for Subscription')
      expect(client.hubReplaced).toBe(false)

      // `basalt hub delete --force`, then a node that creates the hub anew with 8 partitions; the
      // client sends nothing meanwhile, so its next message is the first after its last read
      const admin = await connectTo(asNode(), 'hub-delete')
      try {
        await deleteHub(admin, hub)
        expect(await a.ended).toBeInstanceOf(HubNotFoundError)
        await start('c', 8)
        await new Promise((resolve) => setTimeout(resolve, HUB_CHECK_MS))
        const refusal =
          `hub '${hub}' was deleted and created again since this client connected, now with 8 partitions ` +
          '(this client routes by the 4 it had): connect again'
        // c is in partition 2 of 4 and of 8: sent, it would be applied in the new hub
        expect(partitionOf('c', 4)).toBe(partitionOf('c', 8))
        const started = Date.now()
        const first = await client
          .entity(Counter, 'c')
          .call.add(1)
          .catch((e: unknown) => e)
        expect(first).toBeInstanceOf(HubNotFoundError)
        expect((first as Error).message).toBe(refusal)
        // one read of the record, not a call timeout
        expect(Date.now() - started, 'ms before the first call was refused').toBeLessThan(2_000)
        expect(client.hubReplaced).toBe(true)
        for (const key of keys) {
          for (const attempt of [
            client.entity(Counter, key).call.add(1),
            client.entity(Counter, key).signal.add(1),
            client.readEntityState(Counter, key),
          ]) {
            const err = await attempt.catch((e: unknown) => e)
            expect(err, key).toBeInstanceOf(HubNotFoundError)
            expect((err as Error).message, key).toBe(refusal)
          }
        }
        // nothing the client sent reached the new hub
        const jsm = await jetstreamManager(admin)
        expect((await jsm.streams.info(`BASALT_${hub}_MBX`)).state.messages, 'mailbox messages').toBe(0)
        expect((await jsm.streams.info(`BASALT_${hub}_DLQ`)).state.messages, 'dead letters').toBe(0)
        expect(warnings(), 'warnings of the client, after all it sent').toHaveLength(1)
        const fresh = await Client.connect({ ...asClient(), hub })
        opened.push(fresh)
        expect(fresh.partitionCount).toBe(8)
        for (const key of keys)
          expect(await fresh.entity(Counter, key).call.get(), `${key} in the new hub`).toBe(0)
      } finally {
        await closeConnection(admin)
      }
    } finally {
      spy.mockRestore()
    }
  })
})

describe('a token', () => {
  const token = 'tok-s3cret-0123456789'
  const nats = useNatsServer({ extraConfig: `authorization { token: "${token}" }` })

  it('runs a node and a client with the token, also given in the URL', async () => {
    const url = nats.url.replace('nats://', `nats://${token}@`)
    const stack = await startStack({ servers: nats.url, token }, { servers: url }, 'tok')
    try {
      await exercise(stack.client, 'tok-1')
    } finally {
      await stack.stop()
    }
  })

  it('refuses a wrong token at once, without showing it', async () => {
    const err = await rejection(connectTo({ servers: nats.url, token: 'tok-wrong-987' }))
    expect(err).toBeInstanceOf(AuthorizationError)
    expect(err.message).toMatch(/authorization failed/)
    expect(err.message).not.toContain('tok-wrong-987')
  })
})

describe('an nkey', () => {
  const user = nkeys.createUser()
  const seed = new TextDecoder().decode(user.getSeed())
  const nats = useNatsServer({
    extraConfig: `authorization { users: [ { nkey: "${user.getPublicKey()}" } ] }`,
  })

  it('runs a node with the seed in a file and a client with the seed itself', async () => {
    const file = path.join(tempDir('basalt-nkey-'), 'node.nk')
    writeFileSync(file, `${seed}\n`)
    const stack = await startStack({ servers: nats.url, nkey: file }, { servers: nats.url, nkey: seed }, 'nk')
    try {
      await exercise(stack.client, 'nk-1')
    } finally {
      await stack.stop()
    }
  })

  it('refuses another nkey at once, naming its public key and not its seed', async () => {
    const other = nkeys.createUser()
    const otherSeed = new TextDecoder().decode(other.getSeed())
    const err = await rejection(connectTo({ servers: nats.url, nkey: otherSeed }))
    expect(err).toBeInstanceOf(AuthorizationError)
    expect(err.message).toContain(other.getPublicKey())
    expect(err.message).not.toContain(otherSeed)
  })
})

/** A CA, a server certificate for 127.0.0.1 and a client certificate, made with openssl. */
function makeCertificates(): Record<'ca' | 'serverCert' | 'serverKey' | 'clientCert' | 'clientKey', string> {
  const dir = tempDir('basalt-tls-')
  const file = (name: string) => path.join(dir, name)
  const openssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' })
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes']
  openssl(
    'req',
    '-x509',
    ...ec,
    '-keyout',
    'ca-key.pem',
    '-out',
    'ca.pem',
    '-days',
    '2',
    '-subj',
    '/CN=basalt test CA',
  )
  const sign = (name: string, ext: string) => {
    writeFileSync(file(`${name}.ext`), ext)
    openssl('req', ...ec, '-keyout', `${name}-key.pem`, '-out', `${name}.csr`, '-subj', `/CN=${name}`)
    openssl(
      'x509',
      '-req',
      '-in',
      `${name}.csr`,
      '-CA',
      'ca.pem',
      '-CAkey',
      'ca-key.pem',
      '-CAcreateserial',
      '-out',
      `${name}.pem`,
      '-days',
      '2',
      '-extfile',
      `${name}.ext`,
    )
  }
  sign('server', 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n')
  sign('client', 'extendedKeyUsage=clientAuth\n')
  return {
    ca: file('ca.pem'),
    serverCert: file('server.pem'),
    serverKey: file('server-key.pem'),
    clientCert: file('client.pem'),
    clientKey: file('client-key.pem'),
  }
}

describe('mutual TLS', () => {
  const certs = makeCertificates()
  const nats = useNatsServer({
    extraConfig: [
      'tls {',
      `  cert_file: ${JSON.stringify(certs.serverCert)}`,
      `  key_file: ${JSON.stringify(certs.serverKey)}`,
      `  ca_file: ${JSON.stringify(certs.ca)}`,
      '  verify: true',
      '  timeout: 2',
      '}',
    ].join('\n'),
  })

  it('runs a node (certificate files) and a client (PEM text, tls://) with client certificates', async () => {
    const pem = (f: string) => readFileSync(f, 'utf8')
    const stack = await startStack(
      { servers: nats.url, tls: { ca: certs.ca, cert: certs.clientCert, key: certs.clientKey } },
      {
        // (a tls:// URL, which requires TLS, works against a server that offers it)
        servers: nats.url.replace('nats://', 'tls://'),
        tls: { ca: pem(certs.ca), cert: pem(certs.clientCert), key: pem(certs.clientKey) },
      },
      'tls',
    )
    try {
      await exercise(stack.client, 'tls-1')
      expect(stack.node.nc.info?.tls_required, 'server requires TLS').toBe(true)
    } finally {
      await stack.stop()
    }
  })

  it('fails with a ConnectionError without a client certificate, once the connect timeout ran out', async () => {
    // the server closes the connection after the handshake; the client only sees its wait run out
    const err = await rejection(
      connectTo({ servers: nats.url, tls: { ca: certs.ca }, connectTimeoutMs: 1_000 }),
    )
    expect(err).toBeInstanceOf(ConnectionError)
    expect(err.message).toContain(`cannot reach NATS at ${nats.url}`)
    expect(err.message).toMatch(/client certificate/)
  })

  it("says to give the CA when the server's certificate is not trusted (no CA, or another one)", async () => {
    for (const tls of [undefined, { ca: certs.clientCert, cert: certs.clientCert, key: certs.clientKey }]) {
      const err = await rejection(
        connectTo({ servers: nats.url, ...(tls === undefined ? {} : { tls }), connectTimeoutMs: 2_000 }),
      )
      expect(err, String(err)).toBeInstanceOf(ConnectionError)
      expect(err.message).toMatch(
        new RegExp(
          `^cannot reach NATS at ${nats.url.replace(/[.]/g, '\\.')}: .*\\(the server's TLS certificate is not trusted: give the CA that signed it, tls\\.ca, --tls-ca or NATS_CA\\)$`,
        ),
      )
    }
  })
})

describe('two accounts', () => {
  const nats = useNatsServer({
    extraConfig: [
      'accounts {',
      '  A: { jetstream: enabled, users: [ { user: a, password: "pw-a" } ] }',
      '  B: { jetstream: enabled, users: [ { user: b, password: "pw-b" } ] }',
      '}',
    ].join('\n'),
  })

  it("keeps hub a's account from reading or writing hub b", async () => {
    const inA = { servers: nats.url, user: 'a', password: 'pw-a' }
    const inB = { servers: nats.url, user: 'b', password: 'pw-b' }
    const a = await startStack(inA, inA, 'a')
    const b = await startStack(inB, inB, 'b')
    const spy = await connectTo(inA, 'spy-in-a')
    const witness = await connectTo(inB, 'witness-in-b')
    try {
      await exercise(a.client, 'a-1')
      // from account A, hub b does not exist: no client, no streams, no messages
      const err = await rejection(Client.connect({ ...inA, hub: 'b' }))
      expect(err, 'client of hub b in account A').toBeInstanceOf(HubNotFoundError)
      const namesB = new HubNames('b')
      const jsmA = await jetstreamManager(spy)
      const info = await rejection(jsmA.streams.info(namesB.mailboxStream))
      expect(String(info), `stream ${namesB.mailboxStream} seen from account A`).toMatch(/not found/i)
      spy.publish(namesB.mailbox(0), new Uint8Array([1, 2, 3])) // lands in nothing of B's
      await spy.flush()
      // subscribed after that publish, so the spy does not see its own message
      const seenInA: string[] = []
      const seenInB: string[] = []
      spy.subscribe('b.>', { callback: (_, m) => void seenInA.push(m.subject) })
      spy.subscribe('$KV.basalt_b_state.>', { callback: (_, m) => void seenInA.push(m.subject) })
      witness.subscribe('b.chg.*', { callback: (_, m) => void seenInB.push(m.subject) })
      await Promise.all([spy.flush(), witness.flush()])
      await exercise(b.client, 'b-1')
      await waitFor(() => seenInB.length > 0, 'account B: change messages of hub b seen by a witness in B')
      await spy.flush()
      expect(seenInA, 'messages of hub b seen from account A').toEqual([])
      const jsmB = await jetstreamManager(witness)
      const mailbox = await jsmB.streams.info(namesB.mailboxStream)
      for (let seq = mailbox.state.first_seq; seq <= mailbox.state.last_seq; seq++) {
        const m = await jsmB.streams.getMessage(namesB.mailboxStream, { seq }).catch(() => null)
        expect(m?.data, `mailbox message ${seq} of hub b`).not.toEqual(new Uint8Array([1, 2, 3]))
      }
    } finally {
      await closeConnection(spy)
      await closeConnection(witness)
      await a.stop()
      await b.stop()
    }
  })
})

/** A server-sent-event stream being read: its events one by one, until `close`. */
async function sseEvents(url: string): Promise<{
  next(): Promise<{ event: string; data: unknown }>
  close(): Promise<void>
}> {
  const abort = new AbortController()
  const res = await fetch(url, { signal: abort.signal })
  const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader()
  let text = ''
  return {
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

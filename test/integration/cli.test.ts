/** The `basalt node` and `basalt placement` commands, run as child processes against a real nats-server. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Client, Node, silentLogger } from '../../runtime/index.ts'
import { connectTo } from '../../runtime/internal.ts'
import { ensureHub } from '../../runtime/nats/hub.ts'
import { closeConnection } from '../../runtime/nats/connect.ts'
import { freePort, startNatsServer } from '../../runtime/dev/nats-server.ts'
import { readPlacement, type PlacementTable } from '../../placement/index.ts'
import { Counter } from '../fixtures/entities.ts'
import { spawn } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { createInterface } from 'node:readline'
import {
  isProcessAlive,
  repoRoot,
  spawnTs,
  tempDir,
  useNatsServer,
  waitFor,
  type SpawnedTs,
} from '../tooling/harness.ts'

const nats = useNatsServer()

/** Starts `basalt <args>` as a child process, through the same entry point as `npx basalt`. */
function basalt(...args: string[]): SpawnedTs {
  return spawnTs('runtime/cli/basalt.mjs', args)
}

/**
 * Runs `node runtime/cli/basalt.mjs <args>` to its end as a user does, without the test's
 * `--import tsx` (which also registers tsx's CommonJS hooks: the launcher registers only its ES
 * module loader); resolves with its exit code and its output.
 */
async function runBasaltPlain(...args: string[]): Promise<{ code: number | null; output: string }> {
  const child = spawn(process.execPath, ['runtime/cli/basalt.mjs', ...args], {
    cwd: repoRoot,
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  const lines: string[] = []
  for (const stream of [child.stdout, child.stderr])
    createInterface({ input: stream }).on('line', (l) => lines.push(l))
  const timer = setTimeout(() => child.kill('SIGKILL'), 30_000)
  const code = await new Promise<number | null>((resolve) => child.once('close', resolve))
  clearTimeout(timer)
  return { code, output: lines.join('\n') }
}

/** Runs `basalt <args>` to its end; resolves with its exit code and its output lines. */
async function runBasalt(...args: string[]): Promise<{ code: number | null; output: string }> {
  const child = basalt(...args)
  const code = await child.exited
  return { code, output: child.lines.join('\n') }
}

describe('basalt placement', () => {
  const hub = 'cli-placement'
  let node: Node

  beforeAll(async () => {
    node = await Node.start({
      servers: nats.url,
      hub,
      registry: [Counter],
      partitions: 4,
      logger: silentLogger,
    })
  })
  afterAll(async () => {
    await node?.stop()
  })

  it('prints every partition with its node and epoch, and the node as live', async () => {
    const { code, output } = await runBasalt('placement', '--servers', nats.url, '--hub', hub)
    expect(code, output).toBe(0)
    for (let p = 0; p < 4; p++) {
      const row = new RegExp(`^\\s*${p}\\s+(\\S+)\\s+(\\d+)$`, 'm').exec(output)
      expect(row?.[1], `row of partition ${p} in:\n${output}`).toBe(node.nodeId)
      expect(Number(row?.[2]), `epoch of partition ${p} in:\n${output}`).toBeGreaterThanOrEqual(1)
    }
    expect(output).toMatch(new RegExp(`^hub ${hub}: 4 partitions, 4 assigned, leader ${node.nodeId}$`, 'm'))
    expect(output).toMatch(
      new RegExp(
        `^  ${node.nodeId} \\[leader\\] .*4 partitions \\[0,1,2,3\\], features exec-seqs,lock-ops,packed-history,release-ops, last heartbeat \\d+ ms ago$`,
        'm',
      ),
    )
  })

  it('--json prints the PlacementTable', async () => {
    const { code, output } = await runBasalt('placement', '--servers', nats.url, '--hub', hub, '--json')
    expect(code, output).toBe(0)
    const table = JSON.parse(output) as PlacementTable
    expect(table.partitions).toBe(4)
    expect(table.leader).toBe(node.nodeId)
    expect(table.assignments.map((a) => [a.p, a.node])).toEqual([0, 1, 2, 3].map((p) => [p, node.nodeId]))
    expect(
      table.assignments.every((a) => a.epoch >= 1),
      output,
    ).toBe(true)
    expect(table.nodes.map((n) => [n.id, n.pid, n.partitions, n.features])).toEqual([
      [node.nodeId, process.pid, [0, 1, 2, 3], ['exec-seqs', 'lock-ops', 'packed-history', 'release-ops']],
    ])
  })

  it('readPlacement lists partitions nobody was assigned with node null and epoch 0', async () => {
    const nc = await connectTo(nats.url, 'cli-test')
    try {
      const hub = await ensureHub(nc, 'cli-empty', { partitions: 3 })
      expect(await readPlacement(hub.metaKv, hub.jsm)).toEqual({
        partitions: 3,
        leader: null,
        nodes: [],
        assignments: [0, 1, 2].map((p) => ({ p, node: null, epoch: 0 })),
      })
    } finally {
      await closeConnection(nc)
    }
  })

  it('exits quietly with 0 when its stdout is closed early (`basalt placement | head -2`)', async () => {
    const child = basalt('placement', '--servers', nats.url, '--hub', hub)
    child.child.stdout!.destroy() // the reader is gone before the table is written
    const code = await child.exited
    expect(child.lines.join('\n')).not.toMatch(/EPIPE|Unhandled|Error/)
    expect(code, child.lines.join('\n')).toBe(0)
  })

  it('fails with exit 1 on a hub that does not exist', async () => {
    const { code, output } = await runBasalt('placement', '--servers', nats.url, '--hub', 'no-such-hub')
    expect(code, output).toBe(1)
    expect(output).toMatch(/^basalt placement: hub 'no-such-hub' does not exist/m)
  })
})

describe('basalt node', () => {
  it('serves the registry it loaded, and stops on SIGTERM with exit 0', { timeout: 30_000 }, async () => {
    const hub = 'cli-node'
    const child = basalt(
      'node',
      '--servers',
      nats.url,
      '--hub',
      hub,
      '--load',
      'test/fixtures/registry.ts',
      '--node-id',
      'cli-node-1',
      '--partitions',
      '4',
    )
    await child.waitForLine(/^node cli-node-1 running on hub cli-node$/, 20_000)
    const client = await Client.connect({ servers: nats.url, hub })
    try {
      await client.entity(Counter, 'x').signal.add(2)
      await client.entity(Counter, 'x').call.add(3)
      expect(await client.entity(Counter, 'x').call.get()).toBe(5)
    } finally {
      await client.close()
    }
    child.kill('SIGTERM')
    const code = await child.exited
    expect(code, child.lines.join('\n')).toBe(0)
    expect(child.lines).toContain('node cli-node-1 stopped')
  })

  it(
    'stops gracefully when one SIGTERM arrives twice at once (GNU timeout signals the process, then its group)',
    { timeout: 30_000 },
    async () => {
      const hub = 'cli-double-term'
      const child = basalt(
        'node',
        '--servers',
        nats.url,
        '--hub',
        hub,
        '--load',
        'test/fixtures/registry.ts',
        '--node-id',
        'cli-double-1',
        '--partitions',
        '16',
        '--workers',
        '1',
        '--cache-size',
        '500',
        '--snapshot-interval-ms',
        '500',
      )
      await child.waitForLine(/^node cli-double-1 running on hub cli-double-term$/, 20_000)
      // the two copies come microseconds apart; on a busy machine the node may have taken the
      // first before the second arrives: 20 ms apart here
      child.kill('SIGTERM')
      await new Promise((resolve) => setTimeout(resolve, 20))
      child.kill('SIGTERM')
      const code = await child.exited
      expect(code, child.lines.join('\n')).toBe(0)
      expect(child.lines).toContain('node cli-double-1 stopped')
      expect(child.lines.join('\n')).not.toContain('again while stopping')
    },
  )

  it(
    'runs its partitions on --workers threads, and stops on SIGTERM with exit 0',
    { timeout: 60_000 },
    async () => {
      const hub = 'cli-workers'
      const child = basalt(
        'node',
        '--servers',
        nats.url,
        '--hub',
        hub,
        '--load',
        'test/fixtures/threads-registry.ts',
        '--node-id',
        'cli-workers-1',
        '--partitions',
        '4',
        '--workers',
        '2',
      )
      await child.waitForLine(/^node cli-workers-1 runs its partitions on 2 worker threads$/, 30_000)
      const client = await Client.connect({ servers: nats.url, hub })
      try {
        const keys = Array.from({ length: 40 }, (_, i) => `w${i}`)
        await Promise.all(keys.map((k) => client.entity(Counter, k).signal.add(2)))
        const values = await Promise.all(keys.map((k) => client.entity(Counter, k).call.get()))
        expect(values, 'counters served by the worker threads').toEqual(keys.map(() => 2))
      } finally {
        await client.close()
      }
      child.kill('SIGTERM')
      const code = await child.exited
      expect(code, child.lines.join('\n')).toBe(0)
      expect(child.lines).toContain('node cli-workers-1 stopped')
    },
  )

  it('exits on SIGTERM while one of its activities never settles', { timeout: 60_000 }, async () => {
    const hub = 'cli-hung-activity'
    const child = basalt(
      'node',
      '--servers',
      nats.url,
      '--hub',
      hub,
      '--load',
      'test/fixtures/registry.ts',
      '--node-id',
      'cli-hung-1',
      '--partitions',
      '2',
      '--workers',
      '1',
      '--log-level',
      'warn',
    )
    await child.waitForLine(/^node cli-hung-1 running on hub cli-hung-activity$/, 20_000)
    // --log-level warn: no info lines (one "partition recovered" per partition otherwise)
    expect(child.lines.filter((line) => / info /.test(line))).toEqual([])
    const client = await Client.connect({ servers: nats.url, hub })
    try {
      const id = await client.start('waitsForever', null)
      expect((await client.getStatus(id))?.status).toBe('Running')
    } finally {
      await client.close()
    }
    const signalledAt = Date.now()
    child.kill('SIGTERM')
    const code = await child.exited
    // before, the activity's 5-minute timeout timer kept the process alive after "stopped"
    expect(
      Date.now() - signalledAt,
      `ms from SIGTERM to exit; output:\n${child.lines.join('\n')}`,
    ).toBeLessThan(15_000)
    expect(code, child.lines.join('\n')).toBe(0)
    expect(child.lines).toContain('node cli-hung-1 stopped')
  })

  it('refuses a --log-level it does not know', async () => {
    const { code, output } = await runBasalt('node', '--load', 'x.ts', '--log-level', 'chatty')
    expect(code, output).toBe(2)
    expect(output).toMatch(
      /--log-level <level>' argument 'chatty' is invalid. Allowed choices are info, warn, error/,
    )
  })

  it('exits within 3 s on SIGTERM when its NATS server is gone', { timeout: 60_000 }, async () => {
    const server = await startNatsServer()
    try {
      const child = basalt(
        'node',
        '--servers',
        server.url,
        '--hub',
        'cli-gone',
        '--load',
        'test/fixtures/registry.ts',
        '--node-id',
        'cli-gone-1',
        '--partitions',
        '4',
      )
      await child.waitForLine(/^node cli-gone-1 running on hub cli-gone$/, 20_000)
      await server.stop('SIGKILL')
      const signalledAt = Date.now()
      child.kill('SIGTERM')
      const code = await child.exited
      const took = Date.now() - signalledAt
      expect(took, `ms from SIGTERM to exit; output:\n${child.lines.join('\n')}`).toBeLessThan(3_000)
      expect(code, child.lines.join('\n')).toBe(0)
      expect(child.lines).toContain('node cli-gone-1 stopped')
    } finally {
      await server.dispose()
    }
  })

  it('started through npx, stops when npx gets SIGTERM', { timeout: 60_000 }, async () => {
    const hub = 'cli-npx'
    // npx runs the bin under `sh -c`, and passes SIGTERM on to that shell only
    const npx = spawn(
      'npx',
      ['basalt', 'node', '--servers', nats.url, '--hub', hub, '--load', 'test/fixtures/registry.ts'].concat([
        '--node-id',
        'cli-npx-1',
        '--partitions',
        '2',
      ]),
      {
        cwd: repoRoot,
        stdio: ['ignore', 'pipe', 'pipe'],
        env: { ...process.env, npm_config_offline: 'true' },
      },
    )
    const lines: string[] = []
    for (const stream of [npx.stdout, npx.stderr])
      createInterface({ input: stream }).on('line', (l) => lines.push(l))
    let pid: number | undefined
    try {
      await waitFor(() => lines.includes('node cli-npx-1 running on hub cli-npx'), 'the node running', 30_000)
      const nc = await connectTo(nats.url, 'cli-npx-test')
      try {
        const opened = await ensureHub(nc, hub)
        const table = await readPlacement(opened.metaKv, opened.jsm)
        pid = table.nodes.find((n) => n.id === 'cli-npx-1')?.pid
      } finally {
        await closeConnection(nc)
      }
      expect(pid, 'pid in the heartbeat of cli-npx-1').toBeGreaterThan(0)
      expect(pid, 'the node runs in a process of its own under npx').not.toBe(npx.pid)
      npx.kill('SIGTERM')
      await waitFor(
        () => !isProcessAlive(pid!),
        `node process ${pid} gone after SIGTERM to npx ${npx.pid}`,
        15_000,
      )
      await waitFor(
        () => lines.includes('node cli-npx-1 stopped'),
        `'stopped' line in:\n${lines.join('\n')}`,
        2_000,
      )
    } finally {
      if (pid !== undefined && isProcessAlive(pid)) process.kill(pid, 'SIGKILL')
      if (npx.exitCode === null && npx.signalCode === null) npx.kill('SIGKILL')
    }
  })

  it('fails with exit 1 naming the path of a module that does not exist', async () => {
    const { code, output } = await runBasalt(
      'node',
      '--servers',
      nats.url,
      '--hub',
      'cli-errors',
      '--load',
      'test/fixtures/no-such-registry.ts',
    )
    expect(code, output).toBe(1)
    expect(output).toMatch(/^basalt node: cannot load module .*test\/fixtures\/no-such-registry\.ts/m)
  })

  it('says to add "type": "module" or name the file .mts for an ES module in a CommonJS scope', async () => {
    const dir = tempDir('basalt-cjs-scope-')
    writeFileSync(`${dir}/package.json`, '{ "name": "app" }\n')
    writeFileSync(`${dir}/reg.ts`, 'export const registry = []\n')
    const { code, output } = await runBasaltPlain(
      ...['node', '--servers', nats.url, '--hub', 'cli-errors', '--load', `${dir}/reg.ts`],
    )
    expect(code, output).toBe(1)
    // was Node's "Cannot require() ES Module … in a cycle. A cycle involving require(esm) is not allowed"
    expect(output.split('\n')).toContain(
      `basalt node: cannot load module '${dir}/reg.ts' (${dir}/reg.ts): it is an ES module ` +
        `(import/export) in a CommonJS scope (${dir}/package.json has no "type"), which ` +
        `Node does not load as an ES module: add "type": "module" to ${dir}/package.json, or name ` +
        'the file .mts',
    )
  })

  it('names the place of a syntax error in the module, or in one it imports: file:line[:column]', async () => {
    const dir = tempDir('basalt-syntax-')
    writeFileSync(`${dir}/cut.mjs`, 'export const registry = [\n  1,\n')
    writeFileSync(`${dir}/comma.mjs`, 'export const a = 1\nexport const registry = [\n  a +,\n]\n')
    writeFileSync(`${dir}/importer.mjs`, "export { registry } from './comma.mjs'\n")
    const [cut, comma, importer] = await Promise.all(
      ['cut.mjs', 'comma.mjs', 'importer.mjs'].map((f) =>
        runBasalt('node', '--servers', nats.url, '--hub', 'cli-errors', '--load', `${dir}/${f}`),
      ),
    )
    expect(cut!.code, cut!.output).toBe(1)
    // was "…: Unexpected end of input", with no place
    expect(cut!.output.split('\n')).toContain(
      `basalt node: cannot load module '${dir}/cut.mjs' (${dir}/cut.mjs): SyntaxError at ${dir}/cut.mjs:3: Unexpected end of input`,
    )
    expect(comma!.code, comma!.output).toBe(1)
    expect(comma!.output.split('\n')).toContain(
      `basalt node: cannot load module '${dir}/comma.mjs' (${dir}/comma.mjs): SyntaxError at ${dir}/comma.mjs:3:6: Unexpected token ','`,
    )
    // Node 20 names no file for a syntax error in an imported ES module: was "…: Unexpected token ','"
    expect(importer!.code, importer!.output).toBe(1)
    expect(importer!.output.split('\n')).toContain(
      `basalt node: cannot load module '${dir}/importer.mjs' (${dir}/importer.mjs): SyntaxError at ${dir}/comma.mjs:3:6: Unexpected token ','`,
    )
  })

  it('fails with exit 1 on a module that exports no registry', async () => {
    const { code, output } = await runBasalt(
      'node',
      '--servers',
      nats.url,
      '--hub',
      'cli-errors',
      '--load',
      './test/fixtures/entities.ts',
    )
    expect(code, output).toBe(1)
    expect(output).toMatch(/^basalt node: module '\.\/test\/fixtures\/entities\.ts' exports no registry/m)
  })

  it('fails with exit 1 naming the URL when NATS cannot be reached', async () => {
    const url = `nats://127.0.0.1:${await freePort()}`
    const { code, output } = await runBasalt(
      'node',
      '--servers',
      url,
      '--hub',
      'cli-errors',
      '--load',
      'test/fixtures/registry.ts',
    )
    expect(code, output).toBe(1)
    expect(output).toMatch(new RegExp(`^basalt node: cannot reach NATS at ${url}`, 'm'))
  })

  it('fails with exit 2 and a pointer to --help when --hub is missing', async () => {
    const { code, output } = await runBasalt(
      'node',
      '--servers',
      nats.url,
      '--load',
      'test/fixtures/registry.ts',
    )
    expect(code, output).toBe(2)
    expect(output).toMatch(
      /^basalt node: missing --hub: give the hub name, or set BASALT_HUB \(see 'basalt node --help'\)$/m,
    )
  })
})

/**
 * `basalt dev` (its embedded server, its data, a second one refused, one killed with SIGKILL) and
 * a dashboard port that is taken: each test runs the real binary as a child process. Beside
 * cli-commands.test.ts, whose tests share one node; these need none.
 */
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { describe, expect, it } from 'vitest'
import { Client } from '../../runtime/index.ts'
import { closeConnection, connectTo } from '../../runtime/nats/connect.ts'
import { freePort } from '../../runtime/dev/nats-server.ts'
import { spawnTs, tempDir, useNatsServer, basaltCli } from '../tooling/harness.ts'

const nats = useNatsServer()
const HUB = 'cli-dev'

const { run } = basaltCli(nats, HUB)

describe('basalt dev', () => {
  it(
    'starts a server, a node and the dashboard, prints the URLs, and stops on SIGTERM with exit 0',
    { timeout: 120_000 },
    async () => {
      const port = await freePort()
      const dev = spawnTs('runtime/cli/basalt.mjs', [
        'dev',
        '--port',
        String(port),
        '--data',
        tempDir('basalt-dev-'),
        '--partitions',
        '2',
        '--dashboard-port',
        '0',
      ])
      const url = `nats://127.0.0.1:${port}`
      await dev.waitForLine(new RegExp(`^nats +${url} `), 30_000)
      // (a node start that waits on JetStream retries for 30 s, and says so after 10 s)
      await dev.waitForLine(/^Ctrl-C stops$/, 60_000)
      expect(dev.lines).toContain(`in another terminal: export NATS_URL=${url} BASALT_HUB=dev`)
      // the start-up output ends with the dashboard's URL, and the dashboard answers there
      const dashboardLine = await dev.waitForLine(/^dashboard http:\/\/127\.0\.0\.1:\d+\/$/, 10_000)
      const page = await fetch(dashboardLine.slice('dashboard '.length))
      expect(page.status).toBe(200)
      expect(await page.text()).toContain('<script type="module" src="/ui/app.js">')
      const devClient = await Client.connect({ servers: url, hub: 'dev' })
      try {
        await devClient.entity((await import('../../examples/counter/index.ts')).Counter, 'x').call.add(1)
      } finally {
        await devClient.close()
      }
      dev.kill('SIGTERM')
      const code = await dev.exited
      expect(code, dev.lines.join('\n')).toBe(0)
      expect(dev.lines).toContain('stopped')
      await expect(connectTo(url, 'after-dev'), 'the embedded server is gone').rejects.toThrow(
        /cannot reach NATS/,
      )
    },
  )
})

describe('basalt dev killed with SIGKILL', () => {
  it(
    'leaves a server that the next basalt dev on the same data stops first; a live one is refused',
    { timeout: 150_000 },
    async () => {
      const port = await freePort()
      const data = tempDir('basalt-dev-kill-')
      const args = ['dev', '--port', String(port), '--data', data, '--partitions', '1', '--no-dashboard']
      const url = `nats://127.0.0.1:${port}`
      const first = spawnTs('runtime/cli/basalt.mjs', args)
      await first.waitForLine(/^Ctrl-C stops$/, 60_000)
      // a count of one in the singular
      expect(first.lines.join('\n')).toMatch(/^hub +dev, 1 partition, node \S+$/m)
      expect(first.lines.join('\n')).toMatch(
        /^serving the examples: 2 entity types, \d+ orchestrations, \d+ activities$/m,
      )
      const { Counter } = await import('../../examples/counter/index.ts')
      const devClient = await Client.connect({ servers: url, hub: 'dev' })
      await devClient.entity(Counter, 'kept').call.add(5)
      await devClient.close()

      // a second basalt dev on the same data while the first runs: refused, naming it
      const second = spawnTs('runtime/cli/basalt.mjs', args)
      expect(await second.exited, second.lines.join('\n')).toBe(1)
      expect(second.lines.join('\n')).toContain(
        `another basalt dev (pid ${first.pid}) runs with its data in ${data}/nats; stop it first`,
      )

      first.kill('SIGKILL')
      await first.exited
      const orphan = await connectTo(url, 'orphan-check')
      await closeConnection(orphan) // the first one's server still runs

      const third = spawnTs('runtime/cli/basalt.mjs', args)
      try {
        await third.waitForLine(/^Ctrl-C stops$/, 60_000)
        expect(third.lines.join('\n')).toMatch(
          new RegExp(
            `^stopping the nats-server \\(pid \\d+\\) that an earlier basalt dev \\(pid ${first.pid}\\) left running`,
            'm',
          ),
        )
        const again = await Client.connect({ servers: url, hub: 'dev' })
        try {
          // the data was kept: the state committed before the kill is there
          expect(await again.entity(Counter, 'kept').call.get()).toBe(5)
        } finally {
          await again.close()
        }
      } finally {
        third.kill('SIGTERM')
      }
      expect(await third.exited, third.lines.join('\n')).toBe(0)
      await expect(connectTo(url, 'after-dev'), 'no server is left').rejects.toThrow(/cannot reach NATS/)
    },
  )
})

describe('a dashboard port that is taken', () => {
  it(
    'basalt dashboard --port and basalt dev --dashboard-port exit 1 at once, naming the flag',
    { timeout: 60_000 },
    async () => {
      const taken = createServer()
      await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve))
      const { port } = taken.address() as AddressInfo
      try {
        const dashboard = await run('dashboard', '--port', String(port))
        expect(dashboard.code, dashboard.output).toBe(1)
        expect(dashboard.lines).toEqual([
          `basalt dashboard: dashboard port ${port} on 127.0.0.1 is in use (another process listens there): ` +
            'give another port (--port), or 0 for any free one',
        ])
        // it used to print the listen error and then hang, its hub connection left open
        const natsPort = await freePort()
        const dev = spawnTs('runtime/cli/basalt.mjs', [
          ...['dev', '--port', String(natsPort), '--data', tempDir('basalt-dev-taken-')],
          ...['--partitions', '1', '--dashboard-port', String(port)],
        ])
        expect(await dev.exited, dev.lines.join('\n')).toBe(1)
        expect(dev.lines).toContain(
          `basalt dev: dashboard port ${port} on 127.0.0.1 is in use (another process listens there): ` +
            'give another port (--dashboard-port, dashboard.port), or 0 for any free one',
        )
        await expect(
          connectTo(`nats://127.0.0.1:${natsPort}`, 'after-dev'),
          'the embedded server is gone',
        ).rejects.toThrow(/cannot reach NATS/)
      } finally {
        taken.close()
      }
    },
  )
})

describe('a NATS port that is taken', () => {
  it(
    'basalt dev --port exits 1 at once with one line naming the flag, not the server log',
    { timeout: 60_000 },
    async () => {
      const taken = createServer()
      await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve))
      const { port } = taken.address() as AddressInfo
      try {
        const dev = spawnTs('runtime/cli/basalt.mjs', [
          ...['dev', '--port', String(port), '--data', tempDir('basalt-dev-nats-taken-')],
          ...['--partitions', '1', '--no-dashboard'],
        ])
        expect(await dev.exited, dev.lines.join('\n')).toBe(1)
        expect(dev.lines).toEqual([
          `basalt dev: NATS port ${port} on 127.0.0.1 is in use (another process listens there): ` +
            'give another port (--port)',
        ])
      } finally {
        taken.close()
      }
    },
  )
})

/**
 * The names a node's connections carry in the server's monitoring (`/connz`): an operator looking at
 * a hub's connections tells the nodes apart, and within one node its partition threads and its
 * activity results (an outside trial saw every node's connections named `basalt-node`).
 */
import path from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { Node, silentLogger } from '../../runtime/index.ts'
import { freePort, startNatsServer, type NatsServer } from '../../runtime/dev/nats-server.ts'
import { repoRoot } from '../tooling/harness.ts'

let server: NatsServer | undefined
afterAll(async () => server?.dispose())

describe('connection names', () => {
  it('name the node, each of its partition threads and its activity results', async () => {
    const monitor = await freePort()
    server = await startNatsServer({ extraConfig: `http: "127.0.0.1:${monitor}"` })
    const node = await Node.start({
      servers: server.url,
      hub: 'connection-names',
      partitions: 2,
      nodeId: 'node-a',
      registryModule: path.join(repoRoot, 'test/fixtures/registry.ts'), // (it has an activity)
      workers: 2,
      logger: silentLogger,
    })
    try {
      const connz = (await (await fetch(`http://127.0.0.1:${monitor}/connz?limit=1000`)).json()) as {
        connections: Array<{ name?: string }>
      }
      const names = connz.connections.map((c) => c.name).filter((n) => n?.startsWith('basalt-node'))
      expect(names.sort()).toEqual([
        'basalt-node node-a',
        'basalt-node node-a activities',
        'basalt-node node-a thread 0',
        'basalt-node node-a thread 1',
      ])
    } finally {
      await node.stop()
    }
  })
})

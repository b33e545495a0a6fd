/**
 * The package's public surface: the root entry exports exactly the names applications use, the
 * engine internals stay behind `basalt/internal`, and package.json publishes no other subpath.
 */
import { readFileSync } from 'node:fs'
import path from 'node:path'
import { describe, expect, expectTypeOf, it } from 'vitest'
import * as publicEntry from '../../runtime/index.ts'
import type {
  Client,
  ErrorInfo,
  HubOptions,
  InstanceFilter,
  NodeOptions,
  RegistryItem,
  RuntimeStatus,
  StartOptions,
  SubjectPermissions,
} from '../../runtime/index.ts'
import * as internalEntry from '../../runtime/internal.ts'

const ROOT = path.resolve(import.meta.dirname, '../..')

describe('public surface', () => {
  it('exports exactly the values applications use', () => {
    expect(Object.keys(publicEntry).sort()).toEqual(
      [
        'AuthorizationError',
        'BadInputError',
        'BasaltError',
        'CONNECTION_ENV',
        'CONNECTION_FLAGS',
        'Client',
        'ClientClosedError',
        'CodecError',
        'ConnectionError',
        'Entity',
        'ErrorCode',
        'FencedError',
        'HubNotFoundError',
        'IllegalStateError',
        'InstanceExistsError',
        'InstanceNotFoundError',
        'Node',
        'NonDeterminismError',
        'PartitionUnavailableError',
        'PayloadTooLargeError',
        'PoisonMessageError',
        'RemoteError',
        'RuntimeStatus',
        'StorageFullError',
        'TaskFailedError',
        'TimeoutError',
        'UnknownEntityError',
        'UnknownOperationError',
        'activity',
        'clientPermissions',
        'connectionFromEnv',
        'connectionFromFlags',
        'consoleLogger',
        'externalEvent',
        'isTerminal',
        'nodePermissions',
        'orchestration',
        'redactUrl',
        'renderPermissions',
        'silentLogger',
      ].sort(),
    )
  })

  it('names the option and filter types', () => {
    expectTypeOf<StartOptions>().toEqualTypeOf<{
      instanceId?: string
      startAt?: Date | number
      replace?: boolean
    }>()
    expectTypeOf<Parameters<Client['start']>[2]>().toEqualTypeOf<StartOptions | undefined>()
    expectTypeOf<Parameters<Client['listInstances']>[0]>().toMatchTypeOf<InstanceFilter | undefined>()
    expectTypeOf<NodeOptions>().toMatchTypeOf<HubOptions>()
    expectTypeOf<NodeOptions['registry']>().toEqualTypeOf<RegistryItem[] | undefined>()
    expectTypeOf<RuntimeStatus>().toMatchTypeOf<string>()
    expectTypeOf<ErrorInfo>().toHaveProperty('code')
  })

  it('exports the permission lists and their rendering that docs/SECURITY.md shows', () => {
    expectTypeOf(publicEntry.nodePermissions).toEqualTypeOf<(hub: string) => SubjectPermissions>()
    expectTypeOf(publicEntry.clientPermissions).toEqualTypeOf<(hub: string) => SubjectPermissions>()
    expectTypeOf<SubjectPermissions>().toEqualTypeOf<{ publish: string[]; subscribe: string[] }>()
    const rendered = publicEntry.renderPermissions(publicEntry.nodePermissions('orders'))
    expect(rendered).toMatch(/^permissions: \{\n {2}publish: \{ allow: \["\$JS\.API\.>", /)
    expect(rendered).toContain('"$KV.basalt_orders_meta.>"')
    expect(publicEntry.clientPermissions('orders').publish).toContain('orders.mbx.*')
    // the blocks SECURITY.md gives for hub orders hold these lists
    const security = readFileSync(path.join(ROOT, 'docs', 'SECURITY.md'), 'utf8')
    const nodeAt = security.indexOf('{ user: orders-node')
    const clientAt = security.indexOf('{ user: orders-client')
    const blocks = {
      node: [security.slice(nodeAt, clientAt), publicEntry.nodePermissions('orders')],
      client: [
        security.slice(clientAt, security.indexOf('\n  ]\n}', clientAt)),
        publicEntry.clientPermissions('orders'),
      ],
    } as const
    for (const [who, [block, permissions]] of Object.entries(blocks)) {
      expect(nodeAt > 0 && clientAt > nodeAt, "SECURITY.md's permission blocks").toBe(true)
      for (const subject of [...permissions.publish, ...permissions.subscribe]) {
        expect(block, `SECURITY.md's ${who} block holds ${subject}`).toContain(JSON.stringify(subject))
      }
    }
  })

  it('keeps engine internals behind basalt/internal', () => {
    for (const name of ['connectTo', 'encode', 'decode', 'HubNames', 'openHub', 'ensureHub', 'deleteHub']) {
      expect(publicEntry, `public entry exports ${name}`).not.toHaveProperty(name)
      expect(internalEntry, `internal entry exports ${name}`).toHaveProperty(name)
    }
  })

  it('publishes only the root and the internal entry', () => {
    const pkg = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as {
      exports: Record<string, unknown>
    }
    expect(pkg.exports).toEqual({
      '.': { types: './dist/runtime/index.d.ts', default: './dist/runtime/index.js' },
      './internal': { types: './dist/runtime/internal.d.ts', default: './dist/runtime/internal.js' },
      './package.json': './package.json',
    })
  })
})

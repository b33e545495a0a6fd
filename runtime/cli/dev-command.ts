/**
 * `basalt dev`: everything needed to try Basalt on one machine, in one process — an embedded
 * nats-server with its data under `.basalt/` (kept between runs; a server that a killed `basalt
 * dev` left running there is stopped first, see runtime/dev/store-owner.ts), and one node serving a registry
 * module (`--load`) or the examples, and the web dashboard (read-only unless `--allow-actions`) —
 * until Ctrl-C or SIGTERM stops the node (final snapshots) and then the server.
 */
import path from 'node:path'
import { BadInputError, counted } from '../../actors/index.ts'
import {
  claimStore,
  isPortClash,
  reclaimStore,
  releaseStore,
  startNatsServer,
  type NatsServer,
} from '../dev/index.ts'
import { Node, splitRegistry, type RegistryItem, type SplitRegistry } from '../node/index.ts'
import { consoleLogger } from '../util/index.ts'
import { loadRegistry } from './node-command.ts'
import { waitForStopSignal } from './stop-signal.ts'
import { stdout, type Out } from './output.ts'

/** The flags of `basalt dev`. */
export interface DevFlags {
  load?: string
  hub: string
  port: number
  data: string
  partitions?: number
  /** Port of the web dashboard (default 8233; 0: any free one). */
  dashboardPort?: number
  /** False with `--no-dashboard`. */
  dashboard?: boolean
  allowActions?: boolean
  /** `--allow-host NAME`, repeated: more host names the dashboard may be reached by. */
  allowHost?: string[]
}

/**
 * Runs `basalt dev`: starts the server on `--port` (default 4222) with its store in
 * `<--data>/nats`, a node on hub `--hub` (default `dev`), prints the URL and the environment to
 * use it from other terminals, ending with the dashboard's URL, and waits for SIGINT or SIGTERM; then stops node and server and
 * resolves with 0. Throws `NatsServerMissingError` (saying how to install it) when there is no
 * nats-server binary, `NatsServerStartError` when it does not start, `BadInputError` for a port
 * that is taken (naming `--port`), for a
 * module that cannot be loaded or a dashboard port that is taken (naming `--dashboard-port`;
 * the server is stopped again).
 *
 * @example await runDevCommand({ hub: 'dev', port: 4222, data: '.basalt' })
 */
export async function runDevCommand(flags: DevFlags, out: Out = stdout): Promise<number> {
  const registry: RegistryItem[] =
    flags.load === undefined ? await exampleRegistry() : await loadRegistry(flags.load)
  const storeDir = path.resolve(flags.data, 'nats')
  let server: NatsServer | undefined
  let node: Node | undefined
  // a basalt dev killed with SIGKILL left its server running on this data: stop that one first
  await reclaimStore(storeDir, out)
  try {
    server = await startNatsServer({ storeDir, port: flags.port }).catch((err: unknown) => {
      // one line naming the flag, as for a taken dashboard port, not the server's log
      if (!isPortClash(err)) throw err
      throw new BadInputError(
        `NATS port ${flags.port} on 127.0.0.1 is in use (another process listens there): give another port (--port)`,
        { cause: err },
      )
    })
    await claimStore(storeDir, server.pid)
    // (before the node starts: on a busy machine that takes a while, and the server is up)
    out(`nats    ${server.url}  (data in ${path.relative(process.cwd(), storeDir) || '.'})`)
    node = await Node.start({
      servers: server.url,
      hub: flags.hub,
      registry,
      logger: consoleLogger(`basalt[${flags.hub}]`, true), // warnings and errors only
      ...(flags.partitions === undefined ? {} : { partitions: flags.partitions }),
      ...(flags.dashboard === false
        ? {}
        : {
            dashboard: {
              port: flags.dashboardPort ?? 8233,
              allowActions: flags.allowActions === true,
              allowedHosts: flags.allowHost ?? [],
            },
          }),
    })
    const stopRequested = waitForStopSignal(node.nc.closed())
    out(`hub     ${flags.hub}, ${counted(node.partitionCount, 'partition')}, node ${node.nodeId}`)
    out(servingLine(flags.load ?? 'the examples', splitRegistry(registry)))
    out('')
    out(`in another terminal: export NATS_URL=${server.url} BASALT_HUB=${flags.hub}`)
    out('Ctrl-C stops')
    if (node.dashboardUrl !== undefined) out(`dashboard ${node.dashboardUrl}`)
    const signal = await stopRequested
    out(signal === 'closed' ? 'connection to nats-server lost; stopping' : `${signal}: stopping`)
    await node.stop({ snapshot: signal !== 'closed' })
    node = undefined
    await server.stop()
    out('stopped')
    return 0
  } finally {
    if (node !== undefined) await node.stop().catch(() => {})
    await server?.dispose()
    if (server !== undefined) await releaseStore(storeDir)
  }
}

/** The registry of the examples (counter, bank, orchestrations), as `npm run demo` serves it. */
async function exampleRegistry(): Promise<RegistryItem[]> {
  const [{ counterRegistry }, { bankRegistry }, { workflowRegistry }] = await Promise.all([
    import('../../examples/counter/index.ts'),
    import('../../examples/bank/index.ts'),
    import('../../examples/workflows/index.ts'),
  ])
  return [...counterRegistry, ...bankRegistry, ...workflowRegistry]
}

/** What `basalt dev` serves: `serving the examples: 2 entity types, 7 orchestrations, 1 activity`. */
export function servingLine(what: string, { entities, orchestrations, activities }: SplitRegistry): string {
  return (
    `serving ${what}: ${counted(entities.length, 'entity type')}, ` +
    `${counted(orchestrations.length, 'orchestration')}, ${counted(activities.length, 'activity')}`
  )
}

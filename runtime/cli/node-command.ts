/**
 * `basalt node`: runs a Basalt node as its own process, with the registry of a user module, until
 * SIGTERM or SIGINT stops it gracefully.
 */
import { existsSync } from 'node:fs'
import { createRequire } from 'node:module'
import path from 'node:path'
import { BadInputError } from '../../actors/index.ts'
import { Node, type RegistryItem } from '../node/index.ts'
import { connectionFromFlags, hubFromFlags, type ConnectionFlags } from './connection.ts'
import { UsageError } from './args.ts'
import { stdout, type Out } from './output.ts'
import { importModule } from './load-module.ts'

/** Options of {@link Node.start}, including those that a given version of `NodeOptions` may lack. */
type StartOptions = Parameters<typeof Node.start>[0] & { heartbeatMs?: number; leaseMs?: number }

/** Signals that stop a node gracefully. */
const STOP_SIGNALS = ['SIGTERM', 'SIGINT'] as const

/** The flags of `basalt node`, as commander parses them. */
export interface NodeFlags extends ConnectionFlags {
  load?: string
  nodeId?: string
  partitions?: number
  replicas?: number
  heartbeatMs?: number
  leaseMs?: number
  activityConcurrency?: number
  metricsPort?: number
  metricsHost?: string
}

/**
 * Runs `basalt node`: loads the registry from `--load`, starts a node on `--servers` / `--hub`,
 * prints `node <id> running on hub <hub>` (and `metrics at <url>` with `--metrics-port`), and on SIGTERM or SIGINT stops it (final snapshots,
 * partitions handed over), prints `node <id> stopped` and resolves with 0. A second signal while
 * stopping exits at once with 1.
 *
 * Throws `UsageError` for a missing option (exit 2), `BadInputError` for a module that cannot be
 * loaded or exports no registry, and whatever `Node.start` throws (e.g. `ConnectionError` naming
 * the URL); `main` prints those in one line and exits with 1.
 *
 * @example await runNodeCommand({ servers: 'nats://127.0.0.1:4222', hub: 'demo', load: './registry.ts' })
 */
export async function runNodeCommand(flags: NodeFlags, out: Out = stdout): Promise<number> {
  const connection = connectionFromFlags(flags)
  const hub = hubFromFlags(flags)
  const load = flags.load?.trim() ?? ''
  if (load === '') throw new UsageError('missing --load: give the module that exports the registry')
  const options: StartOptions = { ...connection, hub, registry: [] }
  if (flags.nodeId !== undefined) options.nodeId = flags.nodeId
  if (flags.partitions !== undefined) options.partitions = flags.partitions
  if (flags.replicas !== undefined) options.replicas = flags.replicas
  if (flags.heartbeatMs !== undefined) options.heartbeatMs = flags.heartbeatMs
  if (flags.leaseMs !== undefined) options.leaseMs = flags.leaseMs
  if (flags.activityConcurrency !== undefined) options.activityConcurrency = flags.activityConcurrency
  if (flags.metricsHost !== undefined && flags.metricsPort === undefined)
    throw new UsageError('--metrics-host needs --metrics-port')
  if (flags.metricsPort !== undefined) {
    options.metrics = {
      port: flags.metricsPort,
      ...(flags.metricsHost === undefined ? {} : { host: flags.metricsHost }),
    }
  }

  options.registry = await loadRegistry(load)
  const node = await Node.start(options)
  // listen before telling anyone that the node runs: a SIGTERM sent on that line must stop it
  const stopRequested = waitForStopSignal(node)
  out(`node ${node.nodeId} running on hub ${hub}`)
  if (node.metricsUrl !== undefined) out(`metrics at ${node.metricsUrl}`)

  const signal = await stopRequested
  if (signal === 'closed') {
    await node.stop()
    throw new Error(`node ${node.nodeId}: connection to NATS closed unexpectedly`)
  }
  const forceExit = () => {
    process.stderr.write(`basalt node: ${signal} again while stopping; exiting now\n`)
    process.exit(1)
  }
  for (const s of STOP_SIGNALS) process.once(s, forceExit)
  try {
    await node.stop({ snapshot: true })
  } finally {
    for (const s of STOP_SIGNALS) process.off(s, forceExit)
  }
  out(`node ${node.nodeId} stopped`)
  return 0
}

/** How often a node started by npm checks that its parent process is still there, in ms. */
const PARENT_CHECK_MS = 250

/**
 * Resolves with the first stop signal received, or 'closed' if the NATS connection closes first.
 * Started by npm (`npx basalt node`, an npm script), the node also stops — as on SIGTERM — once
 * its parent process is gone: npm runs it under `sh -c` and passes SIGTERM to that shell only,
 * which ends without passing it on, leaving the node running with no one to stop it.
 */
export function waitForStopSignal(node: Node): Promise<NodeJS.Signals | 'closed'> {
  return new Promise((resolve) => {
    let parentWatch: NodeJS.Timeout | undefined
    const stop = (reason: NodeJS.Signals | 'closed') => {
      for (const s of STOP_SIGNALS) process.off(s, onSignal)
      clearInterval(parentWatch)
      resolve(reason)
    }
    const onSignal = (signal: NodeJS.Signals) => stop(signal)
    for (const s of STOP_SIGNALS) process.on(s, onSignal)
    if (process.env['npm_lifecycle_event'] !== undefined) {
      const parent = process.ppid
      parentWatch = setInterval(() => {
        if (process.ppid !== parent) stop('SIGTERM')
      }, PARENT_CHECK_MS)
      parentWatch.unref()
    }
    void node.nc.closed().then(() => stop('closed'))
  })
}

/**
 * Imports module `specifier` and returns its registry: `export const registry = [...]`, else
 * `export default [...]`. A specifier that looks like a path (starts with `.` or `/`, names an
 * existing file, or ends in a script extension) is resolved against the working directory;
 * anything else is a package specifier, resolved from Basalt's install and then from the working
 * directory. Throws `BadInputError` naming the module (and the path it resolved to) when it cannot
 * be loaded, or when it exports no array under either name.
 *
 * @example const registry = await loadRegistry('./dist/registry.js')
 */
export async function loadRegistry(specifier: string, cwd = process.cwd()): Promise<RegistryItem[]> {
  const module = isPathLike(specifier, cwd)
    ? await importFile(path.resolve(cwd, specifier), specifier)
    : await importPackage(specifier, cwd)
  const fallback = module['default'] as { registry?: unknown } | undefined
  // A CommonJS module's `module.exports` arrives as the default export.
  const registry = module['registry'] ?? (Array.isArray(fallback) ? fallback : fallback?.registry)
  if (!Array.isArray(registry)) {
    const names = Object.keys(module).map((n) => `'${n}'`)
    const listed = names.length > 8 ? [...names.slice(0, 8), `and ${names.length - 8} more`] : names
    throw new BadInputError(
      `module '${specifier}' exports no registry: expected 'export const registry = [...]' or ` +
        `'export default [...]' (an array of entity classes, orchestrations and activities); ` +
        `it exports ${names.length === 0 ? 'nothing' : listed.join(', ')}`,
    )
  }
  return registry as RegistryItem[]
}

function isPathLike(specifier: string, cwd: string): boolean {
  return (
    specifier.startsWith('.') ||
    path.isAbsolute(specifier) ||
    /\.(?:[cm]?[jt]s|tsx|jsx)$/.test(specifier) ||
    existsSync(path.resolve(cwd, specifier))
  )
}

async function importFile(file: string, specifier: string): Promise<Record<string, unknown>> {
  if (!existsSync(file)) {
    throw new BadInputError(`cannot load module '${specifier}': no such file ${file}`)
  }
  try {
    return await importModule(file)
  } catch (err) {
    if (err instanceof BadInputError) throw err
    throw new BadInputError(`cannot load module '${specifier}' (${file}): ${(err as Error).message}`, {
      cause: err,
    })
  }
}

async function importPackage(specifier: string, cwd: string): Promise<Record<string, unknown>> {
  try {
    return (await import(specifier)) as Record<string, unknown>
  } catch (err) {
    if ((err as { code?: unknown }).code !== 'ERR_MODULE_NOT_FOUND') {
      throw new BadInputError(`cannot load module '${specifier}': ${(err as Error).message}`, { cause: err })
    }
  }
  let file: string
  try {
    file = createRequire(path.join(cwd, 'package.json')).resolve(specifier)
  } catch {
    throw new BadInputError(
      `cannot load module '${specifier}': no such package (looked from ${cwd}); ` +
        `give a path such as './${specifier}' to load a file`,
    )
  }
  return importFile(file, specifier)
}

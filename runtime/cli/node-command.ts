/**
 * `basalt node`: runs a Basalt node as its own process, with the registry of a user module, until
 * SIGTERM or SIGINT stops it gracefully.
 */
import { Node, loadRegistry, placementTiming } from '../node/index.ts'
import { connectionFromFlags, hubFromFlags, type ConnectionFlags } from './connection.ts'
import { NODE_ID } from '../../placement/index.ts'
import { UsageError } from './args.ts'
import { stdout, type Out } from './output.ts'
import { STOP_SIGNALS, waitForStopSignal } from './stop-signal.ts'
import { consoleLogger, type LogLevel } from '../util/index.ts'

/** Options of {@link Node.start}, including those that a given version of `NodeOptions` may lack. */
type StartOptions = Parameters<typeof Node.start>[0] & { heartbeatMs?: number; leaseMs?: number }

export { loadRegistry }

/** The flags of `basalt node`, as commander parses them. */
export interface NodeFlags extends ConnectionFlags {
  load?: string
  nodeId?: string
  partitions?: number
  replicas?: number
  heartbeatMs?: number
  leaseMs?: number
  activityConcurrency?: number
  activityTimeoutMs?: number
  metricsPort?: number
  metricsHost?: string
  workers?: number
  /** `--log-level`: the least severe level written (default info). */
  logLevel?: LogLevel
  hangTimeoutMs?: number
  cacheSize?: number
  snapshotIntervalMs?: number
  streamTrimIntervalMs?: number
}

/**
 * Runs `basalt node`: loads the registry from `--load`, starts a node on `--servers` / `--hub`
 * with `--workers` partition threads (default: the number of cores),
 * prints `node <id> running on hub <hub>` (then, with threads, `node <id> runs its partitions on N
 * worker threads`, and `metrics at <url>` with `--metrics-port`), and on SIGTERM or SIGINT stops it (final snapshots,
 * partitions handed over), prints `node <id> stopped` and resolves with 0. A second signal while
 * stopping, a second or more after the first, exits at once with 1 (one sooner is the first
 * delivered twice, and is ignored).
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
  const options: StartOptions = { ...connection, hub }
  if (flags.nodeId !== undefined) {
    if (!NODE_ID.test(flags.nodeId)) {
      throw new UsageError(
        `--node-id ${JSON.stringify(flags.nodeId)}: expected 1 to 100 letters, digits, _ and -`,
      )
    }
    options.nodeId = flags.nodeId
  }
  if (flags.partitions !== undefined) options.partitions = flags.partitions
  if (flags.logLevel !== undefined) options.logger = consoleLogger(`basalt[${hub}]`, flags.logLevel)
  if (flags.replicas !== undefined) options.replicas = flags.replicas
  if (flags.heartbeatMs !== undefined) options.heartbeatMs = flags.heartbeatMs
  if (flags.leaseMs !== undefined) options.leaseMs = flags.leaseMs
  if (flags.activityConcurrency !== undefined) options.activityConcurrency = flags.activityConcurrency
  if (flags.activityTimeoutMs !== undefined) options.activityTimeoutMs = flags.activityTimeoutMs
  if (flags.cacheSize !== undefined) options.cacheSize = flags.cacheSize
  if (flags.snapshotIntervalMs !== undefined) options.snapshotIntervalMs = flags.snapshotIntervalMs
  if (flags.streamTrimIntervalMs !== undefined) options.streamTrimIntervalMs = flags.streamTrimIntervalMs
  if (flags.metricsHost !== undefined && flags.metricsPort === undefined)
    throw new UsageError('--metrics-host needs --metrics-port')
  if (flags.metricsPort !== undefined) {
    options.metrics = {
      port: flags.metricsPort,
      ...(flags.metricsHost === undefined ? {} : { host: flags.metricsHost }),
    }
  }
  if (flags.workers !== undefined) options.workers = flags.workers
  if (flags.hangTimeoutMs !== undefined) options.hangTimeoutMs = flags.hangTimeoutMs
  try {
    placementTiming(options)
  } catch {
    // the defaults of placementTiming, the only check it makes
    const heartbeatMs = flags.heartbeatMs ?? 1000
    const leaseMs = flags.leaseMs ?? 3000
    throw new UsageError(
      `--lease-ms ${leaseMs}: expected at least twice --heartbeat-ms (${heartbeatMs}), else a node counts as gone between two heartbeats`,
    )
  }

  // every worker thread imports the module itself (default: one thread per core)
  options.registryModule = load
  const node = await Node.start(options)
  // listen before telling anyone that the node runs: a SIGTERM sent on that line must stop it
  const closed = node.nc.closed()
  const stopRequested = waitForStopSignal(Promise.race([node.ended, closed]))
  out(`node ${node.nodeId} running on hub ${hub}`)
  if (node.threadCount > 1)
    out(`node ${node.nodeId} runs its partitions on ${node.threadCount} worker threads`)
  if (node.metricsUrl !== undefined) out(`metrics at ${node.metricsUrl}`)

  const signal = await stopRequested
  if (signal === 'closed') {
    // the node stopped on its own (its hub was deleted under it) and closed its connection
    if (node.stoppingBecause !== undefined) throw await node.ended
    await node.stop()
    throw new Error(
      `node ${node.nodeId}: connection to NATS closed unexpectedly${closedReason(await closed)}`,
    )
  }
  // a second signal soon after the first is that one delivered twice (GNU `timeout` signals the
  // process and then its process group; so does a script that kills the pid and the group), not a
  // person asking again: it must not cut the hand-over short
  const stoppingSince = Date.now()
  const forceExit = (again: NodeJS.Signals) => {
    if (Date.now() - stoppingSince < SAME_SIGNAL_MS) return
    process.stderr.write(`basalt node: ${again} again while stopping; exiting now\n`)
    process.exit(1)
  }
  for (const s of STOP_SIGNALS) process.on(s, forceExit)
  try {
    await node.stop({ snapshot: true })
  } finally {
    for (const s of STOP_SIGNALS) process.off(s, forceExit)
  }
  out(`node ${node.nodeId} stopped`)
  return 0
}

/** How long after the first stop signal another one counts as the same one delivered twice, in ms. */
const SAME_SIGNAL_MS = 1_000

/**
 * Why the client library gave the connection up, for the line the node ends with: it stops
 * reconnecting when the server refuses the credentials twice (a password changed or a user removed
 * while the node ran, found by an outside trial), and the bare "closed" did not say so.
 */
function closedReason(err: unknown): string {
  if (!(err instanceof Error)) return ''
  const e = err as { name?: string; message?: string }
  const auth =
    e.name === 'AuthorizationError' ||
    e.name === 'UserAuthenticationExpiredError' ||
    /authorization violation|authentication expired/i.test(String(e.message))
  return auth
    ? `: the server refused the node's credentials (${e.message}); check the user, password, token, nkey or creds the node was given`
    : `: ${e.message}`
}

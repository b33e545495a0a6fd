/**
 * `basalt dashboard`: serves the web dashboard of a hub (runtime/dashboard/) until SIGTERM or
 * SIGINT. It only reads unless `--allow-actions`, binds 127.0.0.1 unless `--host` says more, and
 * answers only to its own host names unless `--allow-host` names more.
 */
import { startDashboard } from '../dashboard/index.ts'
import { connectionFromFlags, hubFromFlags, type ConnectionFlags } from './connection.ts'
import { stdout, type Out } from './output.ts'
import { waitForStopSignal } from './stop-signal.ts'

/** The flags of `basalt dashboard`, as commander parses them. */
export interface DashboardFlags extends ConnectionFlags {
  port: number
  host: string
  allowActions?: boolean
  /** `--allow-host NAME`, repeated: more host names the page may be reached by. */
  allowHost?: string[]
}

/**
 * Runs `basalt dashboard`: starts the dashboard on `--host`:`--port` for `--servers` / `--hub`,
 * prints `dashboard <url>`, and on SIGTERM or SIGINT closes it and resolves with 0. NATS need not
 * be up yet (the page says so until it is). Throws `UsageError` for a missing option (exit 2) and
 * `BadInputError` naming `--port` when the port is taken, or `--host` when it is no address of
 * this machine (exit 1, at once).
 *
 * @example await runDashboardCommand({ servers: 'nats://127.0.0.1:4222', hub: 'dev', port: 8233, host: '127.0.0.1' })
 */
export async function runDashboardCommand(flags: DashboardFlags, out: Out = stdout): Promise<number> {
  const connection = connectionFromFlags(flags)
  const hub = hubFromFlags(flags)
  const dashboard = await startDashboard({
    ...connection,
    hub,
    port: flags.port,
    host: flags.host,
    allowActions: flags.allowActions === true,
    allowedHosts: flags.allowHost ?? [],
    optionNames: { port: '--port', host: '--host' },
  })
  // (started by npm, it also stops once its parent is gone: see waitForStopSignal)
  const stopRequested = waitForStopSignal()
  out(`dashboard ${dashboard.url} (hub ${hub}, ${flags.allowActions ? 'actions allowed' : 'read-only'})`)
  const signal = await stopRequested
  out(`${signal}: stopping`)
  await dashboard.close()
  return 0
}

/**
 * runtime/dashboard/ — the web dashboard: an HTTP server (fastify) that shows a hub's nodes,
 * partitions, instances, entities and dead letters and pushes live changes to the browser by
 * server-sent events, from the public client's reads and watch streams, the placement table and
 * the node telemetry samples (`H.stats.<node>`). The UI is plain ES modules (preact + htm, uPlot)
 * served from `ui/` and node_modules: no build step, nothing from the internet. Read-only unless
 * started with `allowActions`; answers only to its own host names and takes actions only from its
 * own page (guard.ts). May import runtime/client/, runtime/instances/, runtime/metrics/,
 * runtime/nats/, placement/ and actors/; never runtime/node/ (a node starts a dashboard).
 */
import { BadInputError } from '../../actors/index.ts'
import { checkListenOptions, listenError } from '../metrics/index.ts'
import { checkConnectionOptions, HubNames, type ConnectionOptions } from '../nats/index.ts'
import { checkOptionalBoolean, checkOptionalStrings, keysOf } from '../util/index.ts'
import { hostPolicy } from './guard.ts'
import { buildServer } from './server.ts'
import { DashboardSource } from './source.ts'

/** Options of {@link startDashboard}. */
export interface DashboardOptions extends ConnectionOptions {
  /** Hub to show. */
  hub: string
  /** TCP port (default 8233; 0 picks a free one). */
  port?: number
  /** Interface to bind (default 127.0.0.1: only this machine). */
  host?: string
  /** Allow raise event, terminate, suspend, resume and purge from the page (default false: 403). */
  allowActions?: boolean
  /**
   * More host names the page may be reached by (the `Host` header), e.g. a DNS name or the name a
   * proxy in front is reached by; `'*'` accepts any (only behind something that checks it). By
   * default the server answers only to the address it binds: `localhost`, `127.0.0.1` and `[::1]`
   * on a loopback address, the address itself otherwise, loopback names and any IP address when
   * binding every interface (`0.0.0.0`, `::`). Any other `Host` gets a 403 (against DNS rebinding).
   */
  allowedHosts?: readonly string[]
  /**
   * @internal The flags or options that set `port` and `host`, as a failed listen names them
   * (default `port`, `host`): `basalt dashboard` gives `--port`, a node `--dashboard-port, dashboard.port`.
   */
  optionNames?: { port: string; host: string }
}

/** The keys of {@link DashboardOptions} beside the connection's (anything else is refused). */
const DASHBOARD_OWN_KEYS = keysOf<Omit<DashboardOptions, keyof ConnectionOptions>>({
  hub: true,
  port: true,
  host: true,
  allowActions: true,
  allowedHosts: true,
  optionNames: true,
})

/**
 * Checks the options of {@link startDashboard}: no key it does not know (a misspelt `alowActions`
 * would leave the page read-only without a word), and each of the type it takes. Throws
 * `BadInputError` naming the option.
 */
function checkDashboardOptions(options: DashboardOptions): void {
  if (options === undefined) {
    throw new BadInputError('the options of startDashboard must be an object (got undefined)')
  }
  checkConnectionOptions(options, 'startDashboard', DASHBOARD_OWN_KEYS)
  new HubNames(options.hub) // checks the name
  checkListenOptions(options, { port: 'port', host: 'host' })
  checkOptionalBoolean(options.allowActions, 'allowActions')
  checkOptionalStrings(options.allowedHosts, 'allowedHosts')
}

/** A running dashboard. */
export interface Dashboard {
  /** Where to open it, e.g. `http://127.0.0.1:8233/`. */
  readonly url: string
  readonly port: number
  /** @internal How many event streams browsers hold open now (tests). */
  readonly openStreams: () => number
  /** Stops the server, its streams and its hub connection. */
  close(): Promise<void>
}

/**
 * Starts the dashboard for a hub. NATS need not be up: the page says it is unreachable and the
 * server connects once it is (it starts connecting once it listens). Throws `BadInputError`
 * naming the option for an option it does not know (in `options` or in `tls`) or of the wrong
 * type, naming the port when it is taken, and the host when it is no address of this machine (what
 * `listenError` of runtime/metrics/ says), having closed everything it opened.
 *
 * @example
 * const dashboard = await startDashboard({ servers: 'nats://127.0.0.1:4222', hub: 'dev' })
 * console.log(dashboard.url) // http://127.0.0.1:8233/
 */
export async function startDashboard(options: DashboardOptions): Promise<Dashboard> {
  checkDashboardOptions(options)
  const {
    port = 8233,
    host = '127.0.0.1',
    allowActions = false,
    allowedHosts = [],
    optionNames = { port: 'port', host: 'host' },
    ...connection
  } = options
  const source = new DashboardSource(connection)
  const { app, openStreams } = buildServer(source, { allowActions, hosts: hostPolicy(host, allowedHosts) })
  try {
    await app.listen({ port, host })
  } catch (err) {
    await source.close()
    throw listenError(err as NodeJS.ErrnoException, {
      what: 'dashboard',
      port,
      host,
      portOption: optionNames.port,
      hostOption: optionNames.host,
    })
  }
  // connect in the background: the first page load waits for it, or says why it failed
  source.client().catch(() => {})
  const address = app.server.address()
  const bound = typeof address === 'object' && address !== null ? address.port : port
  const shownHost = host.includes(':') ? `[${host}]` : host
  return {
    url: `http://${shownHost}:${bound}/`,
    port: bound,
    openStreams,
    close: async () => {
      await app.close()
      await source.close()
    },
  }
}

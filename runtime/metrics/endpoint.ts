/**
 * The Prometheus endpoint of a node: `GET /metrics` on a plain `node:http` server, bound to
 * 127.0.0.1 unless told otherwise (metrics name instances and types: keep them off public
 * interfaces). Anything else answers 404.
 */
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { Registry } from 'prom-client'
import { BadInputError, describeValue } from '../../actors/index.ts'
import { checkKnownKeys, checkOptionalString, keysOf } from '../util/index.ts'

/** Where a node serves its metrics (see `NodeOptions.metrics`). */
export interface MetricsOptions {
  /** TCP port (default 0: any free port; read it from `node.metricsUrl`). */
  port?: number
  /** Interface to bind (default 127.0.0.1). */
  host?: string
  /**
   * Your own registry, served on the same endpoint after Basalt's metrics (read at every scrape,
   * so metrics you register later appear too).
   */
  registry?: Registry
}

/** The keys of {@link MetricsOptions}. */
const METRICS_KEYS = keysOf<MetricsOptions>({ port: true, host: true, registry: true })

/**
 * Checks the `metrics` option of `method` (`Node.start`): an object of {@link MetricsOptions}'
 * keys (see {@link checkListenOptions} for `port` and `host`) whose `registry` is a prom-client
 * registry. Throws `BadInputError` naming the option.
 */
export function checkMetricsOptions(value: MetricsOptions, method: string): MetricsOptions {
  const options = checkKnownKeys(value, method, 'metrics', METRICS_KEYS)
  checkListenOptions(options, { port: 'metrics.port', host: 'metrics.host' })
  const registry: unknown = options.registry
  if (registry !== undefined && typeof (registry as Partial<Registry> | null)?.metrics !== 'function') {
    throw new BadInputError(
      `metrics.registry must be a prom-client Registry (got ${describeValue(registry)})`,
    )
  }
  return options
}

/**
 * Checks where an HTTP server is told to listen (`names` are the options that say it, e.g.
 * `metrics.port`): `port` a whole number in 0..65535 (Node would take `'8080'` as a port, and
 * throw a RangeError naming no option for 70000), `host` a string. Throws `BadInputError`.
 */
export function checkListenOptions(
  options: { port?: unknown; host?: unknown },
  names: { port: string; host: string },
): void {
  const { port } = options
  if (
    port !== undefined &&
    (!Number.isSafeInteger(port) || (port as number) < 0 || (port as number) > 65535)
  ) {
    throw new BadInputError(`${names.port} must be a port number in 0..65535 (got ${describeValue(port)})`)
  }
  checkOptionalString(options.host, names.host)
}

/** A running endpoint. */
export interface MetricsEndpoint {
  /** `http://host:port/metrics`. */
  readonly url: string
  close(): Promise<void>
}

/**
 * Serves `registry` (and `options.registry` after it) on `GET /metrics`; resolves once listening.
 * `registry` may be a function, read at every scrape: a node binds its port before it connects
 * (a taken port then fails the start before anything is created on the hub), and answers 503
 * until it runs. Rejects with {@link BadInputError} naming the port when it is taken, and the host
 * when it is no address of this machine (see {@link listenError}).
 */
export async function serveMetrics(
  registry: Registry | (() => Registry | undefined),
  options: MetricsOptions = {},
): Promise<MetricsEndpoint> {
  const basalt = typeof registry === 'function' ? registry : () => registry
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0]
    if (req.method !== 'GET' || path !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found; metrics are at /metrics\n')
      return
    }
    const own = basalt()
    if (own === undefined) {
      res.writeHead(503, { 'content-type': 'text/plain' }).end('the node is starting; metrics follow\n')
      return
    }
    const registries = options.registry === undefined ? [own] : [own, options.registry]
    Promise.all(registries.map((r) => r.metrics())).then(
      (texts) => res.writeHead(200, { 'content-type': own.contentType }).end(texts.join('\n')),
      (err: unknown) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`${String(err)}\n`),
    )
  })
  const host = options.host ?? '127.0.0.1'
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) =>
      reject(
        listenError(err, {
          what: 'metrics',
          port: options.port ?? 0,
          host,
          portOption: '--metrics-port, metrics.port',
          hostOption: '--metrics-host, metrics.host',
        }),
      ),
    )
    server.listen(options.port ?? 0, host, () => {
      server.removeAllListeners('error')
      resolve()
    })
  })
  const { port } = server.address() as AddressInfo
  return {
    url: `http://${host.includes(':') ? `[${host}]` : host}:${port}/metrics`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve())
        server.closeAllConnections()
      }),
  }
}

/** What {@link listenError} names: the server, where it tried to listen, and the options that set it. */
export interface ListenTarget {
  /** The server, as the message begins: `metrics`, `dashboard`. */
  what: string
  port: number
  host: string
  /** The flag and option that set the port, e.g. `--metrics-port, metrics.port`. */
  portOption: string
  /** The flag and option that set the host. */
  hostOption: string
}

/**
 * The error a failed `listen` of an HTTP server becomes: a {@link BadInputError} naming the port
 * or host and the option that set it, for a port in use (`EADDRINUSE`) or not allowed (`EACCES`)
 * and a host that is no address of this machine (`EADDRNOTAVAIL`) or no name at all
 * (`ENOTFOUND`, `EAI_AGAIN`); anything else as it is. The listen error is the `cause`.
 *
 * @example listenError(err, { what: 'metrics', port: 9464, host: '127.0.0.1', portOption: '--metrics-port', hostOption: '--metrics-host' })
 */
export function listenError(err: NodeJS.ErrnoException, target: ListenTarget): Error {
  const { what, port, host, portOption, hostOption } = target
  const message = {
    EADDRINUSE:
      `${what} port ${port} on ${host} is in use (another process listens there): ` +
      `give another port (${portOption}), or 0 for any free one`,
    EACCES:
      `${what} port ${port} on ${host} may not be bound by this user (ports below 1024 need privileges): ` +
      `give another port (${portOption}), or 0 for any free one`,
    EADDRNOTAVAIL:
      `${what} host ${host} is not an address of this machine: give one of its addresses ` +
      `(${hostOption}), e.g. 127.0.0.1, or 0.0.0.0 for every interface`,
    ENOTFOUND:
      `${what} host ${host} cannot be resolved: give an address or a name of this machine ` +
      `(${hostOption}), e.g. 127.0.0.1, or 0.0.0.0 for every interface`,
    EAI_AGAIN:
      `${what} host ${host} cannot be resolved now (the name service did not answer): give an address ` +
      `(${hostOption}), e.g. 127.0.0.1`,
  }[err.code ?? '']
  return message === undefined ? err : new BadInputError(message, { cause: err })
}

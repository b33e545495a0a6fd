/**
 * How every `basalt` command that talks to NATS finds its server and its hub: the one place that
 * declares the connection flags ({@link addConnectionOptions}) and the one function that turns
 * parsed flags into connection settings ({@link connectionFromFlags}). A new connection setting
 * (credentials, TLS) is one edit in each. The helpers below open a client or a bare connection
 * with those settings and always close it.
 */
import { Option, type Command } from 'commander'
import type { Client } from '../client/index.ts'
import {
  type Hub,
  CONNECTION_ENV,
  HUB_NAME,
  toNatsOptions,
  connectionFromFlags as connectionFromFlagValues,
  type ConnectionOptions,
  type NatsConnection,
} from '../nats/index.ts'
import { BadInputError, HubNotFoundError } from '../../actors/index.ts'
import { UsageError } from './args.ts'

/** The connection flags as commander parses them (every command that connects has them). */
export interface ConnectionFlags {
  servers?: string
  hub?: string
  creds?: string
  user?: string
  password?: string
  token?: string
  nkey?: string
  tlsCa?: string
  tlsCert?: string
  tlsKey?: string
}

/** Where to connect: what {@link connectionFromFlags} builds from the flags. */
export type CliConnection = ConnectionOptions & { servers: string | string[] }

/**
 * Declares the flags shared by every command that connects — `--servers` (default `$NATS_URL`)
 * and, unless `hub` is false, `--hub` (default `$BASALT_HUB`) — and returns the command.
 *
 * @example addConnectionOptions(program.command('status').argument('<id>'))
 */
export function addConnectionOptions(command: Command, { hub = true } = {}): Command {
  command.addOption(new Option('--servers <urls>', 'nats:// or tls:// URLs, comma-separated').env('NATS_URL'))
  if (hub) command.addOption(new Option('--hub <name>', 'hub name').env('BASALT_HUB'))
  // credentials and TLS: each falls back on its NATS_* variable (see docs/SECURITY.md)
  command.addOption(
    new Option('--creds <file>', `NATS credentials file (JWT) [$${CONNECTION_ENV.credsFile}]`),
  )
  command.addOption(new Option('--user <name>', `NATS user [$${CONNECTION_ENV.user}]`))
  command.addOption(new Option('--password <password>', `NATS password [$${CONNECTION_ENV.password}]`))
  command.addOption(new Option('--token <token>', `NATS token [$${CONNECTION_ENV.token}]`))
  command.addOption(
    new Option('--nkey <seed|file>', `NATS nkey seed, or a file holding it [$${CONNECTION_ENV.nkey}]`),
  )
  command.addOption(
    new Option('--tls-ca <file>', `CA certificate to verify the server [$${CONNECTION_ENV.ca}]`),
  )
  command.addOption(new Option('--tls-cert <file>', `client certificate (mTLS) [$${CONNECTION_ENV.cert}]`))
  command.addOption(
    new Option('--tls-key <file>', `client certificate's key (mTLS) [$${CONNECTION_ENV.key}]`),
  )
  return command
}

/**
 * The connection settings of the parsed flags. Throws {@link UsageError} (exit 2) when no server
 * is given by flag or environment, or the list is empty.
 *
 * @example connectionFromFlags({ servers: 'nats://a:4222,nats://b:4222' }) // { servers: [...] }
 */
export function connectionFromFlags(flags: ConnectionFlags): CliConnection {
  const servers = (flags.servers ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '')
  if (servers.length === 0) {
    throw new UsageError('missing --servers: give the NATS URL(s), or set NATS_URL')
  }
  let connection: CliConnection
  try {
    connection = connectionFromFlagValues({ ...flags, servers: servers.join(',') }) as CliConnection
  } catch (err) {
    if (err instanceof BadInputError) throw new UsageError(err.message)
    throw err
  }
  checkFiles(connection, flags)
  return connection
}

/**
 * Reads the seed, creds and TLS files now, as connecting would, so that one that is missing or
 * malformed is a usage error naming its flag (or variable) rather than a failed connect.
 */
function checkFiles(connection: CliConnection, flags: ConnectionFlags): void {
  const fields = [
    ['nkey', 'nkey', connection.nkey],
    ['creds', 'credsFile', connection.credsFile],
    ['tls-ca', 'ca', connection.tls?.ca],
    ['tls-cert', 'cert', connection.tls?.cert],
    ['tls-key', 'key', connection.tls?.key],
  ] as const
  for (const [flag, field, value] of fields) {
    if (value === undefined) continue
    const options =
      field === 'nkey' || field === 'credsFile'
        ? { servers: connection.servers, [field]: value }
        : { servers: connection.servers, tls: field === 'ca' ? { ca: value } : { cert: value, key: value } }
    try {
      toNatsOptions(options, 'basalt-cli')
    } catch (err) {
      if (!(err instanceof BadInputError)) throw err
      const camel = flag.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase()) as keyof ConnectionFlags
      const where = flags[camel] !== undefined ? `--${flag}` : `$${CONNECTION_ENV[field]}`
      throw new UsageError(`${where}: ${err.message}`)
    }
  }
}

/**
 * The hub of the parsed flags; {@link UsageError} when neither `--hub` nor `BASALT_HUB` names one,
 * or the name is not a hub name.
 */
export function hubFromFlags(flags: ConnectionFlags): string {
  const hub = flags.hub?.trim() ?? ''
  if (hub === '') throw new UsageError('missing --hub: give the hub name, or set BASALT_HUB')
  if (!HUB_NAME.test(hub)) {
    throw new UsageError(`--hub ${JSON.stringify(hub)}: expected 1 to 64 letters, digits, _ and -`)
  }
  return hub
}

/**
 * Connects a {@link Client} to the flags' hub, runs `work` with it and closes it. Throws
 * `ConnectionError` naming the URL, `HubNotFoundError`, or whatever `work` throws.
 */
export async function withClient<T>(
  flags: ConnectionFlags,
  work: (client: Client) => Promise<T>,
): Promise<T> {
  const connection = connectionFromFlags(flags)
  const hub = hubFromFlags(flags)
  const { Client } = await import('../client/client.ts')
  const client = await Client.connect({ ...connection, hub, queryTimeoutMs: 5_000 })
  try {
    return await work(client)
  } finally {
    await client.close()
  }
}

/** Opens a bare NATS connection with the flags' settings, runs `work` with it and closes it. */
export async function withNats<T>(
  flags: ConnectionFlags,
  work: (nc: NatsConnection) => Promise<T>,
): Promise<T> {
  const connection = connectionFromFlags(flags)
  const { connectTo, closeConnection } = await import('../nats/connect.ts')
  const nc = await connectTo(connection, 'basalt-cli')
  try {
    return await work(nc)
  } finally {
    await closeConnection(nc)
  }
}

/**
 * Opens the flags' existing hub (creating nothing) and runs `work`; otherwise `HubNotFoundError`
 * saying `missing` (default: check the name). These commands read or manage a hub whether nodes
 * run on it or not, so "start a node on it first", the client's hint, would mislead.
 */
export async function withHub<T>(
  flags: ConnectionFlags,
  work: (hub: Hub, nc: NatsConnection) => Promise<T>,
  missing = (hub: string) => `hub '${hub}' does not exist: check the name (--hub or BASALT_HUB)`,
): Promise<T> {
  const name = hubFromFlags(flags)
  return withNats(flags, async (nc) => {
    const { openHub } = await import('../nats/hub.ts')
    const hub = await openHub(nc, name).catch((err: unknown) => {
      throw err instanceof HubNotFoundError ? new HubNotFoundError(name, missing(name)) : err
    })
    return work(hub, nc)
  })
}

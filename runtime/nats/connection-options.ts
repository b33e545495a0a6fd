/**
 * How nodes, clients, activity workers and the CLI say where NATS is and who they are there: one
 * {@link ConnectionOptions} type, read from the environment ({@link connectionFromEnv}) or from
 * command-line flags ({@link connectionFromFlags}), plus the helpers that keep secrets out of
 * messages (credentials in server URLs are taken out of the URLs, and URLs are redacted before
 * they are shown). Pure: no NATS client, no file reads, so the CLI can import it cheaply; the
 * mapping onto the NATS client's own options is in connect.ts.
 */
import { BadInputError } from '../../actors/index.ts'
import { checkKnownKeys, checkOptionalMs, checkOptionalString, keysOf } from '../util/index.ts'

/**
 * TLS settings. Each of `ca`, `cert` and `key` is either the path of a PEM file or the PEM text
 * itself (anything starting with `-----BEGIN`). Giving `tls` at all (even `{}`) requires TLS;
 * `cert` and `key` together present a client certificate (mutual TLS).
 */
export interface TlsConnectionOptions {
  /** Certificate authority that signed the server's certificate (default: the system's CAs). */
  ca?: string
  /** Client certificate, for servers that verify clients (`verify: true`). */
  cert?: string
  /** Private key of the client certificate. */
  key?: string
}

/**
 * Where NATS is and how to authenticate there; accepted by `Node.start`, `Client.connect`, the
 * activity workers and every CLI command. Give at most one of `user`/`password`, `token`, `nkey`
 * and `credsFile`. Credentials may also be written into a server URL
 * (`nats://alice:s3cret@host:4222`, or `nats://TOKEN@host:4222` for a token); options given here
 * take precedence over those.
 *
 * @example
 * const options: ConnectionOptions = {
 *   servers: 'tls://nats.example.com:4222',
 *   credsFile: '/etc/basalt/node.creds',
 *   tls: { ca: '/etc/basalt/ca.pem' },
 * }
 */
export interface ConnectionOptions {
  /** NATS server URL(s), e.g. `nats://127.0.0.1:4222`. */
  servers: string | string[]
  /** User name (with `password`). */
  user?: string
  /** Password of `user`. Never logged nor shown in errors. */
  password?: string
  /** Authentication token. Never logged nor shown in errors. */
  token?: string
  /** An nkey seed (`SU…`), or the path of a file holding one. Never logged nor shown in errors. */
  nkey?: string
  /** Path of a `.creds` file (user JWT and nkey seed, as `nsc` writes them). */
  credsFile?: string
  /** TLS: server CA, client certificate and key (paths or PEM text). */
  tls?: TlsConnectionOptions
  /**
   * Connection name shown in the server's monitoring (`/connz`); default `basalt-node <node id>` (its
   * partition threads `… thread N`, its activity results `… activities`), `basalt-client`, `basalt-cli`.
   */
  name?: string
  /**
   * How long the first connect waits for the server's handshake, in ms (default 20,000). A server
   * that rejects a TLS client certificate is noticed only when this runs out.
   */
  connectTimeoutMs?: number
  /**
   * Prefix of the inboxes on which the NATS client receives replies to its own requests (default
   * `_INBOX`); lets a server's permissions give each user its own reply subjects.
   */
  inboxPrefix?: string
}

/** The keys of {@link ConnectionOptions}, to pick them out of larger option objects. */
export const CONNECTION_KEYS = keysOf<ConnectionOptions>({
  servers: true,
  user: true,
  password: true,
  token: true,
  nkey: true,
  credsFile: true,
  tls: true,
  name: true,
  connectTimeoutMs: true,
  inboxPrefix: true,
})

/** The keys of {@link TlsConnectionOptions}. */
const TLS_KEYS = keysOf<TlsConnectionOptions>({ ca: true, cert: true, key: true })

/** The string options whose values are secrets: a wrong one is described by its type alone. */
const SECRET_KEYS: ReadonlyArray<keyof ConnectionOptions> = ['password', 'token', 'nkey']

/**
 * Checks the options of `method` (`Client.connect`, `Node.start`, `startDashboard`): no key but
 * the connection's and `ownKeys` (the method's own, listed with `keysOf`), none but `ca`, `cert`
 * and `key` in `tls`, the string options strings and `connectTimeoutMs` a positive number of ms.
 * Throws `BadInputError` naming the option (`servers` and the credentials' combinations are
 * checked when connecting, by `toNatsOptions`). A secret of the wrong type is not shown.
 *
 * @example checkConnectionOptions(options, 'Client.connect', CLIENT_OWN_KEYS)
 */
export function checkConnectionOptions<T extends ConnectionOptions>(
  options: T,
  method: string,
  ownKeys: readonly string[],
): T {
  checkKnownKeys(options, method, 'options', [...CONNECTION_KEYS, ...ownKeys])
  for (const key of ['user', 'password', 'token', 'nkey', 'credsFile', 'name', 'inboxPrefix'] as const) {
    const value: unknown = options[key]
    if (value !== undefined && typeof value !== 'string' && SECRET_KEYS.includes(key)) {
      throw new BadInputError(`${key} must be a string (got ${value === null ? 'null' : typeof value})`)
    }
    checkOptionalString(value, key)
  }
  checkOptionalMs(options.connectTimeoutMs, 'connectTimeoutMs')
  if (options.tls !== undefined) {
    const tls = checkKnownKeys(options.tls, method, 'tls', TLS_KEYS)
    for (const key of TLS_KEYS) checkOptionalString(tls[key], `tls.${key}`)
  }
  return options
}

/**
 * The connection options among `options` (e.g. a `NodeOptions`), without anything else.
 *
 * @example const connection = pickConnection(nodeOptions)
 */
export function pickConnection(options: ConnectionOptions): ConnectionOptions {
  const picked: Record<string, unknown> = {}
  for (const key of CONNECTION_KEYS) if (options[key] !== undefined) picked[key] = options[key]
  return picked as unknown as ConnectionOptions
}

/**
 * The environment variables {@link connectionFromEnv} reads, by option. `NATS_URL` may list
 * several servers separated by commas; `NATS_NKEY` holds a seed or the path of a seed file.
 */
export const CONNECTION_ENV = {
  servers: 'NATS_URL',
  user: 'NATS_USER',
  password: 'NATS_PASSWORD',
  token: 'NATS_TOKEN',
  nkey: 'NATS_NKEY',
  credsFile: 'NATS_CREDS',
  ca: 'NATS_CA',
  cert: 'NATS_CERT',
  key: 'NATS_KEY',
} as const

/**
 * The connection options set in `env` (default `process.env`): `NATS_URL`, `NATS_USER`,
 * `NATS_PASSWORD`, `NATS_TOKEN`, `NATS_NKEY`, `NATS_CREDS`, `NATS_CA`, `NATS_CERT`, `NATS_KEY`.
 * Unset or empty variables give no option; `servers` is missing when `NATS_URL` is unset.
 *
 * @example const connection = connectionFromEnv() // NATS_URL=nats://a:4222,nats://b:4222 -> servers ['nats://a:4222', 'nats://b:4222']
 */
export function connectionFromEnv(
  env: Record<string, string | undefined> = process.env,
): Partial<ConnectionOptions> {
  const read = (name: string) => {
    const value = env[name]?.trim()
    return value === undefined || value === '' ? undefined : value
  }
  return buildOptions(
    {
      servers: read(CONNECTION_ENV.servers),
      user: read(CONNECTION_ENV.user),
      password: read(CONNECTION_ENV.password),
      token: read(CONNECTION_ENV.token),
      nkey: read(CONNECTION_ENV.nkey),
      credsFile: read(CONNECTION_ENV.credsFile),
      ca: read(CONNECTION_ENV.ca),
      cert: read(CONNECTION_ENV.cert),
      key: read(CONNECTION_ENV.key),
    },
    (name) => `$${CONNECTION_ENV[name]}`,
  )
}

/** The command-line flags {@link connectionFromFlags} reads, by option. */
export const CONNECTION_FLAGS = {
  servers: 'servers',
  user: 'user',
  password: 'password',
  token: 'token',
  nkey: 'nkey',
  credsFile: 'creds',
  ca: 'tls-ca',
  cert: 'tls-cert',
  key: 'tls-key',
} as const

type Field = keyof typeof CONNECTION_FLAGS

/**
 * The connection options of a command line: `--servers URL[,URL...]`, `--user`, `--password`,
 * `--token`, `--nkey SEED|FILE`, `--creds FILE`, `--tls-ca`, `--tls-cert`, `--tls-key`, each
 * falling back on its environment variable (see {@link connectionFromEnv}) when not given.
 * `flags` holds the values by flag name, as `node:util` `parseArgs` gives them (`tls-ca`) or as
 * commander does (`tlsCa`). Throws `BadInputError` naming the flag when a value is not a string,
 * and when no server is given at all (neither `--servers` nor `NATS_URL`).
 *
 * @example
 * const connection = connectionFromFlags(program.opts()) // --servers nats://127.0.0.1:4222 --creds ./me.creds
 * const client = await Client.connect({ ...connection, hub: 'demo' })
 */
export function connectionFromFlags(
  flags: Record<string, unknown>,
  env: Record<string, string | undefined> = process.env,
): ConnectionOptions {
  const fromEnv = connectionFromEnv(env)
  const values = {} as Record<Field, string | undefined>
  for (const field of Object.keys(CONNECTION_FLAGS) as Field[]) {
    const flag = CONNECTION_FLAGS[field]
    const value = flags[flag] ?? flags[camelCase(flag)]
    if (value !== undefined && typeof value !== 'string') {
      throw new BadInputError(`--${flag} expects a value`)
    }
    values[field] = value === undefined || value.trim() === '' ? undefined : value.trim()
  }
  const fromFlags = buildOptions(values, (name) => `--${CONNECTION_FLAGS[name]}`)
  const tls =
    fromEnv.tls === undefined && fromFlags.tls === undefined
      ? {}
      : { tls: { ...fromEnv.tls, ...fromFlags.tls } }
  const merged = { ...fromEnv, ...fromFlags, ...tls }
  if (merged.servers === undefined) {
    throw new BadInputError(
      `no NATS server given: pass --servers URL[,URL...] or set $${CONNECTION_ENV.servers}`,
    )
  }
  // what connecting would refuse anyway, said now in terms of the flags (and variables) given
  const source = (field: Field): string | undefined =>
    values[field] !== undefined
      ? `--${CONNECTION_FLAGS[field]}`
      : env[CONNECTION_ENV[field]]?.trim()
        ? `$${CONNECTION_ENV[field]}`
        : undefined
  const kinds = CREDENTIAL_KINDS.map((fields) =>
    fields.flatMap((field) => source(field) ?? []).join(' and '),
  ).filter((given) => given !== '')
  if (kinds.length > 1) {
    throw new BadInputError(
      `${kinds.join(', ')}: give one kind of NATS credentials (user and password, token, nkey or creds file)`,
    )
  }
  if (merged.password !== undefined && merged.user === undefined) {
    throw new BadInputError(
      `${source('password')} needs a user: give --user too (or set $${CONNECTION_ENV.user})`,
    )
  }
  if ((merged.tls?.cert === undefined) !== (merged.tls?.key === undefined)) {
    const [given, missing] =
      merged.tls?.cert === undefined ? (['key', 'cert'] as const) : (['cert', 'key'] as const)
    throw new BadInputError(
      `${source(given)} needs --${CONNECTION_FLAGS[missing]} (or $${CONNECTION_ENV[missing]}): a client certificate takes both`,
    )
  }
  return { ...merged, servers: merged.servers }
}

/** The kinds of credentials, by the fields that give them: at most one kind may be given. */
const CREDENTIAL_KINDS: ReadonlyArray<ReadonlyArray<Field>> = [
  ['user', 'password'],
  ['token'],
  ['nkey'],
  ['credsFile'],
]

/**
 * The URL schemes the NATS client (its Node transport) connects with: it speaks the NATS protocol
 * over TCP whatever the scheme says (TLS when the server offers or requires it), refuses `ws://`
 * and `wss://` (websockets need another transport), and takes anything else — `http://` and
 * `https://` too, in plain text — for `nats://`. Basalt takes the two that mean what they do, and
 * a `tls://` URL makes TLS a requirement of the connection (see `toNatsOptions`).
 */
const NATS_SCHEMES = ['nats', 'tls']

/**
 * Throws `BadInputError` naming `where` and the URL (credentials redacted) unless `server` is
 * something the NATS client can connect to: `host`, `host:port` or `nats://` or `tls://`
 * `host[:port]`, without a path, query or fragment (another scheme, such as `http://` or `ws://`,
 * names the ones it takes). `list` tells how several URLs are given, for the hint.
 *
 * @example checkServerUrl('https://nats.example.com', 'servers') // throws: https:// is not a NATS URL scheme
 */
export function checkServerUrl(server: string, where: string, list = 'or a list of them'): void {
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(server)?.[1]?.toLowerCase()
  if (scheme !== undefined && !NATS_SCHEMES.includes(scheme)) {
    const websocket = scheme === 'ws' || scheme === 'wss' ? ' (websockets are not supported)' : ''
    const tls = scheme === 'https' ? ' (for TLS give tls://host:4222)' : ''
    throw new BadInputError(
      `${where} ${JSON.stringify(redactUrl(server))}: ${scheme}:// is not a NATS URL scheme${websocket}${tls}; ` +
        `give nats://host:4222 (or tls://host:4222), ${list}`,
    )
  }
  const rest = server.replace(/^[a-z][a-z0-9+.-]*:\/\//i, '')
  let url: URL | undefined
  if (rest !== '' && !/\s/.test(rest)) {
    try {
      url = new URL(`nats://${rest}`)
    } catch {
      url = undefined
    }
  }
  if (url === undefined || url.hostname === '') {
    throw new BadInputError(
      `${where} ${JSON.stringify(redactUrl(server))}: expected NATS server URL(s) such as nats://host:4222, ${list}`,
    )
  }
  if ((url.pathname !== '' && url.pathname !== '/') || url.search !== '' || url.hash !== '') {
    throw new BadInputError(
      `${where} ${JSON.stringify(redactUrl(server))}: a NATS server URL has no path, query or fragment; ` +
        `give nats://host:4222`,
    )
  }
}

/** Whether any of the server URLs asks for TLS (`tls://`). */
export function asksForTls(servers: readonly string[]): boolean {
  return servers.some((server) => /^tls:\/\//i.test(server))
}

function camelCase(flag: string): string {
  return flag.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase())
}

/** Options from flat string values; `where` names the source of a value in errors. */
function buildOptions(
  values: Record<Field, string | undefined>,
  where: (field: Field) => string,
): Partial<ConnectionOptions> {
  const options: Partial<ConnectionOptions> = {}
  if (values.servers !== undefined) {
    const servers = values.servers
      .split(',')
      .map((s) => s.trim())
      .filter((s) => s !== '')
    if (servers.length === 0) throw new BadInputError(`${where('servers')} lists no URL`)
    for (const server of servers) checkServerUrl(server, where('servers'), 'comma-separated')
    options.servers = servers
  }
  if (values.user !== undefined) options.user = values.user
  if (values.password !== undefined) options.password = values.password
  if (values.token !== undefined) options.token = values.token
  if (values.nkey !== undefined) options.nkey = values.nkey
  if (values.credsFile !== undefined) options.credsFile = values.credsFile
  const tls: TlsConnectionOptions = {}
  if (values.ca !== undefined) tls.ca = values.ca
  if (values.cert !== undefined) tls.cert = values.cert
  if (values.key !== undefined) tls.key = values.key
  if (Object.keys(tls).length > 0) options.tls = tls
  return options
}

/** Credentials found in the user-info part of server URLs. */
export interface UrlCredentials {
  user?: string
  password?: string
  token?: string
}

/**
 * Takes credentials out of server URLs (`nats://alice:s3cret@host`, `nats://TOKEN@host`), which
 * the NATS client would ignore: returns the URLs without them and the credentials found. Throws
 * `BadInputError` (naming the redacted URLs) when two URLs carry different credentials.
 *
 * @example splitUrlCredentials(['nats://alice:pw@h:4222']) // { servers: ['nats://h:4222'], credentials: { user: 'alice', password: 'pw' } }
 */
export function splitUrlCredentials(servers: string[]): { servers: string[]; credentials: UrlCredentials } {
  let credentials: UrlCredentials = {}
  let from: string | undefined
  const stripped = servers.map((server) => {
    const match = USER_INFO.exec(server)
    if (match === null) return server
    const [, scheme = '', info = '', rest = ''] = match
    const colon = info.indexOf(':')
    const found: UrlCredentials =
      colon < 0
        ? { token: decodeURIComponent(info) }
        : {
            user: decodeURIComponent(info.slice(0, colon)),
            password: decodeURIComponent(info.slice(colon + 1)),
          }
    if (from !== undefined && JSON.stringify(found) !== JSON.stringify(credentials)) {
      throw new BadInputError(
        `server URLs carry different credentials (${redactUrl(from)} and ${redactUrl(server)}); ` +
          `give them once, as user and password or token options`,
      )
    }
    credentials = found
    from = server
    return scheme + rest
  })
  return { servers: stripped, credentials }
}

/** `scheme://` (optional), the user info before the last `@` of the authority, and the rest. */
const USER_INFO = /^([a-z][a-z0-9+.-]*:\/\/)?([^/?#@]*)@(.*)$/i

/**
 * A server URL fit to show: the user info (password, token) replaced by `***`.
 *
 * @example redactUrl('nats://alice:s3cret@host:4222') // 'nats://***@host:4222'
 */
export function redactUrl(server: string): string {
  const match = USER_INFO.exec(server)
  return match === null ? server : `${match[1] ?? ''}***@${match[3] ?? ''}`
}

/**
 * `text` with every secret of `options` (password, token, nkey seed, passwords and tokens in
 * server URLs) replaced by `***`: for messages that quote what a server or a library said.
 */
export function redactSecrets(text: string, options: Partial<ConnectionOptions>): string {
  const servers = options.servers === undefined ? [] : [options.servers].flat()
  const secrets = [options.password, options.token, options.nkey]
  for (const server of servers) {
    const match = USER_INFO.exec(server)
    if (match !== null) secrets.push(match[2], ...(match[2] ?? '').split(':').slice(1))
  }
  let out = text
  for (const secret of secrets) {
    if (secret !== undefined && secret.length >= 3) out = out.split(secret).join('***')
  }
  return out
}

/**
 * Connecting to NATS and closing a connection, for nodes, clients, workers and the CLI: the one
 * place that calls the NATS client's `connect`. {@link ConnectionOptions} (connection-options.ts)
 * are mapped here onto the client's authenticators and TLS settings; failures become Basalt
 * errors whose messages name the server but never a password, token or seed.
 */
import { readFileSync } from 'node:fs'
import {
  connect,
  credsAuthenticator,
  nkeyAuthenticator,
  nkeys,
  tokenAuthenticator,
  usernamePasswordAuthenticator,
  type Authenticator,
  type NatsConnection,
  type NodeConnectionOptions,
  type TlsOptions,
} from '@nats-io/transport-node'
import { AuthorizationError, BadInputError, ConnectionError } from '../../actors/index.ts'
import { isReachable } from './connection-health.ts'
import {
  asksForTls,
  checkServerUrl,
  redactSecrets,
  redactUrl,
  splitUrlCredentials,
  type ConnectionOptions,
  type TlsConnectionOptions,
} from './connection-options.ts'

/**
 * Connects to NATS with `options` (or just server URLs); `name` is the connection name used when
 * the options give none. Reconnects forever once connected, but the first connect fails at once:
 * with `AuthorizationError` when the server refuses the credentials (the message names the server
 * and the user, never a secret), with `ConnectionError` naming the URL(s) when the server cannot be
 * reached or the TLS handshake fails (a `tls://` URL requires TLS), and with `BadInputError` for
 * unusable options (a URL of another scheme than `nats://` or `tls://`, or with a path; a password
 * without a user, two kinds of credentials, an unreadable seed, creds or certificate file).
 *
 * @example const nc = await connectTo({ servers: 'nats://127.0.0.1:4222', user: 'node', password }, 'basalt-node')
 */
export async function connectTo(
  options: ConnectionOptions | string | string[],
  name = 'basalt',
): Promise<NatsConnection> {
  const given: ConnectionOptions =
    typeof options === 'string' || Array.isArray(options) ? { servers: options } : options
  const { natsOptions, identity } = toNatsOptions(given, name)
  const list = [natsOptions.servers ?? []].flat().map(redactUrl).join(', ')
  try {
    return await connect(natsOptions)
  } catch (err) {
    const detail = redactSecrets((err as Error).message ?? String(err), given)
    if (isAuthorizationFailure(err)) {
      throw new AuthorizationError(
        `authorization failed at NATS ${list} (${identity}): ${detail}; check the credentials`,
        { cause: err },
      )
    }
    const hint = tlsHint(err, detail, given.tls !== undefined, natsOptions.tls !== undefined)
    throw new ConnectionError(`cannot reach NATS at ${list}: ${detail}${hint}`, { cause: err })
  }
}

/**
 * What a failed connect adds about TLS: `tlsOptions` given, TLS `required` (by them or a `tls://`
 * URL). Empty when TLS is not the matter.
 */
function tlsHint(err: unknown, detail: string, tlsOptions: boolean, required: boolean): string {
  if (required && /does not support 'tls'|not available/i.test(detail)) {
    return tlsOptions
      ? ' (TLS options were given: the server must offer TLS)'
      : ' (a tls:// URL requires TLS: give nats:// for a server without it)'
  }
  // a server refusing a TLS client certificate closes the connection unseen: the wait times out
  if (tlsOptions && /timeout/i.test(detail))
    return ' (with TLS: does the server require a client certificate it would accept?)'
  if (untrustedCertificate(err))
    return " (the server's TLS certificate is not trusted: give the CA that signed it, tls.ca, --tls-ca or NATS_CA)"
  return ''
}

/** Node's codes for a server certificate that no trusted CA signed (or that names another host). */
const UNTRUSTED_CERTIFICATE = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
])

/** Whether a failed connect was this client not trusting the server's TLS certificate. */
function untrustedCertificate(err: unknown): boolean {
  return UNTRUSTED_CERTIFICATE.has(String((err as { code?: unknown })?.code))
}

/** Whether a failed connect was the server refusing the credentials. */
function isAuthorizationFailure(err: unknown): boolean {
  const e = err as { name?: string; message?: string }
  return (
    e?.name === 'AuthorizationError' ||
    e?.name === 'UserAuthenticationExpiredError' ||
    /authorization violation|authentication (?:timeout|expired)/i.test(String(e?.message))
  )
}

/**
 * The NATS client's options for `options`, and a description of the identity used (for error
 * messages: the user name, the nkey's public key or the creds file, never a secret).
 */
export function toNatsOptions(
  options: ConnectionOptions,
  name: string,
): { natsOptions: NodeConnectionOptions; identity: string } {
  const given = [options.servers].flat() as unknown[]
  if (options.servers === undefined || given.some((s) => typeof s !== 'string' || s === '')) {
    throw new BadInputError(
      `servers must be a NATS server URL or a list of them, e.g. 'nats://127.0.0.1:4222' (got ${
        options.servers === undefined ? 'none' : JSON.stringify(options.servers)
      })`,
    )
  }
  for (const server of given as string[]) checkServerUrl(server, 'servers')
  const { servers, credentials } = splitUrlCredentials(given as string[])
  if (servers.length === 0) throw new BadInputError('no NATS server URL given (servers is empty)')
  const explicit = [
    options.user !== undefined || options.password !== undefined,
    options.token !== undefined,
    options.nkey !== undefined,
    options.credsFile !== undefined,
  ].filter(Boolean).length
  if (explicit > 1) {
    throw new BadInputError('give one kind of NATS credentials: user and password, token, nkey or creds file')
  }
  // credentials in the URLs count only when no option gives any
  const auth = explicit === 1 ? options : { ...options, ...credentials }
  const authenticator: Authenticator[] = []
  let identity = 'without credentials'
  if (auth.user !== undefined || auth.password !== undefined) {
    if (auth.user === undefined) throw new BadInputError('a NATS password was given without a user')
    authenticator.push(usernamePasswordAuthenticator(auth.user, auth.password))
    identity = `as user '${auth.user}'`
  } else if (auth.token !== undefined) {
    authenticator.push(tokenAuthenticator(auth.token))
    identity = 'with a token'
  } else if (auth.nkey !== undefined) {
    const seed = readSeed(auth.nkey)
    authenticator.push(nkeyAuthenticator(seed))
    identity = `with nkey ${publicKeyOf(seed)}`
  } else if (auth.credsFile !== undefined) {
    authenticator.push(credsAuthenticator(readCreds(auth.credsFile)))
    identity = `with creds file ${auth.credsFile}`
  }
  const natsOptions: NodeConnectionOptions = {
    servers,
    name: options.name ?? name,
    maxReconnectAttempts: -1,
    reconnectTimeWait: 250,
  }
  if (authenticator.length > 0) natsOptions.authenticator = authenticator
  // (the client would take tls:// for nats://: a server without TLS would be spoken to in plain text)
  if (options.tls !== undefined || asksForTls(servers)) natsOptions.tls = toTls(options.tls ?? {})
  if (options.inboxPrefix !== undefined) natsOptions.inboxPrefix = options.inboxPrefix
  if (options.connectTimeoutMs !== undefined) natsOptions.timeout = options.connectTimeoutMs
  return { natsOptions, identity }
}

const SEED = /^S[A-Z2-7]{57}$/
/**
 * What a seed with a typo, a missing or an extra character looks like: an `S` and many letters
 * and digits (no `/` nor `.` as in a path). Such a value is never echoed, even when it is taken for a file name.
 */
const SEED_LIKE = /^S[A-Za-z0-9]{15,}$/

/** The bytes of an nkey seed given as text or as the path of a file holding it. */
function readSeed(nkey: string): Uint8Array {
  const given = nkey.trim()
  let text = given
  if (!SEED.test(given)) {
    try {
      text = new TextDecoder().decode(readFileSync(nkey))
    } catch (err) {
      // a damaged seed is not a file either: say so without quoting it (nor the read error, which names it)
      if (SEED_LIKE.test(given))
        throw new BadInputError('the nkey seed is malformed (or no file of that name)')
      throw new BadInputError(
        `cannot read the nkey seed file ${nkey}: ${(err as NodeJS.ErrnoException).code ?? err}`,
        { cause: err },
      )
    }
  }
  const seed = text.split(/\s+/).find((word) => SEED.test(word))
  if (seed === undefined) {
    // never quote the text: it may be a mistyped seed
    throw new BadInputError(
      SEED_LIKE.test(given) ? 'the nkey seed is malformed' : `nkey seed file ${nkey} holds no seed (SU…)`,
    )
  }
  return new TextEncoder().encode(seed)
}

function publicKeyOf(seed: Uint8Array): string {
  try {
    return nkeys.fromSeed(seed).getPublicKey()
  } catch (err) {
    throw new BadInputError('the nkey seed is malformed', { cause: err })
  }
}

/**
 * A block of a creds file, as the NATS client reads it (`credsAuthenticator`): a dashed line, the
 * value, a dashed line. The user JWT comes first, then the nkey seed.
 */
const CREDS_BLOCK = /\s*(?:(?:[-]{3,}[^\n]*[-]{3,}\n)(.+)(?:\n\s*[-]{3,}[^\n]*[-]{3,}\n))/gi

/**
 * The bytes of a creds file that holds a user JWT and an nkey seed. Anything else is refused now,
 * without quoting it (it may hold a seed), rather than by the NATS client at the first connect
 * as "unable to parse credentials", which the CLI took for a server it could not reach.
 */
function readCreds(file: string): Uint8Array {
  const bytes = readFile(file, 'creds file')
  const text = new TextDecoder().decode(bytes)
  const blocks = [...text.matchAll(CREDS_BLOCK)]
  if (blocks.length < 2) {
    throw new BadInputError(
      `creds file ${file} holds no user JWT and nkey seed (the two blocks nsc writes: ` +
        '-----BEGIN NATS USER JWT----- and -----BEGIN USER NKEY SEED-----)',
    )
  }
  return bytes
}

/** TLS settings for the NATS client: PEM text as given, or read from the named files. */
function toTls(tls: TlsConnectionOptions): TlsOptions {
  if ((tls.cert === undefined) !== (tls.key === undefined)) {
    throw new BadInputError('a TLS client certificate needs both cert and key (give both or neither)')
  }
  const pem = (value: string, what: string) =>
    value.trimStart().startsWith('-----BEGIN')
      ? value
      : new TextDecoder().decode(readFile(value, `TLS ${what} file`))
  const out: TlsOptions = {}
  if (tls.ca !== undefined) out.ca = pem(tls.ca, 'CA')
  if (tls.cert !== undefined) out.cert = pem(tls.cert, 'certificate')
  if (tls.key !== undefined) out.key = pem(tls.key, 'key')
  return out
}

function readFile(file: string, what: string): Uint8Array {
  try {
    return readFileSync(file)
  } catch (err) {
    throw new BadInputError(
      `cannot read the ${what} ${file}: ${(err as NodeJS.ErrnoException).code ?? err}`,
      {
        cause: err,
      },
    )
  }
}

/**
 * Drains a connection, and closes it when draining fails or cannot happen (the server is gone:
 * closed at once, without waiting for a drain that would only time out), so that a stopped node
 * or client never keeps reconnecting in the background.
 */
export async function closeConnection(nc: NatsConnection): Promise<void> {
  if (await isReachable(nc)) await nc.drain().catch(() => {})
  if (!nc.isClosed()) await nc.close().catch(() => {})
}

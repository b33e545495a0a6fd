/**
 * What the dashboard's server checks before it answers, against DNS rebinding and cross-site
 * requests (CSRF):
 *
 * - every request's `Host` must name the dashboard: loopback names (`localhost`, `127.0.0.1`,
 *   `[::1]`) when it binds a loopback address, the bound address itself, any IP address when it
 *   binds every interface (`0.0.0.0`, `::`), and the names given with `allowedHosts`
 *   (`--allow-host`); `'*'` there accepts any host. A DNS-rebinding page always sends its own
 *   domain name, so it is refused; an IP address cannot be rebound. The port is not compared, so
 *   an SSH tunnel or a proxy on another port still works.
 * - every request that is not GET or HEAD (the action routes) must carry the `X-Basalt-Dashboard`
 *   header, which a browser sends cross-origin only after a CORS preflight the server never
 *   approves, and its `Origin`, when present, must be the dashboard's own (the host and port of
 *   its `Host`, or an allowed host name).
 */
import { isIP } from 'node:net'

/** The header the page's own requests send with every action. */
export const ACTION_HEADER = 'x-basalt-dashboard'

/** Which `Host` values the server answers (see {@link hostPolicy}). */
export interface HostPolicy {
  /** Host names (lower case, IPv6 without brackets) accepted on any port. */
  readonly names: ReadonlySet<string>
  /** Any IP address is accepted (bound to every interface). */
  readonly anyIp: boolean
  /** The names the operator allowed (`allowedHosts`): also accepted as an action's `Origin`. */
  readonly allowed: ReadonlySet<string>
  /** Any host at all (`'*'` among the allowed hosts). */
  readonly any: boolean
  /** What the error says is accepted. */
  readonly described: string
}

const LOOPBACK = ['localhost', '127.0.0.1', '::1']

/** The hosts a dashboard bound to `bindHost` answers, plus `allowedHosts` (names; `'*'`: any). */
export function hostPolicy(bindHost: string, allowedHosts: readonly string[] = []): HostPolicy {
  const bound = bareHost(bindHost)
  const all = bound === '0.0.0.0' || bound === '::' || bound === ''
  const loopback = bound === 'localhost' || bound === '::1' || /^127\./.test(bound)
  const names = new Set<string>()
  if (all || loopback) for (const n of LOOPBACK) names.add(n)
  if (!all) names.add(bound)
  const allowed = new Set(allowedHosts.map(bareHost))
  for (const h of allowed) names.add(h)
  const shown = [...names].filter((n) => n !== '*').map((n) => (n.includes(':') ? `[${n}]` : n))
  return {
    names,
    allowed,
    anyIp: all,
    any: names.has('*'),
    described: `${shown.join(', ')}${all ? ' and any IP address' : ''}`,
  }
}

/** Why a request's `Host` header is refused, or undefined when it is accepted. */
export function refuseHost(host: string | undefined, policy: HostPolicy): string | undefined {
  if (policy.any) return undefined
  if (host === undefined || host === '') return 'the request has no Host header'
  const name = hostName(host)
  if (name !== undefined && (policy.names.has(name) || (policy.anyIp && isIP(name) !== 0))) return undefined
  const hint = name === undefined ? '' : ` (start it with --allow-host ${name} to allow it)`
  return `host '${host}' is not allowed: this dashboard answers to ${policy.described}${hint}`
}

/**
 * Why an action request (any method but GET and HEAD) is refused, or undefined when it is
 * accepted: a missing `X-Basalt-Dashboard` header or an `Origin` that is not the dashboard's own.
 */
export function refuseAction(
  headers: Record<string, string | string[] | undefined>,
  policy: HostPolicy,
): string | undefined {
  const origin = headers.origin
  if (typeof origin === 'string' && !sameOrigin(origin, headers.host, policy)) {
    return `origin '${origin}' is not this dashboard's: actions are accepted only from the dashboard's own page (behind a proxy, start it with --allow-host NAME for the name the browser uses)`
  }
  if (headers[ACTION_HEADER] === undefined) {
    return `missing header 'X-Basalt-Dashboard': actions are accepted only from the dashboard's own page (or a script that sends 'X-Basalt-Dashboard: 1')`
  }
  return undefined
}

/** `Origin` names the host and port of `Host`, or a host name the operator allowed. */
function sameOrigin(origin: string, host: string | string[] | undefined, policy: HostPolicy): boolean {
  let url: URL
  try {
    url = new URL(origin)
  } catch {
    return false // 'null' (a sandboxed frame, a file) and anything malformed
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return false
  // the page's own origin: the host and port it was served under (a default port left out)
  if (typeof host === 'string' && url.host === originHost(`${url.protocol}//${host}/`)) return true
  // a name given with --allow-host (behind a proxy the Host may be the proxy's upstream address)
  return policy.allowed.has(bareHost(url.hostname))
}

/** The `host` (name and port, a default port left out) of a URL; undefined when malformed. */
function originHost(url: string): string | undefined {
  try {
    return new URL(url).host
  } catch {
    return undefined
  }
}

/** The host name of a `Host` header value (`name[:port]`, `[v6][:port]`), lower case; undefined when malformed. */
function hostName(host: string): string | undefined {
  try {
    const url = new URL(`http://${host}/`)
    if (url.username !== '' || url.password !== '' || url.pathname !== '/' || url.search !== '')
      return undefined
    return bareHost(url.hostname)
  } catch {
    return undefined
  }
}

/** Lower case, IPv6 without brackets. */
function bareHost(host: string): string {
  const h = host.trim().toLowerCase()
  return h.startsWith('[') && h.endsWith(']') ? h.slice(1, -1) : h
}

/**
 * What a `nats-server` launch is made of, before any process runs: the options of
 * `startNatsServer`, the errors it throws, where the executable is found, and the config file it
 * writes (127.0.0.1 only, JetStream store under the server's store dir, an optional cluster block
 * and any extra configuration a test adds). Pure apart from the file-system checks of
 * {@link findNatsServer}; the process itself is nats-server.ts's.
 */
import { accessSync, constants, statSync } from 'node:fs'
import path from 'node:path'

/** nats-server's default `max_pending`; `max_payload` may not exceed it. */
const DEFAULT_MAX_PENDING = 64 * 1024 * 1024
/** Conventional install locations checked after `$PATH`. */
const FALLBACK_PATHS = ['/usr/sbin/nats-server', '/usr/local/bin/nats-server']

/** Thrown when no `nats-server` executable can be found. */
export class NatsServerMissingError extends Error {
  override readonly name = 'NatsServerMissingError'
  /** Stable machine-readable error code. */
  readonly code = 'NATS_SERVER_MISSING'

  /** @param detail optional extra context (e.g. the bad `$NATS_SERVER_BIN` value), kept off the message. */
  constructor(readonly detail?: string) {
    super(
      'nats-server not found on PATH (or at $NATS_SERVER_BIN); install it with: apt-get install nats-server',
    )
  }
}

/** Thrown when a `nats-server` process exits or does not become ready during start-up. */
export class NatsServerStartError extends Error {
  override readonly name = 'NatsServerStartError'
  /** Stable machine-readable error code. */
  readonly code = 'NATS_SERVER_START_FAILED'

  /**
   * @param reason what went wrong
   * @param logTail the last lines of the server log
   */
  constructor(
    reason: string,
    readonly logTail: string,
  ) {
    super(`${reason}\n--- last lines of nats-server log ---\n${logTail || '(log is empty)'}`)
  }
}

/** Internal: route configuration of one cluster member, filled in by `startNatsCluster`. */
export interface NatsClusterMemberOptions {
  /** Cluster name shared by all members. */
  name: string
  /** Port this member listens on for routes. */
  port: number
  /** Route URLs of all members (own URL included; nats-server ignores it). */
  routes: string[]
}

/** Options of `startNatsServer`. */
export interface NatsServerOptions {
  /** Directory for config, log and JetStream data; a fresh temp dir (removed on dispose) when omitted. */
  storeDir?: string
  /** Client port; a free one when omitted. */
  port?: number
  /** `max_payload` in bytes; the server default (1 MiB) when omitted. */
  maxPayload?: number
  /** Enable JetStream (default true). */
  jetstream?: boolean
  /** JetStream's `max_file_store` in bytes (the server's default, most of the disk, when omitted). */
  maxFileStore?: number
  /** `server_name`; required (and set by `startNatsCluster`) for clustered JetStream. */
  name?: string
  /** Internal: cluster membership, set by `startNatsCluster`. */
  cluster?: NatsClusterMemberOptions
  /** Log file for the server's stdout/stderr; `<storeDir>/nats-server.log` when omitted. */
  logFile?: string
  /**
   * Extra nats-server configuration appended to the generated file: `authorization`, `accounts`
   * or `tls` blocks, e.g. `authorization { token: "s3cret" }` (the security tests use it).
   */
  extraConfig?: string
}

/** True if `file` exists, is a regular file, and is executable. */
function isExecutable(file: string): boolean {
  try {
    accessSync(file, constants.X_OK)
    return statSync(file).isFile()
  } catch {
    return false
  }
}

/**
 * Locates the `nats-server` executable: `$NATS_SERVER_BIN` if set (it must exist), else `$PATH`, else
 * `/usr/sbin/nats-server` and `/usr/local/bin/nats-server`.
 *
 * @throws {@link NatsServerMissingError} when none is found, or `$NATS_SERVER_BIN` points nowhere.
 */
export function findNatsServer(): string {
  const explicit = process.env['NATS_SERVER_BIN']
  if (explicit) {
    if (isExecutable(explicit)) return explicit
    throw new NatsServerMissingError(`$NATS_SERVER_BIN=${explicit} is not an executable file`)
  }
  const dirs = (process.env['PATH'] ?? '').split(path.delimiter).filter(Boolean)
  const candidates = [...dirs.map((dir) => path.join(dir, 'nats-server')), ...FALLBACK_PATHS]
  const found = candidates.find(isExecutable)
  if (found === undefined) throw new NatsServerMissingError()
  return found
}

/** Renders a string as a quoted config value. */
function quote(value: string): string {
  return JSON.stringify(value)
}

/** Renders the nats-server config file for one server. */
export function renderConfig(opts: {
  port: number
  storeDir: string
  jetstream: boolean
  name?: string
  maxPayload?: number
  maxFileStore?: number
  cluster?: NatsClusterMemberOptions
  extraConfig?: string
}): string {
  const lines = [`listen: "127.0.0.1:${opts.port}"`]
  if (opts.name !== undefined) lines.push(`server_name: ${quote(opts.name)}`)
  if (opts.maxPayload !== undefined) {
    lines.push(`max_payload: ${opts.maxPayload}`)
    if (opts.maxPayload > DEFAULT_MAX_PENDING) lines.push(`max_pending: ${opts.maxPayload}`)
  }
  if (opts.jetstream) {
    lines.push('jetstream {', `  store_dir: ${quote(opts.storeDir)}`)
    if (opts.maxFileStore !== undefined) lines.push(`  max_file_store: ${opts.maxFileStore}`)
    lines.push('}')
  }
  if (opts.cluster !== undefined) lines.push(...renderClusterBlock(opts.cluster))
  if (opts.extraConfig !== undefined) lines.push(opts.extraConfig)
  return lines.join('\n') + '\n'
}

/** Renders the `cluster { ... }` block of a member's config. */
function renderClusterBlock(cluster: NatsClusterMemberOptions): string[] {
  return [
    'cluster {',
    `  name: ${quote(cluster.name)}`,
    `  listen: "127.0.0.1:${cluster.port}"`,
    '  routes: [',
    ...cluster.routes.map((route) => `    ${quote(route)}`),
    '  ]',
    '}',
  ]
}

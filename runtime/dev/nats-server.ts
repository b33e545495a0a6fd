/**
 * Launcher for real `nats-server` processes.
 *
 * Used by the product (the demo's "embedded default" server) and by the tests. Every server listens on
 * 127.0.0.1 only, keeps its config, log and JetStream data in one store directory, and is tracked in a
 * module-level registry so that nothing is leaked when the owning process ends: {@link stopAllNatsServers}
 * stops everything that is left, and an `exit` hook SIGKILLs any child that is still running.
 *
 * The cluster builder is test/tooling/nats-cluster.ts; it starts its members here and shares the helpers
 * for ports, temp dirs, logs and exit hooks that this module exports.
 *
 * @module
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { accessSync, closeSync, constants, fstatSync, openSync, readSync, rmSync, statSync } from 'node:fs'
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'

/** How long {@link startNatsServer} waits for a server to accept client connections. */
const READY_DEADLINE_MS = 10_000
/** How long `stop('SIGTERM')` waits before escalating to SIGKILL. */
const STOP_GRACE_MS = 5_000
/** Interval between readiness probes. */
const POLL_MS = 50
/** nats-server's default `max_pending`; `max_payload` may not exceed it. */
const DEFAULT_MAX_PENDING = 64 * 1024 * 1024
/** Number of log lines quoted in start-up errors. */
const LOG_TAIL_LINES = 25
/** The log line nats-server prints once it accepts client connections. */
const READY_LINE = 'Server is ready'
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

/** Internal: route configuration of one cluster member, filled in by {@link startNatsCluster}. */
export interface NatsClusterMemberOptions {
  /** Cluster name shared by all members. */
  name: string
  /** Port this member listens on for routes. */
  port: number
  /** Route URLs of all members (own URL included; nats-server ignores it). */
  routes: string[]
}

/** Options of {@link startNatsServer}. */
export interface NatsServerOptions {
  /** Directory for config, log and JetStream data; a fresh temp dir (removed on dispose) when omitted. */
  storeDir?: string
  /** Client port; a free one when omitted. */
  port?: number
  /** `max_payload` in bytes; the server default (1 MiB) when omitted. */
  maxPayload?: number
  /** Enable JetStream (default true). */
  jetstream?: boolean
  /** `server_name`; required (and set by {@link startNatsCluster}) for clustered JetStream. */
  name?: string
  /** Internal: cluster membership, set by {@link startNatsCluster}. */
  cluster?: NatsClusterMemberOptions
  /** Log file for the server's stdout/stderr; `<storeDir>/nats-server.log` when omitted. */
  logFile?: string
  /**
   * Extra nats-server configuration appended to the generated file: `authorization`, `accounts`
   * or `tls` blocks, e.g. `authorization { token: "s3cret" }` (the security tests use it).
   */
  extraConfig?: string
}

/** A running (or stopped and restartable) `nats-server` process. */
export interface NatsServer {
  /** Client URL, e.g. `nats://127.0.0.1:4222`. */
  readonly url: string
  /** Client port. */
  readonly port: number
  /** Store directory (config, log, JetStream data). */
  readonly storeDir: string
  /** Process id of the current process (changes on restart). */
  readonly pid: number
  /** Path of the server log. */
  readonly logFile: string
  /** Stops the process and waits for it to exit; SIGTERM escalates to SIGKILL after 5 s. */
  stop(signal?: 'SIGTERM' | 'SIGKILL'): Promise<void>
  /** Stops (if running) and starts again on the same port with the same store. */
  restart(): Promise<void>
  /** Freezes the process (SIGSTOP). */
  pause(): void
  /** Thaws a paused process (SIGCONT). */
  resume(): void
  /** Kills the process and removes the store directory if this launcher created it. */
  dispose(): Promise<void>
}

// ---------------------------------------------------------------------------------------------------------
// Registry and exit hooks
// ---------------------------------------------------------------------------------------------------------

/** Child processes that are (possibly) still running. */
const liveChildren = new Set<ChildProcess>()
/** Temp dirs created by this module and not yet removed. */
const ownedDirs = new Set<string>()
/** Servers that were started and not yet disposed. */
const liveServers = new Set<ManagedNatsServer>()
let hooksInstalled = false

/** SIGKILLs every tracked child and removes owned temp dirs, synchronously. */
function killEverythingSync(): void {
  for (const child of liveChildren) {
    try {
      child.kill('SIGKILL')
    } catch {
      // already gone
    }
  }
  liveChildren.clear()
  for (const dir of ownedDirs) {
    try {
      rmSync(dir, { recursive: true, force: true })
    } catch {
      // best effort at exit
    }
  }
  ownedDirs.clear()
}

/**
 * On a terminating signal with no other listener, cleans up and re-raises the signal so that the default
 * action (exit by signal) still happens. If the application has its own handler it owns shutdown, and the
 * `exit` hook covers us once it exits.
 */
function onTerminatingSignal(signal: NodeJS.Signals): void {
  if (process.listenerCount(signal) > 1) return
  killEverythingSync()
  process.removeListener(signal, onTerminatingSignal)
  process.kill(process.pid, signal)
}

/** Installs the `exit` and signal hooks once, on first use. */
export function installHooks(): void {
  if (hooksInstalled) return
  hooksInstalled = true
  process.on('exit', killEverythingSync)
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(signal, onTerminatingSignal)
}

/** Stops and disposes every server started by this module that has not been disposed yet. */
export async function stopAllNatsServers(): Promise<void> {
  await Promise.allSettled([...liveServers].map((server) => server.dispose()))
  killEverythingSync()
}

// ---------------------------------------------------------------------------------------------------------
// Small helpers
// ---------------------------------------------------------------------------------------------------------

/** Resolves after `ms` milliseconds. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
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

/** Returns a TCP port that was free on 127.0.0.1 a moment ago (listen on port 0, read it, close). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer()
    server.unref()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const address = server.address()
      const port = typeof address === 'object' && address !== null ? address.port : 0
      server.close(() => (port > 0 ? resolve(port) : reject(new Error('could not determine a free port'))))
    })
  })
}

/** Returns `count` distinct free ports. */
export async function freePorts(count: number): Promise<number[]> {
  const ports = new Set<number>()
  while (ports.size < count) ports.add(await freePort())
  return [...ports]
}

/** Reads the last `lines` lines of a (possibly large or missing) log file. */
export function readLogTail(file: string, lines = LOG_TAIL_LINES): string {
  let fd: number | undefined
  try {
    fd = openSync(file, 'r')
    const size = fstatSync(fd).size
    const length = Math.min(size, 64 * 1024)
    const buffer = Buffer.alloc(length)
    readSync(fd, buffer, 0, length, size - length)
    return buffer.toString('utf8').trimEnd().split('\n').slice(-lines).join('\n')
  } catch {
    return ''
  } finally {
    if (fd !== undefined) closeSync(fd)
  }
}

/** Size of `file` in bytes, 0 if it does not exist. */
function fileSize(file: string): number {
  try {
    return statSync(file).size
  } catch {
    return 0
  }
}

/** Text of `file` from byte `offset` on ('' if missing). */
function readFrom(file: string, offset: number): string {
  let fd: number | undefined
  try {
    fd = openSync(file, 'r')
    const length = Math.max(0, fstatSync(fd).size - offset)
    const buffer = Buffer.alloc(length)
    readSync(fd, buffer, 0, length, offset)
    return buffer.toString('utf8')
  } catch {
    return ''
  } finally {
    if (fd !== undefined) closeSync(fd)
  }
}

/** Connects to 127.0.0.1:`port` and resolves true if the server greets with an `INFO` line. */
function probeInfo(port: number, timeoutMs = 1_000): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port })
    let received = ''
    const finish = (ok: boolean): void => {
      clearTimeout(timer)
      socket.destroy()
      resolve(ok)
    }
    const timer = setTimeout(() => finish(false), timeoutMs)
    socket.on('data', (chunk: Buffer) => {
      received += chunk.toString('utf8')
      if (received.includes('\r\n')) finish(received.startsWith('INFO '))
    })
    socket.on('error', () => finish(false))
    socket.on('close', () => finish(false))
  })
}

/** Renders a string as a quoted config value. */
function quote(value: string): string {
  return JSON.stringify(value)
}

/** Renders the nats-server config file for one server. */
function renderConfig(opts: {
  port: number
  storeDir: string
  jetstream: boolean
  name?: string
  maxPayload?: number
  cluster?: NatsClusterMemberOptions
  extraConfig?: string
}): string {
  const lines = [`listen: "127.0.0.1:${opts.port}"`]
  if (opts.name !== undefined) lines.push(`server_name: ${quote(opts.name)}`)
  if (opts.maxPayload !== undefined) {
    lines.push(`max_payload: ${opts.maxPayload}`)
    if (opts.maxPayload > DEFAULT_MAX_PENDING) lines.push(`max_pending: ${opts.maxPayload}`)
  }
  if (opts.jetstream) lines.push('jetstream {', `  store_dir: ${quote(opts.storeDir)}`, '}')
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

// ---------------------------------------------------------------------------------------------------------
// One server
// ---------------------------------------------------------------------------------------------------------

/** A spawned nats-server process and a promise of its exit. */
interface RunningProcess {
  child: ChildProcess
  exited: Promise<void>
  exitInfo: { code: number | null; signal: NodeJS.Signals | null; error?: Error } | undefined
}

/** Spawns nats-server with `configFile`, stdout/stderr appended to `logFile`. */
function spawnServer(bin: string, configFile: string, logFile: string): RunningProcess {
  const logFd = openSync(logFile, 'a')
  let child: ChildProcess
  try {
    // its own process group: a terminal's Ctrl-C reaches only the parent, which stops it in order
    child = spawn(bin, ['-c', configFile], { stdio: ['ignore', logFd, logFd], detached: true })
  } finally {
    closeSync(logFd)
  }
  liveChildren.add(child)
  const running: RunningProcess = { child, exited: Promise.resolve(), exitInfo: undefined }
  running.exited = new Promise<void>((resolve) => {
    child.once('exit', (code, signal) => {
      running.exitInfo = { code, signal }
      liveChildren.delete(child)
      resolve()
    })
    child.once('error', (error) => {
      running.exitInfo = { code: null, signal: null, error }
      liveChildren.delete(child)
      resolve()
    })
  })
  return running
}

/** Describes how a process ended, for error messages. */
function describeExit(info: NonNullable<RunningProcess['exitInfo']>): string {
  if (info.error) return `failed to spawn: ${info.error.message}`
  return info.signal ? `exited on ${info.signal}` : `exited with code ${String(info.code)}`
}

/** Implementation of {@link NatsServer}. */
class ManagedNatsServer implements NatsServer {
  readonly url: string
  private running: RunningProcess | undefined
  private paused = false
  private disposed = false

  constructor(
    private readonly bin: string,
    readonly port: number,
    readonly storeDir: string,
    private readonly configFile: string,
    readonly logFile: string,
    private readonly ownsStoreDir: boolean,
  ) {
    this.url = `nats://127.0.0.1:${port}`
  }

  get pid(): number {
    return this.running?.child.pid ?? -1
  }

  /** Spawns the process and waits until it accepts client connections. */
  async launch(): Promise<void> {
    if (this.disposed) throw new Error('nats-server handle was disposed')
    if (this.isRunning()) return
    this.paused = false
    const logOffset = fileSize(this.logFile)
    this.running = spawnServer(this.bin, this.configFile, this.logFile)
    await this.waitReady(this.running, logOffset, Date.now() + READY_DEADLINE_MS)
  }

  private isRunning(): boolean {
    return this.running !== undefined && this.running.exitInfo === undefined
  }

  /**
   * Waits until this process logged "Server is ready" (past `logOffset`, so not an earlier run's line) and
   * the port greets with INFO. The log check matters: a probe alone could be answered by another process
   * that already holds the port, while ours is about to exit with "address already in use".
   */
  private async waitReady(running: RunningProcess, logOffset: number, deadline: number): Promise<void> {
    for (;;) {
      if (running.exitInfo !== undefined) {
        throw new NatsServerStartError(
          `nats-server on port ${this.port} ${describeExit(running.exitInfo)}`,
          this.logTail(),
        )
      }
      if (readFrom(this.logFile, logOffset).includes(READY_LINE) && (await probeInfo(this.port))) return
      if (Date.now() > deadline) {
        await this.stop('SIGKILL')
        throw new NatsServerStartError(
          `nats-server on port ${this.port} not ready after ${READY_DEADLINE_MS} ms`,
          this.logTail(),
        )
      }
      await sleep(POLL_MS)
    }
  }

  /** The last lines of this server's log. */
  logTail(): string {
    return readLogTail(this.logFile)
  }

  async stop(signal: 'SIGTERM' | 'SIGKILL' = 'SIGTERM'): Promise<void> {
    const running = this.running
    if (running === undefined || running.exitInfo !== undefined) return
    running.child.kill(signal)
    if (this.paused) running.child.kill('SIGCONT')
    this.paused = false
    if (signal === 'SIGTERM') {
      const timer = setTimeout(() => running.child.kill('SIGKILL'), STOP_GRACE_MS)
      await running.exited
      clearTimeout(timer)
    } else {
      await running.exited
    }
  }

  async restart(): Promise<void> {
    await this.stop('SIGTERM')
    await this.launch()
  }

  pause(): void {
    if (!this.isRunning() || this.paused) return
    this.running?.child.kill('SIGSTOP')
    this.paused = true
  }

  resume(): void {
    if (!this.isRunning() || !this.paused) return
    this.running?.child.kill('SIGCONT')
    this.paused = false
  }

  async dispose(): Promise<void> {
    if (this.disposed) return
    this.disposed = true
    // The data is about to be deleted anyway, so do not wait for a graceful shutdown.
    await this.stop(this.ownsStoreDir ? 'SIGKILL' : 'SIGTERM')
    liveServers.delete(this)
    if (this.ownsStoreDir) await removeOwnedDir(this.storeDir)
  }
}

/** Creates a fresh temp dir under `os.tmpdir()` and tracks it for removal at exit. */
export async function createOwnedDir(prefix: string): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), prefix))
  ownedDirs.add(dir)
  return dir
}

/** Removes a dir created by {@link createOwnedDir}. */
export async function removeOwnedDir(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true })
  ownedDirs.delete(dir)
}

/** True if a start-up failure was caused by the port being taken (a race after {@link freePort}). */
function isPortClash(error: unknown): boolean {
  return error instanceof NatsServerStartError && /address already in use/i.test(error.logTail)
}

/**
 * Starts a `nats-server` on 127.0.0.1 with JetStream (unless disabled) and waits until it accepts client
 * connections (10 s deadline).
 *
 * @throws {@link NatsServerMissingError} when the binary cannot be found.
 * @throws {@link NatsServerStartError} when the server exits or is not ready in time; the message carries
 *   the last lines of its log.
 */
export async function startNatsServer(opts: NatsServerOptions = {}): Promise<NatsServer> {
  const bin = findNatsServer()
  installHooks()
  const attempts = opts.port === undefined ? 3 : 1
  for (let attempt = 1; ; attempt++) {
    try {
      return await startOnce(bin, opts)
    } catch (error) {
      if (attempt >= attempts || !isPortClash(error)) throw error
    }
  }
}

/** One start attempt of {@link startNatsServer}; cleans up after itself on failure. */
async function startOnce(bin: string, opts: NatsServerOptions): Promise<NatsServer> {
  const ownsStoreDir = opts.storeDir === undefined
  const storeDir = opts.storeDir ?? (await createOwnedDir('basalt-nats-'))
  await mkdir(storeDir, { recursive: true })
  const port = opts.port ?? (await freePort())
  const configFile = path.join(storeDir, 'nats-server.conf')
  const logFile = opts.logFile ?? path.join(storeDir, 'nats-server.log')
  const config = renderConfig({ ...opts, port, storeDir, jetstream: opts.jetstream ?? true })
  await writeFile(configFile, config)
  const server = new ManagedNatsServer(bin, port, storeDir, configFile, logFile, ownsStoreDir)
  liveServers.add(server)
  try {
    await server.launch()
    return server
  } catch (error) {
    await server.dispose()
    throw error
  }
}

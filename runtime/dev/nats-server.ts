/**
 * Launcher for real `nats-server` processes: the process lifecycle (spawn, wait until ready, stop,
 * restart, pause, dispose) and `startNatsServer`, which writes a config and starts a server on a
 * free port of 127.0.0.1.
 *
 * Used by the product (the demo's and `basalt dev`'s "embedded default" server) and by the tests.
 * Every server listens on 127.0.0.1 only, keeps its config, log and JetStream data in one store
 * directory, and is tracked so that nothing is leaked when the owning process ends. The pieces
 * beside it: nats-server-config.ts (options, errors, finding the binary, the config file),
 * probes.ts (free ports, log reading, the readiness probe) and owned-resources.ts (the tracked
 * children, temp dirs and exit hooks). This module re-exports their public names, so that callers
 * import the launcher from one place.
 *
 * The cluster builder is test/tooling/nats-cluster.ts; it starts its members here and shares the helpers
 * for ports, temp dirs, logs and exit hooks that this module exports.
 *
 * @module
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { closeSync, openSync } from 'node:fs'
import { mkdir, writeFile } from 'node:fs/promises'
import path from 'node:path'
import {
  findNatsServer,
  NatsServerStartError,
  renderConfig,
  type NatsServerOptions,
} from './nats-server-config.ts'
import {
  createOwnedDir,
  installHooks,
  removeOwnedDir,
  trackChild,
  trackServer,
  untrackChild,
  untrackServer,
} from './owned-resources.ts'
import { fileSize, freePort, probeInfo, readFrom, readLogTail, sleep } from './probes.ts'

export {
  findNatsServer,
  NatsServerMissingError,
  NatsServerStartError,
  type NatsClusterMemberOptions,
  type NatsServerOptions,
} from './nats-server-config.ts'
export { createOwnedDir, installHooks, removeOwnedDir, stopAllNatsServers } from './owned-resources.ts'
export { freePort, freePorts, readLogTail, sleep } from './probes.ts'

/** How long {@link startNatsServer} waits for a server to accept client connections. */
const READY_DEADLINE_MS = 10_000
/** How long `stop('SIGTERM')` waits before escalating to SIGKILL. */
const STOP_GRACE_MS = 5_000
/** Interval between readiness probes. */
const POLL_MS = 50
/** The log line nats-server prints once it accepts client connections. */
const READY_LINE = 'Server is ready'

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
  trackChild(child)
  const running: RunningProcess = { child, exited: Promise.resolve(), exitInfo: undefined }
  running.exited = new Promise<void>((resolve) => {
    child.once('exit', (code, signal) => {
      running.exitInfo = { code, signal }
      untrackChild(child)
      resolve()
    })
    child.once('error', (error) => {
      running.exitInfo = { code: null, signal: null, error }
      untrackChild(child)
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
    untrackServer(this)
    if (this.ownsStoreDir) await removeOwnedDir(this.storeDir)
  }
}

/**
 * True if a start-up failure was caused by the port being taken (a race after {@link freePort},
 * or a port given that another process listens on).
 */
export function isPortClash(error: unknown): boolean {
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
  trackServer(server)
  try {
    await server.launch()
    return server
  } catch (error) {
    await server.dispose()
    throw error
  }
}

/**
 * Test helpers for vitest built on {@link startNatsServer} and {@link startNatsCluster}.
 *
 * Importing this module registers one file-level `afterAll` that removes every {@link tempDir}, SIGKILLs
 * every {@link spawnTs} child still running and stops any nats-server the file left behind, plus a
 * process `exit` hook that SIGKILLs leftover children if the test worker dies first.
 *
 * @module
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import os from 'node:os'
import path from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { afterAll, beforeAll } from 'vitest'
import { startNatsCluster, type NatsCluster, type NatsClusterOptions } from './nats-cluster.ts'
import { Client, Node, silentLogger, type Logger, type NodeOptions } from '../../runtime/index.ts'
import { partitionOf } from '../../actors/ids.ts'
import {
  findNatsServer,
  startNatsServer,
  stopAllNatsServers,
  type NatsServer,
  type NatsServerOptions,
} from '../../runtime/dev/nats-server.ts'

/**
 * The version the tests' `nats-server` reports (`nats-server --version`, e.g. `v2.9.10`), known
 * before any server starts: for suites that only apply to some versions.
 */
export function natsServerVersion(): string {
  const out = execFileSync(findNatsServer(), ['--version'], { encoding: 'utf8' })
  return /v?\d+\.\d+\.\d+/.exec(out)?.[0] ?? out.trim()
}

/**
 * A logger that keeps the lines (`message {fields}`) of the given levels in `lines` and drops the
 * others; every level by default.
 */
export function keptLines(
  lines: string[] = [],
  levels: ReadonlyArray<keyof Logger> = ['info', 'warn', 'error'],
): Logger {
  const keep = (message: string, fields?: Record<string, unknown>) =>
    lines.push(`${message} ${JSON.stringify(fields ?? {})}`)
  const drop = () => {}
  return {
    info: levels.includes('info') ? keep : drop,
    warn: levels.includes('warn') ? keep : drop,
    error: levels.includes('error') ? keep : drop,
  }
}

/** Repository root (two levels above `test/tooling/`); the working directory of {@link spawnTs} children. */
export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..')

/** At most this many output lines are kept per spawned child. */
const MAX_LINES = 5_000

/** Temp dirs created by {@link tempDir} in this test file. */
const tempDirs = new Set<string>()
/** Children started by {@link spawnTs} that may still be running. */
const children = new Set<ChildProcess>()

/** SIGKILLs every child that is still running, synchronously. */
function killChildrenSync(): void {
  for (const child of children) {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
  }
  children.clear()
}

/** Removes every temp dir of this file. */
function removeTempDirs(): void {
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true })
  tempDirs.clear()
}

process.on('exit', killChildrenSync)

afterAll(async () => {
  killChildrenSync()
  await stopAllNatsServers()
  removeTempDirs()
})

/** Accessors for a server started by {@link useNatsServer}; valid inside tests and later hooks. */
export interface NatsServerFixture {
  /** The running server. */
  readonly server: NatsServer
  /** Its client URL. */
  readonly url: string
}

/** Accessors for a cluster started by {@link useNatsCluster}; valid inside tests and later hooks. */
export interface NatsClusterFixture {
  /** The running cluster. */
  readonly cluster: NatsCluster
  /** Its members. */
  readonly servers: NatsServer[]
  /** Client URLs of all members. */
  readonly urls: string[]
}

/** Returns `value`, or throws a helpful error if the fixture is read before `beforeAll` ran. */
function started<T>(value: T | undefined, what: string): T {
  if (value === undefined)
    throw new Error(`${what} is not started yet: read it inside a test or a later hook`)
  return value
}

/**
 * Starts a nats-server in `beforeAll` and disposes it in `afterAll` of the enclosing suite.
 *
 * @param opts passed to {@link startNatsServer}
 */
export function useNatsServer(opts?: NatsServerOptions): NatsServerFixture {
  let server: NatsServer | undefined
  beforeAll(async () => {
    server = await startNatsServer(opts)
  })
  afterAll(async () => {
    await server?.dispose()
    server = undefined
  })
  return {
    get server() {
      return started(server, 'useNatsServer()')
    },
    get url() {
      return started(server, 'useNatsServer()').url
    },
  }
}

/** A node and a client on one hub, see {@link useHub}. */
export interface HubFixture {
  readonly node: Node
  readonly client: Client
}

/**
 * Starts a node (in this process, silent unless `logger` is given) and a client on hub
 * `options.hub` in `beforeAll`; closes both in `afterAll` of the enclosing suite.
 *
 * @example const stack = useHub(nats, { hub: 'orders', registry: [Counter], partitions: 4 })
 */
export function useHub(nats: { readonly url: string }, options: Omit<NodeOptions, 'servers'>): HubFixture {
  let node: Node | undefined
  let client: Client | undefined
  beforeAll(async () => {
    node = await Node.start({ servers: nats.url, logger: silentLogger, ...options })
    client = await Client.connect({ servers: nats.url, hub: options.hub })
  })
  afterAll(async () => {
    await client?.close()
    await node?.stop()
    client = node = undefined
  })
  return {
    get node() {
      return started(node, 'useHub()')
    },
    get client() {
      return started(client, 'useHub()')
    },
  }
}

/**
 * Starts a JetStream cluster in `beforeAll` and disposes it in `afterAll` of the enclosing suite.
 *
 * @param size number of servers (default 3)
 * @param opts passed to {@link startNatsCluster}
 */
export function useNatsCluster(size = 3, opts?: NatsClusterOptions): NatsClusterFixture {
  let cluster: NatsCluster | undefined
  beforeAll(async () => {
    cluster = await startNatsCluster(size, opts)
  })
  afterAll(async () => {
    await cluster?.dispose()
    cluster = undefined
  })
  return {
    get cluster() {
      return started(cluster, 'useNatsCluster()')
    },
    get servers() {
      return started(cluster, 'useNatsCluster()').servers
    },
    get urls() {
      return started(cluster, 'useNatsCluster()').urls
    },
  }
}

/** Resolves after `ms` milliseconds. */
function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}

// whether the process `pid` runs: signal 0 reaches it and, on Linux, it is no zombie (a killed
// process its parent has not reaped yet is dead, though signal 0 still reaches it)
export { isAlive as isProcessAlive } from '../../runtime/dev/store-owner.ts'

/**
 * Polls `predicate` every 10 ms until it returns true. A predicate that throws counts as "not yet"; the
 * last such error becomes the `cause` of the timeout error.
 *
 * @throws Error `timed out after Xms waiting for: <what>` when `timeoutMs` passes first.
 */
export async function waitFor(
  predicate: () => boolean | Promise<boolean>,
  what: string,
  timeoutMs = 10_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs
  let lastError: unknown
  for (;;) {
    try {
      if (await predicate()) return
    } catch (error) {
      lastError = error
    }
    if (Date.now() >= deadline) {
      const options = lastError === undefined ? undefined : { cause: lastError }
      throw new Error(`timed out after ${timeoutMs}ms waiting for: ${what}`, options)
    }
    await sleep(10)
  }
}

/** Creates a fresh temp dir that is removed after this file's tests. */
export function tempDir(prefix = 'basalt-test-'): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), prefix))
  tempDirs.add(dir)
  return dir
}

/** A TypeScript child process started by {@link spawnTs}. */
export interface SpawnedTs {
  /** The child process. */
  readonly child: ChildProcess
  /** Its process id. */
  readonly pid: number
  /** Output lines so far, stdout and stderr interleaved as they arrive (the last 5000 are kept). */
  readonly lines: string[]
  /** Resolves with the first line (past or future) matching `re`; rejects on timeout or exit. */
  waitForLine(re: RegExp, timeoutMs?: number): Promise<string>
  /** Sends a signal (default SIGTERM) if the child is still running. */
  kill(signal?: NodeJS.Signals): void
  /** Resolves with the exit code, or null when the child was ended by a signal. */
  readonly exited: Promise<number | null>
}

/** `file:` URL of tsx's ESM loader, so children do not depend on their working directory. */
function tsxLoaderUrl(): string {
  return pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href
}

/** Appends every line of `stream` to `lines` and notifies `onLine`. */
function collectLines(stream: NodeJS.ReadableStream, lines: string[], onLine: () => void): void {
  const reader = createInterface({ input: stream, crlfDelay: Infinity })
  reader.on('line', (line) => {
    lines.push(line)
    if (lines.length > MAX_LINES) lines.shift()
    onLine()
  })
}

/** Describes the last output lines of a child, for error messages. */
function outputTail(lines: string[], count = 30): string {
  return lines.length === 0 ? '(no output)' : lines.slice(-count).join('\n')
}

/**
 * Starts `node --import tsx <file> ...args` with piped stdout/stderr, in the repo root, with `env` added
 * to the current environment. The child is SIGKILLed in this file's `afterAll` and on process exit.
 * A JavaScript file (the `basalt` launcher, runtime/cli/basalt.mjs) starts without the loader, as a
 * user runs it: the launcher registers tsx itself, and a second loader only cost each of the
 * suite's hundred-odd CLI processes a tenth of a second of CPU.
 */
export function spawnTs(file: string, args: string[] = [], env: Record<string, string> = {}): SpawnedTs {
  const loader = /\.[cm]?ts$/.test(file) ? ['--import', tsxLoaderUrl()] : []
  const child = spawn(process.execPath, [...loader, file, ...args], {
    cwd: repoRoot,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  children.add(child)
  const lines: string[] = []
  const waiters = new Set<() => void>()
  const notify = (): void => waiters.forEach((waiter) => waiter())
  if (child.stdout) collectLines(child.stdout, lines, notify)
  if (child.stderr) collectLines(child.stderr, lines, notify)
  let hasExited = false
  const exited = new Promise<number | null>((resolve) => {
    child.once('error', (error) => lines.push(`[spawn error] ${error.message}`))
    child.once('close', (code) => {
      hasExited = true
      children.delete(child)
      notify()
      resolve(code)
    })
  })
  const waitForLine = (re: RegExp, timeoutMs = 10_000): Promise<string> =>
    new Promise((resolve, reject) => {
      const check = (): void => {
        const match = lines.find((line) => re.test(line))
        if (match !== undefined) finish(() => resolve(match))
        else if (hasExited)
          finish(() =>
            reject(new Error(`${file} exited before printing ${String(re)}:\n${outputTail(lines)}`)),
          )
      }
      const finish = (settle: () => void): void => {
        clearTimeout(timer)
        waiters.delete(check)
        settle()
      }
      const timer = setTimeout(
        () =>
          finish(() =>
            reject(
              new Error(
                `timed out after ${timeoutMs}ms waiting for ${String(re)} from ${file}:\n${outputTail(lines)}`,
              ),
            ),
          ),
        timeoutMs,
      )
      waiters.add(check)
      check()
    })
  const kill = (signal: NodeJS.Signals = 'SIGTERM'): void => {
    if (!hasExited) child.kill(signal)
  }
  return { child, pid: child.pid ?? -1, lines, waitForLine, kill, exited }
}

/** Commands that load files beside the CLI's own (registries, worker threads, the dashboard's page). */
const COMMANDS_BESIDE_THEIR_FILES = new Set(['node', 'dev', 'dashboard'])

let cliBundle: Promise<string> | undefined

/**
 * The CLI's sources bundled into one module by esbuild, once per test file, and a launcher that
 * runs its `main` as `runtime/cli/basalt.mjs` does. A command started from it loads in about
 * 0.5 s, against 1.1–1.5 s for the launcher in a checkout, which loads some 300 sources one by one
 * through tsx: the CLI tests run about a hundred short commands. The bundle lies under `.basalt/`
 * in the checkout (so that its packages resolve from `node_modules`) and is removed after the file.
 */
function bundledCli(): Promise<string> {
  cliBundle ??= (async () => {
    const { build } = await import('esbuild')
    const dir = path.join(repoRoot, '.basalt', 'cli-bundle', String(process.pid))
    tempDirs.add(dir)
    await build({
      entryPoints: [path.join(repoRoot, 'runtime', 'cli', 'main.ts')],
      bundle: true,
      platform: 'node',
      format: 'esm',
      target: 'node20',
      packages: 'external',
      outfile: path.join(dir, 'main.mjs'),
      logLevel: 'warning',
    })
    const launcher = path.join(dir, 'basalt.mjs')
    writeFileSync(
      launcher,
      [
        "import { main } from './main.mjs'",
        "process.stdout.on('error', (err) => { if (err.code === 'EPIPE') process.exit(0); throw err })",
        'process.exitCode = await main(process.argv.slice(2))',
        '',
      ].join('\n'),
    )
    return launcher
  })()
  return cliBundle
}

/**
 * The `basalt` binary against `nats` and `hub`, as a user who exported NATS_URL and BASALT_HUB
 * runs it: `basalt(...)` starts a command, `run(...)` runs one to its end (exit code, output lines
 * from stdout and stderr, and the text). `run` starts a command that needs no file beside the
 * CLI's own (not `node`, `dev` or `dashboard`) from the sources bundled once ({@link bundledCli}):
 * the same code, loaded faster; the launcher itself is run by `basalt(...)`, by `cli.test.ts` and
 * by the packed package's tests.
 */
export function basaltCli(nats: { readonly url: string }, hub: string) {
  const env = () => ({ NATS_URL: nats.url, BASALT_HUB: hub })
  const basalt = (...args: string[]): SpawnedTs => spawnTs('runtime/cli/basalt.mjs', args, env())
  const run = async (
    ...args: string[]
  ): Promise<{ code: number | null; lines: string[]; output: string }> => {
    const child = COMMANDS_BESIDE_THEIR_FILES.has(args[0] ?? '')
      ? basalt(...args)
      : spawnTs(await bundledCli(), args, env())
    const code = await child.exited
    return { code, lines: child.lines, output: child.lines.join('\n') }
  }
  return { basalt, run }
}

/** One entity key per partition of a hub of `partitions` (`k0`, `k1`, … as they first land in each). */
export function keysPerPartition(partitions: number): string[] {
  const keys = new Map<number, string>()
  for (let i = 0; keys.size < partitions; i++) {
    const p = partitionOf(`k${i}`, partitions)
    if (!keys.has(p)) keys.set(p, `k${i}`)
  }
  return [...keys.values()]
}

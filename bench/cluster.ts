/**
 * Node processes for the scale-out benchmarks. Each node is its own OS process started through the
 * CLI — `node runtime/cli/basalt.mjs node --servers URL --hub H --load bench/registry.ts --node-id ID
 * --workers 1 [--partitions N]` — with the default placement settings (heartbeat 1 s, lease 3 s). Placement is
 * read from the hub's metadata bucket (`readPlacement`).
 *
 * Process hygiene: every child is SIGKILLed by {@link NodeCluster.close} (call it in a `finally`),
 * and, should the bench die first, by a process `exit` hook and by SIGINT/SIGTERM/SIGHUP handlers.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { createWriteStream, mkdirSync, readFileSync, type WriteStream } from 'node:fs'
import { constants } from 'node:os'
import path from 'node:path'
import { performance } from 'node:perf_hooks'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import type { NatsConnection } from '@nats-io/transport-node'
import { readPlacement, type PlacementTable } from '../placement/index.ts'
import { connectTo } from '../runtime/internal.ts'
import { openHub, type Hub } from '../runtime/nats/hub.ts'
import { closeConnection } from '../runtime/nats/connect.ts'
import type { BenchContext } from './common.ts'

/** Repository root: the working directory of the node processes. */
const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
/** The `basalt` command line. */
const CLI = path.join(repoRoot, 'runtime', 'cli', 'basalt.mjs')
/** The registry module the node processes load (relative to {@link repoRoot}). */
const REGISTRY = 'bench/registry.ts'
/** Output lines kept per node process. */
const MAX_LINES = 2_000

// ---------------------------------------------------------------------------------------------------------
// Process hygiene
// ---------------------------------------------------------------------------------------------------------

/** Node processes that may still be running. */
const liveChildren = new Set<ChildProcess>()
let hooksInstalled = false

function killChildrenSync(): void {
  for (const child of liveChildren) {
    try {
      child.kill('SIGKILL')
    } catch {
      // already gone
    }
  }
  liveChildren.clear()
}

/** Kills the node processes, then exits as the signal would have (the `exit` hooks stop the rest). */
function onTerminatingSignal(signal: NodeJS.Signals): void {
  killChildrenSync()
  process.exit(128 + (constants.signals[signal] ?? 1))
}

function installHooks(): void {
  if (hooksInstalled) return
  hooksInstalled = true
  process.on('exit', killChildrenSync)
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(signal, onTerminatingSignal)
}

// ---------------------------------------------------------------------------------------------------------
// One node process
// ---------------------------------------------------------------------------------------------------------

/** How a node process ended. */
export interface NodeExit {
  code: number | null
  signal: NodeJS.Signals | null
}

/** A node running as its own process. */
export class NodeProcess {
  /** Output lines so far (stdout and stderr interleaved), the last {@link MAX_LINES}. */
  readonly lines: string[] = []
  /** Resolves once the process has exited. */
  readonly exited: Promise<NodeExit>
  #exit: NodeExit | undefined
  readonly #waiters = new Set<() => void>()

  constructor(
    readonly id: string,
    readonly child: ChildProcess,
    /** Called with every warning or error line the node prints. */
    onWarning: (line: string) => void,
    logFile: WriteStream | undefined,
  ) {
    liveChildren.add(child)
    this.exited = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        liveChildren.delete(child)
        this.#exit = { code, signal }
        logFile?.end()
        for (const w of this.#waiters) w()
        resolve(this.#exit)
      })
    })
    const collect = (stream: NodeJS.ReadableStream | null) => {
      if (stream === null) return
      createInterface({ input: stream, crlfDelay: Infinity }).on('line', (line) => {
        this.lines.push(line)
        if (this.lines.length > MAX_LINES) this.lines.shift()
        logFile?.write(`${performance.now().toFixed(0).padStart(8)} ${line}\n`)
        if (/ (warn|error) /.test(line) || /^basalt node:/.test(line)) onWarning(line)
        for (const w of this.#waiters) w()
      })
    }
    collect(child.stdout)
    collect(child.stderr)
  }

  get pid(): number {
    return this.child.pid ?? 0
  }

  /** Whether the process has not exited yet. */
  get running(): boolean {
    return this.#exit === undefined
  }

  /**
   * CPU time (user + system) the process has used so far, in ms, read from `/proc/<pid>/stat`
   * (clock ticks taken as 10 ms); undefined where there is no `/proc` or the process is gone.
   */
  cpuMs(): number | undefined {
    try {
      const stat = readFileSync(`/proc/${this.pid}/stat`, 'utf8')
      // fields after "pid (comm) ": state is field 3, utime 14, stime 15
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
      return (Number(fields[11]) + Number(fields[12])) * 10
    } catch {
      return undefined
    }
  }

  /** Sends `signal` if the process is still running. */
  kill(signal: NodeJS.Signals): void {
    if (this.running) this.child.kill(signal)
  }

  /**
   * Resolves with the first output line (past or future) matching `re`; rejects after `timeoutMs`,
   * or when the process exits first, naming the phase and quoting the node's last lines.
   */
  waitForLine(re: RegExp, phase: string, timeoutMs = 60_000): Promise<string> {
    return new Promise((resolve, reject) => {
      const started = performance.now()
      const check = () => {
        const line = this.lines.find((l) => re.test(l))
        let failure: string | undefined
        if (line === undefined) {
          if (this.#exit !== undefined) failure = `exited (${describeExit(this.#exit)})`
          else if (performance.now() - started > timeoutMs)
            failure = `printed nothing matching in ${timeoutMs} ms`
          else return
        }
        this.#waiters.delete(check)
        clearInterval(timer)
        if (line !== undefined) resolve(line)
        else
          reject(
            new Error(
              `${phase}: node ${this.id} (pid ${this.pid}) ${failure}; expected a line matching ${re}; ` +
                `last lines:\n  ${this.lines.slice(-15).join('\n  ')}`,
            ),
          )
      }
      const timer = setInterval(check, 250)
      this.#waiters.add(check)
      check()
    })
  }
}

function describeExit(exit: NodeExit): string {
  return exit.signal !== null ? `killed by ${exit.signal}` : `exit code ${String(exit.code)}`
}

// ---------------------------------------------------------------------------------------------------------
// A hub served by node processes
// ---------------------------------------------------------------------------------------------------------

/** Options of {@link NodeCluster.open}. */
export interface ClusterOptions {
  url: string
  hub: string
  /** Partition count of the hub (created by the first node); default: the hub's default (32). */
  partitions?: number
  /** Progress output (warnings the nodes print go here, prefixed with the node id). */
  log(message: string): void
  /** Directory for one output file per node (lines prefixed with the bench's clock in ms). */
  logDir?: string
}

/** Node processes serving one hub, and a connection to read its placement. */
export class NodeCluster {
  readonly nodes = new Map<string, NodeProcess>()
  #hub: Hub | undefined

  private constructor(
    readonly options: ClusterOptions,
    readonly nc: NatsConnection,
  ) {}

  /** Connects to NATS (the hub itself is created by the first node). */
  static async open(options: ClusterOptions): Promise<NodeCluster> {
    installHooks()
    if (options.logDir !== undefined) mkdirSync(options.logDir, { recursive: true })
    return new NodeCluster(options, await connectTo(options.url, 'basalt-bench-cluster'))
  }

  /** Opens a cluster for a benchmark on a fresh hub, with its URL, progress and `--node-logs`. */
  static forBench(ctx: BenchContext, partitions: number): Promise<NodeCluster> {
    return NodeCluster.open({
      url: ctx.url,
      hub: ctx.newHub(),
      partitions,
      log: ctx.log,
      ...(ctx.options.nodeLogs === undefined ? {} : { logDir: ctx.options.nodeLogs }),
    })
  }

  /** The hub (opened on first use; a node must have created it). */
  async hub(): Promise<Hub> {
    this.#hub ??= await openHub(this.nc, this.options.hub)
    return this.#hub
  }

  /** Ids of the node processes still running, sorted. */
  running(): string[] {
    return [...this.nodes.values()]
      .filter((n) => n.running)
      .map((n) => n.id)
      .sort()
  }

  /** Appends to the hub's commit log so far, over all partitions (the log stream's last sequence). */
  async logAppends(): Promise<number> {
    const hub = await this.hub()
    return (await hub.jsm.streams.info(hub.names.logStream)).state.last_seq
  }

  /** CPU time of the running node processes so far, summed, in ms; undefined without `/proc`. */
  cpuMs(): number | undefined {
    let total = 0
    for (const node of this.nodes.values()) {
      if (!node.running) continue
      const ms = node.cpuMs()
      if (ms === undefined) return undefined
      total += ms
    }
    return total
  }

  /** Spawns node `id`; resolves once it printed `node <id> running on hub <hub>`. */
  async start(id: string, timeoutMs = 60_000): Promise<NodeProcess> {
    if (this.nodes.has(id)) throw new Error(`node ${id} was started before`)
    const { url, hub, partitions, logDir } = this.options
    // one partition thread per process (`basalt node` defaults to one per core): "more nodes" stays
    // "more processes", comparable with the earlier scale-out figures
    const args = [
      CLI,
      'node',
      '--servers',
      url,
      '--hub',
      hub,
      '--load',
      REGISTRY,
      '--node-id',
      id,
      '--workers',
      '1',
    ]
    if (partitions !== undefined) args.push('--partitions', String(partitions))
    const child = spawn(process.execPath, args, { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'] })
    const logFile =
      logDir === undefined ? undefined : createWriteStream(path.join(logDir, `${hub}-${id}.log`))
    const node = new NodeProcess(id, child, (line) => this.options.log(`  [${id}] ${line}`), logFile)
    this.nodes.set(id, node)
    await node.waitForLine(new RegExp(`^node ${id} running on hub `), `starting node ${id}`, timeoutMs)
    return node
  }

  /** The hub's placement now. */
  async placement(): Promise<PlacementTable> {
    const hub = await this.hub()
    return readPlacement(hub.metaKv, hub.jsm)
  }

  /**
   * Waits until the placement has settled on the running node processes: a leader among them,
   * every partition assigned to one of them with shares differing by at most one, no heartbeat
   * record of any other node, and each node's heartbeat listing exactly the partitions assigned to
   * it. Throws naming `phase`, the expected nodes and the last table seen after `timeoutMs`.
   */
  async waitSettled(phase: string, timeoutMs = 60_000): Promise<PlacementTable> {
    const deadline = performance.now() + timeoutMs
    for (;;) {
      const expected = this.running()
      const table = await this.placement()
      const problem = unsettled(table, expected)
      if (problem === undefined) return table
      if (performance.now() > deadline)
        throw new Error(
          `${phase}: placement not settled on [${expected.join(', ')}] after ${timeoutMs} ms: ${problem}; ` +
            `table: ${describeTable(table)}`,
        )
      await new Promise((r) => setTimeout(r, 100))
    }
  }

  /** SIGKILLs every node process still running, waits for them to exit, and disconnects. */
  async close(): Promise<void> {
    for (const node of this.nodes.values()) node.kill('SIGKILL')
    await Promise.all([...this.nodes.values()].map((n) => n.exited))
    await closeConnection(this.nc)
  }
}

/** Why `table` is not settled on `expected` nodes, or undefined when it is. */
function unsettled(table: PlacementTable, expected: string[]): string | undefined {
  if (expected.length === 0) return 'no node process is running'
  const live = new Set(expected)
  if (table.leader === null || !live.has(table.leader)) return `leader is ${table.leader ?? 'none'}`
  const heartbeats = table.nodes.map((n) => n.id)
  if (heartbeats.length !== expected.length || heartbeats.some((id) => !live.has(id)))
    return `heartbeat records of [${heartbeats.join(', ')}]`
  const owned = new Map<string, number[]>(expected.map((id) => [id, []]))
  for (const a of table.assignments) {
    if (a.node === null || !live.has(a.node)) return `partition ${a.p} assigned to ${a.node ?? 'nobody'}`
    owned.get(a.node)!.push(a.p)
  }
  const shares = [...owned.values()].map((ps) => ps.length)
  if (Math.max(...shares) - Math.min(...shares) > 1) return `uneven shares ${shares.join('/')}`
  for (const n of table.nodes) {
    const want = owned.get(n.id)!.join(',')
    if (n.partitions.join(',') !== want)
      return `node ${n.id} runs [${n.partitions.join(',')}], owns [${want}]`
  }
  return undefined
}

/** `n1: 0,3,6 (leader); n2: 1,4,7; …` */
function describeTable(table: PlacementTable): string {
  const owned = new Map<string, number[]>()
  for (const a of table.assignments) {
    const key = a.node ?? '-'
    owned.set(key, [...(owned.get(key) ?? []), a.p])
  }
  const running = new Map(table.nodes.map((n) => [n.id, n.partitions.join(',')]))
  return [...owned]
    .map(
      ([id, ps]) =>
        `${id}: owns ${ps.join(',')} runs ${running.get(id) ?? '(no heartbeat)'}${id === table.leader ? ' (leader)' : ''}`,
    )
    .join('; ')
}

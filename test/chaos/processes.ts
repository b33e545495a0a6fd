/**
 * Node processes of a chaos run (test/chaos/node.ts children), without vitest, so the soak script
 * can use them too: spawn, keep the last output lines, SIGKILL, SIGSTOP and SIGCONT, and kill
 * whatever is left when the run ends or the process exits. A {@link NodeSlots} keeps three of them
 * running: a killed node is replaced at once, one that exits by itself (e.g. it could not connect
 * while the server was down) is started again half a second later.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { createRequire } from 'node:module'
import { appendFileSync } from 'node:fs'
import path from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath, pathToFileURL } from 'node:url'

/** Repository root, the working directory of the children. */
const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..')
/** Output lines kept per node. */
const KEPT_LINES = 400
/** Children that may still run, killed synchronously at exit. */
const live = new Set<ChildProcess>()

process.on('exit', () => {
  for (const child of live) child.kill('SIGKILL')
})

/** One node process. */
export class NodeProcess {
  readonly child: ChildProcess
  /** Its last output lines, stdout and stderr interleaved. */
  readonly lines: string[] = []
  readonly exited: Promise<void>
  /** How it ended, once it did ("SIGKILL by the runner", "exit code 1", …). */
  fate: string | undefined
  paused = false
  #killedByRunner = false
  #ready = false

  constructor(
    readonly name: string,
    args: string[],
    readonly startedAt: number,
  ) {
    const loader = pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href
    this.child = spawn(process.execPath, ['--import', loader, 'test/chaos/node.ts', ...args], {
      cwd: repoRoot,
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    live.add(this.child)
    // CHAOS_LOG_DIR: every line of every node also goes to <dir>/<hub>-<node>.log, for a run
    // whose last lines do not say enough (run the nodes with BASALT_VERBOSE=1 to have info too)
    const logDir = process.env['CHAOS_LOG_DIR']
    const logFile = logDir === undefined ? undefined : path.join(logDir, `${args[1] ?? 'hub'}-${name}.log`)
    for (const stream of [this.child.stdout, this.child.stderr]) {
      if (stream === null) continue
      createInterface({ input: stream, crlfDelay: Infinity }).on('line', (line) => {
        if (line === 'ready') this.#ready = true
        if (logFile !== undefined) appendFileSync(logFile, `${line}\n`)
        this.lines.push(line)
        if (this.lines.length > KEPT_LINES) this.lines.shift()
      })
    }
    this.exited = new Promise((resolve) => {
      this.child.once('error', (error) => this.lines.push(`[spawn error] ${error.message}`))
      this.child.once('close', (code, signal) => {
        live.delete(this.child)
        this.fate = this.#killedByRunner
          ? `${signal ?? 'exit'} by the runner`
          : signal !== null
            ? `ended by ${signal}`
            : `exit code ${String(code)}`
        resolve()
      })
    })
  }

  get running(): boolean {
    return this.fate === undefined
  }

  /** True once it printed `ready`. */
  get ready(): boolean {
    return this.#ready
  }

  /** True when it ended without the runner killing it. */
  get exitedByItself(): boolean {
    return this.fate !== undefined && !this.#killedByRunner
  }

  kill(signal: 'SIGKILL' | 'SIGTERM' = 'SIGKILL'): void {
    if (!this.running) return
    this.#killedByRunner = true
    this.child.kill(signal)
    if (this.paused) this.child.kill('SIGCONT')
    this.paused = false
  }

  pause(): void {
    if (!this.running || this.paused) return
    this.child.kill('SIGSTOP')
    this.paused = true
  }

  resume(): void {
    if (!this.running || !this.paused) return
    this.child.kill('SIGCONT')
    this.paused = false
  }
}

/** Three (or `count`) node slots that always hold a running node until {@link NodeSlots.close}. */
export class NodeSlots {
  readonly slots: NodeProcess[] = []
  /** Every node ever started, in order. */
  readonly all: NodeProcess[] = []
  #started = 0
  #closed = false
  /** Nodes that ended without the runner killing them. */
  exitsByThemselves = 0

  constructor(
    readonly count: number,
    private readonly args: (name: string) => string[],
    private readonly t0: number,
  ) {
    for (let slot = 0; slot < count; slot++) this.slots.push(this.#start(slot))
  }

  #start(slot: number): NodeProcess {
    const name = `n${++this.#started}`
    const node = new NodeProcess(name, this.args(name), Date.now() - this.t0)
    this.all.push(node)
    void node.exited.then(() => {
      if (this.#closed || !node.exitedByItself || this.slots[slot] !== node) return
      this.exitsByThemselves++
      setTimeout(() => {
        if (!this.#closed && this.slots[slot] === node) this.slots[slot] = this.#start(slot)
      }, 500)
    })
    return node
  }

  /** SIGKILLs the node in `slot` and starts its replacement at once. */
  killAndReplace(slot: number): void {
    this.slots[slot]?.kill('SIGKILL')
    this.slots[slot] = this.#start(slot)
  }

  /** SIGCONTs every paused node. */
  resumeAll(): void {
    for (const node of this.slots) node.resume()
  }

  /** SIGKILLs every node and waits until they are gone. */
  async close(): Promise<void> {
    this.#closed = true
    for (const node of this.all) node.kill('SIGKILL')
    await Promise.all(this.all.map((node) => node.exited))
  }

  /** The last `lines` output lines of every node ever started, with its fate. */
  tails(lines: number): string {
    return this.all
      .map((node) => {
        const fate = node.fate ?? (node.paused ? 'paused' : 'running')
        const last = node.lines
          .slice(-lines)
          .map((line) => (line.length > 300 ? `${line.slice(0, 300)}…` : line))
        const body = last.length === 0 ? '(no output)' : last.join('\n')
        return `--- node ${node.name} (pid ${node.child.pid ?? '?'}, started at +${(node.startedAt / 1000).toFixed(1)}s, ${fate}) ---\n${body}`
      })
      .join('\n')
  }
}

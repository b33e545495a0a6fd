/**
 * Who runs the nats-server of a kept store directory (`basalt dev`'s `.basalt/nats`). A process
 * killed with SIGKILL (or by the OOM killer) runs no exit hook, so its nats-server goes on running;
 * the next `basalt dev` in the same folder then failed on the taken port with a page of server log.
 * So the directory holds `owner.json`, naming the process that started the server and the server's
 * pid. A new start reads it first: an owner still alive is another `basalt dev` using this data
 * (refused, saying so); an owner gone whose server still runs left an orphan, which is stopped
 * (and said so) before the new server starts.
 */
import { readFileSync } from 'node:fs'
import { readFile, rm, writeFile } from 'node:fs/promises'
import path from 'node:path'
import { BadInputError } from '../../actors/index.ts'
import { sleep } from './probes.ts'

/** What `owner.json` holds. */
interface StoreOwner {
  /** The process that started the server (a `basalt dev`). */
  owner: number
  /** The server's pid. */
  server: number
}

/** How long an orphaned server gets to stop on SIGTERM before SIGKILL. */
const ORPHAN_GRACE_MS = 5_000

function ownerFile(storeDir: string): string {
  return path.join(storeDir, 'owner.json')
}

/**
 * Makes `storeDir` free for a new server: refuses with `BadInputError` when a live process owns
 * it, stops the server a dead owner left running (saying so through `say`), and forgets the old
 * owner. Does nothing when no owner was recorded.
 */
export async function reclaimStore(storeDir: string, say: (line: string) => void): Promise<void> {
  const recorded = await readOwner(storeDir)
  if (recorded === undefined) return
  const relative = path.relative(process.cwd(), storeDir)
  const shown = relative === '' || relative.startsWith('..') ? storeDir : relative
  if (recorded.owner !== process.pid && isAlive(recorded.owner)) {
    throw new BadInputError(
      `another basalt dev (pid ${recorded.owner}) runs with its data in ${shown}; ` +
        'stop it first, or give this one another --data folder',
    )
  }
  if (isAlive(recorded.server) && runsIn(recorded.server, storeDir)) {
    say(
      `stopping the nats-server (pid ${recorded.server}) that an earlier basalt dev (pid ${recorded.owner}) ` +
        'left running when it was killed',
    )
    await stopProcess(recorded.server)
  }
  await rm(ownerFile(storeDir), { force: true })
}

/** Records this process as the owner of `storeDir` and its server `serverPid`. */
export async function claimStore(storeDir: string, serverPid: number): Promise<void> {
  const owner: StoreOwner = { owner: process.pid, server: serverPid }
  await writeFile(ownerFile(storeDir), `${JSON.stringify(owner)}\n`)
}

/** Forgets the owner of `storeDir` (its server stopped). */
export async function releaseStore(storeDir: string): Promise<void> {
  await rm(ownerFile(storeDir), { force: true })
}

async function readOwner(storeDir: string): Promise<StoreOwner | undefined> {
  let text: string
  try {
    text = await readFile(ownerFile(storeDir), 'utf8')
  } catch {
    return undefined
  }
  try {
    const parsed = JSON.parse(text) as Partial<StoreOwner>
    if (Number.isSafeInteger(parsed.owner) && Number.isSafeInteger(parsed.server))
      return { owner: parsed.owner!, server: parsed.server! }
  } catch {
    // a torn write: as if nothing was recorded
  }
  return undefined
}

/**
 * Whether process `pid` runs (one of another user counts: it runs). On Linux a zombie — dead, but
 * not yet reaped by its parent — does not: signal 0 still reaches it, so `/proc` tells.
 */
export function isAlive(pid: number): boolean {
  if (pid <= 0) return false
  try {
    process.kill(pid, 0)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') return false
  }
  if (process.platform !== 'linux') return true
  let stat: string
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  } catch (err) {
    // reaped since; any other failure (/proc mounted with hidepid): as signal 0 said
    return (err as NodeJS.ErrnoException).code !== 'ENOENT'
  }
  const state = processState(stat)
  return state !== 'Z' && state !== 'X' && state !== 'x'
}

/**
 * The state letter (`R`, `S`, `Z` for a zombie, `X` dead…) of a `/proc/<pid>/stat` line: the
 * field after the command name, which is in parentheses and may hold spaces and parentheses
 * itself, so the last `)` ends it. Undefined for a line that is not such.
 *
 * @example processState('42 (a) b) Z 1 42 42') // 'Z'
 */
export function processState(stat: string): string | undefined {
  return /^\) (\S)(?: |$)/.exec(stat.slice(stat.lastIndexOf(')')))?.[1]
}

/**
 * Whether process `pid` is a nats-server using `storeDir` (its command line names the config file
 * there), so that a recycled pid is never signalled. Where `/proc` cannot tell, it is assumed.
 */
function runsIn(pid: number, storeDir: string): boolean {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(storeDir)
  } catch {
    return process.platform !== 'linux'
  }
}

async function stopProcess(pid: number): Promise<void> {
  try {
    process.kill(pid, 'SIGTERM')
  } catch {
    return
  }
  const deadline = Date.now() + ORPHAN_GRACE_MS
  while (isAlive(pid) && Date.now() < deadline) await sleep(50)
  if (isAlive(pid)) {
    try {
      process.kill(pid, 'SIGKILL')
    } catch {
      // gone meanwhile
    }
    while (isAlive(pid)) await sleep(20)
  }
}

/**
 * What the nats-server launcher must never leak: the child processes it spawned, the temp dirs it
 * created and the servers not yet disposed, tracked in module-level sets. {@link stopAllNatsServers}
 * stops what is left; an `exit` hook (and, when the application has no handler of its own, the
 * terminating signals) SIGKILLs every child still running and removes the temp dirs, synchronously,
 * so that a test run or a Ctrl-C'd `basalt dev` leaves nothing behind.
 */
import type { ChildProcess } from 'node:child_process'
import { rmSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'

/** Something {@link stopAllNatsServers} disposes: a server started and not disposed yet. */
export interface DisposableServer {
  dispose(): Promise<void>
}

/** Child processes that are (possibly) still running. */
const liveChildren = new Set<ChildProcess>()
/** Temp dirs created by this module and not yet removed. */
const ownedDirs = new Set<string>()
/** Servers that were started and not yet disposed. */
const liveServers = new Set<DisposableServer>()
let hooksInstalled = false

/** Tracks a spawned child until it exits (the exit hook kills it if it has not). */
export function trackChild(child: ChildProcess): void {
  liveChildren.add(child)
}

/** Stops tracking a child that exited. */
export function untrackChild(child: ChildProcess): void {
  liveChildren.delete(child)
}

/** Tracks a started server until it is disposed. */
export function trackServer(server: DisposableServer): void {
  liveServers.add(server)
}

/** Stops tracking a disposed server. */
export function untrackServer(server: DisposableServer): void {
  liveServers.delete(server)
}

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

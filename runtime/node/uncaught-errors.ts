/**
 * Errors that escape every handler — thrown in a timer or event callback, or a promise rejected
 * with nobody awaiting it — end a Node.js process by default. One that escapes user code (an
 * entity operation or activity that starts a timer whose callback throws, or a promise it forgets)
 * would end the node; the partition's next owner would run the same operation again (it was never
 * committed) and end too: one such bug, one signal, and every node of the hub goes down in turn.
 *
 * So while a node runs, the process (and each partition thread, which has its own) watches for such
 * errors, and tells them apart by where they were thrown (the frames of the error's stack):
 *
 * - from **user code**: a frame in a file outside Basalt's own folders and outside `node_modules`;
 *   or no frame of Basalt or of the libraries its engine runs on (`@nats-io/*`, `msgpackr`) at all —
 *   a library of the application's (an HTTP client's forgotten promise), Node's own modules (a
 *   `fetch` or a file read nobody awaited: such errors often carry no frame of the caller), or a
 *   rejection with no stack. Logged as an error with its stack, and the node goes on. The operation
 *   that made the callback has its own outcome (it returned or threw in its own right); the stray
 *   error changes no state Basalt keeps.
 * - from **the Client API** (a frame in `runtime/client/`): a call's promise the application has
 *   not awaited (yet) was rejected: an outcome delivered to a caller (an unknown entity type, a
 *   partition that did not answer), not a bug in the node. Node.js reports it the moment it
 *   rejects, even when the application awaits it a moment later (it started several calls and
 *   awaits them in turn). Logged as a warning; no partition state is involved, the node goes on.
 * - from **Basalt's own code** or its engine's libraries: a bug whose reach is unknown, so — never
 *   continuing on suspect state — every partition of the thread stops and recovers from its log
 *   (the usual failure path, restarted after a growing delay). The process stays up.
 *
 * Several nodes in one process (tests) share one pair of process listeners; the last node to stop
 * removes them. A process's own listeners (a test runner's, an app's) keep working beside these.
 *
 * The same watch logs a process (or partition thread) that exits while a node runs in it:
 * `process.exit` called by user code ends it without a word otherwise, and an operator would only
 * see the node gone. A node that stopped first has stopped watching, so a normal exit says nothing.
 */
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { isMainThread } from 'node:worker_threads'
import type { Logger } from '../util/index.ts'

/** What a node does with an error that escaped: its logger, and how it fails its partitions. */
export interface UncaughtErrorWatcher {
  logger: Logger
  /** Stops every partition of this thread so that each recovers from its log. */
  failPartitions(error: Error): void
}

/** The folder of Basalt's own folders (sources, or the built package's `dist/`): frames there are Basalt's. */
const OWN_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..')
const OWN_DIRS = ['runtime', 'actors', 'entities', 'placement']

const watchers = new Set<UncaughtErrorWatcher>()

/**
 * Watches this thread's uncaught errors for `watcher` until the returned function is called (see
 * the module comment).
 */
export function watchUncaughtErrors(watcher: UncaughtErrorWatcher): () => void {
  if (watchers.size === 0) {
    process.on('uncaughtException', onUncaught)
    process.on('unhandledRejection', onUnhandledRejection)
    process.on('exit', onExit)
  }
  watchers.add(watcher)
  return () => {
    if (!watchers.delete(watcher) || watchers.size > 0) return
    process.off('uncaughtException', onUncaught)
    process.off('unhandledRejection', onUnhandledRejection)
    process.off('exit', onExit)
  }
}

function onExit(code: number): void {
  const first = watchers.values().next().value
  if (first === undefined) return
  const what = isMainThread ? 'process' : 'partition thread'
  // synchronous: a console logger's line reaches a pipe or file before the process ends
  first.logger.error(
    `the ${what} is exiting while a node runs in it (process.exit called, e.g. by an entity ` +
      `operation or an activity, or the runtime ended it); its partitions recover on the next owner`,
    { code },
  )
}

function onUncaught(error: Error): void {
  escaped(error, 'thrown in a callback')
}

function onUnhandledRejection(reason: unknown): void {
  escaped(reason, 'a promise rejected with nobody awaiting it')
}

function escaped(reason: unknown, how: string): void {
  const error = reason instanceof Error ? reason : new Error(describe(reason))
  const stack = reason instanceof Error ? reason.stack : undefined
  const first = watchers.values().next().value
  if (first === undefined) return
  const origin = originOf(stack)
  if (origin === 'user') {
    first.logger.error(`an error escaped user code (${how}); logged, the node goes on`, {
      error: String(error),
      ...(stack === undefined ? {} : { stack }),
    })
    return
  }
  if (origin === 'client') {
    first.logger.warn(
      `a Client call was rejected and nobody awaited it yet (${how}); logged, the node goes on`,
      { error: String(error), ...(stack === undefined ? {} : { stack }) },
    )
    return
  }
  first.logger.error(
    `an error escaped Basalt's own code (${how}); every partition of this thread recovers from its log`,
    { error: String(error), ...(stack === undefined ? {} : { stack }) },
  )
  for (const w of watchers) w.failPartitions(error)
}

/** Where an escaped error came from (see the module comment). */
export type Origin = 'user' | 'client' | 'basalt'

/** Libraries whose frames count as Basalt's: the engine runs on them (partition state is theirs too). */
const ENGINE_LIBRARIES = ['@nats-io', 'msgpackr'].map(
  (name) => `${path.sep}node_modules${path.sep}${name}${path.sep}`,
)

/**
 * Where the error with this stack came from: `user` for a frame of user code, or no frame of
 * Basalt or its engine's libraries (or no stack: Basalt rejects only with errors); else `client`
 * for a frame of the Client API (`runtime/client/`), else `basalt`. `ownRoot`: the folder that
 * holds Basalt's own folders (sources, or the built package's `dist/`).
 */
export function originOf(stack: string | undefined, ownRoot: string = OWN_ROOT): Origin {
  if (stack === undefined) return 'user'
  // The built package's source maps name its sources beside dist/ (`basalt/runtime/…/x.ts`, files
  // it does not ship): under tsx or --enable-source-maps the frames of an installed Basalt say so.
  const roots = path.basename(ownRoot) === 'dist' ? [ownRoot, path.dirname(ownRoot)] : [ownRoot]
  const ownDirs = roots.flatMap((root) => OWN_DIRS.map((dir) => path.join(root, dir) + path.sep))
  const clientDirs = roots.map((root) => path.join(root, 'runtime', 'client') + path.sep)
  let client = false
  let own = false
  for (const line of stack.split('\n')) {
    const file = frameFile(line)
    if (file === undefined) continue
    // (Basalt's own folders first: installed, they are inside node_modules themselves)
    if (clientDirs.some((dir) => file.startsWith(dir))) client = true
    else if (ownDirs.some((dir) => file.startsWith(dir))) own = true
    else if (file.includes(`${path.sep}node_modules${path.sep}`))
      own ||= ENGINE_LIBRARIES.some((lib) => file.includes(lib))
    else return 'user'
  }
  return client ? 'client' : own ? 'basalt' : 'user'
}

/** The file of a stack frame line (`at f (file:///a/b.js:1:2)`, `at /a/b.js:1:2`), or undefined. */
function frameFile(line: string): string | undefined {
  const match = /^\s*at (?:.*?\()?(file:\/\/[^)]+?|\/[^)]+?)(?::\d+)?(?::\d+)?\)?$/.exec(line)
  if (match === null) return undefined
  const where = match[1]!
  try {
    return where.startsWith('file://') ? fileURLToPath(where) : where
  } catch {
    return undefined
  }
}

function describe(reason: unknown): string {
  try {
    return `rejected with ${typeof reason === 'string' ? reason : JSON.stringify(reason)}`
  } catch {
    return `rejected with ${String(reason)}`
  }
}

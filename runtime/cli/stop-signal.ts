/**
 * How the long-running commands (`basalt node`, `dev`, `dashboard`) learn that they should stop:
 * SIGTERM or SIGINT, the NATS connection closing, or — started by npm — their parent gone.
 */

/** Signals that stop a command gracefully. */
export const STOP_SIGNALS = ['SIGTERM', 'SIGINT'] as const

/** How often a command started by npm checks that its parent process is still there, in ms. */
const PARENT_CHECK_MS = 250

/**
 * Resolves with the first stop signal received, or 'closed' once `closed` (the node's NATS
 * connection closing) resolves first. Started by npm (`npx basalt node`, an npm script), the
 * command also stops — as on SIGTERM — once its parent process is gone: npm runs it under `sh -c`
 * and passes SIGTERM to that shell only, which ends without passing it on, leaving the process
 * running with no one to stop it.
 */
export function waitForStopSignal(closed?: Promise<unknown>): Promise<NodeJS.Signals | 'closed'> {
  return new Promise((resolve) => {
    let parentWatch: NodeJS.Timeout | undefined
    const stop = (reason: NodeJS.Signals | 'closed') => {
      for (const s of STOP_SIGNALS) process.off(s, onSignal)
      clearInterval(parentWatch)
      resolve(reason)
    }
    const onSignal = (signal: NodeJS.Signals) => stop(signal)
    for (const s of STOP_SIGNALS) process.on(s, onSignal)
    if (process.env['npm_lifecycle_event'] !== undefined) {
      const parent = process.ppid
      parentWatch = setInterval(() => {
        if (process.ppid !== parent) stop('SIGTERM')
      }, PARENT_CHECK_MS)
      parentWatch.unref()
    }
    void closed?.then(() => stop('closed'))
  })
}

/**
 * The demo behind `npm run demo`, `npm start` and `basalt demo`: connects to `$NATS_URL`, or starts
 * an embedded nats-server with its data under `.basalt/nats` in the project root; starts a node
 * and a client on hub `demo`; runs the counter and bank examples and prints what happened. Without
 * `--serve` it then stops everything and exits 0 (1 on any failure); with `--serve` it keeps the
 * node running until SIGINT or SIGTERM.
 */
import path from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import type { NatsConnection } from '@nats-io/transport-node'
import { BasaltError, Client, Node, consoleLogger } from '../runtime/index.ts'
import {
  NatsServerMissingError,
  NatsServerStartError,
  startNatsServer,
  type NatsServer,
} from '../runtime/dev/nats-server.ts'
import { bankRegistry, runBankExample } from './bank/index.ts'
import { counterRegistry, runCounterExample } from './counter/index.ts'
import { runWorkflowExamples, workflowRegistry } from './workflows/index.ts'

/** Options of {@link runDemo}. */
export interface DemoOptions {
  /** Keep serving after the examples ran, until SIGINT or SIGTERM (default false). */
  serve?: boolean
  /** NATS URL; default `$NATS_URL`, else an embedded nats-server is started. */
  natsUrl?: string
  /** Where output lines go (default stdout). */
  out?: (line: string) => void
}

/** Project root: the parent of `examples/`. */
const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
/** Hub the demo runs on. */
const HUB = 'demo'
/** How long each shutdown step may take before the demo gives up waiting for it, in ms. */
const STOP_TIMEOUT_MS = 10_000

/**
 * Runs the demo and resolves with the process exit code: 0 when everything ran (and, with
 * `serve`, after a clean shutdown on SIGINT/SIGTERM), 1 on any failure. Failures are printed on
 * stderr; a missing nats-server binary is reported in one line saying how to install it.
 *
 * @example process.exitCode = await runDemo({ serve: false })
 */
export async function runDemo(options: DemoOptions = {}): Promise<number> {
  const out = options.out ?? ((line: string) => console.log(line))
  let server: NatsServer | undefined
  let node: Node | undefined
  let client: Client | undefined
  let code = 0
  try {
    let url = options.natsUrl ?? (process.env['NATS_URL'] || undefined)
    if (url === undefined) {
      const storeDir = path.join(repoRoot, '.basalt', 'nats')
      server = await startNatsServer({ storeDir })
      url = server.url
      out(
        `nats: started embedded nats-server at ${url} (data in ${path.relative(process.cwd(), storeDir) || '.'})`,
      )
    } else {
      out(`nats: using NATS_URL ${url}`)
    }

    const registry = [...counterRegistry, ...bankRegistry, ...workflowRegistry]
    node = await Node.start({ servers: url, hub: HUB, registry, logger: consoleLogger('basalt', true) })
    client = await Client.connect({ servers: url, hub: HUB })
    out(
      `node: hub '${HUB}', ${node.partitionCount} partitions, ${registry.length} entity types, orchestrations and activities`,
    )

    out('')
    out('== counter ==')
    const counter = await runCounterExample(client, (line) => out(`  ${line}`))
    out('')
    out('== bank ==')
    const bank = await runBankExample(client, (line) => out(`  ${line}`))
    out('')
    out('== orchestrations ==')
    await runWorkflowExamples(client, (line) => out(`  ${line}`))
    out('')

    const stats = node.stats()
    out(
      `summary: counter 'c' = ${counter.value}; bank: ${bank.transfers} transfers ` +
        `(${bank.applied} applied, ${bank.refused} refused), total ${bank.total} conserved, ` +
        `overdraft refused; node committed ${stats.records} records for ${stats.messages} messages`,
    )

    if (options.serve) {
      out(`NATS URL: ${url}`)
      out('serving; Ctrl-C to stop')
      const signal = await waitForSignal()
      out(`${signal}: shutting down`)
    }
  } catch (err) {
    code = 1
    if (err instanceof NatsServerMissingError) console.error(err.message)
    else if (err instanceof BasaltError || err instanceof NatsServerStartError) {
      console.error(`demo failed: ${err.name}: ${err.message}`)
    } else console.error(`demo failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`)
  }
  if (!(await shutDown(client, node, server))) code = 1
  else if (code === 0) out('stopped cleanly')
  return code
}

/** Stops client, node and server in that order; false if a step failed or hung. */
async function shutDown(
  client: Client | undefined,
  node: Node | undefined,
  server: NatsServer | undefined,
): Promise<boolean> {
  let ok = true
  const step = async (what: string, action: (() => Promise<void>) | undefined) => {
    if (action === undefined) return
    let timer: NodeJS.Timeout | undefined
    try {
      await Promise.race([
        action(),
        new Promise<never>((_, reject) => {
          timer = setTimeout(
            () => reject(new Error(`did not finish in ${STOP_TIMEOUT_MS} ms`)),
            STOP_TIMEOUT_MS,
          )
        }),
      ])
    } catch (err) {
      ok = false
      console.error(`demo: stopping the ${what} failed: ${err instanceof Error ? err.message : String(err)}`)
    } finally {
      clearTimeout(timer)
    }
  }
  // close() and stop() drain their NATS connection; when the server is already gone (a terminal's
  // Ctrl-C reaches the embedded nats-server too) the drain fails and leaves the connection
  // reconnecting forever, which would keep this process alive: close it outright then.
  await step('client', client && (() => client.close().then(() => closeConnection(client.nc))))
  await step('node', node && (() => node.stop({ snapshot: true }).then(() => closeConnection(node.nc))))
  await step('nats-server', server && (() => server.dispose()))
  return ok
}

/** Closes a NATS connection unless it is closed already. */
async function closeConnection(nc: NatsConnection): Promise<void> {
  if (!nc.isClosed()) await nc.close()
}

/** Resolves with the first SIGINT or SIGTERM; a second one falls through to the default action. */
function waitForSignal(): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    const on = (signal: NodeJS.Signals) => {
      process.removeListener('SIGINT', on)
      process.removeListener('SIGTERM', on)
      resolve(signal)
    }
    process.on('SIGINT', on)
    process.on('SIGTERM', on)
  })
}

const isMain = process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href
if (isMain) {
  process.exitCode = await runDemo({ serve: process.argv.slice(2).includes('--serve') })
}

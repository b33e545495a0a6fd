/**
 * A chaos-test node in its own process: `node --import tsx test/chaos/node.ts <url[,url…]> <hub>
 * <optionsJSON>`. Runs the chaos registry (test/chaos/workload.ts), prints `ready` once
 * `Node.start` resolved, logs warnings and errors (and info with `BASALT_VERBOSE=1`) to stderr, and
 * stops gracefully on SIGTERM. The chaos runner kills it with SIGKILL and pauses it with SIGSTOP.
 */
import { Node, consoleLogger } from '../../runtime/index.ts'
import { chaosRegistry } from './workload.ts'

const [urls, hub, json] = process.argv.slice(2)
if (urls === undefined || hub === undefined) {
  console.error('usage: test/chaos/node.ts <url[,url…]> <hub> [optionsJSON]')
  process.exit(2)
}
const options = json === undefined ? {} : (JSON.parse(json) as Record<string, unknown>)
const name = typeof options['nodeId'] === 'string' ? options['nodeId'] : String(process.pid)
const node = await Node.start({
  servers: urls.split(','),
  hub,
  registry: chaosRegistry,
  logger: consoleLogger(`${name}`, process.env['BASALT_VERBOSE'] !== '1'),
  ...options,
})
console.log('ready')
const stop = (): void => {
  void node.stop({ snapshot: true }).then(() => {
    console.log('stopped')
    process.exit(0)
  })
}
process.on('SIGTERM', stop)
process.on('SIGINT', stop)

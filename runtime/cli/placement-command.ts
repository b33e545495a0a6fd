/**
 * `basalt placement`: prints a hub's placement — which node runs each partition with which epoch,
 * the nodes that heartbeat and the leader — read from the hub's metadata KV bucket.
 */
import { counted } from '../../actors/index.ts'
import { readPlacement, type PlacementTable } from '../../placement/index.ts'
import { withHub, type ConnectionFlags } from './connection.ts'
import { printable, printJson, stdout, type Out } from './output.ts'

/**
 * Runs `basalt placement`: opens the flags' hub (creating nothing), reads its placement with
 * `readPlacement` and prints it as a table, or with `--json` as the `PlacementTable` JSON;
 * resolves with 0. Throws `UsageError` for a missing option (exit 2), `ConnectionError` naming the
 * URL and `HubNotFoundError` for a hub that does not exist (`main` prints them in one line and
 * exits with 1).
 *
 * @example await runPlacementCommand({ servers: 'nats://127.0.0.1:4222', hub: 'demo' })
 */
export async function runPlacementCommand(
  flags: ConnectionFlags & { json?: boolean },
  out: Out = stdout,
): Promise<number> {
  return withHub(flags, async (hub) => {
    const table = await readPlacement(hub.metaKv, hub.jsm)
    if (flags.json) printJson(table, out)
    else for (const line of formatPlacement(hub.names.hub, table)) out(line)
    return 0
  })
}

/**
 * Renders a placement table as text lines: a header, one row per partition (node `-` when
 * unassigned, `(no heartbeat)` after a node that has no heartbeat record), then the nodes with their
 * wire features (none: a version before them, see placement/registry.ts) and the age of their last
 * heartbeat measured against `now` (default: this machine's clock), and for a node placement gives
 * no partitions — or one that owns partitions while registries diverge — the registry names it
 * lacks. A node silent for over 5 s (killed, cut off) is shown
 * as such, and so is a leader that is.
 *
 * @example formatPlacement('demo', table).forEach((line) => console.log(line))
 */
export function formatPlacement(hub: string, table: PlacementTable, now = Date.now()): string[] {
  const silent = (n: PlacementTable['nodes'][number]) => now - n.at > SILENT_MS
  const live = new Set(table.nodes.map((n) => n.id))
  const rows = table.assignments.map((a) => [
    String(a.p),
    a.node === null ? '-' : live.has(a.node) ? a.node : `${a.node} (no heartbeat)`,
    String(a.epoch),
  ])
  const header = ['partition', 'node', 'epoch']
  const width = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)))
  const row = (cells: string[]) =>
    [cells[0]!.padStart(width[0]!), cells[1]!.padEnd(width[1]!), cells[2]!.padStart(width[2]!)]
      .join('  ')
      .trimEnd()
  const assigned = table.assignments.filter((a) => a.node !== null).length
  const leaderNode = table.nodes.find((n) => n.id === table.leader)
  const leader =
    table.leader === null
      ? '(none)'
      : leaderNode !== undefined && silent(leaderNode)
        ? `${table.leader} (silent for ${seconds(now - leaderNode.at)}: gone?)`
        : table.leader
  const lines = [
    `hub ${hub}: ${counted(table.partitions, 'partition')}, ${assigned} assigned, leader ${leader}`,
    '',
    row(header),
    ...rows.map(row),
    '',
    `nodes (${table.nodes.length}):`,
  ]
  if (table.nodes.length === 0) lines.push('  (none)')
  for (const n of table.nodes) {
    const leader = n.id === table.leader ? ' [leader]' : ''
    if (silent(n)) {
      // a killed node leaves its records behind until another node's placement steps clean up
      lines.push(
        `  ${n.id}${leader}  SILENT: no heartbeat for ${seconds(now - n.at)} (killed or cut off?), ` +
          `host ${n.host || '?'}, pid ${n.pid}, was up ${seconds(n.at - n.started)}, ` +
          `last ran partitions [${n.partitions.join(',')}]`,
      )
      continue
    }
    lines.push(
      `  ${n.id}${leader}  host ${n.host || '?'}, pid ${n.pid}, up ${seconds(now - n.started)}, ` +
        `${counted(n.partitions.length, 'partition')} [${n.partitions.join(',')}], ` +
        `${n.features.length === 0 ? 'no wire features' : `features ${n.features.join(',')}`}, ` +
        `last heartbeat ${Math.max(0, now - n.at)} ms ago`,
    )
    if (!n.eligible)
      lines.push(
        `    gets no partitions: its registry lacks ${n.lacks.join(', ')} (other nodes serve them; ` +
          'a node runs partitions only when it knows every name a live node knows)',
      )
    else if (n.lacks.length > 0)
      lines.push(
        `    lacks ${n.lacks.join(', ')}: registries diverge (no node knows every name), so messages ` +
          'for these wait on the partitions it owns until a node that knows them owns them',
      )
  }
  // (registry names and host names are user data)
  return lines.map(printable)
}

/**
 * A node whose last heartbeat is older than this is shown as silent: well past the default lease
 * (3 s, heartbeats every second), with room for clocks of different machines (a heartbeat carries
 * its node's clock). A hub run with a longer `leaseMs` may show a slow node as silent before
 * placement gives up on it.
 */
const SILENT_MS = 5_000

function seconds(ms: number): string {
  return `${(Math.max(0, ms) / 1000).toFixed(1)} s`
}

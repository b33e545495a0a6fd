/**
 * Reading a hub's placement for display (`basalt placement`, dashboards, tests): the assignment
 * of every partition, the nodes that heartbeat, and the leader, as one snapshot of the hub's
 * metadata KV bucket (`basalt_<hub>_meta`, laid out in `agent.ts`). Read-only: it never writes.
 */
import { HubNotFoundError } from '../actors/index.ts'
import { decode, bucketKeys, type JetStreamManager, type KV, type KvEntry } from '../runtime/nats/index.ts'
import { eligibleNodes, isFeature, withoutOperationsOfLacked } from './registry.ts'

/** A node that heartbeats on the hub, as its latest heartbeat record describes it. */
export interface PlacementNode {
  /** Node id. */
  id: string
  /** Host name of the node's machine. */
  host: string
  /** Process id of the node. */
  pid: number
  /** When the node started (ms since the epoch, the node's clock). */
  started: number
  /** When the node wrote its latest heartbeat (ms since the epoch, the node's clock). */
  at: number
  /** Partitions the node was running at that heartbeat, ascending. */
  partitions: number[]
  /**
   * Wire features of the node's version (`lock-ops`: the names its heartbeat lists as `f:…`, see
   * registry.ts), sorted; empty for a node of a version before them.
   */
  features: string[]
  /**
   * Whether placement may give the node partitions (registry.ts `eligibleNodes`, over the nodes
   * listed here): false for a node whose registry lacks names other nodes have (`lacks`).
   */
  eligible: boolean
  /** The registry names (types, and `f:` wire features) other listed nodes have and this one lacks. */
  lacks: string[]
}

/** One partition's assignment; `node` null and `epoch` 0 when the partition was never assigned. */
export interface PlacementAssignment {
  /** Partition number, 0 to partitions − 1. */
  p: number
  /** Node the partition is assigned to, or null. */
  node: string | null
  /** Epoch of the assignment (fences the commit log); 0 when unassigned. */
  epoch: number
}

/** A hub's placement at one moment. */
export interface PlacementTable {
  /** The hub's partition count. */
  partitions: number
  /** Node holding the leader lease, or null when there is none. */
  leader: string | null
  /** Nodes with a heartbeat record (records are deleted on graceful leave), sorted by id. */
  nodes: PlacementNode[]
  /** Every partition 0..partitions − 1, in order. */
  assignments: PlacementAssignment[]
}

/**
 * Reads the placement table from a hub's metadata bucket (`hub.metaKv` of `openHub`): one stream
 * info request lists the bucket's keys, then each record is read directly. (No consumer: iterating
 * a bucket through an ordered consumer may never finish while heartbeats keep arriving.) Throws
 * {@link HubNotFoundError} when the bucket holds no hub record, and `CodecError` naming the key
 * when a record does not decode.
 *
 * @example
 * const hub = await openHub(nc, 'demo')
 * const table = await readPlacement(hub.metaKv, hub.jsm)
 * for (const a of table.assignments) console.log(a.p, a.node ?? '-', a.epoch)
 */
export async function readPlacement(kv: KV, jsm: JetStreamManager): Promise<PlacementTable> {
  const status = await kv.status()
  const keys = (await bucketKeys(jsm, status.bucket)).filter((key) => !key.startsWith('rel.'))
  const latest = new Map<string, KvEntry>()
  await Promise.all(
    keys.map(async (key) => {
      const entry = await kv.get(key)
      if (entry !== null && entry.operation === 'PUT') latest.set(key, entry)
    }),
  )
  const hubEntry = latest.get('hub')
  if (hubEntry === undefined) throw new HubNotFoundError(hubName(status.bucket))
  const hub = decode(hubEntry.value, 'hub metadata') as { partitions?: unknown }
  const partitions = typeof hub.partitions === 'number' ? hub.partitions : 0

  const assignments: PlacementAssignment[] = Array.from({ length: partitions }, (_, p) => ({
    p,
    node: null,
    epoch: 0,
  }))
  const nodes: PlacementNode[] = []
  const registries = new Map<string, string[]>()
  let leader: string | null = null
  for (const [key, entry] of latest) {
    const dot = key.indexOf('.')
    const kind = dot < 0 ? key : key.slice(0, dot)
    const rest = dot < 0 ? '' : key.slice(dot + 1)
    if (kind === 'assign') {
      const p = Number(rest)
      const a = decode(entry.value, `assignment ${key}`) as { node?: unknown; epoch?: unknown }
      const slot = Number.isInteger(p) ? assignments[p] : undefined
      if (slot === undefined) continue // beyond the partition count: not part of the hub
      slot.node = typeof a.node === 'string' ? a.node : null
      slot.epoch = typeof a.epoch === 'number' ? a.epoch : 0
    } else if (kind === 'node') {
      const record = decode(entry.value, `heartbeat ${key}`) as Partial<PlacementNode> & { types?: unknown }
      const node = toNode(rest, record)
      nodes.push(node)
      if (Array.isArray(record.types))
        registries.set(
          node.id,
          record.types.filter((n): n is string => typeof n === 'string'),
        )
    } else if (kind === 'leader') {
      const l = decode(entry.value, 'leader lease') as { node?: unknown }
      leader = typeof l.node === 'string' && l.node !== '' ? l.node : null
    }
  }
  nodes.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
  judgeEligibility(nodes, registries)
  return { partitions, leader, nodes, assignments }
}

/** Sets each node's `eligible` and `lacks` from the registries their heartbeats list. */
function judgeEligibility(nodes: PlacementNode[], registries: Map<string, string[]>): void {
  const eligible = new Set(
    eligibleNodes(
      nodes.map((n) => n.id),
      registries,
    ),
  )
  const union = new Set<string>()
  for (const names of registries.values()) for (const name of names) union.add(name)
  for (const node of nodes) {
    node.eligible = eligible.has(node.id)
    const own = registries.get(node.id)
    node.lacks =
      own === undefined
        ? []
        : withoutOperationsOfLacked([...union].filter((name) => !own.includes(name)).sort())
  }
}

function toNode(keyId: string, r: Partial<PlacementNode> & { types?: unknown }): PlacementNode {
  const names = Array.isArray(r.types) ? r.types.filter((n): n is string => typeof n === 'string') : []
  return {
    id: typeof r.id === 'string' ? r.id : keyId,
    host: typeof r.host === 'string' ? r.host : '',
    pid: typeof r.pid === 'number' ? r.pid : 0,
    started: typeof r.started === 'number' ? r.started : 0,
    at: typeof r.at === 'number' ? r.at : 0,
    partitions: Array.isArray(r.partitions)
      ? r.partitions.filter((p): p is number => typeof p === 'number').sort((a, b) => a - b)
      : [],
    features: names
      .filter(isFeature)
      .map((n) => n.slice(2))
      .sort(),
    eligible: true,
    lacks: [],
  }
}

/** `basalt_<hub>_meta` → `<hub>`. */
function hubName(bucket: string): string {
  const match = /^basalt_(.*)_meta$/.exec(bucket)
  return match?.[1] ?? bucket
}

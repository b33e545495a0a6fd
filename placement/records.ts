/**
 * The records of placement in the hub's metadata KV bucket, and the checks on them that need no
 * agent state (placement/agent.ts runs the protocol over them):
 *
 * | key | value | written by |
 * |---|---|---|
 * | `node.<id>` | {@link NodeRecord}, rewritten every `heartbeatMs` | each node; deleted on graceful leave, or by the leader once the node's lease ran out |
 * | `leader` | {@link LeaderRecord}, renewed every `heartbeatMs` | the leader (compare-and-set) |
 * | `assign.<p>` | {@link AssignRecord}: owner and epoch, epochs only grow | the leader (compare-and-set) |
 * | `rel.<p>` | `{ epoch }`: the last epoch whose owner has stopped `p` | the owner that stopped |
 * | `types` | every registry name a node ever published (`e:`, `o:`, `a:`, and wire features `f:`; see `registry.ts`) | the leader (compare-and-set), when a live node has a name it lacks |
 * | `operations` | every operation a node registered, by entity type (`registry.ts`, not used by placement) | each node as it starts (compare-and-set), when it has one the key lacks |
 */
import { BadInputError } from '../actors/index.ts'
import { decode, type KV, type LatestEntry } from '../runtime/nats/index.ts'
import type { Logger } from '../runtime/util/index.ts'

/** `assign.<p>`: who owns partition p, with which epoch, and who owned it before. */
export interface AssignRecord {
  node: string
  epoch: number
  from?: string
}

/** `node.<id>`: a node's heartbeat. */
export interface NodeRecord {
  id: string
  host: string
  pid: number
  started: number
  beat: number
  /** Sender's clock at this heartbeat (for display only; liveness uses the observer's clock). */
  at: number
  /** Partitions the node was running at this heartbeat. */
  partitions: number[]
  /**
   * Names in the node's registry (`e:Type`, `o:name`, `a:name`) and the wire features of its
   * version (`f:lock-ops`); absent from older builds.
   */
  types?: string[]
}

/** `leader`: the placement leader's lease. */
export interface LeaderRecord {
  node: string
  since: number
}

/** Options of {@link PlacementAgent.start}. */
export interface PlacementOptions {
  nodeId: string
  /** The host name this node's heartbeats show (what `basalt placement` lists). */
  host: string
  partitions: number
  /** How often the node heartbeats and the leader renews its lease (ms). */
  heartbeatMs: number
  /** How long without a heartbeat before a node (or the leader) counts as gone (ms). */
  leaseMs: number
  logger: Logger
  /** Partitions this node runs now (reported in heartbeats). */
  running(): number[]
  /** Something changed that may change what this node should run: reconcile. */
  onChange(): void
  /** This node's own heartbeats lapsed past the lease: stop serving at once. */
  onLeaseLost(): void
  /**
   * Names in this node's registry (`e:Type`, `o:name`, `a:name`) and its wire features (`f:`). The
   * leader gives partitions only to nodes that know every name a live node knows (see
   * `registry.ts`). Absent: knows every type, has no wire feature.
   */
  types?: string[]
  /**
   * Reads a key's latest entry from the stream leader (`latestKvEntry`). A write whose
   * compare-and-set fails is followed by this read, so that a view the watch got from a replica
   * that is behind or diverged (nats-server 2.9 clusters after a restart) is corrected rather than
   * failing for ever. Absent: `kv.get`.
   */
  readLatest?: (key: string) => Promise<LatestEntry | null>
  /** The watch brought the hub's own record (`hub`; null: deleted): the node checks it is its hub. */
  onHubRecord?: (value: Uint8Array | null) => void
  /**
   * A heartbeat failed, or was stored at a lower revision than an earlier one (the metadata
   * bucket's stream was deleted and created again: sequences start over): the node checks that its
   * hub is still the one it opened. The lease lapsing or the placement watch stalling would tell
   * only seconds later.
   */
  onHubInDoubt?: () => void
}

/** Heartbeats older than this many leases at first sight come from processes long gone. */
export const ANCIENT_LEASES = 10

export const NODE_ID = /^[A-Za-z0-9_-]{1,100}$/

/**
 * Refuses a node id that a live process uses: two processes with one id would run partitions with
 * the same epoch, which the log cannot fence. A record left by a process that died is accepted
 * once it has not changed for a lease (so restarting under the same id waits that long).
 */
export async function ensureIdUnused(
  kv: KV,
  { nodeId, leaseMs, heartbeatMs }: PlacementOptions,
): Promise<void> {
  const first = await kv.get(`node.${nodeId}`)
  if (first === null || first.operation !== 'PUT') return
  if (Date.now() - first.created.getTime() > ANCIENT_LEASES * leaseMs) return
  const deadline = Date.now() + leaseMs + heartbeatMs
  while (Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, Math.min(heartbeatMs, 250)))
    const now = await kv.get(`node.${nodeId}`)
    if (now === null || now.operation !== 'PUT') return
    if (now.revision !== first.revision) {
      const { host, pid } = decode(now.value, 'heartbeat') as NodeRecord
      throw new BadInputError(`node id '${nodeId}' is in use by a live node (${host}, pid ${pid})`)
    }
  }
}

/** `assign.3` → ['assign', '3']; a key without a dot → [key, '']. */
export function splitKey(key: string): [string, string] {
  const dot = key.indexOf('.')
  return dot < 0 ? [key, ''] : [key.slice(0, dot), key.slice(dot + 1)]
}

/** A key's latest entry as the KV's own get gives it (the default `readLatest`). */
export async function kvLatest(kv: KV, key: string): Promise<LatestEntry | null> {
  const e = await kv.get(key)
  return e === null ? null : { value: e.value, revision: e.revision, operation: e.operation }
}

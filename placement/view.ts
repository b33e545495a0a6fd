/**
 * What a node knows of the placement bucket (its keys and records: records.ts): the assignments,
 * the releases, the node records, the hub's remembered types and the leader lease, each with the
 * revision it was read at and when this node saw it (on its own clock: liveness is judged by when
 * a record arrived, not by the writer's clock; only what a node finds as it joins is dated by the
 * server's clock, corrected by this node's measured offset from it). The watch brings every change
 * in through {@link PlacementView.apply}. Apart from the agent (agent.ts), which runs the protocol over this
 * view (heartbeats, the lease, the leader's passes, hand-offs); this file keeps how records become
 * the view.
 */
import { decode, type KvWatchEntry, type LatestEntry } from '../runtime/nats/index.ts'
import { ANCIENT_LEASES, splitKey, type AssignRecord, type LeaderRecord, type NodeRecord } from './records.ts'
import { hubTypeNames } from './registry.ts'

/** An assignment as this node saw it. */
export type AssignView = AssignRecord & { rev: number; seen: number }
/** A node record as this node saw it; `graced`: the revision given a fresh lease after a stall. */
export interface NodeView {
  seen: number
  rev: number
  graced?: number
  types?: string[]
}
/** The leader lease as this node saw it (`graced` as for a node). */
export interface LeaderView {
  node: string
  rev: number
  seen: number
  graced?: number
}

/** One node's view of the placement bucket (see the module comment); one per agent. */
export class PlacementView {
  readonly assign = new Map<number, AssignView>()
  readonly released = new Map<number, number>()
  readonly nodes = new Map<string, NodeView>()
  /** The meta key `types`: every name a node ever published, and its revision. */
  hubTypes: { names: string[]; rev: number } = { names: [], rev: 0 }
  leader: LeaderView | null = null

  /** Every registry name the hub knows of: those it remembers and those of the nodes in view. */
  hubNames(): string[] {
    const names = [...this.hubTypes.names]
    for (const n of this.nodes.values()) if (n.types !== undefined) names.push(...n.types)
    return names
  }

  /**
   * Takes a watch entry into the view (`now`: when it arrived); throws for a bad record. `age`,
   * given only for the records a joining node finds: how long before `now` the server stored it,
   * on this node's clock (see `PlacementAgent`); a node or leader record is then taken as seen that
   * long ago, at most a lease, so that a lease that ran out before the join is not counted again
   * from the join.
   */
  apply(entry: KvWatchEntry, now: number, leaseMs: number, age?: number): void {
    const put = entry.operation === 'PUT'
    // A record written long before we first saw it comes from a process long gone.
    const fresh = now - entry.created.getTime() <= ANCIENT_LEASES * leaseMs
    const seen = fresh ? now - Math.min(Math.max(age ?? 0, 0), leaseMs) : 0
    const [kind, rest] = splitKey(entry.key)
    if (kind === 'assign') {
      const p = Number(rest)
      if (!put) this.assign.delete(p)
      else {
        const a = decode(entry.value, `assignment ${entry.key}`) as AssignRecord
        this.assign.set(p, { ...a, rev: entry.revision, seen: now })
      }
    } else if (kind === 'rel' && put) {
      const p = Number(rest)
      const { epoch } = decode(entry.value, `release ${entry.key}`) as { epoch: number }
      this.released.set(p, Math.max(epoch, this.released.get(p) ?? 0))
    } else if (kind === 'node') {
      if (!put) this.nodes.delete(rest)
      else {
        const { types } = decode(entry.value, `heartbeat ${entry.key}`) as NodeRecord
        const node: { seen: number; rev: number; types?: string[] } = {
          seen,
          rev: entry.revision,
        }
        if (Array.isArray(types)) node.types = types.filter((t) => typeof t === 'string')
        this.nodes.set(rest, node)
      }
    } else if (kind === 'types' && put) {
      this.hubTypes = { names: hubTypeNames(entry.value), rev: entry.revision }
    } else if (kind === 'leader') {
      if (!put) this.leader = null
      else {
        const l = decode(entry.value, 'leader lease') as LeaderRecord
        this.leader = { node: l.node, rev: entry.revision, seen }
      }
    }
  }

  /**
   * After a stall of this node's own (paused or starved), what it saw of others is stale, not
   * proof that they died: each record gets a fresh lease once, seen `now`. Once per revision only:
   * a dead node writes no new one, so stalls that keep coming (a starved machine) must not keep
   * its lease, or a dead leader's, alive for ever.
   */
  grace(now: number): void {
    for (const n of this.nodes.values()) {
      if (n.seen > 0 && n.graced !== n.rev) {
        n.seen = now
        n.graced = n.rev
      }
    }
    const l = this.leader
    if (l !== null && l.seen > 0 && l.graced !== l.rev) {
      l.seen = now
      l.graced = l.rev
    }
  }

  /**
   * Takes a key's latest record, read from the stream leader after a failed compare-and-set, as
   * new: seen at `seen`, so a dead writer's lease runs out a lease from then.
   */
  adopt(key: 'leader' | `assign.${number}`, entry: LatestEntry, seen: number): void {
    if (key === 'leader') {
      const l = decode(entry.value, 'leader lease') as LeaderRecord
      this.leader = { node: l.node, rev: entry.revision, seen }
    } else {
      const a = decode(entry.value, `assignment ${key}`) as AssignRecord
      this.assign.set(Number(key.slice('assign.'.length)), { ...a, rev: entry.revision, seen })
    }
  }
}

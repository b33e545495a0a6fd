/**
 * The placement mechanism every node runs: membership by heartbeats, the leader lease, the
 * leader's assignment passes, and the hand-off protocol — all through the hub's metadata KV bucket
 * (its keys and records: records.ts).
 *
 * Liveness is judged on the observer's own clock (when it last saw a node's heartbeat arrive), so
 * clocks need not agree (what a node finds as it joins is dated by the server's clock instead, see
 * `#clockAhead`). A node is gone once nothing arrived from it for `leaseMs`; a node whose own
 * heartbeats lapse past the lease (paused, cut off) stops serving at once. Moves: the leader writes
 * `assign.<p> = { node: new, epoch: old + 1, from: old }`; the old owner finishes its in-flight
 * commit, stops, and writes `rel.<p>`; the new owner starts once `p` is released, or the old owner
 * is gone, or the lease has passed. Safety never depends on this timing: the epoch fences the
 * commit log, so a stale owner's next append is rejected by JetStream and it stops.
 *
 * What the node knows of the bucket, and how the watch's records become that, is its view
 * (view.ts); this file is the protocol that keeps the view and acts on it.
 */
import { BadInputError } from '../actors/index.ts'
import { decode, encode, type KV, type KvWatchEntry, type QueuedIterator } from '../runtime/nats/index.ts'
import { BatchWorker } from '../runtime/util/index.ts'
import { balance } from './policy.ts'
import { divergence, eligibleNodes, everyRecordHas, HubTypes, type TypeName } from './registry.ts'
import {
  NODE_ID,
  ensureIdUnused,
  kvLatest,
  splitKey,
  type AssignRecord,
  type LeaderRecord,
  type NodeRecord,
  type PlacementOptions,
} from './records.ts'
import { PlacementView } from './view.ts'

/** A node's part in placement; the leader's duties run in whichever node holds the lease. */
export class PlacementAgent {
  /** What this node knows of the bucket (view.ts). */
  readonly #view = new PlacementView()
  #watch: QueuedIterator<KvWatchEntry> | undefined
  #initialized = false
  #initRev = 0
  #beat = 0
  #lastBeatRev = 0
  #seenOwnRev = 0
  #ownSeenAt = Date.now()
  #lastBeatOk = Date.now()
  #lastStep = Date.now()
  /**
   * How far this node's clock is ahead of the server's, overestimated by the return time of one
   * acknowledgement (so ages computed with it are, if anything, too young); measured once, at the
   * start. The records a joining node finds are dated with it: a node killed and started again at
   * once finds the old process's heartbeat and leader lease seconds old, and counting their leases
   * from the join would leave the partitions unserved a lease longer than they need. Records that
   * arrive later are dated by their arrival only (the protocol never depends on clocks agreeing).
   */
  #clockAhead: number | undefined
  #leaving = false
  #closed = false
  /** Placement steps: a poke while one runs makes another follow (see batch-worker.ts). */
  readonly #steps = new BatchWorker(() =>
    this.#step().catch((err: unknown) =>
      this.options.logger.warn('placement step failed', { error: String(err) }),
    ),
  )
  #heartbeat: NodeJS.Timeout | undefined
  /** The heartbeat being stored, if any (settles, never rejects). */
  #beating: Promise<unknown> = Promise.resolve()
  #stepTimer: NodeJS.Timeout | undefined
  readonly #started = Date.now()
  /** Moves written by this node as leader (for tests and the bench). */
  moves = 0

  private constructor(
    readonly kv: KV,
    readonly options: PlacementOptions,
  ) {
    this.types = new HubTypes(options.types ?? [], () => this.#view.hubNames())
  }

  /** Registers the node, starts watching the bucket, heartbeating and competing for the lease. */
  static async start(kv: KV, options: PlacementOptions): Promise<PlacementAgent> {
    if (!NODE_ID.test(options.nodeId)) {
      throw new BadInputError(`node id must match ${NODE_ID} (got ${JSON.stringify(options.nodeId)})`)
    }
    await ensureIdUnused(kv, options)
    const agent = new PlacementAgent(kv, options)
    agent.#initRev = await agent.#putHeartbeat()
    await agent.#measureClock()
    await agent.#startWatch()
    agent.#heartbeat = setInterval(
      () => void agent.#putHeartbeat().catch(() => options.onHubInDoubt?.()),
      options.heartbeatMs,
    )
    agent.#stepTimer = setInterval(() => agent.poke(), options.heartbeatMs)
    agent.#heartbeat.unref()
    agent.#stepTimer.unref()
    return agent
  }

  get nodeId(): string {
    return this.options.nodeId
  }

  /** Whether this node holds the leader lease. */
  get isLeader(): boolean {
    return this.#view.leader?.node === this.nodeId && !this.#leaving
  }

  /** The leader's node id, if any. */
  get leader(): string | null {
    return this.#view.leader?.node ?? null
  }

  /** Live nodes, sorted (this node included unless it is leaving). */
  live(): string[] {
    const now = Date.now()
    const ids = new Set(
      [...this.#view.nodes].filter(([, n]) => now - n.seen <= this.options.leaseMs).map(([id]) => id),
    )
    if (this.#leaving) ids.delete(this.nodeId)
    else ids.add(this.nodeId)
    return [...ids].sort()
  }

  /** Live nodes that may own partitions: those that know every name a live node knows. */
  eligible(): string[] {
    return eligibleNodes(this.live(), this.#registries())
  }

  /** The registry names each known node published, this node's own included. */
  #registries(): Map<string, string[]> {
    const registries = new Map<string, string[]>()
    for (const [id, n] of this.#view.nodes) if (n.types !== undefined) registries.set(id, n.types)
    if (this.options.types !== undefined) registries.set(this.nodeId, this.options.types)
    return registries
  }

  /**
   * Whether every node record this agent knows — live or not (yet) deleted, this node's own
   * included — lists `name` (a wire feature, `f:…`); false until the agent has read the bucket. A
   * sender uses a wire feature only while this holds (placement/registry.ts).
   */
  everyNodeHas(name: TypeName): boolean {
    if (!this.#initialized || !(this.options.types ?? []).includes(name)) return false
    const others = [...this.#view.nodes].filter(([id]) => id !== this.nodeId).map(([, n]) => n.types)
    return everyRecordHas(others, name)
  }

  /**
   * Where a registry name (`e:Type`, `o:name`, `a:name`) is known: on this node, on another node
   * (live, or one the hub saw before: the meta key `types`), or nowhere.
   */
  readonly types: HubTypes

  /** Current assignment of partition p. */
  assignment(p: number): AssignRecord | undefined {
    const a = this.#view.assign.get(p)
    return a === undefined ? undefined : { node: a.node, epoch: a.epoch, ...(a.from ? { from: a.from } : {}) }
  }

  /**
   * Partitions this node should run now, with their epochs: assigned to it, and either released by
   * the previous owner, or that owner is gone, or the hand-off has waited a full lease.
   */
  wanted(): Map<number, number> {
    const want = new Map<number, number>()
    if (this.#leaving || !this.#initialized) return want
    const now = Date.now()
    const live = new Set(this.live())
    for (const [p, a] of this.#view.assign) {
      if (a.node !== this.nodeId) continue
      const free =
        a.from === undefined ||
        a.from === this.nodeId ||
        !live.has(a.from) ||
        (this.#view.released.get(p) ?? 0) >= a.epoch - 1 ||
        now - a.seen > this.options.leaseMs
      if (free) want.set(p, a.epoch)
    }
    return want
  }

  /** Partitions this node has handed (or was to hand) to another node, and not yet released. */
  handoffs(): Array<[p: number, epoch: number]> {
    const out: Array<[number, number]> = []
    for (const [p, a] of this.#view.assign) {
      if (a.node !== this.nodeId && a.from === this.nodeId && (this.#view.released.get(p) ?? 0) < a.epoch - 1)
        out.push([p, a.epoch - 1])
    }
    return out
  }

  /**
   * True once every partition is assigned to a live node, evenly (shares differ by at most one),
   * with a leader in place.
   */
  settled(): boolean {
    if (!this.#initialized || this.#view.leader === null) return false
    const shares = new Map(this.eligible().map((node) => [node, 0]))
    for (let p = 0; p < this.options.partitions; p++) {
      const node = this.#view.assign.get(p)?.node
      const share = node === undefined ? undefined : shares.get(node)
      if (node === undefined || share === undefined) return false
      shares.set(node, share + 1)
    }
    // evenly spread: a node that just joined has its share assigned
    const counts = [...shares.values()]
    return Math.max(...counts) - Math.min(...counts) <= 1
  }

  /** Records that this node stopped running `p` at `epoch`, so the next owner may start at once. */
  async release(p: number, epoch: number): Promise<void> {
    if ((this.#view.released.get(p) ?? 0) >= epoch) return
    this.#view.released.set(p, epoch)
    await this.kv.put(`rel.${p}`, encode({ epoch }))
  }

  /**
   * Gives partition `p`, which this node owns at `epoch`, a fresh epoch (still this node's), so that
   * it can start again after its run at `epoch` stopped: fenced by a record of a newer epoch that
   * placement never gave (a static claim), or failed. Compare-and-set against the assignment this
   * node last saw: false when it changed meanwhile (the watch brings the new one).
   */
  async renew(p: number, epoch: number): Promise<boolean> {
    const cur = this.#view.assign.get(p)
    if (cur === undefined || cur.node !== this.nodeId || cur.epoch !== epoch) return false
    const record: AssignRecord = { node: this.nodeId, epoch: epoch + 1, from: this.nodeId }
    try {
      await this.kv.update(`assign.${p}`, encode(record), cur.rev)
      return true
    } catch {
      return false
    }
  }

  /**
   * Whether this node's own heartbeats are within the lease: false right after a pause or a
   * cut-off, before the next step notices and stops the partitions. Writers check it so that a
   * resumed process writes nothing before it has learnt what changed while it was away.
   */
  holdsLease(): boolean {
    return Date.now() - this.#lastBeatOk <= this.options.leaseMs
  }

  /** Runs a placement step soon (heartbeat checks, lease, and a leader pass). */
  poke(): void {
    if (this.#closed || this.#leaving) return
    this.#steps.kick()
  }

  /**
   * Leaves the hub gracefully: no more heartbeats, the lease (if held) and the node record are
   * deleted so the leader (or a new one, at once) reassigns this node's partitions. The caller then
   * stops its partitions and {@link release}s each, and finally {@link close}s the agent.
   */
  async leave(): Promise<void> {
    if (this.#leaving) return
    this.#leaving = true
    clearInterval(this.#heartbeat)
    clearInterval(this.#stepTimer)
    this.#steps.stop() // the step under way finishes; no other follows
    await this.#steps.idle()
    const l = this.#view.leader
    if (l?.node === this.nodeId) await this.kv.delete('leader', { previousSeq: l.rev }).catch(() => {})
    await this.kv.delete(`node.${this.nodeId}`).catch(() => {})
  }

  /**
   * Deletes what this very run wrote into a hub created again under it: its node record (same
   * start time and process) and the leader lease if it holds it. Its heartbeats and its lease
   * renewals may have landed in the new hub before the node noticed, and the new hub's first
   * nodes would wait a lease for a leader that is gone. Call after {@link close}.
   */
  async forgetOwnRecords(): Promise<void> {
    await this.#steps.idle() // a lease renewal under way lands first
    await this.#beating
    const leader = await this.kv.get('leader').catch(() => null)
    if (
      leader?.operation === 'PUT' &&
      (decode(leader.value, 'leader lease') as { node?: string }).node === this.nodeId
    )
      await this.kv.delete('leader', { previousSeq: leader.revision }).catch(() => {})
    const own = await this.kv.get(`node.${this.nodeId}`).catch(() => null)
    if (own === null || own.operation !== 'PUT') return
    const record = decode(own.value, `heartbeat node.${this.nodeId}`) as NodeRecord
    if (record.started !== this.#started || record.pid !== process.pid) return
    await this.kv.delete(`node.${this.nodeId}`, { previousSeq: own.revision }).catch(() => {})
  }

  /** Stops watching. */
  close(): void {
    this.#closed = true
    this.#leaving = true
    clearInterval(this.#heartbeat)
    clearInterval(this.#stepTimer)
    this.#steps.stop()
    this.#watch?.stop()
  }

  /**
   * Heartbeats now rather than at the next interval: the node's partitions changed, and the
   * record (what `basalt placement` shows) should say so at once. Failures are left to the
   * regular heartbeat.
   */
  async heartbeatNow(): Promise<void> {
    await this.#putHeartbeat().catch(() => {})
  }

  // ---------------------------------------------------------------------------------------------

  async #putHeartbeat(): Promise<number> {
    if (this.#leaving) return 0
    const record: NodeRecord = {
      id: this.nodeId,
      host: this.options.host,
      pid: process.pid,
      started: this.#started,
      beat: ++this.#beat,
      at: Date.now(),
      partitions: this.options.running(),
      ...(this.options.types === undefined ? {} : { types: this.options.types }),
    }
    const put = this.kv.put(`node.${this.nodeId}`, encode(record))
    this.#beating = put.catch(() => {})
    const rev = await put
    if (rev < this.#lastBeatRev) this.options.onHubInDoubt?.()
    this.#lastBeatOk = Date.now()
    this.#lastBeatRev = Math.max(this.#lastBeatRev, rev)
    return rev
  }

  /**
   * How far this node's clock is ahead of the server's (at most, see {@link #clockAhead}), measured
   * on its first heartbeat: the time its write was acknowledged, less the server's timestamp of the
   * stored record. Left unknown when the record read back is not that write (a replica behind).
   */
  async #measureClock(): Promise<void> {
    const acknowledged = this.#lastBeatOk
    const own = await this.kv.get(`node.${this.nodeId}`).catch(() => null)
    if (own?.revision === this.#initRev) this.#clockAhead = acknowledged - own.created.getTime()
  }

  async #startWatch(): Promise<void> {
    const watch = await this.kv.watch({ key: '>' })
    this.#watch = watch
    void this.#consume(watch)
  }

  /**
   * The watch must echo our own heartbeats; when it has not for three heartbeats while they were
   * written (its consumer was lost with a server, say), it is replaced: a fresh watch delivers
   * every key's latest value again.
   */
  async #checkWatch(now: number): Promise<void> {
    if (this.#lastBeatRev <= this.#seenOwnRev || now - this.#lastBeatOk > this.options.heartbeatMs) return
    if (now - this.#ownSeenAt <= 3 * this.options.heartbeatMs) return
    this.options.logger.warn('placement watch stalled; restarting it', { node: this.nodeId })
    this.#watch?.stop()
    this.#ownSeenAt = now
    await this.#startWatch()
  }

  async #consume(watch: QueuedIterator<KvWatchEntry>): Promise<void> {
    try {
      for await (const entry of watch) {
        if (watch !== this.#watch) break
        try {
          this.#apply(entry)
        } catch (err) {
          this.options.logger.warn('bad placement record ignored', { key: entry.key, error: String(err) })
        }
        if (!this.#initialized && entry.revision >= this.#initRev) {
          this.#initialized = true
          this.poke()
        }
        if (this.#initialized) this.options.onChange()
      }
    } catch (err) {
      if (!this.#closed) this.options.logger.error('placement watch ended', { error: String(err) })
    }
  }

  /**
   * Takes a watch entry into the view; notes the echo of this node's own heartbeats, and runs a
   * step at once when a node joined or left (for the leader) or the lease became free.
   */
  #apply(entry: KvWatchEntry): void {
    const now = Date.now()
    const put = entry.operation === 'PUT'
    const [kind, rest] = splitKey(entry.key)
    const known = kind === 'node' && this.#view.nodes.has(rest)
    // what the node finds as it joins is dated by the server's clock (see #clockAhead)
    const age =
      this.#initialized || this.#clockAhead === undefined
        ? undefined
        : now - this.#clockAhead - entry.created.getTime()
    this.#view.apply(entry, now, this.options.leaseMs, age)
    if (kind === 'node') {
      if (rest === this.nodeId && put) {
        this.#seenOwnRev = Math.max(this.#seenOwnRev, entry.revision)
        this.#ownSeenAt = now
      }
      if (known !== put && this.isLeader) this.poke() // joined or left: rebalance now
    } else if (kind === 'leader' && !put)
      this.poke() // the lease is free: take it now
    else if (kind === 'hub') this.options.onHubRecord?.(put ? entry.value : null)
  }

  async #step(): Promise<void> {
    if (!this.#initialized) return
    const now = Date.now()
    const { heartbeatMs, leaseMs } = this.options
    // Our own heartbeats lapsed past the lease (a pause, a cut-off): others may own our partitions.
    if (now - this.#lastBeatOk > leaseMs) {
      this.options.logger.warn('own heartbeats lapsed past the lease; stopping partitions', {
        node: this.nodeId,
        ms: now - this.#lastBeatOk,
      })
      this.options.onLeaseLost()
      await this.#putHeartbeat().catch(() => {})
    }
    // After a stall of our own, what we saw of others is stale, not proof that they died: each
    // record gets a fresh lease, once per revision (PlacementView.grace).
    if (now - this.#lastStep > 2 * heartbeatMs) {
      this.options.logger.warn(
        'placement step late (process paused or starved, or NATS slow to answer); what it saw of others is stale',
        {
          node: this.nodeId,
          ms: now - this.#lastStep,
        },
      )
      this.#view.grace(now)
    }
    this.#lastStep = now
    await this.#checkWatch(now)
    await this.#lease(now, leaseMs)
    if (this.isLeader) await this.#pass()
    this.#warnOfDivergence()
    this.options.onChange()
  }

  /** What {@link #warnOfDivergence} said last ('' while registries agree). */
  #divergenceSaid = ''

  /**
   * Registries that diverge (no node knows every name) stall work silently: an owner keeps the
   * messages for names it lacks. A node that lacks names says so, and again whenever what it lacks
   * changes, so the operator finds the odd node in its own log.
   */
  #warnOfDivergence(): void {
    const lacking = divergence(this.live(), this.#registries())
    const mine = lacking.get(this.nodeId)
    const said = mine === undefined ? '' : mine.join(',')
    if (said === this.#divergenceSaid) return
    this.#divergenceSaid = said
    if (mine === undefined) return
    const others = [...lacking]
      .filter(([id]) => id !== this.nodeId)
      .map(([id, names]) => `${id} lacks ${names.join(', ')}`)
    this.options.logger.warn(
      `registries diverge: no node knows every name on this hub. This node lacks ${mine.join(', ')}` +
        `${others.length === 0 ? '' : `; ${others.join('; ')}`}. Partitions go to the nodes that know the most names; ` +
        `messages for a name its owner lacks wait until a node that knows it owns the partition. ` +
        `Deploy one registry on every node (see basalt placement)`,
      { node: this.nodeId },
    )
  }

  /**
   * Adds the names of live nodes that the meta key `types` lacks (the hub remembers every name it
   * has seen, so that an owner meeting a name of a node that is down keeps the message for it).
   * Deleting the key forgets retired names: the leader writes back those of live nodes.
   */
  async #rememberTypes(): Promise<void> {
    const names = new Set(this.#view.hubTypes.names)
    const before = names.size
    for (const name of this.#view.hubNames()) names.add(name)
    if (names.size === before && this.#view.hubTypes.rev > 0) return
    const value = encode([...names].sort())
    try {
      const rev =
        this.#view.hubTypes.rev === 0
          ? await this.kv.create('types', value)
          : await this.kv.update('types', value, this.#view.hubTypes.rev)
      this.#view.hubTypes = { names: [...names].sort(), rev }
    } catch {
      // written concurrently: the watch brings the newer set, the next pass adds to it
    }
  }

  /** Takes, renews or takes over the leader lease. */
  async #lease(now: number, leaseMs: number): Promise<void> {
    const l = this.#view.leader
    const value = encode({ node: this.nodeId, since: now } satisfies LeaderRecord)
    try {
      if (l === null) {
        const rev = await this.kv.create('leader', value)
        this.#view.leader = { node: this.nodeId, rev, seen: now }
        this.options.logger.info('placement leader', { node: this.nodeId })
      } else if (l.node === this.nodeId || now - l.seen > leaseMs) {
        const rev = await this.kv.update('leader', value, l.rev)
        if (l.node !== this.nodeId)
          this.options.logger.info('placement leader (took over)', {
            node: this.nodeId,
            // ('' when the lease's holder was unknown: our write of it had failed)
            ...(l.node === '' ? {} : { from: l.node }),
          })
        this.#view.leader = { node: this.nodeId, rev, seen: now }
      }
    } catch {
      // someone else wrote first (the watch tells us who leads now), or our view of the record is
      // not the leader's: read it from the stream leader
      if (this.#view.leader?.node === this.nodeId)
        this.#view.leader = { ...this.#view.leader, node: '', seen: now }
      if (l !== null) await this.#resync('leader')
    }
  }

  /**
   * After a compare-and-set on `key` failed: the key's latest entry from the stream leader. When
   * its revision is not the one this node holds, the view was stale (a write the watch has not
   * brought yet, or a replica's copy that differs); the record is taken as new, seen now, so a
   * dead writer's lease runs out a lease from now and the next write names the right revision.
   */
  async #resync(key: 'leader' | `assign.${number}`): Promise<void> {
    const read = this.options.readLatest ?? ((k: string) => kvLatest(this.kv, k))
    const entry = await read(key).catch(() => undefined) // no answer: the next failure asks again
    if (entry === undefined) return
    const leader = key === 'leader'
    const p = leader ? -1 : Number(key.slice('assign.'.length))
    const held = leader ? this.#view.leader : this.#view.assign.get(p)
    if (entry === null || entry.operation !== 'PUT') {
      if (leader) this.#view.leader = null
      else this.#view.assign.delete(p)
      return
    }
    if (held !== null && held !== undefined && held.rev === entry.revision) return // the view was right
    // (info: on an R3 hub it comes every few seconds with no fault, and asks nothing of an operator)
    this.options.logger.info('placement view was stale; read the key from the stream leader', {
      node: this.nodeId,
      key,
      held: held?.rev,
      rev: entry.revision,
    })
    this.#view.adopt(key, entry, Date.now())
  }

  /** The leader's pass: forget nodes whose lease ran out, then move partitions to balance. */
  async #pass(): Promise<void> {
    const now = Date.now()
    for (const [id, n] of this.#view.nodes) {
      if (id === this.nodeId || now - n.seen <= this.options.leaseMs) continue
      this.options.logger.info('node gone (missed heartbeats)', { node: id })
      this.#view.nodes.delete(id)
      void this.kv.delete(`node.${id}`, { previousSeq: n.rev }).catch(() => {})
    }
    await this.#rememberTypes()
    const P = this.options.partitions
    const owners = Array.from({ length: P }, (_, p) => this.#view.assign.get(p)?.node ?? null)
    const desired = balance(P, this.eligible(), owners)
    const writes: Array<Promise<unknown>> = []
    for (let p = 0; p < P; p++) {
      const node = desired[p]
      if (node === null || node === undefined || node === owners[p]) continue
      const cur = this.#view.assign.get(p)
      const record: AssignRecord = { node, epoch: (cur?.epoch ?? 0) + 1, ...(cur ? { from: cur.node } : {}) }
      const bytes = encode(record)
      this.moves++
      writes.push(
        (cur === undefined
          ? this.kv.create(`assign.${p}`, bytes)
          : this.kv.update(`assign.${p}`, bytes, cur.rev)
        ).catch(
          // a concurrent write won (the next pass sees it), or our view was stale: resync
          () => (cur === undefined ? undefined : this.#resync(`assign.${p}`)),
        ),
      )
    }
    await Promise.all(writes)
  }
}

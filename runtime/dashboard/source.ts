/**
 * Where the dashboard's data comes from: one {@link Client} on the hub (connected lazily and again
 * after it failed, so a dashboard started while NATS is down comes up once NATS does), the node
 * telemetry subscription (`H.stats.*`) feeding a {@link StatsTracker}, and the hub-wide instance
 * feed (every partition's change messages, decoded to instance summaries) the Instances page
 * shows live. Subscriptions live while someone listens and end with the last listener.
 */
import { partitionOf } from '../../actors/index.ts'
import type { CommitRecord } from '../../actors/wire/index.ts'
import { Client, type InstanceStatus } from '../client/index.ts'
import { summaryOf, type InstanceRecord } from '../instances/index.ts'
import {
  decode,
  decodeEnvelope,
  hubFate,
  isUnloaded,
  valueOf,
  parseItemKey,
  pickConnection,
  type ConnectionOptions,
  whileConnected,
  type Subscription,
} from '../nats/index.ts'
import { StatsTracker } from './stats.ts'

/** How often, at most, a request checks that the hub is still the one the client opened, in ms. */
const FATE_CHECK_MS = 2_000
/** How long a request waits for that check before it goes on with the client it has, in ms. */
const FATE_CHECK_WAIT_MS = 500

/** An instance's change as the Instances page receives it; `status` null when it was purged. */
export interface InstanceChange {
  id: string
  status: InstanceStatus | null
}

/** The hub connection behind a dashboard (see the module comment). */
export class DashboardSource {
  readonly stats = new StatsTracker()
  #client: Client | undefined
  #connecting: Promise<Client> | undefined
  #statsSub: Subscription | undefined
  readonly #statsListeners = new Set<() => void>()
  readonly #instanceListeners = new Set<(change: InstanceChange) => void>()
  #instanceFeed: { stop(): void; ready: Promise<void> } | undefined
  #closed = false
  /** What to do when a client stops being this dashboard's (see {@link onClientGone}). */
  readonly #goneListeners = new Map<Client, Set<() => void>>()
  /** When {@link #hubReplaced} last read the hub record (ms since the epoch). */
  #fateCheckedAt = 0

  constructor(readonly options: ConnectionOptions & { hub: string }) {}

  /**
   * The connected client; connects first when needed. Throws `ConnectionError` naming the URL while
   * NATS is unreachable and `HubNotFoundError` while the hub does not exist.
   */
  async client(): Promise<Client> {
    if (this.#closed) throw new Error('dashboard is closed')
    const current = this.#client
    if (current !== undefined) {
      // (a client that found its hub created again refuses everything: connect anew at once)
      if (!current.nc.isClosed() && !current.hubReplaced && !(await this.#hubReplaced(current)))
        return current
      // (its streams end: a closed connection, or a hub created again, delivers nothing more)
      if (this.#client === current) this.#forget(current)
      // a request that asked meanwhile connected anew already
      else if (this.#client !== undefined) return this.#client
    }
    // only the connection and the hub: startDashboard's options may hold more, which connect refuses
    const { hub } = this.options
    this.#connecting ??= Client.connect({ ...pickConnection(this.options), hub, queryTimeoutMs: 5_000 })
      .then((client) => {
        this.#client = client
        this.#subscribeStats(client)
        if (this.#instanceListeners.size > 0) this.#startInstanceFeed(client)
        return client
      })
      .finally(() => (this.#connecting = undefined))
    return this.#connecting
  }

  /**
   * Whether the hub `client` opened was deleted and created again since: its client then
   * knows the old partition count and waits in its reads for positions of the old mailboxes, so
   * the pages would show part of the new hub, or errors, until the dashboard restarted. Asked at
   * most every {@link FATE_CHECK_MS} (one read of the hub record); NATS not answering is no answer.
   */
  async #hubReplaced(client: Client): Promise<boolean> {
    const now = Date.now()
    if (now - this.#fateCheckedAt < FATE_CHECK_MS) return false
    this.#fateCheckedAt = now
    // (NATS gone: the read would wait for the reconnect; the page's own request says what is wrong)
    let timer: NodeJS.Timeout | undefined
    const fate = await Promise.race([
      hubFate(client.hub, 0).catch(() => 'same' as const),
      new Promise<'same'>((resolve) => (timer = setTimeout(resolve, FATE_CHECK_WAIT_MS, 'same'))),
    ]).finally(() => clearTimeout(timer))
    // deleted only: the old client's errors say so ("was deleted"); created again: connect anew
    return fate === 'recreated'
  }

  /**
   * Calls `listener` once `client` is no longer this dashboard's: dropped for a new one (its hub
   * was created again) or closed with the dashboard. What streams through it then ends: its
   * watches and change messages are the old hub's. At once when it is gone already. Returns the
   * unsubscribe.
   */
  onClientGone(client: Client, listener: () => void): () => void {
    if (this.#closed || this.#client !== client) {
      listener()
      return () => {}
    }
    let listeners = this.#goneListeners.get(client)
    if (listeners === undefined) this.#goneListeners.set(client, (listeners = new Set()))
    listeners.add(listener)
    return () => listeners.delete(listener)
  }

  /** Tells the listeners of `client` (see {@link onClientGone}) that it is gone. */
  #gone(client: Client): void {
    const listeners = this.#goneListeners.get(client)
    this.#goneListeners.delete(client)
    for (const listener of listeners ?? []) listener()
  }

  /** Drops `client` and what listens through it; the next {@link client} call connects anew. */
  #forget(client: Client): void {
    if (this.#client === client) this.#client = undefined
    this.#gone(client)
    this.#instanceFeed?.stop()
    this.#instanceFeed = undefined
    this.#statsSub?.unsubscribe()
    this.#statsSub = undefined
    void whileConnected(client.nc, () => client.close())
      .then((closed) => (closed ? undefined : client.nc.close()))
      .catch(() => {})
  }

  /** Calls `listener` after each telemetry sample; returns the unsubscribe. */
  onStats(listener: () => void): () => void {
    this.#statsListeners.add(listener)
    return () => this.#statsListeners.delete(listener)
  }

  /**
   * Calls `listener` with every committed instance change on the hub. Returns the unsubscribe and
   * `ready`, which settles once every partition knows of the feed: what a listing read after it
   * misses, the listener hears.
   */
  onInstanceChange(listener: (change: InstanceChange) => void): { off: () => void; ready: Promise<void> } {
    this.#instanceListeners.add(listener)
    if (this.#instanceFeed === undefined && this.#client !== undefined) this.#startInstanceFeed(this.#client)
    const ready = this.#instanceFeed?.ready ?? Promise.resolve()
    const off = () => {
      this.#instanceListeners.delete(listener)
      if (this.#instanceListeners.size === 0) {
        this.#instanceFeed?.stop()
        this.#instanceFeed = undefined
      }
    }
    return { off, ready }
  }

  /**
   * Stops the feeds and closes the hub connection, one still being made included: a dashboard
   * that failed to listen is closed at once, and its connect must not keep the process alive.
   */
  async close(): Promise<void> {
    this.#closed = true
    await this.#connecting?.catch(() => undefined)
    this.#instanceFeed?.stop()
    this.#statsSub?.unsubscribe()
    const client = this.#client
    if (client === undefined) return
    this.#gone(client)
    // with the server gone a graceful close would wait for it: close the connection at once
    const closed = await whileConnected(client.nc, () => client.close())
    if (!closed) await client.nc.close().catch(() => {})
  }

  #subscribeStats(client: Client): void {
    this.#statsSub?.unsubscribe()
    this.#statsSub = client.nc.subscribe(client.hub.names.stats('*'), {
      callback: (err, msg) => {
        if (err || !this.stats.add(msg.data)) return
        for (const listener of this.#statsListeners) listener()
      },
    })
  }

  /**
   * Hears every partition's change messages. A partition publishes them only while it knows of a
   * watcher, so one status watch per partition (of an id no instance has) announces this one.
   */
  #startInstanceFeed(client: Client): void {
    const subject = client.hub.names.changes(0).replace(/\.0$/, '.*')
    const sub = client.nc.subscribe(subject, {
      callback: (err, msg) => {
        if (err || msg.data.length === 0) return
        let rec: CommitRecord
        try {
          rec = decodeEnvelope(msg.data, 'change message') as unknown as CommitRecord
        } catch {
          return
        }
        if (!Array.isArray(rec.w)) return
        for (const [key, value] of rec.w) {
          const parsed = parseItemKey(key)
          if (parsed?.kind !== 'o' || !('id' in parsed)) continue
          const change = instanceChange(parsed.id, value)
          if (change === undefined) continue
          for (const listener of this.#instanceListeners) listener(change)
        }
      },
    })
    // each watch's first value is answered after its partition heard of it (see change-feed.ts)
    const announced: Array<Promise<void>> = []
    const announcers = probeIds(client.partitionCount).map((id) => {
      let first: () => void = () => {}
      announced.push(new Promise<void>((resolve) => (first = resolve)))
      return client.watchStatus(id).subscribe({ next: () => first(), error: () => first() })
    })
    this.#instanceFeed = {
      ready: Promise.all(announced).then(() => {}),
      stop: () => {
        sub.unsubscribe()
        for (const a of announcers) a.unsubscribe()
      },
    }
  }
}

function instanceChange(id: string, value: Uint8Array | null): InstanceChange | undefined {
  if (value === null) return { id, status: null }
  try {
    const s = summaryOf(decode(value, 'instance') as InstanceRecord)
    const status: InstanceStatus = {
      id: s.id,
      name: s.name,
      status: s.status,
      createdAt: new Date(s.created),
      lastUpdatedAt: new Date(s.updated),
    }
    // a large custom status is a reference: the Instance page loads it
    if (s.custom !== undefined && !isUnloaded(s.custom)) status.customStatus = valueOf(s.custom)
    if (s.completed !== undefined) status.completedAt = new Date(s.completed)
    return { id, status }
  } catch {
    return undefined
  }
}

/** One instance id per partition that no real instance uses (the dashboard's announcements). */
function probeIds(partitions: number): string[] {
  const ids = new Array<string>(partitions)
  let found = 0
  for (let n = 0; found < partitions; n++) {
    const id = `basalt-dashboard-probe-${n}`
    const p = partitionOf(id, partitions)
    if (ids[p] === undefined) {
      ids[p] = id
      found++
    }
  }
  return ids
}

/**
 * How a hub is laid out on NATS, and its creation. Every resource of hub `H` is named here:
 *
 * | resource | name |
 * |---|---|
 * | mailbox stream | `BASALT_H_MBX`, subjects `H.mbx.<p>` |
 * | commit log stream | `BASALT_H_LOG`, subjects `H.log.<p>` (fenced appends) |
 * | dead-letter stream | `BASALT_H_DLQ`, subjects `H.dlq.<p>` |
 * | offloaded activity tasks (work queue) | `BASALT_H_TASKS`, subject `H.tasks` |
 * | large values by reference (runtime/blobs.ts) | `BASALT_H_BLOBS`, subjects `H.blob.<id>.<k>` (direct gets) |
 * | state KV (snapshots, checkpoints, timers) | `basalt_H_state` |
 * | metadata KV (partition count, placement) | `basalt_H_meta` |
 * | queries to a partition owner (core NATS) | `H.q.<p>` |
 * | committed records, for watchers (core NATS) | `H.chg.<p>` |
 * | replies to a client's calls (core NATS) | `_INBOX_basalt.H.<client inbox id>` |
 */
import {
  STORAGE_FULL_HINT,
  isNoMessage,
  isNoResponders,
  isStorageFull,
  isStreamNameInUse,
  isTransient,
  isWrongLastSequence,
  permissionViolation,
} from './errors.ts'
import { checkOptionalCount, retryWithBackoff } from '../util/index.ts'
import type { NatsConnection } from '@nats-io/transport-node'
import {
  jetstream,
  jetstreamManager,
  type JetStreamManager,
  type StoredMsg,
  type StreamConfig,
} from '@nats-io/jetstream'
import { Kvm, type KV } from '@nats-io/kv'
import {
  AuthorizationError,
  BadInputError,
  BasaltError,
  ConnectionError,
  HubNotFoundError,
  StorageFullError,
  counted,
  describeValue,
} from '../../actors/index.ts'
import { decode, encode } from './codec.ts'

/** Default number of partitions of a new hub (as in the Netherite paper). */
export const DEFAULT_PARTITIONS = 32
/** Largest partition count; the count is fixed when a hub is created. */
export const MAX_PARTITIONS = 1024

/** What a hub name is: 1 to 64 letters, digits, `_` and `-` (it is part of subjects and stream names). */
export const HUB_NAME = /^[A-Za-z0-9_-]{1,64}$/
const INBOX_TOKEN = /^[A-Za-z0-9_-]{1,128}$/

/** Stored description of a hub. */
export interface HubMeta {
  v: 1
  partitions: number
  replicas: number
  created: number
}

/** Names of everything a hub owns. */
export class HubNames {
  constructor(readonly hub: string) {
    if (typeof hub !== 'string' || !HUB_NAME.test(hub)) {
      throw new BadInputError(`hub name must match ${HUB_NAME} (got ${JSON.stringify(hub) ?? String(hub)})`)
    }
  }
  get mailboxStream(): string {
    return `BASALT_${this.hub}_MBX`
  }
  get logStream(): string {
    return `BASALT_${this.hub}_LOG`
  }
  get taskStream(): string {
    return `BASALT_${this.hub}_TASKS`
  }
  /** Subject of offloaded activity tasks (a work queue every node consumes). */
  get tasks(): string {
    return `${this.hub}.tasks`
  }
  /** Stream of large values stored by reference (chunks, see runtime/blobs.ts). */
  get blobStream(): string {
    return `BASALT_${this.hub}_BLOBS`
  }
  /** Every stream of the hub, the two KV buckets' streams included. */
  get streams(): string[] {
    return [
      this.mailboxStream,
      this.logStream,
      this.deadLetterStream,
      this.taskStream,
      this.blobStream,
      `KV_${this.stateBucket}`,
      `KV_${this.metaBucket}`,
    ]
  }
  /** Subject of chunk `k` of blob `id` (`k` may be `>` for all of them). */
  blob(id: string, k: string): string {
    return `${this.hub}.blob.${id}.${k}`
  }
  get deadLetterStream(): string {
    return `BASALT_${this.hub}_DLQ`
  }
  get stateBucket(): string {
    return `basalt_${this.hub}_state`
  }
  get metaBucket(): string {
    return `basalt_${this.hub}_meta`
  }
  mailbox(p: number): string {
    return `${this.hub}.mbx.${p}`
  }
  log(p: number): string {
    return `${this.hub}.log.${p}`
  }
  deadLetter(p: number): string {
    return `${this.hub}.dlq.${p}`
  }
  query(p: number): string {
    return `${this.hub}.q.${p}`
  }
  changes(p: number): string {
    return `${this.hub}.chg.${p}`
  }
  /**
   * Subject a node publishes its telemetry sample on every second (core NATS, JSON
   * `NodeStats` of runtime/metrics/stats.ts); `nodeId` may be `*` to hear every node.
   */
  stats(nodeId: string): string {
    return `${this.hub}.stats.${nodeId}`
  }
  /**
   * Prefix of the subjects clients receive their replies on: a client's inbox is this prefix, a dot
   * and one token. Partitions publish replies to such subjects only (see {@link isReplyInbox}).
   */
  get replyInboxPrefix(): string {
    return `_INBOX_basalt.${this.hub}`
  }
  /**
   * Whether `subject` is a client inbox of this hub: {@link replyInboxPrefix}, a dot and one token
   * of letters, digits, `_` and `-`. A reply subject named by a message that is anything else (a
   * JetStream API subject, another hub's inbox, a wildcard) gets no reply.
   */
  isReplyInbox(subject: string): boolean {
    const prefix = this.replyInboxPrefix
    return (
      subject.length > prefix.length + 1 &&
      subject.startsWith(prefix) &&
      subject.charCodeAt(prefix.length) === 46 /* . */ &&
      INBOX_TOKEN.test(subject.slice(prefix.length + 1))
    )
  }
  /** The raw subject of a key of the state bucket (for fenced writes). */
  stateSubject(key: string): string {
    return `$KV.${this.stateBucket}.${key}`
  }
}

/** Options for creating a hub. */
export interface HubOptions {
  /** Partition count of a new hub; must match an existing hub's when given. Default 32. */
  partitions?: number
  /** Stream and KV replicas (3 on a NATS cluster). Default 1. */
  replicas?: number
}

/**
 * Checks {@link HubOptions}: `partitions` a whole number in 1..{@link MAX_PARTITIONS}, `replicas`
 * a whole number, 1 or more. Throws `BadInputError` naming the option (`'8'` from a config file
 * is refused, not taken for 8).
 */
export function checkHubOptions(options: HubOptions): void {
  const { partitions } = options
  if (
    partitions !== undefined &&
    (!Number.isSafeInteger(partitions) || partitions < 1 || partitions > MAX_PARTITIONS)
  ) {
    throw new BadInputError(
      `partitions must be a whole number in 1..${MAX_PARTITIONS} (got ${describeValue(partitions)})`,
    )
  }
  checkOptionalCount(options.replicas, 'replicas', 1)
}

/** An open hub: its names, metadata and the handles the runtime uses. */
export interface Hub {
  names: HubNames
  meta: HubMeta
  jsm: JetStreamManager
  state: KV
  metaKv: KV
}

const DUPLICATE_WINDOW_NS = 120 * 1e9

/** How long hub creation keeps retrying while a NATS cluster elects the leaders of new streams. */
const CREATE_DEADLINE_MS = 30_000

/**
 * Opens hub `name`, creating its streams and buckets when missing (idempotent, race-safe). On a
 * NATS cluster a stream just created answers only once its replicas have elected a leader, so
 * timeouts and "temporarily unavailable" answers are retried for up to 30 s.
 *
 * A creation that fails removes what this call created (see {@link undoCreation}), so that no
 * half-created hub stays behind, and says why: {@link AuthorizationError} when the NATS user may
 * not do a step (`cannot create hub 'H': not permitted: the NATS user may not publish to …`),
 * `StorageFullError` when the JetStream store or a limit is full, else an error with the server's
 * message (e.g. `cannot create hub 'H': maximum number of streams reached`); `cannot open hub 'H'`
 * when another process had created the hub.
 */
export async function ensureHub(nc: NatsConnection, name: string, options: HubOptions = {}): Promise<Hub> {
  const creation: Creation = { streams: [], wroteRecord: false, found: false, record: undefined }
  try {
    return await retryWithBackoff(() => ensureHubOnce(nc, name, options, creation), {
      firstDelayMs: 100,
      maxDelayMs: 2000,
      deadline: Date.now() + CREATE_DEADLINE_MS,
      retryable: (err) => (isTransient(err) || err instanceof MetaBucketGone) && !nc.isClosed(),
    })
  } catch (err) {
    if (err instanceof BasaltError) throw err // a bad name or partition count: nothing was created
    const undone = nc.isClosed() ? undefined : await undoCreation(nc, new HubNames(name), creation)
    throw creationError(name, creation.found ? 'open' : 'create', err, undone)
  }
}

/** What one {@link ensureHub} call created, across its tries, so that a failure can remove it. */
interface Creation {
  /** Streams (buckets by their streams) this call added, in order. */
  streams: string[]
  /** Whether the hub record is this call's: the hub is then its creation. */
  wroteRecord: boolean
  /** Whether the hub record was another process's: the hub existed, this call opens it. */
  found: boolean
  /** The record this call writes when the hub has none (the same one in every try). */
  record: HubMeta | undefined
}

/**
 * Removes what a failed {@link ensureHub} call created, and only that: when it wrote the hub
 * record, the streams it added and then its record (the whole bucket when it added that too);
 * when it wrote no record, only the metadata bucket it added, and only while the bucket is still
 * empty: a process creating the hub at the same time that wrote its record there keeps it (one
 * that had not yet written, or wrote in the moment between the look and the removal, finds the
 * bucket gone and starts again: see {@link MetaBucketGone}).
 * Streams it added to a hub someone else created stay: that hub uses them. Best effort: resolves
 * with the error of a removal that failed, else undefined.
 */
async function undoCreation(nc: NatsConnection, names: HubNames, creation: Creation): Promise<unknown> {
  const metaStream = `KV_${names.metaBucket}`
  try {
    const jsm = await jetstreamManager(nc, { checkAPI: false })
    if (creation.wroteRecord) {
      for (const stream of [...creation.streams].reverse()) await deleteStreamIfThere(jsm, stream)
      if (!creation.streams.includes(metaStream)) {
        await jsm.streams
          .purge(metaStream, { filter: `$KV.${names.metaBucket}.hub` })
          .catch((err: unknown) => {
            if (!isNotFound(err)) throw err
          })
      }
    } else if (creation.streams.includes(metaStream)) {
      const info = await jsm.streams.info(metaStream).catch((err: unknown) => {
        if (isNotFound(err)) return undefined
        throw err
      })
      if (info !== undefined && info.state.messages === 0) await deleteStreamIfThere(jsm, metaStream)
    }
    return undefined
  } catch (err) {
    return err
  }
}

async function deleteStreamIfThere(jsm: JetStreamManager, stream: string): Promise<void> {
  try {
    await jsm.streams.delete(stream)
  } catch (err) {
    if (!isNotFound(err)) throw err
  }
}

/** The error a failed hub creation throws: its cause named, and a removal that failed, if any. */
function creationError(name: string, verb: 'create' | 'open', err: unknown, undone: unknown): Error {
  const leftover =
    undone === undefined
      ? ''
      : ` (and what it created could not be removed: ${(undone as Error).message ?? String(undone)}; ` +
        `'basalt hub delete --hub ${name}' removes it)`
  const violation = permissionViolation(err)
  if (violation !== undefined) {
    return new AuthorizationError(
      `cannot ${verb} hub '${name}': not permitted: the NATS user may not ${violation.operation} to ` +
        `${violation.subject}; check the hub name (names are case-sensitive) and that the user has ` +
        `the node's permissions for hub '${name}' (docs/SECURITY.md)${leftover}`,
      { cause: err },
    )
  }
  const message = (err as Error | undefined)?.message ?? String(err)
  if (isStorageFull(err)) {
    return new StorageFullError(
      `cannot ${verb} hub '${name}': ${message} (${STORAGE_FULL_HINT})${leftover}`,
      {
        cause: err,
      },
    )
  }
  // (retried for 30 s first: while a cluster forms, its servers are not all known yet)
  const peers = /no suitable peers/i.test(message)
    ? ' (the NATS cluster has too few JetStream servers up for the replicas asked: give at most as many as it has)'
    : ''
  return new Error(`cannot ${verb} hub '${name}': ${message}${peers}${leftover}`, { cause: err })
}

async function ensureHubOnce(
  nc: NatsConnection,
  name: string,
  options: HubOptions,
  creation: Creation,
): Promise<Hub> {
  const names = new HubNames(name)
  checkHubOptions(options)
  const partitions = options.partitions ?? DEFAULT_PARTITIONS
  const replicas = options.replicas ?? 1
  const jsm = await managerOf(nc)
  const kvm = new Kvm(nc)
  const record = (): HubMeta => (creation.record ??= { v: 1, partitions, replicas, created: Date.now() })
  // a user who may not write the hub record (another hub's permissions) is refused before anything
  // is created: the record is written once, before the bucket is, where that finds no stream
  const metaKv = await ensureBucket(jsm, kvm, names.metaBucket, replicas, creation, () =>
    writeRecordEarly(nc, names, record()),
  )
  let meta = await readMeta(metaKv)
  if (meta === null) {
    const fresh = record()
    try {
      await metaKv.create('hub', encode(fresh))
      meta = fresh
    } catch (err) {
      if (isNoStream(err)) throw new MetaBucketGone(name)
      meta = await readMeta(metaKv) // another process created it first
      if (meta === null) throw err
    }
  }
  // the record of an earlier try whose answer was lost is this call's too
  if (creation.record !== undefined && sameRecord(meta, creation.record)) {
    creation.wroteRecord = true
    creation.found = false
  } else creation.found = true
  if (options.partitions !== undefined && options.partitions !== meta.partitions) {
    throw new BadInputError(
      `hub '${name}' has ${counted(meta.partitions, 'partition')}, fixed when it was created (asked for ${options.partitions})`,
    )
  }
  // (taken silently, an operator who asked for 3 would believe an R1 hub replicated)
  if (options.replicas !== undefined && options.replicas !== meta.replicas) {
    throw new BadInputError(
      `hub '${name}' has ${counted(meta.replicas, 'replica')}, fixed when it was created (asked for ${options.replicas})`,
    )
  }
  await ensureStream(
    jsm,
    {
      name: names.mailboxStream,
      subjects: [`${name}.mbx.*`],
      duplicate_window: DUPLICATE_WINDOW_NS,
      num_replicas: meta.replicas,
    },
    creation,
  )
  await ensureStream(
    jsm,
    {
      name: names.logStream,
      subjects: [`${name}.log.*`],
      duplicate_window: DUPLICATE_WINDOW_NS,
      num_replicas: meta.replicas,
    },
    creation,
  )
  await ensureStream(
    jsm,
    {
      name: names.taskStream,
      subjects: [names.tasks],
      retention: 'workqueue' as StreamConfig['retention'],
      duplicate_window: DUPLICATE_WINDOW_NS,
      num_replicas: meta.replicas,
    },
    creation,
  )
  await ensureStream(
    jsm,
    {
      name: names.deadLetterStream,
      subjects: [`${name}.dlq.*`],
      max_age: 7 * 24 * 3600 * 1e9,
      num_replicas: meta.replicas,
    },
    creation,
  )
  await ensureStream(
    jsm,
    {
      name: names.blobStream,
      subjects: [`${name}.blob.*.*`],
      allow_direct: true,
      duplicate_window: DUPLICATE_WINDOW_NS,
      num_replicas: meta.replicas,
    },
    creation,
  )
  const state = await ensureBucket(jsm, kvm, names.stateBucket, meta.replicas, creation)
  // a racing creation that failed removes the metadata bucket it found empty (undoCreation): in the
  // moment between its look and its removal, a record written here goes with it; write it again
  // (read from the stream leader: a replica's copy may not hold a record written a moment ago)
  const now = await latestKvEntry(jsm, names.metaBucket, 'hub').catch((err: unknown) => {
    if (isNoStream(err)) return null
    throw err
  })
  if (now === null || now.operation !== 'PUT') throw new MetaBucketGone(name)
  return { names, meta, jsm, state, metaKv }
}

/**
 * Writes `record` as the hub record (only if the hub has none) where there is no metadata bucket
 * yet: the server refuses a user who may not, and otherwise finds no stream, storing nothing; a
 * bucket a racing creator made meanwhile gets the record, as {@link ensureHubOnce} would write it.
 */
async function writeRecordEarly(nc: NatsConnection, names: HubNames, record: HubMeta): Promise<void> {
  try {
    await jetstream(nc).publish(`$KV.${names.metaBucket}.hub`, encode(record), {
      expect: { lastSubjectSequence: 0 },
    })
  } catch (err) {
    if (!isNoStream(err) && !isWrongLastSequence(err)) throw err
  }
}

/** Whether a request found no stream to answer it: a bucket not, or no longer, there. */
function isNoStream(err: unknown): boolean {
  // (a JetStream publish wraps "no responders" twice: JetStreamNotEnabled, then RequestError)
  for (let e = err, depth = 0; e instanceof Error && depth < 4; e = e.cause, depth++) {
    if (isNotFound(e) || isNoResponders(e)) return true
  }
  return false
}

/**
 * The metadata bucket vanished while {@link ensureHubOnce} created the hub: a racing creation that
 * failed removes the bucket it made while it is empty (see {@link undoCreation}), and a record
 * written here in the moment between its look and its removal goes with it. Tried again.
 */
class MetaBucketGone extends Error {
  constructor(hub: string) {
    super(`the metadata bucket of hub '${hub}' vanished while the hub was being created`)
    this.name = 'MetaBucketGone'
  }
}

function sameRecord(a: HubMeta, b: HubMeta): boolean {
  return a.created === b.created && a.partitions === b.partitions && a.replicas === b.replicas
}

/**
 * Opens KV bucket `bucket`, creating it when missing (after `beforeCreating`); a bucket it adds is
 * noted in `creation`.
 */
async function ensureBucket(
  jsm: JetStreamManager,
  kvm: Kvm,
  bucket: string,
  replicas: number,
  creation: Creation,
  beforeCreating?: () => Promise<void>,
): Promise<KV> {
  const stream = `KV_${bucket}`
  const existed = await jsm.streams.info(stream).then(
    () => true,
    (err: unknown) => {
      if (isNotFound(err)) return false
      throw err
    },
  )
  if (!existed) await beforeCreating?.()
  const kv = await kvm.create(bucket, { history: 1, replicas })
  if (!existed && !creation.streams.includes(stream)) creation.streams.push(stream)
  return kv
}

/**
 * What an operator should know about the connected nats-server for a hub with `replicas`: the
 * exactness of Basalt's guarantees does not depend on the version (2.9.10 and later; see
 * `docs/ARCHITECTURE.md`, "Fencing"), but durability against power loss and some known server
 * defects do. Returns one warning per concern (none on a current server).
 */
export function serverWarnings(version: string | undefined, replicas: number): string[] {
  const v = parseVersion(version)
  if (v === undefined)
    return [`unknown nats-server version '${version ?? ''}'; Basalt is tested on 2.9.10 and later`]
  const warnings: string[] = []
  if (compareVersions(v, [2, 9, 10]) < 0) {
    warnings.push(`nats-server ${version} is older than 2.9.10, the oldest version Basalt is tested on`)
  }
  if (compareVersions(v, [2, 10, 20]) >= 0 && compareVersions(v, [2, 10, 23]) < 0) {
    warnings.push(
      `nats-server ${version} can lose whole streams when a server process crashes (fixed in 2.10.23)`,
    )
  }
  if (compareVersions(v, [2, 10, 0]) < 0) {
    warnings.push(
      `nats-server ${version} cannot sync each write to disk (sync_interval arrived in 2.10): ` +
        `a killed server process loses nothing acknowledged, but ` +
        (replicas > 1 ? 'a power loss of a majority of servers' : 'a power loss or OS crash') +
        ' can lose recently acknowledged writes',
    )
  }
  return warnings
}

/**
 * Whether nats-server `version` replays a replicated stream's purge correctly. Before 2.9.18 it
 * did not (nats-server issue 4196, fixed by commit dee532495): a member killed (SIGKILL, OOM,
 * power loss) while a purge is still in its Raft log — a stream's log is compacted every two to
 * three minutes — applies that purge again on restart as "remove every message up to the stream's
 * last one at the time of the purge", whatever the purge's subject or sequence said. Messages the
 * purge kept, acknowledged long before, are gone from that member's copy, and from the stream once
 * it leads. Purges of one server's streams are not replayed and are always safe.
 */
export function purgesReplaySafely(version: string | undefined): boolean {
  const v = parseVersion(version)
  return v !== undefined && compareVersions(v, [2, 9, 18]) >= 0
}

function parseVersion(version: string | undefined): [number, number, number] | undefined {
  const m = /^v?(\d+)\.(\d+)\.(\d+)/.exec(version ?? '')
  return m === null ? undefined : [Number(m[1]), Number(m[2]), Number(m[3])]
}

function compareVersions(a: [number, number, number], b: [number, number, number]): number {
  return a[0] - b[0] || a[1] - b[1] || a[2] - b[2]
}

/**
 * The JetStream manager of `nc`. Its first request (`$JS.API.INFO`) finds no responder when the
 * server runs without JetStream, or the user's account has none: that is said with what to do
 * ({@link ConnectionError}), not as the client's bare "jetstream is not enabled".
 */
async function managerOf(nc: NatsConnection): Promise<JetStreamManager> {
  try {
    return await jetstreamManager(nc)
  } catch (err) {
    if ((err as { name?: unknown } | null)?.name !== 'JetStreamNotEnabled') throw err
    const server = nc.getServer()
    throw new ConnectionError(
      `JetStream is not enabled on the NATS server at nats://${server} for this user's account: ` +
        'start nats-server with -js (or a jetstream block in its configuration), and give the account jetstream: enabled',
      { cause: err },
    )
  }
}

/**
 * Opens an existing hub without creating anything; throws {@link HubNotFoundError}, and
 * {@link AuthorizationError} (the server's refusal as its cause) when the NATS user may not read
 * the hub: another hub's, or a misspelt name, under per-hub permissions.
 */
export async function openHub(nc: NatsConnection, name: string): Promise<Hub> {
  try {
    return await openHubAs(nc, name)
  } catch (err) {
    if (permissionViolation(err) === undefined) throw err
    throw new AuthorizationError(
      `the NATS user may not read hub '${name}' (${(err as Error).message}): check the hub name ` +
        "(names are case-sensitive) and that the user has this hub's permissions (docs/SECURITY.md)",
      { cause: err },
    )
  }
}

async function openHubAs(nc: NatsConnection, name: string): Promise<Hub> {
  const names = new HubNames(name)
  const jsm = await managerOf(nc)
  const kvm = new Kvm(nc)
  let metaKv: KV
  let meta: HubMeta | null
  try {
    metaKv = await kvm.open(names.metaBucket)
    meta = await readMeta(metaKv)
  } catch (err) {
    if (isNotFound(err) || /not found/i.test(String(err))) throw new HubNotFoundError(name)
    throw err
  }
  if (meta === null) throw new HubNotFoundError(name)
  const state = await kvm.open(names.stateBucket)
  return { names, meta, jsm, state, metaKv }
}

async function readMeta(kv: KV): Promise<HubMeta | null> {
  const entry = await kv.get('hub')
  if (entry === null || entry.operation !== 'PUT') return null
  return decode(entry.value, 'hub metadata') as HubMeta
}

async function ensureStream(
  jsm: JetStreamManager,
  config: Partial<StreamConfig> & { name: string },
  creation: Creation,
) {
  try {
    await jsm.streams.info(config.name)
  } catch (err) {
    if (!isNotFound(err)) throw err
    try {
      await jsm.streams.add(config)
      if (!creation.streams.includes(config.name)) creation.streams.push(config.name)
    } catch (addErr) {
      // a stream with that name exists already (created concurrently)
      if (!isStreamNameInUse(addErr)) throw addErr
    }
  }
}

/** What became of a hub a process opened: still there, deleted, or deleted and created again. */
export type HubFate = 'same' | 'deleted' | 'recreated'

/**
 * What became of `hub` since it was opened (`basalt hub delete --force` under running nodes):
 * its record read from the leader of the metadata stream, told apart by its creation time; a hub
 * found gone is read again after `confirmAfterMs`. Throws when NATS cannot answer (a server down):
 * that says nothing about the hub.
 */
export async function hubFate(hub: Hub, confirmAfterMs = 1000): Promise<HubFate> {
  return (await hubNow(hub, confirmAfterMs)).fate
}

/**
 * {@link hubFate}, with the record of the hub there now (null when there is none): a hub created
 * again may have another partition count.
 */
export async function hubNow(
  hub: Hub,
  confirmAfterMs = 1000,
): Promise<{ fate: HubFate; now: HubMeta | null }> {
  const first = await readHubRecord(hub)
  const fate = fateOfRecord(hub.meta, first)
  if (fate === 'same' || confirmAfterMs <= 0) return { fate, now: first }
  // asked again a moment later: a cluster recovering from a restart must not pass for a deletion
  await new Promise((resolve) => setTimeout(resolve, confirmAfterMs))
  const again = await readHubRecord(hub)
  return { fate: fateOfRecord(hub.meta, again), now: again }
}

/**
 * The record of hub `hub.names.hub` now there, read from the leader of its metadata stream (a
 * replica may lag), or null when there is none (the hub was deleted). Throws when NATS cannot
 * answer.
 */
export async function readHubRecord(hub: Pick<Hub, 'jsm' | 'names'>): Promise<HubMeta | null> {
  let entry: LatestEntry | null
  try {
    entry = await latestKvEntry(hub.jsm, hub.names.metaBucket, 'hub')
  } catch (err) {
    if (isNotFound(err)) return null
    throw err
  }
  return entry?.operation === 'PUT' ? (decode(entry.value, 'hub metadata') as HubMeta) : null
}

/** What the hub record `value` (null: none) says of the hub opened with `meta`. */
export function fateOf(meta: HubMeta, value: Uint8Array | null): HubFate {
  return fateOfRecord(meta, value === null ? null : (decode(value, 'hub metadata') as HubMeta))
}

/** What the hub record `now` (null: none) says of the hub opened with `meta`. */
export function fateOfRecord(meta: HubMeta, now: HubMeta | null): HubFate {
  if (now === null) return 'deleted'
  return now.created === meta.created ? 'same' : 'recreated'
}

/** Whether a JetStream request failed because the stream does not exist (API error 10059). */
export function isStreamNotFound(err: unknown): boolean {
  return isNotFound(err)
}

function isNotFound(err: unknown): boolean {
  const code = (err as { code?: number }).code
  return code === 10059 || (err as Error).name === 'StreamNotFoundError'
}

/**
 * Keys of KV bucket `bucket` matching `filter` (a subject filter such as `t.3.>`) that hold any
 * message — deleted keys included — listed by one stream-info request. No consumer is created, so
 * this works while a NATS cluster cannot place new consumers (a server down), and it ends even
 * while the bucket keeps changing. Callers read each key for its value.
 */
export async function bucketKeys(jsm: JetStreamManager, bucket: string, filter = '>'): Promise<string[]> {
  const prefix = `$KV.${bucket}.`
  const info = await jsm.streams.info(`KV_${bucket}`, { subjects_filter: prefix + filter })
  return Object.keys(info.state.subjects ?? {}).map((subject) => subject.slice(prefix.length))
}

/** Deletes every stream and bucket of a hub (for tests and `basalt hub delete`). */
export async function deleteHub(nc: NatsConnection, name: string): Promise<void> {
  const names = new HubNames(name)
  const jsm = await jetstreamManager(nc)
  for (const stream of names.streams) {
    try {
      await jsm.streams.delete(stream)
    } catch (err) {
      if (!isNotFound(err)) throw err
    }
  }
}

/** A KV key's latest entry as the stream leader holds it (see {@link latestKvEntry}). */
export interface LatestEntry {
  value: Uint8Array
  /** The entry's stream sequence: the revision a compare-and-set must name. */
  revision: number
  operation: 'PUT' | 'DEL' | 'PURGE'
}

/**
 * The latest entry of `key` in KV bucket `bucket`, read from the stream leader (the message-get
 * API, not a direct get), or null when the key has none. A KV watch, and a direct get, may be
 * served by a replica whose copy is behind or, on a nats-server 2.9 cluster after a restart,
 * differs: a compare-and-set built on such a revision fails for ever. This is the revision the
 * leader checks.
 */
export async function latestKvEntry(
  jsm: JetStreamManager,
  bucket: string,
  key: string,
): Promise<LatestEntry | null> {
  const msg = await lastOnSubject(jsm, `KV_${bucket}`, `$KV.${bucket}.${key}`)
  if (msg === null) return null
  const op = msg.header?.get('KV-Operation')
  return { value: msg.data, revision: msg.seq, operation: op === 'DEL' || op === 'PURGE' ? op : 'PUT' }
}

/** The last message on `subject` in `stream`, answered by the stream leader (null: none). */
export async function lastOnSubject(
  jsm: JetStreamManager,
  stream: string,
  subject: string,
): Promise<StoredMsg | null> {
  try {
    return await jsm.streams.getMessage(stream, { last_by_subj: subject })
  } catch (err) {
    if (isNoMessage(err)) return null
    throw err
  }
}

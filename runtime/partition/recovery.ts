/**
 * Recovery of a partition's state by a new owner (see docs/ARCHITECTURE.md, "Snapshots and
 * recovery"): (1) claim the checkpoint, which fences every older owner's checkpoint writes, and
 * start from it; (2) load the replies the previous owner sent lately and every eagerly held item
 * (timers, locks, pending activities); (3) replay the log after the checkpoint — records carry
 * outputs, so no user code runs — applying only the records the log fence accepts; (4) append a
 * claim record fenced on the last sequence read, replaying and retrying if a stale owner appended
 * meanwhile. Replay also counts the owners that ended without committing (crash-count.ts). The partition applies what is read through {@link RecoveryPort}.
 */
import { FencedError } from '../../actors/index.ts'
import {
  WIRE_VERSION,
  type ActorMessage,
  type CommitRecord,
  type MailboxPosition,
  type Reply,
} from '../../actors/wire/index.ts'
import {
  decode,
  encode,
  isWrongLastSequence,
  ItemKind,
  itemKey,
  partitionFilter,
  type Checkpoint,
  type PartitionStorage,
} from '../nats/index.ts'
import { during, type Logger } from '../util/index.ts'
import type { CrashCount } from './crash-count.ts'
import type { LogWriter } from './log-fence.ts'
import type { RepliesEntry } from './recent-replies.ts'
import type { SnapshotState } from './snapshot.ts'

/** What recovery reads from, and how it applies what it reads to the partition. */
export interface RecoveryPort {
  readonly p: number
  readonly epoch: number
  /** This owner's writer identity (epoch and token). */
  readonly writer: LogWriter
  readonly logger: Logger
  readonly snap: Pick<SnapshotState, 'claim' | 'read' | 'loadItems' | 'committedN'>
  readonly storage: Pick<PartitionStorage, 'lastLogSeq' | 'readLog' | 'append' | 'logAfter'>
  /** Log sequence of the last record read so far. */
  lastLogSeq(): number
  /** Mailbox position after the records applied so far. */
  position(): MailboxPosition
  /** Local messages queued after the records applied so far. */
  local(): ActorMessage[]
  /** Starts from a checkpoint. */
  restoreCheckpoint(ckpt: Checkpoint): void
  /** Starts the recent replies from the previous owner's. */
  restoreReplies(entries: RepliesEntry[]): void
  /** Rebuilds an eagerly held item (timer, lock, pending activity). */
  replayItem(key: string, value: Uint8Array | null): void
  /** Applies a logged record if the log fence accepts it; returns whether it did. */
  replayIfOwned(rec: CommitRecord, seq: number): boolean
  /** Token of this node's previous run of the partition, if it stopped with an internal failure. */
  readonly failedRun: number | undefined
  /** Counts the claims and probes of the replayed records (crash-count.ts). */
  readonly crashes: CrashCount
  /** Applies this owner's own claim record, appended at `seq`: its writer now owns the log. */
  claimed(claim: CommitRecord, seq: number): void
}

/** The kinds of item recovery loads whole, with the names a failure to read them is given. */
const RECOVERED_ITEMS = [
  [ItemKind.Timer, 'timer'],
  [ItemKind.Lock, 'lock'],
  [ItemKind.Activity, 'activity'],
] as const

/**
 * Recovers the state of a partition (see the module comment). Resolves with the replies of the
 * replayed records, which may not have left before the crash: the caller sends them again.
 * Throws {@link FencedError} when a newer owner holds the checkpoint or the log.
 */
export async function recoverState(port: RecoveryPort): Promise<Array<[string, Reply[]]>> {
  const { epoch, logger, p, snap, storage } = port
  const { ckpt } = await during('claiming the checkpoint', snap.claim(epoch, p))
  if (ckpt !== null) port.restoreCheckpoint(ckpt)
  // replies the previous owner sent lately (its records may be below the checkpoint now): in the
  // segments the checkpoint lists, or in one item when an older version wrote the checkpoint
  const keys =
    ckpt?.rs === undefined ? [itemKey.replies(p)] : ckpt.rs.map(([slot]) => itemKey.repliesSegment(p, slot))
  const entries: RepliesEntry[] = []
  for (const kept of await during(
    'reading the recent replies',
    Promise.all(keys.map((key) => snap.read(key))),
  )) {
    if (kept === null) continue
    try {
      entries.push(...(decode(kept, 'recent replies') as RepliesEntry[]))
    } catch (err) {
      logger.warn('recent replies not restored', { p, error: String(err) })
    }
  }
  if (entries.length > 0) port.restoreReplies(entries)
  for (const [kind, name] of RECOVERED_ITEMS) {
    const items = await during(`reading the ${name} items`, snap.loadItems(partitionFilter(kind, p)))
    for (const [key, value] of items) port.replayItem(key, value)
  }
  const replies: Array<[string, Reply[]]> = []
  const replayLogged = (rec: CommitRecord, seq: number): void => {
    if (rec.e > epoch) throw new FencedError(p, `log has epoch ${rec.e}, ours is ${epoch}`)
    if (!port.replayIfOwned(rec, seq)) return
    port.crashes.add(rec)
    for (const r of rec.rep) replies.push(r)
  }
  // Replay the log tail, then append a claim record fenced on the tail; if someone appended in
  // between (a stale owner finishing a commit), replay that too and try again.
  for (;;) {
    const tail = await during("reading the log's last sequence", storage.lastLogSeq())
    await during('reading the log', storage.readLog(port.lastLogSeq(), tail, replayLogged))
    const claim: CommitRecord = {
      v: WIRE_VERSION,
      n: snap.committedN + 1,
      e: epoch,
      o: port.writer.o!,
      claim: 1,
      ...(port.failedRun === undefined ? {} : { fo: port.failedRun }),
      pos: port.position(),
      w: [],
      dc: [],
      dp: [],
      out: [],
      rep: [],
      lq: port.local(),
    }
    let seq: number
    try {
      seq = await during(
        'appending the claim record',
        storage.append(encode(claim), claim.n, port.writer, port.lastLogSeq()),
      )
    } catch (err) {
      if (!isWrongLastSequence(err)) throw err
      continue
    }
    // On a NATS cluster a stale owner's append can land between the tail we read and our claim
    // (the leader checks the expected sequence before proposing): it came first, so it counts.
    for (const { seq: s, rec } of await during(
      'reading the log after the claim',
      storage.logAfter(port.lastLogSeq(), seq),
    )) {
      if (s !== seq) replayLogged(rec, s)
    }
    port.claimed(claim, seq)
    return replies
  }
}

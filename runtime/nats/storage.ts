/**
 * A partition's durable storage on JetStream: the fenced commit log, the checkpoint, and the
 * snapshot items (entity states, timers) in the state KV bucket. Every write that could race with a
 * newer owner is fenced: log appends by expected last subject sequence and a message id unique to
 * the writer (epoch and token: a reused id would be acknowledged as a duplicate before the sequence
 * is checked), item and checkpoint writes by expected revision and the writer's epoch in a header
 * that a later writer checks (see `SnapshotState`). On a replicated hub every read goes to the
 * stream leader: a replica still catching up after a restart could answer with an older value.
 */
import type { NatsConnection } from '@nats-io/transport-node'
import {
  jetstream,
  DeliverPolicy,
  type JetStreamClient,
  type JetStreamManager,
  type JsMsg,
  type MsgRequest,
  type OrderedConsumerOptions,
  type StoredMsg,
} from '@nats-io/jetstream'
import { TimeoutError } from '../../actors/index.ts'
import { fastJetStream, type FastJetStream } from './fast-js.ts'
import type { CommitRecord, LogWriter, MailboxPosition, ActorMessage } from '../../actors/wire/index.ts'
import { isConnectionLost, isNoMessage, isUnavailable, LeanPublishError } from './errors.ts'
import { retryWithBackoff } from '../util/index.ts'
import { JetStreamApiCodes } from '@nats-io/jetstream'
import { itemKey } from './item-keys.ts'
import { decode, decodeEnvelope, encode } from './codec.ts'
import { bucketKeys, lastOnSubject, type Hub } from './hub.ts'

/** How long a state read waits for a direct get before asking the stream leader instead. */
const DIRECT_GET_PATIENCE_MS = 2000

/** How long a read through a consumer (the log at recovery, stored items) waits for its next message. */
const READ_IDLE_MS = 10_000

/** How long a commit append keeps retrying while no stream leader answers. */
const APPEND_RETRY_MS = 10_000

/** Header of every item and checkpoint write: the epoch of the owner that wrote it. */
const EPOCH_HEADER = 'Basalt-Epoch'

/** How long a log read waits for the stream leader to show a record it acknowledged. */
const LOG_SETTLE_MS = 5000

/** What a checkpoint records: everything outside the items needed to resume after `n`. */
export interface Checkpoint {
  v: 1
  /** Epoch of the owner that wrote (or claimed) it. */
  e: number
  /** Owner of the log at record `n`: epoch (absent in older checkpoints: unknown)... */
  le?: number
  /** ...and token (see `runtime/partition/log-fence.ts`). */
  lo?: number
  /** Last record number covered. */
  n: number
  /** Log stream sequence of that record (0: none). */
  logSeq: number
  /** Mailbox position after that record. */
  pos: MailboxPosition
  /** Client dedup state: client → [last batch number, last seen ms]. */
  dc: Array<[string, number, number, number?]>
  /** Partition dedup state: origin partition → last record number. */
  dp: Array<[number, number, number?]>
  /** Unprocessed messages between actors of the partition. */
  lq: ActorMessage[]
  /** Messages to other partitions not yet confirmed as delivered: [destination, n, messages]. */
  outbox: Array<[number, number, Uint8Array[]]>
  /**
   * The stored segments of the replies sent lately (`rep.<p>.<slot>`), oldest first: [slot, when
   * the newest reply in it was sent (ms), its size]. Absent in checkpoints of older versions, whose
   * replies are all in the one item `rep.<p>`.
   */
  rs?: Array<[slot: number, newest: number, bytes: number]>
}

/**
 * An item read from the state bucket: its value (null when absent or deleted), revision, and the
 * epoch of the owner that wrote it (0 when written without one).
 */
export interface StoredItem {
  value: Uint8Array | null
  rev: number
  epoch: number
}

/** A record read back from the log, with its stream sequence. */
export interface LoggedRecord {
  seq: number
  rec: CommitRecord
  data: Uint8Array
}

/**
 * How long the creation of an ordered consumer (a partition's mailbox reader, a stream read at
 * recovery) may take on a replicated hub before it is tried again, instead of the client library's
 * 5 s. Right after a cluster member went down, nats-server 2.9.10 may place the new consumer on
 * that member and never answer: measured with one of three servers killed, mailbox consumer
 * creations timed out up to four times in a row, 5 s each, before one landed on a live member. A
 * creation on a live member takes milliseconds.
 */
const REPLICATED_CONSUMER_TIMEOUT_MS = 2_000

/** Storage of one partition. */
export class PartitionStorage {
  readonly js: JetStreamClient
  readonly fast: FastJetStream
  /** Whether the hub's streams are replicated (reads then go to the stream leader). */
  readonly replicated: boolean
  /**
   * Whether this partition purges its own subjects of the log and the mailbox after a snapshot
   * ({@link truncateLog}, {@link truncateMailbox}): only on one server, and only when the hub's
   * streams are not cut whole from below (`stream-trim.ts`).
   */
  readonly trimsOwnSubjects: boolean
  constructor(
    readonly nc: NatsConnection,
    readonly hub: Hub,
    readonly p: number,
    /** The hub's streams are cut whole from below by one node (`stream-trim.ts`). */
    cutWhole = false,
  ) {
    this.replicated = hub.meta.replicas > 1
    this.trimsOwnSubjects = !this.replicated && !cutWhole
    this.js = jetstream(nc, this.replicated ? { timeout: REPLICATED_CONSUMER_TIMEOUT_MS } : {})
    this.fast = fastJetStream(nc)
  }

  get #ckptKey(): string {
    return itemKey.checkpoint(this.p)
  }

  /** The state bucket's stream. */
  get #stateStream(): string {
    return `KV_${this.hub.names.stateBucket}`
  }

  /** Reads the checkpoint (null when none) with its revision. */
  async readCheckpoint(): Promise<{ ckpt: Checkpoint | null; rev: number }> {
    const { value, rev } = await this.readItem(this.#ckptKey)
    if (value === null) return { ckpt: null, rev }
    return { ckpt: decode(value, `checkpoint of partition ${this.p}`) as Checkpoint, rev }
  }

  /**
   * The first checkpoint stored after revision `rev` (read from the stream leader), or null when
   * none was: see `SnapshotState.claim`, which asks it once its own write was acknowledged.
   */
  async readCheckpointAfter(rev: number): Promise<{ ckpt: Checkpoint | null; rev: number } | null> {
    const subject = this.hub.names.stateSubject(this.#ckptKey)
    const msg = await nextOnSubject(this.hub.jsm, this.#stateStream, subject, rev + 1)
    if (msg === null) return null
    if (isDeletion(msg.header?.get('KV-Operation'))) return { ckpt: null, rev: msg.seq }
    return { ckpt: decode(msg.data, `checkpoint of partition ${this.p}`) as Checkpoint, rev: msg.seq }
  }

  /** Writes the checkpoint if its revision is still `rev`; returns the new revision. */
  async writeCheckpoint(ckpt: Checkpoint, rev: number): Promise<number> {
    const written = await this.writeItem(this.#ckptKey, encode(ckpt), rev, ckpt.e)
    this.#ownCheckpointRev = Math.max(this.#ownCheckpointRev, written)
    return written
  }

  /** The revision of the latest checkpoint this storage wrote (0: none yet): see {@link #leaderIsCurrent}. */
  #ownCheckpointRev = 0
  /** A check of the state stream's leader under way, shared by the reads that wait for it. */
  #checkingLeader: Promise<void> | undefined

  /**
   * On a replicated hub, before an item is read from the state stream's leader: that leader has
   * applied this owner's latest checkpoint write. nats-server before 2.11 lets a leader elected
   * moments ago answer reads before it has applied the writes committed before its election, so a
   * read could return an item's older value, or none, and the partition would go on from it. Only
   * this partition's owners write its items, and every earlier owner's writes precede this owner's
   * claim of the checkpoint; a leader that shows that claim (or a later checkpoint) has applied
   * them all. Asked before each read (reads waiting at once share one check); a leader that does
   * not show it yet is asked again every 20 ms, for at most {@link LOG_SETTLE_MS}.
   */
  async #leaderIsCurrent(): Promise<void> {
    const rev = this.#ownCheckpointRev
    if (!this.replicated || rev === 0) return
    this.#checkingLeader ??= (async () => {
      const subject = this.hub.names.stateSubject(this.#ckptKey)
      const deadline = Date.now() + LOG_SETTLE_MS
      while ((await nextOnSubject(this.hub.jsm, this.#stateStream, subject, rev)) === null) {
        if (Date.now() > deadline)
          throw new TimeoutError(
            `state of partition ${this.p}: the stream leader does not show checkpoint revision ${rev} yet`,
          )
        await new Promise((r) => setTimeout(r, 20))
      }
    })().finally(() => (this.#checkingLeader = undefined))
    return this.#checkingLeader
  }

  /** Reads one item of the state bucket (from the stream leader on a replicated hub). */
  async readItem(key: string): Promise<StoredItem> {
    const stream = this.#stateStream
    const subject = this.hub.names.stateSubject(key)
    if (this.replicated) return this.#readItemFromLeader(stream, subject)
    // A direct get may go unanswered for a while on a NATS cluster that lost a server; the
    // stream leader's own get API answers then.
    const direct = this.fast.lastBySubject(stream, subject)
    let timer: NodeJS.Timeout | undefined
    const slow = new Promise<'slow'>(
      (resolve) => (timer = setTimeout(() => resolve('slow'), DIRECT_GET_PATIENCE_MS)),
    )
    const got = await Promise.race([direct, slow]).finally(() => clearTimeout(timer))
    if (got === 'slow') {
      direct.catch(() => {})
      return this.#readItemFromLeader(stream, subject)
    }
    if (got === null) return { value: null, rev: 0, epoch: 0 }
    return {
      value: isDeletion(got.operation) ? null : got.data,
      rev: got.seq,
      epoch: epochOf(got.headers?.get(EPOCH_HEADER)),
    }
  }

  async #readItemFromLeader(stream: string, subject: string): Promise<StoredItem> {
    await this.#leaderIsCurrent()
    const msg = await this.#lastMessage(stream, subject)
    if (msg === null) return { value: null, rev: 0, epoch: 0 }
    return {
      value: isDeletion(msg.header?.get('KV-Operation')) ? null : msg.data,
      rev: msg.seq,
      epoch: epochOf(msg.header?.get(EPOCH_HEADER)),
    }
  }

  /**
   * Writes (or, for null, deletes) an item if its revision is still `rev` (0: never written),
   * marked with the writer's `epoch`. Returns the new revision; throws a fencing rejection when
   * someone else wrote it meanwhile.
   */
  async writeItem(key: string, value: Uint8Array | null, rev: number, epoch: number): Promise<number> {
    const headers: Record<string, string> = { [EPOCH_HEADER]: String(epoch) }
    if (value === null) headers['KV-Operation'] = 'DEL'
    return this.fast.publish(this.hub.names.stateSubject(key), value ?? new Uint8Array(0), {
      expectLastSubjectSeq: rev,
      headers,
    })
  }

  /**
   * Keys of the state bucket matching `filter` (such as `t.3.>`) that have any message, deleted
   * ones included, listed by one stream-info request: no consumer is created, so this works while
   * a NATS cluster cannot place new consumers (a server down). Callers read each key anyway.
   */
  async listStoredKeys(filter: string): Promise<string[]> {
    await this.#leaderIsCurrent()
    return bucketKeys(this.hub.jsm, this.hub.names.stateBucket, filter)
  }

  /** Keys of the state bucket under `prefix` (a subject filter such as `t.3.>`), live ones only. */
  async listKeys(filter: string): Promise<string[]> {
    const keys: string[] = []
    const it = await this.hub.state.keys(filter)
    for await (const key of it) keys.push(key)
    return keys
  }

  /**
   * The current values of the state bucket's items matching a subject filter (deleted ones left
   * out), delivered by one ordered consumer (last message per subject) instead of one get per key.
   */
  async readItems(filter: string): Promise<Array<[key: string, value: Uint8Array]>> {
    const bucket = this.hub.names.stateBucket
    const prefix = `$KV.${bucket}.`
    const subjects = (await bucketKeys(this.hub.jsm, bucket, filter)).length
    if (subjects === 0) return []
    const out: Array<[string, Uint8Array]> = []
    let received = 0
    const done = await this.#readStream(
      `KV_${bucket}`,
      { filter_subjects: prefix + filter, deliver_policy: DeliverPolicy.LastPerSubject },
      512,
      (m) => {
        if (!isDeletion(m.headers?.get('KV-Operation'))) out.push([m.subject.slice(prefix.length), m.data])
        // every subject listed has come (writes that keep arriving need not be waited for)
        return m.info.pending === 0 || ++received >= subjects
      },
    )
    if (!done) throw new TimeoutError(`state items ${filter}: nothing delivered for ${READ_IDLE_MS} ms`)
    return out
  }

  /**
   * Appends commit record `n` of `writer`, fenced on the log's last sequence for this partition
   * (`lastSeq`). Resolves with its stream sequence; throws a fencing rejection when the log moved
   * on. The message id is unique to the writer, and a duplicate answer counts only when the stored
   * message is this very record (a retry of an append that did land).
   */
  async append(record: Uint8Array, n: number, writer: LogWriter, lastSeq: number): Promise<number> {
    const msgID = `${this.hub.names.hub}.${this.p}.${writer.e}.${writer.o ?? 0}.${n}`
    const options = { msgID, expectLastSubjectSeq: lastSeq }
    // While a NATS cluster elects a new leader for the log (a server went down), appends get "no
    // responders": try again for a while. An append whose answer was lost with the connection is
    // tried again too: a repeat of one that was stored is answered as a duplicate (one server) or
    // refused on the expected sequence (a cluster; the commit log then finds its own record).
    return retryWithBackoff(
      async () => {
        const ack = await this.fast.publishAck(this.hub.names.log(this.p), record, options)
        if (ack.duplicate && !(await this.#holds(ack.seq, record))) {
          throw new LeanPublishError(
            `append of record ${n} of partition ${this.p}: message id ${msgID} names another record (wrong last sequence)`,
            JetStreamApiCodes.StreamWrongLastSequence,
          )
        }
        return ack.seq
      },
      {
        firstDelayMs: 50,
        maxDelayMs: 1000,
        deadline: Date.now() + APPEND_RETRY_MS,
        retryable: (err) => isUnavailable(err) || isConnectionLost(err),
      },
    )
  }

  /** Whether the log message at `seq` is exactly `record` (asked of the stream leader). */
  async #holds(seq: number, record: Uint8Array): Promise<boolean> {
    const msg = await this.hub.jsm.streams.getMessage(this.hub.names.logStream, { seq })
    return msg !== null && msg.subject === this.hub.names.log(this.p) && sameBytes(msg.data, record)
  }

  /**
   * This partition's log records with sequence in `(afterSeq, upToSeq]`, read from the stream
   * leader one by one (for the few records around an append, not for replay). With `upToSeq`
   * given — a record this process appended — waits (up to {@link LOG_SETTLE_MS}) until the leader
   * shows it; without, reads to the end of the log.
   */
  async logAfter(afterSeq: number, upToSeq?: number): Promise<LoggedRecord[]> {
    const out: LoggedRecord[] = []
    const subject = this.hub.names.log(this.p)
    const deadline = Date.now() + LOG_SETTLE_MS
    let from = afterSeq + 1
    for (;;) {
      const msg = await nextOnSubject(this.hub.jsm, this.hub.names.logStream, subject, from)
      if (msg === null) {
        if (upToSeq === undefined) return out
        if (Date.now() > deadline) {
          throw new TimeoutError(
            `log of partition ${this.p}: the stream leader does not show record ${upToSeq}`,
          )
        }
        await new Promise((r) => setTimeout(r, 20))
        continue
      }
      if (upToSeq !== undefined && msg.seq > upToSeq) return out
      const rec = decodeEnvelope(msg.data, `commit record ${msg.seq} of partition ${this.p}`)
      out.push({ seq: msg.seq, rec: rec as unknown as CommitRecord, data: msg.data })
      if (msg.seq === upToSeq) return out
      from = msg.seq + 1
    }
  }

  /**
   * The messages on this partition's mailbox subject from sequence `fromSeq` on, up to and
   * including the first at or past `throughSeq`, as the stream leader has them, one message-get
   * each (what a mailbox reader on a replicated hub queues: see `runtime/partition/mailbox.ts`).
   */
  async mailboxBetween(
    fromSeq: number,
    throughSeq: number,
  ): Promise<Array<{ seq: number; data: Uint8Array }>> {
    const out: Array<{ seq: number; data: Uint8Array }> = []
    const subject = this.hub.names.mailbox(this.p)
    for (let from = fromSeq; from <= throughSeq;) {
      const msg = await nextOnSubject(this.hub.jsm, this.hub.names.mailboxStream, subject, from)
      if (msg === null) break
      out.push({ seq: msg.seq, data: msg.data })
      from = msg.seq + 1
    }
    return out
  }

  /** The stream sequence of the last message on this partition's mailbox subject (0: none). */
  async lastMailboxSeq(): Promise<number> {
    return this.#lastSeqOf(this.hub.names.mailboxStream, this.hub.names.mailbox(this.p))
  }

  /** The stream sequence of the last record in this partition's log (0: empty). */
  async lastLogSeq(): Promise<number> {
    return this.#lastSeqOf(this.hub.names.logStream, this.hub.names.log(this.p))
  }

  async #lastSeqOf(stream: string, subject: string): Promise<number> {
    return (await this.#lastMessage(stream, subject))?.seq ?? 0
  }

  /** The last message on `subject` in `stream`, answered by the stream leader (null: none). */
  #lastMessage(stream: string, subject: string): Promise<StoredMsg | null> {
    return lastOnSubject(this.hub.jsm, stream, subject)
  }

  /** Reads the log records with sequence in `(afterSeq, upToSeq]`, in order. */
  async readLog(afterSeq: number, upToSeq: number, onRecord: (rec: CommitRecord, seq: number) => void) {
    if (upToSeq <= afterSeq) return
    if (this.replicated) {
      // A consumer may run on a replica still catching up, which skips the records it does not
      // have yet: on a replicated hub recovery reads the log from the stream leader, one by one.
      for (const { seq, rec } of await this.logAfter(afterSeq, upToSeq)) onRecord(rec, seq)
      return
    }
    let last = afterSeq
    await this.#readStream(
      this.hub.names.logStream,
      {
        filter_subjects: this.hub.names.log(this.p),
        deliver_policy: DeliverPolicy.StartSequence,
        opt_start_seq: afterSeq + 1,
      },
      256,
      (m) => {
        const rec = decodeEnvelope(m.data, `commit record ${m.seq} of partition ${this.p}`)
        onRecord(rec as unknown as CommitRecord, m.seq)
        last = m.seq
        return m.seq >= upToSeq
      },
    )
    if (last < upToSeq) {
      throw new TimeoutError(
        `log of partition ${this.p}: nothing after sequence ${last} for ${READ_IDLE_MS} ms (reading up to ${upToSeq})`,
      )
    }
  }

  /**
   * Reads a stream through an ordered consumer until `onMessage` says it is done (true returned),
   * or until nothing arrived for {@link READ_IDLE_MS} (false returned). A consumer that cannot be
   * (re)created — a NATS cluster member down — delivers nothing and raises nothing; giving up
   * after a quiet spell lets the caller fail and be retried instead of hanging for good.
   */
  async #readStream(
    stream: string,
    config: Partial<OrderedConsumerOptions>,
    batch: number,
    onMessage: (m: JsMsg) => boolean,
  ): Promise<boolean> {
    const consumer = await this.js.consumers.get(stream, config)
    const messages = await consumer.consume({ max_messages: batch })
    let idle: NodeJS.Timeout | undefined
    const arm = () => {
      clearTimeout(idle)
      idle = setTimeout(() => void messages.close(), READ_IDLE_MS)
    }
    arm()
    try {
      for await (const m of messages) {
        arm()
        if (onMessage(m)) return true
      }
      return false
    } finally {
      clearTimeout(idle)
      await messages.close()
    }
  }

  /**
   * Removes log records below `seq` (the record at `seq` is kept: fencing needs it) — on one server
   * whose streams are not cut whole ({@link trimsOwnSubjects}), like {@link truncateMailbox} and for
   * the same reason: on a replicated hub, nats-server before 2.9.18 replays such a purge after a
   * member's crash as a purge of the whole stream up to its end (`purgesReplaySafely` in `hub.ts`;
   * chaos seed 9105 found the log leader empty after a restart: every append then failed its
   * expected-last-sequence check and every partition stopped). One server's log is cut whole from
   * below by default (`stream-trim.ts`), since a purge with a subject walks every message of the
   * stream from the subject's first one.
   */
  async truncateLog(seq: number): Promise<void> {
    if (seq <= 1 || !this.trimsOwnSubjects) return
    await this.hub.jsm.streams.purge(this.hub.names.logStream, { filter: this.hub.names.log(this.p), seq })
  }

  /**
   * Removes mailbox messages below `seq` — on one server whose streams are not cut whole only
   * ({@link trimsOwnSubjects}). A replicated hub's mailbox is not trimmed per partition: nats-server
   * before 2.9.18 replays such a purge after a member's crash as a purge of every message up to the
   * stream's end (`purgesReplaySafely` in `hub.ts`), which left that member's copy without other
   * partitions' acknowledged messages, and a partition that later read from it as leader lost them
   * (chaos seed 838595).
   *
   * The last processed message (`seq - 1`) is kept, so that the mailbox stream is never empty once
   * used: nats-server 2.9.10, killed (SIGKILL) twice while a stream it restored was empty,
   * restarted that stream's sequence from 1, below the positions the partitions had committed, so
   * new messages were taken for old ones — acknowledged signals were skipped and partitions served
   * nothing. A stream whose last message is kept restores its sequence from that message.
   */
  async truncateMailbox(seq: number): Promise<void> {
    if (seq <= 2 || !this.trimsOwnSubjects) return
    await this.hub.jsm.streams.purge(this.hub.names.mailboxStream, {
      filter: this.hub.names.mailbox(this.p),
      seq: seq - 1,
    })
  }

  /**
   * Moves a message to the dead-letter stream with the reason: undecodable mailbox bytes, or (with
   * `idx`) one message of a mailbox envelope (undecodable, or for another partition) — both
   * deduplicated by their mailbox sequence — or one decoded message that cannot be applied (`seq`
   * undefined: not deduplicated, so a re-run after a crash may store it twice).
   */
  async deadLetter(seq: number | undefined, data: Uint8Array, reason: string, idx?: number): Promise<void> {
    const headers: Record<string, string> = {
      'Basalt-Reason': reason.slice(0, 1000).replace(/[\r\n]/g, ' '),
      'Basalt-Partition': String(this.p),
    }
    if (idx !== undefined) headers['Basalt-Message-Index'] = String(idx)
    if (seq === undefined) {
      await this.fast.publish(this.hub.names.deadLetter(this.p), data, { headers })
      return
    }
    headers['Basalt-Mailbox-Seq'] = String(seq)
    await this.fast.publish(this.hub.names.deadLetter(this.p), data, {
      msgID: `dlq.${this.p}.${seq}.${idx === undefined ? '' : `${idx}.`}${data.length}`,
      headers,
    })
  }
}

/**
 * The first message on `subject` (a filter; wildcards allowed) in `stream` at or after `seq`, as
 * the stream leader has it (its message-get API); null when there is none.
 */
export async function nextOnSubject(
  jsm: JetStreamManager,
  stream: string,
  subject: string,
  seq: number,
): Promise<StoredMsg | null> {
  // (the server takes `next_by_subj` on its message-get API since 2.9; the client's type lacks it)
  const request = { seq, next_by_subj: subject } as unknown as MsgRequest
  try {
    return await jsm.streams.getMessage(stream, request)
  } catch (err) {
    if (isNoMessage(err)) return null
    throw err
  }
}

function epochOf(header: string | undefined): number {
  const epoch = Number(header)
  return header === undefined || !Number.isFinite(epoch) ? 0 : epoch
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && Buffer.compare(a, b) === 0
}

/** Whether a KV operation (the `KV-Operation` header) marks the item deleted. */
function isDeletion(op: string | undefined): boolean {
  return op === 'DEL' || op === 'PURGE'
}

/**
 * Trimming the hub's shared mailbox and log streams: each stream is cut whole from below, one purge
 * without a subject up to the lowest sequence some partition may still need, computed from every
 * partition's checkpoint and asked of the stream leader. One node does it (the one running
 * partition 0, see `runtime/node/node.ts`), every `streamTrimIntervalMs`: by default on one server
 * only; on a replicated hub when asked, and only through nats-server 2.9.18 or later: before, a
 * member killed while a purge is still in its Raft log replays it on restart as a purge of every
 * message up to the stream's end at the time (`purgesReplaySafely` in `hub.ts`).
 *
 * Why whole: a partition could purge its own subject after each snapshot
 * (`PartitionStorage.truncateLog`, `truncateMailbox`; what one server does with
 * `streamTrimIntervalMs: 0`), but on one server each walks
 * every message of the stream from the subject's first one (`fileStore.PurgeEx`), all partitions'
 * messages included: about 16 % of the server's CPU in an orchestration benchmark. A purge without
 * a subject drops whole blocks.
 *
 * What a partition may still need, per stream:
 * - **log**: its records from its checkpoint's record (`logSeq`, kept: it fences appends) on, or
 *   all of them when it has no checkpoint;
 * - **mailbox**: its messages from its checkpoint's position on (the position names the next
 *   message to take; a partition resumes at the position of its last record, at or past the
 *   checkpoint's). Not the one before it: a partition gone idle would hold the cut at its last
 *   message for good.
 *
 * The first message on the partition's subject at or past that sequence bounds the cut; a
 * partition with none there (idle since its checkpoint) does not hold the cut back. The cut never
 * passes the stream's last message, read before the partitions are asked (a message arriving
 * meanwhile lands above it), so a stream once used is never emptied (nats-server 2.9.10 restarted
 * an emptied stream's sequence from 1 after a SIGKILL). Checkpoints only move forward, so one read
 * while a partition moves on is an older, lower bound. A partition's last record holds the log's
 * cut (it fences the next append): an idle owner moves it up with a `keep` record
 * (`PartitionOptions.keepIdleLogMs`).
 */
import type { JetStreamManager } from '@nats-io/jetstream'
import type { NatsConnection } from '@nats-io/transport-node'
import type { Hub } from './hub.ts'
import { nextOnSubject, PartitionStorage, type Checkpoint } from './storage.ts'

/** What one trim removed: per stream, the first sequence kept (0: that stream was left as it was). */
export interface TrimOutcome {
  mailbox: number
  log: number
}

/**
 * Cuts the hub's mailbox and log streams below what every partition may still need (see the
 * module comment); a stream whose cut would remove nothing is left alone.
 *
 * @example const { mailbox, log } = await trimSharedStreams(nc, hub)
 */
export async function trimSharedStreams(nc: NatsConnection, hub: Hub): Promise<TrimOutcome> {
  const { names, jsm } = hub
  const streams = { mailbox: names.mailboxStream, log: names.logStream }
  // the streams' last sequences before any partition is asked: what arrives later lies above them
  const [mailboxBefore, logBefore] = await Promise.all([
    streamState(jsm, streams.mailbox),
    streamState(jsm, streams.log),
  ])
  const partitions = Array.from({ length: hub.meta.partitions }, (_, p) => p)
  const checkpoints = await Promise.all(
    partitions.map(async (p) => (await new PartitionStorage(nc, hub, p).readCheckpoint()).ckpt),
  )
  const needs = (stream: string, subject: (p: number) => string, from: (c: Checkpoint | null) => number) =>
    Promise.all(
      partitions.map(async (p) => (await nextOnSubject(jsm, stream, subject(p), from(checkpoints[p]!)))?.seq),
    )
  const [mailboxNeeds, logNeeds] = await Promise.all([
    needs(
      streams.mailbox,
      (p) => names.mailbox(p),
      (c) => Math.max(1, c?.pos[0] ?? 1),
    ),
    needs(
      streams.log,
      (p) => names.log(p),
      (c) => Math.max(1, c?.logSeq ?? 1),
    ),
  ])
  return {
    mailbox: await cut(jsm, streams.mailbox, mailboxBefore, trimPoint(mailboxBefore.last, mailboxNeeds)),
    log: await cut(jsm, streams.log, logBefore, trimPoint(logBefore.last, logNeeds)),
  }
}

/**
 * The first sequence to keep: the lowest a partition needs (`undefined`: that partition needs none
 * of what is stored), never past `last`, the stream's last message (0 when the stream is empty:
 * nothing to cut).
 *
 * @example trimPoint(900, [120, undefined, 450]) // 120
 */
export function trimPoint(last: number, needs: ReadonlyArray<number | undefined>): number {
  let point = last
  for (const seq of needs) if (seq !== undefined && seq < point) point = seq
  return point
}

interface StreamState {
  first: number
  last: number
  created: string
  /** The stream has a leader and every replica is up and current (none offline, none catching up). */
  settled: boolean
}

async function streamState(jsm: JetStreamManager, stream: string): Promise<StreamState> {
  const info = await jsm.streams.info(stream)
  // (a server outside any cluster reports no cluster: its stream is its one copy)
  const cluster = info.cluster
  return {
    first: info.state.first_seq,
    last: info.state.last_seq,
    created: info.created,
    settled:
      cluster === undefined ||
      (cluster.leader !== undefined &&
        (cluster.replicas ?? []).every((r) => r.current && r.offline !== true)),
  }
}

/**
 * Purges `stream` below `keepFrom` when that removes something. The stream is read again first: a
 * hub deleted and created again meanwhile (a new stream of the same name) is left alone, and so is
 * a stream a replica of which is offline or catching up — on nats-server 2.9.10, purges while a
 * restarted member caught up left replicas whose copies differ from the leader's (see
 * `PartitionStorage.truncateMailbox`); the cut waits for the next interval instead.
 */
async function cut(
  jsm: JetStreamManager,
  stream: string,
  before: StreamState,
  keepFrom: number,
): Promise<number> {
  if (keepFrom <= before.first || !before.settled) return 0
  const now = await streamState(jsm, stream)
  if (now.created !== before.created || keepFrom <= now.first || !now.settled) return 0
  await jsm.streams.purge(stream, { seq: keepFrom })
  return keepFrom
}

/**
 * `basalt hub create|info|delete`: a hub's resources as an operator sees them. `info` reads only:
 * the hub's metadata, each stream's messages and bytes, and per partition the mailbox backlog —
 * messages at or after the position of the partition's last commit record (its checkpoint when
 * the log is empty), counted by a short-lived consumer on its mailbox subject — and dead letters.
 */
import { counted } from '../../actors/index.ts'
import type { MailboxPosition } from '../../actors/wire/index.ts'
import { AckPolicy, DeliverPolicy, PartitionStorage, deleteHub, ensureHub, type Hub } from '../nats/index.ts'
import { readPlacement } from '../../placement/index.ts'
import { UsageError } from './args.ts'
import { hubFromFlags, withHub, withNats } from './connection.ts'
import type { OutputFlags } from './instance-commands.ts'
import { printJson, progress, stdout, table, type Out } from './output.ts'

/** `basalt hub create --partitions N [--replicas R]`: creates the hub (or checks an existing one). */
export async function hubCreateCommand(
  flags: OutputFlags & { partitions?: number; replicas?: number },
  out: Out = stdout,
): Promise<number> {
  const name = hubFromFlags(flags)
  if (flags.partitions === undefined)
    throw new UsageError('missing --partitions: give the partition count, fixed for good')
  return withNats(flags, async (nc) => {
    const options = {
      partitions: flags.partitions!,
      ...(flags.replicas === undefined ? {} : { replicas: flags.replicas }),
    }
    const hub = await ensureHub(nc, name, options)
    if (flags.json) printJson({ hub: name, ...hub.meta }, out)
    else
      out(
        `hub ${name}: ${counted(hub.meta.partitions, 'partition')}, ${counted(hub.meta.replicas, 'replica')}`,
      )
    return 0
  })
}

/** One partition's row of `basalt hub info`. */
export interface PartitionInfo {
  p: number
  /** Next mailbox sequence the partition will process, as of its last commit record. */
  position: number
  /**
   * Sequence of the last message on its mailbox subject (0: none: nothing was ever sent, or every
   * message was processed and the snapshot trimmed them; the table then shows "-").
   */
  lastMailboxSeq: number
  /** Messages on its mailbox subject at or after `position`. */
  pending: number
  /** Messages in the dead-letter stream from this partition. */
  deadLetters: number
}

/** What `basalt hub info --json` prints. */
export interface HubInfo {
  hub: string
  partitions: number
  replicas: number
  created: string
  streams: Array<{ stream: string; messages: number; bytes: number }>
  deadLetters: number
  perPartition: PartitionInfo[]
}

/** `basalt hub info`: streams, backlog per partition and dead letters (progress on a terminal). */
export async function hubInfoCommand(flags: OutputFlags, out: Out = stdout): Promise<number> {
  return withHub(flags, async (hub, nc) => {
    const { names } = hub
    const streams = []
    for (const stream of names.streams) {
      const info = await hub.jsm.streams.info(stream).catch(() => null)
      streams.push({ stream, messages: info?.state.messages ?? 0, bytes: info?.state.bytes ?? 0 })
    }
    const dlq = await hub.jsm.streams.info(names.deadLetterStream, { subjects_filter: '>' }).catch(() => null)
    const deadBySubject = dlq?.state.subjects ?? {}
    const perPartition: PartitionInfo[] = []
    const shown = progress(`reading ${counted(hub.meta.partitions, 'partition')}`)
    try {
      for (let p = 0; p < hub.meta.partitions; p++) {
        const storage = new PartitionStorage(nc, hub, p)
        const position = (await positionOf(storage))[0]
        const lastMailboxSeq = await storage.lastMailboxSeq()
        const pending = lastMailboxSeq >= position ? await countFrom(hub, p, position) : 0
        perPartition.push({
          p,
          position,
          lastMailboxSeq,
          pending,
          deadLetters: deadBySubject[names.deadLetter(p)] ?? 0,
        })
        shown.update(p + 1, hub.meta.partitions)
      }
    } finally {
      shown.done()
    }
    const info: HubInfo = {
      hub: names.hub,
      partitions: hub.meta.partitions,
      replicas: hub.meta.replicas,
      created: new Date(hub.meta.created).toISOString(),
      streams,
      deadLetters: dlq?.state.messages ?? 0,
      perPartition,
    }
    if (flags.json) printJson(info, out)
    else for (const line of formatHubInfo(info)) out(line)
    return 0
  })
}

/** The text of `basalt hub info`. */
export function formatHubInfo(info: HubInfo): string[] {
  const pending = info.perPartition.reduce((n, p) => n + p.pending, 0)
  return [
    `hub ${info.hub}: ${counted(info.partitions, 'partition')}, ${counted(info.replicas, 'replica')}, created ${info.created}`,
    `backlog ${counted(pending, 'message')}, ${counted(info.deadLetters, 'dead letter')}`,
    '',
    ...table(
      [{ header: 'stream' }, { header: 'messages', right: true }, { header: 'bytes', right: true }],
      info.streams.map((s) => [s.stream, String(s.messages), String(s.bytes)]),
    ),
    '',
    ...table(
      [
        { header: 'partition', right: true },
        { header: 'position', right: true },
        { header: 'last mailbox seq', right: true },
        { header: 'pending', right: true },
        { header: 'dead letters', right: true },
      ],
      info.perPartition.map((p) =>
        [p.p, p.position, p.lastMailboxSeq === 0 ? '-' : p.lastMailboxSeq, p.pending, p.deadLetters].map(
          String,
        ),
      ),
    ),
  ]
}

/** The mailbox position after the partition's last commit record, else after its checkpoint. */
async function positionOf(storage: PartitionStorage): Promise<MailboxPosition> {
  const { ckpt } = await storage.readCheckpoint()
  const lastLogSeq = await storage.lastLogSeq()
  if (lastLogSeq > (ckpt?.logSeq ?? 0)) {
    const last = (await storage.logAfter(lastLogSeq - 1)).at(-1)
    if (last !== undefined) return last.rec.pos
  }
  return ckpt?.pos ?? [1, 0]
}

/** How many messages partition p's mailbox subject holds from sequence `seq` on. */
async function countFrom(hub: Hub, p: number, seq: number): Promise<number> {
  const consumer = await hub.jsm.consumers.add(hub.names.mailboxStream, {
    filter_subject: hub.names.mailbox(p),
    deliver_policy: DeliverPolicy.StartSequence,
    opt_start_seq: seq,
    ack_policy: AckPolicy.None,
    inactive_threshold: 30 * 1e9,
  })
  await hub.jsm.consumers.delete(hub.names.mailboxStream, consumer.name).catch(() => {})
  return consumer.num_pending
}

/**
 * How recent a node's heartbeat must be for `hub delete` to count it as running (its own clock,
 * so with some slack: nodes heartbeat every second or so by default).
 */
const RUNNING_NODE_MS = 30_000

/**
 * `basalt hub delete --yes`: deletes every stream and bucket of the hub, its data with them.
 * Refuses (exit 1) while nodes heartbeat on the hub — they would keep failing against the
 * deleted streams — unless `--force`; without `--yes`, exit 2; a hub that does not exist, exit 1.
 */
export async function hubDeleteCommand(
  flags: OutputFlags & { yes?: boolean; force?: boolean },
  out: Out = stdout,
): Promise<number> {
  const name = hubFromFlags(flags)
  if (flags.yes !== true) {
    throw new UsageError(`this deletes hub '${name}' and all its instances and entities; add --yes to do it`)
  }
  return withHub(
    flags,
    async (hub, nc) => {
      if (flags.force !== true) {
        const { nodes } = await readPlacement(hub.metaKv, hub.jsm)
        const running = nodes.filter((n) => Date.now() - n.at < RUNNING_NODE_MS).map((n) => n.id)
        if (running.length > 0) {
          // (exit 1: the command line is right, the hub's state refuses it)
          throw new Error(
            `hub '${name}' has ${counted(running.length, 'node')} running (${running.join(', ')}: heartbeats in the last ` +
              `${RUNNING_NODE_MS / 1000} s); stop them first, or add --force to delete it under them`,
          )
        }
      }
      await deleteHub(nc, name)
      if (flags.json) printJson({ hub: name, deleted: true }, out)
      else out(`deleted hub ${name}`)
      return 0
    },
    // (exit 1, as for any hub that does not exist: a script can tell it was not there)
    (hub) => `hub '${hub}' does not exist (nothing to delete)`,
  )
}

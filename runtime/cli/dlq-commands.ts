/**
 * `basalt dlq list|show|replay|purge`: the hub's dead letters (stream `BASALT_<hub>_DLQ`, subjects
 * `<hub>.dlq.<p>`). A dead letter is either a whole mailbox message that could not be decoded
 * (header `Basalt-Mailbox-Seq`, no `Basalt-Message-Index`), or one encoded actor message — out of
 * an envelope (`Basalt-Message-Index`), or one that could not be applied. `replay` puts a whole
 * message back on its partition's mailbox as it was, and one actor message in an envelope of its
 * own on the mailbox of the partition its target belongs to; then the dead letter is removed.
 * `replay --all` does so for every dead letter, or those of one partition or reason.
 */
import { randomUUID } from 'node:crypto'
import { counted, partitionOf } from '../../actors/index.ts'
import { WIRE_VERSION, type ActorMessage, type ClientEnvelope } from '../../actors/wire/index.ts'
import {
  decode,
  encode,
  isNoMessage,
  nextOnSubject,
  type Hub,
  type JetStreamClient,
  type StoredMsg,
} from '../nats/index.ts'
import { targetOf } from '../partition/index.ts'
import { UsageError } from './args.ts'
import { withHub } from './connection.ts'
import type { OutputFlags } from './instance-commands.ts'
import { compact, keyValues, printJson, progress, stdout, table, when, type Out } from './output.ts'

/** A dead letter as `basalt dlq` shows it. */
export interface DeadLetter {
  seq: number
  partition: number | null
  mailboxSeq: number | null
  messageIndex: number | null
  reason: string
  time: string
  size: number
}

/** `basalt dlq list [--limit N]`: one row per dead letter, oldest first. */
export async function dlqListCommand(
  flags: OutputFlags & { limit?: number },
  out: Out = stdout,
): Promise<number> {
  const limit = flags.limit ?? 1000
  return withHub(flags, async (hub) => {
    const letters: DeadLetter[] = []
    const shown = progress('reading dead letters')
    try {
      for (let from = 1; letters.length < limit;) {
        const msg = await nextMessage(hub, from)
        if (msg === null) break
        letters.push(describe(msg))
        from = msg.seq + 1
        shown.update(letters.length)
      }
    } finally {
      shown.done()
    }
    if (flags.json) printJson(letters, out)
    else {
      const rows = letters.map((d) => [
        String(d.seq),
        d.partition === null ? '-' : String(d.partition),
        d.mailboxSeq === null
          ? '-'
          : `${d.mailboxSeq}${d.messageIndex === null ? '' : `[${d.messageIndex}]`}`,
        when(Date.parse(d.time)),
        String(d.size),
        d.reason,
      ])
      const columns = [
        { header: 'seq', right: true },
        { header: 'partition', right: true },
        { header: 'mailbox seq' },
        { header: 'time' },
        { header: 'bytes', right: true },
        { header: 'reason' },
      ]
      for (const line of table(columns, rows)) out(line)
    }
    return 0
  })
}

/** `basalt dlq show SEQ`: the dead letter's headers and its content, decoded when it can be. */
export async function dlqShowCommand(seq: number, flags: OutputFlags, out: Out = stdout): Promise<number> {
  return withHub(flags, async (hub) => {
    const msg = await deadLetter(hub, seq)
    const letter = describe(msg)
    let content: unknown
    let decoded = true
    try {
      content = decode(msg.data, 'dead letter')
    } catch {
      decoded = false
      content = Buffer.from(msg.data).toString('base64')
    }
    if (flags.json) printJson({ ...letter, decoded, content }, out)
    else {
      for (const line of keyValues({
        ...letter,
        content: decoded ? compact(content, 2000) : `(undecodable, base64) ${String(content)}`,
      }))
        out(line)
    }
    return 0
  })
}

/** What `basalt dlq replay` takes: one dead letter's sequence, or `--all` with optional filters. */
export interface ReplayFlags extends OutputFlags {
  all?: boolean
  partition?: number
  reason?: string
}

/**
 * `basalt dlq replay SEQ`: sends the dead letter back to a mailbox (see the header), removes it
 * from the dead letters, and prints where it went. Should it fail again, it comes back as a new one.
 *
 * `basalt dlq replay --all [--partition P] [--reason TEXT]`: the same for every dead letter stored
 * when the command starts (one that fails again comes back with a later sequence and is not
 * replayed a second time by the same command), or only those of partition P, or whose reason
 * contains TEXT. A dead letter that cannot be replayed (undecodable content that needs a partition
 * to go to) is left where it is and named; the command then exits with 1.
 */
export async function dlqReplayCommand(
  seq: number | undefined,
  flags: ReplayFlags,
  out: Out = stdout,
): Promise<number> {
  const bulk = flags.all === true || flags.partition !== undefined || flags.reason !== undefined
  if (seq !== undefined && bulk)
    throw new UsageError('give one dead letter sequence, or --all (with --partition, --reason), not both')
  if (seq === undefined && !bulk)
    throw new UsageError("give a dead letter's sequence (see basalt dlq list), or --all to replay every one")
  if (seq === undefined) return dlqReplayAll(flags, out)
  return withHub(flags, async (hub, nc) => {
    const { jetstream } = await import('../nats/index.ts')
    const msg = await deadLetter(hub, seq)
    const { created } = await hub.jsm.streams.info(hub.names.deadLetterStream)
    const { p, mailboxSeq } = await replay(hub, jetstream(nc), msg, created)
    if (flags.json) printJson({ seq, partition: p, mailboxSeq }, out)
    else out(`replayed dead letter ${seq} to partition ${p} (mailbox seq ${mailboxSeq})`)
    return 0
  })
}

async function dlqReplayAll(flags: ReplayFlags, out: Out): Promise<number> {
  return withHub(flags, async (hub, nc) => {
    const { jetstream } = await import('../nats/index.ts')
    const js = jetstream(nc)
    // only what is stored now: a letter that fails again comes back above this
    const info = await hub.jsm.streams.info(hub.names.deadLetterStream)
    const last = info.state.last_seq
    const partitions = new Map<number, number>()
    const skipped: Array<{ seq: number; error: string }> = []
    let replayed = 0
    const shown = progress('replaying dead letters')
    try {
      for (let from = 1; from <= last;) {
        const msg = await nextMessage(hub, from)
        if (msg === null || msg.seq > last) break
        from = msg.seq + 1
        const letter = describe(msg)
        if (flags.partition !== undefined && letter.partition !== flags.partition) continue
        if (flags.reason !== undefined && !letter.reason.includes(flags.reason)) continue
        try {
          const { p } = await replay(hub, js, msg, info.created)
          partitions.set(p, (partitions.get(p) ?? 0) + 1)
          replayed++
          shown.update(replayed)
        } catch (err) {
          if (!(err instanceof NotReplayable)) throw err
          skipped.push({ seq: msg.seq, error: err.message })
        }
      }
    } finally {
      shown.done()
    }
    const byPartition = [...partitions].sort(([a], [b]) => a - b)
    if (flags.json) printJson({ replayed, partitions: Object.fromEntries(byPartition), skipped }, out)
    else {
      const where = byPartition.map(([p, n]) => `${p}: ${n}`).join(', ')
      out(`replayed ${counted(replayed, 'dead letter')}${replayed > 0 ? ` (per partition ${where})` : ''}`)
      for (const { error } of skipped) out(`not replayed: ${error}`)
    }
    return skipped.length > 0 ? 1 : 0
  })
}

/** A dead letter that cannot be sent anywhere: its content, or its headers, do not say where. */
class NotReplayable extends Error {}

/**
 * Sends one dead letter back (see the module comment) and removes it. The mailbox message carries
 * a message id made of the dead-letter stream's creation (`created`, from its stream info) and the
 * letter's sequence: replayed twice within the mailbox's duplicate window (a command run again
 * after it was cut off between the two steps), the server keeps one copy.
 */
async function replay(
  hub: Hub,
  js: JetStreamClient,
  msg: StoredMsg,
  created: string,
): Promise<{ p: number; mailboxSeq: number }> {
  const letter = describe(msg)
  let p: number
  let data: Uint8Array
  if (letter.mailboxSeq !== null && letter.messageIndex === null) {
    if (letter.partition === null)
      throw new NotReplayable(`dead letter ${msg.seq} names no partition (header Basalt-Partition)`)
    p = letter.partition
    data = msg.data
  } else {
    let actorMessage: ActorMessage
    try {
      actorMessage = decode(msg.data, 'dead letter') as ActorMessage
    } catch (err) {
      throw new NotReplayable(`dead letter ${msg.seq} cannot be replayed: ${(err as Error).message}`, {
        cause: err,
      })
    }
    p = partitionOf(targetOf(actorMessage), hub.meta.partitions)
    // an envelope from a client of its own, so that no client's batch numbering is disturbed
    const envelope: ClientEnvelope = { v: WIRE_VERSION, c: `dlq-${randomUUID()}`, q: 1, m: [actorMessage] }
    data = encode(envelope)
  }
  const ack = await js.publish(hub.names.mailbox(p), data, { msgID: `dlq-${created}-${msg.seq}` })
  // replayed once: a second replay by mistake finds nothing
  await hub.jsm.streams.deleteMessage(hub.names.deadLetterStream, msg.seq, false)
  return { p, mailboxSeq: ack.seq }
}

/** `basalt dlq purge --yes`: removes every dead letter; prints how many. */
export async function dlqPurgeCommand(
  flags: OutputFlags & { yes?: boolean },
  out: Out = stdout,
): Promise<number> {
  if (flags.yes !== true)
    throw new UsageError('this removes every dead letter of the hub; add --yes to do it')
  return withHub(flags, async (hub) => {
    const { purged } = await hub.jsm.streams.purge(hub.names.deadLetterStream)
    if (flags.json) printJson({ purged }, out)
    else out(`purged ${counted(purged, 'dead letter')}`)
    return 0
  })
}

function describe(msg: StoredMsg): DeadLetter {
  const header = (name: string) => msg.header?.get(name) || undefined
  const num = (name: string) => {
    const v = header(name)
    return v === undefined ? null : Number(v)
  }
  return {
    seq: msg.seq,
    partition: num('Basalt-Partition'),
    mailboxSeq: num('Basalt-Mailbox-Seq'),
    messageIndex: num('Basalt-Message-Index'),
    reason: header('Basalt-Reason') ?? '',
    time: msg.time.toISOString(),
    size: msg.data.length,
  }
}

/** The dead letter at `seq`; an error saying how to find one when there is none. */
async function deadLetter(hub: Hub, seq: number): Promise<StoredMsg> {
  const msg = await hub.jsm.streams.getMessage(hub.names.deadLetterStream, { seq }).catch((err: unknown) => {
    if (isNoMessage(err)) return null
    throw err
  })
  if (msg === null) throw new Error(`no dead letter ${seq} (see basalt dlq list)`)
  return msg
}

/** The first dead letter at or after `seq`, or null. */
function nextMessage(hub: Hub, seq: number): Promise<StoredMsg | null> {
  return nextOnSubject(hub.jsm, hub.names.deadLetterStream, `${hub.names.hub}.dlq.>`, seq)
}

/**
 * `basalt dlq list|show|replay|purge`: the hub's dead letters (stream `BASALT_<hub>_DLQ`, subjects
 * `<hub>.dlq.<p>`). A dead letter is either a whole mailbox message that could not be decoded
 * (header `Basalt-Mailbox-Seq`, no `Basalt-Message-Index`), or one encoded actor message — out of
 * an envelope (`Basalt-Message-Index`), or one that could not be applied. `replay` puts a whole
 * message back on its partition's mailbox as it was, and one actor message in an envelope of its
 * own on the mailbox of the partition its target belongs to; then the dead letter is removed.
 */
import { randomUUID } from 'node:crypto'
import { counted, partitionOf } from '../../actors/index.ts'
import { WIRE_VERSION, type ActorMessage, type ClientEnvelope } from '../../actors/wire/index.ts'
import { decode, encode, isNoMessage, nextOnSubject, type Hub, type StoredMsg } from '../nats/index.ts'
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

/**
 * `basalt dlq replay SEQ`: sends the dead letter back to a mailbox (see the header), removes it
 * from the dead letters, and prints where it went. Should it fail again, it comes back as a new one.
 */
export async function dlqReplayCommand(seq: number, flags: OutputFlags, out: Out = stdout): Promise<number> {
  return withHub(flags, async (hub, nc) => {
    const msg = await deadLetter(hub, seq)
    const letter = describe(msg)
    let p: number
    let data: Uint8Array
    if (letter.mailboxSeq !== null && letter.messageIndex === null) {
      if (letter.partition === null)
        throw new Error(`dead letter ${seq} names no partition (header Basalt-Partition)`)
      p = letter.partition
      data = msg.data
    } else {
      let actorMessage: ActorMessage
      try {
        actorMessage = decode(msg.data, 'dead letter') as ActorMessage
      } catch (err) {
        throw new Error(`dead letter ${seq} cannot be replayed: ${(err as Error).message}`, { cause: err })
      }
      p = partitionOf(targetOf(actorMessage), hub.meta.partitions)
      // an envelope from a client of its own, so that no client's batch numbering is disturbed
      const envelope: ClientEnvelope = { v: WIRE_VERSION, c: `dlq-${randomUUID()}`, q: 1, m: [actorMessage] }
      data = encode(envelope)
    }
    const { jetstream } = await import('../nats/index.ts')
    const ack = await jetstream(nc).publish(hub.names.mailbox(p), data)
    // replayed once: a second replay by mistake finds nothing
    await hub.jsm.streams.deleteMessage(hub.names.deadLetterStream, seq, false)
    if (flags.json) printJson({ seq, partition: p, mailboxSeq: ack.seq }, out)
    else out(`replayed dead letter ${seq} to partition ${p} (mailbox seq ${ack.seq})`)
    return 0
  })
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

/**
 * The hub's dead letters as the dashboard lists them (read-only; `basalt dlq` replays and purges):
 * reason, partition, subject, time and a decoded preview, read from the dead-letter stream.
 */
import { decode, isNoMessage, nextOnSubject, type Hub, type StoredMsg } from '../nats/index.ts'

/** One dead letter on the Dead letters page. */
export interface DeadLetterView {
  seq: number
  subject: string
  partition: number | null
  mailboxSeq: number | null
  reason: string
  time: string
  size: number
  /** The content decoded and shortened, or null when it does not decode. */
  preview: string | null
}

/** Up to `limit` dead letters from sequence `from` on, oldest first. */
export async function readDeadLetters(hub: Hub, from: number, limit: number): Promise<DeadLetterView[]> {
  const letters: DeadLetterView[] = []
  for (let seq = from; letters.length < limit;) {
    const msg = await nextOnSubject(hub.jsm, hub.names.deadLetterStream, `${hub.names.hub}.dlq.>`, seq).catch(
      (err: unknown) => {
        if (isNoMessage(err)) return null
        throw err
      },
    )
    if (msg === null) break
    letters.push(view(msg))
    seq = msg.seq + 1
  }
  return letters
}

function view(msg: StoredMsg): DeadLetterView {
  const header = (name: string) => msg.header?.get(name) || undefined
  const num = (name: string) => {
    const v = header(name)
    return v === undefined ? null : Number(v)
  }
  let preview: string | null
  try {
    preview = shorten(JSON.stringify(decode(msg.data, 'dead letter'), jsonSafe), 600)
  } catch {
    preview = null
  }
  return {
    seq: msg.seq,
    subject: msg.subject,
    partition: num('Basalt-Partition'),
    mailboxSeq: num('Basalt-Mailbox-Seq'),
    reason: header('Basalt-Reason') ?? '',
    time: msg.time.toISOString(),
    size: msg.data.length,
    preview,
  }
}

/** JSON for values msgpack gives: bytes as a short note, big integers as text. */
export function jsonSafe(_key: string, value: unknown): unknown {
  if (value instanceof Uint8Array) return `<${value.length} bytes>`
  if (typeof value === 'bigint') return value.toString()
  return value
}

function shorten(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max)}…`
}

/**
 * One commit round: everything processed between two commit records, collected while the previous
 * record is in flight. Sealing a round turns it into a {@link CommitRecord}.
 */
import {
  WIRE_VERSION,
  type ActorMessage,
  type CommitRecord,
  type MailboxPosition,
  type Reply,
  type ReplyTo,
} from '../../actors/wire/index.ts'
import type { DedupTables } from './dedup.ts'

/**
 * A write whose bytes are produced when the round is sealed: an orchestration instance changed
 * by many steps of one round is encoded once, with the state it has at the seal.
 */
export type LazyBytes = () => Uint8Array

/** An item write: bytes, a lazy encoding, or null for a delete. */
export type ItemWrite = Uint8Array | LazyBytes | null

/** A reply whose value may be produced at the seal (see {@link LazyBytes}). */
export type RoundReply = Reply | [rid: number, ok: 1, value: LazyBytes]

/** Resolves a write to bytes (or null). */
export function resolveWrite(value: ItemWrite): Uint8Array | null {
  return typeof value === 'function' ? value() : value
}

/** The open (or in-flight) round of a partition. */
export class CommitRound {
  /** Item writes, last one wins. */
  readonly writes = new Map<string, ItemWrite>()
  readonly out = new Map<number, Uint8Array[]>()
  readonly rep = new Map<string, RoundReply[]>()
  /** Callbacks to run once this round is durable. */
  readonly waiters: Array<() => void> = []
  /** Blob writes the record waits for: it references them (large values, see blobs.ts). */
  readonly blobWrites: Array<Promise<void>> = []
  /** Local messages still queued when the round was sealed. */
  lq: ActorMessage[] = []
  /** Encoded size accounted so far (bounds the record below max_payload). */
  bytes = 0
  /** Whether the mailbox position moved. */
  touched = false
  #timers = 0

  constructor(
    /** Record number this round will have. */
    readonly n: number,
    /** Mailbox position after the round. */
    public pos: MailboxPosition,
  ) {}

  /** Whether nothing happened in this round. */
  get isEmpty(): boolean {
    return !this.touched && this.writes.size === 0 && this.rep.size === 0 && this.out.size === 0
  }

  /** Records an item write (null deletes). */
  write(key: string, value: ItemWrite): void {
    this.writes.set(key, value)
    this.touched = true
  }

  /** Queues a reply to a caller. */
  reply(to: ReplyTo, reply: RoundReply): void {
    let list = this.rep.get(to[0])
    if (list === undefined) this.rep.set(to[0], (list = []))
    list.push(reply)
    this.touched = true
  }

  /** Queues an encoded message for another partition. */
  send(dest: number, bytes: Uint8Array): void {
    let list = this.out.get(dest)
    if (list === undefined) this.out.set(dest, (list = []))
    list.push(bytes)
    this.touched = true
  }

  /** A fresh name, unique in the partition, for a timer created in this round (see item-keys.ts). */
  timerName(): string {
    return `${this.n}-${this.#timers++}`
  }

  /** The commit record of this round, with its dedup delta (see dedup.ts). */
  toRecord(epoch: number, dedup: DedupTables): CommitRecord {
    return {
      v: WIRE_VERSION,
      n: this.n,
      e: epoch,
      pos: this.pos,
      w: [...this.writes].map(([k, v]) => [k, resolveWrite(v)]),
      dc: dedup.dc,
      dp: dedup.dp,
      out: [...this.out],
      rep: [...this.rep].map(([inbox, replies]) => [inbox, replies.map(resolveReply)]),
      lq: this.lq,
    }
  }
}

function resolveReply(reply: RoundReply): Reply {
  return reply[1] === 1 && typeof reply[2] === 'function' ? [reply[0], 1, reply[2]()] : (reply as Reply)
}

/**
 * Queries to a partition (reads of entities, locks, scheduled signals and instances): taken from the partition's query
 * subject, answered in loop order once the partition has processed the asker's last publish
 * (read-your-writes), and released once the state they saw is committed (the hosts answer through
 * `afterCommit`). A query for recent replies is answered at once, outside loop order: replies
 * already sent were committed. The partition acts on queries through {@link QueryPort}.
 */
import {
  BadInputError,
  PartitionUnavailableError,
  PayloadTooLargeError,
  toErrorInfo,
  checkTypeName,
} from '../../actors/index.ts'
import { WIRE_VERSION, type Query, type QueryAnswer, type Reply } from '../../actors/wire/index.ts'
import { decodeEnvelope, encode, type NatsConnection, type Subscription } from '../nats/index.ts'
import type { Logger } from '../util/index.ts'
import { checkQueryPosition, isAnswerSubject, positionPastEnd, publicAnswer } from './inbound.ts'

/** A query waiting for its turn in the loop. */
export interface PendingQuery {
  query: Query
  respond(answer: QueryAnswer): void
}

/** What the query desk needs from its partition. */
export interface QueryPort {
  readonly p: number
  readonly logger: Logger
  /** Whether the partition has stopped (queries then get no answer from it). */
  stopped(): boolean
  /** Mailbox sequence the partition processes next. */
  position(): number
  /** Highest mailbox sequence received so far. */
  lastSeen(): number
  /** Last sequence stored on the partition's mailbox. */
  lastStored(): Promise<number>
  /** Recent replies to `inbox` with these request ids (see recent-replies.ts). */
  recentReplies(inbox: string, rids: number[]): Reply[]
  /**
   * Which of the calls of `inbox` with these request ids the partition keeps for a type its node
   * does not run (see unknown-types.ts), with the type's registry name (`e:Type`).
   */
  heldFor(inbox: string, rids: number[]): Array<[rid: number, name: string]>
  /** A watcher asked: change messages are published from now on (see change-feed.ts). */
  watcherJoined(): void
  /** Wakes the loop. */
  kick(): void
  /** Answers a query in loop order (the entity or the orchestration host). */
  answer(query: Query, respond: (answer: QueryAnswer) => void): Promise<unknown> | void
}

/** The queries of one partition (see the module comment). */
export class QueryDesk {
  #pending: PendingQuery[] = []
  /** Queries taken and not answered yet (queued, or waiting for a commit or a load). */
  readonly #unanswered = new Set<(answer: QueryAnswer) => void>()
  #sub: Subscription | undefined

  constructor(readonly port: QueryPort) {}

  /** Number of queries waiting for the loop. */
  get waiting(): number {
    return this.#pending.length
  }

  /** Starts taking queries from `subject`. */
  listen(nc: NatsConnection, subject: string): void {
    this.#sub = nc.subscribe(subject, {
      callback: (err, msg) => {
        if (err) return
        if (!isAnswerSubject(msg.reply)) {
          this.port.logger.warn('query reply subject is not an inbox; not answered', {
            p: this.port.p,
            reply: msg.reply,
          })
          return
        }
        this.receive(msg.data, (answer) => this.#reply(nc, msg, answer))
      },
    })
  }

  /**
   * Stops taking queries. Queries not answered yet get no state from here (a stale owner must never
   * answer with what it has): they are told to ask again (`again`), and the client asks the next
   * owner at once instead of waiting out its timeout.
   */
  close(): void {
    this.#sub?.unsubscribe()
    this.#pending = []
    const stopped = toErrorInfo(
      new PartitionUnavailableError(this.port.p, 'its owner stopped before answering'),
    )
    for (const respond of [...this.#unanswered]) respond({ v: WIRE_VERSION, ok: 0, error: stopped, again: 1 })
  }

  /**
   * Sends an answer. One too large for the server (`max_payload`) is answered with a
   * PayloadTooLargeError naming both sizes instead, and a failed send is logged: an answer never
   * fails the partition (a history too long for one answer comes in pages, see
   * instance-queries.ts).
   */
  #reply(nc: NatsConnection, msg: { respond(data: Uint8Array): boolean }, answer: QueryAnswer): void {
    let bytes = encode(publicAnswer(answer))
    const limit = nc.info?.max_payload ?? Infinity
    if (bytes.length > limit - 1024) {
      const error = new PayloadTooLargeError('the answer to this query', bytes.length, limit - 1024)
      bytes = encode({ v: WIRE_VERSION, ok: 0, error: toErrorInfo(error) })
    }
    try {
      msg.respond(bytes)
    } catch (err) {
      this.port.logger.warn('query answer not sent', { p: this.port.p, error: String(err) })
    }
  }

  /** Takes one query: answers it at once, or queues it for the loop. */
  receive(data: Uint8Array, send: (answer: QueryAnswer) => void): void {
    // answered once: by the partition, or (stopped first) told to ask again
    const respond = (answer: QueryAnswer): void => {
      if (this.#unanswered.delete(respond)) send(answer)
    }
    this.#unanswered.add(respond)
    let query: Query
    try {
      query = decodeEnvelope(data, 'query') as unknown as Query
      const kind: unknown = query.k
      if (kind === 'replies') {
        // replies already sent were committed: answer at once, outside loop order
        const { inbox, rids } = query as Extract<Query, { k: 'replies' }>
        if (typeof inbox !== 'string' || !Array.isArray(rids))
          throw new BadInputError('malformed replies query')
        const held = this.port.heldFor(inbox, rids)
        const replies = this.port.recentReplies(inbox, rids)
        respond({ v: WIRE_VERSION, ok: 1, replies, ...(held.length === 0 ? {} : { held }) })
        return
      }
      if (!['read', 'list', 'status', 'instances', 'lock', 'timers'].includes(kind as string)) {
        throw new BadInputError(`unknown query kind ${String(kind)}`)
      }
      if ('w' in query && query.w === 1) this.port.watcherJoined()
      if (query.k === 'read' || query.k === 'list' || query.k === 'lock' || query.k === 'timers')
        checkTypeName(query.t)
      const s = checkQueryPosition(query.s)
      if (s >= this.port.position() && s > this.port.lastSeen()) {
        void this.#admitPast(s, { query, respond })
        return
      }
    } catch (err) {
      respond({ v: WIRE_VERSION, ok: 0, error: toErrorInfo(err) })
      return
    }
    this.#pending.push({ query, respond })
    this.port.kick()
  }

  /**
   * Answers the queries whose asker's last publish the partition has processed (read-your-writes);
   * returns whether there were any.
   */
  async answerReady(): Promise<boolean> {
    if (this.#pending.length === 0) return false
    const position = this.port.position()
    const ready = this.#pending.filter((q) => (q.query.s ?? 0) < position)
    if (ready.length === 0) return false
    this.#pending = this.#pending.filter((q) => (q.query.s ?? 0) >= position)
    for (const q of ready) await this.#answer(q)
    return true
  }

  /**
   * A query waits for mailbox position `s`, which this partition has not received yet: admit it if
   * `s` is stored on the mailbox (it arrives soon), else answer at once that it never will.
   */
  async #admitPast(s: number, pending: PendingQuery): Promise<void> {
    let last: number
    try {
      last = await this.port.lastStored()
    } catch {
      last = s // cannot tell: wait, as for any other query
    }
    if (this.port.stopped()) return
    if (s > last) {
      pending.respond({ v: WIRE_VERSION, ok: 0, error: toErrorInfo(positionPastEnd(s, this.port.p, last)) })
      return
    }
    this.#pending.push(pending)
    this.port.kick()
  }

  async #answer({ query, respond }: PendingQuery): Promise<void> {
    try {
      await this.port.answer(query, respond)
    } catch (err) {
      respond({ v: WIRE_VERSION, ok: 0, error: toErrorInfo(err) })
    }
  }
}

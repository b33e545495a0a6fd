/**
 * A partition's mailbox reader: an ordered consumer on `H.mbx.<p>` from the committed position,
 * each envelope decoded as it arrives and queued for the loop. At most {@link HIGH_WATER}
 * envelopes wait; then the reader pauses until the loop has taken half of them. A stall watch
 * fails the partition when messages wait in the stream past its position but none arrive (a
 * consumer lost with a cluster member).
 *
 * On a replicated hub the ordered consumer (one replica, placed by the server) may run on a stream
 * replica that is catching up after a restart, which can lack messages the stream holds — a
 * consumer there skips them (seen in the chaos test: asked for 977, delivered 1122 first) — or, on
 * nats-server 2.9.10 after a member restart, on a replica whose copy *differs* from the leader's
 * (seen in the chaos test: the leader acknowledged batch 297 at sequence 3308, the replica
 * delivered batch 295 at 3308 — a retried batch stored twice on it — and never delivered 297).
 * So on a replicated hub the consumer only says that messages arrived: what is queued is what the
 * stream leader holds on the subject, read from it up to the delivered sequence (one message-get
 * per mailbox message, on replicated hubs only), and a delivery the leader reads already covered
 * costs nothing.
 */
import { checkEnvelope, type MailboxEnvelope } from '../../actors/wire/index.ts'
import { consumeFrom, decodeEnvelope, type ConsumerMessages, type JetStreamClient } from '../nats/index.ts'
import { StallWatch } from './stall-watch.ts'

/** Most envelopes queued before the reader pauses. */
const HIGH_WATER = 20_000

/** A mailbox message waiting to be processed: its envelope, or the bytes that did not decode. */
export interface Inbound {
  seq: number
  env?: MailboxEnvelope
  raw?: Uint8Array
  error?: string
}

/** What the reader needs from its partition. */
export interface MailboxHooks {
  /** The first mailbox sequence not yet processed: earlier messages are skipped. */
  position(): number
  /** Whether the loop is running now (the stall watch asks the stream only while it is not). */
  running(): boolean
  /** The last sequence stored on the mailbox subject (0: none). */
  lastStored(): Promise<number>
  /** Messages were queued. */
  arrived(): void
  /** The consumer failed, ended or stalled: the partition must recover. */
  failed(err: Error): void
  /**
   * The messages the stream leader holds on the mailbox subject from sequence `from` on, up to and
   * including the first at or past `through`; given on a replicated hub, where a consumer's replica
   * may lack or differ from what the leader holds (see the module comment).
   */
  fromLeader?(from: number, through: number): Promise<Array<{ seq: number; data: Uint8Array }>>
  /**
   * What the consumer delivered up to `to` differed from the leader's messages in `[from, to]`
   * (`count` of them were not delivered as the leader holds them): the leader's were queued.
   */
  filled?(from: number, to: number, count: number): void
}

/** How long a delivered message is asked of the stream leader again while it does not show it yet. */
const LEADER_SETTLE_MS = 300
/** After a wait for the leader in vain, how long deliveries are not waited for. */
const NO_WAIT_AFTER_VAIN_MS = 5000
/** When a delivered message the leader did not show is read again from it, in the background. */
const LATE_READS_MS = [500, 1500]
/** The pause between those questions. */
const LEADER_POLL_MS = 5

/** Reads one partition's mailbox (see the module comment). */
export class MailboxReader {
  #queue: Inbound[] = []
  /** The last message the consumer delivered (its `info` is read only when asked: see waitingInStream). */
  #last: { readonly info: { readonly pending: number } } | undefined
  #consumer: ConsumerMessages | undefined
  #watch: StallWatch | undefined
  #resume: (() => void) | undefined
  #stopped = false
  #closed = false
  #lastSeen = 0
  /** Until when a delivered message the leader does not show is not waited for (see #fromLeader). */
  #noWaitUntil = 0
  /** The first sequence the next delivered message may have (no gap before it). */
  #expect = 1

  /**
   * @param consume opens the consumer (the real one by default; unit tests give a fake)
   */
  constructor(
    readonly js: JetStreamClient,
    readonly stream: string,
    readonly subject: string,
    readonly hooks: MailboxHooks,
    readonly consume: typeof consumeFrom = consumeFrom,
  ) {}

  /** Number of envelopes queued. */
  get length(): number {
    return this.#queue.length
  }

  /**
   * Messages on the partition's subject that the stream held past the last one delivered, as the
   * consumer said with that delivery (not read yet: the reader pauses at {@link HIGH_WATER}, and
   * a partition that falls behind has most of its backlog there). Read from the delivery when
   * asked (telemetry, about once a second), not parsed from every message's reply subject.
   */
  get waitingInStream(): number {
    return this.#last?.info.pending ?? 0
  }

  /** The highest mailbox sequence delivered so far (0: none yet). */
  get lastSeen(): number {
    return this.#lastSeen
  }

  /** The oldest queued envelope. */
  get first(): Inbound | undefined {
    return this.#queue[0]
  }

  /** The queued envelopes, oldest first. */
  [Symbol.iterator](): Iterator<Inbound> {
    return this.#queue[Symbol.iterator]()
  }

  /** Removes the oldest envelope (processed); resumes reading once half of the queue is gone. */
  shift(): void {
    this.#queue.shift()
    if (this.#resume !== undefined && this.#queue.length < HIGH_WATER / 2) {
      this.#resume()
      this.#resume = undefined
    }
  }

  /** Starts reading at `fromSeq`. */
  async start(fromSeq: number): Promise<void> {
    // A consumer lost with a server (a NATS cluster member going down) is noticed by the stall
    // watch within seconds; heartbeats (every 5 s) back it up. Shorter heartbeats misfire under load.
    this.#consumer = await this.consume(this.js, this.stream, this.subject, fromSeq, {
      max_messages: 512,
      expires: 10_000,
    })
    this.#watch ??= new StallWatch({
      idle: () => this.#queue.length === 0 && !this.hooks.running(),
      position: () => this.hooks.position(),
      lastStored: () => this.hooks.lastStored(),
      stalled: (reason) => this.hooks.failed(new Error(`mailbox consumer stalled: ${reason}`)),
    })
    this.#expect = fromSeq
    void this.#pump(this.#consumer)
  }

  /**
   * The connection was made again: the consumer may have been lost with the server, so the stall
   * watch checks sooner (stall-watch.ts).
   */
  reconnected(): void {
    this.#watch?.reconnected()
  }

  /** Stops reading (a graceful close); what is queued stays for the loop. */
  async close(): Promise<void> {
    this.#closed = true
    await this.#consumer?.close().catch(() => {})
    this.#consumer = undefined
  }

  /** Stops everything (the partition shuts down). */
  stop(): void {
    this.#stopped = true
    this.#watch?.stop()
    void this.#consumer?.close().catch(() => {})
    this.#resume?.()
  }

  /** Queues one delivered message (one before the committed position is passed over). */
  #enqueue(seq: number, data: Uint8Array): void {
    this.#expect = seq + 1
    if (seq > this.#lastSeen) this.#lastSeen = seq
    if (seq < this.hooks.position()) return
    const item: Inbound = { seq }
    try {
      item.env = checkEnvelope(decodeEnvelope(data, `mailbox message ${seq}`))
    } catch (err) {
      item.raw = data
      item.error = (err as Error).message
    }
    this.#queue.push(item)
    this.#watch?.delivered()
    this.hooks.arrived()
  }

  /**
   * Queues what the stream leader holds on the subject up to the delivered sequence `seq` (see the
   * module comment); a delivery below what was read from the leader already is passed over.
   */
  async #fromLeader(seq: number, data: Uint8Array): Promise<void> {
    if (seq < this.#expect) return
    const from = Math.max(this.#expect, this.hooks.position())
    const held = await this.hooks.fromLeader!(from, seq)
    // a replica may deliver a message the leader does not show yet (it applies what the cluster
    // committed on its own time: seen for milliseconds): asked again shortly, rather than left to
    // the next delivery or the stall watch — on an idle hub that held a call for 1.75 s. A replica
    // whose copy differs delivers messages the leader will never show: after one wait in vain, none
    // for a while (a wait per delivery held a partition's intake for seconds)
    const deadline = Date.now() + LEADER_SETTLE_MS
    while ((held.at(-1)?.seq ?? 0) < seq && Date.now() >= this.#noWaitUntil) {
      if (Date.now() >= deadline) {
        this.#noWaitUntil = Date.now() + NO_WAIT_AFTER_VAIN_MS
        break
      }
      await new Promise((resolve) => setTimeout(resolve, LEADER_POLL_MS))
      if (this.#stopped) return
      held.push(...(await this.hooks.fromLeader!((held.at(-1)?.seq ?? from - 1) + 1, seq)))
    }
    const same = held.length === 1 && held[0]!.seq === seq && sameBytes(held[0]!.data, data)
    if (!same && held.length > 0) {
      this.hooks.filled?.(from, seq, held.filter((h) => h.seq !== seq || !sameBytes(h.data, data)).length)
    }
    this.#queueHeld(held)
    // what the leader does not show yet (none at or past `seq`) is read again a little later, in
    // the background, without holding up the deliveries: a leader slower than the wait above
    if ((held.at(-1)?.seq ?? 0) < seq) for (const ms of LATE_READS_MS) this.#readLate(seq, ms)
  }

  /** Reads what the leader holds up to `seq` after `ms`, and queues what was not queued yet. */
  #readLate(seq: number, ms: number): void {
    const timer = setTimeout(() => {
      if (this.#stopped || seq < this.#expect) return
      this.hooks.fromLeader!(Math.max(this.#expect, this.hooks.position()), seq).then(
        (held) => {
          if (!this.#stopped) this.#queueHeld(held)
        },
        () => {}, // (the next delivery, or the stall watch, asks again)
      )
    }, ms)
    timer.unref()
  }

  /**
   * Queues messages read from the leader, but not those queued already: a delivery's read and a
   * late read (#readLate) may overlap.
   */
  #queueHeld(held: ReadonlyArray<{ seq: number; data: Uint8Array }>): void {
    for (const h of held) if (h.seq >= this.#expect) this.#enqueue(h.seq, h.data)
  }

  async #pump(messages: ConsumerMessages): Promise<void> {
    try {
      for await (const m of messages) {
        if (this.#stopped) break
        this.#last = m
        if (this.hooks.fromLeader !== undefined) await this.#fromLeader(m.seq, m.data)
        else this.#enqueue(m.seq, m.data)
        if (this.#queue.length > HIGH_WATER) await new Promise<void>((resolve) => (this.#resume = resolve))
      }
    } catch (err) {
      if (!this.#stopped) this.hooks.failed(err as Error)
      return
    }
    // the consumer gave up (it could not be recreated): recover rather than stall
    if (!this.#stopped && !this.#closed) this.hooks.failed(new Error('mailbox consumer ended'))
  }
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && Buffer.compare(a, b) === 0
}

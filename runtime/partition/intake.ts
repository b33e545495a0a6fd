/**
 * The partition's intake: what one step of the loop takes in — due timers, the local queue, the
 * mailbox — and how each message reaches its host (entity or instance; the host keeps what is for a
 * type run elsewhere), is held as a timer, or goes to the dead-letter stream. It moves the mailbox
 * cursor and the dedup tables as envelopes are processed. Split from the loop (partition.ts),
 * which decides when to step and when to seal; this file decides what a step does.
 */
import { BadInputError, HubNotFoundError, toErrorInfo } from '../../actors/index.ts'
import {
  checkMessage,
  type ActorMessage,
  type MailboxEnvelope,
  type ProbeUnit,
  type TimerValue,
} from '../../actors/wire/index.ts'
import { decode, encode, itemKey, type PartitionStorage } from '../nats/index.ts'
import type { Logger } from '../util/index.ts'
import type { PartitionMetrics } from '../metrics/index.ts'
import { failPoisoned, localDigest, poisonedInstance } from './poison.ts'
import type { MailboxCursor } from './cursor.ts'
import type { DedupSource, DedupState } from './dedup.ts'
import type { EntityHost } from './entity-host.ts'
import type { HostPort, InstanceHandler } from './host-port.ts'
import { misrouteReason } from './inbound.ts'
import type { LocalDestination } from './local-delivery.ts'
import type { Inbound, MailboxReader } from './mailbox.ts'
import type { QueryDesk } from './queries.ts'
import type { CommitRound } from './round.ts'
import type { TimerSet } from './timers.ts'

/** The parts of a partition its intake reads and moves. */
export interface IntakeCore {
  readonly p: number
  /** Number of partitions of the hub (checks a message was routed here). */
  readonly partitions: number
  /** The hub's name and when it was created (checks a client sent its messages to this hub). */
  readonly hub: { name: string; created: number }
  readonly logger: Logger
  /** Most messages taken from the mailbox (and from the local queue) in one step. */
  readonly maxBatch: number
  readonly storage: PartitionStorage
  readonly stats: { messages: number; deadLetters: number }
  readonly metrics: PartitionMetrics
  readonly inbox: MailboxReader
  /** Groups other partitions on this connection hand over in memory (local-delivery.ts). */
  readonly local: LocalDestination
  /** Largest record the loop fills. */
  readonly recordLimit: number
  readonly cursor: MailboxCursor
  readonly dedup: DedupState
  readonly timers: TimerSet
  readonly queries: QueryDesk
  readonly entities: EntityHost
  readonly instances: InstanceHandler
  readonly port: HostPort
  /** The round being built. */
  open(): CommitRound
  /** Whether the open round may take more work now. */
  canProcess(): boolean
  /** Re-arms the wake-up for the next due timer. */
  armTimer(): void
}

/** Takes waiting work into the open round, one step at a time. */
export class Intake {
  /** While a condemned mailbox message is taken (careful mode): the error it gets instead of running. */
  #poison: ((msg: ActorMessage) => Error) | undefined
  /**
   * The last of the local queue's messages to run before any handed-over group or mailbox envelope
   * is taken: the rest of a group a round could not take (its sender's later messages must not
   * overtake it), and, after recovery, whatever the queue held (it may hold such a rest).
   */
  #aheadUntil: ActorMessage | undefined
  #started = false

  constructor(readonly core: IntakeCore) {}

  /** Processes one slice of waiting work; false when there was none. */
  async step(): Promise<boolean> {
    // A query waits until the partition has processed the asker's last publish (read-your-writes).
    let progressed = await this.core.queries.answerReady()
    const now = Date.now()
    for (const [key, [, msg]] of this.core.timers.due(now)) {
      if (!this.core.canProcess()) return true
      this.core.timers.delete(key)
      this.core.open().write(key, null)
      delete msg.at
      await this.#deliver(msg)
      progressed = true
    }
    if (!this.#started) {
      this.#started = true
      this.#aheadUntil = this.core.cursor.local.at(-1)
    }
    let budget = this.core.maxBatch
    while (this.core.cursor.local.length > 0 && budget-- > 0 && this.core.canProcess()) {
      const pending = this.#deliver(this.#shiftLocal())
      if (pending !== undefined) await pending
      progressed = true
    }
    if (this.#aheadUntil !== undefined && !this.core.cursor.local.includes(this.#aheadUntil)) {
      this.#aheadUntil = undefined // (taken some other way)
    }
    if (this.#aheadUntil !== undefined) return this.#stepped(progressed)
    if (this.core.local.groups.length > 0) {
      progressed = (await this.#takeHanded(this.core.maxBatch)) || progressed
      // a sender's later mailbox envelope never overtakes a group it handed over before
      if (this.core.local.groups.length > 0 || this.#aheadUntil !== undefined) {
        return this.#stepped(progressed)
      }
    }
    if (this.core.inbox.length > 0 && this.core.canProcess()) {
      await this.#preload(this.core.maxBatch)
      progressed = (await this.#processInbox(this.core.maxBatch)) || progressed
      // what those messages caused locally (e.g. results of synchronous activities) joins the
      // same round rather than waiting for the next one
      budget = this.core.maxBatch
      while (this.core.cursor.local.length > 0 && budget-- > 0 && this.core.canProcess()) {
        const pending = this.#deliver(this.#shiftLocal())
        if (pending !== undefined) await pending
      }
    }
    return this.#stepped(progressed)
  }

  #stepped(progressed: boolean): boolean {
    this.core.armTimer()
    this.core.local.moved()
    return progressed
  }

  /** Takes the local queue's head. */
  #shiftLocal(): ActorMessage {
    const msg = this.core.cursor.local.shift()!
    if (msg === this.#aheadUntil) this.#aheadUntil = undefined
    return msg
  }

  /**
   * Takes the groups other partitions handed over in memory, as mailbox envelopes of theirs would
   * be taken (dedup by the sender's record number); each is confirmed to its sender once this
   * round is durable. A group starts only in a round with room for all of its bytes; the messages
   * the round cannot take after all go into the local queue, which the round's record carries.
   */
  async #takeHanded(budget: number): Promise<boolean> {
    const { groups } = this.core.local
    let taken = false
    while (groups.length > 0 && this.#aheadUntil === undefined && this.core.canProcess()) {
      const group = groups[0]!
      const round = this.core.open()
      if (!round.isEmpty && round.bytes + group.bytes > this.core.recordLimit) break
      groups.shift()
      taken = true
      round.waiters.push(group.confirm)
      round.touched = true
      if (!this.#accept({ partition: group.from, record: group.n })) continue
      for (let idx = 0; idx < group.msgs.length; idx++) {
        if (budget-- <= 0 || !this.core.canProcess()) {
          this.#queueLocally(group, idx)
          break
        }
        const pending = this.#deliverEncoded(group.msgs[idx]!, undefined, idx)
        if (pending !== undefined) await pending
      }
    }
    return taken
  }

  /**
   * Puts the messages of a handed-over group from `idx` on into the local queue; the queue up to
   * them runs before anything else is taken.
   */
  #queueLocally(group: { from: number; n: number; msgs: Uint8Array[] }, idx: number): void {
    for (let i = idx; i < group.msgs.length; i++) {
      try {
        this.core.cursor.local.push(checkMessage(decode(group.msgs[i]!, 'partition message')))
      } catch (err) {
        void this.#deadLetterMessage(undefined, i, group.msgs[i]!, (err as Error).message)
      }
    }
    this.#aheadUntil = this.core.cursor.local.at(-1)
  }

  /** Loads the entities the next `count` mailbox messages address, in parallel. */
  async #preload(count: number): Promise<void> {
    const missing = new Map<string, [type: string, key: string]>()
    const instances = new Set<string>()
    let seen = 0
    for (const item of this.core.inbox) {
      if (item.env === undefined) continue
      for (const msg of messagesOf(item.env)) {
        if (msg === undefined) continue
        if (++seen > count) break
        if (!this.core.entities.want(msg, missing)) this.core.instances.want(msg, instances)
      }
      if (seen > count) break
    }
    const loads: Array<Promise<unknown>> = []
    if (missing.size > 0) loads.push(this.core.entities.preload(missing))
    if (instances.size > 0) loads.push(this.core.instances.preload(instances))
    if (loads.length > 0) await Promise.all(loads)
  }

  async #processInbox(budget: number): Promise<boolean> {
    let progressed = false
    while (this.core.inbox.length > 0 && budget > 0 && this.core.canProcess()) {
      const item = this.core.inbox.first!
      if (item.env === undefined) {
        await this.#deadLetter(item)
      } else {
        budget = await this.#processEnvelope(item.seq, item.env, budget)
        if (this.core.cursor.pos[0] === item.seq) return true // record full mid-envelope
      }
      this.core.inbox.shift()
      progressed = true
    }
    return progressed
  }

  /** Processes messages of one envelope from the current position; returns the budget left. */
  async #processEnvelope(seq: number, env: MailboxEnvelope, budget: number): Promise<number> {
    let idx = this.core.cursor.pos[0] === seq ? this.core.cursor.pos[1] : 0
    if ('c' in env) {
      if (idx === 0) {
        if (!this.#accept({ client: env.c, batch: env.q })) return this.#advance(seq + 1, 0, budget)
      }
      const stale = env.h === undefined || env.h === this.core.hub.created ? undefined : this.#staleHub(env.h)
      for (; idx < env.m.length; idx++) {
        if (budget <= 0 || !this.core.canProcess()) return this.#advance(seq, idx, budget)
        const pending =
          stale === undefined
            ? this.#deliverInbound(env.m[idx]!, seq, idx)
            : this.#refuse(env.m[idx]!, seq, idx, stale)
        if (pending !== undefined) await pending
        budget--
      }
      return this.#advance(seq + 1, 0, budget)
    }
    let offset = 0
    for (const [n, msgs] of env.g) {
      const end = offset + msgs.length
      if (idx < end) {
        if (idx === offset) {
          // stop before the group, not after taking it: a group taken (seen, for dedup) whose
          // first message waits for the next step would be skipped there as a duplicate
          if (budget <= 0 || !this.core.canProcess()) return this.#advance(seq, idx, budget)
          if (!this.#accept({ partition: env.p, record: n })) {
            idx = end
            offset = end
            continue
          }
        }
        for (; idx < end; idx++) {
          if (budget <= 0 || !this.core.canProcess()) return this.#advance(seq, idx, budget)
          const pending = this.#deliverEncoded(msgs[idx - offset]!, seq, idx)
          if (pending !== undefined) await pending
          budget--
        }
      }
      offset = end
    }
    return this.#advance(seq + 1, 0, budget)
  }

  /** Notes an envelope (or handed-over group) from `from` as taken; false for a duplicate, counted. */
  #accept(from: DedupSource): boolean {
    if (this.core.dedup.isDuplicate(from)) {
      this.core.metrics.duplicate()
      return false
    }
    this.core.dedup.accept(from, Date.now())
    return true
  }

  #advance(seq: number, idx: number, budget: number): number {
    this.core.cursor.pos = [seq, idx]
    this.core.open().pos = this.core.cursor.pos
    this.core.open().touched = true
    return budget
  }

  /** Runs an encoded message of envelope `seq` (undefined: of a group handed over in memory). */
  #deliverEncoded(bytes: Uint8Array, seq: number | undefined, idx: number): void | Promise<void> {
    let msg: ActorMessage
    try {
      const where = seq === undefined ? 'handed over' : `in mailbox ${seq}`
      msg = checkMessage(decode(bytes, `partition message ${idx} ${where}`))
    } catch (err) {
      return this.#deadLetterMessage(seq, idx, bytes, (err as Error).message)
    }
    return this.#deliverInbound(msg, seq, idx, bytes)
  }

  /**
   * Runs a message taken from the mailbox (message `idx` of envelope `seq`) if it belongs to this
   * partition; else dead-letters it with the reason, and fails its call, if it is one.
   */
  #deliverInbound(
    msg: ActorMessage,
    seq: number | undefined,
    idx: number,
    bytes?: Uint8Array,
  ): void | Promise<void> {
    const wrong = misrouteReason(msg, this.core.p, this.core.partitions)
    if (this.#poison !== undefined && seq !== undefined) {
      return this.#condemnInbound(msg, seq, idx, bytes ?? encode(msg))
    }
    if (wrong === undefined) return this.#deliver(msg)
    return this.#refuse(msg, seq, idx, new BadInputError(wrong), bytes)
  }

  /**
   * Why a client's messages are not applied here: it sent them to the hub of this name created at
   * `created`, which was deleted; this one was created since.
   */
  #staleHub(created: number): HubNotFoundError {
    const { name } = this.core.hub
    return new HubNotFoundError(
      name,
      `hub '${name}' was deleted and created again since this client connected (it sent to the hub ` +
        `created at ${new Date(created).toISOString()}, this one was created at ` +
        `${new Date(this.core.hub.created).toISOString()}): connect again`,
    )
  }

  /** Refuses a message with `err`: its call fails with it, and it goes to the dead-letter stream. */
  #refuse(
    msg: ActorMessage,
    seq: number | undefined,
    idx: number,
    err: Error,
    bytes?: Uint8Array,
  ): Promise<void> {
    if ('r' in msg && msg.r !== undefined) this.core.open().reply(msg.r, [msg.r[1], 0, toErrorInfo(err)])
    return this.#deadLetterMessage(seq, idx, bytes ?? encode(msg), err.message)
  }

  /**
   * Moves one message of a mailbox envelope to the dead-letter stream; the others go on. A message
   * of a group handed over in memory (`seq` undefined) has no mailbox position to deduplicate by.
   */
  async #deadLetterMessage(
    seq: number | undefined,
    idx: number,
    bytes: Uint8Array,
    reason: string,
  ): Promise<void> {
    this.core.logger.warn('moving a partition message to the dead-letter stream', {
      p: this.core.p,
      seq,
      idx,
      reason,
    })
    await this.core.storage.deadLetter(seq, bytes, reason, seq === undefined ? undefined : idx)
    this.core.stats.deadLetters++
  }

  /**
   * Runs one message: holds it as a timer if it is due later, else applies the operation. Returns
   * a promise only when the message had to wait (a state load, an asynchronous operation): the
   * loop's hot path costs no promise per message.
   */
  #deliver(msg: ActorMessage): void | Promise<void> {
    this.core.stats.messages++
    if (msg.at !== undefined && msg.at > Date.now() && msg.k !== 'start') {
      const key = itemKey.timer(this.core.p, this.core.open().timerName())
      const value: TimerValue = [msg.at, msg]
      this.core.timers.set(key, value)
      this.core.open().write(key, encode(value))
      return
    }
    switch (msg.k) {
      case 'op':
      case 'lock':
      case 'unlock':
        return this.core.entities.handle(msg)
      default:
        return this.core.instances.handle(msg)
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Careful mode (careful.ts): one unit at a time

  /**
   * The unit a careful step takes next, in the order a normal step takes work: the first due
   * timer, the local queue's head, then the next mailbox message (from the cursor's position; the
   * first one that runs from there, past duplicate or undecodable envelopes). Undefined when none
   * waits, or the mailbox reader has not delivered the next envelope yet.
   */
  nextUnit(now: number): ProbeUnit | undefined {
    const due = this.core.timers.due(now)[0]
    if (due !== undefined) return ['t', due[0]]
    const head = this.core.cursor.local[0]
    if (head !== undefined) return ['l', localDigest(head)]
    const item = this.core.inbox.first
    if (item === undefined) return undefined
    const [seq, idx] = this.core.cursor.pos
    return ['m', item.seq, seq === item.seq ? idx : 0]
  }

  /** Runs one unit named by {@link nextUnit}, as a normal step would. */
  async runUnit(unit: ProbeUnit): Promise<void> {
    if (unit[0] === 'm') {
      await this.#preload(1)
      await this.#processInbox(1)
    } else {
      const msg = this.#takeUnit(unit)
      if (msg !== undefined) await this.#deliver(msg)
    }
    this.core.armTimer()
  }

  /**
   * Moves the unit named by {@link nextUnit} to the dead-letter stream instead of running it, and
   * tells whoever waits for it that it failed with `error(msg)` (see careful.ts).
   */
  async condemnUnit(unit: ProbeUnit, error: (msg: ActorMessage) => Error): Promise<void> {
    if (unit[0] === 'm') {
      this.#poison = error
      try {
        await this.#processInbox(1)
      } finally {
        this.#poison = undefined
      }
    } else {
      const msg = this.#takeUnit(unit)
      if (msg !== undefined) {
        const err = error(msg)
        this.#logPoison(unit, err)
        await this.#failPoisoned(msg, err)
        await this.core.port.deadLetterMessage(msg, err.message)
      }
    }
    this.core.armTimer()
  }

  /** Takes a timer's message (the timer is deleted) or the local queue's head. */
  #takeUnit(unit: ProbeUnit): ActorMessage | undefined {
    if (unit[0] === 'l') return this.core.cursor.local.length > 0 ? this.#shiftLocal() : undefined
    if (unit[0] !== 't') return undefined
    const key = unit[1]
    const found = this.core.timers.due(Number.MAX_SAFE_INTEGER).find(([k]) => k === key)
    if (found === undefined) return undefined
    this.core.timers.delete(key)
    this.core.open().write(key, null)
    const msg = found[1][1]
    delete msg.at
    return msg
  }

  /** The condemned mailbox message: dead-lettered (deduplicated by its position), its caller told. */
  async #condemnInbound(msg: ActorMessage, seq: number, idx: number, bytes: Uint8Array): Promise<void> {
    const err = this.#poison!(msg)
    this.#poison = undefined // one message only
    this.#logPoison(['m', seq, idx], err)
    await this.#failPoisoned(msg, err)
    await this.core.storage.deadLetter(seq, bytes, err.message, idx)
    this.core.stats.deadLetters++
  }

  /** Tells whoever waits for a poison message, and fails the instance it was addressed to. */
  async #failPoisoned(msg: ActorMessage, err: Error): Promise<void> {
    failPoisoned(this.core.port, msg, err)
    // an operation that carried its section's release still releases (else the lock stays held)
    if (msg.k === 'op') this.core.entities.releaseFor(msg)
    const instance = poisonedInstance(msg)
    if (instance !== undefined) await this.core.instances.failInstance(instance, err)
  }

  #logPoison(unit: ProbeUnit, err: Error): void {
    this.core.logger.error('poison message moved to the dead-letter stream', {
      p: this.core.p,
      unit: unit.join(':'),
      reason: err.message,
    })
  }

  /** Moves an undecodable mailbox message to the dead-letter stream and steps past it. */
  async #deadLetter(item: Inbound): Promise<void> {
    this.core.logger.warn('moving undecodable mailbox message to the dead-letter stream', {
      p: this.core.p,
      seq: item.seq,
      reason: item.error,
    })
    await this.core.storage.deadLetter(item.seq, item.raw!, item.error ?? 'undecodable')
    this.core.stats.deadLetters++
    this.#advance(item.seq + 1, 0, 0)
  }
}

function messagesOf(env: MailboxEnvelope): Iterable<ActorMessage | undefined> {
  return 'c' in env ? env.m : []
}

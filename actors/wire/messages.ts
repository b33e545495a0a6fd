/**
 * The wire model: what travels in mailboxes, commit records, replies and queries. Every top-level
 * value carries `v` (the format version); the codec refuses versions it does not know. Field names
 * are short because millions of these are encoded per minute.
 */
import { CodecError, type ErrorInfo } from '../errors.ts'

/** Version of every envelope this build writes and accepts. */
export const WIRE_VERSION = 1

/** Where a call's result goes: the caller's reply subject and its request number. */
export type ReplyTo = [inbox: string, rid: number]

/**
 * One entity operation: a signal when `r` is absent, a call when present. `at` (ms since the
 * epoch) makes it a scheduled signal, held by the receiving partition until that time.
 */
export interface EntityOp {
  k: 'op'
  /** Entity type name. */
  t: string
  /** Entity key. */
  key: string
  /** Operation (method) name. */
  op: string
  /** Arguments. */
  a: unknown[]
  r?: ReplyTo
  /** Set when an orchestration made the call: the result goes back to it as a `done`. */
  ro?: OrchestrationReplyTo
  /**
   * Set on a call that travelled in a lock request, once its entity is locked (only ever on this
   * partition's local queue, in its lock queues or timers, never in a mailbox): the lock request
   * to forward, or the grant to send, when the call completed. The call's `done` goes in its
   * {@link LockMessage.res} / {@link DoneMessage.res} instead of on its own, in the same round.
   */
  fw?: LockMessage | DoneMessage
  /**
   * Set on the last call an orchestration made to an entity of its critical section in the step
   * that released the section: the caller's (`ro`) lock on the entity goes right after the
   * operation ran, whatever its outcome — instead of an unlock message of its own. Sent only while
   * every node of the hub reads it (wire feature `f:release-ops`).
   */
  rl?: 1
  at?: number
  /**
   * W3C trace context of the span that sent it (`traceparent`, then a space and the `tracestate`
   * when there is one); absent when the sender does not trace (runtime/metrics/tracing.ts).
   */
  tc?: string
}

/** Who waits for an entity call's result when an orchestration made it: [instance id, task seq]. */
export type OrchestrationReplyTo = [instanceId: string, seq: number]

/** Starts an orchestration instance (from a client, a parent or an entity). */
export interface StartMessage {
  k: 'start'
  /** Instance id. */
  i: string
  /** Orchestration name. */
  n: string
  /** Input. */
  in: unknown
  r?: ReplyTo
  /** Parent instance and task seq, for sub-orchestrations. */
  pa?: OrchestrationReplyTo
  /** Replace an instance in a terminal state instead of rejecting the start. */
  replace?: boolean
  /**
   * Set when the client generated the id (a random UUID): no instance can have it, so the
   * partition skips looking for a stored one.
   */
  fresh?: 1
  /**
   * Set by clients that fill in the id, name and input they sent themselves: the reply leaves them
   * out — `[0, outcome]` when the instance ended in the round that started it (its status fields
   * but those, the input kept if it continued as new), else `0`. Older nodes ignore it and answer
   * with the id, or `[id, status]`.
   */
  sl?: 1
  at?: number
  /**
   * Set on the copy a delayed start keeps until its time: its input was checked against the
   * orchestration's input schema when the start arrived, and is the schema's output.
   */
  ck?: 1
  /**
   * W3C trace context of the span that sent it (`traceparent`, then a space and the `tracestate`
   * when there is one); absent when the sender does not trace (runtime/metrics/tracing.ts).
   */
  tc?: string
}

/** An external event raised to an instance. */
export interface EventMessage {
  k: 'ev'
  i: string
  /** Event name. */
  n: string
  /** Event data. */
  d: unknown
  r?: ReplyTo
  at?: number
}

/** The completion of an instance's task: activity, sub-orchestration, entity call, lock, timer. */
export interface DoneMessage {
  k: 'done'
  i: string
  /** Task sequence number. */
  s: number
  ok: 0 | 1
  v?: unknown
  err?: ErrorInfo
  /**
   * Set on the answer to a lock request: every entity of the critical section, now all held by
   * the instance. An instance that no longer waits for that lock (it ended, was purged, or moved
   * on) gives them back.
   */
  lk?: Array<[type: string, key: string]>
  /**
   * On a grant (with `lk`): the outcomes of the calls that travelled in the lock request, in the
   * order their entities were locked (see {@link LockMessage.res}). The instance takes them in the
   * same step as the grant.
   */
  res?: DoneMessage[]
  at?: number
}

/** Management of an instance. */
export interface ControlMessage {
  k: 'ctl'
  i: string
  op: 'terminate' | 'suspend' | 'resume' | 'purge'
  reason?: string
  r?: ReplyTo
  at?: number
}

/**
 * Waits for an instance to finish. Answered (after a commit) with the instance record without
 * history once it is Completed, Failed or Terminated; with `null` when it does not exist; with `0`
 * when `ms` passed first (the client asks again). Not kept across restarts: a client whose wait
 * got no answer asks again.
 */
export interface WaitMessage {
  k: 'wait'
  i: string
  /** How long the owner holds the wait, in ms (at most 60,000). */
  ms: number
  r?: ReplyTo
  at?: number
}

/** Lock request travelling along the sorted entities of a critical section. */
export interface LockMessage {
  k: 'lock'
  t: string
  key: string
  /** The orchestration that asks, and its task seq. */
  o: OrchestrationReplyTo
  /** Entities still to lock after this one, in order. */
  rest: Array<[type: string, key: string]>
  /** Every entity of the critical section (carried to the grant, see {@link DoneMessage.lk}). */
  all?: Array<[type: string, key: string]>
  /**
   * Calls of the orchestration made with the lock request: each runs at its entity as soon as that
   * entity is locked (the rest travel on with the request).
   */
  ops?: EntityOp[]
  /**
   * The outcomes (`done` messages to the instance `o`) of the calls in {@link ops} that already
   * ran at the entities locked before this one: they ride with the request to the grant.
   */
  res?: DoneMessage[]
  at?: number
}

/** Releases an entity locked by an orchestration. */
export interface UnlockMessage {
  k: 'unlock'
  t: string
  key: string
  /** The owner's instance id; ignored when `f` is set. */
  o: string
  /**
   * Forced release (a management action): the lock is released whoever holds it, and a call's
   * reply carries the holder's instance id (null when the entity was not locked).
   */
  f?: 1
  r?: ReplyTo
  at?: number
}

/** Any message to an actor. */
export type ActorMessage =
  | EntityOp
  | StartMessage
  | EventMessage
  | DoneMessage
  | ControlMessage
  | WaitMessage
  | LockMessage
  | UnlockMessage

/** A batch of messages from one client to one partition; `q` numbers the client's batches. */
export interface ClientEnvelope {
  v: typeof WIRE_VERSION
  c: string
  q: number
  m: ActorMessage[]
  /**
   * When the hub the client opened was created (its record's `created`): a partition of a hub
   * deleted and created since refuses the messages with `HubNotFoundError` (and dead-letters them)
   * instead of applying them. Absent from older clients and from dead letters sent again.
   */
  h?: number
}

/**
 * Messages from one partition's committed records to another partition, grouped by record. Each
 * message travels pre-encoded (it was encoded once, when its size was checked).
 */
export interface PartitionEnvelope {
  v: typeof WIRE_VERSION
  p: number
  g: Array<[n: number, msgs: Uint8Array[]]>
}

/** What a mailbox message holds. */
export type MailboxEnvelope = ClientEnvelope | PartitionEnvelope

/** The outcome of one call: `[rid, 1, encoded result]` or `[rid, 0, error]`. */
export type Reply = [rid: number, ok: 1, value: Uint8Array] | [rid: number, ok: 0, error: ErrorInfo]

/** Replies for one client, released after the commit that produced them. */
export interface ReplyEnvelope {
  v: typeof WIRE_VERSION
  r: Reply[]
}

/** A timer held in partition state: due time and the message it delivers. */
export type TimerValue = [due: number, msg: ActorMessage]

/**
 * A unit of work named by a probe record (see {@link CommitRecord.x}): `['m', seq, idx]` the first
 * mailbox message run from that position, `['l', digest]` the local queue's head, `['t', key]` a
 * due timer.
 */
export type ProbeUnit = ['m', seq: number, idx: number] | ['l', digest: string] | ['t', key: string]

/** A position in a mailbox: the stream sequence of an envelope and the index of a message in it. */
export type MailboxPosition = [seq: number, idx: number]

/** The writer of a commit record: its epoch and the token of its partition instance. */
export interface LogWriter {
  e: number
  /** Absent on records written before writers had tokens. */
  o?: number | undefined
}

/** An activity invocation, as the instance host hands it to a pool or the task work queue. */
export interface ActivityTask {
  instanceId: string
  seq: number
  name: string
  input: unknown
  attempt: number
  /** Trace context of the step that scheduled it (see {@link StartMessage.tc}); absent when not tracing. */
  tc?: string
  /** The call's id, `ActivityContext.activityId` (absent on tasks of older versions). */
  id?: string
}

/**
 * An activity task as it is stored (the pending activity's item `a.*`) and sent (the task work
 * queue): `[instanceId, seq, name, input, attempt]`, then the trace context (null when there is
 * none and an id follows) and the call's id, each only when there is one.
 */
export type ActivityTaskTuple = [string, number, string, unknown, number, (string | null)?, string?]

/** The stored and sent form of a task (see {@link ActivityTaskTuple}). */
export function activityTaskTuple(task: ActivityTask): ActivityTaskTuple {
  const tuple: ActivityTaskTuple = [task.instanceId, task.seq, task.name, task.input, task.attempt]
  if (task.tc !== undefined || task.id !== undefined) tuple.push(task.tc ?? null)
  if (task.id !== undefined) tuple.push(task.id)
  return tuple
}

/** The task a decoded {@link ActivityTaskTuple} holds. */
export function activityTaskOf(tuple: ActivityTaskTuple): ActivityTask {
  const [instanceId, seq, name, input, attempt, tc, id] = tuple
  const task: ActivityTask = { instanceId, seq, name, input, attempt }
  if (typeof tc === 'string') task.tc = tc
  if (typeof id === 'string') task.id = id
  return task
}

/**
 * The id of an activity call (`ActivityContext.activityId`): the instance, its execution (the
 * number of the record that started it: unique per execution, also across an id reused by
 * `replace`) and the seq of the call's first attempt.
 */
export function activityCallId(instanceId: string, execution: number, firstSeq: number): string {
  return `${instanceId}:${execution}:${firstSeq}`
}

/** Outcome of one activity run, as a worker reports it. */
export type ActivityOutcome = { ok: 1; value: unknown } | { ok: 0; error: ErrorInfo }

/**
 * One commit record: the outcome of every step processed since the previous record. Records are
 * the partition's durable log; replaying them reproduces the committed state without running user
 * code (Netherite logs step outputs, not inputs).
 */
export interface CommitRecord {
  v: typeof WIRE_VERSION
  /** Record number, consecutive per partition across owners. */
  n: number
  /** Epoch of the owner that wrote it. */
  e: number
  /**
   * Random token of the partition instance that wrote it (absent on records of older versions):
   * tells two runs of one epoch apart (see `runtime/partition/log-fence.ts`).
   */
  o?: number
  /** Set on the record a new owner appends when it takes the partition over. */
  claim?: 1
  /**
   * On a claim: the token (`o`) of this node's previous run of the partition, which stopped with an
   * internal failure — alive, it did not end — so crash counting does not count that run's claim or
   * probe as an owner that ended (`runtime/partition/crash-count.ts`).
   */
  fo?: number
  /**
   * Set on a probe record (careful mode, `runtime/partition/careful.ts`): the unit of work the
   * owner is about to run alone — a mailbox message from position [seq, idx], the local queue's
   * head (by a digest of its encoding), or a due timer (by its item key). Otherwise empty (same
   * `pos` and `lq`, no writes); a node that does not know the field replays it as an empty record.
   */
  x?: ProbeUnit
  /**
   * Set on the record an owner appends when it stops gracefully having committed nothing since its
   * claim: its claim was not an owner that ended (crash counting, `runtime/partition/crash-count.ts`).
   * Otherwise empty, like a probe.
   */
  left?: 1
  /**
   * Set on the record an owner appends right before it first takes work after its claim (normal
   * mode): from here on, ending without a commit counts as an owner that ended (crash counting,
   * `runtime/partition/crash-count.ts`). An owner that never took work (its consumer stalled, its
   * partition idle) does not count. Otherwise empty, like a probe.
   */
  b?: 1
  /**
   * Set on the record an idle owner of a replicated hub's partition appends when it has appended
   * nothing for a while: its last record, which fences its appends, moves up, so the cut of the
   * shared log stream from below (`runtime/nats/stream-trim.ts`) is not held there. Says nothing
   * about work (crash counting passes it over). Otherwise empty, like a probe.
   */
  keep?: 1
  /** Mailbox position after this record. */
  pos: MailboxPosition
  /** Item writes: encoded value, or null for a delete. Keys: `e.*` entities, `t.*` timers. */
  w: Array<[key: string, value: Uint8Array | null]>
  /** Client dedup updates: last batch number applied per client, and when. */
  dc: Array<[client: string, q: number, at: number, seen?: number]>
  /** Partition dedup updates: last record number applied per origin partition. */
  dp: Array<[partition: number, n: number, seen?: number]>
  /** Messages to other partitions (each pre-encoded), sent after this record is durable. */
  out: Array<[partition: number, msgs: Uint8Array[]]>
  /** Replies to clients, sent after this record is durable. */
  rep: Array<[inbox: string, replies: Reply[]]>
  /** Messages between actors of this partition that were not yet processed at the seal. */
  lq: ActorMessage[]
}

/**
 * Queries a client sends to a partition's owner over core NATS. `s` is the mailbox sequence of
 * the client's last acknowledged publish to that partition: the answer waits until the partition
 * has processed it, so a client reads its own writes. `w: 1` marks the first read of a watcher:
 * the partition publishes its change messages again (see `runtime/partition/change-feed.ts`).
 */
export type Query =
  | { v: typeof WIRE_VERSION; k: 'read'; t: string; key: string; s?: number; w?: 1 }
  | { v: typeof WIRE_VERSION; k: 'list'; t: string; prefix: string; after: string; limit: number; s?: number }
  /**
   * An instance's record; with `history`, its history from event `hf` on (default 0), as much as
   * fits one answer (the view's `historyNext` says where the next page starts).
   */
  | { v: typeof WIRE_VERSION; k: 'status'; i: string; history?: boolean; hf?: number; s?: number; w?: 1 }
  | { v: typeof WIRE_VERSION; k: 'instances'; f: InstanceFilter; after: string; limit: number; s?: number }
  /** Who holds the lock of an entity (a critical section of an orchestration). */
  | { v: typeof WIRE_VERSION; k: 'lock'; t: string; key: string; s?: number }
  /** The scheduled signals (entity operations with a future `at`) the partition holds for an entity. */
  | { v: typeof WIRE_VERSION; k: 'timers'; t: string; key: string; s?: number }
  /** Replies to `inbox` the client still waits for (it may have lost them in a reconnect). */
  | { v: typeof WIRE_VERSION; k: 'replies'; inbox: string; rids: number[]; s?: number }

/** Filter of instance listings and purges. */
export interface InstanceFilter {
  statuses?: string[]
  createdFrom?: number
  createdTo?: number
  namePrefix?: string
  idPrefix?: string
}

/** Answer to a query. */
export type QueryAnswer =
  | { v: typeof WIRE_VERSION; ok: 1; exists: boolean; state: Uint8Array | null; n: number }
  | { v: typeof WIRE_VERSION; ok: 1; keys: string[]; more: boolean }
  | { v: typeof WIRE_VERSION; ok: 1; instance: Uint8Array | null; n: number }
  | { v: typeof WIRE_VERSION; ok: 1; summaries: Array<[id: string, summary: Uint8Array]>; more: boolean }
  /**
   * `held`: those of the asked calls the partition keeps for a type its node does not run (as
   * `e:Type`), waiting for a node that runs it (the client says so when such a call times out).
   */
  | { v: typeof WIRE_VERSION; ok: 1; replies: Reply[]; held?: Array<[rid: number, name: string]> }
  | { v: typeof WIRE_VERSION; ok: 1; holder: string | null; queued: number; n: number }
  | { v: typeof WIRE_VERSION; ok: 1; signals: Array<[at: number, op: string, args: unknown[]]>; n: number }
  /** A refusal; `again`: the owner stopped before it could answer, so the next owner is asked. */
  | { v: typeof WIRE_VERSION; ok: 0; error: ErrorInfo; again?: 1 }

const isObject = (x: unknown): x is Record<string, unknown> => typeof x === 'object' && x !== null

const str = (m: Record<string, unknown>, f: string) => {
  if (typeof m[f] !== 'string') throw new CodecError(`message field ${f} is not a string`)
}
const pair = (x: unknown, what: string) => {
  if (!Array.isArray(x) || typeof x[0] !== 'string' || typeof x[1] !== 'number') {
    throw new CodecError(`message field ${what} is not [string, number]`)
  }
}

/** Checks a list of `[type, key]` pairs (the entities of a lock request). */
const entities = (x: unknown, what: string) => {
  if (!Array.isArray(x)) throw new CodecError(`message field ${what} is not an array`)
  for (const e of x) {
    if (!Array.isArray(e) || typeof e[0] !== 'string' || typeof e[1] !== 'string') {
      throw new CodecError(`message field ${what} holds an entry that is not [type, key]`)
    }
  }
}

/** Checks the call outcomes riding with a lock request or grant: `done` messages to `instance`. */
const results = (x: unknown, instance: string) => {
  if (!Array.isArray(x)) throw new CodecError('message field res is not an array')
  for (const r of x) {
    const done = isObject(r) && r.k === 'done' ? checkMessage(r) : undefined
    if (done?.k !== 'done' || done.lk !== undefined || done.res !== undefined) {
      throw new CodecError('message field res holds a message that is not the outcome of a call')
    }
    if (done.i !== instance) {
      throw new CodecError(`message field res holds an outcome for instance '${done.i}', not '${instance}'`)
    }
  }
}

/** Checks that a decoded value is an actor message; throws {@link CodecError} naming the field. */
export function checkMessage(m: unknown): ActorMessage {
  if (!isObject(m)) throw new CodecError('message is not a map')
  if (m.at !== undefined && typeof m.at !== 'number') throw new CodecError('message field at is not a number')
  if (m.r !== undefined) pair(m.r, 'r (reply to)')
  if (m.tc !== undefined && typeof m.tc !== 'string') throw new CodecError('message field tc is not a string')
  switch (m.k) {
    case 'op':
      str(m, 't')
      str(m, 'key')
      str(m, 'op')
      if (!Array.isArray(m.a)) throw new CodecError('message field a (arguments) is not an array')
      if (m.ro !== undefined) pair(m.ro, 'ro')
      if (m.rl !== undefined && (m.rl !== 1 || m.ro === undefined)) {
        throw new CodecError("message field rl (release the caller's lock) is not 1 on an orchestration call")
      }
      if (m.fw !== undefined) {
        const fw = checkMessage(m.fw)
        if (m.ro === undefined || (fw.k !== 'lock' && (fw.k !== 'done' || fw.lk === undefined))) {
          throw new CodecError('message field fw is not the lock request or grant of an orchestration call')
        }
      }
      break
    case 'start':
      str(m, 'i')
      str(m, 'n')
      if (m.pa !== undefined) pair(m.pa, 'pa')
      break
    case 'ev':
      str(m, 'i')
      str(m, 'n')
      break
    case 'done':
      str(m, 'i')
      if (typeof m.s !== 'number') throw new CodecError('message field s is not a number')
      if (m.lk !== undefined) entities(m.lk, 'lk')
      if (m.res !== undefined) {
        if (m.lk === undefined)
          throw new CodecError('message field res is set on a done that is not a grant (no lk)')
        results(m.res, m.i as string)
      }
      break
    case 'ctl':
      str(m, 'i')
      if (!['terminate', 'suspend', 'resume', 'purge'].includes(m.op as string)) {
        throw new CodecError(`unknown control operation ${JSON.stringify(m.op)}`)
      }
      break
    case 'wait':
      str(m, 'i')
      if (typeof m.ms !== 'number') throw new CodecError('message field ms is not a number')
      break
    case 'lock':
      str(m, 't')
      str(m, 'key')
      pair(m.o, 'o')
      entities(m.rest, 'rest')
      if (m.all !== undefined) entities(m.all, 'all')
      if (m.res !== undefined) results(m.res, (m.o as [string, number])[0])
      if (m.ops !== undefined) {
        if (!Array.isArray(m.ops)) throw new CodecError('message field ops is not an array')
        const rest = m.rest as unknown[]
        const locks = (t: string, key: string) =>
          (t === m.t && key === m.key) || rest.some((e) => Array.isArray(e) && e[0] === t && e[1] === key)
        const called = new Set<string>()
        for (const op of m.ops) {
          const call = checkMessage(op)
          if (call.k !== 'op' || call.ro === undefined) {
            throw new CodecError('message field ops holds a message that is not an orchestration call')
          }
          // a section calls an entity at most once at a time (actors/orchestration/locks.ts), so a
          // request carries at most one call per entity: the one whose outcome carries the request on
          // (its outcome rides to the grant of the instance that asked)
          if (call.ro[0] !== (m.o as [string, number])[0]) {
            throw new CodecError(
              `message field ops holds a call of instance '${call.ro[0]}', not the one that asks`,
            )
          }
          const id = `${call.t}@${call.key}`
          if (called.has(id)) throw new CodecError(`message field ops holds two calls to ${id}`)
          called.add(id)
          // (a call no entity on the way runs would be dropped at the last one, never answered)
          if (!locks(call.t, call.key)) {
            throw new CodecError(
              `message field ops holds a call to ${call.t}@${call.key}, which the lock request does not lock`,
            )
          }
        }
      }
      break
    case 'unlock':
      str(m, 't')
      str(m, 'key')
      str(m, 'o')
      break
    default:
      throw new CodecError(`unknown message kind ${JSON.stringify(m.k)}`)
  }
  return m as unknown as ActorMessage
}

/** Checks the shape of a decoded mailbox envelope, including every message in it. */
export function checkEnvelope(x: unknown): MailboxEnvelope {
  if (!isObject(x)) throw new CodecError('envelope is not a map')
  if (x.v !== WIRE_VERSION) throw new CodecError(`unsupported envelope version ${JSON.stringify(x.v)}`)
  if (typeof x.c === 'string') {
    if (typeof x.q !== 'number' || !Array.isArray(x.m)) throw new CodecError('client envelope needs q and m')
    if (x.h !== undefined && typeof x.h !== 'number')
      throw new CodecError('client envelope field h is not a number')
    x.m.forEach(checkMessage)
    return x as unknown as ClientEnvelope
  }
  if (typeof x.p === 'number') {
    if (!Array.isArray(x.g)) throw new CodecError('partition envelope needs g')
    for (const group of x.g) {
      if (!Array.isArray(group) || typeof group[0] !== 'number' || !Array.isArray(group[1])) {
        throw new CodecError('partition envelope group is not [n, messages]')
      }
      for (const m of group[1])
        if (!(m instanceof Uint8Array)) throw new CodecError('partition message is not bytes')
    }
    return x as unknown as PartitionEnvelope
  }
  throw new CodecError('envelope has neither a client (c) nor a partition (p) sender')
}

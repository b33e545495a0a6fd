/**
 * Poison messages: how one is named in a probe record (a local message by a digest of its
 * encoding), described in its error and dead-letter reason, and how whoever waits for it is told
 * it failed. Used by careful mode (careful.ts) and the intake (intake.ts).
 */
import { createHash } from 'node:crypto'
import { PoisonMessageError, toErrorInfo } from '../../actors/index.ts'
import type { ActorMessage } from '../../actors/wire/index.ts'
import { encode } from '../nats/index.ts'
import type { HostPort } from './host-port.ts'

/** The digest that names a local message in a probe (stable across owners: same bytes, same name). */
export function localDigest(msg: ActorMessage): string {
  return createHash('sha256').update(encode(msg)).digest('base64url').slice(0, 16)
}

/** What a poison message was, for its error and its dead-letter reason. */
export function describePoison(msg: ActorMessage): string {
  switch (msg.k) {
    case 'op':
      return `entity ${msg.t}@${msg.key} operation '${msg.op}'`
    case 'lock':
    case 'unlock':
      return `entity ${msg.t}@${msg.key} ${msg.k} request`
    case 'start':
      return `orchestration '${msg.n}' instance '${msg.i}' start`
    case 'ev':
      return `orchestration instance '${msg.i}' step on event '${msg.n}'`
    case 'done':
      return `orchestration instance '${msg.i}' step on the outcome of task ${msg.s}${msg.lk === undefined ? '' : ' (a lock grant)'}`
    case 'ctl':
      return `orchestration instance '${msg.i}' ${msg.op} request`
    case 'wait':
      return `wait for orchestration instance '${msg.i}'`
  }
}

/** The error a poison message's caller gets (its message is also the dead-letter reason). */
export function poisonError(msg: ActorMessage, deaths: number): PoisonMessageError {
  return new PoisonMessageError(
    `${describePoison(msg)} ended its process or thread ${deaths} times in a row ` +
      `(crash, process.exit, out of memory, or a hang); moved to the dead-letter stream`,
  )
}

/**
 * Tells whoever waits for a dead-lettered message that it failed: a client call's caller, the
 * orchestration that called an entity or asked for a lock, a parent waiting for a sub-orchestration.
 * An orchestration instance the message was addressed to is failed by the caller of this function
 * (see {@link poisonedInstance}).
 */
export function failPoisoned(port: HostPort, msg: ActorMessage, err: Error): void {
  const info = toErrorInfo(err)
  if ('r' in msg && msg.r !== undefined) port.replyTo(msg.r, [msg.r[1], 0, info])
  if (msg.k === 'op' && msg.ro !== undefined)
    port.send({ k: 'done', i: msg.ro[0], s: msg.ro[1], ok: 0, err: info })
  if (msg.k === 'lock') port.send({ k: 'done', i: msg.o[0], s: msg.o[1], ok: 0, err: info })
  if (msg.k === 'start' && msg.pa !== undefined)
    port.send({ k: 'done', i: msg.pa[0], s: msg.pa[1], ok: 0, err: info })
}

/**
 * The orchestration instance a poison message would have run a step of (an event, a task's
 * outcome, a control message): it fails with the poison's error, as it could never take that
 * message. A start's instance does not exist yet (its caller or parent is told instead).
 */
export function poisonedInstance(msg: ActorMessage): string | undefined {
  return msg.k === 'ev' || msg.k === 'done' || msg.k === 'ctl' ? msg.i : undefined
}

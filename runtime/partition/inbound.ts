/**
 * Checks on what reaches a partition from outside its process, kept apart from the loop so that the
 * loop only asks: does this message belong here, may a reply go to this subject, may this query
 * wait for that mailbox position, and what of an error may an answer show. Anyone who can publish
 * to a hub's subjects can send anything; these checks give each kind of bad message one contained
 * outcome (dead letter, dropped reply, error answer) instead of trusting it.
 *
 * Pure: no I/O. Each check costs a few comparisons (the partition hash of a key, a prefix test), so
 * the loop runs them on every message it takes from its mailbox.
 */
import { BadInputError, partitionOf } from '../../actors/index.ts'
import type { ActorMessage, QueryAnswer } from '../../actors/wire/index.ts'

/**
 * Why message `msg` does not belong to partition `p` of a hub with `partitions` partitions, or
 * undefined when it does. A message is applied only by the partition its target (entity key or
 * instance id) hashes to; applied anywhere else it would make a second copy of its actor.
 */
export function misrouteReason(msg: ActorMessage, p: number, partitions: number): string | undefined {
  const entity = msg.k === 'op' || msg.k === 'lock' || msg.k === 'unlock'
  const target = entity ? msg.key : msg.i
  const home = partitionOf(target, partitions)
  if (home === p) return undefined
  const what = entity ? `${msg.t}@${target}` : `instance '${target}'`
  return `message '${msg.k}' for ${what} belongs to partition ${home}, not ${p}: it was published to the wrong mailbox`
}

/**
 * Whether `subject` may receive the answer to a query: a NATS inbox (`_INBOX.<token>...` as
 * `request()` makes them, or `_INBOX_<name>.<token>...`), never a wildcard nor a hub or JetStream
 * API subject. A query naming any other reply subject is not answered.
 */
export function isAnswerSubject(subject: string | undefined): boolean {
  return subject !== undefined && ANSWER_SUBJECT.test(subject)
}

const ANSWER_SUBJECT = /^_INBOX(?:_[A-Za-z0-9_-]+)?(?:\.[A-Za-z0-9_-]+)+$/

/**
 * Checks the mailbox position `s` a query waits for: absent, or a non-negative integer. Throws
 * {@link BadInputError} naming the value.
 */
export function checkQueryPosition(s: unknown): number {
  if (s === undefined) return 0
  if (typeof s !== 'number' || !Number.isSafeInteger(s) || s < 0) {
    throw new BadInputError(
      `query field s must be a non-negative integer (a mailbox sequence), got ${String(s)}`,
    )
  }
  return s
}

/**
 * The error answered to a query whose mailbox position `s` lies past the last message stored on
 * the partition's mailbox (`last`): the partition would wait for it for ever.
 */
export function positionPastEnd(s: number, p: number, last: number): BadInputError {
  return new BadInputError(
    `query waits for mailbox position ${s}, but the mailbox of partition ${p} ends at ${last}: ` +
      `s must be the sequence of a message published to this partition`,
  )
}

/**
 * An answer as it may leave the node: an error answer shows name, code and message only. Query
 * errors are protocol errors (malformed queries, unknown types, positions past the end); a stack
 * would show only the node's frames and file paths.
 */
export function publicAnswer(answer: QueryAnswer): QueryAnswer {
  if (answer.ok === 1 || answer.error.stack === undefined) return answer
  const { name, message, code } = answer.error
  return { ...answer, error: code === undefined ? { name, message } : { name, code, message } }
}

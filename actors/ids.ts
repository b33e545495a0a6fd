/**
 * Actor identity and partitioning. An actor id is stable text; its partition is a stable hash of
 * that text (FNV-1a, as Netherite), unless the id ends in `!n`, which pins it to partition n mod P.
 */
import { BadInputError } from './errors.ts'

declare const brand: unique symbol
type Brand<T, B extends string> = T & { readonly [brand]: B }

/** A partition number in `[0, partitionCount)`. */
export type PartitionId = Brand<number, 'PartitionId'>
/** The id of an entity: its type name and key, joined as `type@key`. */
export type EntityId = Brand<string, 'EntityId'>

/** Largest key an entity may have, in UTF-8 bytes. */
export const MAX_KEY_BYTES = 1024

const TYPE_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,127}$/

/** Checks an entity type name: letters, digits and `_`, not starting with a digit. */
export function checkTypeName(type: string): string {
  if (typeof type !== 'string' || !TYPE_NAME.test(type)) {
    throw new BadInputError(`entity type name must match ${TYPE_NAME} (got ${JSON.stringify(type)})`)
  }
  return type
}

/** `String.prototype.isWellFormed` (Node 20), which the ES2022 lib does not declare. */
type WellFormed = { isWellFormed(): boolean }

/**
 * Checks an actor key: a non-empty string of at most {@link MAX_KEY_BYTES} bytes, well-formed
 * Unicode. `what` names it in the error (`entity key`, `instance id`).
 *
 * @example checkKey(42, 'instance id') // BadInputError: instance id must be a non-empty string (got number 42)
 */
export function checkKey(key: unknown, what = 'entity key'): string {
  if (typeof key !== 'string' || key.length === 0) {
    throw new BadInputError(`${what} must be a non-empty string (got ${describe(key)})`)
  }
  if (key.length * 3 > MAX_KEY_BYTES && Buffer.byteLength(key) > MAX_KEY_BYTES) {
    throw new BadInputError(`${what} is longer than ${MAX_KEY_BYTES} bytes (got ${Buffer.byteLength(key)})`)
  }
  // A lone surrogate travels as U+FFFD (UTF-8 has no encoding for it): the receiver would hash
  // another key than the sender did, and refuse the message as sent to the wrong partition.
  if (!(key as unknown as WellFormed).isWellFormed()) {
    throw new BadInputError(
      `${what} is not well-formed Unicode: it has a lone surrogate (got ${describe(key)})`,
    )
  }
  return key
}

/** Checks an orchestration instance id (an actor key): {@link checkKey} naming it `instance id`. */
export function checkInstanceId(id: unknown): string {
  return checkKey(id, 'instance id')
}

/** Longest orchestration, activity or event name, in characters. */
export const MAX_NAME_LENGTH = 256

/**
 * Checks the name of an orchestration, activity or event (`what`): a non-empty string of at most
 * {@link MAX_NAME_LENGTH} characters.
 *
 * @example checkName(42, 'event') // BadInputError: event name must be a non-empty string of at most 256 characters (got number 42)
 */
export function checkName(name: unknown, what: string): string {
  if (typeof name !== 'string' || name.length === 0 || name.length > MAX_NAME_LENGTH) {
    throw new BadInputError(
      `${what} name must be a non-empty string of at most ${MAX_NAME_LENGTH} characters (got ${describe(name)})`,
    )
  }
  return name
}

/** Makes the id of an entity from its type name and key. */
export function entityId(type: string, key: string): EntityId {
  return `${checkTypeName(type)}@${checkKey(key)}` as EntityId
}

/** 32-bit FNV-1a over the UTF-16 code units of `text`, as an unsigned integer. */
export function fnv1a(text: string): number {
  let hash = 0x811c9dc5
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i)
    hash = Math.imul(hash, 0x01000193)
  }
  return hash >>> 0
}

/**
 * The partition of an actor id. A key ending in `!n` (n decimal) is placed on partition
 * `n mod partitionCount`, so users can co-locate actors that talk to each other.
 */
export function partitionOf(key: string, partitionCount: number): PartitionId {
  const bang = key.lastIndexOf('!')
  if (bang >= 0 && bang < key.length - 1) {
    const digits = key.slice(bang + 1)
    if (/^\d{1,9}$/.test(digits)) return (Number(digits) % partitionCount) as PartitionId
  }
  return (fnv1a(key) % partitionCount) as PartitionId
}

/**
 * Encodes text into the character set of NATS subject tokens and KV keys (`[A-Za-z0-9_-]`), keeping
 * prefixes: `encodeToken(a + b)` starts with `encodeToken(a)`. Other characters become `=XX` per
 * UTF-8 byte.
 */
export function encodeToken(text: string): string {
  if (SAFE_TOKEN.test(text)) return text
  let out = ''
  for (const ch of text) {
    if (/^[A-Za-z0-9_-]$/.test(ch)) out += ch
    else for (const byte of Buffer.from(ch)) out += '=' + byte.toString(16).toUpperCase().padStart(2, '0')
  }
  return out
}

const SAFE_TOKEN = /^[A-Za-z0-9_-]*$/

/** Inverse of {@link encodeToken}. */
export function decodeToken(token: string): string {
  const bytes: number[] = []
  for (let i = 0; i < token.length; i++) {
    if (token[i] === '=') {
      bytes.push(parseInt(token.slice(i + 1, i + 3), 16))
      i += 2
    } else bytes.push(token.charCodeAt(i))
  }
  return Buffer.from(bytes).toString('utf8')
}

/**
 * A count and its noun, singular for one: `counted(1, 'entity type')` is `1 entity type`,
 * `counted(3, 'activity')` is `3 activities`. `many` is the plural where adding `s` (or `y` to
 * `ies`) is wrong.
 */
export function counted(n: number, one: string, many = pluralOf(one)): string {
  return `${n} ${n === 1 ? one : many}`
}

function pluralOf(noun: string): string {
  return /[^aeiou]y$/.test(noun) ? `${noun.slice(0, -1)}ies` : `${noun}s`
}

/** Short description of a value's type, for error messages. */
export function describe(value: unknown): string {
  if (value === null) return 'null'
  if (Array.isArray(value)) return 'array'
  if (typeof value === 'string')
    return `string ${JSON.stringify(value.length > 40 ? value.slice(0, 40) + '…' : value)}`
  if (typeof value === 'number' || typeof value === 'boolean') return `${typeof value} ${String(value)}`
  return typeof value
}

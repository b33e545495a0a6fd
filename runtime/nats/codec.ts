/**
 * The one place where Basalt turns values into bytes and back: msgpack (msgpackr) for every
 * message, commit record, snapshot and reply. Plain msgpack (no shared record structures), so any
 * process can read what any other wrote; every top-level envelope carries a version field `v`.
 */
import { Packr } from 'msgpackr'
import { BadInputError, CodecError } from '../../actors/index.ts'
import { WIRE_VERSION } from '../../actors/wire/index.ts'
// registers the msgpack extensions (before anything is encoded or decoded): references to large
// values, and the Sets, errors and regular expressions of user values
import './blob-ref.ts'
import './value-types.ts'

const packr = new Packr({ useRecords: false, moreTypes: false, mapsAsObjects: true })

/**
 * The same encoding, but a function anywhere in the value fails it (msgpackr otherwise writes it
 * as undefined) as a symbol does: for what a client sends, where a dropped value is a silent bug.
 * msgpackr's own hook, so values without functions cost nothing more.
 */
const strictPackr = new Packr({
  useRecords: false,
  moreTypes: false,
  mapsAsObjects: true,
  writeFunction: () => {
    throw new Error('a function cannot be sent (functions and symbols do not cross the wire)')
  },
})

/** Encodes a value. Throws {@link CodecError} when it holds something msgpack cannot carry. */
export function encode(value: unknown): Uint8Array {
  try {
    return packr.pack(value)
  } catch (err) {
    throw new CodecError(`cannot encode value: ${(err as Error).message}`, { cause: err })
  }
}

/**
 * A value as it reads back from storage: decoded from its encoding, so a new object that shares
 * nothing with `value` (and, as after a restart, a Map as a plain object, a class instance
 * without its prototype). Scalars and strings, immutable, are returned as they are. Throws
 * {@link CodecError} as {@link encode} does.
 */
export function copyOf(value: unknown): unknown {
  if (typeof value !== 'object' || value === null) return value
  return packr.unpack(encode(value))
}

/** Decodes bytes written by {@link encode}; `what` names the bytes in the error. */
export function decode(bytes: Uint8Array, what = 'message'): unknown {
  try {
    return packr.unpack(bytes)
  } catch (err) {
    throw new CodecError(`${what}: undecodable bytes (${bytes.length} bytes): ${(err as Error).message}`, {
      cause: err,
    })
  }
}

/** Decodes a versioned envelope and checks its version. */
export function decodeEnvelope(bytes: Uint8Array, what: string): Record<string, unknown> {
  const value = decode(bytes, what)
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new CodecError(`${what}: not an envelope (a map with field v)`)
  }
  const v = (value as { v?: unknown }).v
  if (v !== WIRE_VERSION) throw new CodecError(`${what}: unsupported version ${JSON.stringify(v)}`)
  return value as Record<string, unknown>
}

/**
 * Encodes a value as {@link encode} does, but rejects functions and symbols anywhere in it (rather
 * than writing a function as undefined); class instances still lose their prototype. Throws
 * {@link CodecError} naming `what`. The client encodes what it sends with this.
 */
export function encodeChecked(value: unknown, what = 'value'): Uint8Array {
  try {
    return strictPackr.pack(value)
  } catch (err) {
    throw new CodecError(`${what} cannot be serialised: ${(err as Error).message}`, { cause: err })
  }
}

/**
 * The error for a value that failed to encode, naming it (`what`): where it holds what the wire
 * cannot carry (`custom status of … at .cb is a function, which cannot be sent …`, a
 * {@link BadInputError}), else the encoder's words (a {@link CodecError}). Called only once
 * encoding failed, so it costs nothing on the way of values that encode.
 */
export function unencodable(value: unknown, what: string, err: unknown): BadInputError | CodecError {
  const unsendable = unsendableIn(value, what)
  if (unsendable !== undefined) return new BadInputError(unsendable)
  const words = err instanceof CodecError && err.cause instanceof Error ? err.cause.message : String(err)
  return new CodecError(`${what} cannot be serialised: ${words}`, { cause: err })
}

/**
 * Where `value` holds a function or a symbol, which the wire cannot carry, described for an error
 * (`argument 1 of Counter.add (entity 'c1') at .cb is a function, …`, with `where` naming the
 * value); undefined when it holds none.
 */
export function unsendableIn(value: unknown, where: string): string | undefined {
  const found = firstUnsendable(value, '', new Set())
  if (found === undefined) return undefined
  const at = found.path === '' ? where : `${where} at ${found.path}`
  return `${at} is a ${found.kind}, which cannot be sent (functions and symbols do not cross the wire)`
}

/** The first function or symbol in `value`, and its path ('' for the value itself), if any. */
function firstUnsendable(
  value: unknown,
  path: string,
  seen: Set<object>,
): { path: string; kind: string } | undefined {
  if (typeof value === 'function' || typeof value === 'symbol') return { path, kind: typeof value }
  if (typeof value !== 'object' || value === null || seen.has(value) || ArrayBuffer.isView(value)) return
  seen.add(value)
  const entries: Iterable<[string, unknown]> = Array.isArray(value)
    ? value.map((v, i) => [`[${i}]`, v] as [string, unknown])
    : value instanceof Map
      ? [...value].map(([k, v]) => [`.get(${JSON.stringify(String(k))})`, v] as [string, unknown])
      : Object.entries(value).map(([k, v]) => [`.${k}`, v] as [string, unknown])
  for (const [step, v] of entries) {
    const found = firstUnsendable(v, path + step, seen)
    if (found !== undefined) return found
  }
  return
}

/**
 * The one place where Basalt turns values into bytes and back: msgpack (msgpackr) for every
 * message, commit record, snapshot and reply. Plain msgpack (no shared record structures), so any
 * process can read what any other wrote; every top-level envelope carries a version field `v`.
 */
import { Packr } from 'msgpackr'
import { CodecError } from '../../actors/index.ts'
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

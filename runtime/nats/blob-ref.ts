/**
 * The reference that stands in for a large value (runtime/blobs.ts stores the value itself in the
 * hub's blob stream). It travels inside messages, commit records, instance records and entity
 * items like any value, encoded as a msgpack extension (type 0x42): no user value can look like
 * one, and its encoding is ~100 bytes whatever the size of the value.
 *
 * In memory a reference may carry its value: the node that made it keeps the value it stands for,
 * and a reference read from storage gets its value once loaded. Code that hands values to user
 * code unwraps references with {@link valueOf}; everything else keeps and stores the reference.
 * Pure: no I/O (this module is imported by the codec, which registers the extension).
 */
import { addExtension } from 'msgpackr'
import { IllegalStateError } from '../../actors/index.ts'

/** msgpack extension type of a reference. */
const EXTENSION_TYPE = 0x42

/** A large value stored in the blob stream: its id, encoded size, chunk count and sha256. */
export class BlobRef {
  #value: unknown
  #loaded = false

  constructor(
    /** Unique id (random): a blob is written once and never changed. */
    readonly id: string,
    /** Size of the encoded value in bytes. */
    readonly size: number,
    /** Number of chunks it is stored in. */
    readonly chunks: number,
    /** sha256 of the encoded value, hex; checked on read. */
    readonly digest: string,
  ) {}

  /** Whether the value is in memory. */
  get loaded(): boolean {
    return this.#loaded
  }

  /** The value; throws `IllegalStateError` when it was not loaded (a runtime bug). */
  get value(): unknown {
    if (!this.#loaded) throw new IllegalStateError(`large value ${this.id} was used before it was loaded`)
    return this.#value
  }

  /** Attaches the value (made here, or loaded from the blob stream). */
  attach(value: unknown): this {
    this.#value = value
    this.#loaded = true
    return this
  }
}

addExtension({
  Class: BlobRef,
  type: EXTENSION_TYPE,
  write: (ref: BlobRef) => [ref.id, ref.size, ref.chunks, ref.digest],
  read: (data: unknown) => {
    const [id, size, chunks, digest] = data as [string, number, number, string]
    return new BlobRef(String(id), Number(size), Number(chunks), String(digest))
  },
})

/** A value as user code sees it: the value a reference stands for, else the value itself. */
export function valueOf(value: unknown): unknown {
  return value instanceof BlobRef ? value.value : value
}

/** Whether a value is a reference whose value is not in memory yet. */
export function isUnloaded(value: unknown): value is BlobRef {
  return value instanceof BlobRef && !value.loaded
}

/** The references among `values` whose values are not in memory (none: an empty array, no alloc). */
export function unloadedOf(values: readonly unknown[]): BlobRef[] {
  let out: BlobRef[] | undefined
  for (const v of values) if (isUnloaded(v)) (out ??= []).push(v)
  return out ?? NONE
}
const NONE: BlobRef[] = []

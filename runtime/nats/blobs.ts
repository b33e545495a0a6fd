/**
 * Large values by reference. A value whose encoding is over the threshold (default 32 kB) is
 * stored in the hub's blob stream `BASALT_<H>_BLOBS` as chunks `<H>.blob.<id>.<k>` (256 kB each,
 * well under `max_payload`), and a {@link BlobRef} (id, size, chunk count, sha256) takes its place
 * in messages, records and items. Up to a ceiling (default 64 MB); above it the value is refused
 * with `PayloadTooLargeError` naming it and both sizes.
 *
 * Why a stream of its own rather than items of the state bucket: the state bucket is listed by
 * subject (recovery loads `t.`/`l.`/`a.` items, listings read `o.` records, stream info lists
 * keys), and thousands of chunk subjects there would slow every such pass; the blob stream is read
 * only by direct gets of known subjects, and a blob is deleted by its subjects (see `delete`).
 * Chunks are write-once with random ids, so no write needs fencing: a stale owner can only add a
 * blob nobody references. Writes come first: a record or message that holds a reference is appended
 * or published only after every chunk of its blob is acknowledged (the partition's round waits for
 * them; a client writes before it publishes). A crash in between leaves an orphan blob, never a
 * dangling reference. Deletion is best effort, after the commit that drops the last reference.
 */
import { createHash, randomUUID } from 'node:crypto'
import type { NatsConnection } from '@nats-io/transport-node'
import { JetStreamApiError, type JetStreamManager } from '@nats-io/jetstream'
import {
  BadInputError,
  CodecError,
  IllegalStateError,
  PayloadTooLargeError,
  describeValue,
} from '../../actors/index.ts'
import { BlobRef } from './blob-ref.ts'
import { decode, encode } from './codec.ts'
import { fastJetStream, type FastJetStream } from './fast-js.ts'
import { purgesReplaySafely, type HubNames } from './hub.ts'

/** Default size over which a value is stored by reference, in encoded bytes. */
export const DEFAULT_BLOB_THRESHOLD = 32 * 1024
/** Default largest value stored by reference, in encoded bytes. */
export const DEFAULT_MAX_VALUE_BYTES = 64 * 1024 * 1024
/** Chunk size (at most a quarter of `max_payload`). */
const CHUNK_BYTES = 256 * 1024
/** Chunks written or read at once per blob. */
const PARALLEL = 8
/** JetStream's error code for a message delete of a sequence the stream does not hold. */
const SEQUENCE_NOT_FOUND = 10057
/** Attempts per chunk write before the blob write fails. */
const WRITE_ATTEMPTS = 3

/** Size settings of large values. */
export interface BlobLimits {
  /** Encoded size over which a value goes by reference (default 32 kB). */
  threshold: number
  /** Largest encoded value stored by reference (default 64 MB). */
  ceiling: number
}

/** The limits that options ask for, with the defaults. */
export function blobLimits(options: { blobThresholdBytes?: number; maxValueBytes?: number }): BlobLimits {
  return {
    threshold: options.blobThresholdBytes ?? DEFAULT_BLOB_THRESHOLD,
    ceiling: options.maxValueBytes ?? DEFAULT_MAX_VALUE_BYTES,
  }
}

/** {@link blobLimits}, checked: `BadInputError` unless 0 < threshold <= ceiling (integers). */
export function checkedBlobLimits(options: {
  blobThresholdBytes?: number
  maxValueBytes?: number
}): BlobLimits {
  const limits = blobLimits(options)
  const { threshold, ceiling } = limits
  if (!Number.isSafeInteger(threshold) || threshold < 1) {
    throw new BadInputError(`blobThresholdBytes must be a positive integer (got ${describeValue(threshold)})`)
  }
  if (!Number.isSafeInteger(ceiling) || ceiling < threshold) {
    throw new BadInputError(
      `maxValueBytes must be an integer of at least blobThresholdBytes (${threshold}) (got ${describeValue(ceiling)})`,
    )
  }
  return limits
}

/** The blob stream of a hub, seen from one connection. */
export class BlobStore {
  readonly #fast: FastJetStream
  readonly #chunk: number
  #purgeSafety: Promise<boolean> | undefined
  /** Blobs written and read (for tests). */
  written = 0
  read = 0
  deleted = 0

  constructor(
    readonly nc: NatsConnection,
    readonly jsm: JetStreamManager,
    readonly names: HubNames,
    readonly limits: BlobLimits,
  ) {
    this.#fast = fastJetStream(nc)
    this.#chunk = Math.min(CHUNK_BYTES, Math.floor((nc.info?.max_payload ?? 1024 * 1024) / 4))
  }

  /**
   * Stores encoded bytes as a blob; resolves with its reference once every chunk is acknowledged.
   * `what` names the value in the error when it is over the ceiling.
   */
  put(bytes: Uint8Array, what: () => string): { ref: BlobRef; written: Promise<void> } {
    const { ceiling } = this.limits
    if (bytes.length > ceiling) throw new PayloadTooLargeError(what(), bytes.length, ceiling, 'maxValueBytes')
    const id = randomUUID().replace(/-/g, '')
    const chunks = Math.max(1, Math.ceil(bytes.length / this.#chunk))
    const digest = createHash('sha256').update(bytes).digest('hex')
    const ref = new BlobRef(id, bytes.length, chunks, digest)
    const written = this.#write(id, bytes, chunks)
    // the caller may only look at `written` later (at the seal): never an unhandled rejection
    written.catch(() => {})
    return { ref, written }
  }

  /**
   * The value `value` as it should be stored: itself when its encoding is at most the threshold,
   * else a reference (with the value attached) whose chunks are being written — `hold` gets the
   * write to wait for before anything that references it becomes durable. `bytes` is the value's
   * encoding when the caller has it. Throws `PayloadTooLargeError` over the ceiling.
   */
  externalize(
    value: unknown,
    what: () => string,
    hold: (written: Promise<void>) => void,
    bytes?: Uint8Array,
  ): unknown {
    const encoded = bytes ?? encode(value)
    if (encoded.length <= this.limits.threshold) return value
    const { ref, written } = this.put(encoded, what)
    hold(written)
    return ref.attach(value)
  }

  /** Loads the value of a reference (kept on the reference); checks size and digest. */
  async load(ref: BlobRef): Promise<unknown> {
    if (ref.loaded) return ref.value
    const bytes = await this.loadBytes(ref)
    if (ref.loaded) return ref.value
    ref.attach(decode(bytes, `large value ${ref.id}`))
    return ref.value
  }

  /** Reads the encoded value of a reference; checks size and digest. */
  async loadBytes(ref: BlobRef): Promise<Uint8Array> {
    const parts = new Array<Uint8Array>(ref.chunks)
    for (let k = 0; k < ref.chunks; k += PARALLEL) {
      const batch: Array<Promise<void>> = []
      for (let j = k; j < Math.min(ref.chunks, k + PARALLEL); j++)
        batch.push(this.#readChunk(ref, j).then((b) => void (parts[j] = b)))
      await Promise.all(batch)
    }
    const bytes = Buffer.concat(parts)
    if (bytes.length !== ref.size) {
      throw new CodecError(`large value ${ref.id}: ${bytes.length} bytes stored, ${ref.size} expected`)
    }
    const digest = createHash('sha256').update(bytes).digest('hex')
    if (digest !== ref.digest) throw new CodecError(`large value ${ref.id}: digest mismatch`)
    this.read++
    return bytes
  }

  /** Loads every reference given (in parallel). */
  async loadAll(refs: readonly BlobRef[]): Promise<void> {
    await Promise.all(refs.map((ref) => this.load(ref)))
  }

  /**
   * Deletes blobs; never rejects (a failure leaves an orphan and is passed to `onError`). Callers
   * need not wait; the promise settles once every deletion was answered. A blob's subjects are
   * purged in one request, except on a replicated blob stream served by a nats-server before
   * 2.9.18: there a member that crashes while the purge is in its Raft log replays it on restart
   * as a purge of every message up to the stream's end ({@link purgesReplaySafely}), other values'
   * chunks included, so the chunks are removed one message at a time instead.
   */
  delete(refs: Iterable<BlobRef>, onError: (err: unknown) => void = () => {}): Promise<void> {
    const deletions: Array<Promise<unknown>> = []
    for (const ref of refs) {
      this.deleted++
      deletions.push(this.#remove(ref).catch(onError))
    }
    return Promise.all(deletions).then(() => {})
  }

  async #remove(ref: BlobRef): Promise<void> {
    if (await this.#purgesAreSafe()) {
      await this.jsm.streams.purge(this.names.blobStream, { filter: this.names.blob(ref.id, '>') })
      return
    }
    for (let k = 0; k < ref.chunks; k += PARALLEL) {
      const batch: Array<Promise<void>> = []
      for (let j = k; j < Math.min(ref.chunks, k + PARALLEL); j++) batch.push(this.#removeChunk(ref.id, j))
      await Promise.all(batch)
    }
  }

  /** Removes every copy of one chunk (one written again after the duplicate window makes two). */
  async #removeChunk(id: string, k: number): Promise<void> {
    const stream = this.names.blobStream
    const subject = this.names.blob(id, String(k))
    for (;;) {
      const stored = await this.jsm.streams.getMessage(stream, { last_by_subj: subject })
      if (stored === null) return
      const removed = await this.jsm.streams
        .deleteMessage(stream, stored.seq, false)
        .catch((err: unknown) => {
          // removed meanwhile by another deletion of the same blob: look again
          if (err instanceof JetStreamApiError && err.code === SEQUENCE_NOT_FOUND) return false
          throw err
        })
      if (!removed && (await this.jsm.streams.getMessage(stream, { seq: stored.seq })) !== null) {
        throw new IllegalStateError(`large value ${id}: chunk ${k} (sequence ${stored.seq}) was not removed`)
      }
    }
  }

  /** Whether a purge is safe here (see {@link delete}); asked of the stream once, again after a failure. */
  #purgesAreSafe(): Promise<boolean> {
    this.#purgeSafety ??= this.jsm.streams.info(this.names.blobStream).then(
      (info) => info.config.num_replicas <= 1 || purgesReplaySafely(this.nc.info?.version),
      (err: unknown) => {
        this.#purgeSafety = undefined
        throw err
      },
    )
    return this.#purgeSafety
  }

  async #write(id: string, bytes: Uint8Array, chunks: number): Promise<void> {
    for (let k = 0; k < chunks; k += PARALLEL) {
      const batch: Array<Promise<void>> = []
      for (let j = k; j < Math.min(chunks, k + PARALLEL); j++) {
        const part = bytes.subarray(j * this.#chunk, Math.min(bytes.length, (j + 1) * this.#chunk))
        batch.push(this.#writeChunk(id, j, part))
      }
      await Promise.all(batch)
    }
    this.written++
  }

  async #writeChunk(id: string, k: number, part: Uint8Array): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        // the message id makes a retried chunk a duplicate, not a second copy
        await this.#fast.publish(this.names.blob(id, String(k)), part, { msgID: `${id}.${k}` })
        return
      } catch (err) {
        if (attempt >= WRITE_ATTEMPTS || this.nc.isClosed()) throw err
        await new Promise((r) => setTimeout(r, 100 * attempt))
      }
    }
  }

  async #readChunk(ref: BlobRef, k: number): Promise<Uint8Array> {
    const subject = this.names.blob(ref.id, String(k))
    const direct = await this.#fast.lastBySubject(this.names.blobStream, subject)
    if (direct !== null) return direct.data
    // a replica that is catching up may not have it yet: ask the stream leader
    const stored = await this.jsm.streams
      .getMessage(this.names.blobStream, { last_by_subj: subject })
      .catch(() => null)
    if (stored === null) {
      throw new IllegalStateError(`large value ${ref.id} is missing chunk ${k} (deleted, or never stored)`)
    }
    return stored.data
  }
}

/**
 * Watch streams of the client: the committed values of one item (an entity state, an instance
 * record), pushed by its partition's change messages (`H.chg.<p>`), no polling. The change subject
 * is core NATS that anyone may publish on: a message that is not a well-formed commit record is
 * skipped (and logged once per watch), never the end of the stream. `client.close()` completes
 * every open watch ({@link Watches.endAll}); one subscribed after it errors with
 * `ClientClosedError`. A hub found deleted and created again ends every open watch with the
 * client's refusal ({@link Watches.failAll}, see hub-guard.ts).
 */
import { Observable, type Subscriber } from 'rxjs'
import { ClientClosedError } from '../../actors/index.ts'
import type { CommitRecord } from '../../actors/wire/index.ts'
import { decodeEnvelope, type NatsConnection } from '../nats/index.ts'
import { consoleLogger, type Logger } from '../util/index.ts'

const defaultLogger = consoleLogger('basalt client')
import { isThenable } from '../../entities/index.ts'

/** An open watch, as its client's {@link Watches} hold it. */
interface OpenWatch {
  /** Reads the item again (after a reconnect). */
  refresh(): void
  /** Completes the watch (the client closes). */
  end(): void
  /** Ends the watch with `err` (its hub was deleted and created again). */
  fail(err: Error): void
}

/**
 * The open watches of one client: read again after a reconnect (changes published meanwhile
 * were missed), and completed when the client closes — a watch ended by its own client's close
 * is not a failure, and a watcher with no error handler must not get one (rxjs would throw it
 * out of the process); a call or a watch made after the close fails instead, naming itself.
 */
export class Watches {
  readonly #open = new Set<OpenWatch>()
  #closed = false

  /** Whether {@link endAll} was called. */
  get closed(): boolean {
    return this.#closed
  }

  add(watch: OpenWatch): void {
    this.#open.add(watch)
  }

  delete(watch: OpenWatch): void {
    this.#open.delete(watch)
  }

  /** Every open watch reads its item again. */
  refreshAll(): void {
    for (const watch of this.#open) watch.refresh()
  }

  /** Every open watch ends with `err`: the hub they watch is gone (see hub-guard.ts). */
  failAll(err: Error): void {
    for (const watch of [...this.#open]) watch.fail(err)
  }

  /** The client closes: every open watch completes, and later ones error. */
  endAll(): void {
    this.#closed = true
    // (a watch's completion removes it from the set)
    for (const watch of [...this.#open]) watch.end()
  }
}

/** One item to watch (see {@link watchItem}). */
export interface ItemWatch<T> {
  /** The watch in errors: `watchStatus('o1')`. */
  what: string
  /** The change subject of the item's partition. */
  subject: string
  /** The item's key in commit records. */
  itemKey: string
  /** The current value and the record number it was answered at. */
  first: () => Promise<{ n: number; value: Uint8Array | null }>
  /** The value emitted for an item's bytes (null: it does not exist); may load large values. */
  toValue: (bytes: Uint8Array | null) => T | Promise<T>
  /** What of the bytes is compared and handed to `toValue` (default: all of them). */
  project?: (bytes: Uint8Array) => Uint8Array
}

/**
 * Pushes the committed values of one item: subscribes to the partition's change messages first,
 * then takes the current value from `first` (answered at record `n`), then every later change.
 * A value equal (bytewise, after `project`) to the one just emitted is not emitted twice.
 * `toValue` may return a promise (a large value loaded by reference); values are emitted in order.
 */
export function watchItem<T>(
  nc: NatsConnection,
  watches: Watches,
  spec: ItemWatch<T>,
  logger: Logger = defaultLogger,
): Observable<T> {
  const { subject, itemKey, first, toValue, project = (bytes) => bytes } = spec
  return new Observable<T>((subscriber) => {
    if (watches.closed) return subscriber.error(new ClientClosedError(spec.what))
    let seen = -1
    let last: Uint8Array | null | undefined
    const early: CommitRecord[] = []
    let warned = false
    /** Settles once the values still being loaded are emitted (undefined: none). */
    let loading: Promise<void> | undefined
    // (the errors of a watch that its client's close ended are not reported: it completed)
    const failed = (to: Subscriber<T>, err: unknown) => {
      if (!watches.closed) to.error(err)
    }
    const emit = (raw: Uint8Array | null) => {
      const value = raw === null ? null : project(raw)
      if (last !== undefined && sameBytes(last, value)) return
      last = value
      const next = toValue(value)
      if (loading === undefined && !isThenable(next)) return subscriber.next(next)
      const done: Promise<void> = (loading ?? Promise.resolve())
        .then(() => next)
        .then(
          (v) => subscriber.next(v),
          (err: unknown) => {
            // a value replaced meanwhile (its blob is gone): a later change or refresh brings the newer
            if (!/is missing chunk/.test(String(err))) failed(subscriber, err)
          },
        )
        .finally(() => {
          if (loading === done) loading = undefined
        })
      loading = done
    }
    const apply = (rec: CommitRecord) => {
      if (rec.n <= seen) return
      seen = rec.n
      for (const [k, value] of rec.w) if (k === itemKey) emit(value)
    }
    const sub = nc.subscribe(subject, {
      callback: (err, msg) => {
        if (err) return failed(subscriber, err)
        if (msg.data.length === 0) return // the partition asking whether anyone listens
        let rec: CommitRecord
        try {
          rec = checkChange(decodeEnvelope(msg.data, `change message on ${subject}`))
        } catch (e) {
          if (!warned) logger.warn('skipping a malformed change message', { subject, error: String(e) })
          warned = true
          return
        }
        if (seen < 0) early.push(rec)
        else apply(rec)
      },
    })
    nc.flush()
      .then(first)
      .then((answer) => {
        seen = answer.n
        emit(answer.value)
        for (const rec of early.splice(0)) apply(rec)
      })
      .catch((err: unknown) => failed(subscriber, err))
    const open: OpenWatch = {
      // after a reconnect: catch up on changes published meanwhile, and tell the partition again
      // that someone watches (it may have stopped publishing while nobody listened)
      refresh: () => {
        if (seen < 0) return
        first()
          .then((answer) => {
            if (answer.n <= seen) return
            seen = answer.n
            emit(answer.value)
          })
          .catch(() => {}) // the next reconnect or change tries again
      },
      end: () => subscriber.complete(),
      fail: (err) => failed(subscriber, err),
    }
    watches.add(open)
    return () => {
      watches.delete(open)
      sub.unsubscribe()
    }
  })
}

/** Checks what watchers read of a change message: record number `n` and writes `w`. */
function checkChange(value: Record<string, unknown>): CommitRecord {
  const { n, w } = value
  if (typeof n !== 'number' || !Number.isSafeInteger(n)) throw new Error('field n is not a record number')
  if (!Array.isArray(w)) throw new Error('field w is not a list of writes')
  for (const write of w as unknown[]) {
    if (!Array.isArray(write) || typeof write[0] !== 'string') throw new Error('a write is not [key, value]')
    if (write[1] !== null && !(write[1] instanceof Uint8Array))
      throw new Error('a written value is not bytes')
  }
  return value as unknown as CommitRecord
}

function sameBytes(a: Uint8Array | null, b: Uint8Array | null): boolean {
  if (a === null || b === null) return a === b
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(b)
}

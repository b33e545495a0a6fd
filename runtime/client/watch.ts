/**
 * Watch streams of the client: the committed values of one item (an entity state, an instance
 * record), pushed by its partition's change messages (`H.chg.<p>`), no polling. The change subject
 * is core NATS that anyone may publish on: a message that is not a well-formed commit record is
 * skipped (and logged once per watch), never the end of the stream.
 */
import { Observable } from 'rxjs'
import type { CommitRecord } from '../../actors/wire/index.ts'
import { decodeEnvelope, type NatsConnection } from '../nats/index.ts'
import { consoleLogger, type Logger } from '../util/index.ts'

const defaultLogger = consoleLogger('basalt client')
import { isThenable } from '../../entities/index.ts'

/**
 * Pushes the committed values of one item: subscribes to the partition's change messages first,
 * then takes the current value from `first` (answered at record `n`), then every later change.
 * A value equal (bytewise, after `project`) to the one just emitted is not emitted twice.
 * `toValue` may return a promise (a large value loaded by reference); values are emitted in order.
 */
export function watchItem<T>(
  nc: NatsConnection,
  subject: string,
  watches: Set<() => void>,
  itemKey: string,
  first: () => Promise<{ n: number; value: Uint8Array | null }>,
  toValue: (bytes: Uint8Array | null) => T | Promise<T>,
  project: (bytes: Uint8Array) => Uint8Array = (bytes) => bytes,
  logger: Logger = defaultLogger,
): Observable<T> {
  return new Observable<T>((subscriber) => {
    let seen = -1
    let last: Uint8Array | null | undefined
    const early: CommitRecord[] = []
    let warned = false
    /** Settles once the values still being loaded are emitted (undefined: none). */
    let loading: Promise<void> | undefined
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
            if (!/is missing chunk/.test(String(err))) subscriber.error(err)
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
        if (err) return subscriber.error(err)
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
      .catch((err: unknown) => subscriber.error(err))
    // after a reconnect: catch up on changes published meanwhile, and tell the partition again
    // that someone watches (it may have stopped publishing while nobody listened)
    const refresh = () => {
      if (seen < 0) return
      first()
        .then((answer) => {
          if (answer.n <= seen) return
          seen = answer.n
          emit(answer.value)
        })
        .catch(() => {}) // the next reconnect or change tries again
    }
    watches.add(refresh)
    return () => {
      watches.delete(refresh)
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

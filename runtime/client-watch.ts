/**
 * Watch streams of the client: the committed values of one item (an entity state, an instance
 * record), pushed by its partition's change messages (`H.chg.<p>`), no polling.
 */
import type { NatsConnection } from '@nats-io/transport-node'
import { Observable } from 'rxjs'
import type { CommitRecord } from '../actors/messages.ts'
import { decodeEnvelope } from './codec.ts'
import { isThenable } from '../entities/index.ts'

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
): Observable<T> {
  return new Observable<T>((subscriber) => {
    let seen = -1
    let last: Uint8Array | null | undefined
    const early: CommitRecord[] = []
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
        try {
          const rec = decodeEnvelope(msg.data, 'change message') as unknown as CommitRecord
          if (seen < 0) early.push(rec)
          else apply(rec)
        } catch (e) {
          subscriber.error(e)
        }
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

function sameBytes(a: Uint8Array | null, b: Uint8Array | null): boolean {
  if (a === null || b === null) return a === b
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(b)
}

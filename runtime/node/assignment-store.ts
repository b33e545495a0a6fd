/**
 * The placement's assignment records as stored in the hub's metadata KV bucket (keys `assign.<p>`),
 * behind placement's `AssignmentStore` port: placement/ decides with compare-and-set over revisions,
 * this adapter maps that onto the bucket. The node uses it to claim partitions with `placement:
 * 'static'` and to restart a failed partition under a fresh epoch when no placement agent runs.
 */
import type { Assignment, AssignmentStore } from '../../placement/index.ts'
import { decode, encode, isWrongLastSequence, type KV } from '../nats/index.ts'

/** Assignment records in the hub's metadata bucket, keys `assign.<p>`. */
export function assignmentStore(kv: KV): AssignmentStore {
  return {
    async get(p) {
      const entry = await kv.get(`assign.${p}`)
      if (entry === null || entry.operation !== 'PUT') return { value: null, rev: entry?.revision ?? 0 }
      return { value: decode(entry.value, 'assignment') as Assignment, rev: entry.revision }
    },
    async compareAndSet(p, value, rev) {
      try {
        if (rev === 0) await kv.create(`assign.${p}`, encode(value))
        else await kv.update(`assign.${p}`, encode(value), rev)
        return true
      } catch (err) {
        if (isWrongLastSequence(err)) return false
        throw err
      }
    },
  }
}

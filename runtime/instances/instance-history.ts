/**
 * The history of an orchestration instance in the state bucket: the newest events stay in the
 * record's `tail`; older ones move into append-only chunk items `h.<p>.<id>.<hk>.<k>`, each written
 * once, so a round encodes only what is new. These functions act on a record through the port its
 * partition offers (runtime/instances/instance-host.ts calls them).
 */
import { IllegalStateError } from '../../actors/index.ts'
import type { HistoryEvent, NewEvent } from '../../actors/orchestration/index.ts'
import { BlobRef, itemKey } from '../nats/index.ts'
import { decodeChunk, encodeChunk } from './history-codec.ts'
import type { HostPort } from '../partition/index.ts'
import type { InstanceRecord } from './instance-model.ts'

/** History events kept in the record before they move into a chunk item of their own. */
const CHUNK_EVENTS = 64

/**
 * Once the record's history tail is long (or `force`: its values are large), moves it into a
 * chunk item of its own (written once).
 */
export function chunkTail(port: HostPort, rec: InstanceRecord, force = false): void {
  if (rec.tail.length >= CHUNK_EVENTS || (force && rec.tail.length > 0)) {
    port.write(chunkKey(port.p, rec, rec.hc), encodeChunk(rec.tail))
    rec.hc++
    rec.tail = []
  }
}

/** Deletes the history chunks of the current execution and empties its tail. */
export function dropHistory(port: HostPort, rec: InstanceRecord): void {
  for (let k = 0; k < rec.hc; k++) port.write(chunkKey(port.p, rec, k), null)
  rec.hc = 0
  rec.tail = []
}

/**
 * The whole history of the current execution: its stored chunks, then the record's tail. Kept in
 * `live.history` once loaded.
 */
export async function loadHistory(
  port: HostPort,
  live: { rec: InstanceRecord; history?: HistoryEvent[] },
): Promise<HistoryEvent[]> {
  if (live.history !== undefined) return live.history
  const rec = live.rec
  const chunks = await Promise.all(
    Array.from({ length: rec.hc }, async (_, k) => {
      const key = chunkKey(port.p, rec, k)
      const bytes = await port.readItem(key)
      if (bytes === null)
        throw new IllegalStateError(`history chunk ${key} of instance '${rec.id}' is missing`)
      return decodeChunk(bytes, `history chunk ${key}`)
    }),
  )
  // loaded concurrently (or stepped meanwhile): the first complete copy wins
  if (live.history !== undefined) return live.history
  const history = chunks.flat()
  for (const ev of rec.tail) history.push(ev)
  live.history = history
  return history
}

function chunkKey(p: number, rec: InstanceRecord, k: number): string {
  return itemKey.history(p, rec.id, rec.hk, k)
}

/**
 * The references to large values that events hold (inputs, results, event data, custom status,
 * outputs), added to `into`; with `unloaded`, only those whose value is not in memory.
 */
export function refsOf(
  events: Iterable<HistoryEvent | NewEvent>,
  into: BlobRef[] = [],
  unloaded = false,
): BlobRef[] {
  for (const ev of events) {
    const value =
      ev.e === 'started'
        ? ev.input
        : ev.e === 'completed'
          ? ev.result
          : ev.e === 'event'
            ? ev.data
            : ev.e === 'customStatus'
              ? ev.value
              : ev.e === 'finished'
                ? ev.status === 'completed'
                  ? ev.output
                  : ev.status === 'continuedAsNew'
                    ? ev.input
                    : undefined
                : undefined
    if (value instanceof BlobRef && !(unloaded && value.loaded)) into.push(value)
  }
  return into
}

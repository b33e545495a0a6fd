/**
 * How an instance's history events are stored: packed, each as an array of its values in a fixed
 * order behind a one-byte code (no field names), a step marker as the number of milliseconds since
 * the step before it. In memory, and everywhere outside storage, events stay the plain objects of
 * actors/orchestration/types.ts; these functions sit between them and the bytes of an instance
 * record (`o.<p>.<id>`, format {@link RECORD_FORMAT}) and of its history chunks.
 *
 * A hello-sequence record of 18 events is 920 bytes with events as objects and 426 packed, and
 * packs in less than half the time (docs/BENCHMARKS.md, stop 26): the record is written to the
 * log and the state bucket on every round that touches it, so its bytes are most of what an
 * orchestration publishes.
 *
 * ```text
 * { e: 'step', t }                                       t - (t of the step or start before it)
 * { e: 'scheduled', seq: 3, kind: 'activity', name: 'hello', attempt: 1 }   [1, 3, 'hello', 1]
 * { e: 'completed', seq: 3, result: 'Hello Tokyo' }                          [10, 3, 'Hello Tokyo']
 * ```
 *
 * Trailing absent fields are left out. An event with a field no layout names (none today) is
 * stored as the object it is, and objects read back as themselves: so records and chunks written
 * before packing (format 1) read as they always did, element by element.
 */
import { CodecError } from '../../actors/index.ts'
import type { HistoryEvent } from '../../actors/orchestration/index.ts'
import { decode, encode } from '../nats/index.ts'
import { RECORD_FORMAT, type InstanceRecord } from './instance-model.ts'

/** A stored event's layout: its code, the `e` (and `kind` or `status`) it stands for, its fields. */
interface Layout {
  code: number
  e: HistoryEvent['e']
  /** The field that tells events of one `e` apart, and its value. */
  tag?: readonly [field: 'kind' | 'status', value: string]
  /** The fields stored, in this order. */
  fields: readonly string[]
}

/**
 * Every layout, at the index of its code; a code, once written, keeps its meaning for ever (new
 * ones go at the end).
 */
const LAYOUTS: readonly Layout[] = [
  { code: 0, e: 'started', fields: ['t', 'name', 'input', 'version', 'execution', 'seq'] },
  { code: 1, e: 'scheduled', tag: ['kind', 'activity'], fields: ['seq', 'name', 'attempt'] },
  { code: 2, e: 'scheduled', tag: ['kind', 'timer'], fields: ['seq', 'fireAt'] },
  { code: 3, e: 'scheduled', tag: ['kind', 'cancelTimer'], fields: ['seq', 'timer'] },
  { code: 4, e: 'scheduled', tag: ['kind', 'sub'], fields: ['seq', 'name', 'instanceId', 'attempt'] },
  { code: 5, e: 'scheduled', tag: ['kind', 'call'], fields: ['seq', 'entity', 'op'] },
  { code: 6, e: 'scheduled', tag: ['kind', 'signal'], fields: ['seq', 'entity', 'op'] },
  { code: 7, e: 'scheduled', tag: ['kind', 'start'], fields: ['seq', 'name', 'instanceId'] },
  { code: 8, e: 'scheduled', tag: ['kind', 'lock'], fields: ['seq', 'entities'] },
  { code: 9, e: 'scheduled', tag: ['kind', 'unlock'], fields: ['seq', 'entities'] },
  { code: 10, e: 'completed', fields: ['seq', 'result'] },
  { code: 11, e: 'failed', fields: ['seq', 'error'] },
  { code: 12, e: 'timerFired', fields: ['seq'] },
  { code: 13, e: 'event', fields: ['name', 'data'] },
  { code: 14, e: 'patch', fields: ['id'] },
  { code: 15, e: 'customStatus', fields: ['value'] },
  { code: 16, e: 'finished', tag: ['status', 'completed'], fields: ['output'] },
  { code: 17, e: 'finished', tag: ['status', 'failed'], fields: ['error'] },
  { code: 18, e: 'finished', tag: ['status', 'continuedAsNew'], fields: ['input'] },
  // (a step marker whose time is no whole number of milliseconds: a difference would round it)
  { code: 19, e: 'step', fields: ['t'] },
]

/** The layout of each `e`, or of each tag of an `e` that has one. */
const byEvent = new Map<string, Layout | Map<string, Layout>>()
for (const l of LAYOUTS) {
  if (l.tag === undefined) byEvent.set(l.e, l)
  else {
    const tags = (byEvent.get(l.e) ?? new Map<string, Layout>()) as Map<string, Layout>
    byEvent.set(l.e, tags.set(l.tag[1], l))
  }
}
/** The fields an event of a layout may have: its `e`, its tag and its stored fields. */
const known = new Map(LAYOUTS.map((l) => [l, new Set(['e', ...(l.tag ? [l.tag[0]] : []), ...l.fields])]))

function layoutOf(ev: HistoryEvent): Layout | undefined {
  const entry = byEvent.get(ev.e)
  const tag = ev.e === 'scheduled' ? ev.kind : ev.e === 'finished' ? ev.status : ''
  const layout = entry instanceof Map ? entry.get(tag) : entry
  if (layout === undefined) return undefined
  const fields = known.get(layout)!
  for (const key in ev) if (!fields.has(key)) return undefined
  return layout
}

/**
 * Whether a step marker has nothing but its time, in whole milliseconds as the time it counts
 * from: so it can be stored as their difference, exactly.
 */
function isPlainStep(ev: { t: unknown }, base: number): boolean {
  if (!Number.isSafeInteger(ev.t) || !Number.isSafeInteger(base)) return false
  for (const key in ev) if (key !== 'e' && key !== 't') return false
  return true
}

/** The time a step marker counts from, after `ev`: the `t` of the last step or start. */
function baseAfter(ev: { e?: unknown; t?: unknown }, base: number): number {
  return (ev.e === 'step' || ev.e === 'started') && typeof ev.t === 'number' ? ev.t : base
}

/** History events as stored (see the module comment). */
export function packEvents(events: readonly HistoryEvent[]): unknown[] {
  const out: unknown[] = new Array(events.length)
  let base = 0
  for (let i = 0; i < events.length; i++) {
    const ev = events[i]!
    if (ev.e === 'step' && isPlainStep(ev, base)) {
      out[i] = ev.t - base
      base = ev.t
      continue
    }
    base = baseAfter(ev, base)
    const layout = layoutOf(ev)
    if (layout === undefined) {
      out[i] = ev
      continue
    }
    const fields = layout.fields
    const packed: unknown[] = [layout.code]
    let end = 1
    for (let f = 0; f < fields.length; f++) {
      const value = (ev as unknown as Record<string, unknown>)[fields[f]!]
      packed.push(value)
      if (value !== undefined) end = f + 2
    }
    packed.length = end
    out[i] = packed
  }
  return out
}

/**
 * History events from their stored form; objects (format 1, or an event no layout fits) as they
 * are. Throws {@link CodecError} naming `what` for an element that is none of these, or a code
 * this version does not know (written by a newer one).
 */
export function unpackEvents(stored: unknown, what: string): HistoryEvent[] {
  if (!Array.isArray(stored)) throw new CodecError(`${what}: history is not a list`)
  const events: HistoryEvent[] = new Array(stored.length)
  let base = 0
  for (let i = 0; i < stored.length; i++) {
    const x: unknown = stored[i]
    if (typeof x === 'number') {
      base += x
      events[i] = { e: 'step', t: base }
      continue
    }
    if (Array.isArray(x)) {
      const layout = LAYOUTS[x[0] as number]
      if (layout === undefined || !Number.isInteger(x[0])) {
        throw new CodecError(
          `${what}: history event ${i} has layout ${JSON.stringify(x[0])}, which this version of Basalt does not know (written by a newer one?)`,
        )
      }
      const ev: Record<string, unknown> = { e: layout.e }
      if (layout.tag !== undefined) ev[layout.tag[0]] = layout.tag[1]
      const fields = layout.fields
      for (let f = 0; f < fields.length && f + 1 < x.length; f++) {
        const value: unknown = x[f + 1]
        if (value !== undefined) ev[fields[f]!] = value
      }
      base = baseAfter(ev, base)
      events[i] = ev as unknown as HistoryEvent
      continue
    }
    if (typeof x !== 'object' || x === null) {
      throw new CodecError(`${what}: history event ${i} is ${x === null ? 'null' : typeof x}, not an event`)
    }
    base = baseAfter(x, base)
    events[i] = x as HistoryEvent
  }
  return events
}

/** An instance record's bytes: its history tail packed, format {@link RECORD_FORMAT}. */
export function encodeRecord(rec: InstanceRecord): Uint8Array {
  return encode({ ...rec, v: RECORD_FORMAT, tail: packEvents(rec.tail) })
}

/**
 * An instance record from its bytes (format 1 or 2), its tail as event objects. Throws
 * {@link CodecError} naming `what` for bytes that are no record, or a record of a later format.
 */
export function decodeRecord(bytes: Uint8Array, what: string): InstanceRecord {
  const rec = decode(bytes, what) as InstanceRecord | null
  if (typeof rec !== 'object' || rec === null || Array.isArray(rec)) {
    throw new CodecError(`${what}: not an instance record`)
  }
  const v: unknown = rec.v
  if (v !== 1 && v !== RECORD_FORMAT) {
    throw new CodecError(
      `${what}: instance record of format ${JSON.stringify(v)}; this version of Basalt reads formats 1 to ${RECORD_FORMAT} (upgrade the node)`,
    )
  }
  rec.v = RECORD_FORMAT
  rec.tail = unpackEvents(rec.tail, what)
  return rec
}

/** A history chunk's bytes: its events packed. */
export function encodeChunk(events: readonly HistoryEvent[]): Uint8Array {
  return encode(packEvents(events))
}

/** A history chunk's events from its bytes (packed, or objects as before packing). */
export function decodeChunk(bytes: Uint8Array, what: string): HistoryEvent[] {
  return unpackEvents(decode(bytes, what), what)
}

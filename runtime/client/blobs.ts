/**
 * The client's side of large values (runtime/blobs.ts). Outgoing: a message that does not fit in
 * one JetStream message has its large fields (start input, event data, entity call and signal
 * arguments, activity results) stored as blobs first — acknowledged before the message that
 * references them is published — and travels with references. Incoming: references in what a
 * node answers (instance records and histories, entity states, results) are loaded before user
 * code sees the values; a blob deleted meanwhile (its owner was purged or rewritten) makes the
 * caller read again.
 */
import type { ActorMessage } from '../../actors/wire/index.ts'
import type { HistoryEvent } from '../../actors/orchestration/index.ts'
import { BlobRef, encode, isUnloaded, valueOf, type BlobStore } from '../nats/index.ts'
import { refsOf, type InstanceSummary, type InstanceView } from '../instances/index.ts'

/**
 * Stores the fields of `msg` whose encoding is over the threshold as blobs and replaces them by
 * references; resolves once every blob is stored. Throws `PayloadTooLargeError` naming the value
 * and both sizes for a value over the ceiling.
 */
export async function offloadMessage(blobs: BlobStore, msg: ActorMessage): Promise<void> {
  const writes: Array<Promise<void>> = []
  const store = (value: unknown, what: () => string): unknown => {
    if (value instanceof BlobRef) return value
    const bytes = encode(value)
    if (bytes.length <= blobs.limits.threshold) return value
    const { ref, written } = blobs.put(bytes, what)
    writes.push(written)
    return ref
  }
  switch (msg.k) {
    case 'start':
      msg.in = store(msg.in, () => `input of instance '${msg.i}' (${msg.n})`)
      break
    case 'ev':
      msg.d = store(msg.d, () => `data of event '${msg.n}' for instance '${msg.i}'`)
      break
    case 'op':
      msg.a = msg.a.map((arg, i) => store(arg, () => `argument ${i + 1} of ${msg.t}@${msg.key}.${msg.op}`))
      break
    case 'done':
      if (msg.ok === 1) msg.v = store(msg.v, () => `result of task ${msg.s} of instance '${msg.i}'`)
      break
    default:
      break
  }
  await Promise.all(writes)
}

/** Loads every reference among `values` (no promise work when there is none). */
export async function loadRefs(blobs: BlobStore, values: readonly unknown[]): Promise<void> {
  const refs = values.filter(isUnloaded)
  if (refs.length > 0) await blobs.loadAll(refs)
}

/**
 * Loads the values an instance view references: input, output, custom status, history. A
 * reference of the same id among `kept` (loaded before: a blob is written once under a random id,
 * so the same id is the same value) gives its value instead of a read, so that a status watch
 * does not read an instance's large input again at each of its steps.
 */
export async function loadView(
  blobs: BlobStore,
  view: Pick<InstanceView, 'input' | 'output' | 'custom' | 'history'>,
  kept: readonly BlobRef[] = [],
): Promise<void> {
  const refs = refsOf(view.history ?? [], [], true)
  for (const v of [view.input, view.output, view.custom]) {
    if (!isUnloaded(v)) continue
    const same = kept.find((k) => k.id === v.id && k.loaded)
    if (same !== undefined) v.attach(same.value)
    else refs.push(v)
  }
  if (refs.length > 0) await blobs.loadAll(refs)
}

/** A summary with its custom status loaded. */
export async function loadSummary(blobs: BlobStore, s: InstanceSummary): Promise<InstanceSummary> {
  if (isUnloaded(s.custom)) await blobs.load(s.custom)
  return s
}

/** A history event as user code sees it: values instead of references (copied only then). */
export function unwrapEvent(ev: HistoryEvent): HistoryEvent {
  switch (ev.e) {
    case 'started':
      return ev.input instanceof BlobRef ? { ...ev, input: valueOf(ev.input) } : ev
    case 'completed':
      return ev.result instanceof BlobRef ? { ...ev, result: valueOf(ev.result) } : ev
    case 'event':
      return ev.data instanceof BlobRef ? { ...ev, data: valueOf(ev.data) } : ev
    case 'customStatus':
      return ev.value instanceof BlobRef ? { ...ev, value: valueOf(ev.value) } : ev
    case 'finished':
      if (ev.status === 'completed' && ev.output instanceof BlobRef)
        return { ...ev, output: valueOf(ev.output) }
      if (ev.status === 'continuedAsNew' && ev.input instanceof BlobRef)
        return { ...ev, input: valueOf(ev.input) }
      return ev
    default:
      return ev
  }
}

/** Whether an error says that a blob is gone (its owner was purged or rewritten): read again. */
export function isMissingBlob(err: unknown): boolean {
  return /large value \S+ is missing chunk/.test(String((err as Error)?.message ?? err))
}

/** Runs a read that loads blobs; once more (up to 3 times) when a blob went missing meanwhile. */
export async function readAgainIfMissing<T>(read: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await read()
    } catch (err) {
      if (attempt >= 3 || !isMissingBlob(err)) throw err
    }
  }
}

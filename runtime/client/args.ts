/**
 * The checks of the client's arguments, shared by every method that takes them: each returns the
 * value it checked (converted where the method's type allows two forms) or throws
 * {@link BadInputError} naming the argument, what it got and what it expects, before anything is
 * sent. Ids and names are checked by the helpers of actors/ids.ts; the rest is here.
 */
import type { ActorMessage } from '../../actors/wire/index.ts'

/**
 * What in a message the wire cannot carry (a function or a symbol, anywhere in a value), described
 * for the error: `argument 1 of Counter.add (entity 'c1') at .cb is a function, …`. Called only
 * once encoding failed, so it costs nothing on the way of messages that encode.
 */
export function findUnsendable(msg: ActorMessage): string | undefined {
  const parts: Array<[unknown, string]> = []
  if (msg.k === 'op') {
    msg.a.forEach((a, i) => parts.push([a, `argument ${i + 1} of ${msg.t}.${msg.op} (entity '${msg.key}')`]))
  } else if (msg.k === 'start') parts.push([msg.in, `input of instance '${msg.i}'`])
  else if (msg.k === 'ev') parts.push([msg.d, `data of event '${msg.n}' for instance '${msg.i}'`])
  else if (msg.k === 'ctl') parts.push([msg.reason, `reason for instance '${msg.i}'`])
  for (const [value, where] of parts) {
    const found = unsendableIn(value, '', new Set())
    if (found === undefined) continue
    const at = found.path === '' ? where : `${where} at ${found.path}`
    return `${at} is a ${found.kind}, which cannot be sent (functions and symbols do not cross the wire)`
  }
  return undefined
}

/** The first function or symbol in `value`, and its path ('' for the value itself), if any. */
function unsendableIn(
  value: unknown,
  path: string,
  seen: Set<object>,
): { path: string; kind: string } | undefined {
  if (typeof value === 'function' || typeof value === 'symbol') return { path, kind: typeof value }
  if (typeof value !== 'object' || value === null || seen.has(value) || ArrayBuffer.isView(value)) return
  seen.add(value)
  const entries: Iterable<[string, unknown]> = Array.isArray(value)
    ? value.map((v, i) => [`[${i}]`, v] as [string, unknown])
    : value instanceof Map
      ? [...value].map(([k, v]) => [`.get(${JSON.stringify(String(k))})`, v] as [string, unknown])
      : Object.entries(value).map(([k, v]) => [`.${k}`, v] as [string, unknown])
  for (const [step, v] of entries) {
    const found = unsendableIn(v, path + step, seen)
    if (found !== undefined) return found
  }
  return
}

/**
 * Large values shortened for the dashboard's answers: an instance's input, output, custom status,
 * failure details and the values, results and inputs of its history, and an entity's state, each
 * shipped whole only while its JSON text is at most {@link VALUE_LIMIT}; above that, it travels as
 * a {@link Shortened} placeholder (its size and the start of its JSON). A value of megabytes made
 * the answer tens of megabytes and the page unusable; the whole value stays one command away
 * (`basalt status ID`, `basalt entity get TYPE KEY`, `client.getStatus`, `client.readEntityState`).
 * Pure: no I/O.
 */
import { jsonSafe } from './dead-letters.ts'

/**
 * Longest JSON text (UTF-8 bytes) of one value the dashboard ships whole: 16 kB. Enough for any
 * value a person reads on the page (a form, a record, a list of a few hundred ids), small enough
 * that an instance whose history holds hundreds of values still loads and renders at once.
 */
export const VALUE_LIMIT = 16 * 1024

/** Characters of a shortened value's JSON text kept as its {@link Shortened.preview}. */
export const PREVIEW_CHARS = 1000

/** What a value longer than {@link VALUE_LIMIT} becomes in the dashboard's answers. */
export interface Shortened {
  $truncated: true
  /** Length of the value's whole JSON text, in UTF-8 bytes. */
  bytes: number
  /** The first {@link PREVIEW_CHARS} characters of that text, then `…`. */
  preview: string
}

/**
 * The keys under which the answers carry user values (an instance status, its history events and
 * timeline rows, an entity's state): each is kept or shortened as one value. Other keys are the
 * answer's own structure, walked into.
 */
const VALUE_KEYS: ReadonlySet<string> = new Set([
  'input',
  'output',
  'customStatus',
  'result',
  'data',
  'value',
  'state',
])

/**
 * `value` itself when its JSON text is at most `limit` bytes, otherwise a {@link Shortened}
 * placeholder. Bytes become `<n bytes>` and big integers text, as in the answers (`jsonSafe`).
 *
 * @example shortenValue('x'.repeat(3_000_000)) // { $truncated: true, bytes: 3000002, preview: '"xxx…' }
 */
export function shortenValue(value: unknown, limit = VALUE_LIMIT): unknown {
  if (value === undefined || value === null || typeof value === 'number' || typeof value === 'boolean')
    return value
  // a string shorter than a sixth of the limit is under it whatever its characters (\uXXXX is 6)
  if (typeof value === 'string' && value.length * 6 + 2 <= limit) return value
  const text = JSON.stringify(value, jsonSafe) as string | undefined
  if (text === undefined) return value
  const bytes = Buffer.byteLength(text, 'utf8')
  if (bytes <= limit) return value
  return { $truncated: true, bytes, preview: `${cut(text, PREVIEW_CHARS)}…` } satisfies Shortened
}

/**
 * A dashboard answer with every large value in it shortened ({@link shortenValue}): the values
 * under the keys that hold user values (`input`, `output`, `customStatus`, `result`, `data`,
 * `value`, `state`), each taken whole, and any other string longer than `limit` (an error's
 * message or stack). Arrays and plain objects are walked into; the answer is not changed, the
 * parts that change are copied.
 *
 * @example json(reply, shortenValues({ ...status, timeline: timelineOf(status.history ?? []) }))
 */
export function shortenValues(answer: unknown, limit = VALUE_LIMIT): unknown {
  if (typeof answer === 'string') return shortenValue(answer, limit)
  if (Array.isArray(answer)) return answer.map((item: unknown) => shortenValues(item, limit))
  if (!isPlainObject(answer)) return answer
  const out: Record<string, unknown> = {}
  for (const [key, v] of Object.entries(answer))
    out[key] = VALUE_KEYS.has(key) ? shortenValue(v, limit) : shortenValues(v, limit)
  return out
}

/** Whether `value` is a {@link Shortened} placeholder. */
export function isShortened(value: unknown): value is Shortened {
  return isPlainObject(value) && value.$truncated === true && typeof value.bytes === 'number'
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null) return false
  const proto = Object.getPrototypeOf(value) as unknown
  return proto === Object.prototype || proto === null
}

/** The first `n` characters of `text`, not ending in half of a surrogate pair. */
function cut(text: string, n: number): string {
  const head = text.slice(0, n)
  const last = head.charCodeAt(head.length - 1)
  return last >= 0xd800 && last <= 0xdbff ? head.slice(0, -1) : head
}

/**
 * What the `basalt` commands print: aligned tables and `key: value` blocks for people, JSON for
 * scripts (`--json`), and a one-line progress indication on stderr for long work, shown only when
 * stderr is a terminal so that logs and pipes stay clean. No dependency: plain padding and `\r`.
 */

/** Where a command writes its normal output; stdout by default, a list in tests. */
export type Out = (line: string) => void

/** Writes one line to stdout. */
export const stdout: Out = (line) => {
  process.stdout.write(`${line}\n`)
}

/** Writes one line to stderr: hints beside the output, which stays clean for pipes. */
export const stderr: Out = (line) => {
  process.stderr.write(`${line}\n`)
}

/**
 * Prints `value` as indented JSON (Dates as ISO strings, bigints as numbers' text).
 *
 * @example printJson({ id: 'a1' })
 */
export function printJson(value: unknown, out: Out = stdout): void {
  out(JSON.stringify(value, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v), 2))
}

/**
 * Control characters: C0, DEL and C1; and the format characters that change how a line reads
 * without showing — line and paragraph separators, and the bidirectional marks, embeddings,
 * overrides and isolates (text shown in another order than it is, as in "Trojan Source").
 */
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u200e\u200f\u2028-\u202e\u2066-\u2069]/g

/** The control characters JSON writes short. */
const SHORT: Record<string, string> = { '\b': '\\b', '\t': '\\t', '\n': '\\n', '\f': '\\f', '\r': '\\r' }

/**
 * `text` with its control characters (C0, DEL, C1, and the invisible line and bidirectional
 * format characters) escaped as JSON escapes them (`\n`, `\t`, `\u001b`; also those JSON leaves
 * raw), so that user data — an instance id, an entity key, an error's message — keeps a record on
 * one line, shows in the order it is, and sends no escape sequence to the terminal. A backslash
 * stays as it is: text without such characters prints unchanged (`--json` tells a key `a\nb` from
 * one with a line break).
 *
 * @example printable('nl\nx') // 'nl\\nx'
 */
export function printable(text: string): string {
  return text.replace(CONTROL, (c) => SHORT[c] ?? `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`)
}

/** One column of {@link table}: its header, and whether numbers line up on the right. */
export interface Column {
  header: string
  right?: boolean
}

/**
 * Renders rows as aligned text lines under a header; cells are {@link printable} and padded to the
 * widest of their column, the last column is not padded. `(none)` when there are no rows.
 *
 * @example table([{ header: 'id' }, { header: 'status' }], [['a1', 'Running']])
 */
export function table(columns: Column[], cells: string[][]): string[] {
  if (cells.length === 0) return ['(none)']
  const rows = cells.map((r) => r.map(printable))
  const width = columns.map((c, i) => Math.max(c.header.length, ...rows.map((r) => (r[i] ?? '').length)))
  const line = (cells: string[]) =>
    columns
      .map((c, i) => {
        const cell = cells[i] ?? ''
        if (i === columns.length - 1 && !c.right) return cell
        return c.right ? cell.padStart(width[i]!) : cell.padEnd(width[i]!)
      })
      .join('  ')
      .trimEnd()
  return [line(columns.map((c) => c.header)), ...rows.map(line)]
}

/**
 * Renders `key: value` lines with the values aligned; entries whose value is undefined are left
 * out, and values that are not strings are shown as compact JSON; every value {@link printable}.
 *
 * @example keyValues({ id: 'a1', status: 'Completed', output: [1, 2] })
 */
export function keyValues(entries: Record<string, unknown>): string[] {
  const shown = Object.entries(entries).filter(([, v]) => v !== undefined)
  const width = Math.max(0, ...shown.map(([k]) => k.length)) + 1
  return shown.map(
    ([k, v]) => `${`${k}:`.padEnd(width)} ${printable(typeof v === 'string' ? v : compact(v))}`,
  )
}

/** A value as one line of JSON (Dates as ISO strings); long values are cut at `max` characters. */
export function compact(value: unknown, max = 200): string {
  const text = value instanceof Date ? value.toISOString() : (JSON.stringify(value) ?? String(value))
  return text.length > max ? `${text.slice(0, max - 1)}…` : text
}

/** A time as `YYYY-MM-DD HH:MM:SS` in UTC ('-' when absent). */
export function when(t: Date | number | undefined): string {
  if (t === undefined) return '-'
  return new Date(t).toISOString().replace('T', ' ').slice(0, 19)
}

/** A progress line on stderr: {@link update} rewrites it, {@link done} clears it. */
export interface Progress {
  update(done: number, total?: number): void
  done(): void
}

/**
 * A progress line `label: done[/total]` on stderr, redrawn at most every 100 ms, when stderr is a
 * terminal; otherwise does nothing.
 *
 * @example const p = progress('purging'); p.update(10, 40); ...; p.done()
 */
export function progress(label: string, stream: NodeJS.WriteStream = process.stderr): Progress {
  if (!stream.isTTY) return { update() {}, done() {} }
  let last = 0
  let shown = false
  return {
    update(done, total) {
      const now = Date.now()
      if (now - last < 100) return
      last = now
      shown = true
      stream.write(`\r\x1b[2K${label}: ${done}${total === undefined ? '' : `/${total}`}`)
    },
    done() {
      if (shown) stream.write('\r\x1b[2K')
    },
  }
}

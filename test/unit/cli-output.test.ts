/**
 * Control characters in user data (instance ids, entity keys, error messages) are escaped in the
 * command line's tables and lines (runtime/cli/output.ts): an id with a line break split its row
 * of `basalt list` over two lines, and a tab or an escape sequence reached the terminal as it was
 * (an outside trial). `--json` is JSON as before.
 */
import { describe, expect, it } from 'vitest'
import { describeStatus } from '../../runtime/cli/instance-commands.ts'
import { keyValues, printable, printJson, table } from '../../runtime/cli/output.ts'
import type { InstanceStatus } from '../../runtime/client/index.ts'

describe('printable', () => {
  it('escapes C0 controls, DEL and C1 controls as JSON does', () => {
    expect(printable('nl\nx')).toBe('nl\\nx')
    expect(printable('t\tab\r\b\f')).toBe('t\\tab\\r\\b\\f')
    expect(printable('\u0000\u001b[31mred\u001f')).toBe('\\u0000\\u001b[31mred\\u001f')
    // JSON leaves these raw; a terminal may act on them (U+009B is a one-character CSI)
    expect(printable('\u007f\u0080\u009b2J\u009f')).toBe('\\u007f\\u0080\\u009b2J\\u009f')
  })

  it('leaves every other character as it is, a backslash too', () => {
    const text = 'a b\\n "c" é € 日本 😀 \u00a0\u00a0 \u200b \u2027'
    expect(printable(text)).toBe(text)
    expect(printable('')).toBe('')
  })

  it('escapes line separators and bidirectional controls, which change how a line reads unseen', () => {
    expect(printable('a\u2028b\u2029c')).toBe('a\\u2028b\\u2029c')
    // an override that would show 'evil' as 'live', and isolates and marks around it
    expect(printable('\u202eevil\u202c \u2066x\u2069 \u200e\u200f')).toBe(
      '\\u202eevil\\u202c \\u2066x\\u2069 \\u200e\\u200f',
    )
  })

  it('is its own fixed point: escaping twice changes nothing more', () => {
    const once = printable('a\n\u001b\u009b')
    expect(printable(once)).toBe(once)
  })
})

describe('tables and key: value lines', () => {
  it('keep one record on one line, aligned by the escaped width', () => {
    const lines = table(
      [{ header: 'id' }, { header: 'status' }],
      [
        ['nl\nx', 'Running'],
        ['t\tab', 'Completed'],
        ['plain', 'Failed'],
      ],
    )
    expect(lines).toEqual(['id     status', 'nl\\nx  Running', 't\\tab  Completed', 'plain  Failed'])
  })

  it('escape values, strings as they are and others as JSON', () => {
    expect(keyValues({ id: 'a\u001b[2Jb', input: 'x\u007f', output: ['\u009b', '\n'] })).toEqual([
      'id:     a\\u001b[2Jb',
      'input:  x\\u007f',
      'output: ["\\u009b","\\n"]',
    ])
  })

  it('an instance status: an error message of several lines is one line', () => {
    const status = {
      id: 'bad\nid',
      name: 'flow',
      status: 'Failed',
      createdAt: new Date(0),
      lastUpdatedAt: new Date(0),
      completedAt: new Date(0),
      error: { name: 'Error', message: 'first\nsecond' },
    } as unknown as InstanceStatus
    const lines = describeStatus(status)
    expect(lines).toContain('id:      bad\\nid')
    expect(lines).toContain('error:   Error: first\\nsecond')
    expect(lines.every((l) => !/[\n\r\t]/.test(l))).toBe(true)
  })

  it('--json is left to JSON.stringify', () => {
    const out: string[] = []
    printJson({ id: 'nl\nx', del: '\u007f' }, (line) => out.push(line))
    expect(out).toEqual([JSON.stringify({ id: 'nl\nx', del: '\u007f' }, null, 2)])
  })
})

/**
 * The state letter of a `/proc/<pid>/stat` line (runtime/dev/store-owner.ts), by which `basalt dev`
 * tells a zombie — killed, not yet reaped by its parent — from a process that runs: signal 0
 * reaches both, and an earlier `basalt dev` left a zombie was taken for running (an outside trial).
 */
import { describe, expect, it } from 'vitest'
import { processState } from '../../runtime/dev/store-owner.ts'

describe('processState', () => {
  it('reads the field after the command name', () => {
    expect(processState('30763 (cat) R 30719 30719 23723 0 -1 4194304 100 0')).toBe('R')
    expect(processState('4242 (node) Z 1 4242 4242 0 -1')).toBe('Z')
    expect(processState('7 (sleep) X 1')).toBe('X')
    expect(processState('7 (sleep) S')).toBe('S')
  })

  it('finds the end of a command name holding spaces and parentheses by its last parenthesis', () => {
    expect(processState('99 (a b) Z 1 99 99') /* '(a b)' */).toBe('Z')
    expect(processState('99 (x) R (y)) Z 1 99 99')).toBe('Z')
    expect(processState('99 ((() S 1 99 99')).toBe('S')
    expect(processState('99 ()) ) D 1 99 99')).toBe('D')
  })

  it('gives undefined for a line that is not a stat line', () => {
    expect(processState('')).toBeUndefined()
    expect(processState('no parentheses Z 1')).toBeUndefined()
    expect(processState('99 (cut)')).toBeUndefined()
    expect(processState('99 (cut)Z 1')).toBeUndefined()
  })
})

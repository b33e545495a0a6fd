/** The console logger's line format and the throttled warning (runtime/util/logger.ts). */
import { afterEach, describe, expect, it, vi } from 'vitest'
import { consoleLogger, throttledWarning } from '../../runtime/util/logger.ts'

afterEach(() => {
  vi.useRealTimers()
  vi.restoreAllMocks()
})

describe('consoleLogger', () => {
  it('starts every line with the UTC time, then the prefix and the level', () => {
    const lines: string[] = []
    vi.spyOn(console, 'error').mockImplementation((line: string) => void lines.push(line))
    consoleLogger('basalt[demo]', 'info').warn('partition failed; stopping', { p: 3 })
    expect(lines).toHaveLength(1)
    expect(lines[0]).toMatch(
      /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z basalt\[demo\] warn partition failed; stopping \{"p":3\}$/,
    )
  })
})

describe('throttledWarning', () => {
  it('logs the first, then at most one per window, saying how many it left out', () => {
    vi.useFakeTimers({ now: 0 })
    const logged: Array<[string, unknown]> = []
    const logger = { info() {}, error() {}, warn: (m: string, f?: unknown) => void logged.push([m, f]) }
    const note = throttledWarning(logger, 'replica differed', 60_000)
    note({ p: 1 })
    for (let i = 0; i < 40; i++) note({ p: 1 })
    expect(logged).toEqual([['replica differed', { p: 1 }]])
    vi.setSystemTime(60_000)
    note({ p: 1, count: 2 })
    expect(logged[1]).toEqual(['replica differed', { p: 1, count: 2, more: 40 }])
  })
})

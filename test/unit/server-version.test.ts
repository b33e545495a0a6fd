/** What Basalt tells an operator about the connected nats-server's version. */
import { describe, expect, it } from 'vitest'
import { purgesReplaySafely, serverWarnings } from '../../runtime/nats/hub.ts'

describe('server version warnings', () => {
  it('warns about power-loss durability before 2.10 and about the 2.10.20-22 stream loss', () => {
    expect(serverWarnings('2.9.10', 1).join('\n')).toMatch(
      /power loss or OS crash can lose recently acknowledged writes$/,
    )
    expect(serverWarnings('2.9.10', 3).join('\n')).toMatch(
      /power loss of a majority of servers can lose recently acknowledged writes$/,
    )
    expect(serverWarnings('2.10.21', 3).join('\n')).toMatch(/lose whole streams/)
    expect(serverWarnings('2.9.3', 1).join('\n')).toMatch(/older than 2.9.10/)
    expect(serverWarnings('2.11.4', 3)).toEqual([])
    expect(serverWarnings(undefined, 1).join('\n')).toMatch(/unknown nats-server version/)
  })

  it('counts purges of replicated streams safe from 2.9.18 on (nats-server issue 4196)', () => {
    expect(['2.9.10', '2.9.17', 'v2.9.17', '', undefined].map(purgesReplaySafely)).toEqual([
      false,
      false,
      false,
      false,
      false,
    ])
    expect(['2.9.18', 'v2.9.25', '2.10.0', '2.12.1-beta.2', '3.0.0'].map(purgesReplaySafely)).toEqual([
      true,
      true,
      true,
      true,
      true,
    ])
  })
})

/** What Basalt tells an operator about the connected nats-server's version. */
import { describe, expect, it } from 'vitest'
import { serverWarnings } from '../../runtime/nats/hub.ts'

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
})

/**
 * `basalt placement`'s table (runtime/cli/placement-command.ts): a node killed with nobody left to
 * clean up after it kept showing as the leader, "up" and growing, with its partitions (an outside
 * trial). A node silent for over 5 s is now shown as such.
 */
import { describe, expect, it } from 'vitest'
import type { PlacementTable } from '../../placement/index.ts'
import { formatPlacement } from '../../runtime/cli/placement-command.ts'

const node = (id: string, at: number) => ({
  id,
  host: 'h',
  pid: 7,
  started: 0,
  at,
  partitions: [0, 1],
  features: ['lock-ops'],
  eligible: true,
  lacks: [],
})

const table = (at: number): PlacementTable => ({
  partitions: 2,
  leader: 'n1',
  nodes: [node('n1', at)],
  assignments: [
    { p: 0, node: 'n1', epoch: 1 },
    { p: 1, node: 'n1', epoch: 1 },
  ],
})

describe('basalt placement', () => {
  it('shows a node that heartbeats as up, with its partitions', () => {
    const lines = formatPlacement('demo', table(99_000), 100_000)
    expect(lines[0]).toBe('hub demo: 2 partitions, 2 assigned, leader n1')
    expect(lines.at(-1)).toMatch(/^ {2}n1 \[leader\] {2}host h, pid 7, up 100\.0 s, 2 partitions \[0,1\]/)
  })

  it('shows a node silent for over 5 s as silent, and its lease as the leader’s in doubt', () => {
    const lines = formatPlacement('demo', table(79_600), 100_000)
    expect(lines[0]).toBe('hub demo: 2 partitions, 2 assigned, leader n1 (silent for 20.4 s: gone?)')
    expect(lines.at(-1)).toBe(
      '  n1 [leader]  SILENT: no heartbeat for 20.4 s (killed or cut off?), host h, pid 7, ' +
        'was up 79.6 s, last ran partitions [0,1]',
    )
  })
})

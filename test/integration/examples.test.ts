/** The examples end to end on a real nats-server, in process and as `npm run demo` does it. */
import { describe, expect, it } from 'vitest'
import { bankRegistry, runBankExample } from '../../examples/bank/index.ts'
import { counterRegistry, runCounterExample } from '../../examples/counter/index.ts'
import { spawnTs, useHub, useNatsServer } from '../tooling/harness.ts'

const nats = useNatsServer()
const stack = useHub(nats, {
  hub: 'examples',
  registry: [...counterRegistry, ...bankRegistry],
  partitions: 8,
})

describe('examples', () => {
  it('counter: signals, call, scheduled signal, read, watch and list', { timeout: 20_000 }, async () => {
    const lines: string[] = []
    const result = await runCounterExample(stack.client, (line) => lines.push(line))
    expect(result.value).toBe(7)
    expect(result.beforeSchedule).toBe(6) // the scheduled signal did not fire early
    expect(result.watched[0]).toBeUndefined() // reset deleted the entity before the watch began
    expect(result.watched.at(-1)).toBe(6)
    expect(result.keys).toEqual(['c', 'c-east', 'c-west'])
    expect(lines.some((l) => l.startsWith('call get()') && l.endsWith('-> 6'))).toBe(true)

    const again = await runCounterExample(stack.client, () => {}) // starts from a reset, so runs repeat
    expect(again.value).toBe(7)
  })

  it(
    'bank: transfers as signals conserve the total; an overdraft is refused',
    { timeout: 20_000 },
    async () => {
      const lines: string[] = []
      const result = await runBankExample(stack.client, (line) => lines.push(line), { transfers: 200 })
      expect(result.total).toBe(result.expectedTotal)
      expect(result.total).toBe(5000)
      expect(result.applied + result.refused).toBe(200)
      expect(result.applied).toBeGreaterThan(0)
      expect(result.overdraftError).toMatch(/^insufficient funds on 'erin'/)
      expect(result.overdraftLeftBalance).toBe(true)
      expect(Object.values(result.balances).every((b) => b >= 0)).toBe(true)
      expect(lines.at(-1)).toBe('invariant: total 5000 == opening total 5000')
    },
  )

  it('npm run demo exits 0 and prints what happened', { timeout: 20_000 }, async () => {
    const demo = spawnTs('examples/demo.ts', [], { NATS_URL: nats.url })
    const code = await demo.exited
    const output = demo.lines.join('\n')
    expect(code, output).toBe(0)
    expect(output).toContain(`nats: using NATS_URL ${nats.url}`)
    expect(output).toMatch(/call get\(\) on 'c' -> 6/)
    expect(output).toMatch(/invariant: total 5000 == opening total 5000/)
    expect(output).toMatch(/^summary: counter 'c' = 7; bank: 200 transfers/m)
    expect(output).toMatch(/^stopped cleanly$/m)
  })
})

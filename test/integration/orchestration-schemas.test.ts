/**
 * Schemas of orchestration inputs, activity inputs and event payloads (any Standard Schema; here
 * hand-written ones), with a real nats-server, in both replay modes: what a schema refuses is
 * refused where it is sent and again where it is used, naming the issues; what it accepts arrives
 * as the schema's output, transformed once.
 */
import { describe, expect, it } from 'vitest'
import {
  BadInputError,
  activity,
  externalEvent,
  orchestration,
  type StandardSchemaV1,
} from '../../runtime/index.ts'
import { useHub, useNatsServer } from '../tooling/harness.ts'

const nats = useNatsServer()

/** A synchronous schema: `problem` says what is wrong (or nothing), `map` transforms. */
function schema<T>(problem: (v: unknown) => string | undefined, map?: (v: T) => T): StandardSchemaV1<T> {
  return {
    '~standard': {
      version: 1,
      vendor: 'test',
      validate: (value) => {
        const wrong = problem(value)
        if (wrong !== undefined) return { issues: [{ message: wrong, path: ['name'] }] }
        return { value: map === undefined ? (value as T) : map(value as T) }
      },
    },
  }
}

/** `{ name: string }`, the name made upper case (a transform: applied once, or the test sees it). */
const person = schema<{ name: string }>(
  (v) => (typeof (v as { name?: unknown } | null)?.name === 'string' ? undefined : 'expected a string'),
  (v) => ({ name: `${v.name.toUpperCase()}!` }),
)

/** An asynchronous schema: a positive number. */
const positiveLater: StandardSchemaV1<number> = {
  '~standard': {
    version: 1,
    vendor: 'test',
    validate: async (v) =>
      typeof v === 'number' && v > 0 ? { value: v } : { issues: [{ message: 'must be positive' }] },
  },
}

const greet = orchestration(
  'schemaGreet',
  function* (_ctx, input: { name: string }) {
    return `hello ${input.name}`
  },
  { input: person },
)

const double = orchestration(
  'schemaDouble',
  function* (_ctx, n: number) {
    return n * 2
  },
  { input: positiveLater },
)

const shout = activity('schemaShout', (input: { name: string }) => input.name, { input: person })
const halve = activity('schemaHalve', (n: number) => n / 2, { input: positiveLater })

/** Calls `shout` with what it is given, and `halve` with a number; reports what each did. */
const callsActivities = orchestration(
  'schemaCallsActivities',
  function* (ctx, input: { who: unknown; n: number }) {
    const said: string[] = []
    try {
      said.push(yield* ctx.callActivity(shout, input.who as { name: string }))
    } catch (err) {
      said.push(`call refused: ${(err as Error).message}`)
    }
    try {
      said.push(String(yield* ctx.callActivity(halve, input.n)))
    } catch (err) {
      said.push(`halve failed: ${(err as Error).message}`)
    }
    try {
      said.push(yield* ctx.callSubOrchestration(greet, input.who as { name: string }))
    } catch (err) {
      said.push(`sub refused: ${(err as Error).message}`)
    }
    return said
  },
)

const approval = externalEvent('schemaApproval', { schema: person })
const approvalLater = externalEvent('schemaApprovalLater', { schema: positiveLater })

/** Waits for two approvals through the checked definition; reports what each wait got. */
const waitsForApproval = orchestration('schemaWaits', function* (ctx) {
  const got: string[] = []
  for (let i = 0; i < 2; i++) {
    try {
      got.push((yield* ctx.waitForEvent(approval)).name)
    } catch (err) {
      got.push(`refused: ${(err as Error).message}`)
    }
  }
  try {
    got.push(String(yield* ctx.waitForEvent(approvalLater)))
  } catch (err) {
    got.push(`refused: ${(err as Error).message}`)
  }
  return got
})

const registry = [greet, double, shout, halve, callsActivities, waitsForApproval]

describe('schema options of the definitions', () => {
  it('refuses a schema that is not one, and an unknown option key', () => {
    expect(() => orchestration('x', function* () {}, { input: 42 as never })).toThrow(
      /the input schema of orchestration 'x' must be a Standard Schema/,
    )
    expect(() => activity('x', () => 1, { input: {} as never })).toThrow(
      /the input schema of activity 'x' must be a Standard Schema/,
    )
    expect(() => externalEvent('x', { schema: 'y' as never })).toThrow(
      /the schema of event 'x' must be a Standard Schema/,
    )
    expect(() => externalEvent('x', { shcema: person } as never)).toThrow(/unknown option 'shcema'/)
  })
})

for (const alwaysReplay of [false, true]) {
  describe(`schemas (alwaysReplay: ${alwaysReplay})`, () => {
    const stack = useHub(nats, {
      hub: `schemas-${alwaysReplay ? 'replay' : 'cached'}`,
      registry,
      partitions: 2,
      alwaysReplay,
    })

    it('an input schema: refused by the client and by the node, the output run and stored once', async () => {
      const { client } = stack
      await expect(client.start(greet, { name: 7 } as never)).rejects.toThrow(
        new BadInputError(`bad input of orchestration 'schemaGreet': at name: expected a string`),
      )
      // by name the client cannot check: the node refuses, and no instance is left
      const byName = `by-name-${alwaysReplay}`
      await expect(client.start('schemaGreet', { name: 7 }, { instanceId: byName })).rejects.toThrow(
        /bad input of orchestration 'schemaGreet': at name: expected a string/,
      )
      expect(await client.getStatus(byName)).toBeUndefined()
      const id = await client.start(greet, { name: 'ana' })
      const done = await client.waitForCompletion(id)
      expect([done.status, done.output, done.input]).toEqual(['Completed', 'hello ANA!', { name: 'ANA!' }])
      expect((await client.getStatus(id))?.input).toEqual({ name: 'ANA!' })
      // a delayed start keeps the checked input until its time: transformed once
      const later = await client.start(greet, { name: 'bo' }, { startAt: Date.now() + 300 })
      expect((await client.waitForCompletion(later)).output).toBe('hello BO!')
    })

    it('an asynchronous input schema is applied by the node', async () => {
      const { client } = stack
      await expect(client.start(double, -1)).rejects.toThrow(
        /bad input of orchestration 'schemaDouble': must be positive/,
      )
      expect((await client.waitForCompletion(await client.start(double, 21))).output).toBe(42)
    })

    it('an activity input schema: a bad call throws at the call; where it runs, the output is used', async () => {
      const { client } = stack
      const refused = await client.start(callsActivities, { who: { name: 3 }, n: -4 })
      expect((await client.waitForCompletion(refused)).output).toEqual([
        "call refused: bad input of activity 'schemaShout': at name: expected a string",
        // an asynchronous schema is applied where the activity runs: the attempt fails
        expect.stringMatching(/^halve failed: .*bad input of activity 'schemaHalve': must be positive/),
        "sub refused: bad input of orchestration 'schemaGreet': at name: expected a string",
      ])
      const accepted = await client.start(callsActivities, { who: { name: 'cy' }, n: 8 })
      expect((await client.waitForCompletion(accepted)).output).toEqual(['CY!', '4', 'hello CY!'])
    })

    it('an event schema: refused by the client; a wait refuses what is raised by name; the output arrives', async () => {
      const { client } = stack
      const id = await client.start(waitsForApproval, undefined)
      await expect(client.raiseEvent(id, approval, { name: false } as never)).rejects.toThrow(
        new BadInputError(`bad data of event 'schemaApproval': at name: expected a string`),
      )
      // by name the client cannot check: the wait fails with the schema's issues, the next one goes on
      await client.raiseEvent(id, 'schemaApproval', { name: false })
      await client.raiseEvent(id, approval, { name: 'di' })
      await client.raiseEvent(id, 'schemaApprovalLater', 5)
      expect((await client.waitForCompletion(id)).output).toEqual([
        "refused: bad data of event 'schemaApproval': at name: expected a string",
        'DI!',
        "refused: the schema of event 'schemaApprovalLater' validates asynchronously; an orchestration can apply only a synchronous schema",
      ])
      // an event that arrives before its wait is checked when the wait takes it
      const early = await client.start(waitsForApproval, undefined, { startAt: Date.now() + 300 })
      await client.raiseEvent(early, approval, { name: 'ed' })
      await client.raiseEvent(early, 'schemaApproval', {})
      await client.raiseEvent(early, 'schemaApprovalLater', 1)
      expect((await client.waitForCompletion(early)).output).toEqual([
        'ED!',
        "refused: bad data of event 'schemaApproval': at name: expected a string",
        "refused: the schema of event 'schemaApprovalLater' validates asynchronously; an orchestration can apply only a synchronous schema",
      ])
    })
  })
}

/**
 * Type tests of the public API: instance ids that carry an orchestration's output type, typed
 * external events, orchestrations started by entities, and the option types exported from the
 * package's entry point. The checks are
 * compile-time (`npx tsc --noEmit` type-checks this file; a wrong type fails the type check):
 * the functions below are type-checked, never run against a server.
 */
import { describe, expectTypeOf, it } from 'vitest'
import {
  Client,
  Entity,
  RuntimeStatus,
  activity,
  externalEvent,
  orchestration,
  type EventDefinition,
  type InstanceFilter,
  type InstanceId,
  type InstancePage,
  type InstanceQuery,
  type InstanceStatus,
  type OrchestrationDefinition,
  type StartOptions,
  type StatusOptions,
  type Task,
  type WaitOptions,
} from '../../runtime/index.ts'

const approval = externalEvent<{ by: string }>('approval')
const sayHello = activity('sayHello', (city: string) => `Hello ${city}`)

const hello = orchestration('hello', function* (ctx, cities: string[]) {
  const decision = ctx.waitForEvent(approval)
  expectTypeOf(decision).toEqualTypeOf<Task<{ by: string }>>()
  expectTypeOf(ctx.waitForEvent('plain')).toEqualTypeOf<Task<unknown>>()
  expectTypeOf(ctx.waitForEvent<number>('plain')).toEqualTypeOf<Task<number>>()
  const { by } = yield* decision
  return cities.map((c) => `${c} by ${by}`)
})

/** Type-checked only: what a client's orchestration methods accept and return. */
async function clientTypes(client: Client): Promise<void> {
  const id = await client.start(hello, ['Tokyo'])
  expectTypeOf(id).toEqualTypeOf<InstanceId<string[]>>()
  expectTypeOf(id).toMatchTypeOf<string>()

  const done = await client.waitForCompletion(id)
  expectTypeOf(done).toEqualTypeOf<InstanceStatus<string[]>>()
  expectTypeOf(done.output).toEqualTypeOf<string[] | undefined>()
  expectTypeOf(await client.getStatus(id)).toEqualTypeOf<InstanceStatus<string[]> | undefined>()

  // a plain string id: unknown output, or what a type argument says
  expectTypeOf(await client.waitForCompletion('some-id')).toEqualTypeOf<InstanceStatus<unknown>>()
  expectTypeOf(await client.waitForCompletion<number>('some-id')).toEqualTypeOf<InstanceStatus<number>>()

  await client.raiseEvent(id, approval, { by: 'ana' })
  // @ts-expect-error the payload of `approval` is { by: string }
  await client.raiseEvent(id, approval, { by: 1 })
  // @ts-expect-error a typed event needs its payload
  await client.raiseEvent(id, approval)
  await client.raiseEvent(id, 'untyped', 42)

  // @ts-expect-error the input of `hello` is string[]
  await client.start(hello, 'Tokyo')

  const filter: InstanceFilter = { statuses: [RuntimeStatus.Completed, 'Failed'], namePrefix: 'he' }
  // @ts-expect-error not a status
  const bad: InstanceFilter = { statuses: ['Done'] }
  const query: InstanceQuery = { ...filter, pageSize: 10 }
  expectTypeOf(await client.listInstances(query)).toEqualTypeOf<InstancePage>()
  expectTypeOf(client.purgeInstances).parameter(0).toEqualTypeOf<InstanceFilter>()
  void bad
}

/** Type-checked only: a read of an entity's state is narrowed by `exists`. */
async function readsState(client: Client): Promise<void> {
  const read = await client.readEntityState(Starter, 'k')
  if (read.exists) expectTypeOf(read.state).toEqualTypeOf<string[]>()
  else expectTypeOf(read.state).toEqualTypeOf<undefined>()
  expectTypeOf(read.state).toEqualTypeOf<string[] | undefined>()
}

/** Type-checked only: what an entity's startOrchestration accepts and returns. */
class Starter extends Entity<string[]> {
  initialState(): string[] {
    return []
  }
  kickOff(): void {
    const id = this.startOrchestration(hello, ['Tokyo'])
    expectTypeOf(id).toEqualTypeOf<string>()
    this.state.push(this.startOrchestration(hello, [], { instanceId: `${this.key}-hello` }))
    // @ts-expect-error the input of `hello` is string[]
    this.startOrchestration(hello, 'Tokyo')
    // @ts-expect-error a definition made by orchestration(), not its name
    this.startOrchestration('hello', ['Tokyo'])
    // @ts-expect-error an activity is not an orchestration
    this.startOrchestration(sayHello, 'Tokyo')
    // @ts-expect-error the instance id is a string
    this.startOrchestration(hello, [], { instanceId: 1 })
  }
}

describe('public types', () => {
  it('start returns an id that types waitForCompletion and getStatus by the orchestration output', () => {
    expectTypeOf(clientTypes).toBeFunction()
    expectTypeOf(hello).toEqualTypeOf<OrchestrationDefinition<string[], string[]>>()
  })

  it('a read of an entity state is narrowed by exists', () => {
    expectTypeOf(readsState).toBeFunction()
  })

  it('an entity starts an orchestration typed by its definition and gets its id', () => {
    expectTypeOf(Starter).toBeConstructibleWith()
  })

  it('external events are typed by an externalEvent definition', () => {
    expectTypeOf(approval).toEqualTypeOf<EventDefinition<{ by: string }>>()
    expectTypeOf(approval.name).toBeString()
  })

  it('exports the option types and the RuntimeStatus values', () => {
    expectTypeOf<StartOptions>().toHaveProperty('instanceId')
    expectTypeOf<StartOptions>().toHaveProperty('startAt')
    expectTypeOf<StatusOptions>().toHaveProperty('history')
    expectTypeOf<WaitOptions>().toHaveProperty('timeoutMs')
    expectTypeOf(RuntimeStatus.Completed).toEqualTypeOf<'Completed'>()
    expectTypeOf<RuntimeStatus>().toEqualTypeOf<
      'Pending' | 'Running' | 'Completed' | 'Failed' | 'Terminated' | 'Suspended' | 'ContinuedAsNew'
    >()
  })
})

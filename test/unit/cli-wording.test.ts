/**
 * Counts in the command line's output read right for one (`1 entity type`, not `1 entity types`),
 * and an instance's status names how it ended (`terminated:`, not `completed:`, for a
 * terminated one): runtime/cli/ and `counted` of actors/ids.ts.
 */
import { describe, expect, it } from 'vitest'
import { counted, TimeoutError } from '../../actors/index.ts'
import { describeFailure } from '../../runtime/cli/main.ts'
import { servingLine } from '../../runtime/cli/dev-command.ts'
import { formatHubInfo } from '../../runtime/cli/hub-commands.ts'
import { describeStatus } from '../../runtime/cli/instance-commands.ts'
import type { InstanceStatus } from '../../runtime/client/index.ts'
import { splitRegistry } from '../../runtime/node/index.ts'
import { Counter, Log } from '../fixtures/entities.ts'
import { helloSequence, sayHello } from '../fixtures/workflows.ts'

describe('counted', () => {
  it('says one thing in the singular, any other count in the plural', () => {
    expect(counted(1, 'partition')).toBe('1 partition')
    expect(counted(0, 'partition')).toBe('0 partitions')
    expect(counted(32, 'partition')).toBe('32 partitions')
    expect(counted(1, 'entity type')).toBe('1 entity type')
    expect(counted(2, 'entity type')).toBe('2 entity types')
    expect(counted(1, 'activity')).toBe('1 activity')
    expect(counted(7, 'activity')).toBe('7 activities')
    expect(counted(2, 'day')).toBe('2 days')
    expect(counted(3, 'child', 'children')).toBe('3 children')
  })
})

describe('command line output', () => {
  it('basalt dev: what it serves, one of a kind in the singular', () => {
    expect(servingLine('x.ts', splitRegistry([Counter]))).toBe(
      'serving x.ts: 1 entity type, 0 orchestrations, 0 activities',
    )
    expect(servingLine('the examples', splitRegistry([Counter, Log, helloSequence, sayHello]))).toBe(
      'serving the examples: 2 entity types, 1 orchestration, 1 activity',
    )
  })

  it('basalt hub info: a hub of one partition, one pending message and one dead letter', () => {
    const [first, second] = formatHubInfo({
      hub: 'h',
      partitions: 1,
      replicas: 1,
      created: '2026-01-01 00:00:00',
      streams: [],
      perPartition: [{ p: 0, position: 0, lastMailboxSeq: 1, pending: 1, deadLetters: 1 }],
      deadLetters: 1,
    })
    expect(first).toBe('hub h: 1 partition, 1 replica, created 2026-01-01 00:00:00')
    expect(second).toBe('backlog 1 message, 1 dead letter')
  })

  it('an ended instance says how it ended, not "completed" for every end', () => {
    const base = {
      id: 'o1',
      name: 'approval',
      createdAt: new Date(0),
      lastUpdatedAt: new Date(1000),
      completedAt: new Date(2000),
    }
    const label = (status: InstanceStatus['status']) =>
      describeStatus({ ...base, status } as InstanceStatus).find((l) => /^\w+: +1970-01-01 00:00:02$/.test(l))
    expect(label('Terminated')).toMatch(/^terminated: /)
    expect(label('Failed')).toMatch(/^failed: /)
    expect(label('Completed')).toMatch(/^completed: /)
    const running = describeStatus({ ...base, status: 'Running', completedAt: undefined } as InstanceStatus)
    expect(running.join('\n')).not.toMatch(/completed|terminated|failed/)
  })
})

describe('describeFailure', () => {
  it("says what NATS's timeouts and 'temporarily unavailable' mean, not Basalt's own errors", () => {
    const hint =
      ': NATS or JetStream did not answer in time (a server restarting, or a cluster electing a leader); try again in a few seconds'
    expect(describeFailure(Object.assign(new Error('timeout'), { name: 'TimeoutError' }))).toBe(
      `TimeoutError: timeout${hint}`,
    )
    const unavailable = Object.assign(new Error('JetStream system temporarily unavailable'), {
      name: 'JetStreamApiError',
    })
    expect(describeFailure(unavailable)).toBe(
      `JetStreamApiError: JetStream system temporarily unavailable${hint}`,
    )
    // Basalt's own timeout says what became of the request already
    const own = new TimeoutError('call Counter@c.get got no result in 100 ms')
    expect(describeFailure(own)).toBe('call Counter@c.get got no result in 100 ms')
    expect(describeFailure(new Error('stream not found'))).toBe('stream not found')
  })
})

/**
 * The `basalt` commands for instances, entities, the hub and dead letters, and `basalt dev`: each
 * test runs the real binary (a child process per command, ~1 s each) against one real nats-server
 * and one `basalt node` serving test/fixtures/cli-registry.ts, shared by the whole file.
 */
import { spawn } from 'node:child_process'
import { createRequire } from 'node:module'
import { createInterface } from 'node:readline'
import { pathToFileURL } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { jetstream, jetstreamManager } from '@nats-io/jetstream'
import { Client, UnknownEntityError } from '../../runtime/index.ts'
import { closeConnection, connectTo } from '../../runtime/nats/connect.ts'
import { encode } from '../../runtime/nats/codec.ts'
import { freePort } from '../../runtime/dev/nats-server.ts'
import { partitionOf } from '../../actors/ids.ts'
import {
  isProcessAlive,
  repoRoot,
  spawnTs,
  useNatsServer,
  waitFor,
  type SpawnedTs,
  basaltCli,
} from '../tooling/harness.ts'

const nats = useNatsServer()
const HUB = 'cli-cmd'
const PARTITIONS = 4

const { basalt, run } = basaltCli(nats, HUB)

/** Runs `basalt <args> --json`, expects exit 0 and returns the parsed output. */
async function json<T = any>(...args: string[]): Promise<T> {
  const { code, output } = await run(...args, '--json')
  expect(code, `basalt ${args.join(' ')} --json:\n${output}`).toBe(0)
  return JSON.parse(output) as T
}

let node: SpawnedTs
let client: Client

beforeAll(async () => {
  node = basalt('node', '--load', 'test/fixtures/cli-registry.ts', '--partitions', String(PARTITIONS))
  await node.waitForLine(/^node \S+ running on hub cli-cmd$/, 30_000)
  client = await Client.connect({ servers: nats.url, hub: HUB })
}, 40_000)
afterAll(async () => {
  await client?.close()
  node?.kill('SIGTERM')
  await node?.exited
})

describe('basalt instance commands', () => {
  it('start, wait, status, history and list an example orchestration', { timeout: 60_000 }, async () => {
    const started = await run('start', 'helloSequence', '--id', 'hello-1')
    expect(started.code, started.output).toBe(0)
    expect(started.lines).toEqual(['started helloSequence as hello-1'])
    const waited = await run('wait', 'hello-1')
    expect(waited.code, waited.output).toBe(0)
    expect(waited.output).toMatch(/^status: +Completed$/m)
    expect(waited.output).toMatch(/^output: +\["Hello Tokyo","Hello Seattle",/m)
    const quoted = await run('start', 'holdLock', '--id', 'quoted-1', '--input', '"42"')
    expect(quoted.code, quoted.output).toBe(0)
    // a string is shown quoted, as JSON: "42" apart from 42
    expect((await run('status', 'quoted-1')).output).toMatch(/^input: +"42"$/m)
    expect((await run('terminate', 'quoted-1')).code).toBe(0)
    const status = await json('status', 'hello-1')
    expect(status).toMatchObject({ id: 'hello-1', name: 'helloSequence', status: 'Completed' })
    expect(status.output).toEqual([
      'Hello Tokyo',
      'Hello Seattle',
      'Hello London',
      'Hello Cairo',
      'Hello Lima',
    ])
    const history = await run('history', 'hello-1')
    expect(history.code, history.output).toBe(0)
    expect(history.lines[0]).toMatch(/^ *# +time +event +detail$/)
    expect(history.output).toMatch(/ scheduled +#0 activity sayHello$/m)
    expect(history.output).toMatch(/ finished +completed \["Hello Tokyo",/m)
    const listed = await run('list', '--name', 'helloSeq', '--prefix', 'hello-')
    expect(listed.code, listed.output).toBe(0)
    expect(listed.lines[0]).toMatch(/^id +name +status +created +updated$/)
    expect(listed.lines.slice(1).map((l) => l.split(/ +/).slice(0, 3))).toEqual([
      ['hello-1', 'helloSequence', 'Completed'],
    ])
    const none = await json('list', '--status', 'failed', '--prefix', 'hello-')
    expect(none).toEqual({ instances: [] })
    const missing = await run('status', 'no-such-instance')
    expect(missing.code, missing.output).toBe(1)
    expect(missing.lines).toEqual([
      "basalt status: instance 'no-such-instance' does not exist (see basalt list)",
    ])
  })

  it(
    'list says when more match than --limit shows, and --continue lists the next ones',
    { timeout: 60_000 },
    async () => {
      for (const id of ['page-1', 'page-2', 'page-3']) {
        expect((await run('start', 'helloSequence', '--id', id)).code).toBe(0)
      }
      const first = await run('list', '--prefix', 'page-', '--limit', '2')
      expect(first.code, first.output).toBe(0)
      expect(first.lines.slice(1, 3).map((l) => l.split(/ +/)[0])).toEqual(['page-1', 'page-2'])
      const hint = first.lines.at(-1)!
      const token = /--continue (\S+) for the next ones$/.exec(hint)?.[1]
      expect(hint).toMatch(/^basalt list: 2 shown and more match: give a higher --limit, or --continue \S+/)
      const page = await json('list', '--prefix', 'page-', '--limit', '2')
      expect(page.instances.map((s: { id: string }) => s.id)).toEqual(['page-1', 'page-2'])
      expect(page.continuation).toBe(token)
      const rest = await json('list', '--prefix', 'page-', '--continue', token!)
      expect(rest.instances.map((s: { id: string }) => s.id)).toEqual(['page-3'])
      expect(rest).not.toHaveProperty('continuation')
      const all = await run('list', '--prefix', 'page-')
      expect(all.output).not.toMatch(/more match/)
      const bad = await run('list', '--continue', 'nonsense')
      expect(bad.code, bad.output).toBe(2)
      expect(bad.lines[0]).toMatch(
        /^basalt list: --continue "nonsense": expected a token printed by an earlier basalt list/,
      )
    },
  )

  it('suspend, raise, resume, terminate and purge', { timeout: 90_000 }, async () => {
    for (const id of ['appr-1', 'appr-2']) {
      expect((await run('start', 'approval', '--input', '600000', '--id', id)).code).toBe(0)
    }
    expect((await run('suspend', 'appr-1')).lines).toEqual(['suspended appr-1'])
    expect((await json('status', 'appr-1')).status).toBe('Suspended')
    const raised = await run('raise', 'appr-1', 'approve', '--data', '{"by":"ann"}')
    expect(raised.lines, raised.output).toEqual(['raised approve on appr-1'])
    expect((await json('status', 'appr-1')).status, 'held while suspended').toBe('Suspended')
    expect((await run('resume', 'appr-1')).lines).toEqual(['resumed appr-1'])
    const done = await json('wait', 'appr-1', '--timeout', '20000')
    expect(done).toMatchObject({ status: 'Completed', output: 'approved by ann' })

    expect((await run('terminate', 'appr-2', '--reason', 'not needed')).lines).toEqual(['terminated appr-2'])
    const ended = await run('wait', 'appr-2')
    expect(ended.code, `wait on a terminated instance exits 1:\n${ended.output}`).toBe(1)
    expect(ended.output).toMatch(/^status: +Terminated$/m)
    // when it ended, named by how: not "completed:" for a terminated instance
    expect(ended.output).toMatch(/^terminated: +\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$/m)
    expect(ended.output).not.toMatch(/^completed:/m)
    expect((await run('purge', 'appr-2')).lines).toEqual(['purged appr-2'])
    expect(await client.getStatus('appr-2')).toBeUndefined()

    const bulk = await run('purge', '--status', 'Completed', '--before', '0s')
    expect(bulk.code, bulk.output).toBe(0)
    const purged = Number(/^purged (\d+) instances?$/.exec(bulk.lines[0] ?? '')?.[1])
    expect(purged, bulk.output).toBeGreaterThanOrEqual(1)
    expect(await client.getStatus('appr-1')).toBeUndefined()
    const usage = await run('purge', '--status', 'Running', '--before', '0s')
    expect(usage.code, usage.output).toBe(2)
  })
})

describe('basalt entity', () => {
  it('signal, call, get, list and unlock by type name', { timeout: 60_000 }, async () => {
    expect((await run('entity', 'signal', 'Counter', 'cli-c1', 'add', '--args', '5')).lines).toEqual([
      'signalled Counter@cli-c1.add',
    ])
    expect((await run('entity', 'call', 'Counter', 'cli-c1', 'add', '--args', '[2]')).lines).toEqual([
      '(no result)',
    ])
    expect((await run('entity', 'call', 'Counter', 'cli-c1', 'get')).lines).toEqual(['7'])
    expect((await run('entity', 'get', 'Counter', 'cli-c1')).lines).toEqual(['7'])
    expect(await json('entity', 'list', 'Counter', '--prefix', 'cli-')).toEqual(['cli-c1'])
    for (const key of ['cli-p1', 'cli-p2'])
      expect((await run('entity', 'signal', 'Counter', key, 'add', '--args', '1')).code).toBe(0)
    const firstTwo = await run('entity', 'list', 'Counter', '--prefix', 'cli-', '--limit', '2')
    expect(firstTwo.lines.slice(0, 2)).toEqual(['cli-c1', 'cli-p1'])
    const token = /--continue (\S+) for the next ones$/.exec(firstTwo.lines[2] ?? '')?.[1]
    expect(firstTwo.lines[2], firstTwo.output).toMatch(/^basalt entity list: 2 shown and more match/)
    expect((await run('entity', 'list', 'Counter', '--prefix', 'cli-', '--continue', token!)).lines).toEqual([
      'cli-p2',
    ])
    const unknownOp = await run('entity', 'call', 'Counter', 'cli-c1', 'explode')
    expect(unknownOp.code, unknownOp.output).toBe(1)
    expect(unknownOp.lines).toHaveLength(1)
    expect(unknownOp.lines[0]).toMatch(/^basalt entity call: .*explode/)
    // a signal to a type no node registers (a typo) is refused, not dead-lettered; reads say the same
    const typo = await run('entity', 'signal', 'Countr', 'cli-c1', 'add', '--args', '1')
    expect(typo.code, typo.output).toBe(1)
    expect(typo.lines).toHaveLength(1)
    expect(typo.lines[0]).toMatch(
      /^basalt entity signal: unknown entity type 'Countr' \(not in the registry of any node of hub '[^']+'; known: .*\bCounter\b.*\)$/,
    )
    // and so is one of an operation no node registers for the type (was 'signalled', exit 0)
    const typoOp = await run('entity', 'signal', 'Counter', 'cli-c1', 'nope')
    expect(typoOp.code, typoOp.output).toBe(1)
    expect(typoOp.lines).toHaveLength(1)
    expect(typoOp.lines[0]).toMatch(
      /^basalt entity signal: entity type 'Counter' has no operation 'nope' \(no node of hub 'cli-cmd' registers it; known: (\w+, )*add, (\w+, )*get\b.*\)$/,
    )
    const typoGet = await run('entity', 'get', 'Countr', 'cli-c1')
    expect(typoGet.lines).toEqual([
      "basalt entity get: unknown entity type 'Countr' (not in the registry of any node of this hub)",
    ])
    // and a forced unlock (was 'Countr@cli-c1 was not locked', exit 0)
    const typoUnlock = await run('entity', 'unlock', 'Countr', 'cli-c1', '--yes')
    expect(typoUnlock.code, typoUnlock.output).toBe(1)
    expect(typoUnlock.lines).toEqual([
      "basalt entity unlock: unknown entity type 'Countr' (not in the registry of any node of this hub)",
    ])
    await expect(client.forceUnlock('Countr', 'cli-c1')).rejects.toThrow(UnknownEntityError)
    // what the operation threw, by name (and code and own fields, when it has them)
    const threw = await run('entity', 'call', 'Counter', 'cli-c1', 'add', '--args', '"x"')
    expect(threw.code, threw.output).toBe(1)
    expect(threw.lines).toEqual([
      'basalt entity call: Counter@cli-c1.add threw TypeError: add expects a number, got x',
    ])
    const absent = await run('entity', 'get', 'Counter', 'nobody')
    expect(absent.code, absent.output).toBe(1)

    await client.startByName('holdLock', 'cli-locked', { instanceId: 'locker-1' })
    await waitFor(
      async () => (await client.getLock('Counter', 'cli-locked')) === 'locker-1',
      'locker-1 holding Counter@cli-locked',
    )
    const refused = await run('entity', 'unlock', 'Counter', 'cli-locked')
    expect(refused.code, refused.output).toBe(2)
    expect(refused.output).toMatch(/Counter@cli-locked is locked by instance locker-1; add --yes/)
    expect(await client.getLock('Counter', 'cli-locked'), 'still locked without --yes').toBe('locker-1')
    const released = await run('entity', 'unlock', 'Counter', 'cli-locked', '--yes')
    expect(released.lines, released.output).toEqual(['released Counter@cli-locked from instance locker-1'])
    expect(await client.getLock('Counter', 'cli-locked')).toBeNull()
    const nothing = await run('entity', 'unlock', 'Counter', 'cli-locked')
    expect(nothing.code, nothing.output).toBe(0)
    expect(nothing.lines).toEqual(['Counter@cli-locked is not locked: nothing to release'])
  })
})

describe('control characters in ids and keys', () => {
  it('are escaped in tables and lines, one record a line, and left to JSON with --json', async () => {
    // (valid ids and keys: an outside trial's line break split a row of `basalt list` in two)
    const id = 'ctl-nl\nx\u001b[2J'
    expect((await run('start', 'helloSequence', '--id', id)).lines).toEqual([
      'started helloSequence as ctl-nl\\nx\\u001b[2J',
    ])
    const listed = await run('list', '--prefix', 'ctl-')
    expect(listed.lines.slice(1).map((l) => l.split(/ +/).slice(0, 2))).toEqual([
      ['ctl-nl\\nx\\u001b[2J', 'helloSequence'],
    ])
    expect((await json('list', '--prefix', 'ctl-')).instances.map((s: { id: string }) => s.id)).toEqual([id])
    const key = 'ctl-t\tab\u009b'
    expect((await run('entity', 'signal', 'Counter', key, 'add', '--args', '1')).lines).toEqual([
      'signalled Counter@ctl-t\\tab\\u009b.add',
    ])
    expect((await run('entity', 'list', 'Counter', '--prefix', 'ctl-')).lines).toEqual(['ctl-t\\tab\\u009b'])
    expect(await json('entity', 'list', 'Counter', '--prefix', 'ctl-')).toEqual([key])
  })
})

describe('basalt hub and dlq', () => {
  it('hub create, info and delete', { timeout: 60_000 }, async () => {
    const created = await run('hub', 'create', '--hub', 'cli-new', '--partitions', '3')
    expect(created.lines, created.output).toEqual(['hub cli-new: 3 partitions, 1 replica'])
    const one = await run('hub', 'create', '--hub', 'cli-one', '--partitions', '1')
    expect(one.lines, one.output).toEqual(['hub cli-one: 1 partition, 1 replica'])
    expect((await run('hub', 'info', '--hub', 'cli-one')).lines[0]).toMatch(
      /^hub cli-one: 1 partition, 1 replica, created /,
    )
    expect((await run('hub', 'delete', '--hub', 'cli-one', '--yes')).code).toBe(0)
    const info = await json('hub', 'info', '--hub', 'cli-new')
    expect(info).toMatchObject({ hub: 'cli-new', partitions: 3, replicas: 1, deadLetters: 0 })
    expect(info.streams.map((s: { stream: string }) => s.stream)).toEqual([
      'BASALT_cli-new_MBX',
      'BASALT_cli-new_LOG',
      'BASALT_cli-new_DLQ',
      'BASALT_cli-new_TASKS',
      'BASALT_cli-new_BLOBS',
      'KV_basalt_cli-new_state',
      'KV_basalt_cli-new_meta',
    ])
    expect(info.perPartition.map((p: { p: number; pending: number }) => [p.p, p.pending])).toEqual([
      [0, 0],
      [1, 0],
      [2, 0],
    ])
    const text = await run('hub', 'info')
    expect(text.code, text.output).toBe(0)
    expect(text.lines[0]).toMatch(/^hub cli-cmd: 4 partitions, 1 replica, created /)
    expect(text.output).toMatch(/^partition +position +last mailbox seq +pending +dead letters$/m)
    // a mailbox with nothing stored shows no sequence rather than 0
    const fresh = await run('hub', 'info', '--hub', 'cli-new')
    expect(fresh.output).toMatch(/^ +0 +\d+ +- +0 +0$/m)
    const refused = await run('hub', 'delete', '--hub', 'cli-new')
    expect(refused.code, refused.output).toBe(2)
    // the file's node runs on cli-cmd: refused, nothing deleted
    const running = await run('hub', 'delete', '--yes')
    // 1: the command line is right, the hub's state refuses it (was 2)
    expect(running.code, running.output).toBe(1)
    expect(running.lines[0]).toMatch(
      /^basalt hub delete: hub 'cli-cmd' has 1 node running \(\S+: heartbeats in the last 30 s\); stop them first, or add --force/,
    )
    expect((await json('hub', 'info')).hub).toBe('cli-cmd')
    expect((await run('hub', 'delete', '--hub', 'cli-new', '--yes')).lines).toEqual(['deleted hub cli-new'])
    const gone = await run('hub', 'info', '--hub', 'cli-new')
    expect(gone.code, gone.output).toBe(1)
    expect(gone.lines).toEqual([
      "basalt hub info: hub 'cli-new' does not exist: check the name (--hub or BASALT_HUB)",
    ])
    const again = await run('hub', 'delete', '--hub', 'cli-new', '--yes')
    expect(again.code, again.output).toBe(1)
    expect(again.lines).toEqual(["basalt hub delete: hub 'cli-new' does not exist (nothing to delete)"])
    // a command that needs nodes on the hub keeps the hint
    const status = await run('status', 'x', '--hub', 'cli-new')
    expect(status.code, status.output).toBe(1)
    expect(status.lines).toEqual(["basalt status: hub 'cli-new' does not exist: start a node on it first"])
  })

  it(
    'hub delete --force stops the nodes still running on the hub, each saying why',
    { timeout: 60_000 },
    async () => {
      const doomed = spawnTs(
        'runtime/cli/basalt.mjs',
        ['node', '--load', 'test/fixtures/cli-registry.ts', '--partitions', '2', '--workers', '2'],
        { NATS_URL: nats.url, BASALT_HUB: 'cli-del' },
      )
      await doomed.waitForLine(/^node \S+ running on hub cli-del$/, 30_000)
      const deleted = await run('hub', 'delete', '--hub', 'cli-del', '--yes', '--force')
      expect(deleted.code, deleted.output).toBe(0)
      expect(await doomed.exited, doomed.lines.join('\n')).toBe(1)
      expect(doomed.lines.join('\n')).toMatch(
        /basalt node: hub 'cli-del' was deleted while node \S+ ran on it: the node stopped; start it again to join the hub as it is now/,
      )
    },
  )

  it('dlq list, show, replay and purge', { timeout: 60_000 }, async () => {
    const nc = await connectTo(nats.url, 'cli-dlq-test')
    try {
      const js = jetstream(nc)
      const jsm = await jetstreamManager(nc)
      const deadLetters = async () => (await jsm.streams.info(`BASALT_${HUB}_DLQ`)).state.messages
      const before = await deadLetters()
      // garbage bytes, and an operation published to a mailbox its entity does not belong to
      await js.publish(`${HUB}.mbx.0`, new Uint8Array([1, 2, 3, 250]))
      const right = partitionOf('cli-dlq', PARTITIONS)
      const wrong = (right + 1) % PARTITIONS
      const op = { k: 'op', t: 'Counter', key: 'cli-dlq', op: 'add', a: [11] }
      await js.publish(`${HUB}.mbx.${wrong}`, encode({ v: 1, c: 'cli-dlq-test', q: 1, m: [op] }))
      await waitFor(async () => (await deadLetters()) === before + 2, `2 new dead letters after ${before}`)

      const listed = await json<
        Array<{ seq: number; partition: number; messageIndex: number | null; reason: string }>
      >('dlq', 'list')
      expect(listed).toHaveLength(before + 2)
      const [garbage, misrouted] = listed.slice(-2)
      expect(garbage).toMatchObject({ partition: 0, messageIndex: null })
      expect(garbage!.reason).toMatch(/undecodable bytes/)
      expect(misrouted).toMatchObject({ partition: wrong, messageIndex: 0 })
      const text = await run('dlq', 'list')
      expect(text.lines[0]).toMatch(/^seq +partition +mailbox seq +time +bytes +reason$/)

      const shown = await json('dlq', 'show', String(misrouted!.seq))
      expect(shown).toMatchObject({ decoded: true, content: op })
      const replayed = await run('dlq', 'replay', String(misrouted!.seq))
      expect(replayed.lines[0], replayed.output).toMatch(
        new RegExp(`^replayed dead letter ${misrouted!.seq} to partition ${right} \\(mailbox seq \\d+\\)$`),
      )
      await waitFor(
        async () => (await client.readEntityState('Counter', 'cli-dlq')).state === 11,
        'Counter@cli-dlq = 11 after the replay',
      )
      expect(await deadLetters(), 'the replayed dead letter is removed').toBe(before + 1)
      const again = await run('dlq', 'replay', String(misrouted!.seq))
      expect(again.code, again.output).toBe(1)
      expect(again.lines).toEqual([
        `basalt dlq replay: no dead letter ${misrouted!.seq} (see basalt dlq list)`,
      ])

      expect((await run('dlq', 'purge')).code).toBe(2)
      expect((await run('dlq', 'purge', '--yes')).lines).toEqual([
        `purged ${before + 1} dead letter${before + 1 === 1 ? '' : 's'}`,
      ])
      expect(await deadLetters()).toBe(0)
    } finally {
      await closeConnection(nc)
    }
  })
})

describe('basalt dlq replay in bulk', () => {
  it(
    'replays every dead letter, or those of one partition or reason, each once',
    { timeout: 60_000 },
    async () => {
      const nc = await connectTo(nats.url, 'cli-dlq-bulk-test')
      try {
        const js = jetstream(nc)
        const jsm = await jetstreamManager(nc)
        await jsm.streams.purge(`BASALT_${HUB}_DLQ`)
        const deadLetters = async () => (await jsm.streams.info(`BASALT_${HUB}_DLQ`)).state.messages
        // two counters' operations, each published to a mailbox it does not belong to (two
        // different ones), and garbage bytes on a third partition
        const homeA = partitionOf('bulk-a', PARTITIONS)
        const homeB = partitionOf('bulk-b', PARTITIONS)
        const wrongA = (homeA + 1) % PARTITIONS
        const wrongB = [1, 2, 3].map((d) => (homeB + d) % PARTITIONS).find((p) => p !== wrongA)!
        const garbageAt = [0, 1, 2, 3].find((p) => p !== wrongA && p !== wrongB)!
        const misrouted = async (key: string, to: number, amounts: number[]) => {
          for (const a of amounts) {
            const op = { k: 'op', t: 'Counter', key, op: 'add', a: [a] }
            await js.publish(`${HUB}.mbx.${to}`, encode({ v: 1, c: `bulk-${key}-${a}`, q: 1, m: [op] }))
          }
        }
        await misrouted('bulk-a', wrongA, [1, 2, 3])
        await misrouted('bulk-b', wrongB, [10, 20])
        await js.publish(`${HUB}.mbx.${garbageAt}`, new Uint8Array([1, 2, 3, 250]))
        await waitFor(async () => (await deadLetters()) === 6, '6 dead letters')

        expect((await run('dlq', 'replay')).code, 'neither a sequence nor --all').toBe(2)
        expect((await run('dlq', 'replay', '1', '--all')).code, 'both').toBe(2)

        const byPartition = await run('dlq', 'replay', '--partition', String(wrongA))
        expect(byPartition.code, byPartition.output).toBe(0)
        expect(byPartition.lines).toEqual([`replayed 3 dead letters (per partition ${homeA}: 3)`])
        await waitFor(
          async () => (await client.readEntityState('Counter', 'bulk-a')).state === 6,
          'Counter@bulk-a = 6',
        )
        expect((await run('dlq', 'replay', '--partition', String(wrongA))).lines).toEqual([
          'replayed 0 dead letters',
        ])

        // undecodable bytes go back as they were, fail again, and come back once: not replayed
        // a second time by the same command
        const byReason = await json('dlq', 'replay', '--reason', 'undecodable')
        expect(byReason).toEqual({ replayed: 1, partitions: { [garbageAt]: 1 }, skipped: [] })
        await waitFor(async () => (await deadLetters()) === 3, 'the garbage dead-lettered again')

        const all = await json('dlq', 'replay', '--all')
        expect(all).toEqual({
          replayed: 3,
          partitions: homeB === garbageAt ? { [homeB]: 3 } : { [homeB]: 2, [garbageAt]: 1 },
          skipped: [],
        })
        await waitFor(
          async () => (await client.readEntityState('Counter', 'bulk-b')).state === 30,
          'Counter@bulk-b = 30',
        )
        await waitFor(async () => (await deadLetters()) === 1, 'only the garbage left, dead-lettered again')
        expect((await client.readEntityState('Counter', 'bulk-a')).state).toBe(6)
        const left = await json<Array<{ partition: number; reason: string }>>('dlq', 'list')
        expect(left).toHaveLength(1)
        expect(left[0]).toMatchObject({ partition: garbageAt })
        expect(left[0]!.reason).toMatch(/undecodable/)
      } finally {
        await closeConnection(nc)
      }
    },
  )
})

describe('basalt dashboard started by npm', () => {
  it(
    'stops once its parent is gone, as npm leaves it when its shell is killed',
    { timeout: 30_000 },
    async () => {
      const port = await freePort()
      const tsx = pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href
      // npm runs a script under `sh -c`; killing that shell leaves the command with a new parent
      const shell = spawn(
        'sh',
        [
          '-c',
          `"${process.execPath}" --import ${tsx} runtime/cli/basalt.mjs dashboard --port ${port} & echo "pid $!"; wait`,
        ],
        {
          cwd: repoRoot,
          env: { ...process.env, NATS_URL: nats.url, BASALT_HUB: HUB, npm_lifecycle_event: 'start' },
          stdio: ['ignore', 'pipe', 'pipe'],
        },
      )
      const lines: string[] = []
      for (const stream of [shell.stdout, shell.stderr]) {
        createInterface({ input: stream }).on('line', (line) => lines.push(line))
      }
      let pid = 0
      try {
        await waitFor(
          () => lines.some((l) => l.startsWith('dashboard http')),
          `the dashboard serving (${lines.join(' | ')})`,
          20_000,
        )
        pid = Number(lines.find((l) => l.startsWith('pid '))!.slice(4))
        shell.kill('SIGKILL')
        await waitFor(
          () => lines.includes('SIGTERM: stopping'),
          `the dashboard stopping (${lines.join(' | ')})`,
        )
        await waitFor(() => !isProcessAlive(pid), `dashboard process ${pid} gone`)
      } finally {
        if (pid > 0 && isProcessAlive(pid)) process.kill(pid, 'SIGKILL')
        shell.kill('SIGKILL')
      }
    },
  )
})

/**
 * Wire features of node versions (`f:` names beside a node's registry names, placement/registry.ts):
 * a node lacking a feature some live node has never owns partitions while such a node is live,
 * a sender uses a feature only once every node record lists it, `f:` names are never taken for
 * types known elsewhere, and a lock request whose carried calls are malformed is refused by the
 * message check with a clear reason. Pure: no NATS.
 */
import { describe, expect, it } from 'vitest'
import { CodecError } from '../../actors/index.ts'
import { checkMessage, type EntityOp } from '../../actors/wire/index.ts'
import {
  EXEC_SEQS,
  HubTypes,
  LOCK_OPS,
  PACKED_HISTORY,
  RELEASE_OPS,
  WIRE_FEATURES,
  eligibleNodes,
  everyRecordHas,
  isFeature,
} from '../../placement/registry.ts'
import { registryNames, splitRegistry } from '../../runtime/node/registry-module.ts'
import { releasesOf } from '../../runtime/instances/instance-steps.ts'
import type { Command } from '../../actors/orchestration/index.ts'
import { Account, transfer } from '../fixtures/workflows.ts'

describe('eligibility with wire features', () => {
  const current = ['e:A', 'o:flow', LOCK_OPS]
  const previous = ['e:A', 'o:flow']

  it('leaves out a node of the previous version while a node with the feature is live', () => {
    const regs = new Map([
      ['new', current],
      ['old', previous],
    ])
    expect(eligibleNodes(['new', 'old'], regs)).toEqual(['new'])
    // alone, the previous version runs everything (nothing newer is live)
    expect(eligibleNodes(['old'], regs)).toEqual(['old'])
  })

  it('leaves it out even when registries diverge (it has a type the new node lacks)', () => {
    const regs = new Map([
      ['new', ['e:A', LOCK_OPS]],
      ['old', ['e:A', 'e:B']],
    ])
    expect(eligibleNodes(['new', 'old'], regs)).toEqual(['new'])
    // without features the divergence still makes every live node eligible, as before
    const plain = new Map([
      ['a', ['e:A']],
      ['b', ['e:B']],
    ])
    expect(eligibleNodes(['a', 'b'], plain)).toEqual(['a', 'b'])
  })

  it('counts a node that publishes no registry as knowing every type but no feature', () => {
    expect(eligibleNodes(['new', 'ancient'], new Map([['new', current]]))).toEqual(['new'])
    expect(eligibleNodes(['a', 'ancient'], new Map([['a', previous]]))).toEqual(['a', 'ancient'])
  })

  it('among nodes with the features, prefers those that know every type', () => {
    const regs = new Map([
      ['full', [...current, 'e:B']],
      ['partial', current],
      ['old', [...previous, 'e:B']],
    ])
    expect(eligibleNodes(['full', 'old', 'partial'], regs)).toEqual(['full'])
    // nodes that each lack a feature the other has: none is current, all stay eligible
    const split = new Map([
      ['x', ['e:A', 'f:one']],
      ['y', ['e:A', 'f:two']],
    ])
    expect(eligibleNodes(['x', 'y'], split)).toEqual(['x', 'y'])
  })
})

describe('everyRecordHas', () => {
  it('holds only when every record lists the feature', () => {
    const withIt = ['e:A', LOCK_OPS]
    expect(everyRecordHas([withIt, withIt], LOCK_OPS)).toBe(true)
    expect(everyRecordHas([withIt, ['e:A']], LOCK_OPS)).toBe(false)
    expect(everyRecordHas([withIt, undefined], LOCK_OPS)).toBe(false) // a record without a registry
    expect(everyRecordHas([], LOCK_OPS)).toBe(true)
  })
})

describe('feature names are no types', () => {
  it('are never known elsewhere as an entity type or orchestration', () => {
    const types = new HubTypes(['e:A'], () => ['e:A', LOCK_OPS, 'f:later'])
    expect(types.whereIs('e:lock-ops')).toBe('nowhere')
    expect(types.whereIs('o:lock-ops')).toBe('nowhere')
    expect(isFeature(LOCK_OPS)).toBe(true)
    expect(isFeature('e:Account')).toBe(false)
  })

  it('are published with the registry names, unless a test node withholds them', () => {
    const split = splitRegistry([Account, transfer])
    expect(WIRE_FEATURES).toContain(LOCK_OPS)
    expect(WIRE_FEATURES).toContain(EXEC_SEQS)
    expect(WIRE_FEATURES).toContain(PACKED_HISTORY)
    expect(WIRE_FEATURES).toContain(RELEASE_OPS)
    // each entity operation too: a node that lacks one gives its partitions up to one that runs it
    expect(registryNames(split)).toEqual([
      'e:Account',
      'e:Account#balance',
      'e:Account#deposit',
      'e:Account#withdraw',
      EXEC_SEQS,
      LOCK_OPS,
      PACKED_HISTORY,
      RELEASE_OPS,
      'o:transfer',
    ])
    expect(registryNames(split, [])).toEqual([
      'e:Account',
      'e:Account#balance',
      'e:Account#deposit',
      'e:Account#withdraw',
      'o:transfer',
    ])
  })
})

describe('a lock request with carried calls', () => {
  const call = (key: string): EntityOp => ({
    k: 'op',
    t: 'Account',
    key,
    op: 'balance',
    a: [],
    ro: ['inst', 1],
  })
  const lock = (ops: unknown) => ({
    k: 'lock',
    t: 'Account',
    key: 'a',
    o: ['inst', 0],
    rest: [['Account', 'b']],
    all: [
      ['Account', 'a'],
      ['Account', 'b'],
    ],
    ops,
  })

  it('passes the check when every call is an orchestration call to an entity it locks', () => {
    expect(checkMessage(lock([call('a'), call('b')]))).toMatchObject({
      k: 'lock',
      ops: [call('a'), call('b')],
    })
  })

  it.each([
    ['ops not an array', 'oops', 'message field ops is not an array'],
    ['a call that is no message', [42], 'message is not a map'],
    [
      'a call without its arguments',
      [{ ...call('a'), a: 'x' }],
      'message field a (arguments) is not an array',
    ],
    [
      'a signal (no result to return)',
      [{ k: 'op', t: 'Account', key: 'a', op: 'deposit', a: [1] }],
      'message field ops holds a message that is not an orchestration call',
    ],
    [
      'another kind of message',
      [{ k: 'done', i: 'inst', s: 1 }],
      'message field ops holds a message that is not an orchestration call',
    ],
    [
      'a call of another instance',
      [{ ...call('a'), ro: ['other', 1] }],
      "message field ops holds a call of instance 'other', not the one that asks",
    ],
    [
      'a call to an entity the request does not lock',
      [call('c')],
      'message field ops holds a call to Account@c, which the lock request does not lock',
    ],
  ])('refuses %s with a CodecError naming it', (_what, ops, message) => {
    expect(() => checkMessage(lock(ops))).toThrow(CodecError)
    expect(() => checkMessage(lock(ops))).toThrow(message)
  })
})

describe('call outcomes riding with a lock request or its grant', () => {
  const outcome = (s: number, i = 'inst') => ({ k: 'done', i, s, ok: 1, v: 5 })
  const lock = (res: unknown) => ({ k: 'lock', t: 'Account', key: 'b', o: ['inst', 0], rest: [], res })
  const grant = (res: unknown) => ({ k: 'done', i: 'inst', s: 0, ok: 1, lk: [['Account', 'a']], res })
  const call = { k: 'op', t: 'Account', key: 'a', op: 'balance', a: [], ro: ['inst', 1] }

  it('passes the check when every outcome is a done to the instance that asked', () => {
    expect(checkMessage(lock([outcome(1), outcome(2)]))).toMatchObject({ res: [outcome(1), outcome(2)] })
    expect(checkMessage(grant([outcome(1)]))).toMatchObject({ lk: [['Account', 'a']], res: [outcome(1)] })
    expect(checkMessage({ ...call, fw: grant([outcome(2)]) })).toMatchObject({ fw: { res: [outcome(2)] } })
  })

  it.each([
    ['res not an array', lock('oops'), 'message field res is not an array'],
    [
      'an outcome that is no message',
      lock([42]),
      'message field res holds a message that is not the outcome of a call',
    ],
    [
      'another kind of message',
      lock([{ k: 'ev', i: 'inst', n: 'x' }]),
      'message field res holds a message that is not the outcome of a call',
    ],
    [
      'an outcome without its task number',
      lock([{ k: 'done', i: 'inst' }]),
      'message field s is not a number',
    ],
    [
      'an outcome for another instance',
      lock([outcome(1, 'other')]),
      "holds an outcome for instance 'other', not 'inst'",
    ],
    [
      'an outcome that is itself a grant',
      grant([{ ...outcome(1), lk: [] }]),
      'message field res holds a message that is not the outcome of a call',
    ],
    [
      'outcomes on a done that is no grant',
      { ...outcome(0), res: [outcome(1)] },
      'message field res is set on a done that is not a grant (no lk)',
    ],
    ['a grant whose lk is malformed', { ...grant([]), lk: [['Account']] }, 'message field lk holds an entry'],
    [
      'two calls to one entity in a request',
      { ...lock(undefined), key: 'a', ops: [call, { ...call, ro: ['inst', 2] }] },
      'message field ops holds two calls to Account@a',
    ],
    [
      'a call whose onward message is neither request nor grant',
      { ...call, fw: outcome(1) },
      'message field fw is not the lock request or grant of an orchestration call',
    ],
    [
      'an onward message on a call that is no orchestration call',
      { ...call, ro: undefined, fw: lock([]) },
      'message field fw is not the lock request or grant of an orchestration call',
    ],
  ])('refuses %s with a CodecError naming it', (_what, msg, message) => {
    expect(() => checkMessage(msg)).toThrow(CodecError)
    expect(() => checkMessage(msg)).toThrow(message)
  })
})

describe('a release carried by the last calls of its step', () => {
  const call = (key: string, seq: number, lock?: number): Command => ({
    c: 'call',
    seq,
    entity: ['Account', key],
    op: 'deposit',
    args: [1],
    ...(lock === undefined ? {} : { lock }),
  })
  const signal = (key: string): Command => ({
    c: 'signal',
    entity: ['Account', key],
    op: 'deposit',
    args: [1],
  })
  const unlock = (...keys: string[]): Command => ({
    c: 'unlock',
    entities: keys.map((k): [string, string] => ['Account', k]),
  })
  /** For each command: whether it carries a release, and the entities an unlock leaves to the calls. */
  const carried = (step: Command[]) => {
    const releases = releasesOf(step)
    return step.map((c) =>
      c.c === 'unlock'
        ? [...(releases?.carried.get(c) ?? [])].map((name) => name.split('\u0000')[1])
        : releases?.carriers.has(c) === true,
    )
  }

  it('goes with the last call to each entity before the release', () => {
    expect(carried([call('a', 2), call('b', 3), unlock('a', 'b')])).toEqual([true, true, ['a', 'b']])
    expect(carried([call('a', 2), call('a', 3), unlock('a')])).toEqual([false, true, ['a']])
    expect(carried([signal('a'), unlock('a')]), 'not a signal').toEqual([false, []])
  })

  it('not with a call that travels in a lock request, nor across another lock or release', () => {
    const lock: Command = { c: 'lock', seq: 1, entities: [['Account', 'a']] }
    expect(carried([lock, call('a', 2, 1), unlock('a')])).toEqual([false, false, []])
    expect(carried([call('a', 2), lock, unlock('a')])).toEqual([false, false, []])
    expect(carried([call('a', 2), unlock('b'), unlock('a')])).toEqual([false, [], []])
    expect(releasesOf([call('a', 2)]), 'a step with no release').toBeUndefined()
  })

  it('is 1 on an orchestration call (its caller releases), nothing else', () => {
    const call = { k: 'op', t: 'Account', key: 'a', op: 'deposit', a: [1], ro: ['inst', 2], rl: 1 }
    expect(checkMessage(call)).toMatchObject({ rl: 1 })
    const { ro: _ro, ...signal } = call
    for (const bad of [signal, { ...call, rl: 'inst' }, { ...call, rl: 2 }]) {
      expect(() => checkMessage(bad)).toThrow(
        /message field rl \(release the caller's lock\) is not 1 on an orchestration call/,
      )
    }
  })
})

/**
 * What a timed-out call's error says of its request (runtime/client/transport.ts `afterTimeout`):
 * stored or not known to be, and whether its partition had an owner when last asked.
 */
import { describe, expect, it } from 'vitest'
import { afterTimeout } from '../../runtime/client/transport.ts'

describe('a timed-out call says what became of its request', () => {
  it('not acknowledged: whether it was stored is unknown, and it may still take effect', () => {
    expect(afterTimeout({ p: 3 })).toBe(
      '; whether the request was stored is unknown (no acknowledgement arrived): it may still take effect',
    )
  })

  it('stored: it may still take effect', () => {
    expect(afterTimeout({ p: 3, stored: true })).toBe(
      '; the request is stored and may still take effect (a timeout does not cancel it)',
    )
  })

  it('stored, kept by its partition for a type the owner does not run', () => {
    expect(afterTimeout({ p: 3, stored: true, held: 'e:Account', unserved: false })).toBe(
      "; partition 3's owner does not run entity type 'Account' (another node of the hub registers it): " +
        'the request is stored and takes effect once a node that runs it serves the partition',
    )
  })

  it('stored, its partition without an owner when last asked: no node, or one restarting it', () => {
    expect(afterTimeout({ p: 3, stored: true, unserved: true })).toBe(
      '; partition 3 had no owner when last asked (no node running on this hub, or its owner restarting it ' +
        'after a failure): the request is stored and takes effect once it is served',
    )
  })
})

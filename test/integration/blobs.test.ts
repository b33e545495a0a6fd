/**
 * The blob store (runtime/blobs.ts) against a real server: large values go in chunks and come
 * back checked by size and digest; small values stay inline; values over the ceiling are refused
 * naming both sizes; deleted blobs are gone; references survive the codec as ~100 bytes.
 */
import { connect, type NatsConnection } from '@nats-io/transport-node'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { PayloadTooLargeError } from '../../actors/errors.ts'
import { BlobRef, valueOf } from '../../runtime/nats/blob-ref.ts'
import { BlobStore } from '../../runtime/nats/blobs.ts'
import { decode, encode } from '../../runtime/nats/codec.ts'
import { ensureHub, type Hub } from '../../runtime/nats/hub.ts'
import { useNatsServer } from '../tooling/harness.ts'

const nats = useNatsServer()
let nc: NatsConnection
let hub: Hub
let store: BlobStore

beforeAll(async () => {
  nc = await connect({ servers: nats.url })
  hub = await ensureHub(nc, 'blobs', { partitions: 1 })
  store = new BlobStore(nc, hub.jsm, hub.names, { threshold: 1024, ceiling: 8 * 1024 * 1024 })
})
afterAll(async () => {
  await nc?.close()
})

describe('blob store', () => {
  it('keeps a small value inline and holds nothing', () => {
    const held: Array<Promise<void>> = []
    const value = { a: 'x'.repeat(100) }
    expect(
      store.externalize(
        value,
        () => 'small',
        (w) => held.push(w),
      ),
    ).toBe(value)
    expect(held).toHaveLength(0)
  })

  it('stores a 5 MB value in chunks and reads it back through a decoded reference', async () => {
    const held: Array<Promise<void>> = []
    const value = { text: 'v'.repeat(5 * 1024 * 1024), n: 42 }
    const ref = store.externalize(
      value,
      () => 'big',
      (w) => held.push(w),
    ) as BlobRef
    expect(ref).toBeInstanceOf(BlobRef)
    expect(valueOf(ref)).toBe(value)
    expect(held, 'writes to wait for').toHaveLength(1)
    await Promise.all(held)
    expect(ref.chunks).toBeGreaterThan(1)
    const bytes = encode({ field: ref })
    expect(bytes.length, 'encoded reference size').toBeLessThan(150)
    const copy = (decode(bytes) as { field: BlobRef }).field
    expect(copy).toBeInstanceOf(BlobRef)
    expect(copy.loaded).toBe(false)
    expect(() => valueOf(copy)).toThrow(/before it was loaded/)
    expect(await store.load(copy)).toEqual(value)
    expect(valueOf(copy)).toEqual(value)
  })

  it('refuses a value over the ceiling, naming it and both sizes', () => {
    const err = (() => {
      try {
        store.externalize(
          'c'.repeat(9 * 1024 * 1024),
          () => 'input of instance x',
          () => {},
        )
      } catch (e) {
        return e
      }
    })()
    expect(err).toBeInstanceOf(PayloadTooLargeError)
    expect((err as Error).message).toMatch(
      /^input of instance x is \d+ bytes, over the limit of 8388608 bytes \(maxValueBytes\)$/,
    )
  })

  it('detects a reference whose digest does not match what is stored', async () => {
    const { ref, written } = store.put(encode('d'.repeat(4000)), () => 'v')
    await written
    const forged = new BlobRef(ref.id, ref.size, ref.chunks, '0'.repeat(64))
    await expect(store.load(forged)).rejects.toThrow(/digest mismatch/)
  })

  it('deletes a blob: reading it afterwards fails naming the missing chunk', async () => {
    const { ref, written } = store.put(encode('e'.repeat(600_000)), () => 'v')
    await written
    await store.delete([ref])
    const copy = decode(encode(ref)) as BlobRef
    await expect(store.load(copy)).rejects.toThrow(/missing chunk 0/)
  })
})

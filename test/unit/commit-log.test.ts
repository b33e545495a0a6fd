/** The commit log slice (runtime/partition/commit-log.ts) against an in-memory log, without a server. */
import { describe, expect, it } from 'vitest'
import { FencedError } from '../../actors/errors.ts'
import type { CommitRecord } from '../../actors/wire/messages.ts'
import { LeanPublishError } from '../../runtime/nats/errors.ts'
import type { LoggedRecord } from '../../runtime/nats/storage.ts'
import { CommitLog, type CommitLogStorage } from '../../runtime/partition/commit-log.ts'
import type { LogWriter } from '../../runtime/partition/log-fence.ts'
import { silentLogger } from '../../runtime/util/logger.ts'

function rec(n: number, e: number, o: number, claim = false): CommitRecord {
  const r: CommitRecord = { v: 1, n, e, o, pos: [1, 0], w: [], dc: [], dp: [], out: [], rep: [], lq: [] }
  if (claim) r.claim = 1
  return r
}

/** One partition's log: appends fenced on the last sequence, as JetStream checks it. */
class MemoryLog implements CommitLogStorage {
  readonly records: LoggedRecord[] = []
  /** Records that land right before the next append (a stale owner racing us). */
  readonly sneakIn: CommitRecord[] = []
  constructor(readonly replicated = false) {}
  #put(r: CommitRecord): number {
    const seq = this.records.length + 1
    this.records.push({ seq, rec: r, data: new Uint8Array() })
    return seq
  }
  add(r: CommitRecord): number {
    return this.#put(r)
  }
  async append(_bytes: Uint8Array, n: number, writer: LogWriter, lastSeq: number): Promise<number> {
    const sneaked = this.sneakIn.splice(0)
    for (const r of sneaked) this.#put(r)
    // on a replicated hub the leader checks before proposing: a racing append may land anyway
    if (!this.replicated || sneaked.length === 0) {
      if (this.records.length !== lastSeq)
        throw new LeanPublishError(`append ${n}: wrong last sequence ${this.records.length}`, 10071)
    }
    return this.#put(rec(n, writer.e, writer.o!))
  }
  async logAfter(afterSeq: number, upToSeq?: number): Promise<LoggedRecord[]> {
    return this.records.filter((r) => r.seq > afterSeq && (upToSeq === undefined || r.seq <= upToSeq))
  }
}

const me: LogWriter = { e: 2, o: 22 }

function logOf(storage: MemoryLog): CommitLog {
  const log = new CommitLog(storage, 0, me, silentLogger)
  // we claimed at seq 1
  log.admit(rec(1, 2, 22, true), storage.add(rec(1, 2, 22, true)))
  return log
}

describe('commit log', () => {
  it('appends right after our last record', async () => {
    const storage = new MemoryLog()
    const log = logOf(storage)
    const seq = await log.append(2, new Uint8Array())
    expect(seq).toBe(2)
    log.appended(seq)
    expect(await log.append(3, new Uint8Array())).toBe(3)
  })

  it("goes on after a stale owner's record that slipped in, and is fenced by a newer owner's", async () => {
    const storage = new MemoryLog()
    const log = logOf(storage)
    storage.add(rec(9, 1, 11)) // stale owner (epoch 1)
    expect(await log.append(2, new Uint8Array())).toBe(3)
    log.appended(3)
    storage.add(rec(2, 3, 33, true)) // a newer owner claimed
    await expect(log.append(3, new Uint8Array())).rejects.toBeInstanceOf(FencedError)
  })

  it("in a hub deleted and created again, takes the new owners' lower epochs for what they are: fenced", async () => {
    // the new hub's epochs start over: its owners' records look like a stale owner's to us
    const storage = new MemoryLog()
    let sameHub = true
    const log = new CommitLog(storage, 0, me, silentLogger, async () => sameHub)
    log.admit(rec(1, 2, 22, true), storage.add(rec(1, 2, 22, true)))
    storage.add(rec(1, 1, 44, true)) // (the new hub's log, as seen past our last sequence)
    sameHub = false
    const err = await log.append(2, new Uint8Array()).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(FencedError)
    expect((err as Error).message).toMatch(/the hub was deleted and created again/)
    expect(storage.records).toHaveLength(2) // nothing appended after the new owner's record
  })

  it('on a replicated hub, reads back what landed before our record', async () => {
    const storage = new MemoryLog(true)
    const log = logOf(storage)
    storage.sneakIn.push(rec(5, 1, 11)) // stale: does not count
    expect(await log.append(2, new Uint8Array())).toBe(3)
    log.appended(3)
    storage.sneakIn.push(rec(1, 3, 33, true)) // newer owner's claim: we are fenced
    await expect(log.append(3, new Uint8Array())).rejects.toBeInstanceOf(FencedError)
  })

  it('finds its own record when a repeat of an append whose answer was lost is refused', async () => {
    // on a NATS cluster the leader checks the expected sequence before the message id: the repeat
    // of an append that was stored is refused, and the record found after ours is our own
    const storage = new MemoryLog()
    const log = logOf(storage)
    storage.add(rec(2, 2, 22)) // our record 2, stored by the try whose answer was lost
    expect(await log.append(2, new Uint8Array())).toBe(2)
    log.appended(2)
    expect(await log.append(3, new Uint8Array())).toBe(3)
  })

  it('is still fenced by a newer owner whose claim landed before a stored repeat of ours', async () => {
    const storage = new MemoryLog()
    const log = logOf(storage)
    storage.add(rec(2, 3, 33, true)) // a newer owner claimed first
    storage.add(rec(2, 2, 22)) // then our record landed (a cluster leader let it past)
    await expect(log.append(2, new Uint8Array())).rejects.toBeInstanceOf(FencedError)
  })

  it('admits the owner’s records at recovery and passes over a stale owner’s, moving past both', () => {
    const log = new CommitLog(new MemoryLog(), 0, me, silentLogger)
    log.restore(10, { e: 2, o: 22 })
    expect(log.admit(rec(5, 2, 22), 11)).toBe(true)
    expect(log.admit(rec(6, 1, 11), 12)).toBe(false)
    expect(log.lastSeq).toBe(12)
  })
})

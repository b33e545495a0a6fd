/**
 * The state bucket of one partition in memory, for unit tests of snapshots (runtime/partition/
 * snapshot.ts): conditional writes by revision and an epoch on every item, as JetStream KV does.
 */
import { LeanPublishError } from '../../runtime/nats/errors.ts'
import { itemKey } from '../../runtime/nats/item-keys.ts'
import type { Checkpoint, StoredItem } from '../../runtime/nats/storage.ts'
import type { SnapshotStore } from '../../runtime/partition/snapshot.ts'

/** The state bucket of one partition, in memory. */
export class MemoryStore implements SnapshotStore {
  readonly nc = {}
  readonly items = new Map<string, { value: Uint8Array | null; rev: number; epoch: number }>()
  #seq = 0
  truncated: Array<[what: string, seq: number]> = []
  constructor(readonly p: number) {}

  async readItem(key: string): Promise<StoredItem> {
    const item = this.items.get(key)
    return item === undefined ? { value: null, rev: 0, epoch: 0 } : { ...item }
  }
  async writeItem(key: string, value: Uint8Array | null, rev: number, epoch: number): Promise<number> {
    const current = this.items.get(key)?.rev ?? 0
    if (current !== rev) throw new LeanPublishError(`write ${key}: wrong last sequence ${current}`, 10071)
    const seq = ++this.#seq
    this.items.set(key, { value, rev: seq, epoch })
    return seq
  }
  /** Every checkpoint written, oldest first, with its revision. */
  readonly checkpoints: Array<{ ckpt: Checkpoint; rev: number }> = []
  /**
   * The checkpoint revision a stream leader elected moments ago still shows (nats-server before
   * 2.11): the next checkpoint read returns it, and the next compare-and-set checks against it.
   */
  staleCheckpointRev: number | undefined

  async readCheckpoint(): Promise<{ ckpt: Checkpoint | null; rev: number }> {
    if (this.staleCheckpointRev !== undefined) {
      const rev = this.staleCheckpointRev
      return { ckpt: this.checkpoints.find((c) => c.rev === rev)?.ckpt ?? null, rev }
    }
    const item = await this.readItem(itemKey.checkpoint(this.p))
    return {
      ckpt: item.value === null ? null : (JSON.parse(Buffer.from(item.value).toString()) as Checkpoint),
      rev: item.rev,
    }
  }
  async readCheckpointAfter(rev: number): Promise<{ ckpt: Checkpoint | null; rev: number } | null> {
    return this.checkpoints.find((c) => c.rev > rev) ?? null
  }
  async writeCheckpoint(ckpt: Checkpoint, rev: number): Promise<number> {
    const key = itemKey.checkpoint(this.p)
    if (this.staleCheckpointRev !== undefined) {
      // the stale leader's check passes against what it shows; its write lands after the newer one
      if (rev !== this.staleCheckpointRev)
        throw new LeanPublishError(`write ${key}: wrong last sequence`, 10071)
      this.staleCheckpointRev = undefined
      rev = this.items.get(key)?.rev ?? 0
    }
    const written = await this.writeItem(key, Buffer.from(JSON.stringify(ckpt)), rev, ckpt.e)
    this.checkpoints.push({ ckpt: structuredClone(ckpt), rev: written })
    return written
  }
  async listStoredKeys(filter: string): Promise<string[]> {
    const prefix = filter.replace(/>$/, '')
    return [...this.items.keys()].filter((k) => k.startsWith(prefix))
  }
  async listKeys(filter: string): Promise<string[]> {
    return (await this.listStoredKeys(filter.replace(/\*$/, '>'))).filter(
      (k) => this.items.get(k)?.value !== null,
    )
  }
  async truncateLog(seq: number): Promise<void> {
    this.truncated.push(['log', seq])
  }
  async truncateMailbox(seq: number): Promise<void> {
    this.truncated.push(['mailbox', seq])
  }
}

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
  async readCheckpoint(): Promise<{ ckpt: Checkpoint | null; rev: number }> {
    const item = await this.readItem(itemKey.checkpoint(this.p))
    return {
      ckpt: item.value === null ? null : (JSON.parse(Buffer.from(item.value).toString()) as Checkpoint),
      rev: item.rev,
    }
  }
  async writeCheckpoint(ckpt: Checkpoint, rev: number): Promise<number> {
    return this.writeItem(itemKey.checkpoint(this.p), Buffer.from(JSON.stringify(ckpt)), rev, ckpt.e)
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

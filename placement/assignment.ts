/**
 * Partition assignment records: `partition → (node, epoch)`, with epochs that only grow. The
 * epoch fences the commit log: a partition's owner writes its epoch into every record, and an
 * owner that finds a newer epoch in the log or the checkpoint stops.
 *
 * Placement decides who owns what; the runtime obeys. This module needs only a compare-and-set
 * store, which the runtime provides on a JetStream KV bucket.
 */

/** One partition's assignment. */
export interface Assignment {
  node: string
  epoch: number
}

/** A key-value store with compare-and-set on revisions (a JetStream KV bucket, or a test twin). */
export interface AssignmentStore {
  get(p: number): Promise<{ value: Assignment | null; rev: number }>
  /** Writes if the revision is still `rev` (0: absent); false when someone else wrote first. */
  compareAndSet(p: number, value: Assignment, rev: number): Promise<boolean>
}

/**
 * Assigns partition `p` to `node` with an epoch above every earlier one, racing safely with
 * other claimants. Returns the new epoch.
 */
export async function claimPartition(store: AssignmentStore, p: number, node: string): Promise<number> {
  for (;;) {
    const { value, rev } = await store.get(p)
    const epoch = (value?.epoch ?? 0) + 1
    if (await store.compareAndSet(p, { node, epoch }, rev)) return epoch
  }
}

/** Single-node placement: this node takes every partition, each with a fresh epoch. */
export async function claimAll(store: AssignmentStore, partitions: number, node: string): Promise<number[]> {
  return Promise.all(Array.from({ length: partitions }, (_, p) => claimPartition(store, p, node)))
}

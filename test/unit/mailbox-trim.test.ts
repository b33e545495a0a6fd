/**
 * Trimming after a checkpoint, with a fake hub (no NATS): one server trims the partition's mailbox
 * below the checkpoint position and its log below the checkpoint record; a replicated hub does
 * not, because on nats-server 2.9.10 these subject-filtered purges, with a cluster member
 * restarting, left replicas whose copies differ from the leader's: a partition that later read
 * such a mailbox lost acknowledged messages (chaos seed 838595), and a log leader left empty
 * stopped every partition (seed 9105). See `truncateMailbox` in runtime/nats/storage.ts. There
 * each stream is cut whole from below instead, at {@link trimPoint} (runtime/nats/stream-trim.ts).
 */
import { describe, expect, it } from 'vitest'
import { idleConnection } from '../tooling/fake-connection.ts'
import { PartitionStorage } from '../../runtime/nats/storage.ts'
import { HubNames, type Hub } from '../../runtime/nats/hub.ts'
import { trimPoint } from '../../runtime/nats/stream-trim.ts'

function storageOf(replicas: number) {
  const purges: Array<{ stream: string; filter?: string; seq?: number }> = []
  const nc = idleConnection()
  const hub = {
    names: new HubNames('trim'),
    meta: { v: 1, partitions: 4, replicas, created: 0 },
    jsm: {
      streams: {
        purge: async (stream: string, opts: { filter?: string; seq?: number }) => {
          purges.push({ stream, ...opts })
          return { success: true, purged: 0 }
        },
      },
    },
  } as unknown as Hub
  return { storage: new PartitionStorage(nc, hub, 2), purges, names: hub.names }
}

describe('mailbox trimming', () => {
  it('trims the mailbox below the checkpoint position on one server, keeping the last processed message', async () => {
    const { storage, purges, names } = storageOf(1)
    await storage.truncateMailbox(120)
    expect(purges).toEqual([{ stream: names.mailboxStream, filter: names.mailbox(2), seq: 119 }])
  })

  it('trims the log below the checkpoint record on one server', async () => {
    const { storage, purges, names } = storageOf(1)
    await storage.truncateLog(40)
    expect(purges).toEqual([{ stream: names.logStream, filter: names.log(2), seq: 40 }])
  })

  it('leaves the mailbox and the log of a replicated hub to the whole-stream cut', async () => {
    const { storage, purges } = storageOf(3)
    await storage.truncateMailbox(120)
    await storage.truncateLog(40)
    expect(purges).toEqual([])
  })
})

describe('trimPoint (the whole-stream cut of a replicated hub)', () => {
  it('keeps from the lowest sequence a partition needs; partitions that need nothing stored do not hold it', () => {
    expect(trimPoint(900, [120, undefined, 450])).toBe(120)
    expect(trimPoint(900, [undefined, undefined])).toBe(900) // the last message stays
    expect(trimPoint(900, [])).toBe(900)
    expect(trimPoint(0, [undefined])).toBe(0) // an empty stream: nothing to cut
    expect(trimPoint(900, [1, 450])).toBe(1) // a partition without a checkpoint needs it all
  })
})

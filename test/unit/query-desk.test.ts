/**
 * The query desk of a partition (runtime/partition/queries.ts): a query taken but not answered
 * when the owner stops is told to ask again, so the client asks the next owner at once instead of
 * waiting out its timeout; an answer goes out once.
 */
import { describe, expect, it } from 'vitest'
import { WIRE_VERSION, type Query, type QueryAnswer } from '../../actors/wire/index.ts'
import { encode } from '../../runtime/nats/index.ts'
import { QueryDesk, type QueryPort } from '../../runtime/partition/queries.ts'
import { silentLogger } from '../../runtime/util/index.ts'

function desk(answer: QueryPort['answer']): QueryDesk {
  return new QueryDesk({
    p: 3,
    logger: silentLogger,
    stopped: () => false,
    position: () => 10,
    lastSeen: () => 9,
    lastStored: () => Promise.resolve(20),
    recentReplies: () => [],
    heldFor: () => [],
    watcherJoined: () => {},
    kick: () => {},
    answer,
  })
}

const read: Query = { v: WIRE_VERSION, k: 'read', t: 'Counter', key: 'a' }

describe('QueryDesk', () => {
  it('tells a query still unanswered at close to ask again, and sends nothing after', async () => {
    let later: ((answer: QueryAnswer) => void) | undefined
    const d = desk((_query, respond) => {
      later = respond // waits for a commit that never comes
    })
    const sent: QueryAnswer[] = []
    d.receive(encode(read), (a) => sent.push(a))
    await d.answerReady()
    expect(later).toBeDefined()
    d.close()
    expect(sent).toHaveLength(1)
    expect(sent[0]).toMatchObject({ ok: 0, again: 1, error: { name: 'PartitionUnavailableError' } })
    expect((sent[0] as { error: { message: string } }).error.message).toMatch(
      /partition 3.*stopped before answering/,
    )
    later!({ v: WIRE_VERSION, ok: 1, exists: false, state: null, n: 1 })
    expect(sent).toHaveLength(1)
  })

  it('tells queued queries to ask again too, and leaves answered ones alone', async () => {
    const d = desk((_query, respond) => respond({ v: WIRE_VERSION, ok: 1, exists: false, state: null, n: 1 }))
    const answered: QueryAnswer[] = []
    const queued: QueryAnswer[] = []
    d.receive(encode(read), (a) => answered.push(a))
    await d.answerReady()
    d.receive(encode({ ...read, s: 12 }), (a) => queued.push(a)) // waits for mailbox position 12
    await new Promise((resolve) => setImmediate(resolve))
    d.close()
    expect(answered).toEqual([{ v: WIRE_VERSION, ok: 1, exists: false, state: null, n: 1 }])
    expect(queued).toMatchObject([{ ok: 0, again: 1 }])
  })
})

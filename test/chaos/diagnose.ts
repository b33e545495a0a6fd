/**
 * What a failed chaos run prints about the hub beside the nodes' output: the placement table
 * (leader, nodes with their partitions and heartbeat age, every assignment with its epoch) and the
 * health of the hub's streams (leader, replicas current or lagging or offline). It tells an engine
 * that stopped serving apart from a server or cluster that was not healthy. Read-only; every read
 * has a deadline, and a read that fails is reported, not thrown.
 */
import { readPlacement } from '../../placement/index.ts'
import type { Client } from '../../runtime/index.ts'

/** Rejects after `ms` unless `promise` settles first. */
function within<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer in ${ms} ms`)), ms)
  })
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer))
}

/** The placement table, one line per node and a line of assignments. */
async function placement(client: Client): Promise<string[]> {
  const table = await within(readPlacement(client.hub.metaKv, client.hub.jsm), 5_000)
  const now = Date.now()
  return [
    `placement: leader ${table.leader ?? 'none'}`,
    ...table.nodes.map(
      (n) => `  node ${n.id}: partitions [${n.partitions.join(',')}], last heartbeat ${now - n.at} ms ago`,
    ),
    `  assignments: ${table.assignments.map((a) => `p${a.p}=${a.node ?? '-'}@${a.epoch}`).join(' ')}`,
  ]
}

/** One line per stream of the hub: messages, leader, replicas. */
async function streams(client: Client): Promise<string[]> {
  const names = client.hub.names
  const wanted = [names.mailboxStream, names.logStream, `KV_${names.stateBucket}`, `KV_${names.metaBucket}`]
  return Promise.all(
    wanted.map(async (name) => {
      try {
        const info = await within(client.hub.jsm.streams.info(name), 5_000)
        const cluster = info.cluster
        const replicas = (cluster?.replicas ?? [])
          .map(
            (r) =>
              `${r.name}${r.current ? '' : ' NOT current'}${r.offline ? ' OFFLINE' : ''} lag ${r.lag ?? 0}`,
          )
          .join('; ')
        const where = cluster === undefined ? '' : ` leader ${cluster.leader ?? 'NONE'}; replicas ${replicas}`
        return `stream ${name}: ${info.state.messages} msgs, last seq ${info.state.last_seq};${where}`
      } catch (err) {
        return `stream ${name}: info failed: ${(err as Error).message}`
      }
    }),
  )
}

/** What the mailbox and log streams hold against all they stored: `mbx 120/5000 log 30/900`; never throws. */
export async function streamsKept(client: Client): Promise<string> {
  const names = client.hub.names
  const kept = async (label: string, stream: string): Promise<string> => {
    try {
      const { state } = await within(client.hub.jsm.streams.info(stream), 5_000)
      return `${label} ${state.messages}/${state.last_seq}`
    } catch {
      return `${label} ?`
    }
  }
  return (await Promise.all([kept('mbx', names.mailboxStream), kept('log', names.logStream)])).join(' ')
}

/** The diagnostics block of a failed run; never throws. */
export async function diagnose(client: Client): Promise<string> {
  const lines: string[] = []
  try {
    lines.push(...(await placement(client)))
  } catch (err) {
    lines.push(`placement: read failed: ${(err as Error).message}`)
  }
  lines.push(...(await streams(client)))
  return lines.join('\n')
}

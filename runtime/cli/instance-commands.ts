/**
 * The instance commands of `basalt`: start, status, history, list, wait, raise, terminate,
 * suspend, resume and purge, each one client call (or a paged loop of them) over the flags'
 * connection. People get tables and `key: value` blocks, scripts `--json`. Each resolves with the
 * process exit code.
 */
import type { HistoryEvent } from '../../actors/orchestration/index.ts'
import { purgeEach, type Client, type InstanceStatus } from '../client/index.ts'
import type { InstanceFilter } from '../client/index.ts'
import { RuntimeStatus, isTerminal } from '../instances/index.ts'
import { BadInputError, checkInstanceId, checkName, counted } from '../../actors/index.ts'
import { checkArgument, UsageError } from './args.ts'
import { withClient, type ConnectionFlags } from './connection.ts'
import {
  compact,
  keyValues,
  printable,
  printJson,
  progress,
  stderr,
  stdout,
  table,
  when,
  type Out,
} from './output.ts'

/** Flags every instance command has. */
export interface OutputFlags extends ConnectionFlags {
  json?: boolean
}

/** `basalt start NAME [--input JSON] [--id ID]`: prints the new instance's id. */
export async function startCommand(
  name: string,
  flags: OutputFlags & { input?: unknown; id?: string },
  out: Out = stdout,
): Promise<number> {
  checkArgument(() => checkName(name, 'orchestration'))
  if (flags.id !== undefined) checkArgument(() => checkInstanceId(flags.id), '--id')
  return withClient(flags, async (client) => {
    const options = flags.id === undefined ? {} : { instanceId: flags.id }
    const id = await client.startByName(name, flags.input, options)
    if (flags.json) printJson({ id, name }, out)
    else out(printable(`started ${name} as ${id}`))
    return 0
  })
}

/** `basalt status ID`: the instance's status, input, output and error; exit 1 when it does not exist. */
export async function statusCommand(id: string, flags: OutputFlags, out: Out = stdout): Promise<number> {
  checkArgument(() => checkInstanceId(id))
  return withClient(flags, async (client) => {
    const status = await client.getStatus(id)
    if (status === undefined) throw new Error(`instance '${id}' does not exist (see basalt list)`)
    if (flags.json) printJson(status, out)
    else for (const line of describeStatus(status)) out(line)
    return 0
  })
}

/** The `key: value` lines of an instance status. */
export function describeStatus(s: InstanceStatus): string[] {
  // when it ended, labelled by how it ended (completedAt is set for Failed and Terminated too)
  const how = isTerminal(s.status) ? s.status.toLowerCase() : 'completed'
  const ended = s.completedAt === undefined ? {} : { [how]: when(s.completedAt) }
  return keyValues({
    id: s.id,
    name: s.name,
    status: s.status,
    created: when(s.createdAt),
    updated: when(s.lastUpdatedAt),
    ...ended,
    // (user values as JSON, a string quoted: "42" and 42 read apart)
    input: 'input' in s ? compact(s.input) : undefined,
    output: 'output' in s ? compact(s.output) : undefined,
    error: s.error === undefined ? undefined : `${s.error.name}: ${s.error.message}`,
    'custom status': s.customStatus === undefined ? undefined : compact(s.customStatus),
  })
}

/** `basalt history ID`: one row per history event, with the time of the step it belongs to. */
export async function historyCommand(id: string, flags: OutputFlags, out: Out = stdout): Promise<number> {
  checkArgument(() => checkInstanceId(id))
  return withClient(flags, async (client) => {
    const history = await client.getHistory(id)
    if (flags.json) {
      printJson(history, out)
      return 0
    }
    let t: number | undefined
    const rows: string[][] = []
    history.forEach((event, i) => {
      if (event.e === 'step') t = event.t
      rows.push([String(i), when(t), event.e, describeEvent(event)])
    })
    for (const line of table(
      [{ header: '#', right: true }, { header: 'time' }, { header: 'event' }, { header: 'detail' }],
      rows,
    ))
      out(line)
    return 0
  })
}

/** `label value` with the value as JSON, or the label alone when there is no value. */
function withValue(label: string, value: unknown): string {
  return value === undefined ? label : `${label} ${compact(value)}`
}

/** One line of detail about a history event. */
export function describeEvent(event: HistoryEvent): string {
  switch (event.e) {
    case 'started':
      return event.input === undefined ? '' : `input ${compact(event.input)}`
    case 'step':
      return ''
    case 'scheduled': {
      const what =
        event.kind === 'activity' || event.kind === 'sub' || event.kind === 'start'
          ? `${event.kind} ${event.name}`
          : event.kind === 'timer'
            ? `timer at ${when(event.fireAt)}`
            : event.kind === 'cancelTimer'
              ? `cancel timer #${event.timer}`
              : event.kind === 'call' || event.kind === 'signal'
                ? `${event.kind} ${compact(event.entity)}.${event.op}`
                : `${event.kind} ${compact(event.entities)}`
      return `#${event.seq} ${what}`
    }
    case 'completed':
      // (a fired timer, and a call or activity that returned nothing, complete without a result)
      return withValue(`#${event.seq}`, event.result)
    case 'failed':
      return `#${event.seq} ${event.error.name}: ${event.error.message}`
    case 'timerFired':
      return `#${event.seq}`
    case 'event':
      return withValue(event.name, event.data)
    case 'patch':
      return event.id
    case 'customStatus':
      return compact(event.value)
    case 'finished':
      return event.status === 'completed'
        ? withValue('completed', event.output)
        : event.status === 'failed'
          ? `failed ${event.error.name}: ${event.error.message}`
          : withValue('continued as new', event.input)
    default:
      return compact(event)
  }
}

/**
 * What a listing (`basalt list`, `basalt entity list`) does with an error of its client call: a
 * `--continue` token the client refused becomes a usage error naming the command that prints
 * such tokens; anything else is thrown as it is.
 */
export function refusedToken(command: string, token: string | undefined): (err: unknown) => never {
  return (err) => {
    if (err instanceof BadInputError && /continuation/.test(err.message))
      throw new UsageError(
        `--continue ${JSON.stringify(token)}: expected a token printed by an earlier ${command}`,
      )
    throw err
  }
}

/** The stderr line of a listing cut at `--limit`, with the token that lists the next ones. */
export function moreMatch(command: string, shown: number, token: string): string {
  return `${command}: ${shown} shown and more match: give a higher --limit, or --continue ${token} for the next ones`
}

/** Flags of `basalt list` (and of the bulk `basalt purge`). */
export interface ListFlags extends OutputFlags {
  status?: string
  name?: string
  prefix?: string
  since?: number
  before?: number
  limit?: number
  continue?: string
}

/** The instance filter of `--status`, `--name`, `--prefix`, `--since` and `--before`. */
export function filterFromFlags(flags: ListFlags): InstanceFilter {
  const filter: InstanceFilter = {}
  if (flags.status !== undefined) {
    filter.statuses = flags.status
      .split(',')
      .map((s) => s.trim())
      .filter((s) => s !== '')
      .map(statusName)
  }
  if (flags.name !== undefined) filter.namePrefix = flags.name
  if (flags.prefix !== undefined) filter.idPrefix = flags.prefix
  if (flags.since !== undefined) filter.createdFrom = flags.since
  if (flags.before !== undefined) filter.createdTo = flags.before
  return filter
}

const STATUSES: RuntimeStatus[] = Object.values(RuntimeStatus)

/** A status name in any letter case, spelled as the runtime does; {@link UsageError} otherwise. */
function statusName(text: string): RuntimeStatus {
  const found = STATUSES.find((s) => s.toLowerCase() === text.toLowerCase())
  if (found === undefined) throw new UsageError(`--status ${text}: expected one of ${STATUSES.join(', ')}`)
  return found
}

/**
 * `basalt list`: instances matching the filters, sorted by id, up to `--limit` (default 100),
 * read page by page across all partitions (progress on a terminal), after `--continue TOKEN` when
 * given. When more match, a hint on stderr gives the token that lists the next ones; `--json`
 * prints `{ instances, continuation }` (the token only when more match).
 */
export async function listCommand(flags: ListFlags, out: Out = stdout, err: Out = stderr): Promise<number> {
  const filter = filterFromFlags(flags)
  const limit = flags.limit ?? 100
  return withClient(flags, async (client) => {
    const found: InstanceStatus[] = []
    let continuation = flags.continue?.trim()
    const shown = progress(`listing ${counted(client.partitionCount, 'partition')}`)
    try {
      do {
        const pageSize = Math.min(500, limit - found.length)
        const page = await client
          .listInstances({ ...filter, pageSize, ...(continuation ? { continuation } : {}) })
          .catch(refusedToken('basalt list', continuation))
        found.push(...page.instances)
        continuation = page.continuation
        shown.update(found.length)
      } while (continuation !== undefined && found.length < limit)
    } finally {
      shown.done()
    }
    if (flags.json)
      printJson(continuation === undefined ? { instances: found } : { instances: found, continuation }, out)
    else {
      const rows = found.map((s) => [s.id, s.name, s.status, when(s.createdAt), when(s.lastUpdatedAt)])
      const columns = ['id', 'name', 'status', 'created', 'updated'].map((header) => ({ header }))
      for (const line of table(columns, rows)) out(line)
      if (continuation !== undefined) {
        err(moreMatch('basalt list', found.length, continuation))
      }
    }
    return 0
  })
}

/**
 * `basalt wait ID [--timeout MS]`: waits until the instance ends and prints its status; exit 0
 * when it completed, 1 when it failed or was terminated (or the wait timed out).
 */
export async function waitCommand(
  id: string,
  flags: OutputFlags & { timeout?: number },
  out: Out = stdout,
): Promise<number> {
  checkArgument(() => checkInstanceId(id))
  return withClient(flags, async (client) => {
    const status = await client.waitForCompletion(id, { timeoutMs: flags.timeout ?? 60_000 })
    if (flags.json) printJson(status, out)
    else for (const line of describeStatus(status)) out(line)
    return status.status === 'Completed' ? 0 : 1
  })
}

/** The one-call commands: raise, terminate, suspend, resume and purge of one instance. */
export async function controlCommand(
  action: 'raise' | 'terminate' | 'suspend' | 'resume' | 'purge',
  id: string,
  flags: OutputFlags & { event?: string; data?: unknown; reason?: string },
  out: Out = stdout,
): Promise<number> {
  checkArgument(() => checkInstanceId(id))
  if (action === 'raise') checkArgument(() => checkName(flags.event, 'event'))
  return withClient(flags, async (client) => {
    await control(client, action, id, flags)
    const done = {
      raise: 'raised',
      terminate: 'terminated',
      suspend: 'suspended',
      resume: 'resumed',
      purge: 'purged',
    }[action]
    if (flags.json) printJson({ id, [done]: action === 'raise' ? flags.event : true }, out)
    else out(printable(action === 'raise' ? `raised ${flags.event ?? ''} on ${id}` : `${done} ${id}`))
    return 0
  })
}

async function control(
  client: Client,
  action: 'raise' | 'terminate' | 'suspend' | 'resume' | 'purge',
  id: string,
  flags: { event?: string; data?: unknown; reason?: string },
): Promise<void> {
  switch (action) {
    case 'raise':
      return client.raiseEvent(id, flags.event ?? '', flags.data)
    case 'terminate':
      return client.terminate(id, flags.reason)
    case 'suspend':
      return client.suspend(id)
    case 'resume':
      return client.resume(id)
    case 'purge':
      return client.purge(id)
  }
}

/**
 * `basalt purge --status S --before T`: purges every finished instance matching the filters
 * (`--status` among Completed, Failed, Terminated; `--before` on the creation time), page by page
 * with progress on a terminal; prints how many.
 */
export async function bulkPurgeCommand(flags: ListFlags, out: Out = stdout): Promise<number> {
  if (flags.status === undefined || flags.before === undefined) {
    throw new UsageError('give an instance id, or both --status and --before to purge in bulk')
  }
  const filter = filterFromFlags(flags)
  const running = filter.statuses?.filter((s) => !['Completed', 'Failed', 'Terminated'].includes(s)) ?? []
  if (running.length > 0) {
    throw new UsageError(
      `--status ${running.join(',')}: only Completed, Failed or Terminated instances can be purged`,
    )
  }
  return withClient(flags, async (client) => {
    let purged = 0
    const shown = progress('purging')
    try {
      // page by page, each instance once; one that is gone already (purged meanwhile by someone
      // else, or listed a moment after its purge) is passed over, not counted
      let continuation: string | undefined
      do {
        const page = await client.listInstances({ ...filter, pageSize: 200, continuation })
        purged += await purgeEach(
          (id) => client.purge(id),
          page.instances.map((i) => i.id),
        )
        shown.update(purged)
        continuation = page.continuation
      } while (continuation !== undefined)
    } finally {
      shown.done()
    }
    if (flags.json) printJson({ purged }, out)
    else out(`purged ${counted(purged, 'instance')}`)
    return 0
  })
}

/**
 * `basalt entity get|list|signal|call|unlock`: entities by type name, since the command line has
 * no classes. Reads and lock releases use the client's by-name forms; signals and calls send the
 * operation as given and the node checks it (an unknown operation or bad arguments come back as
 * the call's error; a signal's fails on the node, where it is logged). A signal, which has no
 * caller to tell, is first checked against what the nodes recorded in the hub: its type (placement's
 * `types`) and its operation (`operations`, placement/registry.ts), so that a typo is refused
 * rather than dead-lettered.
 */
import {
  RemoteError,
  UnknownEntityError,
  checkKey,
  checkName,
  checkTypeName,
  counted,
} from '../../actors/index.ts'
import { readHubOperations, readHubTypes } from '../../placement/index.ts'
import type { EntityOp } from '../../actors/wire/index.ts'
import { checkArgument, UsageError } from './args.ts'
import { withClient } from './connection.ts'
import { compact, printable, printJson, progress, stderr, stdout, type Out } from './output.ts'
import { moreMatch, refusedToken, type OutputFlags } from './instance-commands.ts'

/**
 * Checks an entity's type name and key as the client would, before connecting: a bad one is a
 * wrong command line (exit 2), not a failed command.
 */
function checkEntity(type: string, key: string): void {
  checkArgument(() => checkTypeName(type))
  checkArgument(() => checkKey(key))
}

/** `basalt entity get TYPE KEY`: the committed state as JSON; exit 1 when the entity does not exist. */
export async function entityGetCommand(type: string, key: string, flags: OutputFlags, out: Out = stdout) {
  checkEntity(type, key)
  return withClient(flags, async (client) => {
    const { exists, state } = await client.readEntityState(type, key)
    if (flags.json) {
      printJson({ type, key, exists, state }, out)
      return exists ? 0 : 1
    }
    if (!exists) throw new Error(`entity ${type}@${key} does not exist (see basalt entity list ${type})`)
    // (JSON writes C0 controls escaped, and DEL and C1 raw: printable escapes those)
    printJson(state, (text) => out(text.split('\n').map(printable).join('\n')))
    return 0
  })
}

/** `basalt entity list TYPE [--prefix P] [--limit N]`: the keys, sorted, one a line. */
export async function entityListCommand(
  type: string,
  flags: OutputFlags & { prefix?: string; limit?: number; continue?: string },
  out: Out = stdout,
  err: Out = stderr,
): Promise<number> {
  checkArgument(() => checkTypeName(type))
  const limit = flags.limit ?? 1000
  return withClient(flags, async (client) => {
    const keys: string[] = []
    const shown = progress(`listing ${counted(client.partitionCount, 'partition')}`)
    let continuation = flags.continue?.trim()
    try {
      do {
        const page = await client
          .listEntities({
            type,
            pageSize: Math.min(1000, limit - keys.length),
            ...(flags.prefix === undefined ? {} : { keyPrefix: flags.prefix }),
            ...(continuation === undefined ? {} : { continuation }),
          })
          .catch(refusedToken('basalt entity list', continuation))
        keys.push(...page.keys)
        continuation = page.continuation
        shown.update(keys.length)
      } while (continuation !== undefined && keys.length < limit)
    } finally {
      shown.done()
    }
    if (flags.json) printJson(keys, out)
    else if (keys.length === 0) out('(none)')
    else for (const key of keys) out(printable(key))
    // (on stderr: the keys on stdout stay a plain list)
    if (continuation !== undefined) err(moreMatch('basalt entity list', keys.length, continuation))
    return 0
  })
}

/**
 * `basalt entity signal|call TYPE KEY OP [--args JSON]`: one operation; `--args` is a JSON array
 * of arguments, or one value taken as the only argument. A call prints the result.
 */
export async function entityOpCommand(
  mode: 'signal' | 'call',
  type: string,
  key: string,
  op: string,
  flags: OutputFlags & { args?: unknown },
  out: Out = stdout,
): Promise<number> {
  checkEntity(type, key)
  checkArgument(() => checkName(op, 'operation'))
  const a = flags.args === undefined ? [] : Array.isArray(flags.args) ? flags.args : [flags.args]
  return withClient(flags, async (client) => {
    const msg: EntityOp = { k: 'op', t: type, key, op, a }
    if (mode === 'signal') {
      // a signal has no caller to tell: a type no node registers would go to the dead letters
      const names = await readHubTypes(client.hub.metaKv)
      const known = names?.filter((n) => n.startsWith('e:') && !n.includes('#')).map((n) => n.slice(2))
      if (known !== undefined && !known.includes(type)) {
        const list = known.length === 0 ? 'none yet' : known.join(', ')
        throw new UnknownEntityError(
          type,
          `the registry of any node of hub '${client.hub.names.hub}'; known: ${list}`,
        )
      }
      // nor an operation none of them has (the hub lists the operations nodes of this version had)
      const operations = (await readHubOperations(client.hub.metaKv))?.[type]
      if (operations !== undefined && !operations.includes(op)) {
        throw new Error(
          `entity type '${type}' has no operation '${op}' (no node of hub '${client.hub.names.hub}' ` +
            `registers it; known: ${operations.join(', ') || 'none'})`,
        )
      }
      await client.signalOp(msg)
      if (flags.json) printJson({ type, key, op, signalled: true }, out)
      else out(printable(`signalled ${type}@${key}.${op}`))
    } else {
      const result = await client.callOp(msg).catch((err: unknown) => {
        throw err instanceof RemoteError ? new Error(`${type}@${key}.${op} threw ${thrown(err)}`) : err
      })
      if (flags.json) printJson({ type, key, op, result }, out)
      else out(result === undefined ? '(no result)' : printable(compact(result, Infinity)))
    }
    return 0
  })
}

/** What an operation threw, in one line: its name, code, message and own fields. */
function thrown(err: RemoteError): string {
  const code = err.remoteCode === undefined ? '' : ` [${err.remoteCode}]`
  const details = Object.keys(err.details).length === 0 ? '' : ` ${JSON.stringify(err.details)}`
  return `${err.remoteName}${code}: ${err.message}${details}`
}

/**
 * `basalt entity unlock TYPE KEY --yes`: releases the entity's lock whoever holds it, and prints
 * the former holder. Without `--yes` it only shows the holder and exits with 2 (an entity that is
 * not locked: says so and exits with 0).
 */
export async function entityUnlockCommand(
  type: string,
  key: string,
  flags: OutputFlags & { yes?: boolean },
  out: Out = stdout,
): Promise<number> {
  checkEntity(type, key)
  return withClient(flags, async (client) => {
    if (flags.yes !== true) {
      const holder = await client.getLock(type, key)
      if (holder === null) {
        if (flags.json) printJson({ type, key, released: null }, out)
        else out(printable(`${type}@${key} is not locked: nothing to release`))
        return 0
      }
      throw new UsageError(
        `${type}@${key} is locked by instance ${holder}; add --yes to release the lock whoever holds it`,
      )
    }
    const holder = await client.forceUnlock(type, key)
    if (flags.json) printJson({ type, key, released: holder }, out)
    else
      out(
        printable(
          holder === null
            ? `${type}@${key} was not locked`
            : `released ${type}@${key} from instance ${holder}`,
        ),
      )
    return 0
  })
}

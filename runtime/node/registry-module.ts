/**
 * A node's registry: loading it from a module (`basalt node --load M`, `Node.start({ registryModule })`)
 * and sorting it into entity classes, orchestrations and activities. The module exports what a node
 * runs. Classes and functions cannot cross threads, so a node that runs its partitions on worker
 * threads has every thread import the registry itself and sort it, through these same functions.
 */
import { existsSync } from 'node:fs'
import { createRequire } from 'node:module'
import path from 'node:path'
import { BadInputError } from '../../actors/index.ts'
import { esmScopeHint, importModule, syntaxErrorLocation } from './load-module.ts'
import {
  isActivityDefinition,
  isOrchestrationDefinition,
  type ActivityDefinition,
  type OrchestrationDefinition,
} from '../../actors/orchestration/index.ts'
import { entityTypeName, operationNames, type EntityClass } from '../../entities/index.ts'
import { operationName } from '../util/index.ts'
import { WIRE_FEATURES } from '../../placement/index.ts'

/** What a node's registry may hold. */
export type RegistryItem = EntityClass | OrchestrationDefinition<any, any> | ActivityDefinition<any, any>

/**
 * Imports module `specifier` and returns its registry: `export const registry = [...]`, else
 * `export default [...]`. A specifier that looks like a path (starts with `.` or `/`, names an
 * existing file, or ends in a script extension) is resolved against the working directory;
 * anything else is a package specifier, resolved from Basalt's install and then from the working
 * directory. Throws `BadInputError` naming the module (and the path it resolved to) when it cannot
 * be loaded, or when it exports no array under either name.
 *
 * @example const registry = await loadRegistry('./dist/registry.js')
 */
export async function loadRegistry(specifier: string, cwd = process.cwd()): Promise<RegistryItem[]> {
  const module = isPathLike(specifier, cwd)
    ? await importFile(path.resolve(cwd, specifier), specifier)
    : await importPackage(specifier, cwd)
  const fallback = module['default'] as { registry?: unknown } | undefined
  // A CommonJS module's `module.exports` arrives as the default export.
  const registry = module['registry'] ?? (Array.isArray(fallback) ? fallback : fallback?.registry)
  if (!Array.isArray(registry)) {
    const names = Object.keys(module).map((n) => `'${n}'`)
    const listed = names.length > 8 ? [...names.slice(0, 8), `and ${names.length - 8} more`] : names
    throw new BadInputError(
      `module '${specifier}' exports no registry: expected 'export const registry = [...]' or ` +
        `'export default [...]' (an array of entity classes, orchestrations and activities); ` +
        `it exports ${names.length === 0 ? 'nothing' : listed.join(', ')}`,
    )
  }
  return registry as RegistryItem[]
}

function isPathLike(specifier: string, cwd: string): boolean {
  return (
    specifier.startsWith('.') ||
    path.isAbsolute(specifier) ||
    /\.(?:[cm]?[jt]s|tsx|jsx)$/.test(specifier) ||
    existsSync(path.resolve(cwd, specifier))
  )
}

async function importFile(file: string, specifier: string): Promise<Record<string, unknown>> {
  if (!existsSync(file)) {
    throw new BadInputError(`cannot load module '${specifier}': no such file ${file}`)
  }
  try {
    return await importModule(file)
  } catch (err) {
    if (err instanceof BadInputError) throw err
    throw new BadInputError(`cannot load module '${specifier}' (${file}): ${loadFailure(err, file)}`, {
      cause: err,
    })
  }
}

/**
 * What went wrong importing `file`, for the message after `cannot load module …: `: what to do
 * about an ES module in a CommonJS scope, a syntax error with its place (`SyntaxError at
 * path:line:column: …`), else the error's message.
 */
function loadFailure(err: unknown, file: string): string {
  const hint = esmScopeHint(err, file)
  if (hint !== undefined) return hint
  const message = (err as Error).message
  const location = syntaxErrorLocation(err, file)
  return location === undefined ? message : `SyntaxError at ${location}: ${message}`
}

async function importPackage(specifier: string, cwd: string): Promise<Record<string, unknown>> {
  try {
    return (await import(specifier)) as Record<string, unknown>
  } catch (err) {
    if ((err as { code?: unknown }).code !== 'ERR_MODULE_NOT_FOUND') {
      throw new BadInputError(`cannot load module '${specifier}': ${(err as Error).message}`, { cause: err })
    }
  }
  let file: string
  try {
    file = createRequire(path.join(cwd, 'package.json')).resolve(specifier)
  } catch {
    throw new BadInputError(
      `cannot load module '${specifier}': no such package (looked from ${cwd}); ` +
        `give a path such as './${specifier}' to load a file`,
    )
  }
  return importFile(file, specifier)
}

/** A registry sorted by kind (see {@link splitRegistry}). */
export interface SplitRegistry {
  entities: Array<EntityClass>
  orchestrations: Array<OrchestrationDefinition<any, any>>
  activities: Array<ActivityDefinition<any, any>>
}

/**
 * Sorts a registry into entity classes, orchestrations and activities. Throws `BadInputError` for
 * an item that is none of these, or an orchestration or activity name registered twice.
 */
export function splitRegistry(items: RegistryItem[]): SplitRegistry {
  const entities: Array<EntityClass> = []
  const orchestrations: Array<OrchestrationDefinition<any, any>> = []
  const activities: Array<ActivityDefinition<any, any>> = []
  const names = new Set<string>()
  for (const item of items) {
    if (typeof item === 'function') entities.push(item)
    else if (isOrchestrationDefinition(item)) orchestrations.push(item)
    else if (isActivityDefinition(item)) activities.push(item)
    else
      throw new BadInputError(
        `registry item ${String(item)} is not an entity class, orchestration or activity`,
      )
    if (typeof item !== 'function') {
      const key = `${isOrchestrationDefinition(item) ? 'o' : 'a'}:${item.name}`
      if (names.has(key)) throw new BadInputError(`'${item.name}' is registered twice`)
      names.add(key)
    }
  }
  return { entities, orchestrations, activities }
}

/**
 * What a node runs, as it publishes it in its heartbeats (placement/registry.ts): `e:<type>`,
 * `o:<name>` and `a:<name>`, and the wire features of this version (`f:<feature>`; default all of
 * them, {@link WIRE_FEATURES}), sorted.
 */
export function registryNames(
  { entities, orchestrations, activities }: SplitRegistry,
  features: readonly string[] = WIRE_FEATURES,
): string[] {
  return [
    // an entity type, and each of its operations: a node that lacks an operation another node runs
    // gives its partitions up to that node (placement), and keeps calls of it for that node
    ...entities.flatMap((e) => {
      const name = entityTypeName(e)
      return [`e:${name}`, ...[...operationNames(e)].map((op) => operationName(name, op))]
    }),
    ...orchestrations.map((o) => `o:${o.name}`),
    ...activities.map((a) => `a:${a.name}`),
    ...features,
  ].sort()
}

/**
 * Loading a node's registry from a module (`basalt node --load M`, `Node.start({ registryModule })`):
 * the module exports the entity classes, orchestrations and activities a node runs. Classes and
 * functions cannot cross threads, so a node that runs its partitions on worker threads has every
 * thread import the registry itself, through this same function.
 */
import { existsSync } from 'node:fs'
import { createRequire } from 'node:module'
import path from 'node:path'
import { BadInputError } from '../../actors/index.ts'
import { importModule } from './load-module.ts'
import type { ActivityDefinition, OrchestrationDefinition } from '../../actors/orchestration/index.ts'
import type { EntityClass } from '../../entities/index.ts'

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
    throw new BadInputError(`cannot load module '${specifier}' (${file}): ${(err as Error).message}`, {
      cause: err,
    })
  }
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

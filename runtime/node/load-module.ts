/**
 * Imports a user's module by file path for a node's registry (`basalt node --load`, `registryModule`): JavaScript as it is,
 * TypeScript through the user's own `tsx` when their project has it (an optional peer dependency
 * of Basalt, resolved from the module's folder, never from Basalt's install), else through Node's
 * own type stripping where the running Node has it, else a clear error saying what to install.
 * The installed package runs compiled JavaScript, so nothing else registers a TypeScript loader;
 * run from Basalt's sources, a loader is already in place and TypeScript imports as it is.
 */
import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import path from 'node:path'
import process from 'node:process'
import { pathToFileURL } from 'node:url'
import { BadInputError } from '../../actors/index.ts'

/** Extensions of the files that need a TypeScript loader. */
const TYPESCRIPT_FILE = /\.(?:[cm]?ts|tsx)$/

/** Whether tsx has been registered by {@link importModule} in this process already. */
let tsxRegistered = false

/**
 * Imports the module at absolute path `file` and resolves with its namespace. `.js`, `.mjs` and
 * `.cjs` import directly. `.ts`, `.mts`, `.cts` and `.tsx` import directly when a TypeScript
 * loader already runs (Basalt run from its sources); otherwise through tsx ≥ 4 found from the
 * file's folder upwards or from the working directory (registered once, for the rest of the
 * process), else through Node's type stripping (`process.features.typescript`: Node 23.6+, or
 * 22.6+ with `--experimental-strip-types`). Rejects with `BadInputError` naming the file when no loader is
 * available (saying to install tsx) and passes on what the import itself throws.
 *
 * @example const registry = (await importModule('/app/src/registry.ts'))['registry']
 */
export async function importModule(file: string): Promise<Record<string, unknown>> {
  if (TYPESCRIPT_FILE.test(file) && !typeScriptLoads()) {
    const tsx = resolveTsx(path.dirname(file)) ?? resolveTsx(process.cwd())
    if (tsx !== undefined) {
      const { register } = (await import(pathToFileURL(tsx).href)) as { register(): unknown }
      register()
      tsxRegistered = true
    } else if (!nodeStripsTypes()) {
      throw new BadInputError(
        `cannot load TypeScript module ${file}: Node ${process.version} does not run TypeScript by ` +
          `itself; install tsx in your project ('npm install --save-dev tsx'), or use Node 23.6+ ` +
          `(22.6+ with NODE_OPTIONS=--experimental-strip-types), or load the compiled .js file`,
      )
    }
  }
  return (await import(pathToFileURL(file).href)) as Record<string, unknown>
}

/** Whether importing a `.ts` file works already: this very file runs as TypeScript, or tsx was registered. */
function typeScriptLoads(): boolean {
  return tsxRegistered || import.meta.url.endsWith('.ts')
}

/**
 * Path of the ESM build of tsx's `tsx/esm/api` as installed for folder `from` (the user's
 * project), if tsx ≥ 4 is there. Read from tsx's own exports: `require.resolve` would give the
 * CommonJS build, which cannot be imported.
 */
export function resolveTsx(from: string): string | undefined {
  let manifest: string
  try {
    manifest = createRequire(path.join(from, 'noop.js')).resolve('tsx/package.json')
  } catch {
    return undefined
  }
  const exports = (JSON.parse(readFileSync(manifest, 'utf8')) as { exports?: Record<string, unknown> })
    .exports
  let entry: unknown = exports?.['./esm/api']
  while (typeof entry === 'object' && entry !== null) {
    const conditions = entry as Record<string, unknown>
    entry = conditions['import'] ?? conditions['default']
  }
  return typeof entry === 'string' ? path.join(path.dirname(manifest), entry) : undefined
}

/** Whether this Node strips TypeScript types by itself. */
function nodeStripsTypes(): boolean {
  const features = process.features as { typescript?: unknown }
  if (typeof features.typescript === 'string') return true
  const flags = [...process.execArgv, ...(process.env['NODE_OPTIONS'] ?? '').split(/\s+/)]
  return flags.includes('--experimental-strip-types') || flags.includes('--experimental-transform-types')
}

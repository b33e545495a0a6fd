/**
 * Imports a user's module by file path for a node's registry (`basalt node --load`, `registryModule`): JavaScript as it is,
 * TypeScript through the user's own `tsx` when their project has it (an optional peer dependency
 * of Basalt, resolved from the module's folder, never from Basalt's install), else through Node's
 * own type stripping where the running Node has it, else a clear error saying what to install.
 * The installed package runs compiled JavaScript, so nothing else registers a TypeScript loader;
 * run from Basalt's sources, a loader is already in place and TypeScript imports as it is.
 */
import { spawnSync } from 'node:child_process'
import { existsSync, readFileSync, statSync } from 'node:fs'
import { createRequire } from 'node:module'
import path from 'node:path'
import process from 'node:process'
import { fileURLToPath, pathToFileURL } from 'node:url'
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

/**
 * What to do about an import that failed because an ES module (`import`/`export`) lies in a
 * CommonJS scope: a `.js`, `.ts`, `.jsx` or `.tsx` file whose nearest package.json has no
 * `"type": "module"` (no `"type"`, or `"commonjs"`, which `npm init` writes on npm 11). Node then loads it as CommonJS, and with a TypeScript loader in place fails
 * with `ERR_REQUIRE_CYCLE_MODULE` ("Cannot require() ES Module … in a cycle"), or with
 * `ERR_REQUIRE_ESM` or "Cannot use import statement outside a module" elsewhere. Returns the
 * sentence to give instead — the file, its package.json, and the two ways out — or undefined for
 * any other error. `file` is the module that was imported; the error may name another it imports.
 *
 * @example esmScopeHint(err, '/app/src/registry.ts') // 'it is an ES module … add "type": "module" to /app/package.json, or name the file .mts'
 */
export function esmScopeHint(err: unknown, file: string): string | undefined {
  const e = err as { code?: unknown; message?: unknown; name?: unknown }
  const message = typeof e?.message === 'string' ? e.message : ''
  const esmAsCommonJs =
    e?.code === 'ERR_REQUIRE_CYCLE_MODULE' ||
    e?.code === 'ERR_REQUIRE_ESM' ||
    (e?.name === 'SyntaxError' &&
      /Cannot use import statement outside a module|Unexpected token 'export'/.test(message))
  if (!esmAsCommonJs) return undefined
  const named = /(?:ES Module|require\(\) of ES Module) (\S+?)(?: in a cycle| from |\s|$)/.exec(message)?.[1]
  const culprit = named !== undefined && path.isAbsolute(named) ? named : file
  if (!/\.(?:[jt]sx?)$/.test(culprit)) return undefined
  const manifest = nearestPackageJson(path.dirname(culprit))
  if (manifest !== undefined && manifest.type === 'module') return undefined
  const what = culprit === file ? 'it is' : `${culprit}, which it imports, is`
  const [scope, fix] =
    manifest === undefined
      ? [
          'no package.json above it',
          `add a package.json with "type": "module" to ${path.dirname(culprit)} (or a folder above)`,
        ]
      : manifest.type === undefined
        ? [`${manifest.file} has no "type"`, `add "type": "module" to ${manifest.file}`]
        : [
            `${manifest.file} has "type": ${JSON.stringify(manifest.type)}`,
            `set "type" to "module" in ${manifest.file}`,
          ]
  return (
    `${what} an ES module (import/export) in a CommonJS scope (${scope}), which Node does not ` +
    `load as an ES module: ${fix}, or name the file ${/\.tsx?$/.test(culprit) ? '.mts' : '.mjs'}`
  )
}

/** The nearest package.json from folder `dir` upwards: its path and its `type`. */
function nearestPackageJson(dir: string): { file: string; type: unknown } | undefined {
  for (let d = dir; ; d = path.dirname(d)) {
    const file = path.join(d, 'package.json')
    if (existsSync(file)) {
      try {
        return { file, type: (JSON.parse(readFileSync(file, 'utf8')) as { type?: unknown }).type }
      } catch {
        return { file, type: undefined }
      }
    }
    if (path.dirname(d) === d) return undefined
  }
}

/**
 * Where a `SyntaxError` thrown by importing `file` lies, as `path:line` or `path:line:column`,
 * when it can be told. Node puts it on the first lines of the error's stack for CommonJS (and for
 * ES modules on recent versions): `path:line`, the source line, and a caret under the column.
 * Node 20 leaves it out for an ES module, and names no file either: the error may lie in `file`
 * or in any module it imports. Then `file` and the local modules it imports (see
 * {@link localModules}) are checked in turn with `node --check`, which prints the place, and the
 * first JavaScript file that fails with the same error is taken. TypeScript files are not checked
 * (tsx's own error names the place of a syntax error in one) but their imports are followed.
 * Undefined when none fails so (the error lies in a package, or in a module imported by a
 * specifier that is no relative path).
 *
 * @example syntaxErrorLocation(err, '/app/src/registry.mjs') // '/app/src/broken.mjs:3:5'
 */
export function syntaxErrorLocation(err: unknown, file: string): string | undefined {
  if (!(err instanceof Error) || err.name !== 'SyntaxError') return undefined
  const fromStack = locationInStack(err.stack ?? '')
  if (fromStack !== undefined) return fromStack
  let checked = 0
  for (const module of localModules(file)) {
    if (!/\.[cm]?js$/.test(module)) continue
    // (each check is a process of its own: a graph of many files gives up rather than take long)
    if (++checked > MAX_CHECKED_MODULES) return undefined
    const found = checkedLocation(module, err.message)
    if (found !== undefined) return found
  }
  return undefined
}

/** Most JavaScript files {@link syntaxErrorLocation} checks, and most files it reads for imports. */
const MAX_CHECKED_MODULES = 50
const MAX_READ_MODULES = 500

/** The place `node --check` gives for a syntax error in `file`, when it reports `message`. */
function checkedLocation(file: string, message: string): string | undefined {
  const check = spawnSync(process.execPath, ['--check', file], {
    encoding: 'utf8',
    timeout: 10_000,
    env: { ...process.env, NODE_OPTIONS: '' },
  })
  const stderr = typeof check.stderr === 'string' ? check.stderr : ''
  if (check.status === 0 || !stderr.includes(`SyntaxError: ${message}`)) return undefined
  return locationInStack(stderr)
}

/**
 * `file` and the files it imports, directly or not, by relative specifier (`import … from
 * './x.mjs'`, `export … from`, `import('./x.js')`, `require('./x.cjs')`), breadth first, each
 * once: the order Node loads them in, near enough. Found by a regular expression, not a parser
 * (one of them does not parse): a specifier in a comment is followed too, which costs a check and
 * misleads nothing. Packages (bare specifiers, `node_modules`) are not followed.
 */
export function* localModules(file: string): Generator<string> {
  const seen = new Set([file])
  const queue = [file]
  for (let read = 0; read < queue.length && read < MAX_READ_MODULES; read++) {
    const current = queue[read]!
    yield current
    let text: string
    try {
      text = readFileSync(current, 'utf8')
    } catch {
      continue
    }
    for (const [, , specifier] of text.matchAll(RELATIVE_IMPORT)) {
      const found = resolveLocal(path.dirname(current), specifier!)
      if (found === undefined || seen.has(found) || found.split(path.sep).includes('node_modules')) continue
      seen.add(found)
      queue.push(found)
    }
  }
}

/** A relative specifier after `from`, `import`, `import(` or `require(`. */
const RELATIVE_IMPORT = /\b(?:from|import|require)\s*\(?\s*(['"])(\.\.?\/[^'"\n]+)\1/g

/**
 * The file a relative specifier names from folder `dir`: as written, else as tsx would take it
 * (`./x.js` for `./x.ts`, no extension, a folder's index). Undefined when none exists.
 */
function resolveLocal(dir: string, specifier: string): string | undefined {
  const base = path.resolve(dir, specifier)
  const candidates = [
    base,
    base.replace(/\.([cm]?)js$/, '.$1ts'),
    ...['.ts', '.mts', '.js', '.mjs', '/index.ts', '/index.js'].map((ext) => base + ext),
  ]
  return candidates.find((c) => existsSync(c) && statSync(c).isFile())
}

/**
 * The `path:line[:column]` that a SyntaxError's stack (or Node's report of one) starts with:
 * `path:line` (a path or a file: URL), the source line, and a line with a caret under the column.
 */
function locationInStack(stack: string): string | undefined {
  const lines = stack.split('\n')
  const end = lines.findIndex((l) => l.startsWith('SyntaxError'))
  if (end <= 0) return undefined
  const at = /^(.+):(\d+)$/.exec(lines[0]!.trim())
  if (at === null) return undefined
  const where = at[1]!.startsWith('file:') ? fileURLToPath(at[1]!) : at[1]!
  const caret = lines.slice(1, end).find((l) => /^\s*\^+\s*$/.test(l))
  return caret === undefined ? `${where}:${at[2]}` : `${where}:${at[2]}:${caret.indexOf('^') + 1}`
}

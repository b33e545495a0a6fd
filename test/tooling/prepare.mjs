// npm's `prepare` script (package.json). npm runs `prepare`, and not `prepack`, when it installs
// Basalt as a git dependency (`npm install git+<url>`): it clones the repository into its cache,
// installs the devDependencies there, runs `prepare` and packs the result. Without a build here
// that package would have no dist/. npm also runs `prepare` after every `npm install` / `npm ci`
// in a checkout (CI runs `npm ci` on every run), where nothing needs building (everything runs
// from the sources) and a build takes 10-30 s; so this builds only when dist/ is missing and npm
// was started somewhere else than this checkout. npm (and pnpm, yarn) set INIT_CWD to the
// directory the command was started in: in a checkout that is the checkout or a folder in it; for
// a git dependency it is the depending project, while this clone sits in npm's cache. Without
// INIT_CWD (started by hand) it builds when dist/ is missing. `npm pack` builds in `prepack`.
import { spawnSync } from 'node:child_process'
import { existsSync, realpathSync } from 'node:fs'
import { createRequire } from 'node:module'
import path from 'node:path'
import process from 'node:process'
import { fileURLToPath } from 'node:url'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..')

/** Whether `dir` is `parent` or inside it (symbolic links resolved). */
function within(dir, parent) {
  const real = (p) => (existsSync(p) ? realpathSync(p) : path.resolve(p))
  const relative = path.relative(real(parent), real(dir))
  return relative === '' || (!relative.startsWith('..') && !path.isAbsolute(relative))
}

const started = process.env.INIT_CWD
const built = existsSync(path.join(root, 'dist', 'runtime', 'index.js'))
const sources = existsSync(path.join(root, 'tsconfig.build.json'))
if (!built && sources && (started === undefined || !within(started, root))) {
  process.stderr.write('basalt: building dist/ (installed from git)\n')
  const tsc = createRequire(path.join(root, 'package.json')).resolve('typescript/bin/tsc')
  const result = spawnSync(process.execPath, [tsc, '-p', 'tsconfig.build.json'], {
    cwd: root,
    stdio: 'inherit',
  })
  process.exitCode = result.status ?? 1
}

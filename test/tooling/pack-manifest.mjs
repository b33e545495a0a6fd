// npm's `prepack` (`strip`, after the build) and `postpack` (`restore`) scripts (package.json): the
// packed package.json carries no `scripts`. Every one of them runs a file the package does not
// ship (test/, bench/, the TypeScript sources), and npm 11 lists the `prepare` of a package
// installed from a tarball among the install scripts to review, though it runs `prepare` only for
// git dependencies and linked folders. npm packs package.json as it is on disk after `prepack`, so
// `strip` moves it to package.json.packing and writes it without `scripts`; `restore` moves it
// back. npm runs no `postpack` when packing fails: then the next `strip` or `restore` puts the kept
// one back first (`git status` shows package.json changed meanwhile). A git dependency is packed
// by npm without `prepack`: its package.json keeps its scripts.
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import process from 'node:process'
import { fileURLToPath } from 'node:url'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..')
const manifest = path.join(root, 'package.json')
const kept = path.join(root, 'package.json.packing')

/** Puts the package.json kept by `strip` back, if there is one. */
function restore() {
  if (existsSync(kept)) renameSync(kept, manifest)
}

const command = process.argv[2]
if (command === 'strip') {
  restore()
  const { scripts: _scripts, ...packed } = JSON.parse(readFileSync(manifest, 'utf8'))
  renameSync(manifest, kept)
  writeFileSync(manifest, `${JSON.stringify(packed, null, 2)}\n`)
} else if (command === 'restore') {
  restore()
} else {
  process.stderr.write(`pack-manifest: unknown command '${command}' (known: strip, restore)\n`)
  process.exitCode = 2
}

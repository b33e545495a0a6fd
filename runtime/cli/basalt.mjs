#!/usr/bin/env node
// The `basalt` command, both in the installed package and in a checkout. The package ships no
// TypeScript sources, only the compiled `dist/`: there the launcher imports the built CLI and
// needs no loader. In a checkout (main.ts lies beside this file) it registers tsx (a
// devDependency) and runs the sources, so the command never runs a stale build and needs no
// `npm run build`; a checkout without tsx (installed with --omit=dev) falls back to a build.
import { existsSync } from 'node:fs'
import process from 'node:process'
import { URL } from 'node:url'

// `basalt placement | head -2`: once the reader is gone there is nothing left to say; exit quietly
process.stdout.on('error', (err) => {
  if (err.code === 'EPIPE') process.exit(0)
  throw err
})

const source = new URL('./main.ts', import.meta.url)
const built = new URL('../../dist/runtime/cli/main.js', import.meta.url)

/** The CLI's `main`: from the sources through tsx in a checkout, else from the build. */
async function loadMain() {
  if (existsSync(source)) {
    const tsx = await import('tsx/esm/api').catch((err) => {
      if (err?.code !== 'ERR_MODULE_NOT_FOUND' || !existsSync(built)) throw err
      return undefined
    })
    if (tsx !== undefined) {
      tsx.register()
      return (await import(source.href)).main
    }
  }
  if (!existsSync(built)) {
    process.stderr.write(
      `basalt: ${built.pathname} is missing; run 'npm run build' in the package, or 'npm install' in a checkout\n`,
    )
    process.exit(1)
  }
  return (await import(built.href)).main
}

const main = await loadMain()
process.exitCode = await main(process.argv.slice(2))

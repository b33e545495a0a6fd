#!/usr/bin/env node
// The `basalt` command: registers tsx so the TypeScript sources run as they are, then hands over
// to main.ts (imported dynamically, after the loader is in place).
import process from 'node:process'
import { register } from 'tsx/esm/api'

// `basalt placement | head -2`: once the reader is gone there is nothing left to say; exit quietly
process.stdout.on('error', (err) => {
  if (err.code === 'EPIPE') process.exit(0)
  throw err
})

register()
const { main } = await import('./main.ts')
process.exitCode = await main(process.argv.slice(2))

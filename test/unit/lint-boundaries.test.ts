/**
 * The lint keeps the layers apart: ESLint's own API runs the repository's eslint.config.js on
 * small deliberately bad files placed (virtually) in each folder, and the cycle checker runs on a
 * temporary tree with a two-file cycle. Type-aware rules are switched off here (the files exist
 * only as text); the boundary rules do not need types.
 */
import { spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { ESLint } from 'eslint'
import tseslint from 'typescript-eslint'
import { afterAll, describe, expect, it } from 'vitest'
import { findCycles } from '../tooling/check-cycles.ts'

const ROOT = path.resolve(import.meta.dirname, '../..')
const eslint = new ESLint({ cwd: ROOT, overrideConfig: tseslint.configs.disableTypeChecked })

/** The boundary errors ESLint reports for `code` as if it were the file `filePath`. */
async function boundaryErrors(
  filePath: string,
  code: string,
): Promise<Array<{ rule: string; message: string }>> {
  const [result] = await eslint.lintText(code, { filePath: path.join(ROOT, filePath) })
  return (result?.messages ?? [])
    .filter((m) => m.ruleId?.startsWith('no-restricted-') === true)
    .map((m) => ({ rule: m.ruleId ?? '', message: m.message }))
}

describe('import boundaries', () => {
  it('rejects a NATS client import in actors/, type-only ones too', async () => {
    const value = await boundaryErrors('actors/x.ts', "export { connect } from '@nats-io/transport-node'\n")
    expect(value, 'export-from @nats-io in actors/').toEqual([
      { rule: 'no-restricted-imports', message: expect.stringContaining('Only runtime/nats/ talks to NATS') },
    ])
    const typeOnly = await boundaryErrors(
      'actors/x.ts',
      "import type { NatsConnection } from '@nats-io/transport-node'\nexport type C = NatsConnection\n",
    )
    expect(
      typeOnly.map((e) => e.rule),
      'import type from @nats-io in actors/',
    ).toEqual(['no-restricted-imports'])
  })

  it('rejects node: built-ins, the runtime and placement in entities/', async () => {
    const errors = await boundaryErrors(
      'entities/x.ts',
      [
        "import { hostname } from 'node:os'",
        "import { Node } from '../runtime/index.ts'",
        "import { balance } from '../placement/index.ts'",
        'export const all = [hostname, Node, balance]',
        '',
      ].join('\n'),
    )
    expect(errors.map((e) => e.message)).toEqual([
      expect.stringContaining('no Node.js built-in modules'),
      expect.stringContaining('know nothing of the runtime'),
      expect.stringContaining('Only the runtime wires placement in'),
    ])
  })

  it('rejects the clock, randomness and timers in orchestration code', async () => {
    const now = await boundaryErrors('actors/orchestration/x.ts', 'export const t = Date.now()\n')
    expect(now, 'Date.now() in actors/orchestration/').toEqual([
      { rule: 'no-restricted-properties', message: expect.stringContaining('ctx.now()') },
    ])
    const others = await boundaryErrors(
      'actors/orchestration/x.ts',
      'export const r = Math.random()\nexport const d = new Date()\nsetTimeout(() => {}, 1)\n',
    )
    expect(others.map((e) => e.rule)).toEqual([
      'no-restricted-properties',
      'no-restricted-syntax',
      'no-restricted-globals',
    ])
    // A date built from a given time and a type check against Date stay allowed.
    const fine = await boundaryErrors(
      'actors/orchestration/x.ts',
      'export const f = (x: unknown, t: number) => (x instanceof Date ? x : new Date(t))\n',
    )
    expect(fine).toEqual([])
  })

  it('lets placement/ import only actors/, runtime/nats/ and runtime/util/', async () => {
    const ok = await boundaryErrors(
      'placement/x.ts',
      "import { decode } from '../runtime/nats/index.ts'\nimport type { Logger } from '../runtime/util/index.ts'\nexport const x: [typeof decode, Logger?] = [decode]\n",
    )
    expect(ok).toEqual([])
    const bad = await boundaryErrors(
      'placement/x.ts',
      "import { Partition } from '../runtime/partition/index.ts'\nexport const p = Partition\n",
    )
    expect(bad.map((e) => e.message)).toEqual([expect.stringContaining('placement/ may import only')])
  })

  it('keeps runtime folders in layer order and behind their index files', async () => {
    const upward = await boundaryErrors(
      'runtime/nats/x.ts',
      "import { Partition } from '../partition/index.ts'\nexport const p = Partition\n",
    )
    expect(upward.map((e) => e.message)).toEqual([expect.stringContaining('runtime/nats/ is below')])
    const deep = await boundaryErrors(
      'runtime/client/x.ts',
      "import { encode } from '../nats/codec.ts'\nexport const e = encode\n",
    )
    expect(deep.map((e) => e.message)).toEqual([expect.stringContaining('through its index.ts')])
    const nats = await boundaryErrors(
      'runtime/client/x.ts',
      "import type { KV } from '@nats-io/kv'\nexport type K = KV\n",
    )
    expect(
      nats.map((e) => e.rule),
      '@nats-io outside runtime/nats/',
    ).toEqual(['no-restricted-imports'])
  })
})

describe('import cycles', () => {
  const dirs: string[] = []
  afterAll(() => {
    for (const d of dirs) rmSync(d, { recursive: true, force: true })
  })

  it('finds none in the source tree', () => {
    expect(findCycles(ROOT)).toEqual([])
  })

  it('fails on a two-file cycle made of type-only imports', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'basalt-cycles-'))
    dirs.push(dir)
    writeFileSync(path.join(dir, 'a.ts'), "import type { B } from './b.ts'\nexport interface A { b: B }\n")
    writeFileSync(path.join(dir, 'b.ts'), "import type { A } from './a.ts'\nexport interface B { a?: A }\n")
    writeFileSync(path.join(dir, 'c.ts'), "import type { A } from './a.ts'\nexport type C = A\n")
    expect(findCycles(dir, ['.'])).toEqual([['a.ts', 'b.ts', 'a.ts']])

    const run = spawnSync(process.execPath, ['--import', 'tsx', 'test/tooling/check-cycles.ts', dir], {
      cwd: ROOT,
      encoding: 'utf8',
    })
    expect(run.status, `check-cycles exit status; stderr: ${run.stderr}`).toBe(1)
    expect(run.stderr).toContain('a.ts -> ')
  })
})

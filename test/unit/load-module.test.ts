/**
 * What `basalt node --load` says about a module it cannot import (runtime/node/load-module.ts):
 * an ES module in a CommonJS scope, and where a syntax error lies (in it, or in a module it
 * imports). Files in a temp folder, errors
 * shaped as Node throws them; no server.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { esmScopeHint, localModules, syntaxErrorLocation } from '../../runtime/node/load-module.ts'

const root = mkdtempSync(path.join(os.tmpdir(), 'basalt-load-module-'))
afterAll(() => rmSync(root, { recursive: true, force: true }))

/** Writes `text` at `relative` under a fresh folder of the temp dir; returns its absolute path. */
function file(relative: string, text: string): string {
  const full = path.join(root, relative)
  mkdirSync(path.dirname(full), { recursive: true })
  writeFileSync(full, text)
  return full
}

/** The error Node 20.19+ throws for an ES module it loads as CommonJS with a loader in place. */
function requireCycle(file: string): Error {
  const err = new Error(
    `Cannot require() ES Module ${file} in a cycle. A cycle involving require(esm) is not allowed ` +
      'to maintain invariants mandated by the ECMAScript specification. Try making at least part ' +
      'of the dependency in the graph lazily loaded.',
  )
  return Object.assign(err, { code: 'ERR_REQUIRE_CYCLE_MODULE' })
}

describe('esmScopeHint', () => {
  it('says to add "type": "module" to the package.json that lacks it, or to name the file .mts', () => {
    file('app/package.json', '{ "name": "app" }')
    const registry = file('app/src/registry.ts', 'export const registry = []\n')
    expect(esmScopeHint(requireCycle(registry), registry)).toBe(
      `it is an ES module (import/export) in a CommonJS scope (${root}/app/package.json has no ` +
        `"type"), which Node does not load as an ES module: add "type": "module" to ` +
        `${root}/app/package.json, or name the file .mts`,
    )
  })

  it('names the imported file that is the culprit, the "type" its package.json has, and .mjs for JavaScript', () => {
    // as `npm init -y` writes it on npm 11
    file('lone/package.json', '{ "name": "lone", "type": "commonjs" }')
    const registry = file('lone/registry.mjs', "export { registry } from './entities.js'\n")
    const entities = file('lone/entities.js', 'export const registry = []\n')
    expect(esmScopeHint(requireCycle(entities), registry)).toBe(
      `${entities}, which it imports, is an ES module (import/export) in a CommonJS scope ` +
        `(${root}/lone/package.json has "type": "commonjs"), which Node does not load as an ES ` +
        `module: set "type" to "module" in ${root}/lone/package.json, or name the file .mjs`,
    )
    const syntax = Object.assign(new SyntaxError('Cannot use import statement outside a module'), {})
    expect(esmScopeHint(syntax, entities)).toMatch(/^it is an ES module .* or name the file \.mjs$/)
  })

  it('says nothing for a module whose scope is "type": "module", an .mts file, or another error', () => {
    file('esm/package.json', '{ "type": "module" }')
    const inEsm = file('esm/registry.ts', 'export const registry = []\n')
    expect(esmScopeHint(requireCycle(inEsm), inEsm)).toBeUndefined()
    const mts = file('app/src/registry.mts', 'export const registry = []\n')
    expect(esmScopeHint(requireCycle(mts), mts)).toBeUndefined()
    const registry = path.join(root, 'app/src/registry.ts')
    expect(esmScopeHint(new Error('boom'), registry)).toBeUndefined()
    expect(esmScopeHint(new SyntaxError('Unexpected end of input'), registry)).toBeUndefined()
  })
})

describe('syntaxErrorLocation', () => {
  it('reads path:line:column from the first lines of the stack (the caret gives the column)', () => {
    const err = new SyntaxError("Unexpected token ','")
    err.stack = [
      'file:///app/src/registry.mjs:3',
      '  a +,',
      '     ^',
      '',
      "SyntaxError: Unexpected token ','",
      '    at compileSourceTextModule (node:internal/modules/esm/utils:346:16)',
    ].join('\n')
    expect(syntaxErrorLocation(err, '/app/src/registry.mjs')).toBe('/app/src/registry.mjs:3:6')
    const cjs = new SyntaxError('Unexpected end of input')
    cjs.stack = '/app/src/c.cjs:2\n\n\n\nSyntaxError: Unexpected end of input\n    at wrapSafe (x)'
    expect(syntaxErrorLocation(cjs, '/app/src/c.cjs')).toBe('/app/src/c.cjs:2')
  })

  it('checks a JavaScript module with node --check when the stack has no place (Node 20, ESM)', () => {
    const broken = file('syntax/registry.mjs', 'export const a = 1\nexport const registry = [\n  a +,\n]\n')
    const err = new SyntaxError("Unexpected token ','")
    err.stack = "SyntaxError: Unexpected token ','\n    at compileSourceTextModule (node:internal)"
    expect(syntaxErrorLocation(err, broken)).toBe(`${broken}:3:6`)
    const cut = file('syntax/cut.mjs', 'export const registry = [\n  1,\n')
    const end = new SyntaxError('Unexpected end of input')
    end.stack = 'SyntaxError: Unexpected end of input\n    at compileSourceTextModule (node:internal)'
    expect(syntaxErrorLocation(end, cut)).toBe(`${cut}:3`)
    expect(syntaxErrorLocation(new Error('not a syntax error'), broken)).toBeUndefined()
  })

  it('finds the error in a module the file imports, directly or not, through TypeScript too', () => {
    const end = new SyntaxError('Unexpected end of input')
    end.stack = 'SyntaxError: Unexpected end of input\n    at compileSourceTextModule (node:internal)'
    const cut = file('deep/lib/cut.mjs', 'export const registry = [\n  1,\n')
    file('deep/lib/fine.mjs', 'export const fine = 1\n')
    // (a specifier in a comment is followed too; tsx's ./x.js for x.ts; a package is not followed)
    file('deep/lib/index.ts', "// see './nowhere.mjs'\nimport 'some-package'\nexport * from './fine.js'\n")
    file('deep/middle.mjs', "import './lib/index.js'\nexport { registry } from './lib/cut.mjs'\n")
    const importer = file(
      'deep/registry.ts',
      "import { registry } from './middle.mjs'\nexport { registry }\n",
    )
    expect(syntaxErrorLocation(end, importer)).toBe(`${cut}:3`)
    // another error than the one thrown is not taken for it
    const other = new SyntaxError("Unexpected token ','")
    other.stack = "SyntaxError: Unexpected token ','\n    at compileSourceTextModule (node:internal)"
    expect(syntaxErrorLocation(other, importer)).toBeUndefined()
  })

  it('lists the local modules breadth first, each once, without packages', () => {
    const a = file('graph/a.mjs', "import './b.mjs'\nimport './c/index.js'\nimport 'pkg'\nimport './b.mjs'\n")
    const b = file('graph/b.mjs', "import './node_modules/x/y.mjs'\nimport('./d.mjs')\n")
    const c = file('graph/c/index.js', "require('../a.mjs')\n")
    const d = file('graph/d.mjs', '')
    file('graph/node_modules/x/y.mjs', '')
    expect([...localModules(a)]).toEqual([a, b, c, d])
  })
})

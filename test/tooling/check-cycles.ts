/**
 * Fails when the source tree has an import cycle. Every static `import` and `export ... from`
 * counts, type-only ones included: a type-only cycle still ties two layers together, and the next
 * value import along it becomes a load-order bug. Dynamic `import()` does not count (it is how
 * the CLI loads a command lazily). Files are parsed with the TypeScript compiler, so imports in
 * comments or strings are not mistaken for real ones.
 *
 * `npm run lint` runs it after ESLint:
 *     node --import tsx test/tooling/check-cycles.ts [folder ...]   (default: every source folder)
 * It prints each cycle as a chain of files and exits 1 when it found any.
 */
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs'
import path from 'node:path'
import { pathToFileURL } from 'node:url'
import ts from 'typescript'

/** The folders `npm run lint` checks. */
export const SOURCE_FOLDERS = ['runtime', 'actors', 'entities', 'placement', 'examples', 'bench', 'test']

/** Every `.ts` file under `dir` (node_modules and dot-folders skipped). */
function tsFiles(dir: string): string[] {
  const out: string[] = []
  for (const name of readdirSync(dir)) {
    if (name === 'node_modules' || name.startsWith('.')) continue
    const full = path.join(dir, name)
    if (statSync(full).isDirectory()) out.push(...tsFiles(full))
    else if (name.endsWith('.ts') && !name.endsWith('.d.ts')) out.push(full)
  }
  return out
}

/** The relative module specifiers a file imports or re-exports statically (top level). */
export function staticImports(file: string, text = readFileSync(file, 'utf8')): string[] {
  const source = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, false, ts.ScriptKind.TS)
  const specs: string[] = []
  for (const st of source.statements) {
    let spec: ts.Expression | undefined
    if (ts.isImportDeclaration(st)) spec = st.moduleSpecifier
    else if (ts.isExportDeclaration(st)) spec = st.moduleSpecifier
    else if (ts.isImportEqualsDeclaration(st) && ts.isExternalModuleReference(st.moduleReference)) {
      spec = st.moduleReference.expression
    }
    if (spec !== undefined && ts.isStringLiteral(spec) && spec.text.startsWith('.')) specs.push(spec.text)
  }
  return specs
}

/** The file a relative specifier names, if it is one of ours. */
function resolve(from: string, spec: string, known: Set<string>): string | undefined {
  const base = path.resolve(path.dirname(from), spec)
  const candidates = [base, base.replace(/\.js$/, '.ts'), `${base}.ts`, path.join(base, 'index.ts')]
  return candidates.find((c) => known.has(c))
}

/**
 * The import cycles among the `.ts` files under `folders` (relative to `root`): each cycle as the
 * list of files along it, relative to `root`, starting and ending with the same file.
 */
export function findCycles(root: string, folders: string[] = SOURCE_FOLDERS): string[][] {
  const files = folders
    .map((f) => path.resolve(root, f))
    .filter((d) => existsSync(d))
    .flatMap(tsFiles)
  const known = new Set(files)
  const edges = new Map<string, string[]>()
  for (const file of files) {
    const targets = staticImports(file)
      .map((spec) => resolve(file, spec, known))
      .filter((t): t is string => t !== undefined)
    edges.set(file, [...new Set(targets)])
  }
  return stronglyConnected(files, edges)
    .filter((scc) => scc.length > 1 || (edges.get(scc[0]!) ?? []).includes(scc[0]!))
    .map((scc) => cycleThrough(scc, edges).map((f) => path.relative(root, f)))
}

/** Tarjan's strongly connected components (iterative, so deep trees do not overflow the stack). */
function stronglyConnected(nodes: string[], edges: Map<string, string[]>): string[][] {
  const index = new Map<string, number>()
  const low = new Map<string, number>()
  const onStack = new Set<string>()
  const stack: string[] = []
  const out: string[][] = []
  let next = 0
  for (const start of nodes) {
    if (index.has(start)) continue
    const work: Array<[node: string, edge: number]> = [[start, 0]]
    index.set(start, next)
    low.set(start, next++)
    stack.push(start)
    onStack.add(start)
    while (work.length > 0) {
      const top = work[work.length - 1]!
      const [node, i] = top
      const targets = edges.get(node) ?? []
      if (i < targets.length) {
        top[1]++
        const t = targets[i]!
        if (!index.has(t)) {
          index.set(t, next)
          low.set(t, next++)
          stack.push(t)
          onStack.add(t)
          work.push([t, 0])
        } else if (onStack.has(t)) {
          low.set(node, Math.min(low.get(node)!, index.get(t)!))
        }
        continue
      }
      work.pop()
      const parent = work[work.length - 1]
      if (parent !== undefined) low.set(parent[0], Math.min(low.get(parent[0])!, low.get(node)!))
      if (low.get(node) === index.get(node)) {
        const scc: string[] = []
        let member: string
        do {
          member = stack.pop()!
          onStack.delete(member)
          scc.push(member)
        } while (member !== node)
        out.push(scc)
      }
    }
  }
  return out
}

/** One concrete cycle inside a strongly connected component (breadth-first back to its start). */
function cycleThrough(scc: string[], edges: Map<string, string[]>): string[] {
  const inScc = new Set(scc)
  const start = [...scc].sort()[0]!
  const previous = new Map<string, string>()
  const queue = [start]
  while (queue.length > 0) {
    const node = queue.shift()!
    for (const t of edges.get(node) ?? []) {
      if (!inScc.has(t)) continue
      if (t === start) {
        const chain: string[] = []
        for (let n: string | undefined = node; n !== undefined && n !== start; n = previous.get(n))
          chain.push(n)
        return [start, ...chain.reverse(), start]
      }
      if (!previous.has(t)) {
        previous.set(t, node)
        queue.push(t)
      }
    }
  }
  return [start, start]
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const folders = process.argv.slice(2)
  const cycles = findCycles(process.cwd(), folders.length > 0 ? folders : SOURCE_FOLDERS)
  for (const cycle of cycles) console.error(`import cycle: ${cycle.join(' -> ')}`)
  if (cycles.length > 0) {
    console.error(
      `${cycles.length} import cycle(s); type-only imports count too. Move the shared type down a layer.`,
    )
    process.exit(1)
  }
  console.log('no import cycles')
}

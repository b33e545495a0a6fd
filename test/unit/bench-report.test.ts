/**
 * The benchmark runner's pieces that need no server: the parsing of its numeric list flags
 * (`--concurrency 256,1024,2048`), and the charts of `--report` rendered from fixed figures
 * (`bench/report.ts`), including the `figures.json` they are kept in; and the runner's exit on bad
 * arguments (it is started as a process, but stops before it would start a server). No timing.
 */
import { spawnSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterEach, describe, expect, it } from 'vitest'
import { BadInputError } from '../../runtime/index.ts'
import { choiceList, positiveInt, positiveIntList } from '../../bench/args.ts'
import { FAULTS, percentileCurve, setupLabel, type Distribution, type Figure } from '../../bench/common.ts'
import {
  FIGURES_FILE,
  mergeReports,
  readReport,
  renderCharts,
  reportOfRun,
  writeReport,
  type ReportData,
} from '../../bench/report.ts'

describe('--concurrency and other list flags', () => {
  it('reads a comma-separated list in the order given, spaces allowed, one number a list of one', () => {
    expect(positiveIntList('concurrency', '256,1024,2048')).toEqual([256, 1024, 2048])
    expect(positiveIntList('concurrency', ' 2048 , 256 ')).toEqual([2048, 256])
    expect(positiveIntList('concurrency', '256')).toEqual([256])
  })

  it.each([
    ['256,abc', '"abc"'],
    ['256,,1024', '""'],
    ['0', '"0"'],
    ['-5', '"-5"'],
    ['1.5', '"1.5"'],
    ['', '""'],
    ['256,1e400', '"1e400"'],
  ])('rejects %j naming the flag, the item and the whole value', (text, item) => {
    const call = () => positiveIntList('concurrency', text)
    expect(call).toThrow(BadInputError)
    expect(call).toThrow(`--concurrency must be a comma-separated list of integers >= 1: ${item} is not one`)
    expect(call).toThrow(`(got ${JSON.stringify(text)})`)
  })

  it('rejects a level listed twice', () => {
    expect(() => positiveIntList('concurrency', '256,1024,256')).toThrow(
      '--concurrency lists 256 twice (got "256,1024,256")',
    )
  })

  it('reads single integers with a minimum, and rejects others naming the flag and value', () => {
    expect(positiveInt('warmup', '0', 0)).toBe(0)
    expect(positiveInt('instances', '10000')).toBe(10000)
    expect(() => positiveInt('instances', 'ten')).toThrow('--instances must be an integer >= 1 (got "ten")')
    expect(() => positiveInt('instances', '')).toThrow('--instances must be an integer >= 1 (got "")')
    expect(() => positiveInt('warmup', '-1', 0)).toThrow(BadInputError)
  })

  it('reads --faults as names out of the known ones, in the order given', () => {
    expect(choiceList('faults', 'member', FAULTS)).toEqual(['member'])
    expect(choiceList('faults', 'kill, stop', FAULTS)).toEqual(['kill', 'stop'])
    expect(() => choiceList('faults', 'stop,crash', FAULTS)).toThrow(
      '--faults must be a comma-separated list of stop, kill, member: "crash" is not one (got "stop,crash")',
    )
    expect(() => choiceList('faults', 'kill,kill', FAULTS)).toThrow('--faults lists kill twice')
  })
})

describe('setupLabel and percentileCurve', () => {
  it('labels hello-sequence figures with node count and load, and nothing else', () => {
    expect(setupLabel({ bench: 'hello-sequence', params: { nodes: 2, concurrency: 256 } })).toBe(
      '2 nodes, 256 in flight',
    )
    expect(setupLabel({ bench: 'hello-sequence', params: { instances: 500 } })).toBe('')
    expect(setupLabel({ bench: 'takeover', params: { nodes: 3 } })).toBe('')
  })

  it('labels figures of a node with worker threads (--workers) with the thread count', () => {
    expect(setupLabel({ bench: 'hello-sequence', params: { workers: 2, concurrency: 256 } })).toBe(
      '2 workers, 256 in flight',
    )
    expect(setupLabel({ bench: 'entity-signals', params: { workers: 1 } })).toBe('1 worker')
    expect(setupLabel({ bench: 'entity-signals', params: { entities: 100 } })).toBe('')
  })

  it('keeps min, whole percentiles, the fine tail and the max', () => {
    const values = Array.from({ length: 1000 }, (_, i) => 1000 - i) // 1..1000, unsorted
    const curve = percentileCurve(values)
    expect(curve[0]).toEqual([0, 1])
    expect(curve.find(([p]) => p === 50)).toEqual([50, 500])
    expect(curve.find(([p]) => p === 99.9)).toEqual([99.9, 999])
    expect(curve.at(-1)).toEqual([100, 1000])
    expect(percentileCurve([])).toEqual([])
  })
})

// ---------------------------------------------------------------------------------------------------------
// Charts from fixed figures
// ---------------------------------------------------------------------------------------------------------

const fig = (bench: string, metric: string, value: number, params: Record<string, unknown>): Figure => ({
  bench,
  metric,
  value,
  unit: metric.endsWith('_ms') ? 'ms' : '1/s',
  params,
})

function fixedFigures(): { figures: Figure[]; distributions: Distribution[] } {
  const figures: Figure[] = []
  const distributions: Distribution[] = []
  const spread = (base: number) => Array.from({ length: 200 }, (_, i) => base + i / 10)
  for (const [i, concurrency] of [256, 1024, 2048].entries()) {
    const params = { instances: 10000, concurrency, activities: 5 }
    figures.push(fig('hello-sequence', 'instances_per_s', 5000 + i * 400, params))
    figures.push(fig('hello-sequence', 'latency_p50_ms', 50 * (i + 1), params))
    figures.push(fig('hello-sequence', 'latency_p99_ms', 90 * (i + 1), params))
    distributions.push({
      bench: 'hello-sequence',
      metric: 'latency_ms',
      unit: 'ms',
      params,
      points: percentileCurve(spread(50 * (i + 1))),
    })
  }
  distributions.push({
    bench: 'hello-sequence',
    metric: 'unloaded_latency_ms',
    unit: 'ms',
    params: { instances: 500, activities: 5 },
    points: percentileCurve(spread(2)),
  })
  for (const nodes of [1, 2, 3])
    figures.push(
      fig('hello-sequence', 'instances_per_s', 3000 * nodes, { instances: 10000, concurrency: 256, nodes }),
    )
  figures.push(fig('entity-signals', 'signals_per_s', 98_000, { pipelining: true }))
  figures.push(fig('entity-signals', 'signals_per_s_no_pipelining', 41_000, { pipelining: false }))
  return { figures, distributions }
}

const RUN = { ranAt: '2026-11-30T18:00:00.000Z', command: 'npm run bench -- --report', host: 'test host' }

function fixedReport(): ReportData {
  const { figures, distributions } = fixedFigures()
  return reportOfRun(figures, distributions, RUN)
}

/** The SVG of chart `file`, failing with the reason when it was skipped. */
function svgOf(charts: Awaited<ReturnType<typeof renderCharts>>, file: string): string {
  const chart = charts.find((c) => c.file === file)
  if (chart === undefined) throw new Error(`no chart ${file} among ${charts.map((c) => c.file).join(', ')}`)
  if (!('svg' in chart)) throw new Error(`chart ${file} was skipped: ${chart.missing}`)
  expect(chart.svg.startsWith('<svg')).toBe(true)
  return chart.svg
}

describe('benchmark charts', () => {
  it('draws each chart with its axis titles and series names', async () => {
    const charts = await renderCharts(fixedReport())
    expect(charts.map((c) => c.file)).toEqual([
      'hello-sequence-concurrency.svg',
      'hello-sequence-latency.svg',
      'throughput-by-nodes.svg',
      'entity-signals-pipelining.svg',
    ])

    const concurrency = svgOf(charts, 'hello-sequence-concurrency.svg')
    for (const text of [
      'instances in flight',
      'instances/s',
      'latency (ms)',
      'p50',
      'p99',
      'in-process node',
    ])
      expect(concurrency, `concurrency chart: ${text}`).toContain(text)
    for (const level of ['256', '1024', '2048']) expect(concurrency).toContain(`>${level}<`)

    const latency = svgOf(charts, 'hello-sequence-latency.svg')
    for (const text of [
      'percentile',
      'latency (ms)',
      '256 in flight',
      '2048 in flight',
      'one at a time',
      '99%',
    ])
      expect(latency, `latency chart: ${text}`).toContain(text)

    const nodes = svgOf(charts, 'throughput-by-nodes.svg')
    for (const text of ['node processes', 'instances/s', '1 node', '3 nodes', '256 in flight'])
      expect(nodes, `nodes chart: ${text}`).toContain(text)

    const pipelining = svgOf(charts, 'entity-signals-pipelining.svg')
    for (const text of ['commit pipelining', 'signals/s', 'with pipelining', 'without pipelining', '98,000'])
      expect(pipelining, `pipelining chart: ${text}`).toContain(text)
  })

  it('skips a chart whose figures are missing, naming the command that produces them', async () => {
    const { figures } = fixedFigures()
    const onlySignals = reportOfRun(
      figures.filter((f) => f.bench === 'entity-signals'),
      [],
      RUN,
    )
    const charts = await renderCharts(onlySignals)
    const skipped = charts.filter((c) => 'missing' in c)
    expect(skipped.map((c) => [c.file, 'missing' in c ? c.missing : ''])).toEqual([
      ['hello-sequence-concurrency.svg', 'npm run bench -- hello-sequence --concurrency 256,1024,2048'],
      ['hello-sequence-latency.svg', 'npm run bench -- hello-sequence --concurrency 256,1024,2048'],
      ['throughput-by-nodes.svg', 'npm run bench -- hello-sequence --nodes 1,2,3'],
    ])
    svgOf(charts, 'entity-signals-pipelining.svg')
  })
})

describe('figures.json', () => {
  const dirs: string[] = []
  const tempDir = () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'basalt-bench-report-'))
    dirs.push(dir)
    return dir
  }
  afterEach(() => {
    for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true })
  })

  it('a new run replaces the groups it measured and keeps the others', () => {
    const previous = fixedReport()
    const next = reportOfRun(
      [fig('hello-sequence', 'instances_per_s', 7777, { instances: 100, concurrency: 64, activities: 5 })],
      [],
      { ...RUN, ranAt: '2026-12-01T00:00:00.000Z' },
    )
    const merged = mergeReports(previous, next)
    const hello = merged.figures.filter(
      (f) => f.bench === 'hello-sequence' && f.params['nodes'] === undefined,
    )
    expect(hello.map((f) => f.value)).toEqual([7777])
    expect(merged.distributions.filter((d) => d.params['nodes'] === undefined)).toEqual([])
    // hello-sequence --nodes and entity-signals were not measured again: kept
    expect(merged.figures.filter((f) => f.params['nodes'] !== undefined)).toHaveLength(3)
    expect(merged.figures.filter((f) => f.bench === 'entity-signals')).toHaveLength(2)
    expect(merged.runs.map((r) => [r.group, r.ranAt])).toEqual([
      ['hello-sequence --nodes', RUN.ranAt],
      ['entity-signals', RUN.ranAt],
      ['hello-sequence', '2026-12-01T00:00:00.000Z'],
    ])
  })

  it('writes the SVGs and the figures, and reads the figures back', async () => {
    const dir = tempDir()
    const data = fixedReport()
    const charts = await writeReport(data, dir)
    for (const chart of charts) expect(readFileSync(path.join(dir, chart.file), 'utf8')).toContain('</svg>')
    expect(readReport(path.join(dir, FIGURES_FILE))).toEqual(data)
    expect(readReport(path.join(dir, 'absent.json'), true)).toBeUndefined()
  })

  it('refuses a figures file of another format, naming the file and the format', () => {
    const file = path.join(tempDir(), FIGURES_FILE)
    writeFileSync(file, JSON.stringify({ format: 2, runs: [], figures: [], distributions: [] }))
    expect(() => readReport(file)).toThrow(BadInputError)
    expect(() => readReport(file)).toThrow(`the figures file ${file} has format 2, expected 1`)
    writeFileSync(file, '{ not json')
    expect(() => readReport(file)).toThrow(`the figures file ${file} is not JSON`)
  })
})

describe('the runner on bad arguments', () => {
  const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..')
  /** Runs `bench/run.ts` with `args`; these all fail before anything is started. */
  const bench = (...args: string[]) => {
    const result = spawnSync(process.execPath, ['--import', 'tsx', 'bench/run.ts', ...args], {
      cwd: repoRoot,
      encoding: 'utf8',
      env: { ...process.env, NATS_URL: '' },
      timeout: 30_000,
    })
    return { status: result.status, stderr: result.stderr, stdout: result.stdout }
  }

  it('exits 2 naming --concurrency and the bad level, with the usage', () => {
    const run = bench('hello-sequence', '--concurrency', '256,abc')
    expect(run.stderr).toContain(
      '--concurrency must be a comma-separated list of integers >= 1: "abc" is not one (got "256,abc")',
    )
    expect(run.stderr).toContain('usage: npm run bench')
    expect(run.status, run.stderr).toBe(2)
  })

  it('exits 2 naming the figures file that --report-from cannot read, without a stack trace', () => {
    const missing = path.join(tmpdir(), `basalt-no-such-figures-${process.pid}.json`)
    const run = bench('--report-from', missing)
    expect(run.stderr).toContain(`cannot read the figures file ${missing}`)
    expect(run.stderr).not.toContain('    at ')
    expect(run.status, run.stderr).toBe(2)
  })

  it('exits 2 when --report-from is given with benchmarks to run', () => {
    const run = bench('entity-signals', '--report-from', 'docs/bench/figures.json')
    expect(run.stderr).toContain('--report-from draws charts from a file and runs nothing')
    expect(run.status, run.stderr).toBe(2)
  })
})

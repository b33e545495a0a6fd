/**
 * Benchmark charts (`npm run bench -- --report`, `--report-from FILE`): turns the figures of a run
 * into SVG charts with vega-lite (spec → vega) and vega (rendered headless, no canvas), and keeps
 * the figures they plot in `figures.json` beside them so the charts can be drawn again without
 * running anything.
 *
 * The charts: hello-sequence throughput and latency by instances in flight, hello-sequence latency
 * percentiles per load, hello-sequence throughput by node processes, entity-signals signals/s with
 * and without commit pipelining. A chart whose figures are missing is skipped, with the command that
 * would produce them.
 *
 * `figures.json` collects runs: a new run replaces the figures of the groups it measured (a
 * benchmark, and for `hello-sequence` apart whether `--nodes` was given) and keeps the others, so
 * the charts can be filled one benchmark at a time.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import * as vega from 'vega'
import { compile, type TopLevelSpec } from 'vega-lite'
import { BadInputError } from '../runtime/index.ts'
import { nodesLabel, type Distribution, type Figure } from './common.ts'

/** Version of the `figures.json` layout; a file of another version is refused. */
export const REPORT_FORMAT = 1

export { DEFAULT_REPORT_DIR, FIGURES_FILE } from './report-files.ts'
import { FIGURES_FILE } from './report-files.ts'

/** When, where and how one group of figures was measured. */
export interface RunInfo {
  /** {@link figureGroup} of the figures this run measured. */
  group: string
  /** ISO time the run ended. */
  ranAt: string
  /** The command that ran it. */
  command: string
  /** Cores, CPU model, Node.js version, platform. */
  host: string
}

/** The content of `figures.json`: the figures the charts plot and where they came from. */
export interface ReportData {
  format: typeof REPORT_FORMAT
  runs: RunInfo[]
  figures: Figure[]
  distributions: Distribution[]
}

/** One chart: its file name and title, and either its SVG or why it was skipped. */
export type RenderedChart =
  { file: string; title: string; svg: string } | { file: string; title: string; missing: string }

/** A chart before rendering. */
interface ChartSpec {
  file: string
  title: string
  spec: TopLevelSpec | undefined
  /** Why there is no spec: which figures are missing and how to get them. */
  missing: string
}

// ---------------------------------------------------------------------------------------------------------
// Collecting and storing figures
// ---------------------------------------------------------------------------------------------------------

/** The group a figure or distribution belongs to: its benchmark, `hello-sequence --nodes` apart. */
export function figureGroup(item: Pick<Figure, 'bench' | 'params'>): string {
  return item.bench === 'hello-sequence' && item.params['nodes'] !== undefined
    ? `${item.bench} --nodes`
    : item.bench
}

/** Cores, CPU model, Node.js version and platform of this machine, for {@link RunInfo.host}. */
export function hostDescription(): string {
  const cpus = os.cpus()
  return `${cpus.length} cores (${cpus[0]?.model.trim() ?? 'unknown CPU'}), Node.js ${process.version}, ${process.platform}`
}

/**
 * The report of one run: its figures and distributions, with a {@link RunInfo} per group measured.
 */
export function reportOfRun(
  figures: Figure[],
  distributions: Distribution[],
  run: Omit<RunInfo, 'group'>,
): ReportData {
  const groups = [...new Set([...figures, ...distributions].map(figureGroup))]
  return {
    format: REPORT_FORMAT,
    runs: groups.map((group) => ({ group, ...run })),
    figures,
    distributions,
  }
}

/**
 * `previous` with the groups `next` measured replaced by `next`'s figures (and run info); groups
 * only in `previous` are kept.
 */
export function mergeReports(previous: ReportData | undefined, next: ReportData): ReportData {
  if (previous === undefined) return next
  const replaced = new Set(next.runs.map((r) => r.group))
  const kept = <T extends Pick<Figure, 'bench' | 'params'>>(items: T[]) =>
    items.filter((item) => !replaced.has(figureGroup(item)))
  return {
    format: REPORT_FORMAT,
    runs: [...previous.runs.filter((r) => !replaced.has(r.group)), ...next.runs],
    figures: [...kept(previous.figures), ...next.figures],
    distributions: [...kept(previous.distributions), ...next.distributions],
  }
}

/**
 * Reads a `figures.json`; undefined when `file` does not exist and `missingOk`.
 *
 * @throws BadInputError naming the file when it is not JSON, not of {@link REPORT_FORMAT}, or lacks
 *   its lists.
 */
export function readReport(file: string, missingOk = false): ReportData | undefined {
  let text: string
  try {
    text = readFileSync(file, 'utf8')
  } catch (err) {
    if (missingOk && (err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw new BadInputError(`cannot read the figures file ${file}: ${(err as Error).message}`, { cause: err })
  }
  let data: unknown
  try {
    data = JSON.parse(text)
  } catch (err) {
    throw new BadInputError(`the figures file ${file} is not JSON: ${(err as Error).message}`, { cause: err })
  }
  const d = data as Partial<ReportData> | null
  if (d === null || typeof d !== 'object' || d.format !== REPORT_FORMAT)
    throw new BadInputError(
      `the figures file ${file} has format ${JSON.stringify(d?.format)}, expected ${REPORT_FORMAT}`,
    )
  if (!Array.isArray(d.runs) || !Array.isArray(d.figures) || !Array.isArray(d.distributions))
    throw new BadInputError(`the figures file ${file} lacks its runs, figures or distributions list`)
  return d as ReportData
}

/**
 * Renders the charts of `data` and writes them to `dir` (created if needed) as `<chart>.svg`, with
 * `data` as {@link FIGURES_FILE}. Charts without figures are not written (nor removed).
 */
export async function writeReport(data: ReportData, dir: string): Promise<RenderedChart[]> {
  const charts = await renderCharts(data)
  mkdirSync(dir, { recursive: true })
  writeFileSync(path.join(dir, FIGURES_FILE), formatReport(data))
  for (const chart of charts) if ('svg' in chart) writeFileSync(path.join(dir, chart.file), chart.svg)
  return charts
}

/** `data` as indented JSON, each percentile curve on one line (so the file stays readable). */
export function formatReport(data: ReportData): string {
  const text = JSON.stringify(
    data,
    (key, value: unknown) => (key === 'points' ? JSON.stringify(value) : value),
    2,
  )
  // the curves are lists of numbers: no quote or backslash inside, so unquoting them is safe
  return `${text.replace(/"points": "(\[[^"]*\])"/g, '"points": $1')}\n`
}

// ---------------------------------------------------------------------------------------------------------
// Rendering
// ---------------------------------------------------------------------------------------------------------

/** Every chart of `data`, rendered to SVG, or skipped with the reason. */
export async function renderCharts(data: ReportData): Promise<RenderedChart[]> {
  const rendered: RenderedChart[] = []
  for (const chart of chartSpecs(data)) {
    if (chart.spec === undefined) {
      rendered.push({ file: chart.file, title: chart.title, missing: chart.missing })
      continue
    }
    const view = new vega.View(vega.parse(compile(chart.spec).spec), { renderer: 'none' })
    try {
      rendered.push({ file: chart.file, title: chart.title, svg: await view.toSVG() })
    } finally {
      view.finalize()
    }
  }
  return rendered
}

/** Chart size of one panel, in pixels. */
const WIDTH = 360
const HEIGHT = 240

function chartSpecs(data: ReportData): ChartSpec[] {
  return [concurrencyChart(data), latencyChart(data), nodesChart(data), pipeliningChart(data)]
}

/** "<group>: <when>, <host>" of the runs that measured `items`, for a chart's subtitle. */
function provenance(data: ReportData, items: Array<Pick<Figure, 'bench' | 'params'>>): string[] {
  const groups = new Set(items.map(figureGroup))
  return data.runs
    .filter((r) => groups.has(r.group))
    .map((r) => `${r.group}: ${r.ranAt.slice(0, 16).replace('T', ' ')} UTC, ${r.host}`)
}

/**
 * A chart's spec with the frame every chart shares (file, title, the runs it came from as the
 * subtitle, its rows as the data), or — with no rows — the command that measures its figures.
 */
function framed(
  data: ReportData,
  chart: { file: string; title: string; missing: string },
  used: Array<Pick<Figure, 'bench' | 'params'>>,
  rows: object[],
  body: () => Record<string, unknown>,
): ChartSpec {
  const { file, title, missing } = chart
  if (rows.length === 0) return { file, title, spec: undefined, missing }
  const spec = { title: { text: title, subtitle: provenance(data, used) }, data: { values: rows }, ...body() }
  return { file, title, missing: '', spec: spec as TopLevelSpec }
}

/** `in-process node` or `2 node processes`. */
function setupOf(params: Record<string, unknown>): string {
  const nodes = params['nodes']
  return typeof nodes === 'number' ? `${nodesLabel(nodes)} (processes)` : 'in-process node'
}

/** hello-sequence: instances/s, and p50/p99 latency, by instances in flight. */
function concurrencyChart(data: ReportData): ChartSpec {
  const chart = {
    file: 'hello-sequence-concurrency.svg',
    title: 'hello-sequence: throughput and latency by instances in flight',
    missing: 'npm run bench -- hello-sequence --concurrency 256,1024,2048',
  }
  const names: Record<string, string> = {
    instances_per_s: 'instances/s',
    latency_p50_ms: 'p50',
    latency_p99_ms: 'p99',
  }
  const used = data.figures
    .filter((f) => f.bench === 'hello-sequence' && f.metric in names)
    .filter((f) => typeof f.params['concurrency'] === 'number')
  const rows = used.map((f) => ({
    setup: setupOf(f.params),
    concurrency: f.params['concurrency'] as number,
    series: names[f.metric]!,
    value: f.value,
  }))
  return framed(data, chart, used, rows, () => {
    const levels = [...new Set(rows.map((r) => r.concurrency))].sort((a, b) => a - b)
    const x = {
      field: 'concurrency',
      type: 'quantitative',
      title: 'instances in flight',
      scale: { type: 'log', base: 2 },
      axis: { values: levels, format: 'd' },
    } as const
    return {
      config: { legend: { orient: 'bottom', direction: 'vertical' } },
      hconcat: [
        {
          width: WIDTH,
          height: HEIGHT,
          transform: [{ filter: "datum.series === 'instances/s'" }],
          mark: { type: 'line', point: true },
          encoding: {
            x,
            y: { field: 'value', type: 'quantitative', title: 'instances/s' },
            color: { field: 'setup', type: 'nominal', title: 'setup' },
          },
        },
        {
          width: WIDTH,
          height: HEIGHT,
          transform: [{ filter: "datum.series !== 'instances/s'" }],
          // no points: with them the legend of the dashes shows dots
          mark: { type: 'line', strokeWidth: 2 },
          encoding: {
            x,
            y: { field: 'value', type: 'quantitative', title: 'latency (ms)' },
            color: { field: 'setup', type: 'nominal', title: 'setup' },
            strokeDash: { field: 'series', type: 'nominal', title: 'percentile' },
          },
        },
      ],
    }
  })
}

/** Tick labels of the percentile axis, at 0, 1, 2, … nines. */
const NINES_LABELS = ['0%', '90%', '99%', '99.9%', '99.99%']

/** hello-sequence: the latency percentile curve of each load (HDR-style, the tail stretched). */
function latencyChart(data: ReportData): ChartSpec {
  const chart = {
    file: 'hello-sequence-latency.svg',
    title: 'hello-sequence: latency distribution of the instances',
    missing: 'npm run bench -- hello-sequence --concurrency 256,1024,2048',
  }
  const used = data.distributions
    .filter((d) => d.bench === 'hello-sequence')
    .filter((d) => d.metric === 'latency_ms' || d.metric === 'unloaded_latency_ms')
  const rows = used.flatMap((d) => {
    const load =
      d.metric === 'unloaded_latency_ms' ? 'one at a time' : `${String(d.params['concurrency'])} in flight`
    const setup = setupOf(d.params)
    return d.points
      .filter(([p]) => p < 100)
      .map(([p, value]) => ({ setup, load, percentile: p, nines: -Math.log10(1 - p / 100), value }))
  })
  return framed(data, chart, used, rows, () => {
    const maxNines = Math.ceil(Math.max(...rows.map((r) => r.nines)) - 1e-9)
    // one panel per setup (in-process node, 1 node process, …), two to a row
    return {
      facet: { field: 'setup', type: 'nominal', title: null, sort: null },
      columns: 2,
      spec: {
        width: WIDTH,
        height: HEIGHT,
        mark: { type: 'line', interpolate: 'step-after' },
        encoding: {
          x: {
            field: 'nines',
            type: 'quantitative',
            title: 'percentile',
            scale: { domain: [0, maxNines] },
            axis: {
              values: Array.from({ length: maxNines + 1 }, (_, i) => i),
              labelExpr: `${JSON.stringify(NINES_LABELS)}[datum.value] || ''`,
            },
          },
          y: { field: 'value', type: 'quantitative', title: 'latency (ms)', scale: { type: 'log' } },
          color: { field: 'load', type: 'nominal', title: 'load', sort: null },
        },
      },
    }
  })
}

/** hello-sequence against 1, 2, 3… node processes: instances/s by node count and load. */
function nodesChart(data: ReportData): ChartSpec {
  const chart = {
    file: 'throughput-by-nodes.svg',
    title: 'hello-sequence: throughput by node processes',
    missing: 'npm run bench -- hello-sequence --nodes 1,2,3',
  }
  const used = data.figures
    .filter((f) => f.bench === 'hello-sequence' && f.metric === 'instances_per_s')
    .filter((f) => typeof f.params['nodes'] === 'number')
  const rows = used.map((f) => ({
    nodes: nodesLabel(f.params['nodes'] as number),
    load: `${String(f.params['concurrency'])} in flight`,
    value: f.value,
  }))
  return framed(data, chart, used, rows, () => ({
    width: WIDTH,
    height: HEIGHT,
    mark: 'bar',
    encoding: {
      x: { field: 'nodes', type: 'ordinal', title: 'node processes', axis: { labelAngle: 0 } },
      xOffset: { field: 'load', type: 'nominal', sort: null },
      y: { field: 'value', type: 'quantitative', title: 'instances/s' },
      color: { field: 'load', type: 'nominal', title: 'load', sort: null },
    },
  }))
}

/** entity-signals: signals/s with commit pipelining and without. */
function pipeliningChart(data: ReportData): ChartSpec {
  const chart = {
    file: 'entity-signals-pipelining.svg',
    title: 'entity-signals: signals/s with and without commit pipelining',
    missing: 'npm run bench -- entity-signals',
  }
  const modes: Record<string, string> = {
    signals_per_s: 'with pipelining',
    signals_per_s_no_pipelining: 'without pipelining',
  }
  const used = data.figures.filter((f) => f.bench === 'entity-signals' && f.metric in modes)
  const rows = used.map((f) => ({ mode: modes[f.metric]!, value: f.value }))
  return framed(data, chart, used, rows, () => {
    const encoding = {
      x: {
        field: 'mode',
        type: 'nominal',
        title: 'commit pipelining',
        sort: Object.values(modes),
        axis: { labelAngle: 0 },
      },
      y: { field: 'value', type: 'quantitative', title: 'signals/s' },
    } as const
    return {
      width: WIDTH * 0.75,
      height: HEIGHT,
      layer: [
        {
          mark: 'bar',
          encoding: { ...encoding, color: { field: 'mode', type: 'nominal', title: 'mode', legend: null } },
        },
        {
          mark: { type: 'text', dy: -6 },
          encoding: { ...encoding, text: { field: 'value', type: 'quantitative', format: ',.0f' } },
        },
      ],
    }
  })
}

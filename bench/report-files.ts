/**
 * Where `--report` puts its files: apart from bench/report.ts so that the benchmark runner knows
 * them without loading the chart renderer (vega, vega-lite), which a run without `--report` never
 * needs and whose tens of MB of heap would weigh on every measurement's garbage collection.
 */

/** Where `--report` writes by default (relative to the working directory). */
export const DEFAULT_REPORT_DIR = 'docs/bench'

/** The file of figures beside the charts. */
export const FIGURES_FILE = 'figures.json'

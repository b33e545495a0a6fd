// The overview page: nodes, the leader, the partition map and live rates.
import { html, useEffect, useRef, useState } from '/vendor/preact-htm.js'
import uPlot from '/vendor/uplot.js'
import { DASH, api, useStream, useLoad, age, num, Problem } from './common.js'

// ---------------------------------------------------------------------------------------------
// Overview: nodes, leader, partition map, live rates

const CHARTS = [
  { title: 'steps/s and signals/s', series: ['steps', 'signals'], colors: ['#2f5d8a', '#8a5a00'] },
  {
    title: 'orchestrations/s: started, completed, failed',
    series: ['started', 'completed', 'failed'],
    colors: ['#2f5d8a', '#23784a', '#b3261e'],
  },
]

function RateChart({ spec, points }) {
  const el = useRef(null)
  const plot = useRef(null)
  useEffect(() => {
    plot.current = new uPlot(
      {
        width: 420,
        height: 160,
        title: spec.title,
        scales: { x: { time: true } },
        series: [{}, ...spec.series.map((label, i) => ({ label, stroke: spec.colors[i], width: 2 }))],
        axes: [{}, { size: 50 }],
      },
      [[], ...spec.series.map(() => [])],
      el.current,
    )
    return () => plot.current.destroy()
  }, [])
  useEffect(() => {
    // a line needs two points; with one the time axis would span years
    const shown = points.length < 2 ? [] : points
    plot.current?.setData([
      shown.map((p) => p.at / 1000),
      ...spec.series.map((k) => shown.map((p) => p.rates[k])),
    ])
  }, [points])
  return html`<div class="chart" ref=${el}></div>`
}

export function Overview() {
  const [overview, error, reload] = useLoad(() => api('/api/overview'), [])
  const [stats, setStats] = useState(null)
  const [points, setPoints] = useState([])
  useEffect(() => {
    // placement: the meta bucket, read again 3 s after each answer (never two reads at once)
    let live = true
    let timer
    const next = () => {
      timer = setTimeout(() => reload().finally(() => live && next()), 3000)
    }
    next()
    return () => {
      live = false
      clearTimeout(timer)
    }
  }, [])
  useStream(
    '/api/stream/stats',
    {
      stats: (view) => {
        setStats(view)
        if (view.rates !== null && view.at !== null)
          setPoints((ps) =>
            ps.at(-1)?.at === view.at ? ps : [...ps.slice(-119), { at: view.at, rates: view.rates }],
          )
      },
    },
    [],
  )
  if (overview === undefined)
    return html`<${Problem} error=${error} />${error ? null : html`<p class="note">Loading…</p>`}`
  const { hub, placement, now } = overview
  const view = stats ?? overview.stats
  const figures = new Map(view.partitions.map((f) => [f.p, f]))
  const rates = view.rates
  return html` <${Problem} error=${error} />
    <h2>Overview of hub ${hub.name}</h2>
    <div class="cards">
      <div class="card">
        <div class="label">partitions</div>
        <div class="value">${hub.partitions}</div>
      </div>
      <div class="card">
        <div class="label">nodes</div>
        <div class="value" data-testid="node-count">${placement.nodes.length}</div>
      </div>
      <div class="card">
        <div class="label">placement leader</div>
        <div class="value mono" data-testid="leader">${placement.leader ?? DASH}</div>
      </div>
      <div class="card">
        <div class="label">steps/s</div>
        <div class="value">${num(rates?.steps)}</div>
      </div>
      <div class="card">
        <div class="label">signals/s</div>
        <div class="value">${num(rates?.signals)}</div>
      </div>
      <div class="card">
        <div class="label">started · completed · failed /s</div>
        <div class="value">${num(rates?.started)} · ${num(rates?.completed)} · ${num(rates?.failed)}</div>
      </div>
    </div>
    <div class="charts">${CHARTS.map((spec) => html`<${RateChart} spec=${spec} points=${points} />`)}</div>
    ${view.at === null ? html`<p class="note">No node telemetry received yet (H.stats.*): rates and per-partition figures show ${DASH}.</p>` : null}
    <h3>Nodes</h3>
    <table data-testid="nodes">
      <thead>
        <tr>
          <th>node</th>
          <th>host</th>
          <th class="num">last heartbeat</th>
          <th class="num">up</th>
          <th>partitions</th>
          <th class="num">activities queued / running</th>
        </tr>
      </thead>
      <tbody>
        ${placement.nodes.map((n) => {
          const s = view.nodes.find((x) => x.node === n.id)
          return html`<tr>
            <td class="mono">${n.id}${n.id === placement.leader ? ' (leader)' : ''}</td>
            <td>${n.host || DASH}</td>
            <td class="num">${age(n.at, now)} ago</td>
            <td class="num">${age(n.started, now)}</td>
            <td>${n.partitions.length}: ${n.partitions.join(', ')}</td>
            <td class="num">${s ? `${s.activities.queued} / ${s.activities.running}` : DASH}</td>
          </tr>`
        })}
      </tbody>
    </table>
    <h3>Streams</h3>
    <table data-testid="streams">
      <thead>
        <tr>
          <th>stream</th>
          <th class="num">messages</th>
          <th class="num">bytes</th>
        </tr>
      </thead>
      <tbody>
        ${overview.streams.map(
          (st) =>
            html`<tr>
              <td class="mono">${st.stream}</td>
              <td class="num">${num(st.messages)}</td>
              <td class="num">${num(st.bytes)}</td>
            </tr>`,
        )}
      </tbody>
    </table>
    <h3>Partition map</h3>
    <table data-testid="partition-map">
      <thead>
        <tr>
          <th class="num">partition</th>
          <th>owner</th>
          <th class="num">epoch</th>
          <th class="num">mailbox backlog</th>
          <th class="num">records/s</th>
          <th class="num">last snapshot</th>
        </tr>
      </thead>
      <tbody>
        ${placement.assignments.map((a) => {
          const f = figures.get(a.p)
          return html`<tr data-partition=${a.p}>
            <td class="num">${a.p}</td>
            <td class="mono">${a.node ?? DASH}</td>
            <td class="num">${a.epoch || DASH}</td>
            <td class="num">${num(f?.backlog)}</td>
            <td class="num">${num(f?.recordsPerSec)}</td>
            <td class="num">${f?.lastSnapshotAt == null ? DASH : `${age(f.lastSnapshotAt, view.at)} ago`}</td>
          </tr>`
        })}
      </tbody>
    </table>`
}

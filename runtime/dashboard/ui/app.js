// The Basalt dashboard's UI: one ES module on preact + htm (no build step) and uPlot for the rate
// charts. Routing by URL hash: #/ overview, #/instances, #/instance/<id>, #/entities,
// #/entity/<type>/<key>, #/dead-letters. Data from the server's /api routes; live changes from
// its server-sent-event streams (/api/stream/…). A figure the server does not have shows "—".
import { html, render, useEffect, useRef, useState } from '/vendor/preact-htm.js'
import uPlot from '/vendor/uplot.js'
import { mergeListing } from './merge.js'

const DASH = '—'

// ---------------------------------------------------------------------------------------------
// helpers

/** GET or POST JSON; throws an Error carrying the server's message and status. */
async function api(path, init) {
  let res
  try {
    res = await fetch(path, init)
  } catch (err) {
    throw Object.assign(new Error(`the dashboard server is unreachable (${err.message})`), { status: 0 })
  }
  const body = await res.json().catch(() => ({}))
  if (!res.ok) throw Object.assign(new Error(body.error ?? `HTTP ${res.status}`), { status: res.status })
  return body
}

const post = (path, body) =>
  api(path, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body ?? {}),
  })

/** Subscribes to a server-sent-event stream while the component is mounted. */
function useStream(url, handlers, deps) {
  useEffect(() => {
    if (url === null) return undefined
    const source = new EventSource(url)
    for (const [event, handle] of Object.entries(handlers))
      source.addEventListener(event, (e) => handle(JSON.parse(e.data)))
    return () => source.close()
  }, deps)
}

/** Loads `load()` now and whenever deps change; `[value, error, reload]`. */
function useLoad(load, deps) {
  const [state, setState] = useState({ value: undefined, error: undefined })
  const latest = useRef({ load, n: 0 })
  latest.current.load = load
  // only the newest load's answer counts: an older one that arrives late is dropped
  const reload = () => {
    const n = ++latest.current.n
    const current = (apply) => (result) => {
      if (n === latest.current.n) setState(apply(result))
    }
    return latest.current.load().then(
      current((value) => ({ value, error: undefined })),
      current((error) => (s) => ({ value: s.value, error })),
    )
  }
  useEffect(() => {
    setState({ value: undefined, error: undefined })
    void reload()
  }, deps)
  return [state.value, state.error, reload]
}

const when = (ms) => (ms == null ? DASH : new Date(ms).toLocaleString())
const age = (ms, now = Date.now()) => {
  if (ms == null) return DASH
  const s = Math.max(0, (now - ms) / 1000)
  return s < 90 ? `${s.toFixed(1)} s` : s < 5400 ? `${Math.round(s / 60)} min` : `${(s / 3600).toFixed(1)} h`
}
const num = (v) => (v == null ? DASH : String(v))
const show = (v) => (v === undefined ? DASH : JSON.stringify(v, null, 2))

function Status({ status }) {
  return html`<span class="status ${status}" data-status=${status}>${status}</span>`
}

function Problem({ error }) {
  if (error === undefined) return null
  return html`<div class="banner" role="alert">${error.message}</div>`
}

function parseHash() {
  const raw = location.hash.replace(/^#/, '') || '/'
  const [path, query = ''] = raw.split('?')
  return {
    parts: path.split('/').filter(Boolean).map(decodeURIComponent),
    params: new URLSearchParams(query),
  }
}

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

function Overview() {
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

// ---------------------------------------------------------------------------------------------
// Instances: filters, pages, live status changes

const STATUSES = ['Pending', 'Running', 'Suspended', 'Completed', 'Failed', 'Terminated']

function matches(s, params) {
  const statuses = params.get('status')
  if (statuses && !statuses.split(',').includes(s.status)) return false
  if (params.get('name') && !s.name.startsWith(params.get('name'))) return false
  if (params.get('prefix') && !s.id.startsWith(params.get('prefix'))) return false
  const since = params.get('since')
  if (since && new Date(s.createdAt).getTime() < (/^\d+$/.test(since) ? Number(since) : Date.parse(since)))
    return false
  return true
}

// The filter forms are uncontrolled (defaultValue, keyed by the URL's query): a re-render caused by
// a live update must not reset what the user is choosing before pressing Filter.
function Instances({ params }) {
  const [pages, setPages] = useState([undefined]) // continuation tokens of the pages seen
  const types = useTypes()
  const query = new URLSearchParams(params)
  const token = pages.at(-1)
  if (token) query.set('continuation', token)
  const [page, error, reload] = useLoad(() => api(`/api/instances?${query}`), [params.toString(), token])
  const [rows, setRows] = useState([])
  // ids the live feed added to this view; a listing read before they existed lacks them
  const liveAdded = useRef(new Set())
  useEffect(
    () =>
      setRows((shown) =>
        pages.length === 1
          ? mergeListing(
              page?.instances ?? [],
              shown,
              (r) => liveAdded.current.has(r.id) && matches(r, params),
            )
          : (page?.instances ?? []),
      ),
    [page],
  )
  useStream(
    pages.length === 1 ? '/api/stream/instances' : null,
    {
      // the feed is heard everywhere now: read the listing again, changes before it included
      ready: () => void reload(),
      instance: ({ id, status }) =>
        setRows((list) => {
          const i = list.findIndex((r) => r.id === id)
          if (status === null) return i < 0 ? list : list.filter((r) => r.id !== id)
          if (i >= 0) return list.map((r) => (r.id === id ? { ...r, ...status } : r))
          if (!matches(status, params)) return list
          liveAdded.current.add(id)
          return [...list, status].sort((a, b) => (a.id < b.id ? -1 : 1))
        }),
    },
    [params.toString(), pages.length],
  )
  const submit = (e) => {
    e.preventDefault()
    const form = new FormData(e.target)
    const next = new URLSearchParams()
    for (const [k, v] of form) if (v !== '') next.set(k, k === 'since' ? new Date(v).toISOString() : v)
    setPages([undefined])
    location.hash = `#/instances?${next}`
  }
  return html` <h2>Instances ${pages.length === 1 ? html`<span class="live">● live</span>` : null}</h2>
    <form class="filters" key=${params.toString()} onSubmit=${submit}>
      <label
        >status<select name="status">
          <option value="">any</option>
          ${STATUSES.map((s) => html`<option value=${s} selected=${params.get('status') === s}>${s}</option>`)}
        </select></label
      >
      <label
        >name starts with<input name="name" defaultValue=${params.get('name') ?? ''} list="orchestrations"
      /></label>
      <datalist id="orchestrations">${types.orchestrations.map((t) => html`<option value=${t} />`)}</datalist>
      <label>id starts with<input name="prefix" defaultValue=${params.get('prefix') ?? ''} /></label>
      <label>created since<input type="datetime-local" name="since" /></label>
      <button type="submit">Filter</button>
    </form>
    <${Problem} error=${error} />
    <table data-testid="instances">
      <thead>
        <tr>
          <th>id</th>
          <th>orchestration</th>
          <th>status</th>
          <th>created</th>
          <th>updated</th>
        </tr>
      </thead>
      <tbody>
        ${rows.map(
          (s) =>
            html`<tr data-instance=${s.id}>
              <td class="mono"><a href="#/instance/${encodeURIComponent(s.id)}">${s.id}</a></td>
              <td>${s.name}</td>
              <td><${Status} status=${s.status} /></td>
              <td>${when(s.createdAt)}</td>
              <td>${when(s.lastUpdatedAt)}</td>
            </tr>`,
        )}
      </tbody>
    </table>
    ${page && rows.length === 0 ? html`<p class="note">No instances match.</p>` : null}
    <div class="pager">
      <button disabled=${pages.length === 1} onClick=${() => setPages((p) => p.slice(0, -1))}>
        ‹ Previous
      </button>
      <span class="note">page ${pages.length}</span>
      <button disabled=${!page?.continuation} onClick=${() => setPages((p) => [...p, page.continuation])}>
        Next ›
      </button>
    </div>`
}

// ---------------------------------------------------------------------------------------------
// Instance: status, values, timeline, actions

function Timeline({ rows, start }) {
  const rel = (t) => (t == null ? DASH : `+${((t - start) / 1000).toFixed(3)} s`)
  return html`<table data-testid="timeline">
    <thead>
      <tr>
        <th>at</th>
        <th>kind</th>
        <th>name</th>
        <th class="num">attempt</th>
        <th class="num">duration</th>
        <th>outcome</th>
        <th>detail</th>
      </tr>
    </thead>
    <tbody>
      ${rows.map(
        (r) =>
          html`<tr data-kind=${r.kind} data-outcome=${r.outcome ?? ''}>
            <td class="num">${rel(r.at)}</td>
            <td>${r.kind}</td>
            <td class="mono">
              ${
                r.instanceId
                  ? html`${r.name}
                      <a href="#/instance/${encodeURIComponent(r.instanceId)}">${r.instanceId}</a>`
                  : (r.name ?? '')
              }
            </td>
            <td class="num">${r.attempt ?? ''}</td>
            <td class="num">
              ${r.durationMs == null ? (r.kind === 'activity' || r.kind === 'timer' ? 'pending' : '') : `${r.durationMs} ms`}
            </td>
            <td class="outcome-${r.outcome ?? ''}">${r.outcome ?? ''}</td>
            <td class="mono">
              ${r.error ? `${r.error.name ?? 'Error'}: ${r.error.message}` : r.fireAt ? `due ${when(r.fireAt)}` : r.data !== undefined ? JSON.stringify(r.data) : r.result !== undefined ? JSON.stringify(r.result) : ''}
            </td>
          </tr>`,
      )}
    </tbody>
  </table>`
}

function Actions({ id, status, onDone }) {
  const [message, setMessage] = useState('')
  const run = (what, path, body) =>
    post(`/api/instances/${encodeURIComponent(id)}/${path}`, body).then(
      () => {
        setMessage(`${what}: done`)
        onDone()
      },
      (err) => setMessage(`${what}: ${err.message}`),
    )
  const raise = (e) => {
    e.preventDefault()
    const form = new FormData(e.target)
    let data
    try {
      data = form.get('data') === '' ? undefined : JSON.parse(form.get('data'))
    } catch {
      return setMessage('event data is not JSON')
    }
    void run(`raise ${form.get('name')}`, 'raise', { name: form.get('name'), data })
  }
  return html`<div class="actions" data-testid="actions">
    <form onSubmit=${raise} style="display:flex;gap:.4rem;align-items:center">
      <input name="name" placeholder="event name" required aria-label="event name" />
      <input name="data" placeholder='data (JSON), e.g. {"by":"ana"}' aria-label="event data" size="28" />
      <button type="submit">Raise event</button>
    </form>
    <button
      class="danger"
      onClick=${() => run('terminate', 'terminate', { reason: 'terminated from the dashboard' })}
    >
      Terminate
    </button>
    <button onClick=${() => run('suspend', 'suspend')}>Suspend</button>
    <button onClick=${() => run('resume', 'resume')}>Resume</button>
    <button
      class="danger"
      disabled=${!['Completed', 'Failed', 'Terminated'].includes(status)}
      onClick=${() => run('purge', 'purge')}
    >
      Purge
    </button>
    <span class="note" data-testid="action-result">${message}</span>
  </div>`
}

function Instance({ id, config }) {
  const [inst, error, reload] = useLoad(() => api(`/api/instances/${encodeURIComponent(id)}`), [id])
  useStream(`/api/stream/instances/${encodeURIComponent(id)}`, { status: () => void reload() }, [id])
  if (inst === undefined)
    return html`<h2 class="mono">Instance ${id}</h2>
      <${Problem} error=${error} />`
  const activities = inst.timeline.filter((r) => r.kind === 'activity')
  return html` <h2 class="mono">Instance ${inst.id} <${Status} status=${inst.status} /></h2>
    <${Problem} error=${error} />
    <div class="cards">
      <div class="card">
        <div class="label">orchestration</div>
        <div class="value">${inst.name}</div>
      </div>
      <div class="card">
        <div class="label">created</div>
        <div>${when(inst.createdAt)}</div>
      </div>
      <div class="card">
        <div class="label">updated</div>
        <div>${when(inst.lastUpdatedAt)}</div>
      </div>
      <div class="card">
        <div class="label">completed</div>
        <div>${when(inst.completedAt)}</div>
      </div>
      <div class="card">
        <div class="label">activities</div>
        <div class="value" data-testid="activity-count">${activities.length}</div>
      </div>
    </div>
    ${config.allowActions ? html`<${Actions} id=${inst.id} status=${inst.status} onDone=${reload} />` : html`<p class="note">Read-only: start the dashboard with --allow-actions to raise events, terminate, suspend, resume or purge.</p>`}
    <div class="grid2">
      <div>
        <h3>Input</h3>
        <pre data-testid="input">${show(inst.input)}</pre>
      </div>
      <div>
        <h3>${inst.error ? 'Error' : 'Output'}</h3>
        <pre data-testid=${inst.error ? 'error' : 'output'} class=${inst.error ? 'outcome-failed' : ''}>
${inst.error ? `${inst.error.name ?? 'Error'}: ${inst.error.message}${inst.error.stack ? `\n${inst.error.stack}` : ''}` : show(inst.output)}</pre>
      </div>
      <div>
        <h3>Custom status</h3>
        <pre data-testid="custom-status">${show(inst.customStatus)}</pre>
      </div>
    </div>
    <h3>History</h3>
    <${Timeline} rows=${inst.timeline} start=${new Date(inst.createdAt).getTime()} />`
}

// ---------------------------------------------------------------------------------------------
// Entities and one entity

/** The entity types and orchestration names nodes of the hub registered (for suggestions). */
function useTypes() {
  const [types] = useLoad(() => api('/api/types').catch(() => ({ entities: [], orchestrations: [] })), [])
  return types ?? { entities: [], orchestrations: [] }
}

function Entities({ params }) {
  const [pages, setPages] = useState([undefined])
  const type = params.get('type') ?? ''
  const types = useTypes()
  const query = new URLSearchParams(params)
  if (pages.at(-1)) query.set('continuation', pages.at(-1))
  const [page, error] = useLoad(
    () => (type === '' ? Promise.resolve(undefined) : api(`/api/entities?${query}`)),
    [params.toString(), pages.at(-1)],
  )
  const submit = (e) => {
    e.preventDefault()
    const next = new URLSearchParams()
    for (const [k, v] of new FormData(e.target)) if (v !== '') next.set(k, v)
    setPages([undefined])
    location.hash = `#/entities?${next}`
  }
  return html` <h2>Entities</h2>
    <form class="filters" key=${params.toString()} onSubmit=${submit}>
      <label
        >type<input name="type" defaultValue=${type} required placeholder="e.g. Counter" list="entity-types"
      /></label>
      <datalist id="entity-types">${types.entities.map((t) => html`<option value=${t} />`)}</datalist>
      <label>key starts with<input name="prefix" defaultValue=${params.get('prefix') ?? ''} /></label>
      <button type="submit">List</button>
    </form>
    <${Problem} error=${error} />
    ${
      page
        ? html`<table data-testid="entities">
              <thead>
                <tr>
                  <th>key</th>
                </tr>
              </thead>
              <tbody>
                ${page.keys.map(
                  (k) =>
                    html`<tr>
                      <td class="mono">
                        <a href="#/entity/${encodeURIComponent(type)}/${encodeURIComponent(k)}">${k}</a>
                      </td>
                    </tr>`,
                )}
              </tbody>
            </table>
            ${page.keys.length === 0 ? html`<p class="note">No entities of type ${type} match.</p>` : null}
            <div class="pager">
              <button disabled=${pages.length === 1} onClick=${() => setPages((p) => p.slice(0, -1))}>
                ‹ Previous
              </button>
              <span class="note">page ${pages.length}</span>
              <button
                disabled=${!page.continuation}
                onClick=${() => setPages((p) => [...p, page.continuation])}
              >
                Next ›
              </button>
            </div>`
        : type === ''
          ? html`<p class="note">
              Give an entity type name${types.entities.length > 0 ? ': ' : '.'}
              ${types.entities.map((t) => html`<a href="#/entities?type=${encodeURIComponent(t)}">${t}</a> `)}
            </p>`
          : null
    }`
}

function EntityView({ type, entityKey }) {
  const [info, error, reload] = useLoad(
    () => api(`/api/entities/${encodeURIComponent(type)}/${encodeURIComponent(entityKey)}`),
    [type, entityKey],
  )
  const [live, setLive] = useState({ received: false, state: undefined })
  const [failure, setFailure] = useState(undefined)
  useStream(
    `/api/stream/entities/${encodeURIComponent(type)}/${encodeURIComponent(entityKey)}`,
    {
      state: (state) => {
        setLive({ received: true, state })
        void reload() // the lock may have changed with it
      },
      failure: (f) => setFailure(new Error(f.error)),
    },
    [type, entityKey],
  )
  const state = live.received ? live.state : info?.state
  return html` <h2 class="mono">${type}@${entityKey} <span class="live">● live</span></h2>
    <${Problem} error=${error ?? failure} />
    <div class="cards">
      <div class="card">
        <div class="label">exists</div>
        <div class="value">${state === null || state === undefined ? 'no' : 'yes'}</div>
      </div>
      <div class="card">
        <div class="label">lock holder</div>
        <div class="value mono" data-testid="lock">
          ${info?.lock ? html`<a href="#/instance/${encodeURIComponent(info.lock)}">${info.lock}</a>` : info ? 'not locked' : DASH}
        </div>
      </div>
    </div>
    <h3>State</h3>
    <pre data-testid="entity-state">
${state === null || state === undefined ? DASH : JSON.stringify(state, null, 2)}</pre>
    <h3>Scheduled signals</h3>
    <${ScheduledSignals} signals=${info?.scheduled} />`
}

/** The signals scheduled for an entity and not yet due, earliest first (read with the page). */
function ScheduledSignals({ signals }) {
  if (signals === undefined) return html`<p class="note">${DASH}</p>`
  if (signals === null) return html`<p class="note">The hub's nodes do not know this entity type.</p>`
  if (signals.length === 0) return html`<p class="note" data-testid="no-scheduled">No scheduled signals.</p>`
  const now = Date.now()
  return html`<table data-testid="scheduled">
    <thead>
      <tr>
        <th class="num">due in</th>
        <th>at</th>
        <th>operation</th>
        <th>arguments</th>
      </tr>
    </thead>
    <tbody>
      ${signals.map(
        (s) =>
          html`<tr>
            <td class="num">${age(now, s.at)}</td>
            <td>${when(s.at)}</td>
            <td class="mono">${s.op}</td>
            <td class="mono">${JSON.stringify(s.args)}</td>
          </tr>`,
      )}
    </tbody>
  </table>`
}

// ---------------------------------------------------------------------------------------------
// Dead letters

function DeadLetters() {
  const [letters, error, reload] = useLoad(() => api('/api/dead-letters?limit=200'), [])
  return html` <h2>Dead letters <button onClick=${reload}>Refresh</button></h2>
    <${Problem} error=${error} />
    ${letters && letters.length === 0 ? html`<p class="note">No dead letters.</p>` : null}
    ${
      letters && letters.length > 0
        ? html`<table data-testid="dead-letters">
            <thead>
              <tr>
                <th class="num">seq</th>
                <th>time</th>
                <th>subject</th>
                <th class="num">partition</th>
                <th>reason</th>
                <th class="num">bytes</th>
                <th>preview</th>
              </tr>
            </thead>
            <tbody>
              ${letters.map(
                (d) =>
                  html`<tr>
                    <td class="num">${d.seq}</td>
                    <td>${when(Date.parse(d.time))}</td>
                    <td class="mono">${d.subject}</td>
                    <td class="num">${num(d.partition)}</td>
                    <td>${d.reason || DASH}</td>
                    <td class="num">${d.size}</td>
                    <td class="mono">${d.preview ?? '(does not decode)'}</td>
                  </tr>`,
              )}
            </tbody>
          </table>`
        : null
    }`
}

// ---------------------------------------------------------------------------------------------
// the frame

const PAGES = [
  ['', 'Overview'],
  ['instances', 'Instances'],
  ['entities', 'Entities'],
  ['dead-letters', 'Dead letters'],
]

function App() {
  const [route, setRoute] = useState(parseHash())
  const [config, configError] = useLoad(() => api('/api/config'), [])
  useEffect(() => {
    const onHash = () => setRoute(parseHash())
    addEventListener('hashchange', onHash)
    return () => removeEventListener('hashchange', onHash)
  }, [])
  const [first = '', second, third] = route.parts
  let page
  if (config === undefined) page = html`<${Problem} error=${configError} />`
  else if (first === '') page = html`<${Overview} />`
  else if (first === 'instances') page = html`<${Instances} params=${route.params} />`
  else if (first === 'instance' && second)
    page = html`<${Instance} key=${second} id=${second} config=${config} />`
  else if (first === 'entities') page = html`<${Entities} params=${route.params} />`
  else if (first === 'entity' && second && third)
    page = html`<${EntityView} key=${`${second}/${third}`} type=${second} entityKey=${third} />`
  else if (first === 'dead-letters') page = html`<${DeadLetters} />`
  else page = html`<div class="banner">No page '${location.hash}'.</div>`
  const section = first === 'instance' ? 'instances' : first === 'entity' ? 'entities' : first
  return html` <header>
      <h1>Basalt</h1>
      <nav>
        ${PAGES.map(([path, label]) => html`<a href="#/${path}" class=${section === path ? 'active' : ''}>${label}</a>`)}
      </nav>
      <span class="hub"
        >${'hub '}<b>${config?.hub ?? DASH}</b>${config?.allowActions ? ' · actions allowed' : ' · read-only'}</span
      >
    </header>
    <main>${page}</main>`
}

const root = document.getElementById('app')
root.textContent = '' // the "Loading…" placeholder
render(html`<${App} />`, root)

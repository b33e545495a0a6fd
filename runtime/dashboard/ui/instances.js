// The instances page (filters, pages, live status changes) and one instance (status, values,
// timeline, actions).
import { html, useEffect, useRef, useState } from '/vendor/preact-htm.js'
import { mergeListing } from './merge.js'
import {
  DASH,
  api,
  post,
  useStream,
  useLoad,
  when,
  show,
  showLine,
  showText,
  Status,
  Problem,
  useTypes,
  WholeValues,
} from './common.js'

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
export function Instances({ params }) {
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
            <td class="mono detail">
              ${r.error ? `${r.error.name ?? 'Error'}: ${showText(r.error.message)}` : r.fireAt ? `due ${when(r.fireAt)}` : r.data !== undefined ? showLine(r.data) : r.result !== undefined ? showLine(r.result) : ''}
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

export function Instance({ id, config }) {
  const [inst, error, reload] = useLoad(() => api(`/api/instances/${encodeURIComponent(id)}`), [id])
  // `missing` while no instance has the id (purged, or not started yet): the page then says so
  useStream(
    `/api/stream/instances/${encodeURIComponent(id)}`,
    { status: () => void reload(), missing: () => void reload() },
    [id],
  )
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
${inst.error ? `${inst.error.name ?? 'Error'}: ${showText(inst.error.message)}${inst.error.stack ? `\n${showText(inst.error.stack)}` : ''}` : show(inst.output)}</pre>
      </div>
      <div>
        <h3>Custom status</h3>
        <pre data-testid="custom-status">${show(inst.customStatus)}</pre>
      </div>
    </div>
    <${WholeValues}
      values=${[
        inst.input,
        inst.output,
        inst.customStatus,
        inst.error?.message,
        inst.error?.stack,
        ...inst.timeline.flatMap((r) => [r.data, r.result, r.error?.message]),
      ]}
      whole=${html`<code>basalt status ${inst.id}</code> and <code>basalt history ${inst.id}</code> (or${' '}
        <code>client.getStatus(id, { history: true })</code>)`}
    />
    <h3>History</h3>
    <${Timeline} rows=${inst.timeline} start=${new Date(inst.createdAt).getTime()} />`
}

// The entities page and one entity (state, lock, scheduled signals).
import { html, useState } from '/vendor/preact-htm.js'
import { DASH, api, useStream, useLoad, when, age, show, Problem, useTypes, WholeValues } from './common.js'

// ---------------------------------------------------------------------------------------------
// Entities and one entity

/** The entity types and orchestration names nodes of the hub registered (for suggestions). */
export function Entities({ params }) {
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

export function EntityView({ type, entityKey }) {
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
    <pre data-testid="entity-state">${state === null || state === undefined ? DASH : show(state)}</pre>
    <${WholeValues}
      values=${[state]}
      whole=${html`<code>basalt entity get ${type} ${entityKey}</code> (or <code>client.readEntityState</code>)`}
    />
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

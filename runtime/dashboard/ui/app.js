// The Basalt dashboard's UI: ES modules on preact + htm (no build step) and uPlot for the rate
// charts. Routing by URL hash: #/ overview, #/instances, #/instance/<id>, #/entities,
// #/entity/<type>/<key>, #/dead-letters. Data from the server's /api routes; live changes from
// its server-sent-event streams (/api/stream/…). A figure the server does not have shows "—".
import { html, render, useEffect, useState } from '/vendor/preact-htm.js'
import { DASH, api, useLoad, Problem, parseHash } from './common.js'
import { Overview } from './overview.js'
import { Instance, Instances } from './instances.js'
import { Entities, EntityView } from './entities.js'
import { DeadLetters } from './dead-letters.js'

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

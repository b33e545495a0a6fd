// Helpers of the dashboard's pages: JSON requests, server-sent-event streams, loading state,
// value formatting, the status badge, the error banner and the URL hash.
import { html, useEffect, useRef, useState } from '/vendor/preact-htm.js'

export const DASH = '—'

// ---------------------------------------------------------------------------------------------
// helpers

/** GET or POST JSON; throws an Error carrying the server's message and status. */
export async function api(path, init) {
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

// the server takes an action only with this header: a page of another site cannot send it
export const post = (path, body) =>
  api(path, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-basalt-dashboard': '1' },
    body: JSON.stringify(body ?? {}),
  })

/** Subscribes to a server-sent-event stream while the component is mounted. */
export function useStream(url, handlers, deps) {
  useEffect(() => {
    if (url === null) return undefined
    const source = new EventSource(url)
    for (const [event, handle] of Object.entries(handlers))
      source.addEventListener(event, (e) => handle(JSON.parse(e.data)))
    return () => source.close()
  }, deps)
}

/** Loads `load()` now and whenever deps change; `[value, error, reload]`. */
export function useLoad(load, deps) {
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

export const when = (ms) => (ms == null ? DASH : new Date(ms).toLocaleString())
export const age = (ms, now = Date.now()) => {
  if (ms == null) return DASH
  const s = Math.max(0, (now - ms) / 1000)
  return s < 90 ? `${s.toFixed(1)} s` : s < 5400 ? `${Math.round(s / 60)} min` : `${(s / 3600).toFixed(1)} h`
}
export const num = (v) => (v == null ? DASH : String(v))

/** Whether the server shortened this value (previews.ts): `{ $truncated, bytes, preview }`. */
export const isShortened = (v) =>
  v !== null && typeof v === 'object' && v.$truncated === true && typeof v.bytes === 'number'
/** A shortened value as text: its size, then the start of its JSON text (at most `chars` of it). */
const shortened = (v, chars = Infinity) =>
  `(${v.bytes.toLocaleString('en-US')} bytes, shortened) ${v.preview.length > chars ? `${v.preview.slice(0, chars)}…` : v.preview}`
/** A value as indented JSON (a shortened one as its size and start). */
export const show = (v) =>
  v === undefined ? DASH : isShortened(v) ? shortened(v) : JSON.stringify(v, null, 2)
/** A value as JSON on one line, as in a table cell (a shortened one as its size and a short start). */
export const showLine = (v) => (isShortened(v) ? shortened(v, 200) : JSON.stringify(v))
/** A text such as an error's message (a shortened one as its size and start). */
export const showText = (v) => (isShortened(v) ? shortened(v) : String(v ?? ''))

/**
 * Says where a value the page shows shortened can be read whole (`whole`: the command or client
 * call), when one of `values` is shortened; nothing otherwise.
 */
export function WholeValues({ values, whole }) {
  if (!values.some(isShortened)) return null
  return html`<p class="note" data-testid="shortened-note">
    Large values are shortened here (their size and the start of their JSON text); ${whole} gives them whole.
  </p>`
}

export function Status({ status }) {
  return html`<span class="status ${status}" data-status=${status}>${status}</span>`
}

export function Problem({ error }) {
  if (error === undefined) return null
  return html`<div class="banner" role="alert">${error.message}</div>`
}

export function parseHash() {
  const raw = location.hash.replace(/^#/, '') || '/'
  const [path, query = ''] = raw.split('?')
  return {
    parts: path.split('/').filter(Boolean).map(decodePart),
    params: new URLSearchParams(query),
  }
}

// A part of the hash as written when it is no valid percent-encoding (`#/instance/%E0%A4%A`, typed
// or pasted by hand): decodeURIComponent would throw, and the page would go on showing the last one.
function decodePart(part) {
  try {
    return decodeURIComponent(part)
  } catch {
    return part
  }
}

/** The entity types and orchestrations the hub knows (empty lists while unknown). */
export function useTypes() {
  const [types] = useLoad(() => api('/api/types').catch(() => ({ entities: [], orchestrations: [] })), [])
  return types ?? { entities: [], orchestrations: [] }
}

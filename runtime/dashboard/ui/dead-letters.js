// The dead-letters page.
import { html } from '/vendor/preact-htm.js'
import { DASH, api, useLoad, when, num, Problem } from './common.js'

// ---------------------------------------------------------------------------------------------
// Dead letters

export function DeadLetters() {
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

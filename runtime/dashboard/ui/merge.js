// Pure helpers of the UI (no DOM, no preact), so that a unit test can run them in Node.

/** Milliseconds of a timestamp as the API sends it (ISO string or number); 0 when absent. */
const time = (t) => (t === undefined || t === null ? 0 : new Date(t).getTime())

/**
 * The instance rows to show once a listing answered. The listing was read at some moment while the
 * live feed kept changing rows on screen, so a plain replacement could put back an older status (a
 * row seen Completed live, listed as Running) or drop a row the feed added after the read. So:
 * the listing's rows, each replaced by the row on screen when that one was updated later (same id,
 * later `lastUpdatedAt`), then the rows on screen the listing lacks for which `keep(row)` holds.
 * Sorted by id, as the listing is.
 *
 * @param {Array<{ id: string, lastUpdatedAt?: string | number }>} listed
 * @param {Array<{ id: string, lastUpdatedAt?: string | number }>} shown
 * @param {(row: { id: string }) => boolean} keep
 */
export function mergeListing(listed, shown, keep) {
  const onScreen = new Map(shown.map((r) => [r.id, r]))
  const rows = listed.map((r) => {
    const live = onScreen.get(r.id)
    return live !== undefined && time(live.lastUpdatedAt) > time(r.lastUpdatedAt) ? { ...r, ...live } : r
  })
  const listedIds = new Set(listed.map((r) => r.id))
  for (const r of shown) if (!listedIds.has(r.id) && keep(r)) rows.push(r)
  return rows.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
}

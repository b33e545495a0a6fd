// Types of merge.js (the UI's plain ES module) for the TypeScript side (its unit test).

interface Row {
  id: string
  lastUpdatedAt?: string | number
}

/** See merge.js. */
export function mergeListing<R extends Row>(listed: R[], shown: R[], keep: (row: R) => boolean): R[]

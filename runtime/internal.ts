/**
 * `basalt/internal` — engine internals for the benchmark, the CLI and the tests: raw connections,
 * hub handles and names, the codec. UNSTABLE: names and signatures change without notice and
 * without a major version; applications use the public entry (runtime/index.ts) only.
 */
export {
  DEFAULT_PARTITIONS,
  HubNames,
  closeConnection,
  connectTo,
  decode,
  deleteHub,
  encode,
  ensureHub,
  openHub,
  type Hub,
  type HubMeta,
  type NatsConnection,
} from './nats/index.ts'
export { readPlacement, type PlacementTable } from '../placement/index.ts'

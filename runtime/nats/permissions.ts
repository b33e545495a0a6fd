/**
 * The NATS subjects a Basalt node and a Basalt client of hub `H` publish and subscribe to, as
 * nats-server permission lists, derived from {@link HubNames} (the one place resources are named)
 * and from what the code actually sends (checked against a server trace; see docs/SECURITY.md and
 * test/integration/security.test.ts, which runs a node and a client with exactly these lists).
 *
 * - A node administers its hub: it creates the streams and buckets (`$JS.API.>`), appends to the
 *   commit log, writes snapshots, publishes to mailboxes and answers queries and calls.
 * - A client only sends: it publishes to mailboxes (`H.mbx.*`) and queries (`H.q.*`), stores and
 *   reads large values (`H.blob.*.*`), reads the hub's metadata, and receives replies, change
 *   messages, the nodes' telemetry samples (`H.stats.*`) and the advisory of its metadata stream
 *   created (a hub created again). It cannot write the commit log, the
 *   state bucket, the task queue or the dead letters, nor manage streams.
 *
 * Exported from `basalt` (runtime/index.ts), with {@link renderPermissions}, for operators to print
 * the blocks of their hubs. The lists assume the NATS client's default inbox prefix (`_INBOX`); a
 * connection that sets `inboxPrefix` needs that prefix in place of `_INBOX.>`.
 */
import { HubNames } from './hub.ts'

/** Subjects a NATS user may publish and subscribe to (nats-server `permissions` block). */
export interface SubjectPermissions {
  publish: string[]
  subscribe: string[]
}

/**
 * What a node of hub `hub` needs (the activity workers and `basalt` admin commands need the same),
 * with what a client receives, so that a dashboard run with it (the dead letters need it) works whole.
 *
 * @example nodePermissions('orders').publish // ['$JS.API.>', '$JS.ACK.BASALT_orders_MBX.>', …]
 */
export function nodePermissions(hub: string): SubjectPermissions {
  const names = new HubNames(hub)
  return {
    publish: [
      '$JS.API.>', // create, read, purge its streams and consumers; KV and direct gets
      ...names.streams.map((stream) => `$JS.ACK.${stream}.>`), // acks (activity tasks)
      `${hub}.>`, // mailboxes, commit log, tasks, dead letters, blobs, query, change and stats subjects
      `$KV.${names.stateBucket}.>`, // snapshots, checkpoints, timers
      `$KV.${names.metaBucket}.>`, // hub metadata, placement, heartbeats
      `${names.replyInboxPrefix}.>`, // replies to clients' calls and starts
      '_INBOX.>', // answers to queries sent with request()
      '_INBOX_bfj.>', // answers to queries sent on the lean path (fast-js.ts)
    ],
    subscribe: [
      '_INBOX.>', // replies of JetStream API calls, consumers' deliveries
      '_INBOX_bfj.>', // acknowledgements of the lean publish path
      `${hub}.q.*`, // queries to the partitions it owns
      // what a client receives, for the dashboard (`basalt dashboard` run with these to see the
      // dead letters, `Node.start({ dashboard })`) and clients made with them: replies to its
      // calls and actions, change messages for its watches, the nodes' telemetry samples, the
      // creation of the hub's metadata stream
      `${names.replyInboxPrefix}.*`,
      `${hub}.chg.*`,
      names.stats('*'),
      `$JS.EVENT.ADVISORY.STREAM.CREATED.KV_${names.metaBucket}`,
    ],
  }
}

/**
 * What a client of hub `hub` needs: send to mailboxes and queries, read the hub's metadata,
 * receive replies and change messages. Nothing that writes the commit log, the state, the task
 * queue or the dead letters, and no stream administration.
 *
 * @example clientPermissions('orders').publish // ['orders.mbx.*', 'orders.q.*', '$JS.API.INFO', …]
 */
export function clientPermissions(hub: string): SubjectPermissions {
  const names = new HubNames(hub)
  const [meta, state] = [`KV_${names.metaBucket}`, `KV_${names.stateBucket}`]
  const blobs = names.blobStream
  return {
    publish: [
      `${hub}.mbx.*`, // signals, calls, starts, raised events, control messages
      `${hub}.q.*`, // reads, listings, status and history
      names.blob('*', '*'), // chunks of values too large for one message (runtime/nats/blobs.ts)
      '$JS.API.INFO', // the JetStream account check of the NATS client
      `$JS.API.STREAM.INFO.${meta}`, // opening the metadata bucket
      `$JS.API.STREAM.INFO.${state}`, // opening the state bucket (no reads)
      `$JS.API.STREAM.MSG.GET.${meta}`, // reading the hub's partition count
      `$JS.API.DIRECT.GET.${meta}`,
      `$JS.API.DIRECT.GET.${meta}.>`,
      `$JS.API.DIRECT.GET.${blobs}`, // reading chunks of large values
      `$JS.API.STREAM.MSG.GET.${blobs}`, // the same from the stream leader, when a replica lags
    ],
    subscribe: [
      '_INBOX.>', // replies of requests (JetStream API, queries)
      '_INBOX_bfj.>', // acknowledgements of mailbox and blob publishes, answers to queries
      `${names.replyInboxPrefix}.*`, // replies to its calls and starts
      `${hub}.chg.*`, // change messages, for watches
      names.stats('*'), // the nodes' telemetry samples (runtime/metrics/stats.ts)
      `$JS.EVENT.ADVISORY.STREAM.CREATED.${meta}`, // a hub created again (runtime/client/hub-guard.ts)
    ],
  }
}

/**
 * A nats-server `permissions` block for `permissions`, indented by `indent` spaces, to paste
 * into a user entry of a server configuration.
 *
 * @example renderPermissions(clientPermissions('orders'))
 */
export function renderPermissions(permissions: SubjectPermissions, indent = 0): string {
  const pad = ' '.repeat(indent)
  const list = (subjects: string[]) => subjects.map((s) => JSON.stringify(s)).join(', ')
  return [
    `${pad}permissions: {`,
    `${pad}  publish: { allow: [${list(permissions.publish)}] }`,
    `${pad}  subscribe: { allow: [${list(permissions.subscribe)}] }`,
    `${pad}}`,
  ].join('\n')
}

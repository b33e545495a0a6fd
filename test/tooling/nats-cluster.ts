/**
 * Builder of local `nats-server` clusters (three servers by default) for the tests: each member is
 * started through {@link startNatsServer} with its own ports, `server_name` and store dir, and the
 * cluster counts as up once JetStream can place a stream on every member. Process tracking, temp
 * dirs and exit hooks are the launcher's (runtime/dev/nats-server.ts).
 *
 * @module
 */
import path from 'node:path'
import { jetstreamManager, StorageType, type JetStreamManager } from '@nats-io/jetstream'
import { connect, type NatsConnection } from '@nats-io/transport-node'
import {
  createOwnedDir,
  findNatsServer,
  freePorts,
  installHooks,
  readLogTail,
  removeOwnedDir,
  sleep,
  startNatsServer,
  type NatsServer,
  type NatsServerOptions,
} from '../../runtime/dev/nats-server.ts'

/** How long {@link startNatsCluster} waits for the JetStream cluster to elect a meta leader. */
const CLUSTER_DEADLINE_MS = 30_000

/** Thrown when a cluster's servers are up but JetStream does not become usable in time. */
export class NatsClusterNotReadyError extends Error {
  override readonly name = 'NatsClusterNotReadyError'
  /** Stable machine-readable error code. */
  readonly code = 'NATS_CLUSTER_NOT_READY'

  /**
   * @param reason what went wrong
   * @param logTails the last log lines of every server, one block per server
   */
  constructor(
    reason: string,
    readonly logTails: string,
  ) {
    super(`${reason}\n${logTails}`)
  }
}

/** Options of {@link startNatsCluster}. */
export interface NatsClusterOptions {
  /** Parent directory for the members' store dirs; a fresh temp dir (removed on dispose) when omitted. */
  storeDir?: string
  /** Cluster name, also the prefix of each member's `server_name` (default `basalt`). */
  name?: string
  /** `max_payload` in bytes for every member. */
  maxPayload?: number
  /** Enable JetStream (default true). */
  jetstream?: boolean
}

/** A running cluster of `nats-server` processes. */
export interface NatsCluster {
  /** The members, in start order. */
  readonly servers: NatsServer[]
  /** Client URLs of all members. */
  readonly urls: string[]
  /** Disposes every member and removes the parent store dir if this launcher created it. */
  dispose(): Promise<void>
}

/** Starts all members concurrently; if any fails, disposes the others and rethrows the first error. */
async function startMembers(memberOpts: NatsServerOptions[]): Promise<NatsServer[]> {
  const results = await Promise.allSettled(memberOpts.map((opts) => startNatsServer(opts)))
  const servers = results.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []))
  const failure = results.find((r): r is PromiseRejectedResult => r.status === 'rejected')
  if (failure === undefined) return servers
  await Promise.allSettled(servers.map((server) => server.dispose()))
  throw failure.reason
}

/**
 * Resolves once JetStream can place a stream with `replicas` replicas: a meta leader is elected and all
 * members have joined. Probes with `getAccountInfo()` and then an in-memory stream that is deleted at once.
 */
async function waitForJetStreamCluster(urls: string[], replicas: number, deadline: number): Promise<void> {
  let lastError: unknown = new Error('no attempt made')
  let nc: NatsConnection | undefined
  try {
    while (Date.now() < deadline) {
      try {
        nc ??= await connect({ servers: urls, timeout: 2_000 })
        const jsm = await jetstreamManager(nc, { timeout: 2_000, checkAPI: false })
        await jsm.getAccountInfo()
        await probeReplicatedStream(jsm, replicas)
        return
      } catch (error) {
        lastError = error
        await sleep(250)
      }
    }
  } finally {
    await nc?.close().catch(() => undefined)
  }
  throw lastError
}

/** Creates and deletes an R`replicas` memory stream, proving that every member takes part. */
async function probeReplicatedStream(jsm: JetStreamManager, replicas: number): Promise<void> {
  const name = `_basalt_probe_${process.pid}_${Date.now()}_${Math.floor(Math.random() * 1e9)}`
  try {
    await jsm.streams.add({
      name,
      subjects: [`_basalt.probe.${name}`],
      num_replicas: replicas,
      storage: StorageType.Memory,
    })
  } finally {
    await jsm.streams.delete(name).catch(() => false)
  }
}

/** Builds the per-member options of a cluster whose members live under `parentDir`. */
async function planMembers(
  size: number,
  parentDir: string,
  opts: NatsClusterOptions,
): Promise<NatsServerOptions[]> {
  const clusterName = opts.name ?? 'basalt'
  const ports = await freePorts(size * 2)
  const clientPorts = ports.slice(0, size)
  const routePorts = ports.slice(size)
  const routes = routePorts.map((port) => `nats-route://127.0.0.1:${port}`)
  return clientPorts.map((port, i) => ({
    storeDir: path.join(parentDir, `${clusterName}-${i + 1}`),
    port,
    name: `${clusterName}-${i + 1}`,
    jetstream: opts.jetstream ?? true,
    ...(opts.maxPayload === undefined ? {} : { maxPayload: opts.maxPayload }),
    cluster: { name: clusterName, port: routePorts[i] as number, routes },
  }))
}

/**
 * Starts `size` clustered `nats-server`s on loopback (distinct client and route ports, one `server_name`
 * and store dir each) and waits until all accept connections and JetStream can place R`size` streams
 * (30 s deadline).
 *
 * @throws {@link NatsServerStartError} when a member fails to start.
 * @throws {@link NatsClusterNotReadyError} when JetStream does not become usable in time.
 */
export async function startNatsCluster(size = 3, opts: NatsClusterOptions = {}): Promise<NatsCluster> {
  findNatsServer()
  installHooks()
  const ownsParent = opts.storeDir === undefined
  const parentDir = opts.storeDir ?? (await createOwnedDir('basalt-nats-cluster-'))
  const dispose = async (servers: NatsServer[]): Promise<void> => {
    await Promise.allSettled(servers.map((server) => server.dispose()))
    if (ownsParent) await removeOwnedDir(parentDir)
  }
  let servers: NatsServer[] = []
  try {
    servers = await startMembers(await planMembers(size, parentDir, opts))
    const urls = servers.map((server) => server.url)
    if (opts.jetstream ?? true) await waitForCluster(servers, urls, size)
    return { servers, urls, dispose: () => dispose(servers) }
  } catch (error) {
    await dispose(servers)
    throw error
  }
}

/** {@link waitForJetStreamCluster} with an error that quotes every member's log. */
async function waitForCluster(servers: NatsServer[], urls: string[], size: number): Promise<void> {
  try {
    await waitForJetStreamCluster(urls, size, Date.now() + CLUSTER_DEADLINE_MS)
  } catch (error) {
    const tails = servers.map((s) => `--- ${s.url} (${s.logFile}) ---\n${readLogTail(s.logFile)}`).join('\n')
    const reason = error instanceof Error ? error.message : String(error)
    throw new NatsClusterNotReadyError(
      `JetStream cluster of ${size} not ready after ${CLUSTER_DEADLINE_MS} ms: ${reason}`,
      tails,
    )
  }
}

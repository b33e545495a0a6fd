/**
 * `hello-sequence`: orchestrations of `--activities` synchronous activities in a row, driven by this
 * process's client — against a node in this process, or with `--nodes 1,2,3` against that many node
 * processes (`bench/cluster.ts`), each count in turn on a fresh hub; at each `--concurrency` level
 * in turn (`--concurrency 256,1024,2048`), so the throughput/latency curve shows. With `--workers 1,2`
 * the in-process node runs its partitions on that many worker threads, each count in turn, and the
 * figures add the CPU per instance of this process (node and client) and of the nats-server.
 */
import { performance } from 'node:perf_hooks'
import { Client } from '../runtime/index.ts'
import { NodeCluster } from './cluster.ts'
import { VerificationError, nodesLabel, quantile, round, type BenchContext } from './common.ts'
import { benchWorkflows, helloSequence } from './workflows.ts'

/** Partitions of a hub created without `--partitions` (the hub's default). */
const DEFAULT_PARTITIONS = 32

/** Runs `hello-sequence` (see the module comment). */
export async function runHelloSequence(ctx: BenchContext): Promise<void> {
  const counts = ctx.options.nodes
  if (counts === undefined) {
    for (const workers of ctx.options.workers ?? [undefined]) {
      const stack = await ctx.stack({
        registry: benchWorkflows,
        ...(workers === undefined ? {} : { workers }),
      })
      try {
        // commit records of the in-process node (with threads: what they last posted, 500 ms old)
        const records = async () => stack.node.stats().records
        await measureHelloSequence(ctx, stack.client, workers === undefined ? {} : { workers }, records)
      } finally {
        await stack.close()
      }
    }
    return
  }
  const partitions = ctx.options.partitions ?? DEFAULT_PARTITIONS
  for (const nodes of counts) {
    await withNodeProcesses(ctx, nodes, partitions, (client, cluster) =>
      measureHelloSequence(ctx, client, { nodes, partitions }, () => cluster.logAppends(), cluster),
    )
  }
}

/** Pause after a loaded phase, so the next phase does not share the node with its snapshot. */
const SETTLE_PAUSE_MS = 3_000

/**
 * The `hello-sequence` measurement through `client`: warm-up, then for each `--concurrency` level
 * `--instances` with that many in flight (throughput and latency, one figure set per level), then
 * 500 one at a time. `extra` goes into every figure's params; `records` counts the hub's commit
 * records so far (each timed phase reports them per instance). With the `cluster` of node
 * processes serving the hub, also where each timed phase's CPU went.
 */
async function measureHelloSequence(
  ctx: BenchContext,
  client: Client,
  extra: Record<string, unknown>,
  records: () => Promise<number>,
  cluster?: NodeCluster,
): Promise<void> {
  const { instances, concurrency: levels, activities } = ctx.options
  const label =
    extra['nodes'] === undefined ? 'hello-sequence' : `hello-sequence (${nodesLabel(Number(extra['nodes']))})`
  const one = async () => {
    const t = performance.now()
    const id = await client.start(helloSequence, activities)
    const done = await client.waitForCompletion<number>(id)
    if (done.output !== activities)
      throw new VerificationError(`instance ${id} returned ${String(done.output)}`)
    return performance.now() - t
  }
  const loaded = async (count: number, concurrency: number) => {
    const latencies: number[] = []
    let next = 0
    await Promise.all(
      Array.from({ length: Math.min(concurrency, count) }, async () => {
        while (next++ < count) latencies.push(await one())
      }),
    )
    return latencies
  }
  ctx.log(`${label}: warm-up`)
  await loaded(Math.min(2000, instances), Math.max(...levels))
  for (const concurrency of levels) {
    ctx.log(`${label}: ${instances} instances, ${concurrency} in flight`)
    const nodesCpuBefore = cluster?.cpuMs()
    const recordsBefore = await records()
    const clientCpuBefore = process.cpuUsage()
    const serverCpuBefore = ctx.serverCpuMs()
    const t0 = performance.now()
    const latencies = await loaded(instances, concurrency)
    const seconds = (performance.now() - t0) / 1000
    const clientCpu = process.cpuUsage(clientCpuBefore)
    const serverCpuAfter = ctx.serverCpuMs()
    const nodesCpuAfter = cluster?.cpuMs()
    const recordsAfter = await records()
    const params = { instances, concurrency, activities, ...extra }
    ctx.emit('instances_per_s', instances / seconds, '1/s', params)
    ctx.emit('latency_p50_ms', quantile(latencies, 0.5), 'ms', params)
    ctx.emit('latency_p99_ms', quantile(latencies, 0.99), 'ms', params)
    ctx.distribution('latency_ms', latencies, 'ms', params)
    const perInstance = (x: number) => round(x / instances, 4)
    ctx.emit('records_per_instance', perInstance(recordsAfter - recordsBefore), '1', params)
    if (cluster === undefined) {
      // node and client share this process: its CPU per instance is what the engine costs
      ctx.emit(
        'process_cpu_ms_per_instance',
        perInstance((clientCpu.user + clientCpu.system) / 1000),
        'ms',
        params,
      )
    }
    if (nodesCpuBefore !== undefined && nodesCpuAfter !== undefined) {
      // where the CPU went while the nodes ran in their own processes (the client is this process)
      ctx.emit('nodes_cpu_ms_per_instance', perInstance(nodesCpuAfter - nodesCpuBefore), 'ms', params)
      ctx.emit(
        'client_cpu_ms_per_instance',
        perInstance((clientCpu.user + clientCpu.system) / 1000),
        'ms',
        params,
      )
    }
    if (extra['workers'] !== undefined) {
      // the node runs in this process (every thread): its CPU, the client's included, and the server's
      ctx.emit(
        'process_cpu_ms_per_instance',
        perInstance((clientCpu.user + clientCpu.system) / 1000),
        'ms',
        params,
      )
      if (serverCpuBefore !== undefined && serverCpuAfter !== undefined)
        ctx.emit('server_cpu_ms_per_instance', perInstance(serverCpuAfter - serverCpuBefore), 'ms', params)
    }
    // The next level, and "unloaded" (an idle node), start after the background snapshot of this
    // phase (one state-bucket write per instance, due within the 2 s snapshot interval) is done.
    await new Promise((r) => setTimeout(r, SETTLE_PAUSE_MS))
    if (cluster === undefined) {
      // the same, counting the phase's snapshot (written mostly during the pause) as well
      const settled = process.cpuUsage(clientCpuBefore)
      ctx.emit(
        'process_cpu_ms_per_instance_settled',
        perInstance((settled.user + settled.system) / 1000),
        'ms',
        params,
      )
    }
  }
  const unloaded: number[] = []
  for (let i = 0; i < 500; i++) unloaded.push(await one())
  const unloadedParams = { instances: 500, activities, ...extra }
  ctx.emit('unloaded_p50_ms', quantile(unloaded, 0.5), 'ms', unloadedParams)
  ctx.emit('unloaded_p99_ms', quantile(unloaded, 0.99), 'ms', unloadedParams)
  ctx.distribution('unloaded_latency_ms', unloaded, 'ms', unloadedParams)
}

/**
 * Starts `count` node processes (`bench/cluster.ts`) on a fresh hub of `partitions`, waits until
 * the placement has settled on them, runs `body` with a client of this process, and stops them all.
 */
async function withNodeProcesses(
  ctx: BenchContext,
  count: number,
  partitions: number,
  body: (client: Client, cluster: NodeCluster) => Promise<void>,
): Promise<void> {
  const cluster = await NodeCluster.forBench(ctx, partitions)
  const hub = cluster.options.hub
  try {
    ctx.log(`starting ${count} node processes on hub ${hub} (${partitions} partitions)`)
    await Promise.all(Array.from({ length: count }, (_, i) => cluster.start(`n${i + 1}`)))
    await cluster.waitSettled(`${count} node processes starting`)
    const client = await Client.connect({ servers: ctx.url, hub })
    try {
      await body(client, cluster)
    } finally {
      await client.close()
    }
  } finally {
    await cluster.close()
    await ctx.dropHub(hub)
  }
}

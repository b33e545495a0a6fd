/**
 * The dashboard's HTTP server (fastify): JSON routes for each page, server-sent-event routes that
 * push what the watch streams and the telemetry subscription deliver, the action routes (refused
 * with 403 unless actions are allowed), and the UI's static files. Every request passes the
 * checks of guard.ts first: a `Host` the dashboard does not answer to, and an action without the
 * page's header or from another origin, are refused with 403 — the page's own ES modules
 * under `ui/` and preact + htm and uPlot from node_modules, so nothing comes from the internet.
 * Every JSON answer and event passes `shortenValues` (previews.ts): a value above its limit
 * travels as a placeholder with its size and the start of its JSON text.
 */
import { readFile } from 'node:fs/promises'
import { existsSync } from 'node:fs'
import { createRequire } from 'node:module'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify'
import { map, type Observable } from 'rxjs'
import {
  BadInputError,
  BasaltError,
  HubNotFoundError,
  IllegalStateError,
  InstanceNotFoundError,
  MAX_KEY_BYTES,
  UnknownEntityError,
} from '../../actors/index.ts'
import { readHubTypes, readPlacement } from '../../placement/index.ts'
import type { Client } from '../client/index.ts'
import { isTerminal } from '../instances/index.ts'
import { isStreamNotFound, isTransient, permissionViolation } from '../nats/index.ts'
import { jsonSafe, readDeadLetters } from './dead-letters.ts'
import { refuseAction, refuseHost, type HostPolicy } from './guard.ts'
import { BadParamError, int, onlyKnown, statuses, text, time } from './params.ts'
import { shortenValue, shortenValues } from './previews.ts'
import type { DashboardSource } from './source.ts'
import { timelineOf } from './timeline.ts'

/** How the server behaves (see `startDashboard`). */
export interface ServerSettings {
  allowActions: boolean
  /** The `Host` values answered (guard.ts). */
  hosts: HostPolicy
}

type Query = Record<string, string | undefined>
type Req = FastifyRequest<{ Querystring: Query; Params: Record<string, string> }>

/**
 * Builds the fastify app over `source`; the caller listens and closes. `openStreams` counts the
 * event streams browsers hold open (each one's watches end when its browser goes away).
 */
export function buildServer(
  source: DashboardSource,
  settings: ServerSettings,
): { app: FastifyInstance; openStreams: () => number } {
  const app = Fastify({
    logger: false,
    // an entity key or instance id may take MAX_KEY_BYTES bytes, each percent-encoded as three
    // characters in a path (the router's default of 100 answered such pages with 414)
    routerOptions: { maxParamLength: 3 * MAX_KEY_BYTES },
    // what the router refuses before any route runs (a malformed percent-encoding) answers like
    // the routes: `{"error": "…"}` saying what was wrong
    frameworkErrors: (err, _req, reply) => {
      void (reply as unknown as FastifyReply)
        .code(err.statusCode ?? 400)
        .type('application/json')
        .send(JSON.stringify({ error: err.message }))
    },
  })
  app.setNotFoundHandler((req, reply) => {
    void reply
      .code(404)
      .type('application/json')
      .send(JSON.stringify({ error: `no route ${req.method} ${req.url.split('?')[0]}` }))
  })
  // event streams end when the server closes, or closing would wait for the browsers to leave
  const open = new Set<EventStream>()
  app.addHook('preClose', (done) => {
    for (const s of [...open]) s.end()
    done()
  })
  /**
   * Starts an event stream. One that reads through `client` ends when the dashboard drops that
   * client (the hub was created again: the dashboard connects anew) — its watches would go quiet
   * for good, and a browser whose stream ended connects again, to the new client.
   */
  const stream = (req: FastifyRequest, reply: FastifyReply, client?: Client): EventStream => {
    const s = startStream(req, reply)
    open.add(s)
    s.onEnd(() => open.delete(s))
    if (client !== undefined) s.onEnd(source.onClientGone(client, () => s.end()))
    return s
  }
  /**
   * Streams `events` (each an event's name and data), read through `client`, until the browser
   * goes away; ends the stream when they complete (their client closed).
   */
  const pipe = (
    req: FastifyRequest,
    reply: FastifyReply,
    client: Client,
    events: Observable<[string, unknown]>,
  ) => {
    const s = stream(req, reply, client)
    const sub = events.subscribe({
      next: ([event, data]) => s.send(event, data),
      error: (err: unknown) => s.send('failure', { error: failureStatus(err, source.options.hub).message }),
      complete: () => s.end(),
    })
    s.onEnd(() => sub.unsubscribe())
  }
  app.setErrorHandler((err, _req, reply) => {
    const { status, message } = failureStatus(err, source.options.hub)
    void reply
      .code(status)
      .type('application/json')
      .send(JSON.stringify({ error: message }))
  })
  // large values as placeholders (previews.ts): the CLI and the client give them whole
  const json = (reply: FastifyReply, value: unknown) =>
    reply.type('application/json').send(JSON.stringify(shortenValues(value), jsonSafe))

  // ---- DNS rebinding and cross-site requests (guard.ts): before any route, unknown ones included
  app.addHook('onRequest', async (req, reply) => {
    const refused =
      refuseHost(req.headers.host, settings.hosts) ??
      (req.method === 'GET' || req.method === 'HEAD' ? undefined : refuseAction(req.headers, settings.hosts))
    if (refused !== undefined) return reply.code(403).type('application/json').send({ error: refused })
    return undefined
  })

  // ---- pages' data
  app.get('/api/config', async () => ({ hub: source.options.hub, allowActions: settings.allowActions }))
  app.get('/api/overview', async (_req, reply) => {
    const client = await source.client()
    const hub = client.hub
    const placement = await readPlacement(hub.metaKv, hub.jsm)
    // the hub's streams as `basalt hub info` lists them, blobs included (one that cannot be read
    // shows null)
    const streams = await Promise.all(
      hub.names.streams.map(async (stream) => {
        const info = await hub.jsm.streams.info(stream).catch(() => null)
        return { stream, messages: info?.state.messages ?? null, bytes: info?.state.bytes ?? null }
      }),
    )
    return json(reply, {
      streams,
      hub: {
        name: hub.names.hub,
        partitions: hub.meta.partitions,
        replicas: hub.meta.replicas,
        created: hub.meta.created,
      },
      allowActions: settings.allowActions,
      now: Date.now(),
      placement,
      stats: source.stats.view(),
    })
  })
  app.get('/api/types', async (_req, reply) => {
    // every registry name a node of the hub ever published (placement's meta key `types`)
    const list = (await readHubTypes((await source.client()).hub.metaKv)) ?? []
    const of = (prefix: string) => list.filter((n) => n.startsWith(prefix)).map((n) => n.slice(prefix.length))
    // (`f:` names are wire features of node versions, not types: listed apart)
    return json(reply, {
      entities: of('e:'),
      orchestrations: of('o:'),
      activities: of('a:'),
      features: of('f:'),
    })
  })
  app.get('/api/instances', async (req: Req, reply) => {
    const q = req.query
    onlyKnown(q, ['status', 'name', 'prefix', 'since', 'continuation', 'pageSize'])
    const query = {
      ...optional('statuses', statuses(q, 'status')),
      ...optional('namePrefix', text(q, 'name')),
      ...optional('idPrefix', text(q, 'prefix')),
      ...optional('createdFrom', time(q, 'since')),
      ...optional('continuation', text(q, 'continuation')),
      pageSize: int(q, 'pageSize', 1, 1000, 50),
    }
    return json(reply, await (await source.client()).listInstances(query))
  })
  app.get('/api/instances/:id', async (req: Req, reply) => {
    const id = req.params.id!
    const status = await (await source.client()).getStatus(id, { history: true })
    if (status === undefined) return reply.code(404).send({ error: instanceMissing(id) })
    return json(reply, { ...status, timeline: timelineOf(status.history ?? []) })
  })
  app.get('/api/entities', async (req: Req, reply) => {
    onlyKnown(req.query, ['type', 'prefix', 'continuation', 'pageSize'])
    const type = text(req.query, 'type')
    if (type === undefined) throw new BadParamError('type', 'give the entity type name')
    const page = await (
      await source.client()
    ).listEntities({
      type,
      ...optional('keyPrefix', text(req.query, 'prefix')),
      ...optional('continuation', text(req.query, 'continuation')),
      pageSize: int(req.query, 'pageSize', 1, 1000, 50),
    })
    return json(reply, page)
  })
  app.get('/api/entities/:type/:key', async (req: Req, reply) => {
    const { type, key } = req.params as { type: string; key: string }
    const client = await source.client()
    const [state, lock, scheduled] = await Promise.all([
      client.readEntityState(type, key),
      client.getLock(type, key),
      // a type the nodes do not know has no scheduled signals to show (null), not a failed page
      client
        .scheduledSignals(type, key)
        .catch((err: unknown) => (err instanceof UnknownEntityError ? null : Promise.reject(err))),
    ])
    return json(reply, { type, key, ...state, lock, scheduled })
  })
  app.get('/api/dead-letters', async (req: Req, reply) => {
    onlyKnown(req.query, ['from', 'limit'])
    const client = await source.client()
    const from = int(req.query, 'from', 1, Number.MAX_SAFE_INTEGER, 1)
    return json(reply, await readDeadLetters(client.hub, from, int(req.query, 'limit', 1, 500, 100)))
  })

  // ---- live streams
  app.get('/api/stream/stats', (req, reply) => {
    // (the samples come to the dashboard, whichever client it has: this stream outlives a client)
    const s = stream(req, reply)
    const push = () => s.send('stats', source.stats.view())
    push()
    s.onEnd(source.onStats(push))
  })
  app.get('/api/stream/instances', async (req, reply) => {
    const client = await source.client() // connects the feed; fails as JSON while NATS is down
    const s = stream(req, reply, client)
    const { off, ready } = source.onInstanceChange((change) => s.send('instance', change))
    s.onEnd(off)
    // the page reads its listing again then: nothing that changed before the feed was heard is lost
    void ready.then(() => s.send('ready', {}))
  })
  app.get('/api/stream/instances/:id', async (req: Req, reply) => {
    const id = req.params.id!
    const client = await source.client()
    // while no instance has the id (not started yet, or purged), `missing` with the body of the
    // 404 of /api/instances/:id; the watch goes on, and an instance started under the id later
    // arrives as `status` (the Instance page waits for it)
    const events = client
      .watchStatus(id)
      .pipe(
        map((status): [string, unknown] =>
          status === undefined ? ['missing', { error: instanceMissing(id) }] : ['status', status],
        ),
      )
    pipe(req, reply, client, events)
  })
  app.get('/api/stream/entities/:type/:key', async (req: Req, reply) => {
    const { type, key } = req.params as { type: string; key: string }
    const client = await source.client()
    // the event is the state itself: shortened as one value
    pipe(
      req,
      reply,
      client,
      client
        .watchEntity(type, key)
        .pipe(map((state: unknown): [string, unknown] => ['state', shortenValue(state)])),
    )
  })

  // ---- actions
  const action = (name: string, run: (id: string, body: Record<string, unknown>) => Promise<void>) =>
    app.post(`/api/instances/:id/${name}`, async (req: Req, reply) => {
      if (!settings.allowActions) {
        return reply.code(403).send({
          error: `action '${name}' refused: start the dashboard with --allow-actions to allow actions`,
        })
      }
      const body = (req.body ?? {}) as Record<string, unknown>
      await run(req.params.id!, body)
      return { ok: true }
    })
  action('raise', async (id, body) => {
    if (typeof body.name !== 'string' || body.name === '')
      throw new BadParamError('name', 'give the event name', 'body field')
    const client = await source.client()
    await client.raiseEvent(id, body.name, body.data).catch(async (err: unknown) => {
      throw await conflictIfEnded(client, id, err)
    })
  })
  action('terminate', async (id, body) =>
    (await source.client()).terminate(id, typeof body.reason === 'string' ? body.reason : undefined),
  )
  action('suspend', async (id) => (await source.client()).suspend(id))
  action('resume', async (id) => (await source.client()).resume(id))
  action('purge', async (id) => (await source.client()).purge(id))

  // ---- the UI
  const files = staticFiles()
  app.get('/', (_req, reply) => sendFile(reply, files.ui('index.html')))
  app.get('/ui/:file', (req: Req, reply) => {
    const file = req.params.file!
    if (!/^[\w-]+\.(js|css|html)$/.test(file)) return reply.code(404).send({ error: `no file '${file}'` })
    return sendFile(reply, files.ui(file))
  })
  app.get('/vendor/preact-htm.js', (_req, reply) => sendFile(reply, files.preactHtm))
  app.get('/vendor/uplot.js', (_req, reply) => sendFile(reply, files.uplotJs))
  app.get('/vendor/uplot.css', (_req, reply) => sendFile(reply, files.uplotCss))
  return { app, openStreams: () => open.size }
}

/** What the dashboard says of an id no instance has: a 404's error, and an event stream's `missing`. */
function instanceMissing(id: string): string {
  return `instance '${id}' does not exist`
}

/**
 * What a raise's refusal means: a node refuses an event for an instance that ended with a
 * `BadInputError` (`cannot raise event 'approve': instance 'o1' is Completed`, what the client
 * documents), but to the page that is the instance's state refusing it, as terminating a
 * Terminated instance is: a conflict (409), told apart by the instance's status. Anything else
 * stays what it was.
 */
async function conflictIfEnded(client: Client, id: string, err: unknown): Promise<unknown> {
  if (!(err instanceof BadInputError) || err instanceof InstanceNotFoundError) return err
  const status = await client.getStatus(id).catch(() => undefined)
  if (status === undefined || !isTerminal(status.status)) return err
  return new IllegalStateError(err.message, { cause: err })
}

/** `{ [name]: value }`, or nothing when value is undefined (for exactOptionalPropertyTypes). */
function optional<K extends string, V>(name: K, value: V | undefined): { [k in K]?: V } {
  return (value === undefined ? {} : { [name]: value }) as { [k in K]?: V }
}

/** An open server-sent-event response (see {@link startStream}). */
interface EventStream {
  /** Sends one event (nothing once the stream ended). */
  send(event: string, data: unknown): void
  /** Ends the response; the browser's EventSource connects again (after the `retry` it was sent). */
  end(): void
  /** Runs `fn` once the stream ends, by {@link end} or by the browser going away (at once if it has). */
  onEnd(fn: () => void): void
}

/** How long a browser whose event stream ended waits before it connects again, in ms. */
const STREAM_RETRY_MS = 1000

/** Starts a server-sent-event response. */
function startStream(req: FastifyRequest, reply: FastifyReply): EventStream {
  reply.hijack()
  const res = reply.raw
  res.writeHead(200, {
    'content-type': 'text/event-stream',
    'cache-control': 'no-cache',
    connection: 'keep-alive',
  })
  res.write(`: connected\nretry: ${STREAM_RETRY_MS}\n\n`)
  const ping = setInterval(() => res.write(': ping\n\n'), 15_000)
  const cleanups: Array<() => void> = []
  let ended = false
  const finish = () => {
    if (ended) return
    ended = true
    clearInterval(ping)
    for (const fn of cleanups.splice(0)) fn()
  }
  req.raw.on('close', finish)
  return {
    send: (event, data) => {
      if (!ended && !res.writableEnded)
        res.write(`event: ${event}\ndata: ${JSON.stringify(shortenValues(data ?? null), jsonSafe)}\n\n`)
    },
    end: () => {
      if (!res.writableEnded) res.end()
      finish()
    },
    onEnd: (fn) => {
      if (ended) fn()
      else cleanups.push(fn)
    },
  }
}

/** The HTTP status and message of an error met while showing `hub`. */
export function failureStatus(err: unknown, hub: string): { status: number; message: string } {
  if (err instanceof BadParamError) return { status: 400, message: err.message }
  // a stream of the hub is gone: the hub was deleted while the page showed it
  if (isStreamNotFound(err))
    return { status: 503, message: `hub '${hub}' was deleted: start a node on it to create it again` }
  if (err instanceof HubNotFoundError) return { status: 503, message: err.message }
  // the dashboard's own NATS user may not do what the page asked (dead letters: node permissions)
  const refused = permissionViolation(err)
  if (refused !== undefined)
    return {
      status: 403,
      message:
        `the dashboard's NATS user may not ${refused.operation} to ${refused.subject}: ` +
        "run the dashboard with the node's permissions to see this (docs/SECURITY.md)",
    }
  // (a subclass of BadInputError first: InstanceNotFoundError has its code)
  if (err instanceof InstanceNotFoundError) return { status: 404, message: err.message }
  if (err instanceof BasaltError) {
    // a name that no node registers is a resource that does not exist; a request that the
    // instance's state refuses (terminating a Terminated instance) conflicts with it
    if (err.code === 'UNKNOWN_ENTITY' || err.code === 'UNKNOWN_OPERATION')
      return { status: 404, message: err.message }
    if (err.code === 'ILLEGAL_STATE') return { status: 409, message: err.message }
    if (err.code === 'BAD_INPUT') return { status: 400, message: err.message }
    // an event's data over what a message (or the events held for a suspended instance) may hold
    if (err.code === 'PAYLOAD_TOO_LARGE') return { status: 413, message: err.message }
    if (err.code === 'CONNECTION' || err.code === 'TIMEOUT' || err.code === 'PARTITION_UNAVAILABLE')
      return { status: 503, message: `NATS is unreachable or the hub does not answer: ${err.message}` }
    // the server refuses the dashboard's credentials (revoked, or changed): it cannot serve the hub
    if (err.code === 'AUTHORIZATION') return { status: 503, message: err.message }
  }
  // the NATS client's own timeouts and no-responders: the server is gone or the hub does not answer
  if (isTransient(err) || (err as { name?: string })?.name === 'ConnectionError')
    return {
      status: 503,
      message: `NATS is unreachable or the hub does not answer: ${(err as Error).message}`,
    }
  const e = err as { statusCode?: number; message?: string }
  if (typeof e.statusCode === 'number' && e.statusCode < 500)
    return { status: e.statusCode, message: e.message ?? 'bad request' }
  return { status: 500, message: e?.message ?? String(err) }
}

/** Where the UI's files are: `ui/` beside the sources, or (built package) under runtime/dashboard/ui. */
function staticFiles() {
  const here = path.dirname(fileURLToPath(import.meta.url))
  const candidates = [path.join(here, 'ui'), path.resolve(here, '../../../runtime/dashboard/ui')]
  const uiDir = candidates.find((dir) => existsSync(path.join(dir, 'index.html')))
  if (uiDir === undefined)
    throw new Error(`dashboard UI files not found (looked in ${candidates.join(', ')})`)
  const require = createRequire(import.meta.url)
  const uplotDir = path.dirname(require.resolve('uplot'))
  return {
    ui: (file: string) => path.join(uiDir, file),
    preactHtm: path.join(path.dirname(require.resolve('htm/preact')), 'standalone.module.js'),
    uplotJs: path.join(uplotDir, 'uPlot.esm.js'),
    uplotCss: path.join(uplotDir, 'uPlot.min.css'),
  }
}

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
}

async function sendFile(reply: FastifyReply, file: string): Promise<void> {
  let body: Buffer
  try {
    body = await readFile(file)
  } catch {
    return reply.code(404).send({ error: `no file '${path.basename(file)}'` })
  }
  return reply.type(TYPES[path.extname(file)] ?? 'application/octet-stream').send(body)
}

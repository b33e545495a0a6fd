/**
 * The `basalt` command line, on commander: every command, its arguments and options, declared in
 * one place. Implementations load lazily (each command's module is imported when it runs) so that
 * `basalt --help` stays instant. Exit codes: 0 done, 1 the work failed, 2 the command line is
 * wrong; every error is one line on stderr, `basalt <command>: <what happened and what to do>`.
 */
import { existsSync, readFileSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { Command, CommanderError, Option } from 'commander'
import { isTransient, permissionViolation } from '../nats/index.ts'
import { AuthorizationError, BasaltError } from '../../actors/index.ts'
import { describeError, intArg, jsonArg, portArg, timeArg, UsageError } from './args.ts'
import { addConnectionOptions } from './connection.ts'
import { printable } from './output.ts'
import { MAX_PARTITIONS } from '../nats/index.ts'
import { LOG_LEVELS } from '../util/index.ts'

/** JetStream keeps at most 5 copies of a stream. */
const MAX_REPLICAS = 5

/** Adds the connection options and `--json` to a command that talks to a hub. */
function hubCommand(command: Command): Command {
  return addConnectionOptions(command).option('--json', 'print JSON for scripts instead of text')
}

/**
 * Builds the `basalt` program. Each action resolves with the exit code, handed to `setCode`.
 *
 * @example buildProgram((code) => (process.exitCode = code)).parseAsync(process.argv)
 */
export function buildProgram(setCode: (code: number) => void): Command {
  const program = new Command('basalt')
    .description('Durable functions and durable entities on NATS JetStream')
    .version(packageVersion(), '-V, --version', 'print the version')
    .helpOption('-h, --help', 'print help')
    .addHelpCommand('help [command]', 'print help for a command')
    .showSuggestionAfterError(true)
  const run = (action: () => Promise<number>) => async () => setCode(await action())

  program.commandsGroup('Running:')
  program
    .command('dev')
    .description('run an embedded nats-server (data under .basalt/) and one node, until Ctrl-C')
    .option('--load <module>', 'registry module to serve (default: the examples)')
    .addOption(new Option('--hub <name>', 'hub name').env('BASALT_HUB').default('dev'))
    .option('--port <port>', 'nats-server client port', portArg(), 4222)
    .option('--data <dir>', 'directory for the server data', '.basalt')
    .option('--partitions <n>', 'partition count of a new hub (default 32)', intArg(1, MAX_PARTITIONS))
    .option('--dashboard-port <port>', 'port of the web dashboard (0: any free one)', portArg(0), 8233)
    .option('--no-dashboard', 'do not serve the web dashboard')
    .option('--allow-actions', 'allow raise event, terminate, suspend, resume and purge from the dashboard')
    .option(
      '--allow-host <name>',
      'another host name the dashboard may be reached by (repeatable)',
      allowHost,
    )
    .action((flags) => run(async () => (await import('./dev-command.ts')).runDevCommand(flags))())
  addConnectionOptions(
    program
      .command('node')
      .description(
        'run a node serving the registry a module exports (`registry` or default), until SIGTERM/SIGINT',
      )
      .option('--load <module>', 'registry module: a path or a package name')
      .option('--node-id <id>', 'node id (default: generated)')
      .option('--partitions <n>', 'partition count of a new hub (default 32)', intArg(1, MAX_PARTITIONS))
      .option('--replicas <n>', 'stream replicas of a new hub (default 1)', intArg(1, MAX_REPLICAS))
      .option('--heartbeat-ms <ms>', 'heartbeat interval', intArg())
      .option('--lease-ms <ms>', 'how long a silent node keeps its partitions', intArg())
      .option('--activity-concurrency <n>', 'activities run at once (per worker thread)', intArg())
      .option(
        '--activity-timeout-ms <ms>',
        'per-attempt timeout of activities without their own timeoutMs (default 300000)',
        intArg(1),
      )
      .option(
        '--workers <n>',
        'worker threads running the partitions (default: the number of cores)',
        intArg(),
      )
      .option(
        '--cache-size <n>',
        'entity states and instances kept in memory, each, over the node (default 100000)',
        intArg(0),
      )
      .option(
        '--snapshot-interval-ms <ms>',
        'longest time between snapshots of a partition (default 2000)',
        intArg(1),
      )
      .option(
        '--stream-trim-interval-ms <ms>',
        "how often the hub's mailbox and log streams are cut whole from below (default 30000 on one " +
          'server, 0 on a replicated hub; 0: one server purges per partition, a replicated hub keeps all; ' +
          'a replicated hub is cut only through nats-server 2.9.18 or later)',
        intArg(0),
      )
      .option(
        '--hang-timeout-ms <ms>',
        'terminate a partition thread whose event loop does not answer this long (default 30000, 0: never)',
        intArg(0),
      )
      .option(
        '--metrics-port <port>',
        'serve Prometheus metrics on GET /metrics at this port (0: any free one, printed)',
        portArg(0),
      )
      .option('--metrics-host <host>', 'interface of the metrics endpoint (default 127.0.0.1)')
      .addOption(
        new Option('--log-level <level>', 'least severe log lines written to stderr (default info)').choices(
          LOG_LEVELS,
        ),
      ),
  ).action((flags) => run(async () => (await import('./node-command.ts')).runNodeCommand(flags))())
  program
    .command('demo')
    .description('run the examples on hub "demo" ($NATS_URL, else an embedded nats-server)')
    .option('--serve', 'keep serving after the examples ran')
    .action((flags: { serve?: boolean }) =>
      run(async () => (await import('../../examples/demo.ts')).runDemo({ serve: flags.serve === true }))(),
    )

  program.commandsGroup('Instances:')
  const instances = () => import('./instance-commands.ts')
  hubCommand(program.command('start').description('start an orchestration by name; prints its id'))
    .argument('<name>', 'orchestration name')
    .option('--input <json>', 'input, as JSON', jsonArg)
    .option('--id <id>', 'instance id (default: a fresh UUID)')
    .action((name: string, flags) => run(async () => (await instances()).startCommand(name, flags))())
  hubCommand(program.command('status').description("print an instance's status, input, output and error"))
    .argument('<id>', 'instance id')
    .action((id: string, flags) => run(async () => (await instances()).statusCommand(id, flags))())
  hubCommand(program.command('history').description("print an instance's history, one event a line"))
    .argument('<id>', 'instance id')
    .action((id: string, flags) => run(async () => (await instances()).historyCommand(id, flags))())
  hubCommand(program.command('list').description('list instances, sorted by id'))
    .option('--status <statuses>', 'only these statuses (comma-separated, e.g. Running,Failed)')
    .option('--name <prefix>', 'only orchestrations whose name starts so')
    .option('--prefix <prefix>', 'only ids that start so')
    .option('--since <time>', 'only created at or after: ISO date, ms, or an age such as 2h', (t) =>
      timeArg(t),
    )
    .option('--limit <n>', 'at most this many (default 100)', intArg())
    .option('--continue <token>', 'the next ones after an earlier list that printed this token')
    .action((flags) => run(async () => (await instances()).listCommand(flags))())
  hubCommand(
    program.command('wait').description('wait until an instance ends; exit 0 if it completed, else 1'),
  )
    .argument('<id>', 'instance id')
    .option('--timeout <ms>', 'give up after (default 60000)', intArg())
    .action((id: string, flags) => run(async () => (await instances()).waitCommand(id, flags))())
  hubCommand(program.command('raise').description('raise an external event on an instance'))
    .argument('<id>', 'instance id')
    .argument('<event>', 'event name')
    .option('--data <json>', 'event data, as JSON', jsonArg)
    .action((id: string, event: string, flags) =>
      run(async () => (await instances()).controlCommand('raise', id, { ...flags, event }))(),
    )
  hubCommand(program.command('terminate').description('terminate a running instance'))
    .argument('<id>', 'instance id')
    .option('--reason <text>', 'why, recorded as its error')
    .action((id: string, flags) =>
      run(async () => (await instances()).controlCommand('terminate', id, flags))(),
    )
  for (const [action, what] of [
    ['suspend', 'suspend a running instance (events wait until resume)'],
    ['resume', 'resume a suspended instance'],
  ] as const) {
    hubCommand(program.command(action).description(what))
      .argument('<id>', 'instance id')
      .action((id: string, flags) => run(async () => (await instances()).controlCommand(action, id, flags))())
  }
  hubCommand(
    program.command('purge').description('remove a finished instance, or all matching --status and --before'),
  )
    .argument('[id]', 'instance id')
    .option('--status <statuses>', 'bulk: Completed, Failed and/or Terminated (comma-separated)')
    .option('--before <time>', 'bulk: created before: ISO date, ms, or an age such as 7d', (t) => timeArg(t))
    .action((id: string | undefined, flags) =>
      run(async () => {
        const m = await instances()
        if (id === undefined) return m.bulkPurgeCommand(flags)
        if (flags.status !== undefined || flags.before !== undefined) {
          throw new UsageError('give either an instance id or --status and --before, not both')
        }
        return m.controlCommand('purge', id, flags)
      })(),
    )

  program.commandsGroup('Entities and hub:')
  const entity = program
    .command('entity')
    .description('read, list, signal, call or unlock entities by type name')
  const entities = () => import('./entity-commands.ts')
  hubCommand(entity.command('get').description("print an entity's state as JSON"))
    .argument('<type>', 'entity type name')
    .argument('<key>', 'entity key')
    .action((type: string, key: string, flags) =>
      run(async () => (await entities()).entityGetCommand(type, key, flags))(),
    )
  hubCommand(entity.command('list').description('list the keys of an entity type, sorted'))
    .argument('<type>', 'entity type name')
    .option('--prefix <prefix>', 'only keys that start so')
    .option('--limit <n>', 'at most this many (default 1000)', intArg())
    .option('--continue <token>', 'the next ones after an earlier list that printed this token')
    .action((type: string, flags) => run(async () => (await entities()).entityListCommand(type, flags))())
  for (const mode of ['signal', 'call'] as const) {
    hubCommand(
      entity
        .command(mode)
        .description(
          mode === 'signal'
            ? 'send an operation one-way (a type or operation no node of the hub registers is refused)'
            : 'run an operation and print its result',
        ),
    )
      .argument('<type>', 'entity type name')
      .argument('<key>', 'entity key')
      .argument('<op>', 'operation name')
      .option('--args <json>', 'arguments: a JSON array, or one JSON value', jsonArg)
      .action((type: string, key: string, op: string, flags) =>
        run(async () => (await entities()).entityOpCommand(mode, type, key, op, flags))(),
      )
  }
  hubCommand(entity.command('unlock').description("release an entity's lock whoever holds it (with --yes)"))
    .argument('<type>', 'entity type name')
    .argument('<key>', 'entity key')
    .option('--yes', 'really release it')
    .action((type: string, key: string, flags) =>
      run(async () => (await entities()).entityUnlockCommand(type, key, flags))(),
    )

  const hub = program.command('hub').description('create, describe or delete a hub')
  const hubs = () => import('./hub-commands.ts')
  hubCommand(hub.command('create').description('create a hub (or check an existing one)'))
    .option('--partitions <n>', 'partition count, fixed for good', intArg(1, MAX_PARTITIONS))
    .option(
      '--replicas <n>',
      'stream and bucket replicas (3 on a NATS cluster; default 1)',
      intArg(1, MAX_REPLICAS),
    )
    .action((flags) => run(async () => (await hubs()).hubCreateCommand(flags))())
  hubCommand(
    hub.command('info').description('partitions, streams, backlog per partition, dead letters'),
  ).action((flags) => run(async () => (await hubs()).hubInfoCommand(flags))())
  hubCommand(hub.command('delete').description('delete every stream and bucket of a hub (with --yes)'))
    .option('--yes', 'really delete it')
    .option('--force', 'delete it even while nodes run on it')
    .action((flags) => run(async () => (await hubs()).hubDeleteCommand(flags))())

  const dlq = program.command('dlq').description("list, show, replay or purge a hub's dead letters")
  const dead = () => import('./dlq-commands.ts')
  hubCommand(dlq.command('list').description('one line per dead letter, oldest first'))
    .option('--limit <n>', 'at most this many (default 1000)', intArg())
    .action((flags) => run(async () => (await dead()).dlqListCommand(flags))())
  hubCommand(dlq.command('show').description("a dead letter's headers and content"))
    .argument('<seq>', 'dead letter sequence (see dlq list)', intArg())
    .action((seq: number, flags) => run(async () => (await dead()).dlqShowCommand(seq, flags))())
  hubCommand(
    dlq
      .command('replay')
      .description('send a dead letter back to its mailbox, or with --all every one (or those matching)'),
  )
    .argument('[seq]', 'dead letter sequence (see dlq list)', intArg())
    .option('--all', 'replay every dead letter stored now (narrowed by --partition, --reason)')
    .option('--partition <p>', "only the dead letters of this partition (their header's)", intArg(0))
    .option('--reason <text>', 'only the dead letters whose reason contains this text')
    .action((seq: number | undefined, flags) =>
      run(async () => (await dead()).dlqReplayCommand(seq, flags))(),
    )
  hubCommand(dlq.command('purge').description('remove every dead letter (with --yes)'))
    .option('--yes', 'really remove them')
    .action((flags) => run(async () => (await dead()).dlqPurgeCommand(flags))())

  addConnectionOptions(
    program
      .command('dashboard')
      .description("serve a hub's web dashboard (read-only unless --allow-actions), until Ctrl-C")
      .option('--port <port>', 'HTTP port', portArg(0), 8233)
      .option('--host <host>', 'interface to bind (127.0.0.1: this machine only)', '127.0.0.1')
      .option('--allow-actions', 'allow raise event, terminate, suspend, resume and purge from the page')
      .option(
        '--allow-host <name>',
        'another host name the page may be reached by, e.g. a DNS name or a proxy (repeatable; * for any)',
        allowHost,
      ),
  ).action((flags) => run(async () => (await import('./dashboard-command.ts')).runDashboardCommand(flags))())

  hubCommand(
    program.command('placement').description("print a hub's partition assignments, its nodes and its leader"),
  ).action((flags) => run(async () => (await import('./placement-command.ts')).runPlacementCommand(flags))())

  configureErrors(program)
  return program
}

/** Commander's collector for `--allow-host NAME`, repeatable: every name given, in order. */
function allowHost(name: string, names: string[] | undefined): string[] {
  return [...(names ?? []), name]
}

/** `basalt entity get` for the `get` command under `entity`. */
function commandPath(command: Command): string {
  const names: string[] = []
  for (let c: Command | null = command; c !== null; c = c.parent) names.unshift(c.name())
  return names.join(' ')
}

/** Every command reports commander's usage errors as one line naming it, with where to get help. */
function configureErrors(command: Command): void {
  const name = commandPath(command)
  command.exitOverride()
  command.configureOutput({
    outputError: (text, write) =>
      write(`${name}: ${oneLine(text.replace(/^error: /, ''))} (see '${name} --help')\n`),
  })
  for (const sub of command.commands) configureErrors(sub)
}

/** Text with its line breaks folded into spaces. */
function oneLine(text: string): string {
  return text.trim().replace(/\s*\n\s*/g, ' ')
}

/**
 * Runs the command line `argv` (without the node and script paths) and resolves with the exit
 * code: 0 when the command did its work (or printed help or the version), 2 when the command line
 * is wrong (unknown command or option, a bad value, a {@link UsageError}), 1 when the work failed;
 * errors are printed as one line on stderr.
 *
 * @example process.exitCode = await main(process.argv.slice(2))
 */
export async function main(argv: string[]): Promise<number> {
  let code = 0
  let current = 'basalt'
  const program = buildProgram((c) => (code = c))
  program.hook('preAction', (_root, action) => {
    current = commandPath(action)
  })
  try {
    const args = argv.length === 0 ? ['--help'] : (helpAsFlag(program, argv) ?? argv)
    await program.parseAsync(args, { from: 'user' })
    return code
  } catch (err) {
    // (one line, and a message quoting user data — an id, a key — sends no control characters)
    const fail = (line: string) => process.stderr.write(`${printable(line)}\n`)
    if (err instanceof CommanderError) {
      // `basalt help [command]` ends with commander.help and exit code 0; `basalt entity`, which
      // needs a subcommand, prints its help as an error (exit code 1): a wrong command line
      const helped = err.code === 'commander.help' && err.exitCode === 0
      return helped || err.code === 'commander.helpDisplayed' || err.code === 'commander.version' ? 0 : 2
    }
    if (err instanceof UsageError) {
      fail(`${current}: ${err.message} (see '${current} --help')`)
      return 2
    }
    // an AuthorizationError says itself which hub the user may not read or create, and what to check
    const violation = err instanceof AuthorizationError ? undefined : permissionViolation(err)
    if (violation !== undefined) {
      const needs = NODE_PERMISSION_COMMANDS.some((c) => current === c || current.startsWith(`${c} `))
        ? "this command needs the node's permissions"
        : 'see which permissions each command needs'
      fail(
        `${current}: not permitted: the NATS user may not ${violation.operation} to ${violation.subject}; ` +
          `${needs} (docs/SECURITY.md, "What a node and a client use")`,
      )
      return 1
    }
    fail(`${current}: ${describeFailure(err)}`)
    return 1
  }
}

/**
 * `basalt help <command…>` as `basalt <command…> --help`, which prints the help of the command
 * named, however deep (`help entity get`; commander's help command went one level down only),
 * and when a word names no command, the command line without `help`, for commander to refuse it
 * as it does `basalt frob` (`unknown command 'frob'`, exit 2): its help command printed the
 * general help as an error, naming nothing. Undefined for any other command line (`basalt help`
 * alone is commander's).
 *
 * @example helpAsFlag(program, ['help', 'entity', 'get']) // ['entity', 'get', '--help']
 */
function helpAsFlag(program: Command, argv: string[]): string[] | undefined {
  const named = (name: string) => (c: Command) => c.name() === name || c.aliases().includes(name)
  let command = program
  for (const [i, word] of argv.entries()) {
    if (word === 'help' && command.commands.length > 0) {
      const words = argv.slice(i + 1)
      if (words.length === 0 || words.some((w) => w.startsWith('-'))) return undefined
      const before = argv.slice(0, i)
      const path: string[] = []
      // (words after a command without subcommands are its arguments: its help, as commander's)
      for (const w of words) {
        if (command.commands.length === 0) break
        const sub = command.commands.find(named(w))
        if (sub === undefined) return [...before, ...path, w]
        path.push(w)
        command = sub
      }
      return [...before, ...path, '--help']
    }
    const sub = command.commands.find(named(word))
    if (sub === undefined) return undefined
    command = sub
  }
  return undefined
}

/** The commands that read or manage the hub's streams, which only a node's permissions allow. */
const NODE_PERMISSION_COMMANDS = [
  'basalt node',
  'basalt dev',
  'basalt hub create',
  'basalt hub info',
  'basalt hub delete',
  'basalt dlq',
]

/** The version in Basalt's package.json, found by walking up from this file. */
function packageVersion(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url))
  for (let i = 0; i < 5; i++) {
    const file = path.join(dir, 'package.json')
    if (existsSync(file)) {
      const pkg = JSON.parse(readFileSync(file, 'utf8')) as { name?: string; version?: string }
      if (pkg.name === 'basalt' && pkg.version !== undefined) return pkg.version
    }
    dir = path.dirname(dir)
  }
  return 'unknown'
}

/**
 * {@link describeError} (args.ts), and for NATS's own words of a server or JetStream that did not
 * answer (`TimeoutError: timeout`, `JetStream system temporarily unavailable` — a server
 * restarting, a cluster electing a leader) what they mean and what to do. Basalt's own errors say
 * it already. Here, not in args.ts, which stays free of NATS.
 *
 * @example describeFailure(Object.assign(new Error('timeout'), { name: 'TimeoutError' }))
 */
export function describeFailure(err: unknown): string {
  const busy =
    !(err instanceof BasaltError) && isTransient(err)
      ? ': NATS or JetStream did not answer in time (a server restarting, or a cluster electing a leader); try again in a few seconds'
      : ''
  return `${describeError(err)}${busy}`
}

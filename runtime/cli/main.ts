/**
 * The `basalt` command line. Each command is one entry of {@link commands}: its `node:util`
 * `parseArgs` options, a usage line and a `run` that resolves with the exit code. Commands load
 * their implementation lazily so that `basalt help` stays instant.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util'
import { CONNECTION_OPTIONS, CONNECTION_USAGE, describeError, UsageError, type CommandArgs } from './args.ts'

/** One `basalt` command. */
export interface Command {
  /** Arguments after the command name, e.g. `[--serve]`. */
  usage: string
  /** One line saying what the command does. */
  summary: string
  /** Options understood by the command (`node:util` `parseArgs` format). */
  options: NonNullable<ParseArgsConfig['options']>
  /** Whether positional arguments are accepted (default false). */
  positionals?: boolean
  /** Runs the command; resolves with the process exit code. */
  run(args: CommandArgs): Promise<number>
}

/** The commands, by name. */
export const commands: Record<string, Command> = {
  demo: {
    usage: '[--serve]',
    summary:
      'run the examples on hub "demo" ($NATS_URL, else an embedded nats-server); --serve keeps serving',
    options: { serve: { type: 'boolean', default: false } },
    async run({ values }) {
      const { runDemo } = await import('../../examples/demo.ts')
      return runDemo({ serve: values['serve'] === true })
    },
  },
  node: {
    usage:
      `--servers URL[,URL...] --hub NAME --load MODULE ${CONNECTION_USAGE} [--node-id ID] [--partitions N] [--replicas N] ` +
      '[--heartbeat-ms N] [--lease-ms N] [--activity-concurrency N]',
    summary:
      'run a node serving the registry MODULE exports (`registry` or default), until SIGTERM or SIGINT',
    options: {
      ...CONNECTION_OPTIONS,
      hub: { type: 'string' },
      load: { type: 'string' },
      'node-id': { type: 'string' },
      partitions: { type: 'string' },
      replicas: { type: 'string' },
      'heartbeat-ms': { type: 'string' },
      'lease-ms': { type: 'string' },
      'activity-concurrency': { type: 'string' },
    },
    async run(args) {
      const { runNodeCommand } = await import('./node-command.ts')
      return runNodeCommand(args)
    },
  },
  placement: {
    usage: `--servers URL[,URL...] --hub NAME ${CONNECTION_USAGE} [--json]`,
    summary: "print a hub's partition assignments (partition, node, epoch), its nodes and its leader",
    options: {
      ...CONNECTION_OPTIONS,
      hub: { type: 'string' },
      json: { type: 'boolean', default: false },
    },
    async run(args) {
      const { runPlacementCommand } = await import('./placement-command.ts')
      return runPlacementCommand(args)
    },
  },
  help: {
    usage: '[command]',
    summary: 'print this help, or the usage of one command',
    options: {},
    positionals: true,
    async run({ positionals }) {
      const name = positionals[0]
      const command = name === undefined ? undefined : lookup(name)
      if (name !== undefined && command === undefined) {
        process.stderr.write(`basalt: unknown command '${name}'\n\n${usage()}`)
        return 2
      }
      process.stdout.write(
        command === undefined ? usage() : `usage: basalt ${name} ${command.usage}\n  ${command.summary}\n`,
      )
      return 0
    },
  },
}

/** The command called `name`, if there is one. */
export function lookup(name: string): Command | undefined {
  return Object.hasOwn(commands, name) ? commands[name] : undefined
}

/** The usage text listing every command. */
export function usage(): string {
  const lines = Object.entries(commands).map(([name, c]) => {
    const call = `${name} ${c.usage}`
    return call.length <= 24
      ? `  basalt ${call.padEnd(24)} ${c.summary}`
      : `  basalt ${call}\n  ${''.padEnd(31)} ${c.summary}`
  })
  return `usage: basalt <command> [options]\n\ncommands:\n${lines.join('\n')}\n`
}

/**
 * Runs the command line `argv` (without the node and script paths) and resolves with the exit
 * code: usage errors (unknown command or option, a {@link UsageError} from the command) give 2,
 * any other error a command throws gives 1; either is printed as one line on stderr.
 *
 * @example process.exitCode = await main(process.argv.slice(2))
 */
export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv
  if (name === undefined || name === '--help' || name === '-h')
    return commands['help']!.run({ values: {}, positionals: [] })
  const command = lookup(name)
  if (command === undefined) {
    process.stderr.write(`basalt: unknown command '${name}'\n\n${usage()}`)
    return 2
  }
  let args: CommandArgs
  try {
    args = parseArgs({
      args: rest,
      options: command.options,
      allowPositionals: command.positionals ?? false,
      strict: true,
    })
  } catch (err) {
    process.stderr.write(
      `basalt ${name}: ${(err as Error).message}\nusage: basalt ${name} ${command.usage}\n`,
    )
    return 2
  }
  try {
    return await command.run(args)
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`basalt ${name}: ${err.message}\nusage: basalt ${name} ${command.usage}\n`)
      return 2
    }
    process.stderr.write(`basalt ${name}: ${describeError(err)}\n`)
    return 1
  }
}

/**
 * `basalt` usage: help on every level, versions, exit codes and the one-line errors for bad flag
 * values, malformed arguments and an unreachable server. Each test runs the real binary (a child
 * process per command); none needs a node, so this file runs beside cli-commands.test.ts.
 */
import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { nkeys } from '@nats-io/transport-node'
import { freePort } from '../../runtime/dev/nats-server.ts'
import { repoRoot, spawnTs, useNatsServer, basaltCli } from '../tooling/harness.ts'

const nats = useNatsServer()
const HUB = 'cli-usage'

const { run } = basaltCli(nats, HUB)

describe('basalt help, version and exit codes', () => {
  it('answers --help on every level with 0, --version with the package version, bad usage with 2', async () => {
    const version = (JSON.parse(readFileSync(`${repoRoot}/package.json`, 'utf8')) as { version: string })
      .version
    const [help, entityGetHelp, nodeHelp, dashboardHelp, ver, unknown, missingArg, badInt, noHub] =
      await Promise.all([
        run('--help'),
        run('entity', 'get', '--help'),
        run('node', '--help'),
        run('dashboard', '--help'),
        run('--version'),
        run('nope'),
        run('status'),
        run('hub', 'create', '--partitions', 'many'),
        spawnTs('runtime/cli/basalt.mjs', ['status', 'x'], { NATS_URL: nats.url, BASALT_HUB: '' }).exited,
      ])
    expect(help.code, help.output).toBe(0)
    for (const command of [
      'dev',
      'node',
      'start',
      'status',
      'history',
      'list',
      'wait',
      'raise',
      'entity',
      'hub',
      'dlq',
      'dashboard',
    ])
      expect(help.output, `'${command}' in basalt --help`).toMatch(new RegExp(`^  ${command} `, 'm'))
    expect(entityGetHelp.code, entityGetHelp.output).toBe(0)
    expect(entityGetHelp.output).toMatch(/^Usage: basalt entity get \[options\] <type> <key>$/m)
    expect(entityGetHelp.output).toMatch(/--servers <urls>.*\(env: NATS_URL\)/)
    expect(nodeHelp.code, nodeHelp.output).toBe(0)
    expect(dashboardHelp.code, dashboardHelp.output).toBe(0)
    expect(dashboardHelp.output).toMatch(/^\s+--allow-actions\b/m)
    expect(dashboardHelp.output).toMatch(/^\s+--allow-host <name>\s+another host name/m)
    expect(ver.code, ver.output).toBe(0)
    expect(ver.lines).toEqual([version])
    expect(unknown.code, unknown.output).toBe(2)
    expect(unknown.lines).toEqual([
      "basalt: unknown command 'nope' (Did you mean node?) (see 'basalt --help')",
    ])
    expect(missingArg.code, missingArg.output).toBe(2)
    expect(missingArg.lines).toEqual([
      "basalt status: missing required argument 'id' (see 'basalt status --help')",
    ])
    expect(badInt.code, badInt.output).toBe(2)
    expect(badInt.output).toMatch(/^basalt hub create: option '--partitions <n>' argument 'many' is invalid/)
    expect(noHub).toBe(2)
  }, 30_000)

  it('basalt help [command] prints help with 0; help of a command there is not names it, with 2', async () => {
    const [help, helpStatus, helpEntityGet, entityHelpGet, helpFrob, entityHelpFrob, bareEntity] =
      await Promise.all([
        run('help'),
        run('help', 'status'),
        run('help', 'entity', 'get'),
        run('entity', 'help', 'get'),
        run('help', 'frob'),
        run('entity', 'help', 'frob'),
        run('entity'),
      ])
    expect(help.code, help.output).toBe(0)
    expect(help.output).toMatch(/^Usage: basalt \[options\] \[command\]$/m)
    expect(helpStatus.code, helpStatus.output).toBe(0)
    expect(helpStatus.output).toMatch(/^Usage: basalt status \[options\] <id>$/m)
    for (const shown of [helpEntityGet, entityHelpGet]) {
      expect(shown.code, shown.output).toBe(0)
      expect(shown.output).toMatch(/^Usage: basalt entity get \[options\] <type> <key>$/m)
    }
    // was the general help on stderr with exit 2, naming nothing
    expect(helpFrob.code, helpFrob.output).toBe(2)
    expect(helpFrob.lines).toEqual(["basalt: unknown command 'frob' (see 'basalt --help')"])
    expect(entityHelpFrob.code, entityHelpFrob.output).toBe(2)
    expect(entityHelpFrob.lines).toEqual([
      "basalt entity: unknown command 'frob' (see 'basalt entity --help')",
    ])
    // a command that needs a subcommand, given none: its help, as an error
    expect(bareEntity.code, bareEntity.output).toBe(2)
    expect(bareEntity.output).toMatch(/^Usage: basalt entity \[options\] \[command\]$/m)
  }, 30_000)

  it('exits 2 with one line naming the flag and what it expects for every bad value', async () => {
    const seed = new TextDecoder().decode(nkeys.createUser().getSeed())
    const node = ['node', '--load', 'test/fixtures/cli-registry.ts']
    const cases: Array<[string[], RegExp]> = [
      [
        ['status', 'x', '--hub', 'a.b'],
        /^basalt status: --hub "a\.b": expected 1 to 64 letters, digits, _ and -/,
      ],
      [
        ['status', 'x', '--servers', 'not a url'],
        /^basalt status: --servers "not a url": expected NATS server URL/,
      ],
      [
        ['status', 'x', '--servers', 'http://127.0.0.1:4222'],
        /^basalt status: --servers "http:\/\/127\.0\.0\.1:4222": http:\/\/ is not a NATS URL scheme; give nats:\/\/host:4222/,
      ],
      [
        ['status', 'x', '--user', 'u', '--password', 'Pw9x', '--token', 'Tk7q'],
        /^basalt status: --user and --password, --token: give one kind of NATS credentials/,
      ],
      [['status', 'x', '--password', 'Pw9x'], /^basalt status: --password needs a user: give --user too/],
      [['status', 'x', '--nkey', seed.slice(0, -1)], /^basalt status: --nkey: the nkey seed is malformed/],
      [['status', 'x', '--creds', '/no/such.creds'], /^basalt status: --creds: cannot read the creds file/],
      [
        ['status', 'x', '--creds', '/etc/hostname'],
        /^basalt status: --creds: creds file \/etc\/hostname holds no user JWT and nkey seed/,
      ],
      [
        [...node, '--metrics-port', '99999'],
        /^basalt node: option '--metrics-port <port>' argument '99999' is invalid\. expected an integer from 0 to 65535/,
      ],
      [
        [...node, '--node-id', 'a.b'],
        /^basalt node: --node-id "a\.b": expected 1 to 100 letters, digits, _ and -/,
      ],
      [
        [...node, '--lease-ms', '1000'],
        /^basalt node: --lease-ms 1000: expected at least twice --heartbeat-ms \(1000\)/,
      ],
      [
        [...node, '--cache-size', '-1'],
        /^basalt node: option '--cache-size <n>' argument '-1' is invalid\. expected an integer of at least 0/,
      ],
      [
        [...node, '--snapshot-interval-ms', '0'],
        /^basalt node: option '--snapshot-interval-ms <ms>' argument '0' is invalid\. expected an integer of at least 1/,
      ],
      [
        [...node, '--stream-trim-interval-ms', '-5'],
        /^basalt node: option '--stream-trim-interval-ms <ms>' argument '-5' is invalid\. expected an integer of at least 0/,
      ],
      [
        ['hub', 'create', '--partitions', '5000'],
        /^basalt hub create: option '--partitions <n>' argument '5000' is invalid\. expected an integer from 1 to 1024/,
      ],
    ]
    const results = await Promise.all(cases.map(([args]) => run(...args)))
    results.forEach(({ code, lines, output }, i) => {
      const [args, expected] = cases[i]!
      expect(code, `basalt ${args.join(' ')}:\n${output}`).toBe(2)
      expect(lines, output).toHaveLength(1)
      expect(lines[0]).toMatch(expected)
      expect(output).not.toContain(seed.slice(4, 30))
      expect(output).not.toMatch(/Pw9x|Tk7q/)
    })
  }, 60_000)

  it('exits 2 with one line for an empty or malformed entity type, key or instance id', async () => {
    // (were exit 1 from the client's checks; a signal to an empty key was even sent, exit 0)
    const cases: Array<[string[], RegExp]> = [
      [
        ['entity', 'get', 'Counter', ''],
        /^basalt entity get: entity key must be a non-empty string \(got string ""\)/,
      ],
      [
        ['entity', 'signal', 'Counter', '', 'add'],
        /^basalt entity signal: entity key must be a non-empty string/,
      ],
      [
        ['entity', 'unlock', 'a.b', 'k', '--yes'],
        /^basalt entity unlock: entity type name must match .* \(got "a\.b"\)/,
      ],
      [['status', ''], /^basalt status: instance id must be a non-empty string/],
      [['start', 'helloSequence', '--id', ''], /^basalt start: --id: instance id must be a non-empty string/],
    ]
    const results = await Promise.all(cases.map(([args]) => run(...args)))
    results.forEach(({ code, lines, output }, i) => {
      const [args, expected] = cases[i]!
      expect(code, `basalt ${args.join(' ')}:\n${output}`).toBe(2)
      expect(lines, output).toHaveLength(1)
      expect(lines[0]).toMatch(expected)
    })
  }, 60_000)

  it('fails with 1 and one line naming the URL when NATS cannot be reached', async () => {
    const url = `nats://127.0.0.1:${await freePort()}`
    const { code, lines } = await run('status', 'x', '--servers', url)
    expect(code, lines.join('\n')).toBe(1)
    expect(lines).toHaveLength(1)
    expect(lines[0]).toMatch(new RegExp(`^basalt status: cannot reach NATS at ${url}`))
  })
})

/**
 * Connection options without a server: reading them from `NATS_*` variables and CLI flags, taking
 * credentials out of server URLs, redaction, and the mapping onto the NATS client's options
 * (which kinds of credentials, conflicts and unreadable files are refused, and how).
 */
import { writeFileSync } from 'node:fs'
import path from 'node:path'
import { describe, expect, it } from 'vitest'
import { nkeys } from '@nats-io/transport-node'
import { BadInputError } from '../../runtime/index.ts'
import {
  connectionFromEnv,
  connectionFromFlags,
  redactSecrets,
  redactUrl,
  splitUrlCredentials,
} from '../../runtime/nats/connection-options.ts'
import { toNatsOptions } from '../../runtime/nats/connect.ts'
import { HubNames } from '../../runtime/nats/hub.ts'
import { UsageError } from '../../runtime/cli/args.ts'
import { connectionFromFlags as cliConnection } from '../../runtime/cli/connection.ts'
import { tempDir } from '../tooling/harness.ts'

describe('connectionFromEnv', () => {
  it('reads every NATS_* variable and splits NATS_URL on commas', () => {
    expect(
      connectionFromEnv({
        NATS_URL: 'nats://a:4222, nats://b:4222',
        NATS_USER: 'u',
        NATS_PASSWORD: 'p',
        NATS_CA: '/ca.pem',
        NATS_CERT: '/c.pem',
        NATS_KEY: '/k.pem',
        NATS_CREDS: '/u.creds',
        NATS_NKEY: '/u.nk',
        NATS_TOKEN: 't',
        OTHER: 'x',
      }),
    ).toEqual({
      servers: ['nats://a:4222', 'nats://b:4222'],
      user: 'u',
      password: 'p',
      token: 't',
      nkey: '/u.nk',
      credsFile: '/u.creds',
      tls: { ca: '/ca.pem', cert: '/c.pem', key: '/k.pem' },
    })
    expect(connectionFromEnv({ NATS_USER: '' })).toEqual({})
  })
})

describe('connectionFromFlags', () => {
  it('prefers flags over the environment, in parseArgs or commander spelling', () => {
    const env = { NATS_URL: 'nats://env:4222', NATS_CA: '/env-ca.pem', NATS_USER: 'env-user' }
    expect(
      connectionFromFlags({ servers: 'nats://flag:4222', 'tls-cert': '/c', 'tls-key': '/k' }, env),
    ).toEqual({
      servers: ['nats://flag:4222'],
      user: 'env-user',
      tls: { ca: '/env-ca.pem', cert: '/c', key: '/k' },
    })
    const { NATS_USER: _, ...noUser } = env
    expect(connectionFromFlags({ tlsCa: '/flag-ca', creds: '/me.creds' }, noUser)).toEqual({
      servers: ['nats://env:4222'],
      credsFile: '/me.creds',
      tls: { ca: '/flag-ca' },
    })
  })

  it('refuses what connecting would refuse, naming the flags and variables but no secret', () => {
    const refused = (flags: Record<string, unknown>, env: Record<string, string> = {}) => {
      try {
        connectionFromFlags({ servers: 'nats://h:4222', ...flags }, env)
      } catch (err) {
        expect(err).toBeInstanceOf(BadInputError)
        return (err as Error).message
      }
      throw new Error('not refused')
    }
    expect(refused({ token: 'tok3n', user: 'u', password: 'pa55' })).toBe(
      '--user and --password, --token: give one kind of NATS credentials (user and password, token, nkey or creds file)',
    )
    expect(refused({ creds: '/me.creds' }, { NATS_USER: 'env-user' })).toMatch(
      /^\$NATS_USER, --creds: give one kind/,
    )
    expect(refused({ password: 'pa55' })).toBe('--password needs a user: give --user too (or set $NATS_USER)')
    expect(refused({ 'tls-cert': '/c' })).toMatch(/^--tls-cert needs --tls-key/)
    for (const bad of ['not a url', 'nats://', 'nats://h:99999', 'nats://h:4222,nats://a b']) {
      expect(refused({ servers: bad })).toMatch(
        /^--servers ".*": expected NATS server URL\(s\) such as nats:\/\/host:4222/,
      )
    }
    expect(refused({ servers: 'nats://alice:s3cret@h 1' })).not.toContain('s3cret')
    // the NATS client took http:// for nats:// and refused ws:// only once connecting
    expect(refused({ servers: 'nats://h:4222,http://127.0.0.1:4222' })).toBe(
      '--servers "http://127.0.0.1:4222": http:// is not a NATS URL scheme; give nats://host:4222 ' +
        '(or tls://host:4222), comma-separated',
    )
    expect(refused({ servers: 'wss://h' })).toMatch(
      /^--servers "wss:\/\/h": wss:\/\/ is not a NATS URL scheme \(websockets are not supported\)/,
    )
    expect(() => connectionFromFlags({}, { NATS_URL: 'https://u:s3cret@h' })).toThrow(
      /^\$NATS_URL "https:\/\/\*\*\*@h": https:\/\/ is not a NATS URL scheme/,
    )
    for (const good of [
      '127.0.0.1:4222',
      'h',
      'tls://h:4443',
      'nats://[::1]:4222',
      'nats://u:p@h:4222',
      'NATS://h',
    ]) {
      expect(connectionFromFlags({ servers: good }, {}).servers).toEqual([good])
    }
  })

  it('needs a server, and says how to give one; the CLI turns that into a usage error', () => {
    expect(() => connectionFromFlags({}, {})).toThrow(/pass --servers URL\[,URL\.\.\.\] or set \$NATS_URL/)
    expect(() => connectionFromFlags({ servers: 'nats://h', token: true }, {})).toThrow(
      /--token expects a value/,
    )
    expect(() => cliConnection({})).toThrow(UsageError)
  })
})

describe('credentials in URLs', () => {
  it('takes user and password or a token out of the URLs', () => {
    expect(splitUrlCredentials(['nats://al%40ice:p%3Aw@h:4222', 'tls://h2:4222'])).toEqual({
      servers: ['nats://h:4222', 'tls://h2:4222'],
      credentials: { user: 'al@ice', password: 'p:w' },
    })
    expect(splitUrlCredentials(['T0KEN@h:4222'])).toEqual({
      servers: ['h:4222'],
      credentials: { token: 'T0KEN' },
    })
  })

  it('refuses URLs with different credentials without showing them', () => {
    const err = (() => {
      try {
        splitUrlCredentials(['nats://a:pw-one@h1', 'nats://a:pw-two@h2'])
      } catch (e) {
        return e as Error
      }
    })()
    expect(err).toBeInstanceOf(BadInputError)
    expect(err?.message).toContain('nats://***@h1')
    expect(err?.message).not.toMatch(/pw-one|pw-two/)
  })

  it('redacts URLs and secrets in text', () => {
    expect(redactUrl('nats://alice:s3cret@host:4222')).toBe('nats://***@host:4222')
    expect(redactUrl('nats://host:4222')).toBe('nats://host:4222')
    expect(
      redactSecrets('bad s3cret and tok123 in nats://u:urlpw@h', {
        servers: 'nats://u:urlpw@h',
        password: 's3cret',
        token: 'tok123',
      }),
    ).toBe('bad *** and *** in nats://***@h')
  })
})

describe('toNatsOptions', () => {
  it('maps each kind of credentials to one authenticator, explicit options over URL ones', () => {
    const { natsOptions, identity } = toNatsOptions(
      { servers: 'nats://u:pw@h:4222', user: 'other', password: 'x', name: 'mine' },
      'default',
    )
    expect(natsOptions.servers).toEqual(['nats://h:4222'])
    expect(natsOptions.name).toBe('mine')
    expect(identity).toBe("as user 'other'")
    expect(natsOptions.authenticator).toHaveLength(1)
    expect(toNatsOptions({ servers: 'nats://u:pw@h' }, 'n').identity).toBe("as user 'u'")
  })

  it('reads a creds file, an nkey seed file and TLS files, with clear errors', () => {
    const dir = tempDir('basalt-conn-')
    const user = nkeys.createUser()
    const seed = new TextDecoder().decode(user.getSeed())
    const seedFile = path.join(dir, 'u.nk')
    writeFileSync(seedFile, seed)
    expect(toNatsOptions({ servers: 'h', nkey: seedFile }, 'n').identity).toBe(
      `with nkey ${user.getPublicKey()}`,
    )
    const creds = path.join(dir, 'u.creds')
    writeFileSync(
      creds,
      '-----BEGIN NATS USER JWT-----\neyJhbGciOiJlZDI1NTE5In0.e30.c2ln\n------END NATS USER JWT------\n\n' +
        `-----BEGIN USER NKEY SEED-----\n${seed}\n------END USER NKEY SEED------\n`,
    )
    expect(toNatsOptions({ servers: 'h', credsFile: creds }, 'n').identity).toBe(`with creds file ${creds}`)
    expect(() => toNatsOptions({ servers: 'h', credsFile: path.join(dir, 'none') }, 'n')).toThrow(
      /cannot read the creds file .*none: ENOENT/,
    )
    // a file that is no creds file (a seed alone, a JWT alone, anything else): said before connecting,
    // without quoting it, rather than failing the connect with "unable to parse credentials"
    for (const [name, text] of [
      ['seed-only.creds', `-----BEGIN USER NKEY SEED-----\n${seed}\n------END USER NKEY SEED------\n`],
      [
        'jwt-only.creds',
        '-----BEGIN NATS USER JWT-----\neyJhbGciOiJlZDI1NTE5In0.e30.c2ln\n------END NATS USER JWT------\n',
      ],
      ['hostname', 'vm-1\n'],
    ] as const) {
      const file = path.join(dir, name)
      writeFileSync(file, text)
      let message = ''
      try {
        toNatsOptions({ servers: 'h', credsFile: file }, 'n')
      } catch (e) {
        expect(e, name).toBeInstanceOf(BadInputError)
        message = (e as Error).message
      }
      expect(message, name).toBe(
        `creds file ${file} holds no user JWT and nkey seed (the two blocks nsc writes: -----BEGIN NATS USER JWT----- and -----BEGIN USER NKEY SEED-----)`,
      )
      expect(message).not.toContain(seed.slice(4, 20))
    }
    expect(() => toNatsOptions({ servers: 'h', tls: { ca: path.join(dir, 'none.pem') } }, 'n')).toThrow(
      /cannot read the TLS CA file/,
    )
    expect(() => toNatsOptions({ servers: 'h', tls: { cert: '-----BEGIN CERT' } }, 'n')).toThrow(
      /both cert and key/,
    )
  })

  it('refuses two kinds of credentials, a password without user, and a malformed seed without quoting it', () => {
    expect(() => toNatsOptions({ servers: 'h', user: 'u', password: 'p', token: 't' }, 'n')).toThrow(
      /one kind of NATS credentials/,
    )
    expect(() => toNatsOptions({ servers: 'h', password: 'p' }, 'n')).toThrow(
      /password was given without a user/,
    )
    const bad = 'S' + 'A'.repeat(57)
    let message = ''
    try {
      toNatsOptions({ servers: 'h', nkey: bad }, 'n')
    } catch (e) {
      message = (e as Error).message
    }
    expect(message).toMatch(/malformed/)
    expect(message).not.toContain(bad)
  })

  it('never quotes a damaged seed taken for a file name, but names a real path', () => {
    const seed = new TextDecoder().decode(nkeys.createUser().getSeed())
    for (const damaged of [seed.slice(0, -1), seed + 'A', seed.slice(0, 20) + 'x' + seed.slice(21)]) {
      let message = ''
      try {
        toNatsOptions({ servers: 'h', nkey: damaged }, 'n')
      } catch (e) {
        message = (e as Error).message
        expect((e as Error).cause).toBeUndefined()
      }
      expect(message).toBe('the nkey seed is malformed (or no file of that name)')
      expect(message).not.toContain(seed.slice(4, 20))
    }
    expect(() => toNatsOptions({ servers: 'h', nkey: '/no/such/u.nk' }, 'n')).toThrow(
      'cannot read the nkey seed file /no/such/u.nk: ENOENT',
    )
  })

  it('refuses URLs of another scheme, or with a path, and requires TLS for a tls:// URL', () => {
    expect(() => toNatsOptions({ servers: 'http://h:4222' }, 'c')).toThrow(
      'servers "http://h:4222": http:// is not a NATS URL scheme; give nats://host:4222 (or tls://host:4222), or a list of them',
    )
    expect(() => toNatsOptions({ servers: ['nats://a', 'https://u:pw@h'] }, 'c')).toThrow(
      /^servers "https:\/\/\*\*\*@h": https:\/\/ is not a NATS URL scheme \(for TLS give tls:\/\/host:4222\)/,
    )
    expect(() => toNatsOptions({ servers: 'nats://h:4222/x?y' }, 'c')).toThrow(
      /a NATS server URL has no path, query or fragment/,
    )
    expect(toNatsOptions({ servers: 'nats://h:4222/' }, 'c').natsOptions.tls).toBeUndefined()
    expect(toNatsOptions({ servers: 'h:4222' }, 'c').natsOptions.tls).toBeUndefined()
    expect(toNatsOptions({ servers: ['nats://a', 'TLS://b'] }, 'c').natsOptions.tls).toEqual({})
  })

  it('refuses missing or empty servers at once, naming them, and a hub name that is not a string', () => {
    expect(() => toNatsOptions({} as never, 'c')).toThrow(BadInputError)
    expect(() => toNatsOptions({} as never, 'c')).toThrow(
      /^servers must be a NATS server URL .*\(got none\)$/,
    )
    expect(() => toNatsOptions({ servers: [''] }, 'c')).toThrow(/servers must be/)
    expect(() => toNatsOptions({ servers: 5 as never }, 'c')).toThrow(/\(got 5\)/)
    expect(() => toNatsOptions({ servers: [] }, 'c')).toThrow(/servers is empty/)
    expect(() => new HubNames(undefined as never)).toThrow(/hub name must match .* \(got undefined\)/)
  })
})

/**
 * The dashboard's checks against DNS rebinding and cross-site requests, without a server: which
 * `Host` values each bound address answers (loopback names, the address itself, any IP address on
 * every interface, names allowed by the operator, `*`), and which action requests are refused (a
 * foreign or `null` Origin, no `X-Basalt-Dashboard` header).
 */
import { describe, expect, it } from 'vitest'
import { hostPolicy, refuseAction, refuseHost } from '../../runtime/dashboard/guard.ts'

describe('dashboard Host check', () => {
  it('on loopback: localhost, 127.0.0.1 and [::1] on any port; nothing else', () => {
    const policy = hostPolicy('127.0.0.1')
    for (const host of ['localhost:8233', '127.0.0.1:8233', '[::1]:8233', 'LOCALHOST:9000', '127.0.0.1'])
      expect(refuseHost(host, policy), host).toBeUndefined()
    for (const host of [
      'attacker.example:8233',
      '10.0.0.5:8233',
      'localhost.attacker.example',
      'a@localhost',
    ])
      expect(refuseHost(host, policy), host).toBeDefined()
    expect(refuseHost(undefined, policy)).toBe('the request has no Host header')
    const refused = refuseHost('attacker.example:8233', policy)!
    expect(refused).toContain("'attacker.example:8233'")
    expect(refused).toContain('--allow-host attacker.example')
    expect(refused).toContain('localhost, 127.0.0.1, [::1]')
  })

  it('on another address: that address only; [::1] bound: the loopback names too', () => {
    const policy = hostPolicy('192.168.1.5')
    expect(refuseHost('192.168.1.5:8233', policy)).toBeUndefined()
    expect(refuseHost('localhost:8233', policy)).toBeDefined()
    expect(refuseHost('192.168.1.6:8233', policy)).toBeDefined()
    const v6 = hostPolicy('::1')
    expect(refuseHost('[::1]:8233', v6)).toBeUndefined()
    expect(refuseHost('localhost:8233', v6)).toBeUndefined()
  })

  it('on every interface: loopback names and any IP address, but no other name', () => {
    for (const bind of ['0.0.0.0', '::']) {
      const policy = hostPolicy(bind)
      for (const host of ['localhost:8233', '10.1.2.3:8233', '[fe80::1]:8233', '203.0.113.7'])
        expect(refuseHost(host, policy), `${bind} ${host}`).toBeUndefined()
      expect(refuseHost('myhost:8233', policy)).toContain('--allow-host myhost')
      expect(refuseHost('myhost:8233', policy)).toContain('any IP address')
    }
  })

  it('names the operator allowed, on any port; * accepts any host', () => {
    const policy = hostPolicy('127.0.0.1', ['Dash.Example.com', '[fd00::7]'])
    expect(refuseHost('dash.example.com', policy)).toBeUndefined()
    expect(refuseHost('dash.example.com:443', policy)).toBeUndefined()
    expect(refuseHost('[fd00::7]:8233', policy)).toBeUndefined()
    expect(refuseHost('other.example.com', policy)).toBeDefined()
    expect(refuseHost('anything.example', hostPolicy('127.0.0.1', ['*']))).toBeUndefined()
  })
})

describe('dashboard action check', () => {
  const policy = hostPolicy('127.0.0.1', ['dash.example.com'])
  const header = { 'x-basalt-dashboard': '1' }

  it("accepts the page's own request: the header, and no Origin or its own", () => {
    expect(refuseAction({ host: '127.0.0.1:8233', ...header }, policy)).toBeUndefined()
    expect(
      refuseAction({ host: '127.0.0.1:8233', origin: 'http://127.0.0.1:8233', ...header }, policy),
    ).toBeUndefined()
    expect(
      refuseAction({ host: 'localhost', origin: 'http://localhost:80', ...header }, policy),
    ).toBeUndefined()
    // behind a TLS proxy that sends its upstream address as Host: the allowed name
    expect(
      refuseAction({ host: '127.0.0.1:8233', origin: 'https://dash.example.com', ...header }, policy),
    ).toBeUndefined()
  })

  it('refuses a foreign or null Origin, even with the header', () => {
    for (const origin of [
      'http://evil.example',
      'http://localhost:3000',
      'null',
      'file://',
      'http://127.0.0.1:8234',
    ]) {
      const refused = refuseAction({ host: '127.0.0.1:8233', origin, ...header }, policy)
      expect(refused, origin).toContain(`origin '${origin}'`)
    }
  })

  it('refuses a request without the X-Basalt-Dashboard header, even from its own origin', () => {
    const refused = refuseAction({ host: '127.0.0.1:8233', origin: 'http://127.0.0.1:8233' }, policy)
    expect(refused).toContain("missing header 'X-Basalt-Dashboard'")
    expect(refuseAction({ host: '127.0.0.1:8233', 'content-type': 'text/plain' }, policy)).toBeDefined()
  })
})

/**
 * Small probes the nats-server launcher and the cluster builder share: free ports on 127.0.0.1,
 * reading a server's log (its tail for error messages, or what it wrote since a start), and the
 * readiness probe that a server greets a client connection with `INFO`. No state; nothing here
 * starts or stops a process.
 */
import { closeSync, fstatSync, openSync, readSync, statSync } from 'node:fs'
import net from 'node:net'

/** Number of log lines quoted in start-up errors. */
const LOG_TAIL_LINES = 25

/** Resolves after `ms` milliseconds. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}

/** Returns a TCP port that was free on 127.0.0.1 a moment ago (listen on port 0, read it, close). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer()
    server.unref()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const address = server.address()
      const port = typeof address === 'object' && address !== null ? address.port : 0
      server.close(() => (port > 0 ? resolve(port) : reject(new Error('could not determine a free port'))))
    })
  })
}

/** Returns `count` distinct free ports. */
export async function freePorts(count: number): Promise<number[]> {
  const ports = new Set<number>()
  while (ports.size < count) ports.add(await freePort())
  return [...ports]
}

/** Reads the last `lines` lines of a (possibly large or missing) log file. */
export function readLogTail(file: string, lines = LOG_TAIL_LINES): string {
  let fd: number | undefined
  try {
    fd = openSync(file, 'r')
    const size = fstatSync(fd).size
    const length = Math.min(size, 64 * 1024)
    const buffer = Buffer.alloc(length)
    readSync(fd, buffer, 0, length, size - length)
    return buffer.toString('utf8').trimEnd().split('\n').slice(-lines).join('\n')
  } catch {
    return ''
  } finally {
    if (fd !== undefined) closeSync(fd)
  }
}

/** Size of `file` in bytes, 0 if it does not exist. */
export function fileSize(file: string): number {
  try {
    return statSync(file).size
  } catch {
    return 0
  }
}

/** Text of `file` from byte `offset` on ('' if missing). */
export function readFrom(file: string, offset: number): string {
  let fd: number | undefined
  try {
    fd = openSync(file, 'r')
    const length = Math.max(0, fstatSync(fd).size - offset)
    const buffer = Buffer.alloc(length)
    readSync(fd, buffer, 0, length, offset)
    return buffer.toString('utf8')
  } catch {
    return ''
  } finally {
    if (fd !== undefined) closeSync(fd)
  }
}

/** Connects to 127.0.0.1:`port` and resolves true if the server greets with an `INFO` line. */
export function probeInfo(port: number, timeoutMs = 1_000): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port })
    let received = ''
    const finish = (ok: boolean): void => {
      clearTimeout(timer)
      socket.destroy()
      resolve(ok)
    }
    const timer = setTimeout(() => finish(false), timeoutMs)
    socket.on('data', (chunk: Buffer) => {
      received += chunk.toString('utf8')
      if (received.includes('\r\n')) finish(received.startsWith('INFO '))
    })
    socket.on('error', () => finish(false))
    socket.on('close', () => finish(false))
  })
}

// Daemons started by pid, stopped by pid, and nothing else: `down` must never
// touch a process it did not start, so every pid is checked against the binary
// it was started from before it is signalled (pids are reused).
import { spawn } from 'node:child_process'
import { existsSync, openSync, closeSync, readFileSync } from 'node:fs'
import net from 'node:net'

export class RegtestError extends Error {
  readonly code: string
  constructor (code: string, message: string) {
    super(message)
    this.code = code
  }
}

export interface Daemon {
  name: string
  pid: number
  bin: string
  log: string // stdout+stderr of the process; the daemon's own debug log is elsewhere
}

export function startDaemon (name: string, bin: string, args: string[], log: string): Daemon {
  const fd = openSync(log, 'a')
  try {
    const child = spawn(bin, args, { detached: true, stdio: ['ignore', fd, fd] })
    if (child.pid === undefined) throw new RegtestError('spawn_failed', `${name}: could not start ${bin}`)
    child.unref()
    return { name, pid: child.pid, bin, log }
  } finally {
    closeSync(fd)
  }
}

// Alive and still the program we started (Linux /proc; elsewhere, signal 0).
export function isRunning (d: Pick<Daemon, 'pid' | 'bin'>): boolean {
  const cmdline = `/proc/${d.pid}/cmdline`
  if (existsSync('/proc/self/cmdline')) {
    if (!existsSync(cmdline)) return false
    const argv0 = readFileSync(cmdline, 'utf8').split('\0')[0]
    const stat = readFileSync(`/proc/${d.pid}/stat`, 'utf8')
    return argv0 === d.bin && !/\) Z /.test(stat)
  }
  try {
    process.kill(d.pid, 0)
    return true
  } catch {
    return false
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

// SIGTERM lets lnd and btcd flush their databases; SIGKILL only if they hang.
export async function stopDaemon (d: Daemon, timeoutMs = 30_000): Promise<'stopped' | 'killed' | 'not running'> {
  if (!isRunning(d)) return 'not running'
  process.kill(d.pid, 'SIGTERM')
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    if (!isRunning(d)) return 'stopped'
    await sleep(100)
  }
  process.kill(d.pid, 'SIGKILL')
  while (isRunning(d)) await sleep(50)
  return 'killed'
}

function portFree (port: number, host: string): Promise<boolean> {
  return new Promise((resolve) => {
    const server = net.createServer()
    server.once('error', () => resolve(false))
    server.listen({ port, host, exclusive: true }, () => server.close(() => resolve(true)))
  })
}

// Checked before anything starts, so a clash names the port instead of
// surfacing as a daemon that died with "address already in use" in its log.
export async function assertPortsFree (ports: Array<{ what: string, port: number }>, host = '127.0.0.1'): Promise<void> {
  const busy: string[] = []
  for (const p of ports) {
    if (!await portFree(p.port, host)) busy.push(`${p.what} ${host}:${p.port}`)
  }
  if (busy.length > 0) {
    throw new RegtestError('port_busy', `ports in use: ${busy.join(', ')} (set HIGHWIRE_REGTEST_PORT_BASE to move the network)`)
  }
}

export function logTail (file: string, lines = 40): string {
  if (!existsSync(file)) return `(no log at ${file})`
  return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n')
}

// Polls `probe` until it returns a value other than undefined. Errors from the
// probe count as "not yet" (the last one is reported on timeout) unless
// `fatal` says otherwise.
export async function waitFor<T> (
  what: string,
  probe: () => Promise<T | undefined>,
  timeoutMs: number,
  intervalMs = 250,
  fatal: (err: unknown) => boolean = () => false
): Promise<T> {
  const deadline = Date.now() + timeoutMs
  let last = ''
  while (Date.now() < deadline) {
    try {
      const value = await probe()
      if (value !== undefined) return value
    } catch (err) {
      if (fatal(err)) throw err
      last = (err as Error).message.split('\n')[0] ?? ''
    }
    await sleep(intervalMs)
  }
  throw new RegtestError('timeout', `timed out after ${timeoutMs / 1000}s waiting for ${what}${last ? `: ${last}` : ''}`)
}

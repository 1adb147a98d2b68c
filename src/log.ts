// Human-readable log lines for operators: time, level, component, message, then key=value fields.
// Secrets are never passed in: callers log identifiers (hashes, circuit keys, agent keys), not keys.
import type { LogLevel } from './config/schema.ts'

export type LogFields = Record<string, unknown>

export interface Logger {
  debug(message: string, fields?: LogFields): void
  info(message: string, fields?: LogFields): void
  warn(message: string, fields?: LogFields): void
  error(message: string, fields?: LogFields): void
  child(component: string): Logger
}

const RANK: Record<LogLevel, number> = { debug: 0, info: 1, warn: 2, error: 3 }

function formatValue(value: unknown): string {
  if (value instanceof Uint8Array) return Buffer.from(value).toString('hex')
  if (value instanceof Error) return JSON.stringify(value.message)
  if (typeof value === 'string') return /^[\w.:/@+-]*$/.test(value) && value !== '' ? value : JSON.stringify(value)
  if (typeof value === 'bigint' || typeof value === 'number' || typeof value === 'boolean') return String(value)
  return JSON.stringify(value, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v))
}

export function formatLine(time: Date, level: LogLevel, component: string, message: string, fields: LogFields = {}): string {
  const parts = [time.toISOString(), level.padEnd(5), component ? `[${component}] ${message}` : message]
  for (const [key, value] of Object.entries(fields)) if (value !== undefined) parts.push(`${key}=${formatValue(value)}`)
  return parts.join(' ')
}

export function createLogger(opts: {
  level: LogLevel
  write?: (line: string) => void
  now?: () => Date
  component?: string
}): Logger {
  const write = opts.write ?? ((line: string) => process.stderr.write(line + '\n'))
  const now = opts.now ?? (() => new Date())
  const min = RANK[opts.level]
  const make = (component: string): Logger => {
    const log = (level: LogLevel) => (message: string, fields?: LogFields) => {
      if (RANK[level] >= min) write(formatLine(now(), level, component, message, fields))
    }
    return {
      debug: log('debug'),
      info: log('info'),
      warn: log('warn'),
      error: log('error'),
      child: (name) => make(component ? `${component}/${name}` : name)
    }
  }
  return make(opts.component ?? '')
}

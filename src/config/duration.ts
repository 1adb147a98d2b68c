// Durations in config are `ms` strings ("60s", "10m", "1.5h"). A string `ms` cannot read is an error,
// never zero, and a bare number is refused too: "100" could mean seconds to one operator and
// milliseconds to another.
import ms from 'ms'

const HAS_UNIT = /[a-z]\s*$/i

/** Milliseconds for a duration string, or an explanation of why it is not one. */
export function parseDuration(value: unknown): { ms: number } | { problem: string } {
  if (typeof value !== 'string') return { problem: `must be a duration string, got ${describe(value)}` }
  const text = value.trim()
  if (!HAS_UNIT.test(text)) return { problem: `"${value}" has no unit` }
  const millis = ms(text as ms.StringValue)
  if (typeof millis !== 'number' || !Number.isFinite(millis)) return { problem: `"${value}" is not a duration` }
  if (millis < 0) return { problem: `"${value}" is negative` }
  return { ms: millis }
}

export function describe(value: unknown): string {
  if (value === null) return 'null'
  if (Array.isArray(value)) return 'an array'
  if (typeof value === 'string') return `"${value.length > 40 ? value.slice(0, 37) + '...' : value}"`
  if (typeof value === 'object') return 'an object'
  return `${typeof value} ${String(value)}`
}

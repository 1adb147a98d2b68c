// A small reader over the raw config tree that records every problem instead of stopping at the
// first, so an operator fixes all of them in one go. Each problem names the key path, what is wrong
// with the value and an example of a good one.
import { parseDuration, describe } from './duration.ts'
import { CodedError } from '../errors.ts'

export interface ConfigIssue {
  path: string
  problem: string
  example: string
}

export class ConfigError extends CodedError<'invalid_config'> {
  constructor(readonly issues: ConfigIssue[]) {
    super('invalid_config', issues.map(formatIssue).join('\n'))
  }
}

export function formatIssue(issue: ConfigIssue): string {
  return `config ${issue.path}: ${issue.problem} (example: ${issue.example})`
}

type Tree = Record<string, unknown>

export function isTree(value: unknown): value is Tree {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

export class ConfigReader {
  readonly issues: ConfigIssue[] = []

  report(path: string, problem: string, example: string): void {
    this.issues.push({ path, problem, example })
  }

  /** The object at `path`, reporting keys it does not know (a typo must not be silently ignored). */
  section(tree: unknown, path: string, known: readonly string[], example = '{}'): Tree {
    if (tree === undefined || tree === null) return {}
    if (!isTree(tree)) {
      this.report(path, `must be an object, got ${describe(tree)}`, example)
      return {}
    }
    for (const key of Object.keys(tree)) {
      if (!known.includes(key)) this.report(path ? `${path}.${key}` : key, `is not a known key (known: ${known.join(', ')})`, 'remove it')
    }
    return tree
  }

  string(value: unknown, path: string, example: string, check?: (s: string) => string | null): string | undefined {
    if (typeof value !== 'string' || value.length === 0) {
      this.report(path, `must be a non-empty string, got ${describe(value)}`, example)
      return undefined
    }
    const problem = check?.(value) ?? null
    if (problem !== null) {
      this.report(path, problem, example)
      return undefined
    }
    return value
  }

  integer(value: unknown, path: string, example: string, min: number, max: number): number | undefined {
    if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
      this.report(path, `must be an integer from ${min} to ${max}, got ${describe(value)}`, example)
      return undefined
    }
    return value
  }

  boolean(value: unknown, path: string): boolean | undefined {
    if (typeof value !== 'boolean') {
      this.report(path, `must be true or false, got ${describe(value)}`, 'false')
      return undefined
    }
    return value
  }

  durationMs(value: unknown, path: string, example: string, minMs = 0): number | undefined {
    const parsed = parseDuration(value)
    if ('problem' in parsed) {
      this.report(path, parsed.problem, example)
      return undefined
    }
    if (parsed.ms < minMs) {
      this.report(path, `must be at least ${minMs} ms, got ${describe(value)}`, example)
      return undefined
    }
    return parsed.ms
  }

  oneOf<T extends string>(value: unknown, path: string, options: readonly T[]): T | undefined {
    if (typeof value !== 'string' || !options.includes(value as T)) {
      this.report(path, `must be one of ${options.join(', ')}, got ${describe(value)}`, `"${options[0]}"`)
      return undefined
    }
    return value as T
  }

  array(value: unknown, path: string, example: string): unknown[] {
    if (value === undefined || value === null) return []
    if (!Array.isArray(value)) {
      this.report(path, `must be an array, got ${describe(value)}`, example)
      return []
    }
    return value
  }
}

// Shared pieces of the fuzz-*.test.ts files: a seeded PRNG, byte mutators that know about
// length-prefixed fields, and the "typed error or valid result" check. One seed drives a whole
// file; a failure names it, and `HIGHWIRE_FUZZ_SEED=<seed> node --import tsx --test <file>` replays it.
import assert from 'node:assert/strict'
import { randomInt } from 'node:crypto'

export const FUZZ_SEED_ENV = 'HIGHWIRE_FUZZ_SEED'

/** The seed of this run: the env var when set, else a fresh one (printed by each test). */
export function fuzzSeed(): number {
  const fromEnv = process.env[FUZZ_SEED_ENV]
  if (fromEnv === undefined || fromEnv === '') return randomInt(2 ** 31)
  const seed = Number(fromEnv)
  if (!Number.isSafeInteger(seed)) throw new Error(`${FUZZ_SEED_ENV} must be an integer, got ${fromEnv}`)
  return seed
}

export function replayHint(seed: number, file: string): string {
  return `${FUZZ_SEED_ENV}=${seed} node --import tsx --test ${file}`
}

export interface Rng {
  /** Uniform in [0, 1). */
  next(): number
  /** Integer in [lo, hi). */
  int(lo: number, hi: number): number
  chance(p: number): boolean
  pick<T>(items: readonly T[]): T
  bytes(n: number): Uint8Array
}

/** mulberry32: small and fast, enough to drive a fuzzer reproducibly (not for keys). */
export function rng(seed: number): Rng {
  let s = seed | 0
  const next = (): number => {
    s = (s + 0x6d2b79f5) | 0
    let t = Math.imul(s ^ (s >>> 15), 1 | s)
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32
  }
  const int = (lo: number, hi: number): number => lo + Math.floor(next() * (hi - lo))
  return {
    next,
    int,
    chance: (p) => next() < p,
    pick: (items) => items[int(0, items.length)]!,
    bytes: (n) => Uint8Array.from({ length: n }, () => int(0, 256))
  }
}

/** compact-encoding / BigSize-style length bytes a mutator plants to test length checks. */
const LENGTH_EDITS = [0x00, 0x01, 0x7f, 0x80, 0xfc, 0xfd, 0xfe, 0xff] as const

/**
 * One random mutation of `input`: bit flips, a byte overwrite, truncation, extension, deletion,
 * insertion, a boundary value planted as if it were a length or varint prefix, duplication of a
 * slice, or splicing with a slice of `donor` (another real message).
 */
export function mutate(r: Rng, input: Uint8Array, donor?: Uint8Array): Uint8Array {
  const out = Uint8Array.from(input)
  const at = (): number => r.int(0, Math.max(out.length, 1))
  switch (r.int(0, 9)) {
    case 0:
      for (let n = r.int(1, 4); n > 0 && out.length > 0; n--) out[at()]! ^= 1 << r.int(0, 8)
      return out
    case 1:
      if (out.length > 0) out[at()] = r.int(0, 256)
      return out
    case 2:
      return out.subarray(0, r.int(0, out.length))
    case 3:
      return concat(out, r.bytes(r.int(1, 24)))
    case 4: {
      const start = at()
      return concat(out.subarray(0, start), out.subarray(start + r.int(1, 16)))
    }
    case 5: {
      const start = at()
      return concat(out.subarray(0, start), r.bytes(r.int(1, 6)), out.subarray(start))
    }
    case 6: {
      if (out.length === 0) return out
      const start = at()
      out[start] = r.pick(LENGTH_EDITS)
      // A varint prefix: 0xfd..0xff take 2, 4 or 8 following bytes, make them large or small.
      for (let i = start + 1; i < Math.min(out.length, start + 9); i++) if (r.chance(0.5)) out[i] = r.chance(0.5) ? 0xff : 0
      return out
    }
    case 7: {
      const start = at()
      const end = Math.min(out.length, start + r.int(1, 64))
      return concat(out.subarray(0, end), out.subarray(start, end), out.subarray(end))
    }
    default: {
      const other = donor ?? input
      const cut = at()
      const from = r.int(0, Math.max(other.length, 1))
      return concat(out.subarray(0, cut), other.subarray(from))
    }
  }
}

/** 1 to `max` stacked mutations. */
export function mutateMany(r: Rng, input: Uint8Array, donor?: Uint8Array, max = 3): Uint8Array {
  let out = input
  for (let n = r.int(1, max + 1); n > 0; n--) out = mutate(r, out, donor)
  return out
}

export function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0))
  let at = 0
  for (const p of parts) {
    out.set(p, at)
    at += p.length
  }
  return out
}

export const toHex = (b: Uint8Array): string => Buffer.from(b).toString('hex')

type ErrorClass = abstract new (...args: never[]) => Error

/**
 * Runs `fn` on `input`: it must return (then `onResult` checks the value) or throw an instance of
 * one of `types` (then `onError` may check its fields). Anything else fails with the seed, the
 * replay command and the input. Returns the error's `code` (or its class name), or 'ok'.
 */
export function expectTyped<T>(
  ctx: { seed: number; file: string },
  input: unknown,
  fn: () => T,
  types: ErrorClass[],
  onResult?: (result: T) => void,
  onError?: (err: Error) => void
): string {
  let result: T
  try {
    result = fn()
  } catch (err) {
    if (!types.some((type) => err instanceof type)) {
      const shown = input instanceof Uint8Array ? toHex(input) : describe(input)
      assert.fail(`seed ${ctx.seed} (${replayHint(ctx.seed, ctx.file)}): input ${shown} threw ${(err as Error)?.stack ?? String(err)}`)
    }
    onError?.(err as Error)
    const code = (err as { code?: unknown }).code
    return typeof code === 'string' ? code : (err as Error).name
  }
  onResult?.(result)
  return 'ok'
}

function describe(value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) =>
    typeof v === 'bigint' ? `${v}n` : Buffer.isBuffer(v) || v instanceof Uint8Array ? toHex(v) : v
  ).slice(0, 2000)
}

/** Counts outcomes by name, for assertions that the corpus reached both accepting and refusing paths. */
export class Outcomes {
  readonly counts = new Map<string, number>()
  add(outcome: string): void {
    this.counts.set(outcome, (this.counts.get(outcome) ?? 0) + 1)
  }
  get(outcome: string): number {
    return this.counts.get(outcome) ?? 0
  }
  toString(): string {
    return JSON.stringify(Object.fromEntries([...this.counts].sort()))
  }
}

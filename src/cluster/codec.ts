// Small compact-encoding combinators with the bounds every decoder of peer input needs: fixed
// sizes, capped lengths, integers that stay exact in a JS number, closed enums. A decoder throws a
// plain Error naming the field; the envelope layer turns it into EnvelopeError `malformed_body`.
import c from 'compact-encoding'

export type Encoding<T> = c.Encoding<T>
type State = c.State

function buf(state: State): Uint8Array {
  // compact-encoding only calls encode after preencode sized the buffer.
  return state.buffer as Uint8Array
}

/** A uint that must fit `max` (default: a safe JS integer, so seq and time stay exact). */
export function uint(max: number = Number.MAX_SAFE_INTEGER): Encoding<number> {
  return {
    preencode(state, n) {
      checkUint(n, max)
      c.uint.preencode(state, n)
    },
    encode(state, n) {
      c.uint.encode(state, n)
    },
    decode(state) {
      const n = c.uint.decode(state)
      checkUint(n, max)
      return n
    }
  }
}

function checkUint(n: number, max: number): void {
  if (!Number.isSafeInteger(n) || n < 0 || n > max) throw new RangeError(`integer ${n} is out of range 0..${max}`)
}

export const u32 = uint(0xffffffff)
export const u64 = uint()

/** An unsigned 64-bit value kept as bigint (msat, channel ids, HTLC ids, scids). */
export const bigU64: Encoding<bigint> = {
  preencode(state, n) {
    if (typeof n !== 'bigint' || n < 0n || n > 0xffffffffffffffffn) throw new RangeError(`${n} is not a uint64`)
    c.biguint64.preencode(state, n)
  },
  encode: c.biguint64.encode,
  decode: c.biguint64.decode
}

export function fixedBytes(n: number): Encoding<Uint8Array> {
  const enc = c.fixed(n)
  return {
    preencode(state, b) {
      if (!(b instanceof Uint8Array) || b.byteLength !== n) throw new RangeError(`expected ${n} bytes`)
      enc.preencode(state, b)
    },
    encode: enc.encode,
    decode: enc.decode
  }
}

/** Length-prefixed bytes of at most `max`; empty stays an empty array (c.buffer would give null). */
export function bytes(max: number): Encoding<Uint8Array> {
  return {
    preencode(state, b) {
      if (!(b instanceof Uint8Array) || b.byteLength > max) throw new RangeError(`expected at most ${max} bytes`)
      c.uint.preencode(state, b.byteLength)
      state.end += b.byteLength
    },
    encode(state, b) {
      c.uint.encode(state, b.byteLength)
      buf(state).set(b, state.start)
      state.start += b.byteLength
    },
    decode(state) {
      const len = c.uint.decode(state)
      if (len > max) throw new RangeError(`${len} bytes exceed the maximum of ${max}`)
      if (state.end - state.start < len) throw new RangeError('out of bounds')
      return buf(state).subarray(state.start, (state.start += len))
    }
  }
}

const utf8 = new TextEncoder()
const strictUtf8 = new TextDecoder('utf-8', { fatal: true })

/** A UTF-8 string of at most `maxBytes` bytes; invalid UTF-8 is an error, not U+FFFD. */
export function string(maxBytes: number): Encoding<string> {
  const raw = bytes(maxBytes)
  return {
    preencode(state, s) {
      raw.preencode(state, utf8.encode(s))
    },
    encode(state, s) {
      raw.encode(state, utf8.encode(s))
    },
    decode(state) {
      return strictUtf8.decode(raw.decode(state))
    }
  }
}

/** A closed set of string values, one byte on the wire (the index in `values`). */
export function enumeration<T extends string>(values: readonly T[]): Encoding<T> {
  return {
    preencode(state, v) {
      if (!values.includes(v)) throw new RangeError(`unknown value ${v}`)
      state.end += 1
    },
    encode(state, v) {
      buf(state)[state.start++] = values.indexOf(v)
    },
    decode(state) {
      const v = values[c.uint8.decode(state)]
      if (v === undefined) throw new RangeError('unknown enumeration value')
      return v
    }
  }
}

export const bool: Encoding<boolean> = {
  preencode(state) {
    state.end += 1
  },
  encode(state, b) {
    buf(state)[state.start++] = b ? 1 : 0
  },
  decode(state) {
    const b = c.uint8.decode(state)
    if (b > 1) throw new RangeError('boolean is neither 0 nor 1')
    return b === 1
  }
}

export function optional<T>(enc: Encoding<T>): Encoding<T | null> {
  return {
    preencode(state, v) {
      state.end += 1
      if (v !== null) enc.preencode(state, v)
    },
    encode(state, v) {
      bool.encode(state, v !== null)
      if (v !== null) enc.encode(state, v)
    },
    decode(state) {
      return bool.decode(state) ? enc.decode(state) : null
    }
  }
}

export function array<T>(enc: Encoding<T>, max: number, min = 0): Encoding<T[]> {
  return {
    preencode(state, list) {
      if (!Array.isArray(list) || list.length > max || list.length < min) throw new RangeError(`expected ${min} to ${max} items`)
      c.uint.preencode(state, list.length)
      for (const v of list) enc.preencode(state, v)
    },
    encode(state, list) {
      c.uint.encode(state, list.length)
      for (const v of list) enc.encode(state, v)
    },
    decode(state) {
      const len = c.uint.decode(state)
      if (len > max) throw new RangeError(`${len} items exceed the maximum of ${max}`)
      if (len < min) throw new RangeError(`${len} items, fewer than the minimum of ${min}`)
      const list: T[] = []
      for (let i = 0; i < len; i++) list.push(enc.decode(state))
      return list
    }
  }
}

/** Fields encoded in declaration order. */
export function struct<T extends object>(fields: { [K in keyof T]: Encoding<T[K]> }): Encoding<T> {
  const entries = Object.entries(fields) as Array<[keyof T, Encoding<T[keyof T]>]>
  return {
    preencode(state, v) {
      for (const [k, enc] of entries) enc.preencode(state, v[k])
    },
    encode(state, v) {
      for (const [k, enc] of entries) enc.encode(state, v[k])
    },
    decode(state) {
      const v = {} as T
      for (const [k, enc] of entries) v[k] = enc.decode(state)
      return v
    }
  }
}

export function encode<T>(enc: Encoding<T>, value: T): Uint8Array {
  return c.encode(enc, value)
}

/** Decodes exactly `data`: trailing bytes are an error (they would be unsigned-looking slack). */
export function decodeExact<T>(enc: Encoding<T>, data: Uint8Array): T {
  const state = c.state(0, data.byteLength, data)
  const value = enc.decode(state)
  if (state.start !== state.end) throw new RangeError(`${state.end - state.start} trailing bytes`)
  return value
}

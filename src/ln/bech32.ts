// Bech32 (BIP-173) as BOLT 11 uses it: the original checksum constant (not bech32m), no 90-character
// limit ("MAY exceed the 90-character limit specified in BIP-0173"), upper case accepted on input.
// Words are 5-bit values in a Uint8Array; the converters pack them to and from bytes.
import { CodedError } from '../errors.ts'

export type Bech32ErrorCode = 'invalid_character' | 'mixed_case' | 'missing_separator' | 'invalid_checksum'

export class Bech32Error extends CodedError<Bech32ErrorCode> {}

const CHARSET = 'qpzry9x8gf2tvdw0s3jn54khce6mua7l'
const CHARSET_CODES = Uint8Array.from(CHARSET, (c) => c.charCodeAt(0))
/** Lower-case character code → word, -1 where the character is not in the charset. */
const CHARSET_REV = new Int8Array(128).fill(-1)
for (let i = 0; i < CHARSET.length; i++) CHARSET_REV[CHARSET.charCodeAt(i)] = i

/** BIP-173: checksum is 6 words; the separator is the last '1'. */
const CHECKSUM_WORDS = 6
const SEPARATOR = 0x31 // '1'
const BECH32_CONST = 1

// BIP-173 `bech32_polymod`, one 5-bit step at a time (the GF(32) generator coefficients).
function polymodStep(chk: number): number {
  const b = chk >>> 25
  return (
    (((chk & 0x1ffffff) << 5) ^
      (-(b & 1) & 0x3b6a57b2) ^
      (-((b >>> 1) & 1) & 0x26508e6d) ^
      (-((b >>> 2) & 1) & 0x1ea119fa) ^
      (-((b >>> 3) & 1) & 0x3d4233dd) ^
      (-((b >>> 4) & 1) & 0x2a1462b3)) >>>
    0
  )
}

/** Checksum state after the expanded human-readable part (high bits, 0, low bits). */
function hrpChecksum(hrp: string): number {
  let chk = 1
  for (let i = 0; i < hrp.length; i++) chk = polymodStep(chk) ^ (hrp.charCodeAt(i) >>> 5)
  chk = polymodStep(chk)
  for (let i = 0; i < hrp.length; i++) chk = polymodStep(chk) ^ (hrp.charCodeAt(i) & 31)
  return chk
}

/** Encode lower-case `hrp` and 5-bit `words` as a bech32 string with its checksum. */
export function bech32Encode(hrp: string, words: Uint8Array): string {
  const out = new Uint8Array(hrp.length + 1 + words.length + CHECKSUM_WORDS)
  let chk = hrpChecksum(hrp)
  for (let i = 0; i < hrp.length; i++) out[i] = hrp.charCodeAt(i)
  out[hrp.length] = SEPARATOR
  let pos = hrp.length + 1
  for (let i = 0; i < words.length; i++) {
    const w = words[i]!
    chk = polymodStep(chk) ^ w
    out[pos++] = CHARSET_CODES[w]!
  }
  for (let i = 0; i < CHECKSUM_WORDS; i++) chk = polymodStep(chk)
  chk ^= BECH32_CONST
  for (let i = 0; i < CHECKSUM_WORDS; i++) out[pos++] = CHARSET_CODES[(chk >>> (5 * (5 - i))) & 31]!
  return Buffer.from(out.buffer, out.byteOffset, out.length).toString('latin1')
}

/**
 * Decode a bech32 string (any length). Returns the lower-cased human-readable part and the data
 * words without the checksum.
 */
export function bech32Decode(str: string): { hrp: string; words: Uint8Array } {
  let hasLower = false
  let hasUpper = false
  for (let i = 0; i < str.length; i++) {
    const c = str.charCodeAt(i)
    // BIP-173: every character is US-ASCII 33..126.
    if (c < 33 || c > 126) throw new Bech32Error('invalid_character', `character code ${c} at position ${i} is not allowed in bech32`)
    if (c >= 0x61 && c <= 0x7a) hasLower = true
    else if (c >= 0x41 && c <= 0x5a) hasUpper = true
  }
  if (hasLower && hasUpper) throw new Bech32Error('mixed_case', 'bech32 string mixes upper and lower case')
  const lower = hasUpper ? str.toLowerCase() : str
  const sep = lower.lastIndexOf('1')
  if (sep < 1) throw new Bech32Error('missing_separator', 'bech32 string has no separator "1" after a human-readable part')
  if (lower.length - sep - 1 < CHECKSUM_WORDS) throw new Bech32Error('invalid_checksum', 'bech32 data part is shorter than its checksum')
  const hrp = lower.slice(0, sep)
  const words = new Uint8Array(lower.length - sep - 1 - CHECKSUM_WORDS)
  let chk = hrpChecksum(hrp)
  for (let i = sep + 1, j = 0; i < lower.length; i++, j++) {
    const w = CHARSET_REV[lower.charCodeAt(i)]!
    if (w === -1) throw new Bech32Error('invalid_character', `"${lower[i]}" at position ${i} is not a bech32 character`)
    chk = polymodStep(chk) ^ w
    if (j < words.length) words[j] = w
  }
  if (chk !== BECH32_CONST) throw new Bech32Error('invalid_checksum', 'bech32 checksum is invalid')
  return { hrp, words }
}

/** Words needed for `byteLength` bytes. */
export const wordLength = (byteLength: number): number => Math.ceil((byteLength * 8) / 5)

/** Pack bytes into 5-bit words at `out[offset]`, zero-padding the last word; returns the end offset. */
export function packBytes(bytes: Uint8Array, out: Uint8Array, offset: number): number {
  let acc = 0
  let bits = 0
  let pos = offset
  for (let i = 0; i < bytes.length; i++) {
    acc = ((acc << 8) | bytes[i]!) & 0xfff
    bits += 8
    while (bits >= 5) {
      bits -= 5
      out[pos++] = (acc >>> bits) & 31
    }
  }
  if (bits > 0) out[pos++] = (acc << (5 - bits)) & 31
  return pos
}

/** Pack bytes into 5-bit words, zero-padding the last word. */
export function bytesToWords(bytes: Uint8Array): Uint8Array {
  const words = new Uint8Array(wordLength(bytes.length))
  packBytes(bytes, words, 0)
  return words
}

/**
 * Unpack `words[start, end)` into bytes. With `pad`, trailing bits are zero-padded into one more byte
 * (the BOLT 11 signing data); without it they are dropped (a tagged field's data, e.g. 52 words → 32 bytes).
 */
export function wordsToBytes(words: Uint8Array, start = 0, end = words.length, pad = false): Uint8Array {
  const totalBits = (end - start) * 5
  const bytes = new Uint8Array(pad ? Math.ceil(totalBits / 8) : Math.floor(totalBits / 8))
  let acc = 0
  let bits = 0
  let pos = 0
  for (let i = start; i < end; i++) {
    acc = ((acc << 5) | words[i]!) & 0xfff
    bits += 5
    if (bits >= 8) {
      bits -= 8
      bytes[pos++] = (acc >>> bits) & 0xff
    }
  }
  if (pad && bits > 0) bytes[pos] = (acc << (8 - bits)) & 0xff
  return bytes
}

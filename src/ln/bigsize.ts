// BOLT 1 "Appendix A: BigSize Test Vectors" / "Type-Length-Value Format": BigSize is a big-endian
// variable-length integer (1, 3, 5 or 9 bytes) that MUST be minimally encoded. A non-minimal encoding
// is rejected, never silently accepted, because two encodings of one value would let a TLV stream
// have two serialisations (and break signatures and HMACs computed over it).
import { CodedError } from '../errors.ts'

/** Error of the BigSize/TLV codecs. `offset` is the byte offset in the input where decoding failed. */
export class TlvError extends CodedError<'truncated' | 'non_canonical' | 'not_increasing' | 'non_minimal' | 'too_long' | 'out_of_range'> {
  readonly offset: number
  /** The record type being read when the error occurred, when it was already decoded. */
  readonly type: bigint | undefined

  constructor(code: TlvError['code'], message: string, offset = 0, type?: bigint) {
    super(code, message)
    this.offset = offset
    this.type = type
  }
}

export const MAX_U64 = 0xffffffffffffffffn

/** Number of bytes `encodeBigSize(n)` produces. */
export function bigSizeLength(n: bigint): number {
  if (n < 0n || n > MAX_U64) throw new TlvError('out_of_range', `BigSize value out of range: ${n}`)
  if (n < 0xfdn) return 1
  if (n <= 0xffffn) return 3
  if (n <= 0xffffffffn) return 5
  return 9
}

/** Writes the canonical BigSize of `n` at `offset`; returns the offset after it. */
export function writeBigSize(out: Uint8Array, offset: number, n: bigint): number {
  const size = bigSizeLength(n)
  const view = new DataView(out.buffer, out.byteOffset, out.byteLength)
  if (size === 1) {
    out[offset] = Number(n)
  } else if (size === 3) {
    out[offset] = 0xfd
    view.setUint16(offset + 1, Number(n))
  } else if (size === 5) {
    out[offset] = 0xfe
    view.setUint32(offset + 1, Number(n))
  } else {
    out[offset] = 0xff
    view.setBigUint64(offset + 1, n)
  }
  return offset + size
}

export function encodeBigSize(n: bigint): Uint8Array {
  const out = new Uint8Array(bigSizeLength(n))
  writeBigSize(out, 0, n)
  return out
}

/** Decodes one BigSize at `offset`; `size` is how many bytes it took. Throws TlvError. */
export function decodeBigSize(buf: Uint8Array, offset = 0): { value: bigint; size: number } {
  if (offset >= buf.length) throw new TlvError('truncated', 'BigSize: no bytes left', offset)
  const first = buf[offset]!
  if (first < 0xfd) return { value: BigInt(first), size: 1 }
  const size = first === 0xfd ? 3 : first === 0xfe ? 5 : 9
  if (offset + size > buf.length) throw new TlvError('truncated', `BigSize: needs ${size} bytes`, offset)
  const view = new DataView(buf.buffer, buf.byteOffset + offset + 1, size - 1)
  let value: bigint
  let min: bigint
  if (size === 3) {
    value = BigInt(view.getUint16(0))
    min = 0xfdn
  } else if (size === 5) {
    value = BigInt(view.getUint32(0))
    min = 0x10000n
  } else {
    value = view.getBigUint64(0)
    min = 0x100000000n
  }
  if (value < min) throw new TlvError('non_canonical', `BigSize: ${value} is not minimally encoded`, offset)
  return { value, size }
}

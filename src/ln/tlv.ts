// BOLT 1 "Type-Length-Value Format": a stream of records `bigsize type ‖ bigsize length ‖ value`,
// types strictly increasing (which also forbids duplicates). Whether an unknown type is acceptable
// ("it's ok to be odd") depends on the message, so that rule belongs to the callers
// (e.g. decodeHopPayload), not to this codec. Also the truncated integers tu16/tu32/tu64 of BOLT 1
// "Fundamental Types": big-endian with leading zero bytes omitted, which readers MUST reject.
import { TlvError, bigSizeLength, writeBigSize, decodeBigSize } from './bigsize.ts'

export { TlvError, MAX_U64 } from './bigsize.ts'

export interface TlvRecord {
  type: bigint
  value: Uint8Array
}

/** Serialises records whose types must already be strictly increasing. */
export function encodeTlvStream(records: readonly TlvRecord[]): Uint8Array {
  let size = 0
  for (let i = 0; i < records.length; i++) {
    const { type, value } = records[i]!
    if (i > 0 && type <= records[i - 1]!.type) {
      throw new TlvError('not_increasing', `TLV type ${type} follows type ${records[i - 1]!.type}`, size, type)
    }
    size += bigSizeLength(type) + bigSizeLength(BigInt(value.length)) + value.length
  }
  const out = new Uint8Array(size)
  let offset = 0
  for (const { type, value } of records) {
    offset = writeBigSize(out, offset, type)
    offset = writeBigSize(out, offset, BigInt(value.length))
    out.set(value, offset)
    offset += value.length
  }
  return out
}

/**
 * Walks a TLV stream, calling `onRecord` with each record and the byte offset of its value.
 * Values are views into `buf` (no copy). Throws TlvError on framing errors.
 */
export function scanTlvStream(buf: Uint8Array, onRecord: (type: bigint, value: Uint8Array, valueOffset: number) => void): void {
  let offset = 0
  let previous = -1n
  while (offset < buf.length) {
    const start = offset
    const type = decodeBigSize(buf, offset)
    offset += type.size
    if (type.value <= previous) {
      throw new TlvError('not_increasing', `TLV type ${type.value} follows type ${previous}`, start, type.value)
    }
    previous = type.value
    let length: { value: bigint; size: number }
    try {
      length = decodeBigSize(buf, offset)
    } catch (err) {
      if (err instanceof TlvError) throw new TlvError(err.code, `TLV type ${type.value}: length: ${err.message}`, err.offset, type.value)
      throw err
    }
    offset += length.size
    if (length.value > BigInt(buf.length - offset)) {
      throw new TlvError('truncated', `TLV type ${type.value}: ${length.value} bytes declared, ${buf.length - offset} left`, start, type.value)
    }
    const end = offset + Number(length.value)
    onRecord(type.value, buf.subarray(offset, end), offset)
    offset = end
  }
}

/** Decodes a whole TLV stream; record values are views into `buf`. */
export function decodeTlvStream(buf: Uint8Array): TlvRecord[] {
  const records: TlvRecord[] = []
  scanTlvStream(buf, (type, value) => records.push({ type, value }))
  return records
}

function encodeTruncated(n: bigint, maxBytes: number): Uint8Array {
  if (n < 0n || n >= 1n << BigInt(8 * maxBytes)) {
    throw new TlvError('out_of_range', `tu${8 * maxBytes} value out of range: ${n}`)
  }
  let size = 0
  for (let v = n; v > 0n; v >>= 8n) size++
  const out = new Uint8Array(size)
  for (let i = size - 1, v = n; i >= 0; i--, v >>= 8n) out[i] = Number(v & 0xffn)
  return out
}

function decodeTruncated(v: Uint8Array, maxBytes: number): bigint {
  if (v.length > maxBytes) throw new TlvError('too_long', `tu${8 * maxBytes}: ${v.length} bytes`)
  if (v.length > 0 && v[0] === 0) throw new TlvError('non_minimal', `tu${8 * maxBytes}: leading zero byte`)
  let n = 0n
  for (const byte of v) n = (n << 8n) | BigInt(byte)
  return n
}

export function encodeTu64(n: bigint): Uint8Array {
  return encodeTruncated(n, 8)
}

export function decodeTu64(v: Uint8Array): bigint {
  return decodeTruncated(v, 8)
}

export function encodeTu32(n: number): Uint8Array {
  if (!Number.isInteger(n)) throw new TlvError('out_of_range', `tu32 value is not an integer: ${n}`)
  return encodeTruncated(BigInt(n), 4)
}

export function decodeTu32(v: Uint8Array): number {
  return Number(decodeTruncated(v, 4))
}

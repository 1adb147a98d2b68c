import { test } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes, randomInt } from 'node:crypto'
import { encodeBigSize, decodeBigSize } from '../../src/ln/bigsize.ts'
import { TlvError, decodeTlvStream, encodeTlvStream, decodeTu32, decodeTu64, encodeTu32, encodeTu64, type TlvRecord } from '../../src/ln/tlv.ts'

const hex = (s: string): Uint8Array => Uint8Array.from(Buffer.from(s, 'hex'))
const toHex = (b: Uint8Array): string => Buffer.from(b).toString('hex')

function assertTlvError(fn: () => unknown, code: TlvError['code'], offset?: number): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof TlvError, `expected TlvError, got ${String(err)}`)
    assert.equal(err.code, code)
    if (offset !== undefined) assert.equal(err.offset, offset)
    return true
  })
}

// BOLT 1 "Appendix A: BigSize Test Vectors"
const BIGSIZE_VALID: [string, bigint][] = [
  ['00', 0n],
  ['fc', 252n],
  ['fd00fd', 253n],
  ['fdffff', 65535n],
  ['fe00010000', 65536n],
  ['feffffffff', 4294967295n],
  ['ff0000000100000000', 4294967296n],
  ['ffffffffffffffffff', 18446744073709551615n]
]
const BIGSIZE_INVALID: [string, TlvError['code']][] = [
  ['fd00fc', 'non_canonical'],
  ['fe0000ffff', 'non_canonical'],
  ['ff00000000ffffffff', 'non_canonical'],
  ['fd00', 'truncated'],
  ['feffff', 'truncated'],
  ['ffffffffff', 'truncated'],
  ['', 'truncated'],
  ['fd', 'truncated'],
  ['fe', 'truncated'],
  ['ff', 'truncated']
]

test('BigSize: BOLT 1 appendix A vectors encode and decode', () => {
  for (const [bytes, value] of BIGSIZE_VALID) {
    assert.equal(toHex(encodeBigSize(value)), bytes)
    assert.deepEqual(decodeBigSize(hex(bytes)), { value, size: bytes.length / 2 })
  }
  for (const [bytes, code] of BIGSIZE_INVALID) assertTlvError(() => decodeBigSize(hex(bytes)), code, 0)
})

test('BigSize: decoding at an offset, and out-of-range values refused', () => {
  assert.deepEqual(decodeBigSize(hex('aafd0100'), 1), { value: 256n, size: 3 })
  assertTlvError(() => decodeBigSize(hex('aafd01'), 1), 'truncated', 1)
  assertTlvError(() => encodeBigSize(-1n), 'out_of_range')
  assertTlvError(() => encodeBigSize(1n << 64n), 'out_of_range')
})

test('BigSize: random values round-trip at every width', () => {
  for (let i = 0; i < 2000; i++) {
    const bits = BigInt(randomInt(1, 65))
    const value = BigInt('0x' + randomBytes(8).toString('hex')) & ((1n << bits) - 1n)
    const bytes = encodeBigSize(value)
    assert.deepEqual(decodeBigSize(bytes), { value, size: bytes.length })
  }
})

test('TLV stream: encodes records in order and decodes them back', () => {
  const records: TlvRecord[] = [
    { type: 1n, value: hex('') },
    { type: 2n, value: hex('0102') },
    { type: 253n, value: new Uint8Array(300) },
    { type: 1n << 40n, value: hex('ff') }
  ]
  const bytes = encodeTlvStream(records)
  assert.equal(toHex(bytes.subarray(0, 9)), '0100' + '02020102' + 'fd00fd')
  assert.deepEqual(decodeTlvStream(bytes), records)
  assert.deepEqual(decodeTlvStream(new Uint8Array(0)), [])
})

test('TLV stream: framing errors are typed with the offset and type', () => {
  // duplicate type 2 at offset 3
  assertTlvError(() => decodeTlvStream(hex('020100' + '020100')), 'not_increasing', 3)
  // decreasing
  assertTlvError(() => decodeTlvStream(hex('040100' + '020100')), 'not_increasing', 3)
  // value longer than the rest
  assertTlvError(() => decodeTlvStream(hex('020301')), 'truncated', 0)
  // length missing
  assertTlvError(() => decodeTlvStream(hex('0100' + '02')), 'truncated', 3)
  // non-canonical type and length
  assertTlvError(() => decodeTlvStream(hex('fd000100')), 'non_canonical', 0)
  assertTlvError(() => decodeTlvStream(hex('01fd000100')), 'non_canonical', 1)
  // 2^64-1 byte length does not overflow into a small one
  assertTlvError(() => decodeTlvStream(hex('01ffffffffffffffffff00')), 'truncated', 0)
  const err = (() => {
    try {
      decodeTlvStream(hex('0100' + '07fd0001'))
    } catch (e) {
      return e
    }
  })()
  assert.ok(err instanceof TlvError && err.type === 7n)
  assertTlvError(() => encodeTlvStream([{ type: 5n, value: hex('') }, { type: 5n, value: hex('') }]), 'not_increasing')
})

test('TLV stream: random streams round-trip byte for byte', () => {
  for (let i = 0; i < 300; i++) {
    const records: TlvRecord[] = []
    let type = BigInt(randomInt(0, 3))
    for (let n = randomInt(0, 8); n > 0; n--) {
      records.push({ type, value: randomBytes(randomInt(0, 300)) })
      type += BigInt(randomInt(1, 70000)) << BigInt(randomInt(0, 30))
    }
    const bytes = encodeTlvStream(records)
    const decoded = decodeTlvStream(bytes)
    assert.deepEqual(decoded.map((r) => [r.type, toHex(r.value)]), records.map((r) => [r.type, toHex(r.value)]))
    assert.deepEqual(encodeTlvStream(decoded), bytes)
  }
})

test('tu64/tu32: minimal encoding both ways', () => {
  assert.equal(toHex(encodeTu64(0n)), '')
  assert.equal(toHex(encodeTu64(1n)), '01')
  assert.equal(toHex(encodeTu64(0x0100n)), '0100')
  assert.equal(toHex(encodeTu64(2n ** 64n - 1n)), 'ffffffffffffffff')
  assert.equal(toHex(encodeTu32(500_000)), '07a120')
  assert.equal(decodeTu64(hex('')), 0n)
  assert.equal(decodeTu32(hex('07a120')), 500_000)
  assertTlvError(() => decodeTu64(hex('00')), 'non_minimal')
  assertTlvError(() => decodeTu64(hex('0001')), 'non_minimal')
  assertTlvError(() => decodeTu64(hex('010000000000000000')), 'too_long')
  assertTlvError(() => decodeTu32(hex('0100000000')), 'too_long')
  assertTlvError(() => encodeTu64(-1n), 'out_of_range')
  assertTlvError(() => encodeTu32(2 ** 32), 'out_of_range')
  assertTlvError(() => encodeTu32(1.5), 'out_of_range')
  for (let i = 0; i < 500; i++) {
    const n = BigInt('0x' + randomBytes(8).toString('hex')) >> BigInt(randomInt(0, 64))
    assert.equal(decodeTu64(encodeTu64(n)), n)
    const m = randomInt(0, 2 ** 32 - 1) >>> randomInt(0, 32)
    assert.equal(decodeTu32(encodeTu32(m)), m)
  }
})

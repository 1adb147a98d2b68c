// The mux record codec (the bytes of record-notice messages): exact round trips, strict decoding.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { decodeRecord, encodeRecord, ownedRecord } from '../../src/mux/records.ts'
import { MuxError, type MuxRecord } from '../../src/mux/types.ts'

const bytes = (n: number, fill: number): Buffer => Buffer.alloc(n, fill)
const RECORDS: MuxRecord[] = [
  {
    type: 'settle_requested',
    term: 7,
    hash: bytes(32, 1),
    setId: bytes(32, 2),
    paymentAddr: bytes(32, 3),
    amountMsat: (1n << 64n) - 1n,
    htlcs: [
      { circuit: { node: bytes(33, 4), chanId: 123456789012345678n, htlcId: 0n }, amountMsat: 1n },
      { circuit: { node: bytes(33, 5), chanId: 1n, htlcId: 18446744073709551615n }, amountMsat: 2n }
    ],
    time: 1_700_000_000_000
  },
  { type: 'cancelled', term: 0, hash: bytes(32, 6), time: 0 },
  { type: 'parts_failed', term: 9, hash: bytes(32, 7), time: 3 },
  { type: 'final', hash: bytes(32, 1), setId: bytes(32, 2), status: 'failed', time: 5 }
]

const isBadRecord = (err: unknown) => err instanceof MuxError && err.code === 'bad_record'

test('records round-trip exactly through their JSON line', () => {
  for (const r of RECORDS) {
    const line = encodeRecord(r)
    assert.ok(!line.includes('\n'))
    assert.deepEqual(decodeRecord(line), r)
  }
})

test('decoding refuses anything but a well-formed record', () => {
  const good = JSON.parse(encodeRecord(RECORDS[0]!)) as Record<string, unknown>
  const variants: unknown[] = [
    { ...good, type: 'settled' },
    { ...good, hash: 'zz'.repeat(32) },
    { ...good, hash: 'AB'.repeat(32) },
    { ...good, setId: '00' },
    { ...good, amountMsat: '18446744073709551616' },
    { ...good, amountMsat: '-1' },
    { ...good, amountMsat: '01' },
    { ...good, amountMsat: 5 },
    { ...good, htlcs: [] },
    { ...good, htlcs: [null] },
    { ...good, time: -1 },
    { ...good, time: '1' },
    { type: 'final', hash: good['hash'], setId: good['setId'], status: 'done', time: 1 },
    null,
    [1]
  ]
  for (const v of variants) assert.throws(() => decodeRecord(JSON.stringify(v)), isBadRecord, JSON.stringify(v))
  assert.throws(() => decodeRecord('{"type":'), isBadRecord)
})

test('an owned record holds its bytes in buffers of its own, not views of the frame it was decoded from', () => {
  for (const r of RECORDS) {
    const frame = Buffer.from(encodeRecord(r).repeat(20)) // a frame far larger than the record
    const viewed = viewsOf(r, frame)
    const owned = ownedRecord(viewed)
    assert.deepEqual(owned, r)
    for (const field of byteFields(owned)) assert.ok(field.buffer !== frame.buffer && field.buffer.byteLength < 256)
    frame.fill(0)
    assert.deepEqual(owned, r)
    assert.equal(ownedRecord(owned), owned, 'an owned record is not copied again: ledgers keeping it share it')
  }
})

/** `r` with each byte field a view of `frame` (as a decoder without copies returns it). */
function viewsOf(r: MuxRecord, frame: Buffer): MuxRecord {
  let at = 0
  const view = (b: Uint8Array): Buffer => {
    Buffer.from(b).copy(frame, at)
    return frame.subarray(at, (at += b.length))
  }
  const hash = view(r.hash)
  switch (r.type) {
    case 'settle_requested':
      return { ...r, hash, setId: view(r.setId), paymentAddr: view(r.paymentAddr), htlcs: r.htlcs.map((h) => ({ ...h, circuit: { ...h.circuit, node: view(h.circuit.node) } })) }
    case 'final':
      return { ...r, hash, setId: view(r.setId) }
    default:
      return { ...r, hash }
  }
}

function byteFields(r: MuxRecord): Uint8Array[] {
  switch (r.type) {
    case 'settle_requested': return [r.hash, r.setId, r.paymentAddr, ...r.htlcs.map((h) => h.circuit.node)]
    case 'final': return [r.hash, r.setId]
    default: return [r.hash]
  }
}

// The mux ledger (src/mux/ledger.ts): the same records in any order make the same ledger; a packed
// base from a snapshot plus live records behaves exactly like the same records folded live.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { MuxLedger } from '../../src/mux/ledger.ts'
import { LedgerBase, LedgerFormatError } from '../../src/mux/ledger-format.ts'
import { decodeRecord, encodeRecord } from '../../src/mux/records.ts'
import type { MuxRecord } from '../../src/mux/types.ts'
import { rng } from './fuzz-kit.ts'
import { history, OTHER_KEY, settleRecord, shuffled } from './ledger-fixture.ts'
import { IDENTITY_KEY as KEY } from './mux-fixture.ts'

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex')

/** Everything a ledger tells, in a comparable form. */
function view(ledger: MuxLedger): unknown {
  const order = ledger.settlementOrder()
  const hashes = new Set([...ledger.records()].map((r) => hex(r.hash)))
  return {
    size: ledger.size,
    invoices: ledger.invoices,
    records: [...ledger.records()].map(encodeRecord).sort(),
    entries: [...hashes].sort().map((h) => {
      const e = ledger.entry(h)!
      return [h, e.redeemable, ...[e.settle, e.final, e.cancel, e.partsFailed].map((r) => r && encodeRecord(r)), order.rankOf(h)]
    }),
    order: Array.from({ length: order.count }, (_, rank) => order.hashAt(rank)),
    pending: ledger.pending().sort(),
    refusing: ledger.refusing().sort(),
    contested: ledger.contested().sort()
  }
}

function packed(ledger: MuxLedger, chunkEntries = 7): LedgerBase {
  return LedgerBase.decode(Buffer.concat([...ledger.encode(chunkEntries)]))
}

test('the same records in any order, with copies and contradictions, make the same ledger', () => {
  const records = history(1, 300)
  const reference = view(MuxLedger.of(records, KEY))
  const random = rng(2)
  for (let i = 0; i < 5; i++) assert.deepEqual(view(MuxLedger.of(shuffled(records, random), KEY)), reference)
})

test('settlements are numbered by request time, then payment hash; only redeemable settle records count', () => {
  const random = rng(3)
  const a = settleRecord(random, KEY, 2000)
  const b = settleRecord(random, KEY, 1000)
  const c = settleRecord(random, KEY, 1000)
  const foreign = settleRecord(random, OTHER_KEY, 500)
  const ledger = MuxLedger.of([a, b, c, foreign], KEY)
  const order = ledger.settlementOrder()
  const [first, second] = Buffer.compare(b.hash, c.hash) < 0 ? [b, c] : [c, b]
  assert.deepEqual(Array.from({ length: order.count }, (_, r) => order.hashAt(r)), [hex(first.hash), hex(second.hash), hex(a.hash)])
  assert.equal(order.rankOf(hex(foreign.hash)), undefined)
  assert.deepEqual(ledger.refusing(), [hex(foreign.hash)])
  assert.deepEqual(ledger.pending().sort(), [a, b, c].map((r) => hex(r.hash)).sort())
  // Without the identity key (a witness) nothing is verified: the ledger only holds records.
  assert.equal(MuxLedger.of([foreign], null).entry(hex(foreign.hash))!.redeemable, true)
})

test('a packed base plus live records behaves as the same records folded live, at every split', () => {
  const random = rng(4)
  const records = shuffled(history(5, 200), random)
  for (const split of [0, 1, 57, 150, records.length]) {
    const base = packed(MuxLedger.of(records.slice(0, split), KEY))
    const restored = new MuxLedger(KEY, base)
    for (const record of records.slice(split)) restored.add(record)
    assert.deepEqual(view(restored), view(MuxLedger.of(records, KEY)), `split at ${split}`)
    // Packing a base plus live records again gives the ledger of all of them.
    assert.deepEqual(view(new MuxLedger(KEY, packed(restored, 1000))), view(MuxLedger.of(records, KEY)), `repacked at ${split}`)
  }
})

test('a fork shares the records so far and goes its own way', () => {
  const records = history(6, 40)
  const base = packed(MuxLedger.of(records.slice(0, 20), KEY))
  const ledger = new MuxLedger(KEY, base)
  for (const record of records.slice(20, 30)) ledger.add(record)
  const before = view(ledger)
  const fork = ledger.fork()
  for (const record of records.slice(30)) fork.add(record)
  assert.deepEqual(view(ledger), before)
  assert.deepEqual(view(fork), view(MuxLedger.of(records, KEY)))
})

test('add tells whether the ledger changed: a copy or a later record of the same type does not change it', () => {
  const random = rng(7)
  const settle = settleRecord(random, KEY, 1000)
  const ledger = new MuxLedger(KEY, packed(MuxLedger.of([settle], KEY)))
  assert.equal(ledger.add({ ...settle }), false)
  assert.equal(ledger.add({ ...settle, setId: Buffer.alloc(32, 1), time: 1001 }), false)
  assert.equal(ledger.add({ ...settle, setId: Buffer.alloc(32, 1), time: 999 }), true)
  assert.equal(ledger.size, 1)
  assert.ok(Buffer.from(ledger.get('settle_requested', settle.hash)!.setId).equals(Buffer.alloc(32, 1)))
})

test('the ledger keeps no view of what a record was decoded from (a notice, an audit block, a pool slab)', () => {
  const random = rng(8)
  const settle = settleRecord(random, KEY, 1000)
  const records: MuxRecord[] = [settle, { type: 'final', hash: settle.hash, setId: settle.setId, status: 'settled', time: 1001 }]
  const ledger = new MuxLedger(KEY)
  for (const record of records) {
    const decoded = decodeRecord(encodeRecord(record)) // hex-decoded fields: views of one 8 KB slab
    assert.ok(decoded.hash.buffer.byteLength > 1024)
    ledger.add(decoded)
  }
  const kept = [...ledger.records()]
  assert.deepEqual(kept.map(encodeRecord).sort(), records.map(encodeRecord).sort())
  const fields = kept.flatMap((r) => [r.hash, ...('setId' in r ? [r.setId] : []), ...(r.type === 'settle_requested' ? [r.paymentAddr, ...r.htlcs.map((h) => h.circuit.node)] : [])])
  for (const field of fields) assert.ok(field.buffer.byteLength <= 32 * 3 + 33 * 4, `a ${field.length}-byte field keeps ${field.buffer.byteLength} bytes`)
})

test('a damaged packed ledger is refused with a precise error', () => {
  const bytes = Buffer.concat([...MuxLedger.of(history(8, 10), KEY).encode(100)])
  const refused = (b: Uint8Array, message: RegExp): void => assert.throws(() => LedgerBase.decode(b), (e: unknown) => e instanceof LedgerFormatError && message.test(e.message))
  refused(bytes.subarray(0, bytes.length - 1), /undecodable ledger|overruns|trailing|counts/)
  refused(Buffer.concat([bytes, Buffer.alloc(1)]), /^trailing bytes after the last entry$/)
  refused(Buffer.from([0, 5, 9, 0]), /do not fit/)
})

test('of two copies of one record the newer term wins, in any order; of one term the earlier; a final record has no term', () => {
  const random = rng(12)
  const settle = settleRecord(random, KEY, 1000, 1)
  const recommitted = { ...settle, term: 3, time: 2000 }
  const cancel = { type: 'cancelled' as const, term: 2, hash: settle.hash, time: 1500 }
  const partsFailed = { type: 'parts_failed' as const, term: 4, hash: settle.hash, time: 900 }
  const records = [settle, recommitted, cancel, { ...cancel, term: 5, time: 3000 }, { ...cancel, time: 1400 }, partsFailed, { ...partsFailed, term: 2 }]
  for (let i = 0; i < 6; i++) {
    const ledger = MuxLedger.of(shuffled(records, random), KEY)
    assert.equal(encodeRecord(ledger.get('settle_requested', settle.hash)!), encodeRecord(recommitted))
    assert.deepEqual(ledger.get('cancelled', settle.hash), { ...cancel, term: 5, time: 3000 })
    assert.deepEqual(ledger.get('parts_failed', settle.hash), partsFailed)
    assert.equal(ledger.size, 3)
    assert.deepEqual(ledger.contested(), [hex(settle.hash)])
  }
  const final = { type: 'final' as const, hash: settle.hash, setId: settle.setId, status: 'settled' as const, time: 1100 }
  const finals = MuxLedger.of([{ ...final, status: 'failed' as const, time: 1200 }, final], KEY)
  assert.deepEqual(finals.get('final', settle.hash), final)
})

test('a snapshot keeps every term and parts_failed record; replace makes a hash hold exactly what stands', () => {
  const random = rng(13)
  const settle = settleRecord(random, KEY, 1000, 7)
  const partsFailed = { type: 'parts_failed' as const, term: 9, hash: settle.hash, time: 1100 }
  const other = settleRecord(random, KEY, 1200, 2)
  const cancel = { type: 'cancelled' as const, term: 3, hash: other.hash, time: 1300 }
  const ledger = MuxLedger.of([settle, partsFailed, other, cancel], KEY)
  const restored = new MuxLedger(KEY, packed(ledger))
  assert.deepEqual(view(restored), view(ledger))
  assert.deepEqual([...restored.records()].map(encodeRecord).sort(), [settle, partsFailed, other, cancel].map(encodeRecord).sort())
  // What a new leader's resolveGathered keeps of the first hash: the parts_failed record alone.
  const fork = restored.fork()
  fork.replace(settle.hash, [partsFailed])
  assert.equal(fork.size, 3)
  assert.equal(fork.get('settle_requested', settle.hash), undefined)
  assert.deepEqual(fork.contested(), [hex(other.hash)])
  assert.equal(fork.settlementOrder().count, 1)
  assert.deepEqual(view(restored), view(ledger), 'the fork went its own way')
})

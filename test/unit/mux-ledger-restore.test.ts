// Restoring the virtual node from a ledger (src/mux/ledger.ts) whose bulk is a packed snapshot:
// the machine must decide exactly as one restored from every record. And restore itself follows
// its rules per payment hash, checked against a model written out here.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { MuxLedger } from '../../src/mux/ledger.ts'
import { LedgerBase } from '../../src/mux/ledger-format.ts'
import { MuxMachine } from '../../src/mux/machine.ts'
import { encodeRecord } from '../../src/mux/records.ts'
import { statelessPreimage } from '../../src/ln/stateless.ts'
import type { MuxRecord } from '../../src/mux/types.ts'
import { IDENTITY_KEY } from './mux-fixture.ts'
import { rng } from './fuzz-kit.ts'
import { behaviour, history, realInvoices, restored, shuffled } from './ledger-fixture.ts'

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex')

test('a mux restored from a packed snapshot plus the later records decides exactly as one restored from every record', () => {
  const real = realInvoices()
  for (const seed of [1, 2, 3]) {
    const random = rng(seed)
    const records = shuffled([...history(seed, 120), ...real.records], random)
    const reference = restored(records)
    const expected = behaviour(reference.mux, reference.conflicts, records, real.payments)
    for (const split of [0, random.int(1, records.length), records.length]) {
      const snapshot = LedgerBase.decode(Buffer.concat([...MuxLedger.of(records.slice(0, split), IDENTITY_KEY).encode(16)]))
      const ledger = new MuxLedger(IDENTITY_KEY, snapshot)
      for (const record of records.slice(split)) ledger.add(record)
      const fromSnapshot = restored(ledger)
      assert.deepEqual(behaviour(fromSnapshot.mux, fromSnapshot.conflicts, records, real.payments), expected, `seed ${seed}, snapshot of ${split} of ${records.length} records`)
    }
  }
})

test('restore applies, per payment hash, the newest record of each type (newest term, then earliest): settle, then final, then cancel; parts_failed changes nothing; settlements numbered by request time', () => {
  const records = shuffled(history(9, 200), rng(10))
  const { mux, conflicts } = restored(records)
  // The model: per hash and type the record of the newest term (a final has none), then the
  // earliest, then the smaller encoding counts.
  const termOf = (r: MuxRecord): number => (r.type === 'final' ? -1 : r.term)
  const earliest = new Map<string, MuxRecord>()
  for (const r of records) {
    const key = `${r.type}:${hex(r.hash)}`
    const held = earliest.get(key)
    const newer = held === undefined || termOf(r) > termOf(held) || (termOf(r) === termOf(held) && (r.time < held.time || (r.time === held.time && encodeRecord(r) < encodeRecord(held))))
    if (newer) earliest.set(key, r)
  }
  const of = <T extends MuxRecord['type']>(type: T, h: string) => earliest.get(`${type}:${h}`) as Extract<MuxRecord, { type: T }> | undefined
  const expectedConflicts: MuxRecord[] = []
  const settled: Extract<MuxRecord, { type: 'settle_requested' }>[] = []
  for (const h of new Set(records.map((r) => hex(r.hash)))) {
    const settle = of('settle_requested', h)
    const final = of('final', h)
    const cancel = of('cancelled', h)
    const redeems = settle !== undefined && createHash('sha256').update(statelessPreimage(IDENTITY_KEY, settle.paymentAddr)).digest().equals(settle.hash)
    if (settle !== undefined && !redeems) expectedConflicts.push(settle)
    if (final !== undefined && !(redeems && Buffer.compare(final.setId, settle!.setId) === 0)) expectedConflicts.push(final)
    if (cancel !== undefined && redeems) expectedConflicts.push(cancel)
    const hash = Buffer.from(h, 'hex')
    const finalApplies = redeems && final !== undefined && Buffer.compare(final.setId, settle!.setId) === 0
    const status = redeems ? (finalApplies ? final!.status : 'settle_requested') : cancel !== undefined ? 'cancelled' : 'open'
    assert.equal(mux.status(hash), status, h)
    if (redeems) settled.push(settle!)
  }
  assert.deepEqual(conflicts.map(encodeRecord).sort(), expectedConflicts.map(encodeRecord).sort())
  settled.sort((a, b) => a.time - b.time || Buffer.compare(a.hash, b.hash))
  assert.deepEqual(mux.settlements(1n, 10_000).map((s) => [s.sequence, hex(s.hash), s.requestedAt]), settled.map((s, i) => [BigInt(i + 1), hex(s.hash), s.time]))
  // Paging: from a sequence number, at most max.
  assert.deepEqual(mux.settlements(5n, 3).map((s) => s.sequence), [5n, 6n, 7n])
})

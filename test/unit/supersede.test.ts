// Which gathered records a new leader keeps (src/cluster/supersede.ts): the newer term wins.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { resolveGathered } from '../../src/cluster/supersede.ts'
import type { MuxRecord } from '../../src/mux/types.ts'

const HASH = Buffer.alloc(32, 1)
const settle = (term: number, set = 2): MuxRecord => ({
  type: 'settle_requested', term, hash: HASH, setId: Buffer.alloc(32, set), paymentAddr: Buffer.alloc(32, 3), amountMsat: 10n,
  htlcs: [{ circuit: { node: Buffer.alloc(33, 4), chanId: 1n, htlcId: 2n }, amountMsat: 10n }], time: 1
})
const cancel = (term: number): MuxRecord => ({ type: 'cancelled', term, hash: HASH, time: 2 })
const partsFailed = (term: number): MuxRecord => ({ type: 'parts_failed', term, hash: HASH, time: 3 })
const final = (set = 2): MuxRecord => ({ type: 'final', hash: HASH, setId: Buffer.alloc(32, set), status: 'settled', time: 4 })

const types = (records: MuxRecord[]): string[] => records.map((r) => `${r.type}${'term' in r ? `@${r.term}` : ''}`)

test('a settle record loses to a parts_failed or cancel record of a newer term', () => {
  for (const newer of [partsFailed(4), cancel(4)]) {
    const { kept, superseded } = resolveGathered([settle(3), newer])
    assert.deepEqual(types(kept), types([newer]))
    assert.deepEqual(types(superseded), ['settle_requested@3'])
  }
})

test('a settle record wins over a cancel of its own or an older term, and ignores older parts_failed records', () => {
  assert.deepEqual(types(resolveGathered([cancel(3), settle(3)]).kept), ['settle_requested@3'])
  assert.deepEqual(types(resolveGathered([cancel(2), settle(3)]).superseded), ['cancelled@2'])
  // A leader fails parts, then settles a new set, in one term: the parts_failed record is spent and
  // must not be committed again under a later term, where it would look newer than the settlement.
  const { kept, superseded } = resolveGathered([partsFailed(2), settle(3), partsFailed(3)])
  assert.deepEqual(types(kept), ['settle_requested@3'])
  assert.deepEqual(types(superseded), ['parts_failed@3'])
})

test('a settle record with a final record took effect: nothing newer drops it', () => {
  const { kept, superseded } = resolveGathered([settle(3), final(), partsFailed(5)])
  assert.deepEqual(types(kept), ['settle_requested@3', 'final'])
  assert.deepEqual(types(superseded), ['parts_failed@5'])
})

test('copies of one record keep the newest term; of two sets for one hash the newer term wins', () => {
  const copies = resolveGathered([settle(5), settle(3), settle(4)])
  assert.deepEqual(types(copies.kept), ['settle_requested@5'])
  assert.deepEqual(copies.superseded, [])
  const sets = resolveGathered([settle(3, 2), settle(6, 9)])
  assert.deepEqual(types(sets.kept), ['settle_requested@6'])
  assert.deepEqual(types(sets.superseded), ['settle_requested@3'])
  assert.equal((sets.kept[0] as Extract<MuxRecord, { type: 'settle_requested' }>).setId[0], 9)
})

test('records come out in restore order: settles, finals, cancels, parts_failed', () => {
  const other = Buffer.alloc(32, 8)
  const { kept } = resolveGathered([
    { type: 'parts_failed', term: 1, hash: other, time: 1 },
    { type: 'cancelled', term: 1, hash: other, time: 1 },
    final(),
    settle(1)
  ])
  assert.deepEqual(kept.map((r) => r.type), ['settle_requested', 'final', 'cancelled', 'parts_failed'])
})

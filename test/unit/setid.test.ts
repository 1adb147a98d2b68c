// HTLC set id: the lnmux vectors exactly, order independence, and input checks.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { loadVector } from '../vectors.ts'
import { htlcSetId, SetIdError, type HtlcKey } from '../../src/ln/setid.ts'

interface SetIdVectors {
  cases: { htlcs: { node: string; chan_id: string; htlc_id: string }[]; set_id: string }[]
}
const { cases } = loadVector<SetIdVectors>('lnmux-setid.json')
const toKey = (h: { node: string; chan_id: string; htlc_id: string }): HtlcKey => ({
  node: new Uint8Array(Buffer.from(h.node, 'hex')),
  chanId: BigInt(h.chan_id),
  htlcId: BigInt(h.htlc_id)
})
const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex')

test('lnmux set id vectors', () => {
  assert.equal(cases.length, 3)
  for (const c of cases) assert.equal(hex(htlcSetId(c.htlcs.map(toKey))), c.set_id)
})

test('set id is independent of the order the HTLCs arrived in, sorted by node, then chan, then htlc', () => {
  const node = (b: number): Uint8Array => new Uint8Array(33).fill(b)
  const keys: HtlcKey[] = [
    { node: node(3), chanId: 1n, htlcId: 1n },
    { node: node(2), chanId: 9n, htlcId: 0n },
    { node: node(2), chanId: 1n, htlcId: 7n },
    { node: node(2), chanId: 1n, htlcId: 2n }
  ]
  const id = hex(htlcSetId(keys))
  assert.equal(hex(htlcSetId([...keys].reverse())), id)
  assert.equal(hex(htlcSetId([keys[2]!, keys[0]!, keys[3]!, keys[1]!])), id)
  // The same hash computed by hand over the sorted serialisation.
  const ser = (k: HtlcKey): Buffer => {
    const b = Buffer.alloc(49)
    b.set(k.node)
    b.writeBigUInt64BE(k.chanId, 33)
    b.writeBigUInt64BE(k.htlcId, 41)
    return b
  }
  const sorted = [keys[3]!, keys[2]!, keys[1]!, keys[0]!]
  assert.equal(id, createHash('sha256').update(Buffer.concat(sorted.map(ser))).digest('hex'))
  // A different set gives a different id.
  assert.notEqual(hex(htlcSetId(keys.slice(1))), id)
})

test('set id refuses malformed HTLC keys', () => {
  const good: HtlcKey = { node: new Uint8Array(33), chanId: 1n, htlcId: 1n }
  for (const bad of [{ ...good, node: new Uint8Array(32) }, { ...good, chanId: -1n }, { ...good, htlcId: 1n << 64n }])
    assert.throws(() => htlcSetId([good, bad]), (e: unknown) => e instanceof SetIdError && e.code === 'invalid_htlc_key')
})

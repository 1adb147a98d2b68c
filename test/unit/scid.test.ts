// Short channel ids and the lnmux virtual scid, checked against values worked out by hand.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { virtualScid, formatScid, parseScid, ScidError } from '../../src/ln/scid.ts'

const key = (hex: string): Uint8Array => new Uint8Array(Buffer.from(hex, 'hex'))

test('virtualScid: last 8 bytes of the key, big-endian, top bit forced to 1', () => {
  // BOLT 11 example payee 03e7156a…2f221ede0f934dd9ad: last 8 bytes 22 1e de 0f 93 4d d9 ad; 0x22 | 0x80 = 0xa2.
  assert.equal(virtualScid(key('03e7156ae33b0a208d0744199163177e909e80176e55d97a2f221ede0f934dd9ad')), 0xa21ede0f934dd9adn)
  // Top bit already set: unchanged.
  assert.equal(virtualScid(key('02' + '00'.repeat(24) + 'f102030405060708')), 0xf102030405060708n)
  // All zero tail: only the forced bit.
  assert.equal(virtualScid(key('03' + 'ff'.repeat(24) + '0000000000000000')), 0x8000000000000000n)
  // A subarray view reads its own bytes, not the underlying buffer's start.
  const buf = key('aaaa' + '02' + '11'.repeat(24) + '0102030405060708' + 'bbbb')
  assert.equal(virtualScid(buf.subarray(2, 35)), 0x8102030405060708n)
  // The forced bit puts it at block height ≥ 2^23, far beyond any real channel.
  assert.ok(virtualScid(key('02' + '00'.repeat(32))) >> 40n >= 1n << 23n)
  assert.throws(() => virtualScid(new Uint8Array(32)), (e: unknown) => e instanceof ScidError && e.code === 'invalid_pubkey')
})

test('formatScid / parseScid: BLOCKxTXxOUTPUT, BOLT 11 example values', () => {
  // BOLT 11 example route hint: short_channel_id 0x0102030405060708 is 66051x263430x1800
  // (0x010203 = 66051, 0x040506 = 263430, 0x0708 = 1800).
  assert.equal(formatScid(0x0102030405060708n), '66051x263430x1800')
  assert.equal(parseScid('66051x263430x1800'), 0x0102030405060708n)
  assert.equal(formatScid(0x030405060708090an), '197637x395016x2314')
  assert.equal(parseScid('589390x3312x1'), (589390n << 40n) | (3312n << 16n) | 1n)
  assert.equal(formatScid(0n), '0x0x0')
  assert.equal(formatScid((1n << 64n) - 1n), '16777215x16777215x65535')
  for (const scid of [1n, 0x8000000000000000n, 0xa21ede0f934dd9adn]) assert.equal(parseScid(formatScid(scid)), scid)
})

test('parseScid / formatScid reject malformed input with ScidError', () => {
  for (const bad of ['', '1x2', '1x2x3x4', '16777216x0x0', '0x16777216x0', '0x0x65536', 'ax1x1', ' 1x1x1', '1x1x1 ', '-1x1x1'])
    assert.throws(() => parseScid(bad), (e: unknown) => e instanceof ScidError && e.code === 'invalid_scid', bad)
  for (const bad of [-1n, 1n << 64n]) assert.throws(() => formatScid(bad), (e: unknown) => e instanceof ScidError && e.code === 'invalid_scid')
})

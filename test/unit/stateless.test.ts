// Stateless invoices (lnmux-compatible derivation): payment_addr layout, preimage, and full round trips.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { hmac } from '@noble/hashes/hmac.js'
import { sha256 as nobleSha256 } from '@noble/hashes/sha2.js'
import {
  createStatelessInvoice,
  newPaymentAddr,
  parsePaymentAddr,
  statelessPreimage,
  virtualRouteHint,
  DEFAULT_VIRTUAL_CHANNEL_POLICY,
  type StatelessInvoiceOptions
} from '../../src/ln/stateless.ts'
import { decodeInvoice, InvoiceError } from '../../src/ln/bolt11.ts'
import { virtualScid } from '../../src/ln/scid.ts'
import { secp256k1 } from '../../src/ln/secp256k1.ts'

const hex = (b: Uint8Array | undefined): string | undefined => (b === undefined ? undefined : Buffer.from(b).toString('hex'))
const sha256 = (data: string | Uint8Array): Uint8Array => createHash('sha256').update(data).digest()
const isArgError = (e: unknown): boolean => e instanceof InvoiceError && e.code === 'invalid_argument'

const identityKey = sha256('highwire identity')
const nodes = [secp256k1.publicKey(sha256('alice')), secp256k1.publicKey(sha256('bob'))]
const random16 = Uint8Array.from({ length: 16 }, (_, i) => i + 1)

test('payment_addr = 16 random bytes ‖ BE64 expiry ‖ BE64 amount', () => {
  // 1_700_003_600 = 0x6553f100 + 0xe10; 250_000_000 = 0x0ee6b280.
  const addr = newPaymentAddr(1_700_003_600, 250_000_000n, random16)
  assert.equal(hex(addr), '0102030405060708090a0b0c0d0e0f10' + '000000006553ff10' + '000000000ee6b280')
  assert.deepEqual(parsePaymentAddr(addr), { expiryUnix: 1_700_003_600, amountMsat: 250_000_000n })
  const max = newPaymentAddr(Number.MAX_SAFE_INTEGER, (1n << 64n) - 1n, random16)
  assert.deepEqual(parsePaymentAddr(max), { expiryUnix: Number.MAX_SAFE_INTEGER, amountMsat: (1n << 64n) - 1n })
})

test('payment_addr inputs out of range are refused', () => {
  assert.throws(() => newPaymentAddr(1, 1n, new Uint8Array(15)), isArgError)
  assert.throws(() => newPaymentAddr(-1, 1n, random16), isArgError)
  assert.throws(() => newPaymentAddr(1.5, 1n, random16), isArgError)
  assert.throws(() => newPaymentAddr(1, -1n, random16), isArgError)
  assert.throws(() => newPaymentAddr(1, 1n << 64n, random16), isArgError)
  assert.throws(() => parsePaymentAddr(new Uint8Array(31)), isArgError)
  // An expiry no invoice of ours can carry (beyond 2^53 s) is refused rather than rounded.
  assert.throws(() => parsePaymentAddr(new Uint8Array(32).fill(0xff)), isArgError)
})

test('preimage is HMAC-SHA256 keyed by the identity key (checked against an independent HMAC)', () => {
  const addr = newPaymentAddr(1_700_003_600, 1000n, random16)
  assert.equal(hex(statelessPreimage(identityKey, addr)), hex(hmac(nobleSha256, identityKey, addr)))
  // Any change to the address changes the preimage: amount and expiry are authenticated.
  const other = newPaymentAddr(1_700_003_600, 1001n, random16)
  assert.notEqual(hex(statelessPreimage(identityKey, other)), hex(statelessPreimage(identityKey, addr)))
})

const options: StatelessInvoiceOptions = {
  identityKey,
  network: 'regtest',
  amountMsat: 123_456_789n,
  expirySeconds: 3600,
  description: 'highwire test',
  routeHints: nodes.map((n) => virtualRouteHint(n)),
  minFinalCltvExpiry: 40,
  nowUnix: 1_700_000_000,
  random16
}

test('round trip: create → decode → parse payment_addr → recompute preimage → hash matches', () => {
  const created = createStatelessInvoice(options)
  const d = decodeInvoice(created.invoice)
  assert.equal(hex(d.paymentSecret), hex(created.paymentAddr))
  const { expiryUnix, amountMsat } = parsePaymentAddr(d.paymentSecret)
  assert.equal(expiryUnix, 1_700_003_600)
  assert.equal(created.expiryUnix, expiryUnix)
  assert.equal(amountMsat, 123_456_789n)
  const preimage = statelessPreimage(identityKey, d.paymentSecret)
  assert.equal(hex(preimage), hex(created.preimage))
  assert.equal(hex(sha256(preimage)), hex(d.paymentHash))
  assert.equal(hex(d.paymentHash), hex(created.paymentHash))
})

test('invoice content: features 9/14/17, one r hint per node over its virtual scid, c, x, d, s, signed by the identity key', () => {
  const d = decodeInvoice(createStatelessInvoice(options).invoice)
  assert.equal(d.network, 'regtest')
  assert.equal(d.amountMsat, 123_456_789n)
  assert.equal(d.timestamp, 1_700_000_000)
  assert.deepEqual(d.features, [9, 14, 17])
  assert.equal(d.expiry, 3600)
  assert.equal(d.minFinalCltvExpiry, 40)
  assert.equal(d.description, 'highwire test')
  assert.equal(d.descriptionHash, undefined)
  assert.equal(hex(d.payee), hex(secp256k1.publicKey(identityKey)))
  assert.equal(d.routeHints.length, 2)
  d.routeHints.forEach((hint, i) => {
    assert.equal(hint.length, 1)
    assert.equal(hex(hint[0]!.pubkey), hex(nodes[i]))
    assert.equal(hint[0]!.shortChannelId, virtualScid(nodes[i]!))
    assert.equal(hint[0]!.feeBaseMsat, DEFAULT_VIRTUAL_CHANNEL_POLICY.feeBaseMsat)
    assert.equal(hint[0]!.feeProportionalMillionths, DEFAULT_VIRTUAL_CHANNEL_POLICY.feeProportionalMillionths)
    assert.equal(hint[0]!.cltvExpiryDelta, 40)
  })
})

test('description hash instead of description; a custom virtual channel policy', () => {
  const policy = { feeBaseMsat: 1000, feeProportionalMillionths: 10, cltvExpiryDelta: 80 }
  const created = createStatelessInvoice({
    ...options,
    description: undefined,
    descriptionHash: sha256('a long description'),
    routeHints: [virtualRouteHint(nodes[0]!, policy)]
  })
  const d = decodeInvoice(created.invoice)
  assert.equal(d.description, undefined)
  assert.equal(hex(d.descriptionHash), hex(sha256('a long description')))
  assert.deepEqual(
    { ...d.routeHints[0]![0]!, pubkey: hex(d.routeHints[0]![0]!.pubkey) },
    { pubkey: hex(nodes[0]), shortChannelId: virtualScid(nodes[0]!), ...policy }
  )
  // Neither given: an empty description, as lnd writes for an empty memo.
  assert.equal(decodeInvoice(createStatelessInvoice({ ...options, description: undefined }).invoice).description, '')
})

test('different randomness gives unrelated payment hashes; the same inputs the same invoice', () => {
  const a = createStatelessInvoice(options)
  const b = createStatelessInvoice({ ...options, random16: new Uint8Array(16) })
  assert.notEqual(hex(a.paymentHash), hex(b.paymentHash))
  assert.equal(createStatelessInvoice(options).invoice, a.invoice)
})

test('createStatelessInvoice refuses what the HTLC checks could not honour', () => {
  assert.throws(() => createStatelessInvoice({ ...options, amountMsat: 0n }), isArgError)
  assert.throws(() => createStatelessInvoice({ ...options, expirySeconds: 0 }), isArgError)
  assert.throws(() => createStatelessInvoice({ ...options, descriptionHash: sha256('x') }), isArgError) // both d and h
  assert.throws(() => createStatelessInvoice({ ...options, identityKey: new Uint8Array(32) }), isArgError)
  assert.throws(() => createStatelessInvoice({ ...options, random16: new Uint8Array(8) }), isArgError)
})

// BOLT 11: every example of ../shared/vectors/bolt11-vectors.json, the reader rules one by one, the
// writer's choices, and the `decode` command.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { loadVector } from '../vectors.ts'
import {
  decodeInvoice,
  encodeInvoice,
  signInvoiceWords,
  InvoiceError,
  TAG,
  type DecodedInvoice,
  type FieldLetter,
  type InvoiceFields,
  type RouteHintHop
} from '../../src/ln/bolt11.ts'
import { bech32Decode, bech32Encode, bytesToWords } from '../../src/ln/bech32.ts'
import { parseScid } from '../../src/ln/scid.ts'
import { secp256k1 } from '../../src/ln/secp256k1.ts'
import { decodeCommand, invoiceToJson } from '../../src/cli/decode.ts'

interface Bolt11Vector {
  title: string
  invoice: string
  valid: boolean
  sig_rs?: string
  recid?: number
  signing_data?: string
  signing_hash?: string
}
const vectors = loadVector<Bolt11Vector[]>('bolt11-vectors.json')

const hex = (b: Uint8Array | undefined): string | undefined => (b === undefined ? undefined : Buffer.from(b).toString('hex'))
const unhex = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'hex'))
const sha256 = (data: string | Uint8Array): Uint8Array => createHash('sha256').update(data).digest()

// ---- Expected fields, transcribed from the breakdowns in BOLT 11 "Examples" ----
const PRIV_KEY = unhex('e126f68f7eafcc8b74f54d269fe206be715000f94dac067d1c04a8ca3b2db734')
const PAYEE = '03e7156ae33b0a208d0744199163177e909e80176e55d97a2f221ede0f934dd9ad'
const HASH = '0001020304050607080900010203040506070809000102030405060708090102'
const SECRET = '11'.repeat(32)
const TIMESTAMP = 1496314658
const CAKE =
  'One piece of chocolate cake, one icecream cone, one pickle, one slice of swiss cheese, one slice of salami, one lollypop, one piece of cherry pie, one sausage, one cupcake, and one slice of watermelon'
const BLOCKSTREAM =
  'Blockstream Store: 88.85 USD for Blockstream Ledger Nano S x 1, "Back In My Day" Sticker x 2, "I Got Lightning Working" Sticker x 2 and 1 more items'

interface Expected {
  network?: InvoiceFields['network']
  amountMsat?: bigint
  timestamp?: number
  paymentHash?: string
  description?: string
  descriptionHash?: string
  expiry?: number
  minFinalCltvExpiry?: number
  routeHints?: RouteHintHop[][]
  features?: number[]
  paymentMetadata?: string
  /** Number of fields the reader must skip (unknown, `f`, wrong-length `p`/`h`/`s`/`n`). */
  skipped?: number
  /** Field order of the original writer, for re-encoding byte for byte (undefined: not reproducible). */
  order?: FieldLetter[]
  /** false for the high-S example, whose recovered key implementations disagree on. */
  payee?: false
}
const hop = (pubkey: string, scid: bigint, feeBaseMsat: number, feeProportionalMillionths: number, cltvExpiryDelta: number): RouteHintHop => ({
  pubkey: unhex(pubkey),
  shortChannelId: scid,
  feeBaseMsat,
  feeProportionalMillionths,
  cltvExpiryDelta
})
const LEGACY_ORDER: FieldLetter[] = ['s', 'p', 'd', 'h', 'x', '9']
const DEFAULT_ORDER: FieldLetter[] = ['p', 'd', 'h', 'm', 's', 'x', 'c', 'r', 'n', '9']
const cakeHash = hex(sha256(CAKE))
const fallback = { amountMsat: 2_000_000_000n, descriptionHash: cakeHash, skipped: 1 }
const coffeeBeans: Expected = { amountMsat: 2_500_000_000n, description: 'coffee beans', features: [8, 14, 99], order: DEFAULT_ORDER }

const EXPECTED: Record<string, Expected> = {
  'Please make a donation of any amount': { description: 'Please consider supporting this project', order: LEGACY_ORDER },
  'Please send $3 for a cup of coffee': { amountMsat: 250_000_000n, description: '1 cup coffee', expiry: 60, order: LEGACY_ORDER },
  'Please send 0.0025 BTC for a cup of nonsense': { amountMsat: 250_000_000n, description: 'ナンセンス 1杯', expiry: 60, order: LEGACY_ORDER },
  'Now send $24 for an entire list of things': { amountMsat: 2_000_000_000n, descriptionHash: cakeHash, order: LEGACY_ORDER },
  'The same, on testnet': { ...fallback, network: 'testnet' },
  'On mainnet, with fallback address 1RustyRX2oai4EYYDpQGWvEL62BBGqN9T': {
    ...fallback,
    routeHints: [
      [
        hop('029e03a901b85534ff1e92c43c74431f7ce72046060fcf7a95c37e148f78c77255', 0x0102030405060708n, 1, 20, 3),
        hop('039e03a901b85534ff1e92c43c74431f7ce72046060fcf7a95c37e148f78c77255', 0x030405060708090an, 2, 30, 4)
      ]
    ]
  },
  'On mainnet, with fallback (P2SH)': fallback,
  'On mainnet, with fallback (P2WPKH)': fallback,
  'On mainnet, with fallback (P2WSH)': fallback,
  'On mainnet, with fallback (P2TR)': fallback,
  'Please send 0.00967878534 BTC': {
    amountMsat: 967_878_534n,
    timestamp: 1572468703,
    paymentHash: '462264ede7e14047e9b249da94fefc47f41f7d02ee9b091815a5506bc8abf75f',
    description: BLOCKSTREAM,
    expiry: 604800,
    minFinalCltvExpiry: 10,
    routeHints: [[hop('03d06758583bb5154774a6eb221b1276c9e82d65bbaceca806d90e20c108f4b1c7', parseScid('589390x3312x1'), 1000, 2500, 40)]],
    order: DEFAULT_ORDER
  },
  'Please send $30 for coffee beans': coffeeBeans,
  'Same, but all upper case.': coffeeBeans,
  'Same, but including fields which must be ignored.': { ...coffeeBeans, skipped: 10, order: undefined },
  'Please send 0.01 BTC with payment metadata 0x01fafaf0': {
    amountMsat: 1_000_000_000n,
    description: 'payment metadata inside',
    paymentMetadata: '01fafaf0',
    features: [8, 14, 48],
    order: DEFAULT_ORDER
  },
  'Public-key recovery with high-S signature': { description: 'Please consider supporting this project', payee: false }
}

const EXPECTED_ERRORS: Record<string, InvoiceError['code']> = {
  'Same, but adding invalid unknown feature 100': 'unknown_required_feature',
  'Bech32 checksum is invalid.': 'invalid_checksum',
  'Malformed bech32 string (no 1)': 'missing_separator',
  'Malformed bech32 string (mixed case)': 'mixed_case',
  'Signature is not recoverable.': 'unrecoverable_signature',
  'String is too short.': 'too_short',
  'Invalid multiplier': 'invalid_amount',
  'Invalid sub-millisatoshi precision.': 'invalid_amount',
  'Missing required `s` field.': 'missing_payment_secret',
  "Non canonical signature (high-S) with 'n' field defined": 'high_s_signature'
}

function expectedFor(title: string): Expected {
  const key = Object.keys(EXPECTED).find((k) => title.startsWith(k))
  assert.ok(key !== undefined, `no expectation for vector "${title}"`)
  return EXPECTED[key]!
}

/** The fields an example decodes to, defaults of the BOLT 11 examples filled in. */
function expectedFields(e: Expected): InvoiceFields {
  return {
    network: e.network ?? 'mainnet',
    amountMsat: e.amountMsat,
    timestamp: e.timestamp ?? TIMESTAMP,
    paymentHash: unhex(e.paymentHash ?? HASH),
    paymentSecret: unhex(SECRET),
    description: e.description,
    descriptionHash: e.descriptionHash === undefined ? undefined : unhex(e.descriptionHash),
    expiry: e.expiry,
    minFinalCltvExpiry: e.minFinalCltvExpiry,
    routeHints: e.routeHints ?? [],
    features: e.features ?? [8, 14],
    paymentMetadata: e.paymentMetadata === undefined ? undefined : unhex(e.paymentMetadata)
  }
}

function assertFields(d: DecodedInvoice, f: InvoiceFields, label: string): void {
  assert.equal(d.network, f.network, label)
  assert.equal(d.amountMsat, f.amountMsat, label)
  assert.equal(d.timestamp, f.timestamp, label)
  assert.equal(hex(d.paymentHash), hex(f.paymentHash), label)
  assert.equal(hex(d.paymentSecret), hex(f.paymentSecret), label)
  assert.equal(d.description, f.description, label)
  assert.equal(hex(d.descriptionHash), hex(f.descriptionHash), label)
  assert.equal(d.expiry, f.expiry ?? 3600, label)
  assert.equal(d.minFinalCltvExpiry, f.minFinalCltvExpiry ?? 18, label)
  assert.deepEqual(d.routeHints, f.routeHints ?? [], label)
  assert.deepEqual(d.features, [...f.features].sort((a, b) => a - b), label)
  assert.equal(hex(d.paymentMetadata), hex(f.paymentMetadata), label)
}

test('BOLT 11 vectors: every valid example decodes to the fields of its breakdown', () => {
  const valid = vectors.filter((v) => v.valid)
  assert.equal(valid.length, 16)
  for (const v of valid) {
    const e = expectedFor(v.title)
    const d = decodeInvoice(v.invoice)
    assertFields(d, expectedFields(e), v.title)
    assert.equal(d.unknownFields.length, e.skipped ?? 0, v.title)
    assert.equal(d.signatureValid, true)
    if (e.payee !== false) assert.equal(hex(d.payee), PAYEE, v.title)
    if (v.sig_rs !== undefined) {
      assert.equal(hex(d.signature), v.sig_rs, v.title)
      assert.equal(d.recovery, v.recid, v.title)
      assert.equal(hex(d.signingData), v.signing_data, v.title)
      assert.equal(hex(d.signingHash), v.signing_hash, v.title)
    }
  }
})

test('BOLT 11 vectors: every invalid example is rejected for its reason', () => {
  const invalid = vectors.filter((v) => !v.valid)
  assert.equal(invalid.length, 10)
  for (const v of invalid) {
    const code = EXPECTED_ERRORS[v.title]
    assert.ok(code !== undefined, `no expected error for "${v.title}"`)
    assert.throws(() => decodeInvoice(v.invoice), (err: unknown) => err instanceof InvoiceError && err.code === code, v.title)
  }
})

test('BOLT 11 vectors: re-encoding from the fields with the examples key reproduces the invoice byte for byte', () => {
  let reproduced = 0
  for (const v of vectors.filter((x) => x.valid)) {
    const e = expectedFor(v.title)
    if (e.order === undefined) continue // fallback addresses, ignored fields, a high-S signature
    const invoice = encodeInvoice(expectedFields(e), PRIV_KEY, { fieldOrder: e.order })
    assert.equal(invoice, v.invoice.toLowerCase(), v.title)
    reproduced++
  }
  assert.equal(reproduced, 8)
})

// ---- Reader rules, on invoices crafted word by word ----

const KEY = sha256('highwire bolt11 test key')
const KEY_PUB = secp256k1.publicKey(KEY)
type RawField = [type: number, words: Uint8Array]
const bytesField = (type: number, bytes: Uint8Array): RawField => [type, bytesToWords(bytes)]
const P = bytesField(TAG.PAYMENT_HASH, sha256('preimage'))
const S = bytesField(TAG.PAYMENT_SECRET, sha256('secret'))
const D = bytesField(TAG.DESCRIPTION, new TextEncoder().encode('test'))
const H = bytesField(TAG.DESCRIPTION_HASH, sha256('test'))

/** Sign an invoice made of exactly these tagged fields, in this order. */
function raw(fields: RawField[], hrp = 'lnbc', key = KEY): string {
  const words: number[] = [0, 0, 0, 0, 0, 0, 1] // timestamp 1
  for (const [type, data] of fields) words.push(type, data.length >> 5, data.length & 31, ...data)
  return signInvoiceWords(hrp, Uint8Array.from(words), key)
}

function rejects(invoice: string, code: InvoiceError['code']): void {
  assert.throws(() => decodeInvoice(invoice), (err: unknown) => err instanceof InvoiceError && err.code === code, code)
}

test('reader: a well-formed minimal invoice decodes with the BOLT 11 defaults (x 3600, c 18, no features)', () => {
  const d = decodeInvoice(raw([P, S, D]))
  assert.equal(d.expiry, 3600)
  assert.equal(d.minFinalCltvExpiry, 18)
  assert.deepEqual(d.features, [])
  assert.equal(d.amountMsat, undefined)
  assert.equal(hex(d.payee), hex(KEY_PUB))
})

test('reader: networks by prefix, including signet (lntbs) and regtest (lnbcrt); unknown prefixes fail', () => {
  const cases: [string, InvoiceFields['network']][] = [['lnbc', 'mainnet'], ['lntb', 'testnet'], ['lntbs', 'signet'], ['lnbcrt', 'regtest']]
  for (const [prefix, network] of cases) {
    assert.equal(decodeInvoice(raw([P, S, D], prefix)).network, network)
    assert.equal(decodeInvoice(raw([P, S, D], prefix + '25m')).amountMsat, 2_500_000_000n)
  }
  rejects(raw([P, S, D], 'lnxy'), 'unknown_network')
  rejects(raw([P, S, D], 'bc'), 'unknown_network')
})

test('reader: amount multipliers, the `p` last-digit rule, and malformed amounts', () => {
  const amounts: [string, bigint][] = [['1', 100_000_000_000n], ['2m', 200_000_000n], ['3u', 300_000n], ['4n', 400n], ['50p', 5n], ['10p', 1n]]
  for (const [text, msat] of amounts) assert.equal(decodeInvoice(raw([P, S, D], 'lnbc' + text)).amountMsat, msat, text)
  // The largest u64 msat amount in pico-bitcoin has 21 digits; one more msat or one more digit is refused.
  assert.equal(decodeInvoice(raw([P, S, D], 'lnbc184467440737095516150p')).amountMsat, (1n << 64n) - 1n)
  for (const bad of ['11p', '2500x', '1.5m', 'm', '-1', '1mm', '184467440737096', '184467440737095516160p', '0001844674407370955161500p'])
    rejects(raw([P, S, D], 'lnbc' + bad), 'invalid_amount')
})

test('reader: p, h, s and n of the wrong length are skipped, as BOLT 11 says', () => {
  const shortP: RawField = [TAG.PAYMENT_HASH, new Uint8Array(51)]
  const longS: RawField = [TAG.PAYMENT_SECRET, new Uint8Array(53)]
  const shortH: RawField = [TAG.DESCRIPTION_HASH, new Uint8Array(51)]
  const shortN: RawField = [TAG.PAYEE, new Uint8Array(52)]
  const d = decodeInvoice(raw([shortP, P, longS, S, shortH, D, shortN]))
  assert.equal(hex(d.paymentHash), hex(sha256('preimage')))
  assert.equal(hex(d.paymentSecret), hex(sha256('secret')))
  assert.equal(d.description, 'test')
  assert.equal(d.payeeInField, false)
  assert.deepEqual(d.unknownFields.map((f) => f.type), [TAG.PAYMENT_HASH, TAG.PAYMENT_SECRET, TAG.DESCRIPTION_HASH, TAG.PAYEE])
  // Skipped fields do not count: only a wrong-length p or s means the field is missing.
  rejects(raw([shortP, S, D]), 'missing_payment_hash')
  rejects(raw([P, longS, D]), 'missing_payment_secret')
  rejects(raw([P, D]), 'missing_payment_secret')
})

test('reader: exactly one of d and h', () => {
  assert.equal(hex(decodeInvoice(raw([P, S, H])).descriptionHash), hex(sha256('test')))
  rejects(raw([P, S, D, H]), 'invalid_description')
  rejects(raw([P, S, D, D]), 'invalid_description')
  rejects(raw([P, S, H, H]), 'invalid_description')
  rejects(raw([P, S]), 'invalid_description')
  rejects(raw([P, S, bytesField(TAG.DESCRIPTION, Uint8Array.of(0xff, 0xfe))]), 'invalid_description')
})

test('reader: unknown even feature bits fail, unknown odd bits are kept, known even bits pass', () => {
  const features = (bits: number[]): RawField => {
    const words = new Uint8Array(Math.floor(Math.max(...bits) / 5) + 1)
    for (const b of bits) words[words.length - 1 - Math.floor(b / 5)]! |= 1 << b % 5
    return [TAG.FEATURES, words]
  }
  assert.deepEqual(decodeInvoice(raw([P, S, D, features([8, 14, 16, 24, 48, 101])])).features, [8, 14, 16, 24, 48, 101])
  assert.deepEqual(decodeInvoice(raw([P, S, D, features([9, 15, 17, 3])])).features, [3, 9, 15, 17])
  rejects(raw([P, S, D, features([14, 100])]), 'unknown_required_feature')
  rejects(raw([P, S, D, features([2])]), 'unknown_required_feature')
})

test('reader: truncated fields, oversize numbers, bad route hints, bad recovery ids', () => {
  const words = bech32Decode(raw([P, S, D])).words
  // Claim a last field longer than what is left before the signature.
  const truncated = Uint8Array.from([...words.subarray(0, 7), TAG.DESCRIPTION, 31, 31, ...words.subarray(7)])
  rejects(bech32Encode('lnbc', truncated), 'truncated_field')
  rejects(raw([P, S, D, [TAG.EXPIRY, new Uint8Array(12).fill(31)]]), 'invalid_number')
  rejects(raw([P, S, D, [TAG.MIN_FINAL_CLTV_EXPIRY, new Uint8Array(7).fill(31)]]), 'invalid_number')
  rejects(raw([P, S, D, bytesField(TAG.ROUTE_HINT, new Uint8Array(50))]), 'invalid_route_hint')
  const badPubkey = new Uint8Array(51)
  badPubkey[0] = 0x02 // x = 0 is not on the curve
  rejects(raw([P, S, D, bytesField(TAG.ROUTE_HINT, badPubkey)]), 'invalid_route_hint')
  const sig = bech32Decode(raw([P, S, D]))
  sig.words[sig.words.length - 1] = 31 // recovery id byte's low bits
  rejects(bech32Encode('lnbc', sig.words), 'invalid_recovery_id')
})

// ---- Signatures: explicit payee (n) and high-S ----

const fields: InvoiceFields = {
  network: 'regtest',
  amountMsat: 12_345_000n,
  timestamp: 1_700_000_000,
  paymentHash: sha256('hash'),
  paymentSecret: sha256('secret'),
  description: 'n field',
  expiry: 600,
  minFinalCltvExpiry: 40,
  features: [9, 14, 17]
}

/** Replace s by n - s and flip the parity bit of the recovery id: the same signature, high-S. */
function toHighS(invoice: string): string {
  const { hrp, words } = bech32Decode(invoice)
  const d = decodeInvoice(invoice)
  const N = 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n
  const s = BigInt('0x' + hex(d.signature.subarray(32)))
  const sig = new Uint8Array(65)
  sig.set(d.signature.subarray(0, 32))
  sig.set(unhex((N - s).toString(16).padStart(64, '0')), 32)
  sig[64] = d.recovery ^ 1
  const out = new Uint8Array(words.length)
  out.set(words.subarray(0, words.length - 104))
  out.set(bytesToWords(sig), words.length - 104)
  return bech32Encode(hrp, out)
}

test('signature: an explicit payee (n) is verified, and a different n fails', () => {
  const invoice = encodeInvoice({ ...fields, payeeInField: true }, KEY)
  const d = decodeInvoice(invoice)
  assert.equal(d.payeeInField, true)
  assert.equal(hex(d.payee), hex(KEY_PUB))
  // Swap in another node's key: the signature no longer matches it.
  const { hrp, words } = bech32Decode(invoice)
  const payeeWords = bytesToWords(KEY_PUB)
  const other = bytesToWords(secp256k1.publicKey(sha256('other')))
  const at = Buffer.from(words).indexOf(Buffer.from(payeeWords))
  assert.ok(at > 0)
  words.set(other, at)
  rejects(bech32Encode(hrp, words), 'invalid_signature')
})

test('signature: high-S is accepted with key recovery (same payee) and refused with an n field', () => {
  const low = encodeInvoice(fields, KEY)
  const high = toHighS(low)
  assert.notEqual(high, low)
  assert.equal(hex(decodeInvoice(high).payee), hex(KEY_PUB))
  rejects(toHighS(encodeInvoice({ ...fields, payeeInField: true }, KEY)), 'high_s_signature')
})

// ---- Writer ----

test('writer: round trip of every field on every network, upper case accepted', () => {
  for (const network of ['mainnet', 'testnet', 'signet', 'regtest'] as const) {
    const f: InvoiceFields = {
      ...fields,
      network,
      descriptionHash: sha256('long description'),
      description: undefined,
      routeHints: [[hop(hex(KEY_PUB)!, 0x8000000000000001n, 1, 2, 3)], [hop(hex(KEY_PUB)!, 5n, 0, 0, 40), hop(hex(KEY_PUB)!, 6n, 7, 8, 9)]],
      paymentMetadata: Uint8Array.of(1, 2, 3)
    }
    const invoice = encodeInvoice(f, KEY)
    assertFields(decodeInvoice(invoice), f, network)
    assertFields(decodeInvoice(invoice.toUpperCase()), f, network)
  }
})

test('writer: shortest amount, minimal feature field, explicit c and x', () => {
  const hrpOf = (amountMsat: bigint): string => bech32Decode(encodeInvoice({ ...fields, network: 'mainnet', amountMsat }, KEY)).hrp
  assert.equal(hrpOf(100_000_000_000n), 'lnbc1')
  assert.equal(hrpOf(250_000_000n), 'lnbc2500u')
  assert.equal(hrpOf(2_000_000_000n), 'lnbc20m')
  assert.equal(hrpOf(1_100n), 'lnbc11n')
  assert.equal(hrpOf(967_878_534n), 'lnbc9678785340p')
  // Features 9, 14, 17 need 18 bits: four words, "9" field length 4.
  const { words } = bech32Decode(encodeInvoice(fields, KEY))
  const tagged: [number, number][] = []
  for (let pos = 7; pos < words.length - 104; ) {
    const length = words[pos + 1]! * 32 + words[pos + 2]!
    tagged.push([words[pos]!, length])
    pos += 3 + length
  }
  assert.deepEqual(tagged, [
    [TAG.PAYMENT_HASH, 52],
    [TAG.DESCRIPTION, 12], // "n field": 7 bytes
    [TAG.PAYMENT_SECRET, 52],
    [TAG.EXPIRY, 2], // 600 = 18·32 + 24
    [TAG.MIN_FINAL_CLTV_EXPIRY, 2], // 40
    [TAG.FEATURES, 4]
  ])
})

test('writer: refuses fields BOLT 11 does not allow, with invalid_argument', () => {
  const bad: Partial<InvoiceFields>[] = [
    { paymentHash: new Uint8Array(31) },
    { paymentSecret: new Uint8Array(33) },
    { descriptionHash: sha256('x') }, // both d and h
    { description: undefined },
    { amountMsat: 0n },
    { amountMsat: 1n << 64n },
    { timestamp: -1 },
    { timestamp: 2 ** 35 },
    { features: [-1] },
    { routeHints: [[]] },
    { routeHints: [[hop(hex(KEY_PUB)!, 1n << 64n, 0, 0, 0)]] },
    { routeHints: [[hop(hex(KEY_PUB)!, 1n, 0, 0, 65536)]] },
    { description: 'x'.repeat(640) } // 1024 words: over the 10-bit data_length
  ]
  for (const patch of bad) assert.throws(() => encodeInvoice({ ...fields, ...patch }, KEY), (e: unknown) => e instanceof InvoiceError && e.code === 'invalid_argument')
  assert.throws(() => encodeInvoice(fields, new Uint8Array(32)), (e: unknown) => e instanceof InvoiceError && e.code === 'invalid_argument')
  assert.throws(() => encodeInvoice({ ...fields, network: 'toString' as InvoiceFields['network'] }, KEY), (e: unknown) => e instanceof InvoiceError)
})

test('writer: a partial or repetitive field order still writes every field exactly once', () => {
  const d = decodeInvoice(encodeInvoice(fields, KEY, { fieldOrder: ['9', '9', 'x'] }))
  assertFields(d, fields, 'partial order')
  const { words } = bech32Decode(encodeInvoice(fields, KEY, { fieldOrder: ['9', '9', 'x'] }))
  assert.deepEqual([words[7], words[7 + 3 + 4]], [TAG.FEATURES, TAG.EXPIRY])
})

// ---- decode command ----

test('decodeCommand prints the lncli-style JSON of a valid invoice', async () => {
  const v = vectors.find((x) => x.title.startsWith('Please send 0.00967878534 BTC'))!
  const lines: string[] = []
  assert.equal(await decodeCommand([v.invoice], (l) => lines.push(l)), 0)
  const json = JSON.parse(lines.join('\n')) as Record<string, unknown>
  assert.deepEqual(json, {
    network: 'mainnet',
    amount_msat: '967878534',
    payment_hash: '462264ede7e14047e9b249da94fefc47f41f7d02ee9b091815a5506bc8abf75f',
    payment_secret: SECRET,
    description: BLOCKSTREAM,
    timestamp: 1572468703,
    expiry: 604800,
    min_final_cltv_expiry: 10,
    route_hints: [
      [
        {
          pubkey: '03d06758583bb5154774a6eb221b1276c9e82d65bbaceca806d90e20c108f4b1c7',
          short_channel_id: parseScid('589390x3312x1').toString(),
          fee_base_msat: 1000,
          fee_proportional_millionths: 2500,
          cltv_expiry_delta: 40
        }
      ]
    ],
    features: [8, 14],
    payee: PAYEE,
    signature_valid: true
  })
  // description_hash and payment_metadata appear when present; a lightning: URI prefix is accepted.
  const hashed = invoiceToJson(decodeInvoice(vectors.find((x) => x.title.startsWith('Now send $24'))!.invoice))
  assert.equal(hashed.description_hash, cakeHash)
  assert.equal('description' in hashed, false)
  const meta = vectors.find((x) => x.title.includes('payment metadata'))!.invoice
  const metaLines: string[] = []
  assert.equal(await decodeCommand(['lightning:' + meta], (l) => metaLines.push(l)), 0)
  assert.equal((JSON.parse(metaLines.join('\n')) as Record<string, unknown>).payment_metadata, '01fafaf0')
})

test('decodeCommand: an invalid invoice gives one line and exit 1; no argument gives usage and exit 2', async () => {
  const lines: string[] = []
  const v = vectors.find((x) => x.title === 'Missing required `s` field.')!
  assert.equal(await decodeCommand([v.invoice], (l) => lines.push(l)), 1)
  assert.equal(lines.length, 1)
  assert.match(lines[0]!, /^invalid invoice: .*payment secret.*\(missing_payment_secret\)$/)
  assert.doesNotMatch(lines[0]!, /\n/)
  const usage: string[] = []
  assert.equal(await decodeCommand([], (l) => usage.push(l)), 2)
  assert.match(usage[0]!, /usage/)
})

// BOLT 11 random round trips and mutation fuzzing: decodeInvoice must give an InvoiceError or a
// result that checks out, never another exception, never a hang. Seeded (HIGHWIRE_FUZZ_SEED to vary).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { loadVector } from '../vectors.ts'
import {
  decodeInvoice,
  encodeInvoice,
  signInvoiceWords,
  InvoiceError,
  DEFAULT_FIELD_ORDER,
  type DecodedInvoice,
  type FieldLetter,
  type InvoiceFields,
  type Network,
  type RouteHintHop
} from '../../src/ln/bolt11.ts'
import { bech32Decode, bech32Encode } from '../../src/ln/bech32.ts'
import { secp256k1 } from '../../src/ln/secp256k1.ts'

const SEED = Number(process.env.HIGHWIRE_FUZZ_SEED ?? 0x5eed11)

/** mulberry32: small, seedable, good enough to drive a fuzzer reproducibly. */
function prng(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}
const rand = prng(SEED)
const int = (n: number): number => Math.floor(rand() * n)
const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)]!
const bytes = (n: number): Uint8Array => Uint8Array.from({ length: n }, () => int(256))
const chance = (p: number): boolean => rand() < p
const sha256 = (data: string): Uint8Array => createHash('sha256').update(data).digest()
/** CPU seconds since `start`: a hang shows up in it, a busy shared machine does not. */
const cpuSeconds = (start: NodeJS.CpuUsage): number => {
  const used = process.cpuUsage(start)
  return (used.user + used.system) / 1e6
}
const hex = (b: Uint8Array | undefined): string | undefined => (b === undefined ? undefined : Buffer.from(b).toString('hex'))

const KEYS = [0, 1, 2, 3].map((i) => sha256(`fuzz key ${i}`))
const PUBKEYS = KEYS.map((k) => secp256k1.publicKey(k))
const NETWORKS: Network[] = ['mainnet', 'testnet', 'signet', 'regtest']
const KNOWN_EVEN = [8, 14, 16, 24, 48]

function randomText(): string {
  const ranges: [number, number][] = [[0x20, 0x7e], [0xa0, 0x7ff], [0x3040, 0x30ff], [0x1f300, 0x1f5ff]]
  let s = ''
  for (let n = int(60); n > 0; n--) {
    const [lo, hi] = pick(ranges)
    s += String.fromCodePoint(lo + int(hi - lo + 1))
  }
  return s
}

function randomU64(): bigint {
  return BigInt('0x' + hex(bytes(1 + int(8))))
}

function randomHop(): RouteHintHop {
  return {
    pubkey: pick(PUBKEYS),
    shortChannelId: randomU64(),
    feeBaseMsat: int(2 ** 32),
    feeProportionalMillionths: int(2 ** 32),
    cltvExpiryDelta: int(2 ** 16)
  }
}

function randomFields(): InvoiceFields {
  const hashed = chance(0.3)
  const features = new Set<number>()
  for (let n = int(6); n > 0; n--) features.add(chance(0.5) ? pick(KNOWN_EVEN) : 2 * int(150) + 1)
  let amountMsat: bigint | undefined
  if (chance(0.8)) amountMsat = chance(0.5) ? BigInt(1 + int(1e9)) : randomU64() || 1n
  return {
    network: pick(NETWORKS),
    amountMsat,
    timestamp: int(2 ** 35),
    paymentHash: bytes(32),
    paymentSecret: bytes(32),
    description: hashed ? undefined : randomText(),
    descriptionHash: hashed ? bytes(32) : undefined,
    expiry: chance(0.5) ? int(2 ** 40) : undefined,
    minFinalCltvExpiry: chance(0.5) ? int(2 ** 32) : undefined,
    routeHints: Array.from({ length: int(4) }, () => Array.from({ length: 1 + int(3) }, randomHop)),
    features: [...features],
    paymentMetadata: chance(0.3) ? bytes(int(50)) : undefined,
    payeeInField: chance(0.3)
  }
}

function shuffled<T>(xs: readonly T[]): T[] {
  const out = [...xs]
  for (let i = out.length - 1; i > 0; i--) {
    const j = int(i + 1)
    ;[out[i], out[j]] = [out[j]!, out[i]!]
  }
  return out
}

const ERROR_CODES = new Set<string>([
  'invalid_argument', 'invalid_character', 'mixed_case', 'missing_separator', 'invalid_checksum', 'unknown_network',
  'invalid_amount', 'too_short', 'truncated_field', 'invalid_number', 'invalid_description', 'invalid_route_hint',
  'unknown_required_feature', 'missing_payment_hash', 'missing_payment_secret', 'invalid_recovery_id',
  'unrecoverable_signature', 'high_s_signature', 'invalid_signature'
] satisfies InvoiceError['code'][])

/** Decode: an InvoiceError (known code, one-line message) or a result whose invariants hold. */
function decodeChecked(invoice: string): DecodedInvoice | InvoiceError {
  let d: DecodedInvoice
  try {
    d = decodeInvoice(invoice)
  } catch (err) {
    assert.ok(err instanceof InvoiceError, `non-InvoiceError ${String(err)} for ${invoice.slice(0, 80)}`)
    assert.ok(ERROR_CODES.has(err.code), err.code)
    assert.doesNotMatch(err.message, /\n/)
    return err
  }
  assert.equal(d.signatureValid, true)
  assert.ok(secp256k1.verify(d.signingHash, d.signature, d.payee), 'decoded signature must verify against the payee')
  assert.equal(hex(createHash('sha256').update(d.signingData).digest()), hex(d.signingHash))
  assert.equal(d.paymentHash.length, 32)
  assert.equal(d.paymentSecret.length, 32)
  assert.ok((d.description === undefined) !== (d.descriptionHash === undefined))
  for (const bit of d.features) assert.ok(bit % 2 === 1 || KNOWN_EVEN.includes(bit), `unknown even bit ${bit} accepted`)
  for (const hint of d.routeHints) for (const hop of hint) assert.ok(secp256k1.isPublicKey(hop.pubkey))
  return d
}

test('random round trips: any valid fields, any field order, decode to the same fields', () => {
  for (let i = 0; i < 200; i++) {
    const f = randomFields()
    const k = int(KEYS.length)
    const order: FieldLetter[] = shuffled(DEFAULT_FIELD_ORDER)
    const invoice = encodeInvoice(f, KEYS[k]!, { fieldOrder: order })
    const d = decodeChecked(chance(0.2) ? invoice.toUpperCase() : invoice)
    assert.ok(!(d instanceof InvoiceError), `round trip ${i} failed: ${d instanceof InvoiceError ? d.message : ''}`)
    const label = `seed ${SEED} case ${i}`
    assert.equal(d.network, f.network, label)
    assert.equal(d.amountMsat, f.amountMsat, label)
    assert.equal(d.timestamp, f.timestamp, label)
    assert.equal(hex(d.paymentHash), hex(f.paymentHash), label)
    assert.equal(hex(d.paymentSecret), hex(f.paymentSecret), label)
    assert.equal(d.description, f.description, label)
    assert.equal(hex(d.descriptionHash), hex(f.descriptionHash), label)
    assert.equal(d.expiry, f.expiry ?? 3600, label)
    assert.equal(d.minFinalCltvExpiry, f.minFinalCltvExpiry ?? 18, label)
    assert.deepEqual(d.routeHints, f.routeHints, label)
    assert.deepEqual(d.features, [...f.features].sort((a, b) => a - b), label)
    assert.equal(hex(d.paymentMetadata), hex(f.paymentMetadata), label)
    assert.equal(d.payeeInField, f.payeeInField, label)
    assert.equal(hex(d.payee), hex(PUBKEYS[k]), label)
    assert.equal(d.unknownFields.length, 0, label)
  }
})

const CHARSET = 'qpzry9x8gf2tvdw0s3jn54khce6mua7l'
const bases = [
  ...loadVector<{ invoice: string }[]>('bolt11-vectors.json').map((v) => v.invoice),
  ...Array.from({ length: 20 }, () => encodeInvoice(randomFields(), pick(KEYS)))
]
const wordBases = bases.flatMap((b) => {
  try {
    return [bech32Decode(b)]
  } catch {
    return []
  }
})

function mutateString(s: string): string {
  const i = int(s.length + 1)
  switch (int(6)) {
    case 0:
      return s.slice(0, i) + pick([...CHARSET, '1', 'B', 'ü', ' ', '\u0000']) + s.slice(i + 1)
    case 1:
      return s.slice(0, i) + s.slice(i + 1 + int(4))
    case 2:
      return s.slice(0, i) + pick([...CHARSET]) + s.slice(i)
    case 3:
      return s.slice(0, i)
    case 4:
      return s.slice(0, i) + s[i]?.toUpperCase() + s.slice(i + 1)
    default:
      return s.slice(i) + s.slice(0, i)
  }
}

const HRPS = ['lnbc', 'lntb', 'lntbs', 'lnbcrt', 'lnbc1m', 'lnbc10p', 'lnbc11p', 'lnbc0', 'lnbcrt99999999999999999999n', 'ln', 'lnx', 'bc']

function mutateWords(words: Uint8Array): Uint8Array {
  const w = [...words]
  for (let n = 1 + int(3); n > 0; n--) {
    const i = int(w.length + 1)
    switch (int(5)) {
      case 0:
        w[i] = int(32)
        break
      case 1:
        w.splice(i, 1 + int(10))
        break
      case 2:
        w.splice(i, 0, ...Array.from({ length: 1 + int(60) }, () => int(32)))
        break
      case 3:
        // A plausible tagged-field header with a random length.
        w.splice(i, 0, pick([1, 3, 5, 6, 9, 13, 16, 19, 23, 24, 27, int(32)]), int(32), int(32))
        break
      default:
        w.length = Math.min(w.length, i)
    }
  }
  return Uint8Array.from(w.slice(0, 4000), (x) => x ?? 0)
}

test('mutation fuzz: thousands of mutated and random strings give InvoiceError or a verified result', () => {
  const started = process.cpuUsage()
  let decoded = 0
  let rejected = 0
  const tally = (r: DecodedInvoice | InvoiceError): void => void (r instanceof InvoiceError ? rejected++ : decoded++)
  for (const base of bases) for (let i = 0; i < 60; i++) tally(decodeChecked(mutateString(base)))
  // Mutate below the checksum so the parser, not bech32, sees the damage.
  for (const { hrp, words } of wordBases) {
    for (let i = 0; i < 60; i++) tally(decodeChecked(bech32Encode(chance(0.2) ? pick(HRPS) : hrp, mutateWords(words))))
  }
  // Mutate the data, then sign it properly, so the checks after the signature see the damage too.
  for (const { hrp, words } of wordBases) {
    for (let i = 0; i < 25; i++) {
      const k = int(KEYS.length)
      const data = mutateWords(words.subarray(0, Math.max(0, words.length - 104)))
      const r = decodeChecked(signInvoiceWords(chance(0.2) ? pick(HRPS) : hrp, data, KEYS[k]!))
      tally(r)
      if (!(r instanceof InvoiceError) && !r.payeeInField) assert.equal(hex(r.payee), hex(PUBKEYS[k]))
    }
  }
  const alphabet = [...CHARSET, ...CHARSET.toUpperCase(), '1', 'l', 'n', 'b', 'c', 'ß', '€', '\n', '~']
  for (let i = 0; i < 2000; i++) {
    const prefix = pick(['', 'lnbc', 'LNBC', 'lntbs1', 'lnbcrt2500u1'])
    tally(decodeChecked(prefix + Array.from({ length: int(400) }, () => pick(alphabet)).join('')))
  }
  assert.ok(decoded > 100, `only ${decoded} mutated invoices decoded: the fuzzer is not reaching the parser`)
  assert.ok(rejected > 5000, `only ${rejected} rejections`)
  assert.ok(cpuSeconds(started) < 5, 'fuzzing took too long')
})

test('huge inputs are handled in linear time', () => {
  const started = process.cpuUsage()
  const bad = decodeChecked('lnbc1' + 'q'.repeat(1_000_000))
  assert.ok(bad instanceof InvoiceError && bad.code === 'invalid_checksum')
  // A valid checksum over 200,000 words of tagged fields: parsed to the end, then judged.
  const words = new Uint8Array(200_000)
  for (let i = 7; i + 3 <= words.length - 104; i += 3 + 31) words.set([10, 0, 31], i) // unknown type 10, 31 words each
  const huge = decodeChecked(bech32Encode('lnbc', words))
  assert.ok(huge instanceof InvoiceError)
  // A million-digit amount is refused without bigint arithmetic on it.
  const amount = decodeChecked(bech32Encode('lnbc' + '9'.repeat(1_000_000) + 'p', words.subarray(0, 200)))
  assert.ok(amount instanceof InvoiceError && amount.code === 'invalid_amount')
  assert.ok(cpuSeconds(started) < 2, 'huge inputs took too long')
})

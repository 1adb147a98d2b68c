// BOLT 11 invoices: encode and sign, decode and verify.
//
// Written here rather than taken from the npm `bolt11` package because of that package's gaps
// (no signet, default `c` of 9 instead of 18, unknown required features and a missing `s` accepted).
// Reader rules follow BOLT 11 "Tagged Fields / Requirements": `p`, `h`, `s`, `n` of the wrong length
// are skipped, unknown even feature bits fail, exactly one `d` or `h`, `s` required; when several
// instances of a field are present the first one wins (writers put the most preferred first).
import { createHash } from 'node:crypto'
import { secp256k1 } from './secp256k1.ts'
import { Bech32Error, bech32Decode, bech32Encode, packBytes, wordLength, wordsToBytes } from './bech32.ts'
import { CodedError } from '../errors.ts'

export type Network = 'mainnet' | 'testnet' | 'signet' | 'regtest'

export interface RouteHintHop {
  pubkey: Uint8Array
  shortChannelId: bigint
  feeBaseMsat: number
  feeProportionalMillionths: number
  cltvExpiryDelta: number
}

export interface InvoiceFields {
  network: Network
  amountMsat?: bigint
  /** Unix seconds. */
  timestamp: number
  paymentHash: Uint8Array
  paymentSecret: Uint8Array
  description?: string
  descriptionHash?: Uint8Array
  /** Seconds; BOLT 11 default 3600 when the `x` field is absent. */
  expiry?: number
  /** Blocks; BOLT 11 default 18 when the `c` field is absent. */
  minFinalCltvExpiry?: number
  routeHints?: RouteHintHop[][]
  /** Feature bit numbers set in the `9` field. */
  features: number[]
  paymentMetadata?: Uint8Array
  /** Write the payee's public key in an `n` field (readers then verify instead of recovering). */
  payeeInField?: boolean
}

/** A tagged field the decoder skipped: unknown type, `f` (fallback address), or `p`/`h`/`s`/`n` of the wrong length. */
export interface SkippedField {
  type: number
  words: Uint8Array
}

export interface DecodedInvoice
  extends Required<
      Pick<InvoiceFields, 'network' | 'timestamp' | 'paymentHash' | 'paymentSecret' | 'expiry' | 'minFinalCltvExpiry' | 'features' | 'routeHints'>
    >,
    Pick<InvoiceFields, 'amountMsat' | 'description' | 'descriptionHash' | 'paymentMetadata'> {
  /** Node id: the `n` field when present (signature verified against it), else recovered from the signature. */
  payee: Uint8Array
  payeeInField: boolean
  /** 64 bytes r ‖ s as found in the invoice (may be high-S). */
  signature: Uint8Array
  recovery: number
  /** Always true: decodeInvoice throws InvoiceError on a signature that does not check out. */
  signatureValid: boolean
  /** The signed preimage: hrp bytes ‖ data words before the signature, packed and zero-padded. */
  signingData: Uint8Array
  signingHash: Uint8Array
  unknownFields: SkippedField[]
}

export type InvoiceErrorCode =
  | 'invalid_argument'
  | 'invalid_character'
  | 'mixed_case'
  | 'missing_separator'
  | 'invalid_checksum'
  | 'unknown_network'
  | 'invalid_amount'
  | 'too_short'
  | 'truncated_field'
  | 'invalid_number'
  | 'invalid_description'
  | 'invalid_route_hint'
  | 'unknown_required_feature'
  | 'missing_payment_hash'
  | 'missing_payment_secret'
  | 'invalid_recovery_id'
  | 'unrecoverable_signature'
  | 'high_s_signature'
  | 'invalid_signature'

export class InvoiceError extends CodedError<InvoiceErrorCode> {}

// BOLT 11 "Human-Readable Part": `ln` + BIP-173 currency prefix.
const NETWORK_PREFIX: Record<Network, string> = { mainnet: 'lnbc', testnet: 'lntb', signet: 'lntbs', regtest: 'lnbcrt' }
// Longest first, so that `lnbcrt` is not read as `lnbc` + amount "rt" (and `lntbs` as `lntb`).
const PREFIXES = (Object.entries(NETWORK_PREFIX) as [Network, string][]).sort((a, b) => b[1].length - a[1].length)

// Amounts are in bitcoin; 1 BTC = 10^11 msat. `p` (pico) is a tenth of a msat, hence the last-digit rule.
const MSAT_PER_BTC = 100_000_000_000n
const MULTIPLIER_MSAT: Record<string, bigint> = { m: 100_000_000n, u: 100_000n, n: 100n }
const MAX_MSAT = (1n << 64n) - 1n // the onion's amt_to_forward is a u64

// BOLT 11 "Tagged Fields": type values (bech32 character in the comment).
export const TAG = {
  PAYMENT_HASH: 1, // p
  ROUTE_HINT: 3, // r
  FEATURES: 5, // 9
  EXPIRY: 6, // x
  FALLBACK: 9, // f
  DESCRIPTION: 13, // d
  PAYMENT_SECRET: 16, // s
  PAYEE: 19, // n
  DESCRIPTION_HASH: 23, // h
  MIN_FINAL_CLTV_EXPIRY: 24, // c
  METADATA: 27 // m
} as const

/** Field letters an encoder may be told to write, in the order given. */
export type FieldLetter = 'p' | 's' | 'd' | 'h' | 'm' | 'n' | 'x' | 'c' | 'r' | '9'
/** lnd/c-lightning style order: hash, description, metadata, secret, expiry, cltv, hints, payee, features. */
export const DEFAULT_FIELD_ORDER: readonly FieldLetter[] = ['p', 'd', 'h', 'm', 's', 'x', 'c', 'r', 'n', '9']

const TIMESTAMP_WORDS = 7 // 35 bits
const SIGNATURE_WORDS = 104 // 520 bits: 64-byte signature + recovery id byte
const MAX_FIELD_WORDS = 1023 // 10-bit data_length
const HASH_WORDS = 52 // 256 bits
const PUBKEY_WORDS = 53 // 264 bits
const HOP_BYTES = 33 + 8 + 4 + 4 + 2 // pubkey, short_channel_id, fee_base_msat, fee_proportional_millionths, cltv_expiry_delta

export const DEFAULT_EXPIRY = 3600
export const DEFAULT_MIN_FINAL_CLTV_EXPIRY = 18

// BOLT 9 features that may appear in an invoice (context 9): var_onion_optin 8/9, payment_secret 14/15,
// basic_mpp 16/17, option_route_blinding 24/25, option_payment_metadata 48/49. Other even bits are unknown
// required features, which a reader MUST fail on.
const KNOWN_FEATURES = new Set([8, 9, 14, 15, 16, 17, 24, 25, 48, 49])

/** secp256k1 n/2: an s above it is "high-S". */
const HALF_ORDER = Buffer.from('7fffffffffffffffffffffffffffffff5d576e7357a4501ddfe92f46681b20a0', 'hex')

const utf8 = new TextEncoder()
const utf8Strict = new TextDecoder('utf-8', { fatal: true })

const sha256 = (data: Uint8Array): Uint8Array => createHash('sha256').update(data).digest()

// ---------------------------------------------------------------------------------------------
// Encoding

/** Growable array of 5-bit words; tagged fields are written straight into it. */
class WordWriter {
  words: Uint8Array
  length = 0

  constructor(capacity = 512) {
    this.words = new Uint8Array(capacity)
  }

  private reserve(n: number): void {
    if (this.length + n <= this.words.length) return
    const next = new Uint8Array(Math.max(this.words.length * 2, this.length + n))
    next.set(this.words.subarray(0, this.length))
    this.words = next
  }

  /** `value` (a non-negative safe integer) big-endian in exactly `count` words. */
  uint(value: number, count: number): void {
    this.reserve(count)
    for (let i = count - 1; i >= 0; i--) {
      this.words[this.length + i] = value % 32
      value = Math.floor(value / 32)
    }
    this.length += count
  }

  push(words: Uint8Array): void {
    this.reserve(words.length)
    this.words.set(words, this.length)
    this.length += words.length
  }

  /** Bytes packed into words, the last one zero-padded ("MUST pad field data to a multiple of 5 bits, using 0s"). */
  bytes(bytes: Uint8Array): void {
    this.reserve(wordLength(bytes.length))
    this.length = packBytes(bytes, this.words, this.length)
  }

  /** Tagged field header: type, then the 10-bit data_length. */
  header(type: number, dataWords: number): void {
    if (dataWords > MAX_FIELD_WORDS) throw new InvoiceError('invalid_argument', `tagged field ${type} needs ${dataWords} words, over the ${MAX_FIELD_WORDS} limit`)
    this.uint(type, 1)
    this.uint(dataWords, 2)
  }

  fieldBytes(type: number, data: Uint8Array): void {
    this.header(type, wordLength(data.length))
    this.bytes(data)
  }

  /** A number in the minimum data_length, at least one word (lnd writes zero as one word). */
  fieldUint(type: number, value: number): void {
    let count = 1
    for (let v = Math.floor(value / 32); v > 0; v = Math.floor(v / 32)) count++
    this.header(type, count)
    this.uint(value, count)
  }

  fieldWords(type: number, data: Uint8Array): void {
    this.header(type, data.length)
    this.push(data)
  }

  view(): Uint8Array {
    return this.words.subarray(0, this.length)
  }
}

/** The `9` field: big-endian bit field, bit 0 the least significant bit of the last word. */
function featureWords(bits: number[]): Uint8Array {
  const top = Math.max(...bits)
  const words = new Uint8Array(Math.floor(top / 5) + 1)
  for (const bit of bits) words[words.length - 1 - Math.floor(bit / 5)]! |= 1 << bit % 5
  return words
}

function routeHintBytes(hops: RouteHintHop[]): Uint8Array {
  const bytes = new Uint8Array(hops.length * HOP_BYTES)
  const view = new DataView(bytes.buffer)
  hops.forEach((hop, i) => {
    const at = i * HOP_BYTES
    bytes.set(hop.pubkey, at)
    view.setBigUint64(at + 33, hop.shortChannelId)
    view.setUint32(at + 41, hop.feeBaseMsat)
    view.setUint32(at + 45, hop.feeProportionalMillionths)
    view.setUint16(at + 49, hop.cltvExpiryDelta)
  })
  return bytes
}

/** Shortest amount representation: the largest multiplier that divides it exactly (BOLT 11 writer rule). */
function amountString(msat: bigint): string {
  if (msat % MSAT_PER_BTC === 0n) return (msat / MSAT_PER_BTC).toString()
  for (const [letter, unit] of Object.entries(MULTIPLIER_MSAT)) if (msat % unit === 0n) return (msat / unit).toString() + letter
  return (msat * 10n).toString() + 'p'
}

const isUint = (v: unknown, max: number): v is number => Number.isInteger(v) && (v as number) >= 0 && (v as number) <= max

function checkBytes(name: string, value: Uint8Array | undefined, length: number): void {
  if (!(value instanceof Uint8Array) || value.length !== length) throw new InvoiceError('invalid_argument', `${name} must be ${length} bytes`)
}

function validateFields(f: InvoiceFields): void {
  if (!Object.hasOwn(NETWORK_PREFIX, f.network)) throw new InvoiceError('invalid_argument', `unknown network ${String(f.network)}`)
  if (f.amountMsat !== undefined && (typeof f.amountMsat !== 'bigint' || f.amountMsat <= 0n || f.amountMsat > MAX_MSAT))
    throw new InvoiceError('invalid_argument', 'amountMsat must be a bigint in 1..2^64-1')
  if (!isUint(f.timestamp, 2 ** 35 - 1)) throw new InvoiceError('invalid_argument', 'timestamp must be an integer in 0..2^35-1')
  checkBytes('paymentHash', f.paymentHash, 32)
  checkBytes('paymentSecret', f.paymentSecret, 32)
  if ((f.description === undefined) === (f.descriptionHash === undefined))
    throw new InvoiceError('invalid_argument', 'exactly one of description and descriptionHash is required')
  if (f.descriptionHash !== undefined) checkBytes('descriptionHash', f.descriptionHash, 32)
  if (f.expiry !== undefined && !isUint(f.expiry, Number.MAX_SAFE_INTEGER)) throw new InvoiceError('invalid_argument', 'expiry must be a non-negative integer')
  if (f.minFinalCltvExpiry !== undefined && !isUint(f.minFinalCltvExpiry, 0xffffffff))
    throw new InvoiceError('invalid_argument', 'minFinalCltvExpiry must be an integer in 0..2^32-1')
  for (const hint of f.routeHints ?? []) {
    if (hint.length === 0) throw new InvoiceError('invalid_argument', 'a route hint needs at least one hop')
    for (const hop of hint) {
      checkBytes('route hint pubkey', hop.pubkey, 33)
      if (typeof hop.shortChannelId !== 'bigint' || hop.shortChannelId < 0n || hop.shortChannelId >= 1n << 64n)
        throw new InvoiceError('invalid_argument', 'route hint shortChannelId must be a u64 bigint')
      if (!isUint(hop.feeBaseMsat, 0xffffffff) || !isUint(hop.feeProportionalMillionths, 0xffffffff) || !isUint(hop.cltvExpiryDelta, 0xffff))
        throw new InvoiceError('invalid_argument', 'route hint fees must be u32 and cltvExpiryDelta u16')
    }
  }
  if (!Array.isArray(f.features) || !f.features.every((b) => isUint(b, MAX_FIELD_WORDS * 5 - 1)))
    throw new InvoiceError('invalid_argument', `features must be bit numbers in 0..${MAX_FIELD_WORDS * 5 - 1}`)
}

/** Append the tagged field named by `letter`, if `f` has it. */
function writeField(w: WordWriter, letter: FieldLetter, f: InvoiceFields, secretKey: Uint8Array): void {
  switch (letter) {
    case 'p':
      return w.fieldBytes(TAG.PAYMENT_HASH, f.paymentHash)
    case 's':
      return w.fieldBytes(TAG.PAYMENT_SECRET, f.paymentSecret)
    case 'd':
      if (f.description !== undefined) w.fieldBytes(TAG.DESCRIPTION, utf8.encode(f.description))
      return
    case 'h':
      if (f.descriptionHash !== undefined) w.fieldBytes(TAG.DESCRIPTION_HASH, f.descriptionHash)
      return
    case 'm':
      if (f.paymentMetadata !== undefined) w.fieldBytes(TAG.METADATA, f.paymentMetadata)
      return
    case 'n':
      if (f.payeeInField === true) w.fieldBytes(TAG.PAYEE, secp256k1.publicKey(secretKey))
      return
    case 'x':
      if (f.expiry !== undefined) w.fieldUint(TAG.EXPIRY, f.expiry)
      return
    case 'c':
      if (f.minFinalCltvExpiry !== undefined) w.fieldUint(TAG.MIN_FINAL_CLTV_EXPIRY, f.minFinalCltvExpiry)
      return
    case 'r':
      for (const hint of f.routeHints ?? []) w.fieldBytes(TAG.ROUTE_HINT, routeHintBytes(hint))
      return
    case '9':
      // BOLT 11: "if `9` contains non-zero bits: SHOULD use the minimum data_length; otherwise MUST omit".
      if (f.features.length > 0) w.fieldWords(TAG.FEATURES, featureWords(f.features))
      return
  }
}

/** hrp bytes ‖ data words packed to bytes, zero-padded to a byte boundary (BOLT 11 "Data Part"). */
function invoiceSigningData(hrp: string, words: Uint8Array): Uint8Array {
  const data = wordsToBytes(words, 0, words.length, true)
  const out = new Uint8Array(hrp.length + data.length)
  for (let i = 0; i < hrp.length; i++) out[i] = hrp.charCodeAt(i)
  out.set(data, hrp.length)
  return out
}

export interface EncodeOptions {
  /** Order of the tagged fields (BOLT 11 leaves it to the writer); letters not listed follow in the default order. */
  fieldOrder?: readonly FieldLetter[]
}

/** Encode `fields` as a BOLT 11 invoice signed with `secretKey` (lower case). */
export function encodeInvoice(fields: InvoiceFields, secretKey: Uint8Array, options: EncodeOptions = {}): string {
  validateFields(fields)
  if (!(secretKey instanceof Uint8Array) || !secp256k1.isSecretKey(secretKey)) throw new InvoiceError('invalid_argument', 'secretKey is not a valid secp256k1 secret key')
  const hrp = NETWORK_PREFIX[fields.network] + (fields.amountMsat === undefined ? '' : amountString(fields.amountMsat))
  const w = new WordWriter()
  w.uint(fields.timestamp, TIMESTAMP_WORDS)
  // A Set keeps the first position of each letter, so every field is written exactly once.
  for (const letter of new Set([...(options.fieldOrder ?? []), ...DEFAULT_FIELD_ORDER])) writeField(w, letter, fields, secretKey)
  return signInvoiceWords(hrp, w.view(), secretKey)
}

/**
 * Sign raw invoice data (timestamp and tagged-field words) under `hrp` and return the bech32 invoice.
 * The building block of encodeInvoice; exported for tests that need invoices encodeInvoice refuses to write.
 */
export function signInvoiceWords(hrp: string, words: Uint8Array, secretKey: Uint8Array): string {
  const { signature, recovery } = secp256k1.sign(sha256(invoiceSigningData(hrp, words)), secretKey)
  const sigBytes = new Uint8Array(65)
  sigBytes.set(signature)
  sigBytes[64] = recovery
  const w = new WordWriter(words.length + SIGNATURE_WORDS)
  w.push(words)
  w.bytes(sigBytes)
  return bech32Encode(hrp, w.view())
}

// ---------------------------------------------------------------------------------------------
// Decoding

function parseHrp(hrp: string): { network: Network; amountMsat: bigint | undefined } {
  const match = PREFIXES.find(([, prefix]) => hrp.startsWith(prefix))
  if (match === undefined) throw new InvoiceError('unknown_network', `unknown invoice prefix "${hrp.slice(0, 8)}"`)
  const [network, prefix] = match
  const amount = hrp.slice(prefix.length)
  if (amount === '') return { network, amountMsat: undefined }
  // BOLT 11 reader: fail if `amount` has a non-digit or is followed by anything but a multiplier.
  // 21 digits cover 2^64-1 msat even in pico-bitcoin; longer is refused before any bigint arithmetic.
  const m = /^([0-9]{1,21})([munp]?)$/.exec(amount)
  if (m === null) throw new InvoiceError('invalid_amount', `invalid amount "${amount.slice(0, 24)}"`)
  const digits = BigInt(m[1]!)
  const multiplier = m[2]!
  let msat: bigint
  if (multiplier === '') msat = digits * MSAT_PER_BTC
  else if (multiplier === 'p') {
    // "if multiplier is `p` and the last decimal of `amount` is not 0: MUST fail the payment".
    if (digits % 10n !== 0n) throw new InvoiceError('invalid_amount', `amount ${amount} is not a whole number of millisatoshis`)
    msat = digits / 10n
  } else msat = digits * MULTIPLIER_MSAT[multiplier]!
  if (msat > MAX_MSAT) throw new InvoiceError('invalid_amount', `amount ${amount} exceeds 2^64-1 msat`)
  return { network, amountMsat: msat }
}

/** Big-endian words [start, end) as a number no larger than `max`. */
function readUint(words: Uint8Array, start: number, end: number, max: number, what: string): number {
  let value = 0
  for (let i = start; i < end; i++) {
    value = value * 32 + words[i]!
    if (value > max) throw new InvoiceError('invalid_number', `${what} exceeds ${max}`)
  }
  return value
}

function parseFeatures(words: Uint8Array, start: number, end: number): number[] {
  const bits: number[] = []
  for (let i = end - 1; i >= start; i--) {
    const word = words[i]!
    for (let j = 0; j < 5; j++) {
      if ((word & (1 << j)) === 0) continue
      const bit = (end - 1 - i) * 5 + j
      if (bit % 2 === 0 && !KNOWN_FEATURES.has(bit)) throw new InvoiceError('unknown_required_feature', `invoice requires unknown feature bit ${bit}`)
      bits.push(bit)
    }
  }
  return bits
}

function parseRouteHint(bytes: Uint8Array): RouteHintHop[] {
  if (bytes.length === 0 || bytes.length % HOP_BYTES !== 0)
    throw new InvoiceError('invalid_route_hint', `route hint of ${bytes.length} bytes is not a whole number of ${HOP_BYTES}-byte hops`)
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.length)
  const hops: RouteHintHop[] = []
  for (let at = 0; at < bytes.length; at += HOP_BYTES) {
    const pubkey = bytes.slice(at, at + 33)
    if (!secp256k1.isPublicKey(pubkey)) throw new InvoiceError('invalid_route_hint', `route hint hop ${hops.length} has an invalid public key`)
    hops.push({
      pubkey,
      shortChannelId: view.getBigUint64(at + 33),
      feeBaseMsat: view.getUint32(at + 41),
      feeProportionalMillionths: view.getUint32(at + 45),
      cltvExpiryDelta: view.getUint16(at + 49)
    })
  }
  return hops
}

function isHighS(signature: Uint8Array): boolean {
  for (let i = 0; i < 32; i++) {
    const s = signature[32 + i]!
    const h = HALF_ORDER[i]!
    if (s !== h) return s > h
  }
  return false
}

/** What the tagged fields say, before the reader's cross-field rules are applied. */
interface TaggedFields {
  paymentHash?: Uint8Array
  paymentSecret?: Uint8Array
  descriptions: string[]
  descriptionHash?: Uint8Array
  descriptionHashes: number
  payee?: Uint8Array
  paymentMetadata?: Uint8Array
  expiry?: number
  minFinalCltvExpiry?: number
  features?: number[]
  routeHints: RouteHintHop[][]
  skipped: SkippedField[]
}

/** Walk the tagged fields in words[start, end); the first instance of a single-valued field wins. */
function parseTaggedFields(words: Uint8Array, start: number, end: number): TaggedFields {
  const t: TaggedFields = { descriptions: [], descriptionHashes: 0, routeHints: [], skipped: [] }
  for (let pos = start; pos < end; ) {
    if (pos + 3 > end) throw new InvoiceError('truncated_field', `tagged field header at word ${pos} runs into the signature`)
    const type = words[pos]!
    const length = words[pos + 1]! * 32 + words[pos + 2]!
    const from = pos + 3
    const to = from + length
    if (to > end) throw new InvoiceError('truncated_field', `tagged field ${type} of ${length} words runs into the signature`)
    pos = to
    // BOLT 11: skip unknown fields, `f` (fallback addresses, which highwire never pays to), and
    // `p`, `h`, `s`, `n` whose data_length is not 52, 52, 52, 53.
    const skip = (): void => void t.skipped.push({ type, words: words.slice(from, to) })
    const bytes = (): Uint8Array => wordsToBytes(words, from, to)
    switch (type) {
      case TAG.PAYMENT_HASH:
        if (length !== HASH_WORDS) skip()
        else t.paymentHash ??= bytes()
        break
      case TAG.PAYMENT_SECRET:
        if (length !== HASH_WORDS) skip()
        else t.paymentSecret ??= bytes()
        break
      case TAG.DESCRIPTION_HASH:
        if (length !== HASH_WORDS) skip()
        else {
          t.descriptionHashes++
          t.descriptionHash ??= bytes()
        }
        break
      case TAG.PAYEE:
        if (length !== PUBKEY_WORDS) skip()
        else t.payee ??= bytes()
        break
      case TAG.DESCRIPTION:
        try {
          t.descriptions.push(utf8Strict.decode(bytes()))
        } catch {
          throw new InvoiceError('invalid_description', 'description is not valid UTF-8')
        }
        break
      case TAG.METADATA:
        t.paymentMetadata ??= bytes()
        break
      case TAG.EXPIRY:
        t.expiry ??= readUint(words, from, to, Number.MAX_SAFE_INTEGER, 'expiry')
        break
      case TAG.MIN_FINAL_CLTV_EXPIRY:
        t.minFinalCltvExpiry ??= readUint(words, from, to, 0xffffffff, 'min_final_cltv_expiry')
        break
      case TAG.ROUTE_HINT:
        t.routeHints.push(parseRouteHint(bytes()))
        break
      case TAG.FEATURES:
        t.features ??= parseFeatures(words, from, to)
        break
      default:
        skip()
    }
  }
  return t
}

/**
 * Check the signature over `signingHash` and return the payee: with an explicit payee (`n`) the
 * signature is verified against it and must be low-S (the BOLT 11 "high-S signature with n field"
 * example is invalid); without one the key is recovered, high-S included.
 */
function signaturePayee(signingHash: Uint8Array, signature: Uint8Array, recovery: number, payeeField: Uint8Array | undefined): Uint8Array {
  if (recovery > 3) throw new InvoiceError('invalid_recovery_id', `signature recovery id ${recovery} is not 0..3`)
  if (payeeField !== undefined) {
    if (isHighS(signature)) throw new InvoiceError('high_s_signature', 'signature is not in low-S form, as verification against the n field requires')
    if (!secp256k1.verify(signingHash, signature, payeeField)) throw new InvoiceError('invalid_signature', 'signature does not match the payee (n) field')
    return payeeField
  }
  try {
    return secp256k1.recover(signingHash, signature, recovery)
  } catch {
    throw new InvoiceError('unrecoverable_signature', 'no public key can be recovered from the signature')
  }
}

/** Decode and verify a BOLT 11 invoice; throws InvoiceError (with a one-line message) on anything invalid. */
export function decodeInvoice(invoice: string): DecodedInvoice {
  if (typeof invoice !== 'string') throw new InvoiceError('invalid_argument', 'invoice must be a string')
  let hrp: string
  let words: Uint8Array
  try {
    ;({ hrp, words } = bech32Decode(invoice))
  } catch (err) {
    if (err instanceof Bech32Error) throw new InvoiceError(err.code, err.message)
    throw err
  }
  const { network, amountMsat } = parseHrp(hrp)
  if (words.length < TIMESTAMP_WORDS + SIGNATURE_WORDS)
    throw new InvoiceError('too_short', `invoice data has ${words.length} words, fewer than timestamp and signature need`)

  const sigStart = words.length - SIGNATURE_WORDS
  const timestamp = readUint(words, 0, TIMESTAMP_WORDS, Number.MAX_SAFE_INTEGER, 'timestamp')
  const t = parseTaggedFields(words, TIMESTAMP_WORDS, sigStart)
  if (t.paymentHash === undefined) throw new InvoiceError('missing_payment_hash', 'invoice has no payment hash (p) field')
  if (t.paymentSecret === undefined) throw new InvoiceError('missing_payment_secret', 'invoice has no payment secret (s) field')
  const descriptionCount = t.descriptions.length + t.descriptionHashes
  if (descriptionCount !== 1)
    throw new InvoiceError('invalid_description', `invoice must have exactly one description (d) or description hash (h) field, has ${descriptionCount}`)

  const sigBytes = wordsToBytes(words, sigStart, words.length)
  const signature = sigBytes.slice(0, 64)
  const recovery = sigBytes[64]!
  const signingData = invoiceSigningData(hrp, words.subarray(0, sigStart))
  const signingHash = sha256(signingData)
  const payee = signaturePayee(signingHash, signature, recovery, t.payee)

  return {
    network,
    amountMsat,
    timestamp,
    paymentHash: t.paymentHash,
    paymentSecret: t.paymentSecret,
    description: t.descriptions[0],
    descriptionHash: t.descriptionHash,
    expiry: t.expiry ?? DEFAULT_EXPIRY,
    minFinalCltvExpiry: t.minFinalCltvExpiry ?? DEFAULT_MIN_FINAL_CLTV_EXPIRY,
    routeHints: t.routeHints,
    features: t.features ?? [],
    paymentMetadata: t.paymentMetadata,
    payee,
    payeeInField: t.payee !== undefined,
    signature,
    recovery,
    signatureValid: true,
    signingData,
    signingHash,
    unknownFields: t.skipped
  }
}

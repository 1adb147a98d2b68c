// BOLT 4 onion routing: "Packet Structure", "Packet Construction", "Onion Decryption", and the
// hop payload TLV of "Payload Format". The construction follows lnd's lightning-onion (sphinx.go)
// step for step, so that the official vector (bolt04/onion-test.json) is reproduced byte for byte.
//
//   onion_packet = version (1) ‖ public_key (33) ‖ hop_payloads (1300) ‖ hmac (32)
//   hop_payload  = bigsize length ‖ TLV stream ‖ hmac (32)
import { timingSafeEqual } from 'node:crypto'
import { secp256k1 } from './secp256k1.ts'
import { chacha20, cipherStream, generateKey, hmacSha256, sha256 } from './sphinx.ts'
import { MAX_U64, bigSizeLength, decodeBigSize, writeBigSize } from './bigsize.ts'
import { TlvError, decodeTu32, decodeTu64, encodeTlvStream, encodeTu32, encodeTu64, scanTlvStream, type TlvRecord } from './tlv.ts'
import { CodedError } from '../errors.ts'

export const ONION_VERSION = 0
export const PUBLIC_KEY_LENGTH = 33
export const HMAC_LENGTH = 32
export const ROUTING_INFO_LENGTH = 1300
export const ONION_PACKET_LENGTH = 1 + PUBLIC_KEY_LENGTH + ROUTING_INFO_LENGTH + HMAC_LENGTH // 1366

const KEY_OFFSET = 1
const ROUTING_INFO_OFFSET = KEY_OFFSET + PUBLIC_KEY_LENGTH
const HMAC_OFFSET = ROUTING_INFO_OFFSET + ROUTING_INFO_LENGTH

/** BOLT 4 "Payload Format": the hop payload TLV types (tlv_stream `payload`). */
export const PayloadType = {
  AMT_TO_FORWARD: 2n,
  OUTGOING_CLTV_VALUE: 4n,
  SHORT_CHANNEL_ID: 6n,
  PAYMENT_DATA: 8n,
  ENCRYPTED_RECIPIENT_DATA: 10n,
  CURRENT_PATH_KEY: 12n,
  PAYMENT_METADATA: 16n,
  TOTAL_AMOUNT_MSAT: 18n
} as const

export type OnionErrorCode = 'invalid_length' | 'invalid_version' | 'invalid_key' | 'invalid_hmac' | 'invalid_payload' | 'invalid_route'

/**
 * Onion failure. The first five codes are what a reader reports (the BOLT 4 failures
 * invalid_onion_version/_key/_hmac and invalid_onion_payload); 'invalid_route' is a builder error.
 * For 'invalid_payload', `tlvType` and `offset` are the fields of invalid_onion_payload: the type of
 * the offending record (0 when the stream framing itself is broken) and the byte offset of the
 * offending value within the hop payload's TLV stream; when peelOnion raises it, `sharedSecret` is
 * set too, since invalid_onion_payload goes back encrypted to the payer.
 */
export class OnionError extends CodedError<OnionErrorCode> {
  readonly tlvType: bigint | undefined
  readonly offset: number | undefined
  readonly sharedSecret: Uint8Array | undefined

  constructor(code: OnionErrorCode, message: string, where?: { tlvType: bigint; offset: number; sharedSecret?: Uint8Array }) {
    super(code, message)
    this.tlvType = where?.tlvType
    this.offset = where?.offset
    this.sharedSecret = where?.sharedSecret
  }
}

export interface PaymentData {
  paymentSecret: Uint8Array
  totalMsat: bigint
}

export interface HopPayload {
  amtToForward: bigint
  outgoingCltvValue: number
  shortChannelId?: bigint
  paymentData?: PaymentData
  paymentMetadata?: Uint8Array
  totalAmountMsat?: bigint
  /** Every record of the stream, known ones and unknown odd ones, in stream order. */
  records: TlvRecord[]
}

export interface PeeledOnion {
  sharedSecret: Uint8Array
  payload: HopPayload
  /** The hop's TLV stream, without its length prefix. */
  rawPayload: Uint8Array
  /** The next HMAC is all zeros: this node is the recipient (BOLT 4 "Onion Decryption"). */
  isFinal: boolean
  /** The packet to forward; absent for the final hop. */
  nextPacket?: Uint8Array
}

// ---------------------------------------------------------------------------------------------
// Hop payload (BOLT 4 "Payload Format")

function invalidPayload(type: bigint, offset: number, why: string): OnionError {
  return new OnionError('invalid_payload', `hop payload: type ${type} at offset ${offset}: ${why}`, { tlvType: type, offset })
}

/** Decodes one record value; a TlvError becomes invalid_payload naming the record. */
function field<T>(type: bigint, offset: number, decode: () => T): T {
  try {
    return decode()
  } catch (err) {
    if (err instanceof TlvError) throw invalidPayload(type, offset, err.message)
    throw err
  }
}

function readU64(value: Uint8Array): bigint {
  return new DataView(value.buffer, value.byteOffset, 8).getBigUint64(0)
}

/**
 * Parses a hop payload TLV stream. Byte fields (payment secret, metadata, record values) are views
 * into `tlv`. Unknown even types are rejected (BOLT 1: "it's ok to be odd"); route blinding's even
 * types (10, 12) count as unknown because highwire's invoices never use blinded paths.
 */
export function decodeHopPayload(tlv: Uint8Array): HopPayload {
  const records: TlvRecord[] = []
  let amtToForward: bigint | undefined
  let outgoingCltvValue: number | undefined
  const payload: Partial<HopPayload> = {}
  try {
    scanTlvStream(tlv, (type, value, offset) => {
      records.push({ type, value })
      switch (type) {
        case PayloadType.AMT_TO_FORWARD:
          amtToForward = field(type, offset, () => decodeTu64(value))
          break
        case PayloadType.OUTGOING_CLTV_VALUE:
          outgoingCltvValue = field(type, offset, () => decodeTu32(value))
          break
        case PayloadType.SHORT_CHANNEL_ID:
          if (value.length !== 8) throw invalidPayload(type, offset, `short_channel_id is ${value.length} bytes, not 8`)
          payload.shortChannelId = readU64(value)
          break
        case PayloadType.PAYMENT_DATA:
          if (value.length < 32) throw invalidPayload(type, offset, `payment_data is ${value.length} bytes, under 32`)
          payload.paymentData = {
            paymentSecret: value.subarray(0, 32),
            totalMsat: field(type, offset + 32, () => decodeTu64(value.subarray(32)))
          }
          break
        case PayloadType.PAYMENT_METADATA:
          payload.paymentMetadata = value
          break
        case PayloadType.TOTAL_AMOUNT_MSAT:
          payload.totalAmountMsat = field(type, offset, () => decodeTu64(value))
          break
        default:
          if ((type & 1n) === 0n) throw invalidPayload(type, offset, 'unknown even type')
      }
    })
  } catch (err) {
    if (err instanceof TlvError) throw invalidPayload(err.type ?? 0n, err.offset, err.message)
    throw err
  }
  if (amtToForward === undefined) throw invalidPayload(PayloadType.AMT_TO_FORWARD, 0, 'amt_to_forward missing')
  if (outgoingCltvValue === undefined) throw invalidPayload(PayloadType.OUTGOING_CLTV_VALUE, 0, 'outgoing_cltv_value missing')
  return { amtToForward, outgoingCltvValue, ...payload, records }
}

function u64(n: bigint, what: string): Uint8Array {
  // DataView.setBigUint64 silently wraps modulo 2^64, so the range is checked here.
  if (n < 0n || n > MAX_U64) throw new TlvError('out_of_range', `${what} out of range: ${n}`)
  const out = new Uint8Array(8)
  new DataView(out.buffer).setBigUint64(0, n)
  return out
}

/** Encodes a hop payload TLV stream (without the length prefix); extra records are merged in type order. */
export function encodeHopPayload(p: Omit<HopPayload, 'records'> & { extraRecords?: TlvRecord[] }): Uint8Array {
  const records: TlvRecord[] = [
    { type: PayloadType.AMT_TO_FORWARD, value: encodeTu64(p.amtToForward) },
    { type: PayloadType.OUTGOING_CLTV_VALUE, value: encodeTu32(p.outgoingCltvValue) }
  ]
  if (p.shortChannelId !== undefined) {
    records.push({ type: PayloadType.SHORT_CHANNEL_ID, value: u64(p.shortChannelId, 'short_channel_id') })
  }
  if (p.paymentData !== undefined) {
    const { paymentSecret, totalMsat } = p.paymentData
    if (paymentSecret.length !== 32) throw new TlvError('out_of_range', `payment_secret is ${paymentSecret.length} bytes, not 32`)
    const total = encodeTu64(totalMsat)
    const value = new Uint8Array(32 + total.length)
    value.set(paymentSecret)
    value.set(total, 32)
    records.push({ type: PayloadType.PAYMENT_DATA, value })
  }
  if (p.paymentMetadata !== undefined) records.push({ type: PayloadType.PAYMENT_METADATA, value: p.paymentMetadata })
  if (p.totalAmountMsat !== undefined) records.push({ type: PayloadType.TOTAL_AMOUNT_MSAT, value: encodeTu64(p.totalAmountMsat) })
  records.push(...(p.extraRecords ?? []))
  records.sort((a, b) => (a.type < b.type ? -1 : a.type > b.type ? 1 : 0))
  return encodeTlvStream(records)
}

// ---------------------------------------------------------------------------------------------
// Packet construction (BOLT 4 "Shared Secret", "Blinding Ephemeral Onion Keys", "Packet Construction")

function ecdh(publicKey: Uint8Array, secretKey: Uint8Array): Uint8Array {
  try {
    return secp256k1.ecdh(publicKey, secretKey)
  } catch {
    if (!secp256k1.isSecretKey(secretKey)) throw new RangeError('onion: node key is not a valid secp256k1 secret key')
    throw new OnionError('invalid_key', 'onion: public key is not a valid secp256k1 point')
  }
}

/** The blinding factor of one hop: SHA256(ephemeral public key ‖ shared secret). */
function blindingFactor(ephemeralKey: Uint8Array, sharedSecret: Uint8Array): Uint8Array {
  return sha256(ephemeralKey, sharedSecret)
}

/**
 * The first hop's ephemeral public key and every hop's shared secret for a route, from the
 * session key (each hop's ephemeral secret is the previous one times its blinding factor).
 */
export function routeSecrets(pubkeys: readonly Uint8Array[], sessionKey: Uint8Array): { ephemeralKey: Uint8Array; sharedSecrets: Uint8Array[] } {
  if (!secp256k1.isSecretKey(sessionKey)) throw new OnionError('invalid_key', 'onion: session key is not a valid secp256k1 secret key')
  const ephemeralKey = secp256k1.publicKey(sessionKey)
  const sharedSecrets: Uint8Array[] = []
  let secret = sessionKey
  let publicKey = ephemeralKey
  for (let i = 0; i < pubkeys.length; i++) {
    const hop = pubkeys[i]!
    if (hop.length !== PUBLIC_KEY_LENGTH || !secp256k1.isPublicKey(hop)) {
      throw new OnionError('invalid_key', `onion: hop ${i} public key is not a compressed secp256k1 point`)
    }
    const sharedSecret = ecdh(hop, secret)
    sharedSecrets.push(sharedSecret)
    if (i + 1 < pubkeys.length) {
      secret = secp256k1.secretKeyTweakMul(secret, blindingFactor(publicKey, sharedSecret))
      publicKey = secp256k1.publicKey(secret)
    }
  }
  return { ephemeralKey, sharedSecrets }
}

/** Bytes a hop occupies in hop_payloads: length prefix, TLV stream, HMAC. */
function frameSize(payload: Uint8Array): number {
  return bigSizeLength(BigInt(payload.length)) + payload.length + HMAC_LENGTH
}

/**
 * BOLT 4 "Filler Generation": the bytes the last hop will see at the end of its hop_payloads after
 * every earlier hop has shifted in its rho stream's zero-padding, so the last HMAC can cover them.
 */
function generateFiller(frames: readonly number[], sharedSecrets: readonly Uint8Array[]): Uint8Array {
  let fillerLength = 0
  for (let i = 0; i < frames.length - 1; i++) fillerLength += frames[i]!
  const filler = new Uint8Array(fillerLength)
  let used = 0
  for (let i = 0; i < frames.length - 1; i++) {
    const frame = frames[i]!
    const stream = cipherStream(generateKey('rho', sharedSecrets[i]!), ROUTING_INFO_LENGTH + frame)
    const start = ROUTING_INFO_LENGTH - used
    used += frame
    for (let j = 0; j < used; j++) filler[j]! ^= stream[start + j]!
  }
  return filler
}

/**
 * Builds an onion for `hops` (each payload a TLV stream, see encodeHopPayload). Returns the
 * 1366-byte packet and the per-hop shared secrets (the origin needs them to decode failures).
 */
export function buildOnion(
  hops: readonly { pubkey: Uint8Array; payload: Uint8Array }[],
  sessionKey: Uint8Array,
  associatedData: Uint8Array
): { packet: Uint8Array; sharedSecrets: Uint8Array[] } {
  if (hops.length === 0) throw new OnionError('invalid_route', 'onion: no hops')
  const frames = hops.map((hop, i) => {
    // A zero length marked the legacy fixed-size payload, which BOLT 4 no longer allows.
    if (hop.payload.length === 0) throw new OnionError('invalid_route', `onion: hop ${i} payload is empty`)
    return frameSize(hop.payload)
  })
  const total = frames.reduce((a, b) => a + b, 0)
  if (total > ROUTING_INFO_LENGTH) throw new OnionError('invalid_route', `onion: payloads take ${total} bytes, over ${ROUTING_INFO_LENGTH}`)
  const { ephemeralKey, sharedSecrets } = routeSecrets(
    hops.map((hop) => hop.pubkey),
    sessionKey
  )
  const filler = generateFiller(frames, sharedSecrets)

  // Start from pseudo-random bytes rather than zeros, so the unused tail reveals nothing (BOLT 4).
  let routingInfo: Uint8Array = cipherStream(generateKey('pad', sessionKey), ROUTING_INFO_LENGTH)
  let hmac: Uint8Array = new Uint8Array(HMAC_LENGTH)
  for (let i = hops.length - 1; i >= 0; i--) {
    const { payload } = hops[i]!
    const frame = frames[i]!
    routingInfo.copyWithin(frame, 0, ROUTING_INFO_LENGTH - frame)
    const offset = writeBigSize(routingInfo, 0, BigInt(payload.length))
    routingInfo.set(payload, offset)
    routingInfo.set(hmac, offset + payload.length)
    routingInfo = chacha20(generateKey('rho', sharedSecrets[i]!)).update(routingInfo)
    if (i === hops.length - 1) routingInfo.set(filler, ROUTING_INFO_LENGTH - filler.length)
    hmac = hmacSha256(generateKey('mu', sharedSecrets[i]!), routingInfo, associatedData)
  }

  const packet = new Uint8Array(ONION_PACKET_LENGTH)
  packet[0] = ONION_VERSION
  packet.set(ephemeralKey, KEY_OFFSET)
  packet.set(routingInfo, ROUTING_INFO_OFFSET)
  packet.set(hmac, HMAC_OFFSET)
  return { packet, sharedSecrets }
}

// ---------------------------------------------------------------------------------------------
// Onion decryption (BOLT 4 "Onion Decryption")

function isZero(bytes: Uint8Array): boolean {
  let acc = 0
  for (let i = 0; i < bytes.length; i++) acc |= bytes[i]!
  return acc === 0
}

/** Splits decrypted hop_payloads into this hop's payload (parsed) and the next HMAC. */
function readHop(hopPayloads: Uint8Array): { payload: HopPayload; rawPayload: Uint8Array; nextHmac: Uint8Array; frame: number } {
  let length: { value: bigint; size: number }
  try {
    length = decodeBigSize(hopPayloads, 0)
  } catch (err) {
    if (err instanceof TlvError) throw new OnionError('invalid_payload', `onion: payload length: ${err.message}`, { tlvType: 0n, offset: 0 })
    throw err
  }
  if (length.value === 0n) {
    throw new OnionError('invalid_payload', 'onion: legacy (zero-length) payload is not supported', { tlvType: 0n, offset: 0 })
  }
  if (length.value > BigInt(ROUTING_INFO_LENGTH - length.size - HMAC_LENGTH)) {
    throw new OnionError('invalid_payload', `onion: payload length ${length.value} overflows hop_payloads`, { tlvType: 0n, offset: 0 })
  }
  const end = length.size + Number(length.value)
  const rawPayload = hopPayloads.subarray(length.size, end)
  return { payload: decodeHopPayload(rawPayload), rawPayload, nextHmac: hopPayloads.subarray(end, end + HMAC_LENGTH), frame: end + HMAC_LENGTH }
}

/**
 * Peels one layer with this node's key. Checks, in BOLT 4 order: length, version, ephemeral key,
 * HMAC (over hop_payloads ‖ associated data, constant time), then the payload. The rho stream is
 * consumed once: its first 1300 bytes decrypt hop_payloads, and only for a forwarding hop are the
 * next `frame` bytes drawn to fill the shifted-in tail of the next packet.
 */
export function peelOnion(packet: Uint8Array, nodeKey: Uint8Array, associatedData: Uint8Array): PeeledOnion {
  if (packet.length !== ONION_PACKET_LENGTH) {
    throw new OnionError('invalid_length', `onion: packet is ${packet.length} bytes, not ${ONION_PACKET_LENGTH}`)
  }
  if (packet[0] !== ONION_VERSION) throw new OnionError('invalid_version', `onion: unknown version ${packet[0]}`)
  const ephemeralKey = packet.subarray(KEY_OFFSET, ROUTING_INFO_OFFSET)
  const routingInfo = packet.subarray(ROUTING_INFO_OFFSET, HMAC_OFFSET)
  const sharedSecret = ecdh(ephemeralKey, nodeKey)
  const expected = hmacSha256(generateKey('mu', sharedSecret), routingInfo, associatedData)
  if (!timingSafeEqual(expected, packet.subarray(HMAC_OFFSET))) throw new OnionError('invalid_hmac', 'onion: HMAC mismatch')

  const rho = chacha20(generateKey('rho', sharedSecret))
  const hopPayloads = rho.update(routingInfo)
  let hop: ReturnType<typeof readHop>
  try {
    hop = readHop(hopPayloads)
  } catch (err) {
    if (!(err instanceof OnionError)) throw err
    throw new OnionError(err.code, err.message, { tlvType: err.tlvType ?? 0n, offset: err.offset ?? 0, sharedSecret })
  }
  const { payload, rawPayload, nextHmac, frame } = hop
  const isFinal = isZero(nextHmac)
  if (isFinal) return { sharedSecret, payload, rawPayload, isFinal }

  if (payload.shortChannelId === undefined) {
    throw new OnionError('invalid_payload', 'onion: forwarding hop without short_channel_id', {
      tlvType: PayloadType.SHORT_CHANNEL_ID,
      offset: 0,
      sharedSecret
    })
  }
  const nextPacket = new Uint8Array(ONION_PACKET_LENGTH)
  nextPacket[0] = ONION_VERSION
  nextPacket.set(secp256k1.publicKeyTweakMul(ephemeralKey, blindingFactor(ephemeralKey, sharedSecret)), KEY_OFFSET)
  nextPacket.set(hopPayloads.subarray(frame), ROUTING_INFO_OFFSET)
  // hop_payloads ‖ 1300 zero bytes, decrypted: the zeros become the next `frame` bytes of the stream.
  nextPacket.set(rho.update(new Uint8Array(frame)), HMAC_OFFSET - frame)
  nextPacket.set(nextHmac, HMAC_OFFSET)
  return { sharedSecret, payload, rawPayload, isFinal, nextPacket }
}

// BOLT 4 "Returning Errors" and "Failure Messages". The erring node builds
//   packet = hmac(um) ‖ u16 failure_len ‖ failuremsg ‖ u16 pad_len ‖ pad      (hmac over the rest)
// and encrypts it with its ammag stream; every hop on the way back adds its own ammag layer; the
// origin strips layers in route order until one hop's um HMAC matches, which names the erring hop.
import { timingSafeEqual } from 'node:crypto'
import { chacha20, generateKey, hmacSha256 } from './sphinx.ts'
import { MAX_U64, TlvError, bigSizeLength, decodeBigSize, writeBigSize } from './bigsize.ts'
import { CodedError } from '../errors.ts'

/** failure_len + failuremsg padded to at least this many bytes, so failures look alike on the wire. */
export const FAILURE_MESSAGE_PADDED_LENGTH = 256
export const FAILURE_PACKET_LENGTH = 32 + 2 + FAILURE_MESSAGE_PADDED_LENGTH + 2 // 292

export const BADONION = 0x8000
export const PERM = 0x4000
export const NODE = 0x2000
export const UPDATE = 0x1000

/** Every failure code of BOLT 4 "Failure Messages" (the flags are spelled out in the comments). */
export const FailureCode = {
  INVALID_REALM: 0x4001, // PERM|1
  TEMPORARY_NODE_FAILURE: 0x2002, // NODE|2
  PERMANENT_NODE_FAILURE: 0x6002, // PERM|NODE|2
  REQUIRED_NODE_FEATURE_MISSING: 0x6003, // PERM|NODE|3
  INVALID_ONION_VERSION: 0xc004, // BADONION|PERM|4
  INVALID_ONION_HMAC: 0xc005, // BADONION|PERM|5
  INVALID_ONION_KEY: 0xc006, // BADONION|PERM|6
  TEMPORARY_CHANNEL_FAILURE: 0x1007, // UPDATE|7
  PERMANENT_CHANNEL_FAILURE: 0x4008, // PERM|8
  REQUIRED_CHANNEL_FEATURE_MISSING: 0x4009, // PERM|9
  UNKNOWN_NEXT_PEER: 0x400a, // PERM|10
  AMOUNT_BELOW_MINIMUM: 0x100b, // UPDATE|11
  FEE_INSUFFICIENT: 0x100c, // UPDATE|12
  INCORRECT_CLTV_EXPIRY: 0x100d, // UPDATE|13
  EXPIRY_TOO_SOON: 0x100e, // UPDATE|14
  INCORRECT_OR_UNKNOWN_PAYMENT_DETAILS: 0x400f, // PERM|15
  FINAL_INCORRECT_CLTV_EXPIRY: 18,
  FINAL_INCORRECT_HTLC_AMOUNT: 19,
  CHANNEL_DISABLED: 0x1014, // UPDATE|20
  EXPIRY_TOO_FAR: 21,
  INVALID_ONION_PAYLOAD: 0x4016, // PERM|22
  MPP_TIMEOUT: 23,
  INVALID_ONION_BLINDING: 0xc018 // BADONION|PERM|24
} as const

type Code = typeof FailureCode

/** A decoded failure message: the typed fields of its code, or the raw data of an unknown code. */
export type FailureMessage =
  | {
      code:
        | Code['INVALID_REALM']
        | Code['TEMPORARY_NODE_FAILURE']
        | Code['PERMANENT_NODE_FAILURE']
        | Code['REQUIRED_NODE_FEATURE_MISSING']
        | Code['PERMANENT_CHANNEL_FAILURE']
        | Code['REQUIRED_CHANNEL_FEATURE_MISSING']
        | Code['UNKNOWN_NEXT_PEER']
        | Code['EXPIRY_TOO_FAR']
        | Code['MPP_TIMEOUT']
    }
  | {
      code: Code['INVALID_ONION_VERSION'] | Code['INVALID_ONION_HMAC'] | Code['INVALID_ONION_KEY'] | Code['INVALID_ONION_BLINDING']
      sha256OfOnion: Uint8Array
    }
  | { code: Code['TEMPORARY_CHANNEL_FAILURE'] | Code['EXPIRY_TOO_SOON']; channelUpdate: Uint8Array }
  | { code: Code['AMOUNT_BELOW_MINIMUM'] | Code['FEE_INSUFFICIENT']; htlcMsat: bigint; channelUpdate: Uint8Array }
  | { code: Code['INCORRECT_CLTV_EXPIRY']; cltvExpiry: number; channelUpdate: Uint8Array }
  | { code: Code['CHANNEL_DISABLED']; disabledFlags: number; channelUpdate: Uint8Array }
  | { code: Code['INCORRECT_OR_UNKNOWN_PAYMENT_DETAILS']; htlcMsat: bigint; height: number }
  | { code: Code['FINAL_INCORRECT_CLTV_EXPIRY']; cltvExpiry: number }
  | { code: Code['FINAL_INCORRECT_HTLC_AMOUNT']; incomingHtlcAmt: bigint }
  | { code: Code['INVALID_ONION_PAYLOAD']; type: bigint; offset: number }
  | { code: number; data: Uint8Array }

export type FailureErrorCode = 'truncated' | 'malformed' | 'invalid_field' | 'too_long' | 'invalid_length' | 'invalid_secret' | 'unknown_origin'

export class FailureError extends CodedError<FailureErrorCode> {
  /** For a packet whose HMAC matched but whose padding framing is broken: the hop that sent it. */
  readonly hopIndex: number | undefined

  constructor(code: FailureErrorCode, message: string, hopIndex?: number) {
    super(code, message)
    this.hopIndex = hopIndex
  }
}

// ---------------------------------------------------------------------------------------------
// Failure messages: one field layout per code drives both the encoder and the decoder.

/** 'update' is BOLT 4's `u16 len ‖ channel_update`; 'sha256' is sha256_of_onion. */
type FieldKind = 'u16' | 'u32' | 'u64' | 'sha256' | 'bigsize' | 'update'
type Layout = readonly (readonly [name: string, kind: FieldKind])[]

const UPDATE_FIELD = ['channelUpdate', 'update'] as const
const ONION_HASH_FIELD = ['sha256OfOnion', 'sha256'] as const

const LAYOUTS: ReadonlyMap<number, Layout> = new Map<number, Layout>([
  [FailureCode.INVALID_REALM, []],
  [FailureCode.TEMPORARY_NODE_FAILURE, []],
  [FailureCode.PERMANENT_NODE_FAILURE, []],
  [FailureCode.REQUIRED_NODE_FEATURE_MISSING, []],
  [FailureCode.INVALID_ONION_VERSION, [ONION_HASH_FIELD]],
  [FailureCode.INVALID_ONION_HMAC, [ONION_HASH_FIELD]],
  [FailureCode.INVALID_ONION_KEY, [ONION_HASH_FIELD]],
  [FailureCode.TEMPORARY_CHANNEL_FAILURE, [UPDATE_FIELD]],
  [FailureCode.PERMANENT_CHANNEL_FAILURE, []],
  [FailureCode.REQUIRED_CHANNEL_FEATURE_MISSING, []],
  [FailureCode.UNKNOWN_NEXT_PEER, []],
  [FailureCode.AMOUNT_BELOW_MINIMUM, [['htlcMsat', 'u64'], UPDATE_FIELD]],
  [FailureCode.FEE_INSUFFICIENT, [['htlcMsat', 'u64'], UPDATE_FIELD]],
  [FailureCode.INCORRECT_CLTV_EXPIRY, [['cltvExpiry', 'u32'], UPDATE_FIELD]],
  [FailureCode.EXPIRY_TOO_SOON, [UPDATE_FIELD]],
  [FailureCode.INCORRECT_OR_UNKNOWN_PAYMENT_DETAILS, [['htlcMsat', 'u64'], ['height', 'u32']]],
  [FailureCode.FINAL_INCORRECT_CLTV_EXPIRY, [['cltvExpiry', 'u32']]],
  [FailureCode.FINAL_INCORRECT_HTLC_AMOUNT, [['incomingHtlcAmt', 'u64']]],
  [FailureCode.CHANNEL_DISABLED, [['disabledFlags', 'u16'], UPDATE_FIELD]],
  [FailureCode.EXPIRY_TOO_FAR, []],
  [FailureCode.INVALID_ONION_PAYLOAD, [['type', 'bigsize'], ['offset', 'u16']]],
  [FailureCode.MPP_TIMEOUT, []],
  [FailureCode.INVALID_ONION_BLINDING, [ONION_HASH_FIELD]]
])

function invalidField(code: number, name: string, value: unknown): FailureError {
  return new FailureError('invalid_field', `failure 0x${code.toString(16)}: invalid ${name}: ${String(value)}`)
}

function isUint(value: unknown, bits: number): value is number {
  return typeof value === 'number' && Number.isInteger(value) && value >= 0 && value < 2 ** bits
}

/** Checks one field's value and returns its encoded size. */
function fieldSize(code: number, name: string, kind: FieldKind, value: unknown): number {
  switch (kind) {
    case 'u16':
    case 'u32':
      if (!isUint(value, kind === 'u16' ? 16 : 32)) throw invalidField(code, name, value)
      return kind === 'u16' ? 2 : 4
    case 'u64':
      if (typeof value !== 'bigint' || value < 0n || value > MAX_U64) throw invalidField(code, name, value)
      return 8
    case 'bigsize':
      if (typeof value !== 'bigint' || value < 0n || value > MAX_U64) throw invalidField(code, name, value)
      return bigSizeLength(value)
    case 'sha256':
      if (!(value instanceof Uint8Array) || value.length !== 32) throw invalidField(code, name, 'not 32 bytes')
      return 32
    case 'update':
      if (!(value instanceof Uint8Array) || value.length > 0xffff) throw invalidField(code, name, 'not up to 65535 bytes')
      return 2 + value.length
  }
}

export function encodeFailureMessage(m: FailureMessage): Uint8Array {
  const { code } = m
  if (!isUint(code, 16)) throw invalidField(0, 'code', code)
  const fields = m as unknown as Record<string, unknown>
  const layout = LAYOUTS.get(code)
  if (layout === undefined) {
    const data = fields['data']
    if (!(data instanceof Uint8Array)) throw invalidField(code, 'data', 'missing for an unknown code')
    const out = new Uint8Array(2 + data.length)
    new DataView(out.buffer).setUint16(0, code)
    out.set(data, 2)
    return out
  }
  let size = 2
  for (const [name, kind] of layout) size += fieldSize(code, name, kind, fields[name])
  const out = new Uint8Array(size)
  const view = new DataView(out.buffer)
  view.setUint16(0, code)
  let offset = 2
  for (const [name, kind] of layout) {
    const value = fields[name]
    switch (kind) {
      case 'u16':
        view.setUint16(offset, value as number)
        offset += 2
        break
      case 'u32':
        view.setUint32(offset, value as number)
        offset += 4
        break
      case 'u64':
        view.setBigUint64(offset, value as bigint)
        offset += 8
        break
      case 'bigsize':
        offset = writeBigSize(out, offset, value as bigint)
        break
      case 'sha256':
        out.set(value as Uint8Array, offset)
        offset += 32
        break
      case 'update': {
        const update = value as Uint8Array
        view.setUint16(offset, update.length)
        out.set(update, offset + 2)
        offset += 2 + update.length
        break
      }
    }
  }
  return out
}

/**
 * Decodes a failure message. Known codes need all their fields; bytes after them are ignored (BOLT 1
 * lets messages grow at the end). Unknown codes keep their data raw. Byte fields are copies.
 */
export function decodeFailureMessage(bytes: Uint8Array): FailureMessage {
  if (bytes.length < 2) throw new FailureError('truncated', `failure message: ${bytes.length} bytes, no code`)
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const code = view.getUint16(0)
  const layout = LAYOUTS.get(code)
  if (layout === undefined) return { code, data: bytes.slice(2) }
  const message: Record<string, unknown> = { code }
  let offset = 2
  const need = (name: string, n: number): void => {
    if (offset + n > bytes.length) {
      throw new FailureError('truncated', `failure 0x${code.toString(16)}: ${name} needs ${n} bytes at offset ${offset}, message has ${bytes.length}`)
    }
  }
  for (const [name, kind] of layout) {
    switch (kind) {
      case 'u16':
        need(name, 2)
        message[name] = view.getUint16(offset)
        offset += 2
        break
      case 'u32':
        need(name, 4)
        message[name] = view.getUint32(offset)
        offset += 4
        break
      case 'u64':
        need(name, 8)
        message[name] = view.getBigUint64(offset)
        offset += 8
        break
      case 'bigsize':
        try {
          const { value, size } = decodeBigSize(bytes, offset)
          message[name] = value
          offset += size
        } catch (err) {
          if (!(err instanceof TlvError)) throw err
          throw new FailureError(err.code === 'truncated' ? 'truncated' : 'malformed', `failure 0x${code.toString(16)}: ${name}: ${err.message}`)
        }
        break
      case 'sha256':
        need(name, 32)
        message[name] = bytes.slice(offset, offset + 32)
        offset += 32
        break
      case 'update': {
        need(name, 2)
        const length = view.getUint16(offset)
        offset += 2
        need(name, length)
        message[name] = bytes.slice(offset, offset + length)
        offset += length
        break
      }
    }
  }
  return message as FailureMessage
}

// ---------------------------------------------------------------------------------------------
// Failure packets (BOLT 4 "Returning Errors")

function checkSecret(sharedSecret: Uint8Array): void {
  if (sharedSecret.length !== 32) throw new FailureError('invalid_secret', `shared secret is ${sharedSecret.length} bytes, not 32`)
}

/** The packet the erring node returns (292 bytes for any message of up to 256 bytes). */
export function createFailurePacket(sharedSecret: Uint8Array, message: Uint8Array): Uint8Array {
  checkSecret(sharedSecret)
  if (message.length > FAILURE_MESSAGE_PADDED_LENGTH) {
    throw new FailureError('too_long', `failure message is ${message.length} bytes, over ${FAILURE_MESSAGE_PADDED_LENGTH}`)
  }
  const packet = new Uint8Array(FAILURE_PACKET_LENGTH)
  const view = new DataView(packet.buffer)
  view.setUint16(32, message.length)
  packet.set(message, 34)
  view.setUint16(34 + message.length, FAILURE_MESSAGE_PADDED_LENGTH - message.length) // pad stays zero
  packet.set(hmacSha256(generateKey('um', sharedSecret), packet.subarray(32)), 0)
  return chacha20(generateKey('ammag', sharedSecret)).update(packet)
}

/** What each hop on the way back does: one more ammag layer. */
export function wrapFailurePacket(sharedSecret: Uint8Array, packet: Uint8Array): Uint8Array {
  checkSecret(sharedSecret)
  return chacha20(generateKey('ammag', sharedSecret)).update(packet)
}

/** Reads failure_len ‖ failuremsg ‖ pad_len ‖ pad of a packet whose HMAC matched. */
function unpad(packet: Uint8Array, hopIndex: number): Uint8Array {
  const view = new DataView(packet.buffer, packet.byteOffset, packet.byteLength)
  const length = view.getUint16(32)
  if (36 + length > packet.length) {
    throw new FailureError('malformed', `failure packet from hop ${hopIndex}: failure_len ${length} overflows the packet`, hopIndex)
  }
  const padLength = view.getUint16(34 + length)
  if (36 + length + padLength > packet.length) {
    throw new FailureError('malformed', `failure packet from hop ${hopIndex}: pad_len ${padLength} overflows the packet`, hopIndex)
  }
  return packet.subarray(34, 34 + length)
}

/**
 * At the origin: strips one layer per hop, in route order, until a hop's um HMAC matches.
 * Throws FailureError 'unknown_origin' when none does (a hop garbled the packet).
 */
export function decodeFailurePacket(sharedSecrets: readonly Uint8Array[], packet: Uint8Array): { hopIndex: number; message: Uint8Array } {
  if (packet.length < 36) throw new FailureError('invalid_length', `failure packet is ${packet.length} bytes, under 36`)
  let layer: Uint8Array = packet
  for (let hopIndex = 0; hopIndex < sharedSecrets.length; hopIndex++) {
    const sharedSecret = sharedSecrets[hopIndex]!
    checkSecret(sharedSecret)
    layer = chacha20(generateKey('ammag', sharedSecret)).update(layer)
    const expected = hmacSha256(generateKey('um', sharedSecret), layer.subarray(32))
    if (timingSafeEqual(expected, layer.subarray(0, 32))) return { hopIndex, message: unpad(layer, hopIndex) }
  }
  throw new FailureError('unknown_origin', `failure packet: no HMAC matches any of ${sharedSecrets.length} hops`)
}

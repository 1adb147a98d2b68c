import { test } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes, randomInt } from 'node:crypto'
import { loadVector } from '../vectors.ts'
import { routeSecrets } from '../../src/ln/onion.ts'
import { generateKey, chacha20, hmacSha256 } from '../../src/ln/sphinx.ts'
import {
  FAILURE_PACKET_LENGTH,
  FailureCode,
  FailureError,
  createFailurePacket,
  decodeFailureMessage,
  decodeFailurePacket,
  encodeFailureMessage,
  wrapFailurePacket,
  type FailureMessage
} from '../../src/ln/failure.ts'

interface ErrorVector {
  generate: {
    session_key: string
    failure_message: string
    hops: { pubkey: string; hop_shared_secret: string; ammag_key: string; um_key?: string; payload?: string }[]
  }
  errorpacket: string
}

const hex = (s: string): Uint8Array => Uint8Array.from(Buffer.from(s, 'hex'))
const toHex = (b: Uint8Array): string => Buffer.from(b).toString('hex')
const vector = loadVector<ErrorVector>('onion-error-test.json')

/** Byte fields as hex, so Buffers and Uint8Arrays compare by content. */
function plain(m: object): Record<string, unknown> {
  return Object.fromEntries(Object.entries(m).map(([k, v]) => [k, v instanceof Uint8Array ? toHex(v) : v]))
}

function assertFailureError(fn: () => unknown, code: FailureError['code']): FailureError {
  let caught: FailureError | undefined
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof FailureError, `expected FailureError, got ${String(err)}`)
    assert.equal(err.code, code, err.message)
    caught = err
    return true
  })
  return caught!
}

test('error vector: shared secrets, ammag and um keys of every hop', () => {
  const { hops, session_key } = vector.generate
  const { sharedSecrets } = routeSecrets(hops.map((h) => hex(h.pubkey)), hex(session_key))
  hops.forEach((hop, i) => {
    assert.equal(toHex(sharedSecrets[i]!), hop.hop_shared_secret)
    assert.equal(toHex(generateKey('ammag', sharedSecrets[i]!)), hop.ammag_key)
    if (hop.um_key) assert.equal(toHex(generateKey('um', sharedSecrets[i]!)), hop.um_key)
  })
})

test('error vector: the erring hop pads and MACs the message, every hop wraps, the origin decodes', () => {
  const { hops, failure_message } = vector.generate
  const secrets = hops.map((h) => hex(h.hop_shared_secret))
  const erring = hops.length - 1
  let packet = createFailurePacket(secrets[erring]!, hex(failure_message))
  assert.equal(packet.length, FAILURE_PACKET_LENGTH)
  // Removing the erring hop's ammag layer shows hmac ‖ the vector's padded payload.
  const plain = chacha20(generateKey('ammag', secrets[erring]!)).update(packet)
  assert.equal(toHex(plain.subarray(32)), hops[erring]!.payload)
  for (let i = erring; i >= 0; i--) {
    if (i < erring) packet = wrapFailurePacket(secrets[i]!, packet)
    // At every hop, the packet so far decodes from that hop onwards to the erring hop.
    const decoded = decodeFailurePacket(secrets.slice(i), packet)
    assert.equal(decoded.hopIndex, erring - i)
    assert.equal(toHex(decoded.message), failure_message)
  }
  assert.equal(toHex(packet), vector.errorpacket)
  const { hopIndex, message } = decodeFailurePacket(secrets, hex(vector.errorpacket))
  assert.equal(hopIndex, erring)
  assert.deepEqual(decodeFailureMessage(message), { code: FailureCode.TEMPORARY_NODE_FAILURE })
})

test('failure packets: unknown origin, malformed padding, bad lengths', () => {
  const secrets = [randomBytes(32), randomBytes(32)]
  const packet = wrapFailurePacket(secrets[0]!, createFailurePacket(secrets[1]!, hex('0017')))
  assert.deepEqual(plain(decodeFailurePacket(secrets, packet)), { hopIndex: 1, message: '0017' })
  assertFailureError(() => decodeFailurePacket([secrets[0]!], packet), 'unknown_origin')
  const flipped = Uint8Array.from(packet)
  flipped[100]! ^= 1
  assertFailureError(() => decodeFailurePacket(secrets, flipped), 'unknown_origin')
  assertFailureError(() => decodeFailurePacket(secrets, packet.subarray(0, 35)), 'invalid_length')
  assertFailureError(() => createFailurePacket(secrets[0]!, new Uint8Array(257)), 'too_long')
  assertFailureError(() => createFailurePacket(new Uint8Array(31), hex('0017')), 'invalid_secret')
  assert.equal(createFailurePacket(secrets[0]!, new Uint8Array(256)).length, FAILURE_PACKET_LENGTH)
  // A correctly MACed packet whose failure_len or pad_len overflows names the hop that sent it.
  for (const framing of ['0200' + '00'.repeat(256), '0002' + '0017' + '0200' + '00'.repeat(252)]) {
    const body = hex(framing)
    const plainPacket = new Uint8Array(32 + body.length)
    plainPacket.set(body, 32)
    plainPacket.set(hmacSha256(generateKey('um', secrets[1]!), body))
    const sealed = wrapFailurePacket(secrets[0]!, wrapFailurePacket(secrets[1]!, plainPacket))
    assert.equal(assertFailureError(() => decodeFailurePacket(secrets, sealed), 'malformed').hopIndex, 1)
  }
})

/** One message per BOLT 4 code, with random field values. */
function sampleMessages(): FailureMessage[] {
  const u64 = (): bigint => BigInt('0x' + randomBytes(8).toString('hex'))
  const u32 = (): number => randomInt(0, 2 ** 32 - 1)
  const update = (): Uint8Array => Uint8Array.from(randomBytes(randomInt(0, 140)))
  const hash = (): Uint8Array => Uint8Array.from(randomBytes(32))
  const C = FailureCode
  return [
    { code: C.INVALID_REALM },
    { code: C.TEMPORARY_NODE_FAILURE },
    { code: C.PERMANENT_NODE_FAILURE },
    { code: C.REQUIRED_NODE_FEATURE_MISSING },
    { code: C.INVALID_ONION_VERSION, sha256OfOnion: hash() },
    { code: C.INVALID_ONION_HMAC, sha256OfOnion: hash() },
    { code: C.INVALID_ONION_KEY, sha256OfOnion: hash() },
    { code: C.TEMPORARY_CHANNEL_FAILURE, channelUpdate: update() },
    { code: C.PERMANENT_CHANNEL_FAILURE },
    { code: C.REQUIRED_CHANNEL_FEATURE_MISSING },
    { code: C.UNKNOWN_NEXT_PEER },
    { code: C.AMOUNT_BELOW_MINIMUM, htlcMsat: u64(), channelUpdate: update() },
    { code: C.FEE_INSUFFICIENT, htlcMsat: u64(), channelUpdate: update() },
    { code: C.INCORRECT_CLTV_EXPIRY, cltvExpiry: u32(), channelUpdate: update() },
    { code: C.EXPIRY_TOO_SOON, channelUpdate: update() },
    { code: C.INCORRECT_OR_UNKNOWN_PAYMENT_DETAILS, htlcMsat: u64(), height: u32() },
    { code: C.FINAL_INCORRECT_CLTV_EXPIRY, cltvExpiry: u32() },
    { code: C.FINAL_INCORRECT_HTLC_AMOUNT, incomingHtlcAmt: u64() },
    { code: C.CHANNEL_DISABLED, disabledFlags: randomInt(0, 65536), channelUpdate: update() },
    { code: C.EXPIRY_TOO_FAR },
    { code: C.INVALID_ONION_PAYLOAD, type: u64() >> BigInt(randomInt(0, 64)), offset: randomInt(0, 65536) },
    { code: C.MPP_TIMEOUT },
    { code: C.INVALID_ONION_BLINDING, sha256OfOnion: hash() },
    { code: 0x7777, data: Uint8Array.from(randomBytes(randomInt(0, 50))) }
  ]
}

test('failure messages: every BOLT 4 code round-trips through a packet', () => {
  for (let round = 0; round < 20; round++) {
    const messages = sampleMessages()
    assert.equal(messages.length, Object.keys(FailureCode).length + 1)
    for (const m of messages) {
      const secrets = [randomBytes(32), randomBytes(32), randomBytes(32)]
      const erring = randomInt(0, 3)
      let packet = createFailurePacket(secrets[erring]!, encodeFailureMessage(m))
      for (let i = erring - 1; i >= 0; i--) packet = wrapFailurePacket(secrets[i]!, packet)
      const decoded = decodeFailurePacket(secrets, packet)
      assert.equal(decoded.hopIndex, erring)
      assert.deepEqual(plain(decodeFailureMessage(decoded.message)), plain(m))
    }
  }
})

test('failure messages: the final-node failures have BOLT 4 wire layouts', () => {
  const C = FailureCode
  assert.equal(toHex(encodeFailureMessage({ code: C.INCORRECT_OR_UNKNOWN_PAYMENT_DETAILS, htlcMsat: 1000n, height: 800_000 })), '400f' + '00000000000003e8' + '000c3500')
  assert.equal(toHex(encodeFailureMessage({ code: C.FINAL_INCORRECT_CLTV_EXPIRY, cltvExpiry: 144 })), '0012' + '00000090')
  assert.equal(toHex(encodeFailureMessage({ code: C.FINAL_INCORRECT_HTLC_AMOUNT, incomingHtlcAmt: 5n })), '0013' + '0000000000000005')
  assert.equal(toHex(encodeFailureMessage({ code: C.INVALID_ONION_PAYLOAD, type: 8n, offset: 300 })), '4016' + '08' + '012c')
  assert.equal(toHex(encodeFailureMessage({ code: C.MPP_TIMEOUT })), '0017')
  assert.equal(toHex(encodeFailureMessage({ code: C.TEMPORARY_CHANNEL_FAILURE, channelUpdate: hex('0102') })), '1007' + '0002' + '0102')
  // trailing bytes after the known fields are ignored (BOLT 1 extension rule)
  assert.deepEqual(decodeFailureMessage(hex('0012' + '00000090' + 'ffff')), { code: C.FINAL_INCORRECT_CLTV_EXPIRY, cltvExpiry: 144 })
  assert.deepEqual(plain(decodeFailureMessage(hex('7777' + 'abcd'))), { code: 0x7777, data: 'abcd' })
})

test('failure messages: truncated or invalid fields are typed errors', () => {
  const C = FailureCode
  assertFailureError(() => decodeFailureMessage(hex('40')), 'truncated')
  assertFailureError(() => decodeFailureMessage(hex('400f' + '00000000000003e8')), 'truncated')
  assertFailureError(() => decodeFailureMessage(hex('1007' + '0005' + '0102')), 'truncated')
  assertFailureError(() => decodeFailureMessage(hex('c005' + '00'.repeat(31))), 'truncated')
  assertFailureError(() => decodeFailureMessage(hex('4016' + 'fd0001' + '0000')), 'malformed')
  assertFailureError(() => decodeFailureMessage(hex('4016' + 'fd00')), 'truncated')
  assertFailureError(() => encodeFailureMessage({ code: C.FINAL_INCORRECT_CLTV_EXPIRY, cltvExpiry: -1 }), 'invalid_field')
  assertFailureError(() => encodeFailureMessage({ code: C.FINAL_INCORRECT_HTLC_AMOUNT, incomingHtlcAmt: 1n << 64n }), 'invalid_field')
  assertFailureError(() => encodeFailureMessage({ code: C.INVALID_ONION_HMAC, sha256OfOnion: new Uint8Array(31) }), 'invalid_field')
  assertFailureError(() => encodeFailureMessage({ code: 0x10000, data: new Uint8Array(0) }), 'invalid_field')
  // a known code given as raw data still needs its typed fields
  assertFailureError(() => encodeFailureMessage({ code: C.FINAL_INCORRECT_CLTV_EXPIRY, data: new Uint8Array(4) }), 'invalid_field')
})

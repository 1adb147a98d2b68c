import { test } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes, randomInt, createHash } from 'node:crypto'
import { loadVector } from '../vectors.ts'
import { secp256k1 } from '../../src/ln/secp256k1.ts'
import { decodeBigSize } from '../../src/ln/bigsize.ts'
import { encodeTlvStream, type TlvRecord } from '../../src/ln/tlv.ts'
import {
  ONION_PACKET_LENGTH,
  OnionError,
  buildOnion,
  decodeHopPayload,
  encodeHopPayload,
  peelOnion,
  routeSecrets,
  type HopPayload
} from '../../src/ln/onion.ts'

interface OnionVector {
  generate: { session_key: string; associated_data: string; hops: { pubkey: string; payload: string }[] }
  onion: string
  decode: string[]
}
interface ErrorVector {
  generate: { session_key: string; hops: { pubkey: string; hop_shared_secret: string }[] }
}

const hex = (s: string): Uint8Array => Uint8Array.from(Buffer.from(s, 'hex'))
const toHex = (b: Uint8Array): string => Buffer.from(b).toString('hex')
const vector = loadVector<OnionVector>('onion-test.json')
// onion-error-test.json states its keys and shared secrets are those of the onion vector's route.
const errorVector = loadVector<ErrorVector>('onion-error-test.json')
const sessionKey = hex(vector.generate.session_key)
const associatedData = hex(vector.generate.associated_data)

/** The vector's hop payloads carry their BigSize length prefix; the API takes the bare TLV stream. */
function vectorHops(): { pubkey: Uint8Array; payload: Uint8Array }[] {
  return vector.generate.hops.map((hop) => {
    const framed = hex(hop.payload)
    const { value, size } = decodeBigSize(framed)
    assert.equal(framed.length, size + Number(value))
    return { pubkey: hex(hop.pubkey), payload: framed.subarray(size) }
  })
}

function assertOnionError(fn: () => unknown, code: OnionError['code'], tlvType?: bigint, offset?: number): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof OnionError, `expected OnionError, got ${String(err)}`)
    assert.equal(err.code, code, err.message)
    if (tlvType !== undefined) assert.equal(err.tlvType, tlvType)
    if (offset !== undefined) assert.equal(err.offset, offset)
    return true
  })
}

/** Re-encodes a decoded payload: known fields plus every other record passed through. */
function reencode(p: HopPayload): Uint8Array {
  const known = new Set([2n, 4n, 6n, 8n, 16n, 18n])
  return encodeHopPayload({ ...p, extraRecords: p.records.filter((r) => !known.has(r.type)) })
}

test('onion vector: built byte for byte from `generate`', () => {
  const { packet, sharedSecrets } = buildOnion(vectorHops(), sessionKey, associatedData)
  assert.equal(packet.length, ONION_PACKET_LENGTH)
  assert.equal(toHex(packet), vector.onion)
  assert.deepEqual(sharedSecrets.map(toHex), errorVector.generate.hops.map((h) => h.hop_shared_secret))
})

test('onion vector: peeled at every hop with the listed keys', () => {
  const hops = vectorHops()
  // Independent derivation of each hop's ephemeral key (BOLT 4 "Blinding Ephemeral Onion Keys").
  let ephemeralSecret = sessionKey
  let packet = hex(vector.onion)
  vector.decode.forEach((nodeKeyHex, i) => {
    const nodeKey = hex(nodeKeyHex)
    assert.deepEqual(secp256k1.publicKey(nodeKey), hops[i]!.pubkey)
    const ephemeralKey = secp256k1.publicKey(ephemeralSecret)
    assert.deepEqual(packet.subarray(1, 34), ephemeralKey)

    const peeled = peelOnion(packet, nodeKey, associatedData)
    assert.equal(toHex(peeled.sharedSecret), errorVector.generate.hops[i]!.hop_shared_secret)
    assert.equal(toHex(peeled.rawPayload), toHex(hops[i]!.payload))
    assert.equal(toHex(reencode(peeled.payload)), toHex(hops[i]!.payload))
    const last = i === vector.decode.length - 1
    assert.equal(peeled.isFinal, last)
    assert.equal(peeled.nextPacket === undefined, last)
    if (peeled.nextPacket) packet = peeled.nextPacket

    const blinding = createHash('sha256').update(ephemeralKey).update(peeled.sharedSecret).digest()
    ephemeralSecret = secp256k1.secretKeyTweakMul(ephemeralSecret, blinding)
  })
})

test('onion vector: payload fields decoded (hop 0 forwarding, hop 1 odd record, hop 4 payment_data)', () => {
  const [hop0, hop1, , , hop4] = vectorHops().map((h) => decodeHopPayload(h.payload))
  assert.equal(hop0!.amtToForward, 15000n)
  assert.equal(hop0!.outgoingCltvValue, 1500)
  assert.equal(hop0!.shortChannelId, 1n)
  assert.equal(hop1!.records.at(-1)!.type, 513n)
  assert.equal(hop1!.records.at(-1)!.value.length, 60)
  assert.equal(hop4!.shortChannelId, undefined)
  assert.equal(hop4!.paymentData!.totalMsat, 10000n)
  assert.equal(toHex(hop4!.paymentData!.paymentSecret), '24a33562c54507a9334e79f0dc4f17d407e6d7c61f0e2f3d0d38599502f61704')
  assert.deepEqual(hop4!.records.map((r) => r.type), [2n, 4n, 8n, 301n])
})

test('peel: length, version, key and HMAC failures are typed', () => {
  const packet = hex(vector.onion)
  const key = hex(vector.decode[0]!)
  assertOnionError(() => peelOnion(packet.subarray(1), key, associatedData), 'invalid_length')
  assertOnionError(() => peelOnion(new Uint8Array(ONION_PACKET_LENGTH + 1), key, associatedData), 'invalid_length')
  const v1 = Uint8Array.from(packet)
  v1[0] = 1
  assertOnionError(() => peelOnion(v1, key, associatedData), 'invalid_version')
  const offCurve = Uint8Array.from(packet)
  offCurve.fill(0xff, 2, 34) // x >= p
  assertOnionError(() => peelOnion(offCurve, key, associatedData), 'invalid_key')
  const uncompressedPrefix = Uint8Array.from(packet)
  uncompressedPrefix[1] = 0x04
  assertOnionError(() => peelOnion(uncompressedPrefix, key, associatedData), 'invalid_key')
  assertOnionError(() => peelOnion(packet, key, hex('43'.repeat(32))), 'invalid_hmac')
  assertOnionError(() => peelOnion(packet, hex(vector.decode[1]!), associatedData), 'invalid_hmac')
  for (const at of [40, 700, 1333, 1340, 1365]) {
    const flipped = Uint8Array.from(packet)
    flipped[at]! ^= 0x10
    assertOnionError(() => peelOnion(flipped, key, associatedData), 'invalid_hmac')
  }
  assert.throws(() => peelOnion(packet, new Uint8Array(32), associatedData), RangeError)
})

test('hop payload: invalid records name their type and offset', () => {
  const tlv = (records: [bigint, string][]): Uint8Array => encodeTlvStream(records.map(([type, v]) => ({ type, value: hex(v) })))
  const base: [bigint, string][] = [
    [2n, '03e8'],
    [4n, '28']
  ]
  // offsets are those of the record's value in the TLV stream
  assertOnionError(() => decodeHopPayload(tlv([[4n, '28']])), 'invalid_payload', 2n)
  assertOnionError(() => decodeHopPayload(tlv([[2n, '01']])), 'invalid_payload', 4n)
  assertOnionError(() => decodeHopPayload(tlv([[2n, '0001'], [4n, '28']])), 'invalid_payload', 2n, 2)
  assertOnionError(() => decodeHopPayload(tlv([...base, [6n, '0001']])), 'invalid_payload', 6n, 9)
  assertOnionError(() => decodeHopPayload(tlv([...base, [8n, '00'.repeat(31)]])), 'invalid_payload', 8n, 9)
  assertOnionError(() => decodeHopPayload(tlv([...base, [8n, '11'.repeat(32) + '00ff']])), 'invalid_payload', 8n, 41)
  assertOnionError(() => decodeHopPayload(tlv([...base, [10n, '00']])), 'invalid_payload', 10n, 9)
  assertOnionError(() => decodeHopPayload(tlv([...base, [1000n, '']])), 'invalid_payload', 1000n, 11)
  assertOnionError(() => decodeHopPayload(hex('0202' + '03e8' + '0201' + '28')), 'invalid_payload', 2n, 4)
  assertOnionError(() => decodeHopPayload(hex('0202' + '03e8' + '0405' + '28')), 'invalid_payload', 4n, 4)
  const ok = decodeHopPayload(tlv([...base, [6n, '0000000000000abc'], [16n, 'cafe'], [18n, '07d0'], [1001n, '99']]))
  assert.equal(ok.amtToForward, 1000n)
  assert.equal(ok.outgoingCltvValue, 40)
  assert.equal(ok.shortChannelId, 0xabcn)
  assert.equal(toHex(ok.paymentMetadata!), 'cafe')
  assert.equal(ok.totalAmountMsat, 2000n)
  assert.deepEqual(ok.records.map((r) => r.type), [2n, 4n, 6n, 16n, 18n, 1001n])
})

test('peel: a forwarding hop without short_channel_id is an invalid payload', () => {
  const a = randomBytes(32)
  const b = randomBytes(32)
  const final = encodeHopPayload({ amtToForward: 1n, outgoingCltvValue: 1 })
  const { packet, sharedSecrets } = buildOnion(
    [
      { pubkey: secp256k1.publicKey(a), payload: final },
      { pubkey: secp256k1.publicKey(b), payload: final }
    ],
    randomBytes(32),
    associatedData
  )
  assertOnionError(() => peelOnion(packet, a, associatedData), 'invalid_payload', 6n)
  // invalid_onion_payload is returned encrypted, so the error carries the shared secret.
  assert.throws(() => peelOnion(packet, a, associatedData), (err: unknown) => err instanceof OnionError && toHex(err.sharedSecret!) === toHex(sharedSecrets[0]!))
})

test('build: bad routes are refused with typed errors', () => {
  const pubkey = secp256k1.publicKey(randomBytes(32))
  const payload = encodeHopPayload({ amtToForward: 1n, outgoingCltvValue: 1 })
  assertOnionError(() => buildOnion([], sessionKey, associatedData), 'invalid_route')
  assertOnionError(() => buildOnion([{ pubkey, payload: new Uint8Array(0) }], sessionKey, associatedData), 'invalid_route')
  assertOnionError(() => buildOnion([{ pubkey, payload: new Uint8Array(1266) }], sessionKey, associatedData), 'invalid_route')
  assertOnionError(() => buildOnion([{ pubkey: pubkey.subarray(1), payload }], sessionKey, associatedData), 'invalid_key')
  assertOnionError(() => buildOnion([{ pubkey, payload }], new Uint8Array(32), associatedData), 'invalid_key')
  // exactly full: 3-byte length prefix + 1265 + 32 = 1300
  assert.equal(buildOnion([{ pubkey, payload: new Uint8Array(1265) }], sessionKey, associatedData).packet.length, ONION_PACKET_LENGTH)
  assert.deepEqual(routeSecrets([pubkey], sessionKey).ephemeralKey, secp256k1.publicKey(sessionKey))
})

/** A random, valid hop payload whose TLV stream is at most `budget` bytes (budget >= 30). */
function randomPayload(budget: number, final: boolean): { fields: Omit<HopPayload, 'records'>; extra: TlvRecord[] } {
  const fields: Omit<HopPayload, 'records'> = {
    amtToForward: BigInt(randomInt(0, 2 ** 47)),
    outgoingCltvValue: randomInt(0, 2 ** 32 - 1)
  }
  let used = 2 + 8 + 2 + 4
  if (final) {
    fields.paymentData = { paymentSecret: randomBytes(32), totalMsat: BigInt(randomInt(1, 2 ** 47)) }
    used += 2 + 40
  } else {
    fields.shortChannelId = BigInt('0x' + randomBytes(8).toString('hex'))
    used += 10
  }
  const extra: TlvRecord[] = []
  if (budget - used > 8 && randomInt(0, 2) === 1) {
    extra.push({ type: 65537n + 2n * BigInt(randomInt(0, 1000)), value: randomBytes(randomInt(0, budget - used - 8)) })
  }
  return { fields, extra }
}

test('random routes of 1..20 hops round-trip through build and peel at every hop', () => {
  for (let round = 0; round < 40; round++) {
    const n = round < 20 ? round + 1 : randomInt(1, 21)
    const keys = Array.from({ length: n }, () => randomBytes(32))
    // Share the 1300 bytes out: 32 for each HMAC, 3 for the longest length prefix.
    const budget = Math.floor(1300 / n) - 35
    const payloads = keys.map((_, i) => randomPayload(budget, i === n - 1))
    const hops = keys.map((key, i) => ({
      pubkey: secp256k1.publicKey(key),
      payload: encodeHopPayload({ ...payloads[i]!.fields, extraRecords: payloads[i]!.extra })
    }))
    const ad = randomBytes(32)
    const { packet, sharedSecrets } = buildOnion(hops, randomBytes(32), ad)
    let current = packet
    keys.forEach((key, i) => {
      const peeled = peelOnion(current, key, ad)
      assert.deepEqual(peeled.sharedSecret, sharedSecrets[i])
      assert.equal(toHex(peeled.rawPayload), toHex(hops[i]!.payload))
      const got = peeled.payload
      const want = payloads[i]!.fields
      assert.equal(got.amtToForward, want.amtToForward)
      assert.equal(got.outgoingCltvValue, want.outgoingCltvValue)
      assert.equal(got.shortChannelId, want.shortChannelId)
      assert.equal(got.paymentData?.totalMsat, want.paymentData?.totalMsat)
      assert.equal(got.paymentData && toHex(got.paymentData.paymentSecret), want.paymentData && toHex(want.paymentData.paymentSecret))
      // amount, cltv, and short_channel_id or payment_data, then the extra odd records
      assert.equal(got.records.length, 3 + payloads[i]!.extra.length)
      assert.equal(peeled.isFinal, i === n - 1)
      if (peeled.nextPacket) current = peeled.nextPacket
    })
  }
})

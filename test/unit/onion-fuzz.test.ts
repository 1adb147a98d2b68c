// Mutation and random-input fuzzing of every BOLT 1/4 decoder: each input must give the decoder's
// typed error or a result that re-encodes to the same bytes; any other exception fails the test.
// Seeded: FUZZ_SEED=<n> replays a run (the seed is printed as a test diagnostic).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { randomInt } from 'node:crypto'
import { secp256k1 } from '../../src/ln/secp256k1.ts'
import { chacha20, generateKey, hmacSha256 } from '../../src/ln/sphinx.ts'
import { TlvError, encodeBigSize, decodeBigSize } from '../../src/ln/bigsize.ts'
import { decodeTlvStream, encodeTlvStream, type TlvRecord } from '../../src/ln/tlv.ts'
import { OnionError, ONION_PACKET_LENGTH, buildOnion, decodeHopPayload, encodeHopPayload, peelOnion, type HopPayload } from '../../src/ln/onion.ts'
import {
  FailureCode,
  FailureError,
  createFailurePacket,
  decodeFailureMessage,
  decodeFailurePacket,
  encodeFailureMessage,
  wrapFailurePacket
} from '../../src/ln/failure.ts'

const seed = Number(process.env['FUZZ_SEED'] ?? randomInt(2 ** 31))

/** mulberry32: small, fast, good enough to drive a fuzzer reproducibly. */
function prng(s: number): () => number {
  return () => {
    s = (s + 0x6d2b79f5) | 0
    let t = Math.imul(s ^ (s >>> 15), 1 | s)
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32
  }
}
const random = prng(seed)
const int = (lo: number, hi: number): number => lo + Math.floor(random() * (hi - lo)) // [lo, hi)
const bytes = (n: number): Uint8Array => Uint8Array.from({ length: n }, () => int(0, 256))
const pick = <T>(items: readonly T[]): T => items[int(0, items.length)]!
const toHex = (b: Uint8Array): string => Buffer.from(b).toString('hex')

/** One random mutation: bit flips, byte overwrite, truncation, extension, deletion or insertion. */
function mutate(input: Uint8Array): Uint8Array {
  const out = Uint8Array.from(input)
  const at = (): number => int(0, Math.max(out.length, 1))
  switch (int(0, 6)) {
    case 0:
      for (let n = int(1, 4); n > 0 && out.length > 0; n--) out[at()]! ^= 1 << int(0, 8)
      return out
    case 1:
      if (out.length > 0) out[at()] = int(0, 256)
      return out
    case 2:
      return out.subarray(0, int(0, out.length + 1))
    case 3:
      return Uint8Array.from([...out, ...bytes(int(1, 20))])
    case 4: {
      const start = at()
      return Uint8Array.from([...out.subarray(0, start), ...out.subarray(start + int(1, 10))])
    }
    default: {
      const start = at()
      return Uint8Array.from([...out.subarray(0, start), ...bytes(int(1, 4)), ...out.subarray(start)])
    }
  }
}

/** Runs `fn`; a thrown error must be an instance of `type` (checked by `checkError`). */
function expectTyped<T>(fn: () => T, type: new (...args: never[]) => Error, input: Uint8Array, checkResult: (r: T) => void, checkError?: (e: Error) => void): boolean {
  let result: T
  try {
    result = fn()
  } catch (err) {
    if (!(err instanceof type)) {
      assert.fail(`seed ${seed}: input ${toHex(input)} threw ${String(err)} instead of ${type.name}`)
    }
    checkError?.(err)
    return false
  }
  checkResult(result)
  return true
}

function randomRecords(): TlvRecord[] {
  const records: TlvRecord[] = []
  let type = BigInt(int(0, 4))
  for (let n = int(0, 6); n > 0; n--) {
    records.push({ type, value: bytes(pick([0, 1, 2, 8, 33, 260])) })
    type += BigInt(int(1, 300)) << BigInt(pick([0, 0, 8, 16, 33]))
  }
  return records
}

const KNOWN_PAYLOAD_TYPES = new Set([2n, 4n, 6n, 8n, 16n, 18n])

function randomHopPayload(): Uint8Array {
  const p: Omit<HopPayload, 'records'> & { extraRecords: TlvRecord[] } = {
    amtToForward: BigInt(int(0, 2 ** 31)) << BigInt(int(0, 30)),
    outgoingCltvValue: int(0, 2 ** 31),
    extraRecords: random() < 0.5 ? [{ type: BigInt(2 * int(10, 400) + 1), value: bytes(int(0, 40)) }] : []
  }
  if (random() < 0.5) p.shortChannelId = BigInt(int(0, 2 ** 31)) << 20n
  if (random() < 0.5) p.paymentData = { paymentSecret: bytes(32), totalMsat: BigInt(int(0, 2 ** 31)) }
  if (random() < 0.3) p.paymentMetadata = bytes(int(0, 30))
  if (random() < 0.3) p.totalAmountMsat = BigInt(int(0, 2 ** 31))
  return encodeHopPayload(p)
}

test('fuzz: BigSize and TLV streams', (t) => {
  t.diagnostic(`FUZZ_SEED=${seed}`)
  let accepted = 0
  for (let i = 0; i < 4000; i++) {
    const input = i % 4 === 0 ? bytes(int(0, 12)) : mutate(encodeTlvStream(randomRecords()))
    const ok = expectTyped(() => decodeTlvStream(input), TlvError, input, (records) => {
      // TLV encodings are canonical: whatever decodes re-encodes to the very same bytes.
      assert.equal(toHex(encodeTlvStream(records)), toHex(input), `seed ${seed}`)
    }, (e) => assert.ok((e as TlvError).offset >= 0 && (e as TlvError).offset <= input.length))
    if (ok) accepted++
    expectTyped(() => decodeBigSize(input), TlvError, input, ({ value, size }) => {
      assert.equal(toHex(encodeBigSize(value)), toHex(input.subarray(0, size)), `seed ${seed}`)
    })
  }
  assert.ok(accepted > 100 && accepted < 3900, `accepted ${accepted}: the corpus should exercise both outcomes`)
})

test('fuzz: hop payloads', (t) => {
  t.diagnostic(`FUZZ_SEED=${seed}`)
  let accepted = 0
  for (let i = 0; i < 4000; i++) {
    const input = i % 5 === 0 ? bytes(int(0, 60)) : mutate(randomHopPayload())
    const ok = expectTyped(() => decodeHopPayload(input), OnionError, input, (p) => {
      const extraRecords = p.records.filter((r) => !KNOWN_PAYLOAD_TYPES.has(r.type))
      assert.equal(toHex(encodeHopPayload({ ...p, extraRecords })), toHex(input), `seed ${seed}`)
    }, (e) => {
      const err = e as OnionError
      assert.equal(err.code, 'invalid_payload')
      assert.equal(typeof err.tlvType, 'bigint')
      assert.ok(err.offset !== undefined && err.offset >= 0 && err.offset <= input.length)
    })
    if (ok) accepted++
  }
  assert.ok(accepted > 100 && accepted < 3900, `accepted ${accepted}`)
})

test('fuzz: onion packets, mutated and with valid HMACs over random hop_payloads', (t) => {
  t.diagnostic(`FUZZ_SEED=${seed}`)
  const nodeKey = bytes(32)
  const nodePub = secp256k1.publicKey(nodeKey)
  const ad = bytes(32)
  const { packet } = buildOnion(
    [
      { pubkey: nodePub, payload: randomHopPayload() },
      { pubkey: secp256k1.publicKey(bytes(32)), payload: randomHopPayload() }
    ],
    bytes(32),
    ad
  )
  const codes = new Map<string, number>()
  const count = (code: string): void => void codes.set(code, (codes.get(code) ?? 0) + 1)
  for (let i = 0; i < 800; i++) {
    const input = i % 2 === 0 ? mutate(packet) : Uint8Array.from([0, ...nodePub, ...bytes(ONION_PACKET_LENGTH - 34)])
    expectTyped(() => peelOnion(input, nodeKey, ad), OnionError, input, () => count('ok'), (e) => count((e as OnionError).code))
  }
  // Seal chosen plaintexts so the HMAC passes and the payload parser sees hostile framing.
  for (let i = 0; i < 800; i++) {
    const ephemeralSecret = bytes(32)
    const sharedSecret = secp256k1.ecdh(nodePub, ephemeralSecret)
    const plain = new Uint8Array(1300)
    plain.set(bytes(1300))
    const payload = randomHopPayload()
    const framed = mutate(Uint8Array.from([...encodeBigSize(BigInt(payload.length)), ...payload]))
    plain.set(framed.subarray(0, 1300))
    if (random() < 0.5) plain.fill(0, Math.min(framed.length, 1300), Math.min(framed.length + 32, 1300))
    const routingInfo = chacha20(generateKey('rho', sharedSecret)).update(plain)
    const input = Uint8Array.from([0, ...secp256k1.publicKey(ephemeralSecret), ...routingInfo, ...hmacSha256(generateKey('mu', sharedSecret), routingInfo, ad)])
    expectTyped(() => peelOnion(input, nodeKey, ad), OnionError, input, (peeled) => {
      count('ok')
      assert.deepEqual(peeled.sharedSecret, sharedSecret)
      const { size } = decodeBigSize(plain)
      assert.equal(toHex(peeled.rawPayload), toHex(plain.subarray(size, size + peeled.rawPayload.length)))
      assert.equal(peeled.nextPacket?.length ?? ONION_PACKET_LENGTH, ONION_PACKET_LENGTH)
    }, (e) => {
      assert.equal((e as OnionError).code, 'invalid_payload')
      assert.deepEqual((e as OnionError).sharedSecret, sharedSecret)
      count('sealed_invalid_payload')
    })
  }
  t.diagnostic(JSON.stringify(Object.fromEntries(codes)))
  assert.ok((codes.get('invalid_hmac') ?? 0) > 0 && (codes.get('sealed_invalid_payload') ?? 0) > 0 && (codes.get('ok') ?? 0) > 0)
})

test('fuzz: failure packets and failure messages', (t) => {
  t.diagnostic(`FUZZ_SEED=${seed}`)
  const secrets = [bytes(32), bytes(32), bytes(32)]
  const codes = Object.values(FailureCode)
  let accepted = 0
  for (let i = 0; i < 3000; i++) {
    const erring = int(0, 3)
    let packet: Uint8Array
    if (i % 3 === 0) {
      // Valid HMAC over mutated framing: the decoder must catch overflowing lengths.
      const message = bytes(int(0, 60))
      const body = mutate(Uint8Array.from([0, message.length, ...message, 0, 200 - message.length, ...new Uint8Array(200 - message.length)]))
      const plain = Uint8Array.from([...hmacSha256(generateKey('um', secrets[erring]!), body), ...body])
      packet = wrapFailurePacket(secrets[erring]!, plain)
    } else {
      const code = pick(codes)
      packet = mutate(createFailurePacket(secrets[erring]!, Uint8Array.from([code >> 8, code & 0xff, ...bytes(int(0, 40))])))
    }
    for (let h = erring - 1; h >= 0; h--) packet = wrapFailurePacket(secrets[h]!, packet)
    const input = packet
    expectTyped(() => decodeFailurePacket(secrets, input), FailureError, input, (r) => {
      accepted++
      assert.equal(r.hopIndex, erring)
    })
  }
  assert.ok(accepted > 100, `accepted ${accepted}`)

  let messages = 0
  for (let i = 0; i < 5000; i++) {
    const code = i % 7 === 0 ? int(0, 65536) : pick(codes)
    const input = mutate(Uint8Array.from([code >> 8, code & 0xff, ...bytes(pick([0, 2, 4, 8, 12, 34, 60]))]))
    expectTyped(() => decodeFailureMessage(input), FailureError, input, (m) => {
      messages++
      // Known codes ignore trailing bytes, so the re-encoding is a prefix of the input.
      const encoded = encodeFailureMessage(m)
      assert.equal(toHex(input.subarray(0, encoded.length)), toHex(encoded), `seed ${seed}`)
    })
  }
  assert.ok(messages > 100, `decoded ${messages}`)
})

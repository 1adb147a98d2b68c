// Fuzzing the Lightning decoders with mutated official vectors (/work/shared/vectors: BOLT 4 onion
// and error packets, BOLT 11 invoices) and the virtual node's whole per-HTLC check on mutated
// recorded htlc-offers. Each input must give the decoder's typed error or a valid result; checkHtlc
// must always answer with a decision (it never throws: its failures are BOLT 4 answers).
// onion-fuzz.test.ts and bolt11-fuzz.test.ts cover random and round-trip inputs; this file starts
// from real messages. Seeded: HIGHWIRE_FUZZ_SEED=<n> replays a run.
import { muxHtlcOf } from '../../src/cluster/member.ts'
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { loadVector } from '../vectors.ts'
import { OnionError, ONION_PACKET_LENGTH, decodeHopPayload, peelOnion } from '../../src/ln/onion.ts'
import { TlvError, decodeTlvStream, encodeTlvStream } from '../../src/ln/tlv.ts'
import { decodeBigSize } from '../../src/ln/bigsize.ts'
import { FailureError, decodeFailureMessage, decodeFailurePacket, encodeFailureMessage } from '../../src/ln/failure.ts'
import { InvoiceError, decodeInvoice } from '../../src/ln/bolt11.ts'
import { bech32Decode, bech32Encode } from '../../src/ln/bech32.ts'
import { DEFAULT_VIRTUAL_CHANNEL_POLICY } from '../../src/ln/stateless.ts'
import { checkHtlc, type CheckContext } from '../../src/mux/checks.ts'
import type { InterceptedHtlc } from '../../src/mux/types.ts'
import { decodeEnvelope } from '../../src/cluster/envelope.ts'
import type { HtlcOffer } from '../../src/cluster/messages.ts'
import { FIXTURE, RECORDED_PATH, type Recorded } from '../fixtures/record.ts'
import { Outcomes, expectTyped, fuzzSeed, mutateMany, rng, toHex } from './fuzz-kit.ts'

const seed = fuzzSeed()
const ctx = { seed, file: 'test/unit/fuzz-ln.test.ts' }
const fromHex = (h: string): Uint8Array => new Uint8Array(Buffer.from(h, 'hex'))

interface OnionVector {
  generate: { associated_data: string; hops: Array<{ payload: string }> }
  onion: string
  decode: string[]
}
interface ErrorVector {
  generate: { failure_message: string; hops: Array<{ hop_shared_secret: string }> }
  errorpacket: string
}
const onionVector = loadVector<OnionVector>('onion-test.json')
const errorVector = loadVector<ErrorVector>('onion-error-test.json')
const invoices = loadVector<Array<{ invoice: string; valid?: boolean }>>('bolt11-vectors.json').map((v) => v.invoice)

/** The vector's onion as each hop receives it (peeled hop by hop with the vector's keys). */
function onionPerHop(): Array<{ packet: Uint8Array; key: Uint8Array }> {
  const ad = fromHex(onionVector.generate.associated_data)
  const out: Array<{ packet: Uint8Array; key: Uint8Array }> = []
  let packet = fromHex(onionVector.onion)
  for (const keyHex of onionVector.decode) {
    const key = fromHex(keyHex)
    out.push({ packet, key })
    const peeled = peelOnion(packet, key, ad)
    if (peeled.nextPacket === undefined) break
    packet = peeled.nextPacket
  }
  return out
}

test('fuzz: peelOnion on the mutated BOLT 4 vector onion, at every hop', (t) => {
  t.diagnostic(`HIGHWIRE_FUZZ_SEED=${seed}`)
  const r = rng(seed)
  const ad = fromHex(onionVector.generate.associated_data)
  const hops = onionPerHop()
  assert.equal(hops.length, onionVector.decode.length)
  const outcomes = new Outcomes()
  for (let i = 0; i < 1500; i++) {
    const { packet, key } = r.pick(hops)
    // Mostly single-byte damage, which keeps the length: that is what reaches the HMAC check.
    const input = r.chance(0.7) ? flipOne(r, packet) : mutateMany(r, packet, r.pick(hops).packet)
    outcomes.add(expectTyped(ctx, input, () => peelOnion(input, key, r.chance(0.9) ? ad : mutateMany(r, ad)), [OnionError], (peeled) => {
      assert.equal(toHex(input), toHex(packet), `seed ${seed}: a damaged onion peeled`)
      assert.equal(peeled.nextPacket?.length ?? ONION_PACKET_LENGTH, ONION_PACKET_LENGTH)
    }))
  }
  t.diagnostic(outcomes.toString())
  for (const code of ['invalid_hmac', 'invalid_length']) assert.ok(outcomes.get(code) > 0, outcomes.toString())
})

test('fuzz: hop payloads and TLV streams from the BOLT 4 vector', (t) => {
  t.diagnostic(`HIGHWIRE_FUZZ_SEED=${seed}`)
  const r = rng(seed ^ 0x7f)
  // The vector's payloads carry their BigSize length prefix (the onion's framing): strip it.
  const payloads = onionVector.generate.hops.map((h) => {
    const framed = fromHex(h.payload)
    return framed.subarray(decodeBigSize(framed).size)
  })
  for (const p of payloads) decodeHopPayload(p)
  const outcomes = new Outcomes()
  for (let i = 0; i < 5000; i++) {
    const input = mutateMany(r, r.pick(payloads), r.pick(payloads))
    outcomes.add(expectTyped(ctx, input, () => decodeTlvStream(input), [TlvError], (records) => {
      assert.equal(toHex(encodeTlvStream(records)), toHex(input), `seed ${seed}: TLV encodings are canonical`)
    }))
    expectTyped(ctx, input, () => decodeHopPayload(input), [OnionError], undefined, (e) => assert.equal((e as OnionError).code, 'invalid_payload'))
  }
  t.diagnostic(outcomes.toString())
  assert.ok(outcomes.get('ok') > 0 && outcomes.get('ok') < 5000, outcomes.toString())
})

test('fuzz: decodeFailurePacket and decodeFailureMessage on the mutated BOLT 4 error vector', (t) => {
  t.diagnostic(`HIGHWIRE_FUZZ_SEED=${seed}`)
  const r = rng(seed ^ 0xe7707)
  const secrets = errorVector.generate.hops.map((h) => fromHex(h.hop_shared_secret))
  const packet = fromHex(errorVector.errorpacket)
  assert.equal(decodeFailurePacket(secrets, packet).hopIndex, secrets.length - 1)
  const outcomes = new Outcomes()
  for (let i = 0; i < 1500; i++) {
    const input = r.chance(0.6) ? flipOne(r, packet) : mutateMany(r, packet)
    outcomes.add(expectTyped(ctx, input, () => decodeFailurePacket(secrets, input), [FailureError], () => {
      assert.equal(toHex(input), toHex(packet), `seed ${seed}: a damaged error packet authenticated`)
    }))
  }
  const message = fromHex(errorVector.generate.failure_message)
  for (let i = 0; i < 4000; i++) {
    const input = mutateMany(r, message, r.bytes(r.int(0, 40)))
    outcomes.add(expectTyped(ctx, input, () => decodeFailureMessage(input), [FailureError], (m) => {
      const encoded = encodeFailureMessage(m)
      assert.equal(toHex(input.subarray(0, encoded.length)), toHex(encoded), `seed ${seed}`)
    }))
  }
  t.diagnostic(outcomes.toString())
  assert.ok(outcomes.get('ok') > 0 && outcomes.get('unknown_origin') > 0, outcomes.toString())
})

test('fuzz: decodeInvoice on mutated BOLT 11 vectors', (t) => {
  t.diagnostic(`HIGHWIRE_FUZZ_SEED=${seed}`)
  const r = rng(seed ^ 0xb011)
  const outcomes = new Outcomes()
  const charset = 'qpzry9x8gf2tvdw0s3jn54khce6mua7l1'
  // The vectors include invalid examples; the checksum-preserving mutation starts from valid bech32.
  const words = invoices.flatMap((inv) => {
    try {
      return [bech32Decode(inv)]
    } catch {
      return []
    }
  })
  const start = process.cpuUsage()
  for (let i = 0; i < 3000; i++) {
    const base = r.pick(invoices)
    let input: string
    if (r.chance(0.5)) {
      // Damage under a valid checksum, so that the tagged-field and signature checks see it.
      const { hrp, words: original } = r.pick(words)
      const damaged = mutateMany(r, original, r.pick(words).words).map((w) => w & 31)
      input = bech32Encode(r.chance(0.9) ? hrp : hrp.slice(0, r.int(0, hrp.length + 1)), damaged)
    } else if (r.chance(0.6)) {
      // Damage inside the bech32 alphabet: the checksum (or a field check) must catch it.
      const chars = [...base]
      for (let n = r.int(1, 3); n > 0; n--) chars[r.int(0, chars.length)] = r.pick([...charset])
      input = chars.join('')
    } else {
      input = Buffer.from(mutateMany(r, new TextEncoder().encode(base), new TextEncoder().encode(r.pick(invoices)))).toString('latin1')
    }
    outcomes.add(expectTyped(ctx, input, () => decodeInvoice(input), [InvoiceError]))
  }
  const used = process.cpuUsage(start)
  t.diagnostic(`${outcomes} in ${((used.user + used.system) / 1e3).toFixed(0)} ms CPU`)
  assert.ok(outcomes.get('ok') > 0, outcomes.toString())
})

/** The recorded htlc-offer as the virtual node sees it. */
function recordedOffer(): InterceptedHtlc {
  const recorded = JSON.parse(readFileSync(RECORDED_PATH, 'utf8')) as Recorded
  const offer = decodeEnvelope(fromHex(recorded.envelopes.find((e) => e.type === 'htlc-offer')!.hex)).message as HtlcOffer
  return muxHtlcOf(offer)
}

test('fuzz: the virtual node checks (checkHtlc) on mutated recorded htlc-offers', (t) => {
  t.diagnostic(`HIGHWIRE_FUZZ_SEED=${seed}`)
  const r = rng(seed ^ 0xc4ec)
  const base = recordedOffer()
  const check: CheckContext = {
    identityKey: FIXTURE.identityKey,
    policy: DEFAULT_VIRTUAL_CHANNEL_POLICY,
    finalCltvRejectDelta: 19,
    holdMarginBlocks: 2,
    nowMs: FIXTURE.time,
    height: FIXTURE.height
  }
  const first = checkHtlc(base, check)
  assert.ok(first.ok, `the recorded offer is a valid part: ${JSON.stringify(first.ok ? '' : first.reason)}`)
  const outcomes = new Outcomes()
  const numbers = [0, 1, FIXTURE.height, FIXTURE.height + 80, 2 ** 31, 2 ** 32 - 1]
  const amounts = [0n, 1n, base.outgoingAmountMsat, base.outgoingAmountMsat - 1n, (1n << 64n) - 1n]
  for (let i = 0; i < 2500; i++) {
    const htlc: InterceptedHtlc = { ...base, circuit: { ...base.circuit } }
    for (let n = r.int(1, 3); n > 0; n--) {
      switch (r.int(0, 6)) {
        case 0: htlc.onionBlob = r.chance(0.5) ? flipOne(r, htlc.onionBlob) : mutateMany(r, htlc.onionBlob); break
        case 1: htlc.paymentHash = flipOne(r, htlc.paymentHash); break
        case 2: htlc.outgoingAmountMsat = r.pick(amounts); break
        case 3: htlc.incomingAmountMsat = r.pick(amounts); break
        case 4: htlc[r.pick(['incomingExpiry', 'outgoingExpiry', 'autoFailHeight', 'currentHeight'] as const)] = r.pick(numbers); break
        default: htlc.outgoingRequestedChanId = r.chance(0.5) ? 0n : htlc.outgoingRequestedChanId ^ 1n
      }
    }
    expectTyped(ctx, htlc, () => checkHtlc(htlc, check), [], (result) => {
      if (result.ok) return outcomes.add('valid_part')
      const { decision } = result
      // Every refusal is something lnd's interceptor accepts: a 292-byte failure or a failure code.
      if ('failureMessage' in decision) assert.equal(decision.failureMessage.length, 292)
      else assert.equal(decision.action, 'fail')
      outcomes.add(result.reason)
    })
  }
  t.diagnostic(outcomes.toString())
  assert.ok(outcomes.get('invalid_onion_hmac') + outcomes.get('hash_mismatch') > 0, outcomes.toString())
})

/** One bit flipped somewhere, length kept. */
function flipOne(r: ReturnType<typeof rng>, input: Uint8Array): Uint8Array {
  const out = Uint8Array.from(input)
  out[r.int(0, out.length)]! ^= 1 << r.int(0, 8)
  return out
}

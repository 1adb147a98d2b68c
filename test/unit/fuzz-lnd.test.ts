// Fuzzing the LND-facing parsers the way lnd's bytes reach them: recorded protobuf messages
// (test/fixtures/recorded.json, serialized with the vendored lnd protos) are mutated, decoded by
// proto-loader exactly as grpc-js would (a message it cannot decode never reaches us), and handed
// to parseInterceptRequest, toNodeInfo, toPayment and toFinalHtlcEvent. Each must return a valid
// value or throw LndError; any other exception fails with the seed.
// Seeded: HIGHWIRE_FUZZ_SEED=<n> replays a run.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { Lightning, Router } from '../../src/lnd/proto.ts'
import { toFinalHtlcEvent, toNodeInfo, toPayment } from '../../src/lnd/client.ts'
import { parseInterceptRequest } from '../../src/lnd/interceptor.ts'
import { LndError } from '../../src/lnd/errors.ts'
import { RECORDED_PATH, type Recorded } from '../fixtures/record.ts'
import { Outcomes, expectTyped, fuzzSeed, mutateMany, rng } from './fuzz-kit.ts'

const seed = fuzzSeed()
const ctx = { seed, file: 'test/unit/fuzz-lnd.test.ts' }
const recorded = JSON.parse(readFileSync(RECORDED_PATH, 'utf8')) as Recorded
const fixture = (name: string): Uint8Array => new Uint8Array(Buffer.from(recorded.lnd[name]!, 'hex'))
const U64_MAX = (1n << 64n) - 1n

type Deserialize = (bytes: Buffer) => any
const decoderOf = (service: { service: unknown }, name: string): Deserialize =>
  (service.service as Record<string, { responseDeserialize: Deserialize }>)[name]!.responseDeserialize
const decodeIntercept = decoderOf(Router, 'HtlcInterceptor')
const decodeGetInfo = decoderOf(Lightning, 'GetInfo')
const decodePayment = decoderOf(Router, 'TrackPaymentV2')
const decodeHtlcEvent = decoderOf(Router, 'SubscribeHtlcEvents')

/** What grpc-js would hand over for these bytes, or null when it would fail the call itself. */
function asGrpcWould(decode: Deserialize, bytes: Uint8Array): unknown {
  try {
    return decode(Buffer.from(bytes))
  } catch {
    return null
  }
}

interface Target {
  name: string
  fixtures: string[]
  decode: Deserialize
  parse: (raw: any) => unknown
  check?: (result: any) => void
}

const isU64 = (v: unknown): boolean => typeof v === 'bigint' && v >= 0n && v <= U64_MAX

const TARGETS: Target[] = [
  {
    name: 'parseInterceptRequest',
    fixtures: ['intercept', 'interceptWithRecords'],
    decode: decodeIntercept,
    parse: (raw) => parseInterceptRequest(raw, 'alice'),
    check: (htlc) => {
      for (const v of [htlc.circuit.chanId, htlc.circuit.htlcId, htlc.incomingAmountMsat, htlc.outgoingAmountMsat, htlc.outgoingRequestedChanId]) assert.ok(isU64(v))
      assert.equal(htlc.paymentHash.length, 32)
      for (const key of [...htlc.customRecords.keys(), ...htlc.inWireCustomRecords.keys()]) assert.ok(isU64(key))
    }
  },
  { name: 'toNodeInfo', fixtures: ['getInfo'], decode: decodeGetInfo, parse: (raw) => toNodeInfo(raw) },
  {
    name: 'toPayment',
    fixtures: ['payment'],
    decode: decodePayment,
    parse: (raw) => toPayment(raw, 'alice'),
    check: (p) => {
      assert.ok(isU64(p.valueMsat) && isU64(p.feeMsat))
      for (const a of p.attempts) assert.ok(isU64(a.attemptId) && isU64(a.totalAmountMsat))
    }
  },
  {
    name: 'toFinalHtlcEvent',
    fixtures: ['finalHtlcEvent'],
    decode: decodeHtlcEvent,
    parse: (raw) => toFinalHtlcEvent(raw, 'alice'),
    check: (e) => {
      if (e !== null) assert.ok(isU64(e.incomingChanId) && isU64(e.incomingHtlcId) && isU64(e.timestampNs))
    }
  }
]

test('the recorded lnd messages parse', () => {
  const htlc = parseInterceptRequest(decodeIntercept(Buffer.from(fixture('intercept'))), 'alice')
  assert.equal(htlc.circuit.htlcId, 7n)
  assert.equal(htlc.onionBlob.length, 1366)
  assert.equal(toNodeInfo(decodeGetInfo(Buffer.from(fixture('getInfo')))).requireHtlcInterceptor, true)
  assert.equal(toPayment(decodePayment(Buffer.from(fixture('payment'))), 'alice').status, 'SUCCEEDED')
  assert.equal(toFinalHtlcEvent(decodeHtlcEvent(Buffer.from(fixture('finalHtlcEvent'))), 'alice')?.settled, true)
})

// proto-loader keys a map<uint64, bytes> by protobufjs' 8-character "long hash" (the value's
// little-endian bytes as char codes), not by its decimal text, even with `longs: String`. lnd ≥ 0.19
// forwards update_add_htlc's experimental endorsement TLV (106823) in in_wire_custom_records, so
// real HTLCs carry such keys.
test('an intercepted HTLC with custom records parses, keyed by their TLV types', () => {
  const raw = decodeIntercept(Buffer.from(fixture('interceptWithRecords')))
  const htlc = parseInterceptRequest(raw, 'alice')
  assert.deepEqual([...htlc.inWireCustomRecords.keys()], [106823n])
  assert.deepEqual([...htlc.customRecords.keys()], [65537n])
  assert.deepEqual(htlc.customRecords.get(65537n), Buffer.from('hi'))
})

for (const target of TARGETS) {
  test(`fuzz: ${target.name} on mutated recorded protobuf messages`, (t) => {
    t.diagnostic(`HIGHWIRE_FUZZ_SEED=${seed}`)
    const r = rng(seed ^ target.name.length * 0x9e3779b1)
    const outcomes = new Outcomes()
    for (let i = 0; i < 3000; i++) {
      const base = fixture(r.pick(target.fixtures))
      const raw = asGrpcWould(target.decode, mutateMany(r, base))
      if (raw === null) {
        outcomes.add('grpc_refused')
        continue
      }
      outcomes.add(expectTyped(ctx, raw, () => target.parse(raw), [LndError], target.check))
    }
    t.diagnostic(outcomes.toString())
    assert.ok(outcomes.get('ok') > 0, outcomes.toString())
  })
}

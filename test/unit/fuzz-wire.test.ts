// Fuzzing the cluster's wire decoders with mutated real messages (test/fixtures/recorded.json: one
// signed envelope per message type, an audit block with one record of every type). Every input
// must give the module's typed error or a valid result; nothing else may escape, since the swarm
// rethrows anything that is not a PeerError out of its frame handler.
// Seeded: HIGHWIRE_FUZZ_SEED=<n> replays a run (the seed is printed as a test diagnostic).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { decodeEnvelope, sealEnvelope, verifyEnvelope, encodeEnvelope, type AgentKeyPair } from '../../src/cluster/envelope.ts'
import { EnvelopeError, PeerError } from '../../src/cluster/errors.ts'
import { InboundGate } from '../../src/cluster/guard.ts'
import { messageTypeId, messageTypeOf } from '../../src/cluster/messages.ts'
import { AuditRecordError, SCHEMA, decodeBlock, encodeRecord, recordToJSON } from '../../src/audit/records.ts'
import { decodeRecord as decodeMuxRecord, encodeRecord as encodeMuxRecord } from '../../src/mux/records.ts'
import { MuxError } from '../../src/mux/types.ts'
import { FIXTURE, RECORDED_PATH, record, type Recorded } from '../fixtures/record.ts'
import { Outcomes, expectTyped, fuzzSeed, mutateMany, rng } from './fuzz-kit.ts'

const seed = fuzzSeed()
const ctx = { seed, file: 'test/unit/fuzz-wire.test.ts' }
const recorded = JSON.parse(readFileSync(RECORDED_PATH, 'utf8')) as Recorded
const envelopes = recorded.envelopes.map((e) => ({ type: e.type, bytes: new Uint8Array(Buffer.from(e.hex, 'hex')) }))
const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex')
const senders = new Map([FIXTURE.edge, FIXTURE.leader].map((kp) => [hex(kp.publicKey), kp]))
/** Generous limits: the fuzzer tests shapes, the rate limit has its own tests. */
const GATE_OPTIONS = {
  limits: { messagesPerSecond: 1e9, messageBurst: 1e9, bytesPerSecond: 1e12, byteBurst: 1e12 },
  maxClockSkewMs: 60_000
}

test('the recorded fixtures are what the encoders produce today (regenerate: node --import tsx test/fixtures/record.ts)', () => {
  assert.deepEqual(record(), recorded)
})

test('every message type has a recorded envelope that decodes, verifies and re-encodes to its bytes', () => {
  const types = new Set(envelopes.map((e) => e.type))
  for (let id = 1; messageTypeOf(id) !== undefined; id++) assert.ok(types.has(messageTypeOf(id)!), `no fixture for ${messageTypeOf(id)}`)
  for (const { type, bytes } of envelopes) {
    const envelope = decodeEnvelope(bytes)
    assert.equal(envelope.message.type, type)
    assert.ok(verifyEnvelope(envelope), `${type} verifies`)
    const kp = senders.get(hex(envelope.from))!
    assert.equal(hex(encodeEnvelope(kp, envelope.seq, envelope.time, envelope.message)), hex(bytes))
  }
})

test('fuzz: decodeEnvelope and verifyEnvelope on mutated recorded envelopes', (t) => {
  t.diagnostic(`HIGHWIRE_FUZZ_SEED=${seed}`)
  const r = rng(seed)
  const originals = new Set(envelopes.map((e) => hex(e.bytes)))
  const outcomes = new Outcomes()
  for (let i = 0; i < 6000; i++) {
    const base = r.pick(envelopes).bytes
    const input = mutateMany(r, base, r.pick(envelopes).bytes)
    const outcome = expectTyped(ctx, input, () => decodeEnvelope(input), [EnvelopeError], (envelope) => {
      // Strict decoding makes envelopes non-malleable: whatever still verifies is a recorded one.
      if (verifyEnvelope(envelope)) {
        assert.ok(originals.has(hex(envelope.bytes)), `seed ${seed}: forged envelope ${hex(input)} verifies`)
        outcomes.add('verified')
      } else outcomes.add('bad_signature')
    })
    outcomes.add(outcome)
  }
  t.diagnostic(outcomes.toString())
  for (const code of ['malformed_body', 'bad_signature', 'unknown_type', 'malformed']) assert.ok(outcomes.get(code) > 0, `${code} reached: ${outcomes}`)
})

test('fuzz: the inbound gate on validly signed envelopes with mutated bodies and headers', (t) => {
  t.diagnostic(`HIGHWIRE_FUZZ_SEED=${seed}`)
  const r = rng(seed ^ 0x5a5a)
  const outcomes = new Outcomes()
  for (let i = 0; i < 4000; i++) {
    const { type, bytes } = r.pick(envelopes)
    const original = decodeEnvelope(bytes)
    const kp = senders.get(hex(original.from))!
    const head = bytes.length - 64 - bodyLength(bytes)
    // Re-sign a mutated body under a (possibly different) type id, so that the checks behind the
    // signature are reached with hostile content.
    const body = mutateMany(r, bytes.subarray(head, bytes.length - 64), r.pick(envelopes).bytes.subarray(head))
    const typeId = r.chance(0.8) ? messageTypeId(type) : r.int(0, 40)
    const seq = r.chance(0.9) ? r.int(1, 1000) : r.pick([0, Number.MAX_SAFE_INTEGER])
    const time = FIXTURE.time + r.pick([0, 1, -1, 61_000, -61_000])
    const input = sealEnvelope(kp, seq, time, typeId, body)
    const gate = new InboundGate(r.chance(0.9) ? hex(kp.publicKey) : hex(FIXTURE.edge.publicKey), new Map(), GATE_OPTIONS, FIXTURE.time)
    outcomes.add(expectTyped(ctx, input, () => gate.check(input, FIXTURE.time), [PeerError], (delivered) => {
      for (const envelope of delivered) {
        assert.ok(verifyEnvelope(envelope))
        assert.equal(envelope.seq, seq)
      }
    }))
  }
  t.diagnostic(outcomes.toString())
  for (const code of ['ok', 'malformed_body', 'wrong_sender', 'clock_skew']) assert.ok(outcomes.get(code) > 0, `${code} reached: ${outcomes}`)
})

test('fuzz: the inbound gate keeps per-sender order under mutated, replayed and reordered streams', (t) => {
  t.diagnostic(`HIGHWIRE_FUZZ_SEED=${seed}`)
  const r = rng(seed ^ 0x1234)
  const kp: AgentKeyPair = FIXTURE.leader
  const lastSeq = new Map<string, number>()
  const gate = new InboundGate(hex(kp.publicKey), lastSeq, GATE_OPTIONS, FIXTURE.time)
  const sent: Uint8Array[] = []
  let highest = -1
  for (let i = 0; i < 3000; i++) {
    let input: Uint8Array
    if (sent.length > 0 && r.chance(0.3)) input = r.pick(sent) // replay
    else {
      input = encodeEnvelope(kp, r.int(0, 5000), FIXTURE.time, { type: 'ping', nonce: i })
      if (r.chance(0.2)) input = mutateMany(r, input)
      sent.push(input)
    }
    expectTyped(ctx, input, () => gate.check(input, FIXTURE.time), [PeerError], ([envelope]) => {
      // Only strictly increasing sequence numbers get through, whatever the order they come in.
      assert.ok(envelope!.seq > highest, `seed ${seed}: seq ${envelope!.seq} accepted after ${highest}`)
      highest = envelope!.seq
    })
    assert.equal(lastSeq.get(hex(kp.publicKey)) ?? -1, highest)
  }
  assert.ok(highest > 0)
})

test('fuzz: audit decodeBlock on a mutated block of every record type', (t) => {
  t.diagnostic(`HIGHWIRE_FUZZ_SEED=${seed}`)
  const r = rng(seed ^ 0xa0d17)
  const block = new Uint8Array(Buffer.from(recorded.auditBlock, 'hex'))
  assert.equal(decodeBlock(block).length, Object.keys(SCHEMA).length, 'one record of every type')
  const outcomes = new Outcomes()
  for (let i = 0; i < 6000; i++) {
    const input = mutateMany(r, block)
    outcomes.add(expectTyped(ctx, input, () => decodeBlock(input), [AuditRecordError], (records) => {
      for (const rec of records) {
        // The replay tool prints what it decodes; re-encoding may refuse (typed) what it cannot write.
        recordToJSON(rec)
        expectTyped(ctx, rec, () => encodeRecord(rec), [AuditRecordError])
      }
    }))
  }
  t.diagnostic(outcomes.toString())
  assert.ok(outcomes.get('ok') > 0 && outcomes.get('malformed_record') > 0, outcomes.toString())
})

test('fuzz: the mux record a record-notice carries (decodeRecord)', (t) => {
  t.diagnostic(`HIGHWIRE_FUZZ_SEED=${seed}`)
  const r = rng(seed ^ 0x6d7578)
  const notice = decodeEnvelope(envelopes.find((e) => e.type === 'record-notice')!.bytes).message
  assert.equal(notice.type, 'record-notice')
  const line = (notice as { record: Uint8Array }).record
  const outcomes = new Outcomes()
  const utf8 = new TextDecoder()
  for (let i = 0; i < 4000; i++) {
    const input = mutateMany(r, line)
    outcomes.add(expectTyped(ctx, input, () => decodeMuxRecord(utf8.decode(input)), [MuxError], (rec) => {
      // A record that decodes is exactly what its encoding says.
      assert.deepEqual(decodeMuxRecord(encodeMuxRecord(rec)), rec)
    }))
  }
  t.diagnostic(outcomes.toString())
  assert.ok(outcomes.get('ok') > 0 && outcomes.get('bad_record') > 0, outcomes.toString())
})

/** Body length of an envelope: decode the header the same way decodeEnvelope does. */
function bodyLength(bytes: Uint8Array): number {
  const envelope = decodeEnvelope(bytes)
  const kp = senders.get(hex(envelope.from))!
  const empty = sealEnvelope(kp, envelope.seq, envelope.time, messageTypeId(envelope.message.type), new Uint8Array(0))
  return bytes.length - empty.length
}

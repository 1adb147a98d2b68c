import { test } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import sodium from 'sodium-universal'
import {
  batchMessages,
  decodeEnvelope,
  encodeEnvelope,
  outgoingMessage,
  sealEnvelope,
  unbatch,
  verifyEnvelope,
  MAX_ENVELOPE_BYTES,
  type AgentKeyPair
} from '../../src/cluster/envelope.ts'
import { EnvelopeError, PeerError } from '../../src/cluster/errors.ts'
import { MAX_BATCH_MESSAGES, PROTOCOL_VERSION, messageTypeId, ONION_PACKET_BYTES, type Message, type MessageType, type WireMessage } from '../../src/cluster/messages.ts'
import { InboundGate, DEFAULT_RATE_LIMITS, TokenBucket, BanList, ReportLimiter } from '../../src/cluster/guard.ts'
import { checkClusterSecret, deriveAuthKey, deriveTopic, secretProof, verifySecretProof } from '../../src/cluster/auth.ts'
import { ClusterError } from '../../src/cluster/errors.ts'
import { newAgentKeyPair } from './key-fixture.ts'

const circuit = { node: randomBytes(33), chanId: 0x8000_0000_0000_0001n, htlcId: 7n }
const view = { term: 3, records: 41 }

/** One sample of every message type, with fields at awkward values (max uint64, empty, null). */
function samples(agent: Uint8Array): { [K in MessageType]: Extract<WireMessage, { type: K }> } {
  return {
    hello: {
      type: 'hello',
      agent,
      role: 'candidate',
      priority: 10,
      protocolVersion: PROTOCOL_VERSION,
      muxKey: randomBytes(33),
      nodes: [
        { pubkey: randomBytes(33), alias: 'alice ⚡', virtualScid: 0xffff_ffff_ffff_ffffn, inboundMsat: 5_000_000_000n },
        { pubkey: randomBytes(33), alias: '', virtualScid: 1n << 63n, inboundMsat: 0n }
      ],
      auditCore: randomBytes(32)
    },
    ping: { type: 'ping', nonce: 0xffffffff },
    pong: { type: 'pong', nonce: 0 },
    'vote-request': { type: 'vote-request', term: 2 ** 40, candidate: agent, view, priority: 7, pre: false },
    vote: { type: 'vote', term: 4, voter: agent, granted: true, view: { term: 3, records: 41 }, pre: false },
    lease: { type: 'lease', term: 4, leader: agent, at: 1_700_000_000_123 },
    'lease-ack': { type: 'lease-ack', term: 4, voter: agent, at: 1_700_000_000_123 },
    'htlc-offer': {
      type: 'htlc-offer',
      term: 4,
      circuit,
      paymentHash: randomBytes(32),
      incomingMsat: 1_000_500n,
      outgoingMsat: 1_000_000n,
      incomingExpiry: 850_140,
      outgoingExpiry: 850_100,
      outgoingRequestedChanId: 0x8123_4567_89ab_cdefn,
      onion: randomBytes(ONION_PACKET_BYTES),
      autoFailHeight: 850_090,
      currentHeight: 850_000
    },
    'htlc-decision': { type: 'htlc-decision', term: 4, circuit, resolution: { kind: 'settle', preimage: randomBytes(32) }, uncommittedRecord: randomBytes(32) },
    'htlc-resolved': { type: 'htlc-resolved', term: 4, circuit, settled: false },
    'resolution-query': { type: 'resolution-query', term: 4, circuits: [circuit, { ...circuit, htlcId: 0n }] },
    'records-request': { type: 'records-request', term: 5, requestId: 9, after: 0 },
    'records-reply': { type: 'records-reply', term: 5, requestId: 9, records: [randomBytes(100), new Uint8Array(0)], done: true },
    'api-forward': { type: 'api-forward', requestId: 1, method: 'AddInvoice', payload: randomBytes(20) },
    'api-reply': { type: 'api-reply', requestId: 1, status: 0, message: '', payload: new Uint8Array(0), done: false },
    'record-notice': { type: 'record-notice', term: 3, record: Buffer.from('{"type":"cancelled"}') },
    'record-ack': { type: 'record-ack', term: 3, digest: new Uint8Array(32).fill(9) },
    batch: { type: 'batch', messages: [{ type: 'ping', nonce: 1 }, { type: 'record-ack', term: 3, digest: new Uint8Array(32).fill(1) }, { type: 'ping', nonce: 1 }] }
  }
}

test('every message type survives an envelope round trip and verifies', () => {
  const kp = newAgentKeyPair()
  const all = Object.values(samples(kp.publicKey)) as WireMessage[]
  // Both failure forms of a decision, too.
  all.push(
    { type: 'htlc-decision', term: 1, circuit, resolution: { kind: 'fail', message: randomBytes(292) }, uncommittedRecord: null },
    { type: 'htlc-decision', term: 1, circuit, resolution: { kind: 'fail-code', code: 'TEMPORARY_CHANNEL_FAILURE' }, uncommittedRecord: null },
    { ...samples(kp.publicKey).hello, role: 'witness', muxKey: null, nodes: [] }
  )
  let seq = 1
  for (const message of all) {
    const bytes = encodeEnvelope(kp, seq, 1_700_000_000_000, message)
    const env = decodeEnvelope(bytes)
    assert.deepEqual(env.message, normalize(message), message.type)
    assert.equal(env.seq, seq++)
    assert.equal(env.time, 1_700_000_000_000)
    assert.deepEqual(env.from, kp.publicKey)
    assert.deepEqual(env.bytes, bytes)
    assert.ok(verifyEnvelope(env), message.type)
  }
})

/** Decoded byte fields are Uint8Array views; compare them as such. */
function normalize(value: unknown): unknown {
  if (value instanceof Uint8Array) return new Uint8Array(value)
  if (Array.isArray(value)) return value.map(normalize)
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, normalize(v)]))
  }
  return value
}

test('a signature does not verify under another sender or with any bit flipped', () => {
  const kp = newAgentKeyPair()
  const bytes = encodeEnvelope(kp, 1, 1, { type: 'ping', nonce: 1 })
  const env = decodeEnvelope(bytes)
  assert.ok(!verifyEnvelope({ ...env, from: newAgentKeyPair().publicKey }))
  const flipped = bytes.slice()
  flipped[flipped.length - 1]! ^= 1
  assert.ok(!verifyEnvelope(decodeEnvelope(flipped)))
})

test('decodeEnvelope rejects oversize, unknown types, trailing bytes and non-canonical encodings', () => {
  const kp = newAgentKeyPair()
  const code = (f: () => unknown): string => {
    try {
      f()
    } catch (err) {
      assert.ok(err instanceof EnvelopeError, String(err))
      return err.code
    }
    assert.fail('no error')
  }
  assert.equal(code(() => decodeEnvelope(new Uint8Array(MAX_ENVELOPE_BYTES + 1))), 'oversize')
  assert.equal(code(() => decodeEnvelope(new Uint8Array(10))), 'malformed')
  assert.equal(code(() => decodeEnvelope(sealEnvelope(kp, 1, 1, 999, new Uint8Array(4)))), 'unknown_type')
  const ping = messageTypeId('ping')
  assert.equal(code(() => decodeEnvelope(sealEnvelope(kp, 1, 1, ping, Uint8Array.of(1, 0)))), 'malformed_body')
  assert.equal(code(() => decodeEnvelope(sealEnvelope(kp, 1, 1, ping, new Uint8Array(0)))), 'malformed_body')
  // nonce 1 written as a 3-byte uint (0xfd prefix) instead of one byte
  assert.equal(code(() => decodeEnvelope(sealEnvelope(kp, 1, 1, ping, Uint8Array.of(0xfd, 1, 0)))), 'non_canonical')
  const grant = messageTypeId('vote')
  const badBool = Uint8Array.of(4, ...kp.publicKey, 2)
  assert.equal(code(() => decodeEnvelope(sealEnvelope(kp, 1, 1, grant, badBool))), 'malformed_body')
  assert.throws(() => encodeEnvelope(kp, 1, 1, { type: 'ping', nonce: -1 }), RangeError)
  assert.throws(
    () => encodeEnvelope(kp, 1, 1, { type: 'api-forward', requestId: 1, method: 'x', payload: new Uint8Array(40_000) }),
    RangeError
  )
})

test('fuzz: mutated recorded envelopes give an EnvelopeError or a valid decode, never anything else', () => {
  const kp = newAgentKeyPair()
  const recorded = (Object.values(samples(kp.publicKey)) as WireMessage[]).map((m, i) => encodeEnvelope(kp, i + 1, 5, m))
  let rejected = 0
  let forged = 0
  for (let i = 0; i < 3000; i++) {
    const base = recorded[i % recorded.length]!
    const mutated = mutate(base)
    try {
      const env = decodeEnvelope(mutated)
      // A mutation that still parses must fail the signature check.
      if (!verifyEnvelope(env)) forged++
      else assert.deepEqual(mutated, base)
    } catch (err) {
      assert.ok(err instanceof EnvelopeError, `${String(err)} for ${Buffer.from(mutated).toString('hex')}`)
      rejected++
    }
  }
  assert.ok(rejected > 1000 && forged > 100, `rejected ${rejected}, forged ${forged}`)
})

function mutate(base: Uint8Array): Uint8Array {
  const r = Math.random()
  const at = Math.floor(Math.random() * base.length)
  if (r < 0.5) {
    const out = base.slice()
    out[at]! ^= 1 << Math.floor(Math.random() * 8)
    return out
  }
  if (r < 0.7) return base.subarray(0, at)
  if (r < 0.85) return Uint8Array.from([...base.subarray(0, at), ...randomBytes(1 + (at % 5)), ...base.subarray(at)])
  return Uint8Array.from([...base.subarray(0, at), ...base.subarray(Math.min(base.length, at + 1 + (at % 7)))])
}

test('the inbound gate rejects each bad envelope with its reason', () => {
  const kp = newAgentKeyPair()
  const key = Buffer.from(kp.publicKey).toString('hex')
  const lastSeq = new Map<string, number>()
  const now = 1_700_000_000_000
  const gate = new InboundGate(key, lastSeq, { limits: DEFAULT_RATE_LIMITS, maxClockSkewMs: 60_000 }, now)
  const ping = (seq: number, time = now) => encodeEnvelope(kp, seq, time, { type: 'ping', nonce: seq })
  const reason = (data: Uint8Array, g = gate): string => {
    try {
      g.check(data, now)
    } catch (err) {
      assert.ok(err instanceof PeerError)
      return err.code
    }
    return 'accepted'
  }
  assert.equal(reason(ping(5)), 'accepted')
  assert.equal(reason(ping(5)), 'replay')
  assert.equal(reason(ping(4)), 'replay')
  assert.equal(reason(ping(6, now + 120_000)), 'clock_skew')
  const forged = ping(7)
  forged[forged.length - 5]! ^= 0xff
  assert.equal(reason(forged), 'bad_signature')
  assert.equal(reason(encodeEnvelope(newAgentKeyPair(), 8, now, { type: 'ping', nonce: 1 })), 'wrong_sender')
  const other = newAgentKeyPair().publicKey
  assert.equal(reason(encodeEnvelope(kp, 8, now, { type: 'vote', term: 1, voter: other, granted: true, view: { term: 3, records: 41 }, pre: false })), 'wrong_sender')
  assert.equal(reason(encodeEnvelope(kp, 8, now, { type: 'lease', term: 1, leader: other, at: now })), 'wrong_sender')
  assert.equal(reason(sealEnvelope(kp, 9, now, 200, new Uint8Array(1))), 'unknown_type')
  assert.equal(reason(new Uint8Array(MAX_ENVELOPE_BYTES + 1)), 'oversize')
  assert.equal(reason(ping(10)), 'accepted')
  // A second connection of the same sender shares the replay window.
  const gate2 = new InboundGate(key, lastSeq, { limits: DEFAULT_RATE_LIMITS, maxClockSkewMs: 60_000 }, now)
  assert.equal(reason(ping(10), gate2), 'replay')
  const tight = new InboundGate(key, new Map(), {
    limits: { messagesPerSecond: 1, messageBurst: 2, bytesPerSecond: 1e9, byteBurst: 1e9 },
    maxClockSkewMs: 60_000
  }, now)
  assert.equal(reason(ping(11), tight), 'accepted')
  assert.equal(reason(ping(12), tight), 'accepted')
  assert.equal(reason(ping(13), tight), 'rate_limited')
})

test('the inbound gate delivers a batch as its messages, in order, each checked and counted', () => {
  const kp = newAgentKeyPair()
  const key = Buffer.from(kp.publicKey).toString('hex')
  const now = 1_700_000_000_000
  const limits = { messagesPerSecond: 1, messageBurst: 3, bytesPerSecond: 1e9, byteBurst: 1e9 }
  const gate = new InboundGate(key, new Map(), { limits, maxClockSkewMs: 60_000 }, now)
  const pings = (n: number): Message[] => Array.from({ length: n }, (_, i) => ({ type: 'ping', nonce: i }))
  const bytes = encodeEnvelope(kp, 1, now, { type: 'batch', messages: pings(3) })
  const delivered = gate.check(bytes, now)
  assert.deepEqual(delivered.map((e) => e.message), pings(3))
  assert.ok(delivered.every((e) => e.seq === 1 && e.time === now && e.bytes === delivered[0]!.bytes))
  // Three messages took the whole burst of three: one more is over the rate.
  assert.throws(() => gate.check(encodeEnvelope(kp, 2, now, { type: 'ping', nonce: 9 }), now), { code: 'rate_limited' })
  const open = new InboundGate(key, new Map(), { limits: DEFAULT_RATE_LIMITS, maxClockSkewMs: 60_000 }, now)
  const lease = { type: 'lease', term: 1, leader: newAgentKeyPair().publicKey, at: now } as const
  assert.throws(() => open.check(encodeEnvelope(kp, 3, now, { type: 'batch', messages: [...pings(1), lease] }), now), { code: 'wrong_sender' })
})

test('a batch holds two to MAX_BATCH_MESSAGES messages and no batch', () => {
  const kp = newAgentKeyPair()
  const batchId = messageTypeId('batch')
  const ping = messageTypeId('ping')
  // count, then per message its type id and body (a ping's nonce is one byte here)
  const body = (...messages: number[][]): Uint8Array => Uint8Array.of(messages.length, ...messages.flat())
  const code = (data: Uint8Array): string => {
    try {
      decodeEnvelope(data)
    } catch (err) {
      assert.ok(err instanceof EnvelopeError)
      return err.code
    }
    return 'decoded'
  }
  assert.equal(code(sealEnvelope(kp, 1, 1, batchId, body([ping, 1], [ping, 2]))), 'decoded')
  assert.equal(code(sealEnvelope(kp, 1, 1, batchId, body([ping, 1]))), 'malformed_body')
  assert.equal(code(sealEnvelope(kp, 1, 1, batchId, body([ping, 1], [batchId, 2, ping, 1, ping, 2]))), 'malformed_body')
  assert.throws(() => encodeEnvelope(kp, 1, 1, { type: 'batch', messages: [{ type: 'ping', nonce: 1 }] }), RangeError)
  const many = Array.from({ length: MAX_BATCH_MESSAGES + 1 }, (_, i): Message => ({ type: 'ping', nonce: i }))
  assert.throws(() => encodeEnvelope(kp, 1, 1, { type: 'batch', messages: many }), RangeError)
})

test('batchMessages keeps the order, sends a lone message as itself, and fills envelopes up to their limits', () => {
  const kp = newAgentKeyPair()
  const sample = samples(kp.publicKey)
  const offers = Array.from({ length: 100 }, (_, i): Message => ({ ...sample['htlc-offer'], circuit: { ...circuit, htlcId: BigInt(i) } }))
  const lone = batchMessages([outgoingMessage(offers[0]!)])
  assert.deepEqual(lone, [offers[0]])
  const packed = batchMessages(offers.map(outgoingMessage))
  assert.ok(packed.length >= 3 && packed.length < 10, `${packed.length} envelopes for 100 offers`)
  const delivered = packed.flatMap((m, i) => unbatch(decodeEnvelope(encodeEnvelope(kp, i + 1, 1, m))).map((e) => e.message))
  assert.deepEqual(delivered, normalize(offers))
  const pings = Array.from({ length: MAX_BATCH_MESSAGES + 1 }, (_, i): Message => ({ type: 'ping', nonce: i }))
  assert.deepEqual(batchMessages(pings.map(outgoingMessage)).map((m) => (m.type === 'batch' ? m.messages.length : 1)), [MAX_BATCH_MESSAGES, 1])
  assert.throws(() => outgoingMessage({ type: 'ping', nonce: -1 }), RangeError)
  assert.throws(() => outgoingMessage({ type: 'records-reply', term: 1, requestId: 1, records: Array.from({ length: 5 }, () => new Uint8Array(16 * 1024)), done: true }), RangeError)
})

test('token bucket, ban list and report limiter follow the injected clock', () => {
  const bucket = new TokenBucket(10, 2, 0)
  assert.ok(bucket.take(2, 0))
  assert.ok(!bucket.take(1, 50))
  assert.ok(bucket.take(1, 100))
  const bans = new BanList()
  bans.ban('a', 1000)
  assert.ok(bans.isBanned('a', 999))
  assert.deepEqual(bans.expire(999), [])
  assert.ok(!bans.isBanned('a', 1000))
  // Capped: a flood of fresh keys evicts the oldest bans instead of growing the list.
  const capped = new BanList(2)
  assert.equal(capped.ban('k1', 50), null)
  assert.equal(capped.ban('k2', 50), null)
  assert.equal(capped.ban('k3', 50), 'k1')
  assert.ok(!capped.isBanned('k1', 0) && capped.isBanned('k3', 0))
  assert.deepEqual(bans.expire(1000), ['a'])
  const reports = new ReportLimiter(2, 1000)
  assert.equal(reports.admit(0), 0)
  assert.equal(reports.admit(1), 0)
  assert.equal(reports.admit(2), null)
  assert.equal(reports.admit(3), null)
  assert.equal(reports.admit(1000), 2)
})

test('secret derivations: domain-separated, weak secrets refused, proofs bound to session and sender', () => {
  const secret = randomBytes(32)
  assert.notDeepEqual(deriveTopic(secret), deriveAuthKey(secret))
  assert.equal(deriveTopic(secret).length, 32)
  for (const weak of [randomBytes(31), new Uint8Array(32), new TextEncoder().encode('correct horse battery staple!!!!')]) {
    assert.throws(() => deriveTopic(weak), (err: unknown) => err instanceof ClusterError && err.code === 'weak_secret')
  }
  checkClusterSecret(randomBytes(64))
  const auth = deriveAuthKey(secret)
  const hash = randomBytes(64)
  const a = randomBytes(32)
  const b = randomBytes(32)
  const proof = secretProof(auth, hash, a)
  assert.ok(verifySecretProof(auth, hash, a, proof))
  assert.ok(!verifySecretProof(auth, hash, b, proof), 'reflected proof')
  assert.ok(!verifySecretProof(auth, randomBytes(64), a, proof), 'other session')
  assert.ok(!verifySecretProof(deriveAuthKey(randomBytes(32)), hash, a, proof), 'other secret')
  assert.ok(!verifySecretProof(auth, hash, a, proof.subarray(0, 31)))
  // The MAC is keyed BLAKE2b-256 over the domain, the handshake hash and the key (documented in auth.ts).
  const expected = new Uint8Array(32)
  sodium.crypto_generichash(expected, Buffer.concat([Buffer.from('highwire/proof/v1'), hash, a]), auth)
  assert.deepEqual(proof, expected)
})

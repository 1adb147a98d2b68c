import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { CircuitTracker, FAILURE_MESSAGE_LENGTH, toResponse, validateDecision, type Decision, type InterceptedHtlc } from '../../src/lnd/circuits.ts'
import { InterceptorError } from '../../src/lnd/errors.ts'

const VSCID = (1n << 63n) | 0x1234n
const PREIMAGE = Buffer.alloc(32, 7)
const HASH = createHash('sha256').update(PREIMAGE).digest()

function htlc (chanId: bigint, htlcId: bigint, over: Partial<InterceptedHtlc> = {}): InterceptedHtlc {
  return {
    circuit: { chanId, htlcId },
    incomingAmountMsat: 1_001_000n,
    incomingExpiry: 200,
    outgoingAmountMsat: 1_000_000n,
    outgoingExpiry: 160,
    outgoingRequestedChanId: VSCID,
    paymentHash: HASH,
    onionBlob: Buffer.alloc(1366),
    customRecords: new Map(),
    inWireCustomRecords: new Map(),
    autoFailHeight: 181, // 200 - lnd's CltvRejectDelta of 19
    onChain: false,
    ...over
  }
}

const onChain = (h: InterceptedHtlc): InterceptedHtlc => ({ ...h, autoFailHeight: h.incomingExpiry, onChain: true })

function errCode (code: string) {
  return (err: unknown) => err instanceof InterceptorError && err.code === code
}

function opened (): CircuitTracker {
  const t = new CircuitTracker(VSCID)
  t.advanceHeight(100)
  t.streamOpened()
  return t
}

test('foreign HTLCs are resumed at once, virtual ones go to the handler', () => {
  const t = opened()
  const foreign = t.offer(htlc(1n, 0n, { outgoingRequestedChanId: 42n }))
  assert.deepEqual(foreign, { type: 'send', response: { incoming_circuit_key: { chan_id: '1', htlc_id: '0' }, action: 'RESUME' } })
  const ours = t.offer(htlc(1n, 1n))
  assert.equal(ours.type, 'handle')
})

test('a decision is written once; the same decision again is a no-op, a different one an error', () => {
  const t = opened()
  t.offer(htlc(1n, 1n))
  const first = t.decide({ chanId: 1n, htlcId: 1n }, { action: 'settle', preimage: PREIMAGE })
  assert.deepEqual(first, { type: 'send', response: { incoming_circuit_key: { chan_id: '1', htlc_id: '1' }, action: 'SETTLE', preimage: PREIMAGE } })
  assert.deepEqual(t.decide({ chanId: 1n, htlcId: 1n }, { action: 'settle', preimage: Buffer.from(PREIMAGE) }), { type: 'duplicate' })
  assert.throws(() => t.decide({ chanId: 1n, htlcId: 1n }, { action: 'fail', failureCode: 'TEMPORARY_CHANNEL_FAILURE' }), errCode('already_decided'))
})

test('one answer per offer: a repeat before the answer is not answered, one after it is', () => {
  const t = opened()
  const foreign = htlc(1n, 0n, { outgoingRequestedChanId: 42n })
  assert.equal(t.offer(foreign).type, 'send')
  // lnd offers again only after adding a new held entry (link replay): it needs its own answer.
  assert.equal(t.offer(foreign).type, 'send')
  assert.equal(t.offer(htlc(1n, 1n)).type, 'handle')
  assert.deepEqual(t.offer(htlc(1n, 1n)), { type: 'held' })
  assert.equal(t.decide({ chanId: 1n, htlcId: 1n }, { action: 'resume' }).type, 'send')
  assert.deepEqual(t.offer(htlc(1n, 1n)), { type: 'send', response: toResponse({ chanId: 1n, htlcId: 1n }, { action: 'resume' }) })
  // The re-offered HTLC is not handed to the handler again.
  assert.deepEqual(t.decide({ chanId: 1n, htlcId: 1n }, { action: 'resume' }), { type: 'duplicate' })
})

test('after a reconnect a decision already made is re-sent for the re-offered HTLC', () => {
  const t = opened()
  t.offer(htlc(1n, 1n))
  t.offer(htlc(1n, 2n))
  t.decide({ chanId: 1n, htlcId: 1n }, { action: 'fail', failureCode: 'INVALID_ONION_HMAC' })
  t.streamClosed()
  t.streamOpened()
  const replay = t.offer(htlc(1n, 1n))
  assert.deepEqual(replay, { type: 'send', response: { incoming_circuit_key: { chan_id: '1', htlc_id: '1' }, action: 'FAIL', failure_code: 'INVALID_ONION_HMAC' } })
  // The undecided one is still held: the handler has it already.
  assert.deepEqual(t.offer(htlc(1n, 2n)), { type: 'held' })
})

test('a decision taken while disconnected waits for the re-offer on the next stream', () => {
  const t = opened()
  t.offer(htlc(1n, 1n))
  t.streamClosed()
  assert.deepEqual(t.decide({ chanId: 1n, htlcId: 1n }, { action: 'settle', preimage: PREIMAGE }), { type: 'deferred' })
  t.streamOpened()
  // Opened but not re-offered yet: still deferred, lnd may not hold it on this stream yet.
  assert.deepEqual(t.decide({ chanId: 1n, htlcId: 1n }, { action: 'settle', preimage: PREIMAGE }), { type: 'duplicate' })
  const replay = t.offer(htlc(1n, 1n))
  assert.equal(replay.type, 'send')
  assert.equal(replay.type === 'send' && replay.response.action, 'SETTLE')
})

test('a decision for an HTLC not yet re-offered on the new stream is deferred', () => {
  const t = opened()
  t.offer(htlc(1n, 1n))
  t.streamClosed()
  t.streamOpened()
  assert.deepEqual(t.decide({ chanId: 1n, htlcId: 1n }, { action: 'resume' }), { type: 'deferred' })
  assert.deepEqual(t.offer(htlc(1n, 1n)), { type: 'send', response: toResponse({ chanId: 1n, htlcId: 1n }, { action: 'resume' }) })
})

test('decisions lnd would refuse are rejected before they reach the stream', () => {
  const t = opened()
  t.offer(htlc(1n, 1n))
  const key = { chanId: 1n, htlcId: 1n }
  assert.throws(() => t.decide(key, { action: 'settle', preimage: Buffer.alloc(32, 8) }), errCode('preimage_mismatch'))
  assert.throws(() => t.decide(key, { action: 'settle', preimage: Buffer.alloc(31) }), errCode('invalid_decision'))
  assert.throws(() => t.decide(key, { action: 'fail', failureCode: 'INCORRECT_OR_UNKNOWN_PAYMENT_DETAILS' } as unknown as Decision), errCode('invalid_decision'))
  assert.throws(() => t.decide(key, { action: 'fail', failureMessage: Buffer.alloc(FAILURE_MESSAGE_LENGTH - 1) }), errCode('invalid_decision'))
  assert.throws(() => t.decide(key, { action: 'fail', failureMessage: Buffer.alloc(FAILURE_MESSAGE_LENGTH), failureCode: 'TEMPORARY_CHANNEL_FAILURE' } as unknown as Decision), errCode('invalid_decision'))
  assert.throws(() => t.decide(key, { action: 'resume_modified' } as unknown as Decision), errCode('invalid_decision'))
  assert.throws(() => t.decide({ chanId: 9n, htlcId: 9n }, { action: 'resume' }), errCode('unknown_circuit'))
  // None of them was recorded: a valid decision still goes out.
  const ok = t.decide(key, { action: 'fail', failureMessage: Buffer.alloc(FAILURE_MESSAGE_LENGTH, 1) })
  assert.equal(ok.type === 'send' && ok.response.failure_message?.length, FAILURE_MESSAGE_LENGTH)
})

test('each of lnd\'s four accepted failure codes is valid', () => {
  for (const failureCode of ['TEMPORARY_CHANNEL_FAILURE', 'INVALID_ONION_HMAC', 'INVALID_ONION_KEY', 'INVALID_ONION_VERSION'] as const) {
    assert.doesNotThrow(() => validateDecision({ action: 'fail', failureCode }))
  }
})

test('at auto_fail_height lnd fails held HTLCs itself: reported once, later decisions refused', () => {
  const t = opened()
  t.offer(htlc(1n, 1n))
  t.offer(htlc(1n, 2n))
  t.decide({ chanId: 1n, htlcId: 2n }, { action: 'resume' })
  assert.deepEqual(t.advanceHeight(180), [])
  const expired = t.advanceHeight(181)
  assert.deepEqual(expired.map(h => h.circuit.htlcId), [1n]) // the answered one is not reported
  assert.deepEqual(t.advanceHeight(182), [])
  assert.throws(() => t.decide({ chanId: 1n, htlcId: 1n }, { action: 'settle', preimage: PREIMAGE }), errCode('htlc_expired'))
})

test('an HTLC offered when our height is already at its auto_fail_height cannot be decided', () => {
  const t = new CircuitTracker(VSCID)
  t.streamOpened()
  t.advanceHeight(181)
  t.offer(htlc(1n, 1n))
  assert.throws(() => t.decide({ chanId: 1n, htlcId: 1n }, { action: 'resume' }), errCode('htlc_expired'))
})

test('on-chain HTLCs accept only SETTLE; a foreign on-chain offer is left alone', () => {
  const t = opened()
  assert.deepEqual(t.offer(onChain(htlc(5n, 0n, { outgoingRequestedChanId: 42n }))), { type: 'ignore', reason: 'not_sendable_on_chain' })
  assert.equal(t.offer(onChain(htlc(5n, 1n))).type, 'handle')
  assert.deepEqual(t.decide({ chanId: 5n, htlcId: 1n }, { action: 'fail', failureCode: 'TEMPORARY_CHANNEL_FAILURE' }), { type: 'withheld' })
  t.offer(onChain(htlc(5n, 2n)))
  // Past the off-chain auto-fail height but before the on-chain deadline, a settle still goes out.
  t.advanceHeight(190)
  assert.equal(t.decide({ chanId: 5n, htlcId: 2n }, { action: 'settle', preimage: PREIMAGE }).type, 'send')
})

test('an HTLC moving on-chain is handed over again, and a settle already sent is re-sent', () => {
  const t = opened()
  t.offer(htlc(1n, 1n))
  t.offer(htlc(1n, 2n))
  t.offer(htlc(1n, 3n))
  t.decide({ chanId: 1n, htlcId: 2n }, { action: 'settle', preimage: PREIMAGE })
  t.decide({ chanId: 1n, htlcId: 3n }, { action: 'fail', failureCode: 'TEMPORARY_CHANNEL_FAILURE' })
  // Same stream: lnd's addOnChain replaced its off-chain entry.
  assert.equal(t.offer(onChain(htlc(1n, 1n))).type, 'handle')
  const resettle = t.offer(onChain(htlc(1n, 2n)))
  assert.equal(resettle.type === 'send' && resettle.response.action, 'SETTLE')
  assert.deepEqual(t.offer(onChain(htlc(1n, 3n))), { type: 'ignore', reason: 'not_sendable_on_chain' })
  // Its on-chain entry stays unanswered: a repeat offer on this stream is the same entry.
  assert.deepEqual(t.offer(onChain(htlc(1n, 3n))), { type: 'ignore', reason: 'duplicate' })
})

test('only virtual-channel circuits are kept, until their incoming expiry passes', () => {
  const t = opened()
  t.offer(htlc(1n, 1n))
  t.offer(htlc(1n, 2n, { outgoingRequestedChanId: 42n }))
  assert.equal(t.size, 1)
  t.advanceHeight(199)
  assert.equal(t.size, 1)
  t.advanceHeight(200)
  assert.equal(t.size, 0)
  assert.throws(() => t.advanceHeight(-1), RangeError)
})

test('a remembered circuit keeps no part of lnd\'s gRPC frame: not the onion, not a view of the payment hash', () => {
  const t = opened()
  // As protobufjs decodes it: bytes fields are views of the one frame.
  const frame = Buffer.alloc(8192)
  HASH.copy(frame, 100)
  const offered = htlc(1n, 1n, { paymentHash: frame.subarray(100, 132), onionBlob: frame.subarray(200, 1566) })
  t.offer(offered)
  const [kept] = t.advanceHeight(181)
  assert.deepEqual(Object.keys(kept!).sort(), ['autoFailHeight', 'circuit', 'incomingExpiry', 'onChain', 'paymentHash'])
  assert.equal(kept!.paymentHash.buffer.byteLength, 32)
  assert.ok(kept!.paymentHash.equals(HASH))
  frame.fill(0) // what lnd's frame held later is not what the tracker checks a preimage against
  assert.throws(() => t.decide({ chanId: 1n, htlcId: 1n }, { action: 'settle', preimage: PREIMAGE }), errCode('htlc_expired'))
})

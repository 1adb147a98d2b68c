import { test } from 'node:test'
import assert from 'node:assert/strict'
import { EventEmitter } from 'node:events'
import { createHash } from 'node:crypto'
import { HtlcInterceptor, parseInterceptRequest, type InterceptorEvent } from '../../src/lnd/interceptor.ts'
import type { LndClient, RawInterceptRequest, RawInterceptResponse } from '../../src/lnd/client.ts'
import type { HeldTerms, InterceptedHtlc } from '../../src/lnd/circuits.ts'
import { LndError } from '../../src/lnd/errors.ts'
import { virtualScid } from '../../src/ln/scid.ts'
import { Router } from '../../src/lnd/proto.ts'
import { ManualClock } from './lnd-fakes.ts'

const PUBKEY = '03' + 'ab'.repeat(24) + '8000000000000001'
const VSCID = virtualScid(Buffer.from(PUBKEY, 'hex'))
const PREIMAGE = Buffer.alloc(32, 3)
const HASH = createHash('sha256').update(PREIMAGE).digest()

const wire = Router.service.HtlcInterceptor!

// lnd's offer as proto-loader delivers it: encoded as lnd would, decoded by our loader.
function offer (htlcId: number, over: Partial<RawInterceptRequest> = {}): RawInterceptRequest {
  const decoded = wire.responseDeserialize(wire.responseSerialize({
    incoming_circuit_key: { chan_id: '123456789', htlc_id: String(htlcId) },
    incoming_amount_msat: '1001000',
    incoming_expiry: 300,
    payment_hash: HASH,
    outgoing_requested_chan_id: VSCID.toString(),
    outgoing_amount_msat: '1000000',
    outgoing_expiry: 260,
    custom_records: { 65537: Buffer.from('hi') },
    onion_blob: Buffer.alloc(1366),
    auto_fail_height: 281,
    in_wire_custom_records: { 106823: Buffer.from([1]) }, // lnd's experimental endorsement signal
    outgoing_requested_node_id: Buffer.alloc(0)
  })) as RawInterceptRequest
  return { ...decoded, ...over }
}

class FakeDuplex extends EventEmitter {
  written: RawInterceptResponse[] = []
  write (m: RawInterceptResponse): boolean { this.written.push(m); return true }
  // grpc-js reports a cancellation asynchronously.
  cancel (): void { process.nextTick(() => this.emit('error', Object.assign(new Error('1 CANCELLED'), { code: 1 }))) }
}

function harness () {
  const clock = new ManualClock()
  const calls: FakeDuplex[] = []
  const htlcs: InterceptedHtlc[] = []
  const expired: HeldTerms[] = []
  const events: InterceptorEvent[] = []
  const client = {
    name: 'alice',
    pubkey: PUBKEY,
    clock,
    random: () => 0,
    backoff: { initialMs: 100, maxMs: 1000, stableMs: 5000 },
    onEvent: () => {},
    openHtlcInterceptor: () => { const c = new FakeDuplex(); calls.push(c); return c }
  } as unknown as LndClient
  const interceptor = new HtlcInterceptor({ client, onHtlc: h => htlcs.push(h), onExpired: h => expired.push(h), onEvent: e => events.push(e) })
  return { clock, calls, htlcs, expired, events, interceptor }
}

test('offers are parsed into typed HTLCs; on-chain is told by auto_fail_height', () => {
  const h = parseInterceptRequest(offer(7), 'alice')
  assert.deepEqual(h.circuit, { chanId: 123456789n, htlcId: 7n })
  assert.equal(h.outgoingRequestedChanId, VSCID)
  assert.equal(h.incomingAmountMsat, 1001000n)
  assert.deepEqual([...h.customRecords], [[65537n, Buffer.from('hi')]])
  assert.deepEqual([...h.inWireCustomRecords], [[106823n, Buffer.from([1])]])
  assert.equal(h.paymentHash.length, 32)
  assert.equal(h.onChain, false)
  assert.equal(parseInterceptRequest(offer(7, { auto_fail_height: 300 }), 'alice').onChain, true)
  assert.throws(() => parseInterceptRequest(offer(7, { incoming_circuit_key: null }), 'alice'), LndError)
  assert.throws(() => parseInterceptRequest(offer(7, { outgoing_requested_chan_id: '-1' }), 'alice'), LndError)
  assert.throws(() => parseInterceptRequest(offer(7, { payment_hash: Buffer.alloc(31) }), 'alice'), LndError)
})

test('responses survive the wire as lnd reads them', () => {
  const responses: RawInterceptResponse[] = [
    { incoming_circuit_key: { chan_id: '18446744073709551615', htlc_id: '1' }, action: 'SETTLE', preimage: PREIMAGE },
    { incoming_circuit_key: { chan_id: '1', htlc_id: '2' }, action: 'FAIL', failure_code: 'INVALID_ONION_KEY' },
    { incoming_circuit_key: { chan_id: '1', htlc_id: '3' }, action: 'FAIL', failure_message: Buffer.alloc(292, 9) },
    { incoming_circuit_key: { chan_id: '1', htlc_id: '4' }, action: 'RESUME' }
  ]
  for (const r of responses) {
    const back = wire.requestDeserialize(wire.requestSerialize(r)) as Record<string, unknown>
    for (const [k, v] of Object.entries(r)) assert.deepEqual(back[k], v)
  }
  // A FAIL by message leaves failure_code at 0 (RESERVED), as lnd requires.
  assert.equal((wire.requestDeserialize(wire.requestSerialize(responses[2]!)) as { failure_code: string }).failure_code, 'RESERVED')
})

test('foreign HTLCs are resumed on the stream, ours reach the handler', () => {
  const { calls, htlcs, events, interceptor } = harness()
  interceptor.start()
  calls[0]!.emit('data', offer(1, { outgoing_requested_chan_id: '555' }))
  calls[0]!.emit('data', offer(2))
  assert.deepEqual(calls[0]!.written, [{ incoming_circuit_key: { chan_id: '123456789', htlc_id: '1' }, action: 'RESUME' }])
  assert.deepEqual(htlcs.map(h => h.circuit.htlcId), [2n])
  assert.ok(events.some(e => e.type === 'htlc_resumed' && e.circuit === '123456789:1'))
  assert.equal(interceptor.resolve({ chanId: 123456789n, htlcId: 2n }, { action: 'settle', preimage: PREIMAGE }), 'sent')
  assert.deepEqual(calls[0]!.written[1], { incoming_circuit_key: { chan_id: '123456789', htlc_id: '2' }, action: 'SETTLE', preimage: PREIMAGE })
  interceptor.stop()
})

test('a held HTLC survives a disconnect: decided meanwhile, the decision goes out on the re-offer', () => {
  const { clock, calls, htlcs, events, interceptor } = harness()
  interceptor.start()
  calls[0]!.emit('data', offer(2))
  calls[0]!.emit('error', Object.assign(new Error('14 UNAVAILABLE'), { code: 14 }))
  assert.equal(interceptor.resolve({ chanId: 123456789n, htlcId: 2n }, { action: 'fail', failureCode: 'TEMPORARY_CHANNEL_FAILURE' }), 'deferred')
  clock.advance(100)
  assert.equal(calls.length, 2)
  calls[1]!.emit('data', offer(2))
  assert.deepEqual(calls[1]!.written, [{ incoming_circuit_key: { chan_id: '123456789', htlc_id: '2' }, action: 'FAIL', failure_code: 'TEMPORARY_CHANNEL_FAILURE' }])
  assert.equal(htlcs.length, 1) // not handed to the handler twice
  assert.ok(events.some(e => e.type === 'htlc_replayed' && e.action === 'FAIL'))
  // A bad offer is reported, not answered, and the stream lives on.
  calls[1]!.emit('data', offer(3, { incoming_circuit_key: null }))
  assert.ok(events.some(e => e.type === 'htlc_bad_request'))
  assert.equal(calls[1]!.written.length, 1)
  interceptor.stop()
})

test('block heights expire unanswered HTLCs as lnd does', () => {
  const { calls, expired, events, interceptor } = harness()
  interceptor.start()
  calls[0]!.emit('data', offer(2))
  interceptor.setBlockHeight(280)
  assert.equal(expired.length, 0)
  interceptor.setBlockHeight(281)
  assert.deepEqual(expired.map(h => h.circuit.htlcId), [2n])
  assert.deepEqual(events.at(-1), { type: 'htlc_expired', node: 'alice', circuit: '123456789:2', autoFailHeight: 281 })
  assert.throws(() => interceptor.resolve({ chanId: 123456789n, htlcId: 2n }, { action: 'resume' }), { code: 'htlc_expired' })
  assert.equal(calls[0]!.written.length, 0)
  interceptor.stop()
})

test('stop() closes at once: a decision right after it waits for the next stream', async () => {
  const { calls, interceptor } = harness()
  interceptor.start()
  calls[0]!.emit('data', offer(4))
  interceptor.stop()
  assert.equal(interceptor.resolve({ chanId: 123456789n, htlcId: 4n }, { action: 'resume' }), 'deferred')
  await new Promise(resolve => process.nextTick(resolve)) // the late CANCELLED changes nothing
  interceptor.start()
  assert.equal(calls.length, 2)
  calls[1]!.emit('data', offer(4))
  assert.deepEqual(calls[1]!.written, [{ incoming_circuit_key: { chan_id: '123456789', htlc_id: '4' }, action: 'RESUME' }])
  assert.equal(calls[0]!.written.length, 0)
  interceptor.stop()
})

// Every per-HTLC failure path of the virtual node, decoded back at the payer: the right BOLT 4
// message, from the right hop (the virtual node is hop 1, behind real node hop 0).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { FailureCode } from '../../src/ln/failure.ts'
import { MuxError } from '../../src/mux/types.ts'
import { FakeClock, FINAL_CLTV, HEIGHT, T0, atOrigin, invoice, machine, only, part } from './mux-fixture.ts'

const AMOUNT = 50_000_000n

function decide(p: ReturnType<typeof part>, opts: Parameters<typeof machine>[1] = {}, clock = new FakeClock()) {
  return only(machine(clock, opts).htlc(p.htlc), 'decision')
}

test('a valid single-part payment is accepted, and settles with the invoice preimage once the settle record is durable', () => {
  const clock = new FakeClock()
  const mux = machine(clock)
  const inv = invoice(AMOUNT)
  const p = part(inv, { htlcId: 1n, amountMsat: AMOUNT })
  const accepted = only(mux.htlc(p.htlc), 'accepted')
  assert.deepEqual(accepted.htlcs, [{ circuit: p.htlc.circuit, amountMsat: AMOUNT }])
  assert.deepEqual(accepted.paymentAddr, inv.paymentAddr)
  const persist = only(mux.settle(inv.paymentHash, accepted.setId), 'persist')
  const settled = only(mux.recordPersisted(persist.record), 'decision')
  assert.equal(settled.decision.action, 'settle')
  assert.deepEqual('preimage' in settled.decision && settled.decision.preimage, inv.preimage)
  assert.deepEqual(createHash('sha256').update(inv.preimage).digest(), Buffer.from(inv.paymentHash))
})

test('virtual hop: wrong virtual scid, short fee and short cltv delta are failed by the real node with temporary_channel_failure', () => {
  const inv = invoice(AMOUNT)
  const wrong = decide(part(inv, { htlcId: 1n, amountMsat: AMOUNT, htlc: { outgoingRequestedChanId: 123n } }))
  assert.deepEqual([wrong.decision, wrong.reason], [{ action: 'fail', failureCode: 'TEMPORARY_CHANNEL_FAILURE' }, 'wrong_channel'])

  const policy = { feeBaseMsat: 1000, feeProportionalMillionths: 100, cltvExpiryDelta: 40 }
  // fee = 1000 + 50_000_000 * 100 / 1e6 = 6000 msat
  const short = decide(part(inv, { htlcId: 2n, amountMsat: AMOUNT, htlc: { incomingAmountMsat: AMOUNT + 5999n } }), { policy })
  assert.deepEqual([short.decision, short.reason], [{ action: 'fail', failureCode: 'TEMPORARY_CHANNEL_FAILURE' }, 'fee_insufficient'])
  const enough = machine(new FakeClock(), { policy }).htlc(part(inv, { htlcId: 3n, amountMsat: AMOUNT, htlc: { incomingAmountMsat: AMOUNT + 6000n } }).htlc)
  assert.equal(only(enough, 'accepted').amountMsat, AMOUNT)

  const cltv = decide(part(inv, { htlcId: 4n, amountMsat: AMOUNT, htlc: { incomingExpiry: FINAL_CLTV + 39 } }))
  assert.deepEqual([cltv.decision, cltv.reason], [{ action: 'fail', failureCode: 'TEMPORARY_CHANNEL_FAILURE' }, 'incorrect_cltv_expiry'])
})

test('undecryptable onions get the BADONION code (no shared secret to encrypt with)', () => {
  const inv = invoice(AMOUNT)
  const cases: [string, (blob: Uint8Array) => Uint8Array, string][] = [
    ['invalid_onion_version', (b) => Uint8Array.from([1, ...b.subarray(1)]), 'INVALID_ONION_VERSION'],
    ['invalid_onion_hmac', (b) => Uint8Array.from(b, (x, i) => (i === 500 ? x ^ 1 : x)), 'INVALID_ONION_HMAC'],
    ['invalid_onion_key', (b) => Uint8Array.from(b, (x, i) => (i >= 2 && i < 34 ? 0xff : x)), 'INVALID_ONION_KEY'],
    ['invalid_onion_key', (b) => b.subarray(0, 1000), 'INVALID_ONION_KEY']
  ]
  for (const [i, [reason, mangle, code]] of cases.entries()) {
    const p = part(inv, { htlcId: BigInt(i), amountMsat: AMOUNT })
    p.htlc.onionBlob = mangle(p.htlc.onionBlob)
    const d = decide(p)
    assert.deepEqual([d.decision, d.reason], [{ action: 'fail', failureCode: code }, reason])
  }
})

test('an unparsable final payload is invalid_onion_payload with the offending type and offset', () => {
  const inv = invoice(AMOUNT)
  // An unknown even type (BOLT 1: it is not ok to be even) after amt_to_forward, cltv and payment_data.
  const p = part(inv, { htlcId: 1n, amountMsat: AMOUNT, extraRecords: [{ type: 100n, value: Uint8Array.of(1) }] })
  const d = decide(p)
  assert.equal(d.reason, 'invalid_onion_payload')
  const { hopIndex, message } = atOrigin(p, d.decision)
  assert.equal(hopIndex, 1)
  assert.equal(message.code, FailureCode.INVALID_ONION_PAYLOAD)
  assert.equal('type' in message && message.type, 100n)
  // amt_to_forward (2+4 bytes), outgoing_cltv_value (2+3), payment_data (2+36), type 100's value after its 2-byte header
  assert.equal('offset' in message && message.offset, 6 + 5 + 38 + 2)
})

test('an onion that goes beyond the virtual node is unknown_next_peer from the virtual node', () => {
  const inv = invoice(AMOUNT)
  const p = part(inv, { htlcId: 1n, amountMsat: AMOUNT, beyond: true })
  const d = decide(p)
  assert.equal(d.reason, 'not_final')
  assert.deepEqual(atOrigin(p, d.decision), { hopIndex: 1, message: { code: FailureCode.UNKNOWN_NEXT_PEER } })
})

test('the received HTLC below the onion values: final_incorrect_htlc_amount and final_incorrect_cltv_expiry', () => {
  const inv = invoice(AMOUNT)
  const amt = part(inv, { htlcId: 1n, amountMsat: AMOUNT, amtToForward: AMOUNT + 1n })
  assert.deepEqual(atOrigin(amt, decide(amt).decision), {
    hopIndex: 1,
    message: { code: FailureCode.FINAL_INCORRECT_HTLC_AMOUNT, incomingHtlcAmt: AMOUNT }
  })
  const cltv = part(inv, { htlcId: 2n, amountMsat: AMOUNT, outgoingCltvValue: FINAL_CLTV + 1 })
  assert.deepEqual(atOrigin(cltv, decide(cltv).decision), {
    hopIndex: 1,
    message: { code: FailureCode.FINAL_INCORRECT_CLTV_EXPIRY, cltvExpiry: FINAL_CLTV }
  })
})

test('invoice-level failures are incorrect_or_unknown_payment_details with the HTLC amount and our height', () => {
  const inv = invoice(AMOUNT)
  const other = invoice(AMOUNT)
  const expired = invoice(AMOUNT, { expirySeconds: 60 })
  const later = new FakeClock()
  later.ms = T0 + 61_000
  const cases: [string, ReturnType<typeof part>, FakeClock?][] = [
    ['payment_secret_missing', part(inv, { htlcId: 1n, amountMsat: AMOUNT, paymentSecret: null })],
    ['hash_mismatch', part(inv, { htlcId: 2n, amountMsat: AMOUNT, paymentSecret: other.paymentAddr })],
    ['invoice_expired', part(expired, { htlcId: 3n, amountMsat: AMOUNT }), later],
    ['total_mismatch', part(inv, { htlcId: 4n, amountMsat: AMOUNT, totalMsat: AMOUNT + 1n })],
    // 19 blocks (lnd's FinalCltvRejectDelta) must remain: one too few.
    ['expiry_too_soon', part(inv, { htlcId: 5n, amountMsat: AMOUNT, htlc: { currentHeight: FINAL_CLTV - 18 } })],
    // lnd would auto-fail it within the hold margin (3 blocks).
    ['hold_limit', part(inv, { htlcId: 6n, amountMsat: AMOUNT, htlc: { autoFailHeight: HEIGHT + 3 } })]
  ]
  for (const [reason, p, clock] of cases) {
    const d = decide(p, {}, clock)
    assert.equal(d.reason, reason)
    assert.deepEqual(atOrigin(p, d.decision), {
      hopIndex: 1,
      message: { code: FailureCode.INCORRECT_OR_UNKNOWN_PAYMENT_DETAILS, htlcMsat: AMOUNT, height: p.htlc.currentHeight }
    })
  }
})

test('a final payload with short_channel_id is invalid_onion_payload naming type 6', () => {
  const inv = invoice(AMOUNT)
  const p = part(inv, { htlcId: 1n, amountMsat: AMOUNT, extraRecords: [{ type: 6n, value: new Uint8Array(8) }] })
  assert.deepEqual(atOrigin(p, decide(p).decision).message, { code: FailureCode.INVALID_ONION_PAYLOAD, type: 6n, offset: 0 })
})

test('malformed events are a MuxError, not a crash', () => {
  const mux = machine(new FakeClock())
  const p = part(invoice(AMOUNT), { htlcId: 1n, amountMsat: AMOUNT })
  const bad: Record<string, unknown>[] = [
    { circuit: { ...p.htlc.circuit, node: new Uint8Array(32) } },
    { circuit: { ...p.htlc.circuit, htlcId: -1n } },
    { outgoingAmountMsat: 5 },
    { paymentHash: new Uint8Array(31) },
    { outgoingExpiry: 1.5 },
    { onionBlob: 'x' }
  ]
  for (const fields of bad) {
    assert.throws(() => mux.htlc({ ...p.htlc, ...fields } as never), (err: unknown) => err instanceof MuxError && err.code === 'bad_input')
  }
  assert.throws(() => mux.htlc(null as never), MuxError)
  assert.throws(() => mux.blockHeight(-1), MuxError)
})

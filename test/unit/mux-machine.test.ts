// The HTLC-set rules of the virtual node: multi-part sets across nodes, overpayment, per-set timers,
// write-ahead settlement, replays, cancel, autoSettle, final status and bounded holding.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { FailureCode } from '../../src/ln/failure.ts'
import { htlcSetId } from '../../src/ln/setid.ts'
import { MuxError, type MuxOutput } from '../../src/mux/types.ts'
import { FakeClock, HEIGHT, T0, atOrigin, decisions, invoice, machine, only, part } from './mux-fixture.ts'

const AMOUNT = 90_000_000n
const isMuxError = (code: string) => (err: unknown) => err instanceof MuxError && err.code === code

/** Feeds every persist output back as durable, as a driver with a working store does. */
function persistAll(mux: ReturnType<typeof machine>, outputs: MuxOutput[]): MuxOutput[] {
  const out: MuxOutput[] = []
  for (const o of outputs) {
    out.push(o)
    if (o.kind === 'persist') out.push(...persistAll(mux, mux.recordPersisted(o.record)))
  }
  return out
}

test('parts through two nodes form one set; accepted at the invoice amount with the lnmux set id', () => {
  const mux = machine(new FakeClock())
  const inv = invoice(AMOUNT)
  const a = part(inv, { node: 0, htlcId: 1n, amountMsat: 30_000_000n })
  const b = part(inv, { node: 1, chanId: 9n, htlcId: 4n, amountMsat: 60_000_000n })
  assert.deepEqual(mux.htlc(a.htlc), [])
  assert.equal(mux.status(inv.paymentHash), 'open')
  assert.throws(() => mux.settle(inv.paymentHash, new Uint8Array(32)), isMuxError('not_accepted'))
  const accepted = only(mux.htlc(b.htlc), 'accepted')
  assert.deepEqual(accepted.setId, htlcSetId([b.htlc.circuit, a.htlc.circuit]))
  assert.equal(accepted.amountMsat, AMOUNT)
  assert.deepEqual(new Set(accepted.htlcs.map((h) => h.amountMsat)), new Set([30_000_000n, 60_000_000n]))
  assert.equal(mux.status(inv.paymentHash), 'accepted')
  assert.deepEqual(mux.acceptedSets(), [accepted])

  assert.throws(() => mux.settle(inv.paymentHash, new Uint8Array(32)), isMuxError('set_id_mismatch'))
  assert.throws(() => mux.settle(invoice(AMOUNT).paymentHash, accepted.setId), isMuxError('invoice_not_found'))
  const out = persistAll(mux, mux.settle(inv.paymentHash, accepted.setId))
  const settles = decisions(out)
  assert.deepEqual(
    settles.map((d) => d.circuit),
    [a.htlc.circuit, b.htlc.circuit]
  )
  for (const d of settles) assert.deepEqual(d.decision, { action: 'settle', preimage: inv.preimage })
  assert.equal(mux.status(inv.paymentHash), 'settle_requested')
  // SettleInvoice is idempotent for the same set.
  assert.deepEqual(mux.settle(inv.paymentHash, accepted.setId), [])
})

test('a part that would overshoot the invoice amount is failed alone; the set still completes', () => {
  const mux = machine(new FakeClock())
  const inv = invoice(AMOUNT)
  assert.deepEqual(mux.htlc(part(inv, { htlcId: 1n, amountMsat: 50_000_000n }).htlc), [])
  const over = part(inv, { node: 1, htlcId: 2n, amountMsat: 50_000_000n })
  const failed = only(mux.htlc(over.htlc), 'decision')
  assert.equal(failed.reason, 'overpayment')
  assert.equal(atOrigin(over, failed.decision).message.code, FailureCode.INCORRECT_OR_UNKNOWN_PAYMENT_DETAILS)
  only(mux.htlc(part(inv, { node: 1, htlcId: 3n, amountMsat: 40_000_000n }).htlc), 'accepted')
  // A further part while the complete set waits for the application is failed too.
  assert.equal(only(mux.htlc(part(inv, { htlcId: 4n, amountMsat: 1n }).htlc), 'decision').reason, 'overpayment')
  // A single part larger than the invoice never opens a set.
  const fresh = invoice(AMOUNT)
  assert.equal(only(mux.htlc(part(fresh, { htlcId: 5n, amountMsat: AMOUNT + 1n }).htlc), 'decision').reason, 'overpayment')
  assert.equal(mux.status(fresh.paymentHash), undefined)
})

test('mpp timeout: one timer per set from its first part fails the incomplete set with mpp_timeout', () => {
  const clock = new FakeClock()
  const mux = machine(clock)
  const inv = invoice(AMOUNT)
  const a = part(inv, { htlcId: 1n, amountMsat: 10_000_000n })
  const b = part(inv, { node: 1, htlcId: 2n, amountMsat: 10_000_000n })
  mux.htlc(a.htlc)
  clock.ms += 50_000
  mux.htlc(b.htlc) // does not extend the set's timer
  assert.equal(mux.nextDeadline(), T0 + 60_000)
  clock.ms = T0 + 59_999
  assert.deepEqual(mux.tick(), [])
  clock.ms = T0 + 60_000
  const failed = decisions(mux.tick())
  assert.equal(failed.length, 2)
  for (const [d, p] of [[failed[0]!, a], [failed[1]!, b]] as const) {
    assert.equal(d.reason, 'mpp_timeout')
    assert.deepEqual(atOrigin(p, d.decision), { hopIndex: 1, message: { code: FailureCode.MPP_TIMEOUT } })
  }
  assert.equal(mux.nextDeadline(), undefined)
  // The payer may try again: a new set, with a new timer.
  mux.htlc(part(inv, { htlcId: 3n, amountMsat: 10_000_000n }).htlc)
  assert.equal(mux.nextDeadline(), T0 + 120_000)
})

test('the mpp timer never runs past the invoice expiry', () => {
  const clock = new FakeClock()
  const mux = machine(clock)
  const inv = invoice(AMOUNT, { expirySeconds: 30 })
  mux.htlc(part(inv, { htlcId: 1n, amountMsat: 1n }).htlc)
  assert.equal(mux.nextDeadline(), T0 + 30_000)
})

test('accept timeout fails an accepted set the application never settles', () => {
  const clock = new FakeClock()
  const mux = machine(clock, { acceptTimeoutMs: 5_000 })
  const inv = invoice(AMOUNT)
  clock.ms += 1_000
  const p = part(inv, { htlcId: 1n, amountMsat: AMOUNT })
  const accepted = only(mux.htlc(p.htlc), 'accepted')
  assert.equal(mux.nextDeadline(), T0 + 6_000)
  clock.ms = T0 + 6_000
  const failed = only(mux.tick(), 'decision')
  assert.equal(failed.reason, 'accept_timeout')
  assert.deepEqual(atOrigin(p, failed.decision).message, {
    code: FailureCode.INCORRECT_OR_UNKNOWN_PAYMENT_DETAILS,
    htlcMsat: AMOUNT,
    height: HEIGHT
  })
  assert.throws(() => mux.settle(inv.paymentHash, accepted.setId), isMuxError('not_accepted'))
})

test('write-ahead: no preimage leaves before the settle record is confirmed; a failed write withdraws the request', () => {
  const clock = new FakeClock()
  const mux = machine(clock, { acceptTimeoutMs: 5_000 })
  const inv = invoice(AMOUNT)
  const p = part(inv, { htlcId: 1n, amountMsat: AMOUNT })
  const { setId } = only(mux.htlc(p.htlc), 'accepted')
  const first = mux.settle(inv.paymentHash, setId)
  const { record } = only(first, 'persist')
  assert.equal(first.length, 1)
  assert.deepEqual(record.type === 'settle_requested' && record.htlcs, [{ circuit: p.htlc.circuit, amountMsat: AMOUNT }])
  // While the write is in flight: timers do not fail the set, a re-offer gets no decision yet.
  clock.ms += 10_000
  assert.deepEqual(mux.tick(), [])
  assert.equal(mux.nextDeadline(), undefined)
  assert.deepEqual(mux.htlc(p.htlc), [])
  assert.throws(() => mux.cancel(inv.paymentHash), isMuxError('invoice_settled'))
  // The store failed: nothing was revealed, the set is accepted again and its deadline has passed.
  assert.deepEqual(mux.recordFailed(record), [])
  assert.throws(() => mux.recordPersisted(record), isMuxError('bad_record'))
  assert.equal(mux.status(inv.paymentHash), 'accepted')
  const retry = only(mux.settle(inv.paymentHash, setId), 'persist')
  const settled = only(mux.recordPersisted(retry.record), 'decision')
  assert.deepEqual(settled.decision, { action: 'settle', preimage: inv.preimage })
})

test('replays: parts of the settled set settle again with the same preimage, any other part fails', () => {
  const clock = new FakeClock()
  const mux = machine(clock)
  const inv = invoice(AMOUNT)
  const a = part(inv, { htlcId: 1n, amountMsat: 45_000_000n })
  const b = part(inv, { node: 1, htlcId: 1n, amountMsat: 45_000_000n })
  mux.htlc(a.htlc)
  const { setId } = only(mux.htlc(b.htlc), 'accepted')
  persistAll(mux, mux.settle(inv.paymentHash, setId))
  // Much later (the invoice has expired): a reconnecting edge re-offers a settled part.
  clock.ms += 7_200_000
  assert.deepEqual(only(mux.htlc(b.htlc), 'decision').decision, { action: 'settle', preimage: inv.preimage })
  const stranger = part(inv, { htlcId: 2n, amountMsat: 45_000_000n })
  clock.ms = T0
  const failed = only(mux.htlc(stranger.htlc), 'decision')
  assert.equal(failed.reason, 'invoice_settled')
  assert.equal(atOrigin(stranger, failed.decision).message.code, FailureCode.INCORRECT_OR_UNKNOWN_PAYMENT_DETAILS)
})

test('a re-offered circuit gets the decision it already got', () => {
  const clock = new FakeClock()
  const mux = machine(clock)
  const inv = invoice(AMOUNT)
  const p = part(inv, { htlcId: 1n, amountMsat: 1_000n })
  mux.htlc(p.htlc)
  clock.ms += 60_000
  const first = only(mux.tick(), 'decision')
  // Re-offered after the timeout: the same mpp_timeout, not a new set.
  assert.deepEqual(mux.htlc(p.htlc), [first])
  assert.equal(mux.nextDeadline(), undefined)
})

test('cancel fails held parts, is recorded, and a cancelled invoice can never be paid', () => {
  const mux = machine(new FakeClock())
  const inv = invoice(AMOUNT)
  const a = part(inv, { htlcId: 1n, amountMsat: 10_000_000n })
  mux.htlc(a.htlc)
  const out = mux.cancel(inv.paymentHash)
  const failed = only(out, 'decision')
  assert.equal(failed.reason, 'invoice_cancelled')
  assert.equal(atOrigin(a, failed.decision).message.code, FailureCode.INCORRECT_OR_UNKNOWN_PAYMENT_DETAILS)
  const { record } = only(out, 'persist')
  assert.deepEqual(record, { type: 'cancelled', term: 0, hash: inv.paymentHash, time: T0 })
  assert.deepEqual(mux.recordPersisted(record), [])
  assert.deepEqual(mux.cancel(inv.paymentHash), [])
  assert.equal(mux.status(inv.paymentHash), 'cancelled')
  const late = part(inv, { node: 1, htlcId: 2n, amountMsat: AMOUNT })
  assert.equal(only(mux.htlc(late.htlc), 'decision').reason, 'invoice_cancelled')
  assert.throws(() => mux.settle(inv.paymentHash, new Uint8Array(32)), isMuxError('invoice_cancelled'))
  // An invoice never seen can be cancelled too (stateless: it may be paid later).
  const unseen = invoice(AMOUNT)
  assert.equal(only(mux.cancel(unseen.paymentHash), 'persist').record.type, 'cancelled')
  assert.equal(only(mux.htlc(part(unseen, { htlcId: 3n, amountMsat: AMOUNT }).htlc), 'decision').reason, 'invoice_cancelled')
})

test('autoSettle requests settlement as soon as the set is accepted', () => {
  const mux = machine(new FakeClock(), { autoSettle: true })
  const inv = invoice(AMOUNT)
  const out = mux.htlc(part(inv, { htlcId: 1n, amountMsat: AMOUNT }).htlc)
  const accepted = only(out, 'accepted')
  const { record } = only(out, 'persist')
  assert.deepEqual(record.type === 'settle_requested' && record.setId, accepted.setId)
  assert.throws(() => mux.settle(inv.paymentHash, accepted.setId), isMuxError('auto_settle'))
  assert.deepEqual(only(mux.recordPersisted(record), 'decision').decision, { action: 'settle', preimage: inv.preimage })
})

test('final status: SETTLED once lnd reports every HTLC settled, FAILED if one was lost', () => {
  for (const lost of [false, true]) {
    const mux = machine(new FakeClock())
    const inv = invoice(AMOUNT)
    const a = part(inv, { htlcId: 1n, amountMsat: 45_000_000n })
    const b = part(inv, { node: 1, htlcId: 1n, amountMsat: 45_000_000n })
    mux.htlc(a.htlc)
    const { setId } = only(mux.htlc(b.htlc), 'accepted')
    persistAll(mux, mux.settle(inv.paymentHash, setId))
    assert.equal(mux.pendingResolutions().length, 2)
    assert.deepEqual(mux.htlcResolved(a.htlc.circuit, true), [])
    assert.deepEqual(mux.htlcResolved({ ...a.htlc.circuit, htlcId: 99n }, true), []) // not ours
    const { record } = only(mux.htlcResolved(b.htlc.circuit, !lost), 'persist')
    const status = lost ? 'failed' : 'settled'
    assert.deepEqual(record, { type: 'final', hash: inv.paymentHash, setId, status, time: T0 })
    assert.equal(mux.status(inv.paymentHash), 'settle_requested')
    assert.deepEqual(mux.recordPersisted(record), [{ kind: 'final', hash: inv.paymentHash, setId, status }])
    assert.equal(mux.status(inv.paymentHash), status)
    assert.deepEqual(mux.htlcResolved(b.htlc.circuit, true), [])
  }
})

test('bounded holding: parts are released before lnd auto-fails them', () => {
  const mux = machine(new FakeClock())
  const inv = invoice(AMOUNT)
  const early = part(inv, { htlcId: 1n, amountMsat: 10_000_000n, htlc: { autoFailHeight: HEIGHT + 10 } })
  const later = part(inv, { node: 1, htlcId: 1n, amountMsat: 10_000_000n, htlc: { autoFailHeight: HEIGHT + 20 } })
  mux.htlc(early.htlc)
  mux.htlc(later.htlc)
  assert.deepEqual(mux.blockHeight(HEIGHT + 6), [])
  const first = only(mux.blockHeight(HEIGHT + 7), 'decision')
  assert.deepEqual([first.circuit, first.reason], [early.htlc.circuit, 'hold_limit'])
  assert.deepEqual(atOrigin(early, first.decision).message, { code: FailureCode.MPP_TIMEOUT })
  assert.equal(mux.status(inv.paymentHash), 'open')

  // An accepted set is failed whole when any of its parts reaches the limit.
  const mux2 = machine(new FakeClock())
  const inv2 = invoice(AMOUNT)
  const x = part(inv2, { htlcId: 5n, amountMsat: 45_000_000n, htlc: { autoFailHeight: HEIGHT + 30 } })
  const y = part(inv2, { node: 1, htlcId: 5n, amountMsat: 45_000_000n, htlc: { autoFailHeight: HEIGHT + 40 } })
  mux2.htlc(x.htlc)
  only(mux2.htlc(y.htlc), 'accepted')
  const [dx, dy] = decisions(mux2.blockHeight(HEIGHT + 27))
  assert.deepEqual([dx?.circuit, dy?.circuit, dx?.reason, dy?.reason], [x.htlc.circuit, y.htlc.circuit, 'hold_limit', 'hold_limit'])
  assert.equal(atOrigin(x, dx!.decision).message.code, FailureCode.INCORRECT_OR_UNKNOWN_PAYMENT_DETAILS)
  assert.equal(atOrigin(y, dy!.decision).message.code, FailureCode.INCORRECT_OR_UNKNOWN_PAYMENT_DETAILS)
  assert.equal(mux2.status(inv2.paymentHash), 'open')
})

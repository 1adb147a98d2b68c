// The single-agent virtual node across restarts, on simulated LND over real gRPC (issue 5): the
// agent stops with HTLCs held, with a settle record whose HTLCs lnd has not resolved, after a cancel;
// an lnd node restarts and replays a settled HTLC; an lnd node is down while invoices are made and paid.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import * as grpc from '@grpc/grpc-js'
import { decodeInvoice } from '../../src/ln/bolt11.ts'
import { FailureCode } from '../../src/ln/failure.ts'
import { AgentHarness, SAT, sendPart } from './agent-helpers.ts'

const UNKNOWN = FailureCode.INCORRECT_OR_UNKNOWN_PAYMENT_DETAILS

test('a cancelled invoice cannot be paid, neither before nor after an agent restart', async (t) => {
  const h = await AgentHarness.start(t)
  const alice = h.node('alice')
  const amountMsat = 100_000n * SAT
  const failsAtVirtualNode = async (pr: string): Promise<void> => {
    const outcome = await sendPart(h.carol, pr, { via: alice, amountMsat })
    assert.equal(outcome.status, 'failed')
    if (outcome.status === 'failed') assert.deepEqual([outcome.hopIndex, outcome.failure.code], [1, UNKNOWN])
  }

  // Cancelled before any HTLC arrived (lnmux forgets such a cancel; highwire records it).
  const early = await h.addInvoice(amountMsat)
  await h.call('CancelInvoice', { hash: early.hash })
  await failsAtVirtualNode(early.payment_request)

  // Cancelled while its set is accepted: the held parts fail at once.
  const late = await h.addInvoice(amountMsat)
  const accepted = h.subscribeAccepted()
  const held = sendPart(h.carol, late.payment_request, { via: alice, amountMsat })
  const set = await accepted.next()
  await h.call('CancelInvoice', { hash: set.hash, set_id: set.set_id })
  const outcome = await held
  assert.equal(outcome.status, 'failed')
  if (outcome.status === 'failed') assert.deepEqual([outcome.hopIndex, outcome.failure.code], [1, UNKNOWN])
  await assert.rejects(h.call('SettleInvoice', { hash: set.hash, set_id: set.set_id }), (err: grpc.ServiceError) => err.code === grpc.status.FAILED_PRECONDITION)

  await h.restartAgent()
  await failsAtVirtualNode(early.payment_request)
  await failsAtVirtualNode(late.payment_request)
  // Cancelling again is idempotent; nothing was settled.
  await h.call('CancelInvoice', { hash: early.hash })
  assert.deepEqual((await h.call('ListInvoices', { sequence_start: '1', max_invoices_count: '10' })).invoice, [])
})

test('the agent stops while a set is accepted: lnd keeps the parts, the restarted agent accepts the same set and settles it', async (t) => {
  const h = await AgentHarness.start(t)
  const created = await h.addInvoice(1_500_000n * SAT)
  let accepted = h.subscribeAccepted()
  const payment = h.pay(created.payment_request, [
    { amountMsat: 800_000n * SAT, via: 'alice' },
    { amountMsat: 700_000n * SAT, via: 'bob' }
  ])
  const before = await accepted.next()

  await h.restartAgent()
  // Nothing was recorded for an accepted set: the restarted agent collects it again from lnd's
  // re-offered HTLCs, and its id (a function of the circuits) is the same.
  accepted = h.subscribeAccepted()
  const after = await accepted.next()
  assert.ok(after.hash.equals(before.hash))
  assert.ok(after.set_id.equals(before.set_id))
  await h.call('SettleInvoice', { hash: after.hash, set_id: after.set_id })
  const result = await payment
  assert.deepEqual(result.parts.map((p) => p.status), ['settled', 'settled'])
  assert.ok(Buffer.from(result.preimage!).equals(created.preimage))
  assert.equal((await h.call('WaitForInvoiceFinalStatus', { hash: created.hash })).invoice_status, 'SETTLED')
})

test('the agent stops after the settle record, before lnd resolved the parts: after restart every part settles', async (t) => {
  const h = await AgentHarness.start(t)
  const [alice, bob] = [h.node('alice'), h.node('bob')]
  const created = await h.addInvoice(1_500_000n * SAT)
  const accepted = h.subscribeAccepted()
  const payment = h.pay(created.payment_request, [
    { amountMsat: 800_000n * SAT, via: 'alice' },
    { amountMsat: 700_000n * SAT, via: 'bob' }
  ])
  const set = await accepted.next()

  // Both lnd nodes are slow to apply resolutions: the agent records the settle request and sends the
  // preimages, then stops before either node applied them; the streams end and the sends are lost.
  for (const server of h.servers) server.delayMs = 1000
  const from = h.log.lines.length
  await h.call('SettleInvoice', { hash: set.hash, set_id: set.set_id })
  await h.waitForLine(/htlc settle node=alice/, from)
  await h.waitForLine(/htlc settle node=bob/, from)
  await h.stopAgent()
  for (const server of h.servers) server.delayMs = 0
  assert.equal(alice.switch.heldKeys().length, 1)
  assert.equal(bob.switch.heldKeys().length, 1)

  // While the agent is down, Bob's part settles anyway (say an operator's tool, or a resolution lnd
  // applied just before the stream broke): its final event is missed, LookupHtlcResolution tells.
  bob.switch.resolve({ key: bob.switch.heldKeys()[0]!, action: 'SETTLE', preimage: created.preimage })

  const restart = h.log.lines.length
  await h.startAgent()
  // The clean stop wrote the mux snapshot (src/audit/mux-store.ts): the settle record comes back
  // from it. It survives: the re-offered part is settled again with the same preimage, and a
  // repeated SettleInvoice is accepted (idempotent).
  await h.waitForLine(/mux ledger loaded snapshot=loaded invoices=1 records=1 /, restart)
  await h.call('SettleInvoice', { hash: set.hash, set_id: set.set_id })
  const result = await payment
  assert.deepEqual(result.parts.map((p) => p.status), ['settled', 'settled'])
  assert.ok(Buffer.from(result.preimage!).equals(created.preimage))
  assert.equal((await h.call('WaitForInvoiceFinalStatus', { hash: created.hash })).invoice_status, 'SETTLED')
  const [listed] = (await h.call('ListInvoices', { sequence_start: '1', max_invoices_count: '10' })).invoice
  assert.equal(listed.status, 'SETTLED')
  assert.ok(listed.hash.equals(created.hash))
  assert.ok(listed.preimage.equals(created.preimage))
  assert.equal(listed.sequence_number, '1')
  assert.ok(Number(listed.finalized_at) >= Number(listed.settle_requested_at))
})

test('lnd restarts before applying a settle: the replayed HTLC of the settled set is settled again', async (t) => {
  const h = await AgentHarness.start(t)
  const server = h.server('alice')
  const amountMsat = 100_000n * SAT
  const created = await h.addInvoice(amountMsat)
  const accepted = h.subscribeAccepted()
  const payment = h.pay(created.payment_request, [{ amountMsat, via: 'alice' }])
  const set = await accepted.next()

  server.delayMs = 1000
  const from = h.log.lines.length
  await h.call('SettleInvoice', { hash: set.hash, set_id: set.set_id })
  await h.waitForLine(/htlc settle node=alice/, from)
  server.delayMs = 0
  await server.restart()
  // The link replays the add; the agent's interceptor reconnects and is offered it again.
  await h.waitForLine(/lnd stream open node=alice stream=HtlcInterceptor attempt=[1-9]/, from)
  const result = await payment
  assert.deepEqual(result.parts.map((p) => p.status), ['settled'])
  assert.ok(Buffer.from(result.preimage!).equals(created.preimage))
  assert.equal((await h.call('WaitForInvoiceFinalStatus', { hash: created.hash })).invoice_status, 'SETTLED')
})

test('Alice\'s lnd is down: fresh invoices hint through Bob, and older invoices are paid through Bob', async (t) => {
  const h = await AgentHarness.start(t)
  const [alice, bob] = [h.node('alice'), h.node('bob')]
  const amountMsat = 100_000n * SAT
  const before = await h.addInvoice(amountMsat)
  assert.equal(decodeInvoice(before.payment_request).routeHints.length, 2)

  h.network.stop(alice)
  const fresh = await h.addInvoice(amountMsat)
  const hints = decodeInvoice(fresh.payment_request).routeHints.map((route) => Buffer.from(route[0]!.pubkey).toString('hex'))
  assert.deepEqual(hints, [bob.pubkeyHex], 'no hint through a node the agent cannot reach')

  const accepted = h.subscribeAccepted()
  for (const created of [fresh, before]) {
    const payment = h.pay(created.payment_request, [{ amountMsat, via: 'bob' }])
    const set = await accepted.next()
    assert.ok(set.hash.equals(created.hash))
    await h.call('SettleInvoice', { hash: set.hash, set_id: set.set_id })
    const result = await payment
    assert.ok(Buffer.from(result.preimage!).equals(created.preimage))
    assert.equal((await h.call('WaitForInvoiceFinalStatus', { hash: created.hash })).invoice_status, 'SETTLED')
  }
})

// The single-agent virtual node end to end on the simulator (issue 5): simulated LND nodes over real
// gRPC, an Agent holding them, and an lnmux client over the real API. Invoices and their route hints,
// payments through each node and across both, and every failure the payer must read as the virtual
// node's own BOLT 4 answer.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { inspect } from 'node:util'
import * as grpc from '@grpc/grpc-js'
import { decodeInvoice } from '../../src/ln/bolt11.ts'
import { FailureCode } from '../../src/ln/failure.ts'
import { virtualScid } from '../../src/ln/scid.ts'
import { htlcSetId } from '../../src/ln/setid.ts'
import { secp256k1 } from '../../src/ln/secp256k1.ts'
import { AgentHarness, SAT, sendPart, type PartOutcome } from './agent-helpers.ts'

const sha256 = (b: Uint8Array): Buffer => createHash('sha256').update(b).digest()

/** The part failed at the virtual node (hop 1 of Carol → cluster node → virtual node) with `code`. */
function assertVirtualNodeFailure(outcome: PartOutcome, code: number): void {
  assert.equal(outcome.status, 'failed', inspect(outcome))
  if (outcome.status !== 'failed') return
  assert.equal(outcome.hopIndex, 1, 'the virtual node, not the cluster node, answers')
  assert.equal(outcome.failure.code, code)
}

test('AddInvoice: a stateless invoice of the identity key, hints through the nodes with the most inbound capacity', async (t) => {
  const h = await AgentHarness.start(t, {
    nodes: [
      { name: 'alice', channelMsat: 600_000n * SAT },
      { name: 'bob', channelMsat: 2_000_000n * SAT },
      { name: 'dave', channelMsat: 1_000_000n * SAT }
    ],
    mux: { maxRouteHints: 2 }
  })
  const identity = secp256k1.publicKey(h.config.mux.identityKey!)
  const info = await h.call('GetInfo', {})
  assert.ok(Buffer.from(info.pub_key).equals(identity))
  assert.equal(info.network, 'regtest')
  assert.deepEqual(info.nodes.map((n: { pub_key: Buffer }) => n.pub_key.toString('hex')).sort(), h.nodes.map((n) => n.pubkeyHex).sort())

  for (const amountMsat of [100_000n * SAT, 1_500_000n * SAT]) {
    const created = await h.addInvoice(amountMsat)
    assert.ok(sha256(created.preimage).equals(created.hash))
    const invoice = decodeInvoice(created.payment_request)
    assert.ok(Buffer.from(invoice.payee).equals(identity), 'signed by the identity key')
    assert.equal(invoice.amountMsat, amountMsat)
    assert.ok(Buffer.from(invoice.paymentHash).equals(created.hash))
    assert.equal(invoice.minFinalCltvExpiry, h.config.mux.minFinalCltvExpiry)
    // Bob (2M sat inbound, less his reserve) then Dave (1M); Alice (600k) is left out by maxRouteHints.
    const hints = invoice.routeHints.map((route) => {
      assert.equal(route.length, 1)
      return route[0]!
    })
    assert.deepEqual(hints.map((hint) => h.network.nodeByPubkey(hint.pubkey)?.name), ['bob', 'dave'])
    for (const hint of hints) {
      assert.equal(hint.shortChannelId, virtualScid(hint.pubkey))
      assert.equal(hint.feeBaseMsat, 1000)
      assert.equal(hint.feeProportionalMillionths, 100)
      assert.equal(hint.cltvExpiryDelta, 40)
    }
  }
  // Nothing is stored for an invoice: ListInvoices only knows settlements.
  assert.deepEqual((await h.call('ListInvoices', { sequence_start: '1', max_invoices_count: '10' })).invoice, [])
})

test('a payment through Alice, one through Bob, and one split across both settle with the API preimage', async (t) => {
  const h = await AgentHarness.start(t)
  const [alice, bob] = h.nodes as [typeof h.nodes[0], typeof h.nodes[0]]
  const accepted = h.subscribeAccepted()
  const amountMsat = 100_000n * SAT

  for (const via of [alice, bob]) {
    const created = await h.addInvoice(amountMsat)
    const payment = h.pay(created.payment_request, [{ amountMsat, via: via.name }])
    const set = await accepted.next()
    assert.ok(set.hash.equals(created.hash))
    const [held] = via.switch.heldKeys()
    assert.ok(set.set_id.equals(htlcSetId([{ node: via.pubkey, ...held! }])), 'set id over the one HTLC held by ' + via.name)
    await h.call('SettleInvoice', { hash: set.hash, set_id: set.set_id })
    const result = await payment
    assert.deepEqual(result.parts.map((p) => p.status), ['settled'])
    assert.ok(Buffer.from(result.preimage!).equals(created.preimage))
    assert.equal((await h.call('WaitForInvoiceFinalStatus', { hash: created.hash })).invoice_status, 'SETTLED')
  }

  // 1.5M sat: more than either channel, so one part through each node.
  const total = 1_500_000n * SAT
  const created = await h.addInvoice(total)
  const payment = h.pay(created.payment_request, [
    { amountMsat: 800_000n * SAT, via: 'alice' },
    { amountMsat: 700_000n * SAT, via: 'bob' }
  ])
  const set = await accepted.next()
  const held = [alice, bob].flatMap((node) => node.switch.heldKeys().map((key) => ({ node: node.pubkey, ...key })))
  assert.equal(held.length, 2)
  assert.ok(set.set_id.equals(htlcSetId(held)), 'one set over both nodes\' HTLCs')
  await h.call('SettleInvoice', { hash: set.hash, set_id: set.set_id })
  // Idempotent, as in lnmux.
  await h.call('SettleInvoice', { hash: set.hash, set_id: set.set_id })
  const result = await payment
  assert.deepEqual(result.parts.map((p) => p.status), ['settled', 'settled'])
  assert.ok(Buffer.from(result.preimage!).equals(created.preimage))
  assert.equal((await h.call('WaitForInvoiceFinalStatus', { hash: created.hash })).invoice_status, 'SETTLED')
  assert.equal(accepted.pending, 0, 'each set was accepted once')

  const listed = await h.call('ListInvoices', { sequence_start: '1', max_invoices_count: '10' })
  assert.deepEqual(
    listed.invoice.map((i: any) => [i.sequence_number, i.status, i.amount_msat]),
    [['1', 'SETTLED', String(amountMsat)], ['2', 'SETTLED', String(amountMsat)], ['3', 'SETTLED', String(total)]]
  )
  assert.ok(listed.invoice[2].hash.equals(created.hash))
  assert.ok(listed.invoice[2].preimage.equals(created.preimage))
  const page = await h.call('ListInvoices', { sequence_start: '2', max_invoices_count: '1' })
  assert.deepEqual(page.invoice.map((i: any) => i.sequence_number), ['2'])
  assert.equal(page.first_sequence_number, '2')
  assert.equal(page.last_sequence_number, '2')
})

test('each bad part reaches Carol as the virtual node\'s BOLT 4 failure', async (t) => {
  const h = await AgentHarness.start(t)
  const [alice, bob] = h.nodes as [typeof h.nodes[0], typeof h.nodes[0]]
  const amountMsat = 200_000n * SAT
  const created = await h.addInvoice(amountMsat)
  const pr = created.payment_request
  const unknown = FailureCode.INCORRECT_OR_UNKNOWN_PAYMENT_DETAILS

  await t.test('MPP total other than the invoice amount', async () => {
    const outcome = await sendPart(h.carol, pr, { via: alice, amountMsat: amountMsat - 1n, totalMsat: amountMsat - 1n })
    assertVirtualNodeFailure(outcome, unknown)
    // BOLT 4: the HTLC amount the virtual node received and its best height.
    if (outcome.status === 'failed') assert.deepEqual(outcome.failure, { code: unknown, htlcMsat: amountMsat - 1n, height: h.network.height })
  })
  await t.test('amt_to_forward above the amount the virtual channel carried', async () => {
    const outcome = await sendPart(h.carol, pr, { via: alice, amountMsat, amtToForward: amountMsat + 1n })
    assertVirtualNodeFailure(outcome, FailureCode.FINAL_INCORRECT_HTLC_AMOUNT)
  })
  await t.test('a payment hash the payment address does not derive', async () => {
    assertVirtualNodeFailure(await sendPart(h.carol, pr, { via: bob, amountMsat, paymentHash: randomBytes(32) }), unknown)
  })
  await t.test('cltv too close to the current height', async () => {
    assertVirtualNodeFailure(await sendPart(h.carol, pr, { via: bob, amountMsat, finalCltvDelta: 5 }), unknown)
  })
  await t.test('a part that would overpay the set is failed alone; the set completes', async () => {
    const accepted = h.subscribeAccepted()
    const from = h.log.lines.length
    const first = sendPart(h.carol, pr, { via: alice, amountMsat: 150_000n * SAT })
    await h.waitForLine(/htlc intercepted node=alice/, from)
    assertVirtualNodeFailure(await sendPart(h.carol, pr, { via: bob, amountMsat: 100_000n * SAT }), unknown)
    const rest = sendPart(h.carol, pr, { via: bob, amountMsat: 50_000n * SAT })
    const set = await accepted.next()
    await h.call('SettleInvoice', { hash: set.hash, set_id: set.set_id })
    for (const outcome of [await first, await rest]) {
      assert.equal(outcome.status, 'settled')
      if (outcome.status === 'settled') assert.ok(Buffer.from(outcome.preimage).equals(created.preimage))
    }
  })
  await t.test('a part for the settled invoice outside the settled set', async () => {
    assertVirtualNodeFailure(await sendPart(h.carol, pr, { via: bob, amountMsat }), unknown)
  })
  await t.test('an expired invoice', async () => {
    const short = await h.addInvoice(amountMsat, 60)
    h.clockOffsetMs = 61_000
    assertVirtualNodeFailure(await sendPart(h.carol, short.payment_request, { via: alice, amountMsat }), unknown)
    h.clockOffsetMs = 0
  })
  await t.test('the virtual hop\'s fee below the routing policy: the cluster node answers temporary_channel_failure', async () => {
    const outcome = await sendPart(h.carol, pr, { via: alice, amountMsat, underpayFeeMsat: 1n })
    assert.equal(outcome.status, 'failed')
    if (outcome.status !== 'failed') return
    assert.equal(outcome.hopIndex, 0, 'a forwarding check of the cluster node')
    assert.equal(outcome.failure.code, FailureCode.TEMPORARY_CHANNEL_FAILURE)
  })
})

test('timers: an incomplete set fails with mpp_timeout, an accepted set the application leaves fails after the accept timeout', async (t) => {
  const h = await AgentHarness.start(t, { mux: { mppTimeoutMs: 300, acceptTimeoutMs: 400 } })
  const [alice, bob] = h.nodes as [typeof h.nodes[0], typeof h.nodes[0]]
  const amountMsat = 100_000n * SAT
  const created = await h.addInvoice(amountMsat)

  let start = Date.now()
  const alone = await sendPart(h.carol, created.payment_request, { via: alice, amountMsat: 60_000n * SAT })
  assertVirtualNodeFailure(alone, FailureCode.MPP_TIMEOUT)
  assert.ok(Date.now() - start >= 300, 'not before the mpp timeout')

  // Not cancelled: the invoice can be paid again, and now the set completes but is never settled.
  const accepted = h.subscribeAccepted()
  start = Date.now()
  const parts = [
    sendPart(h.carol, created.payment_request, { via: alice, amountMsat: 60_000n * SAT }),
    sendPart(h.carol, created.payment_request, { via: bob, amountMsat: 40_000n * SAT })
  ]
  const set = await accepted.next()
  assert.ok(set.hash.equals(created.hash))
  for (const outcome of await Promise.all(parts)) assertVirtualNodeFailure(outcome, FailureCode.INCORRECT_OR_UNKNOWN_PAYMENT_DETAILS)
  assert.ok(Date.now() - start >= 400, 'not before the accept timeout')
  // The set is gone: settling it now is refused, as lnmux refuses a set that is no longer accepted.
  await assert.rejects(h.call('SettleInvoice', { hash: set.hash, set_id: set.set_id }), (err: grpc.ServiceError) => err.code === grpc.status.FAILED_PRECONDITION)
})

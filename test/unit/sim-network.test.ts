// The simulator's model without gRPC: the payer's onions through route hints, the switch's
// interception rules, and channel accounting.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { sha256 } from '@noble/hashes/sha2.js'
import { encodeInvoice } from '../../src/ln/bolt11.ts'
import { FailureCode, createFailurePacket, encodeFailureMessage } from '../../src/ln/failure.ts'
import { peelOnion } from '../../src/ln/onion.ts'
import { virtualScid } from '../../src/ln/scid.ts'
import { SimNetwork } from '../../src/sim/network.ts'
import { BLOCK_PADDING, payInvoice } from '../../src/sim/payer.ts'
import type { InterceptedPacket } from '../../src/sim/switch.ts'

const key = (n: number): Uint8Array => new Uint8Array(32).fill(n)
const IDENTITY = key(9)
const HINT_POLICY = { feeBaseMsat: 1000, feeProportionalMillionths: 100, cltvExpiryDelta: 40 }

function cluster () {
  const network = new SimNetwork({ clock: () => 1_700_000_000_000, random: (n) => randomBytes(n) })
  const alice = network.addNode({ name: 'alice', secretKey: key(1) })
  const bob = network.addNode({ name: 'bob', secretKey: key(2) })
  const carol = network.addNode({ name: 'carol', secretKey: key(3) })
  const ca = network.openChannel(carol, alice, { capacityMsat: 10_000_000_000n })
  const cb = network.openChannel(carol, bob, { capacityMsat: 10_000_000_000n })
  return { network, alice, bob, carol, ca, cb }
}

/** A virtual-node invoice with one hint per real node, as highwire issues them. */
function virtualInvoice (hintNodes: Uint8Array[], amountMsat: bigint) {
  const preimage = randomBytes(32)
  const paymentSecret = randomBytes(32)
  const invoice = encodeInvoice({
    network: 'regtest',
    amountMsat,
    timestamp: 1_700_000_000,
    paymentHash: sha256(preimage),
    paymentSecret,
    description: 'sim',
    minFinalCltvExpiry: 40,
    routeHints: hintNodes.map((pubkey) => [{ pubkey, shortChannelId: virtualScid(pubkey), ...HINT_POLICY }]),
    features: [9, 14, 17]
  }, IDENTITY)
  return { invoice, preimage, paymentSecret }
}

test('payer: MPP through two hinted nodes, onions peel with the destination key, settles', async () => {
  const { network, alice, bob, carol, ca, cb } = cluster()
  const { invoice, preimage, paymentSecret } = virtualInvoice([alice.pubkey, bob.pubkey], 300_000n)
  const seen: { node: string, packet: InterceptedPacket }[] = []
  for (const node of [alice, bob]) {
    node.switch.setInterceptor((packet) => {
      seen.push({ node: node.name, packet })
      // Settled asynchronously, as an interceptor client would.
      setImmediate(() => node.switch.resolve({ key: packet.incomingCircuitKey, action: 'SETTLE', preimage }))
    })
  }
  const result = await payInvoice(carol, invoice, { parts: [{ amountMsat: 100_000n, hint: 0 }, { amountMsat: 200_000n, hint: 1 }] })
  assert.deepEqual(result.preimage, preimage)
  assert.deepEqual(result.parts.map((p) => p.status), ['settled', 'settled'])
  assert.equal(seen.length, 2)
  const finalCltv = network.height + 40 + BLOCK_PADDING
  for (const { node, packet } of seen) {
    const amount = node === 'alice' ? 100_000n : 200_000n
    const hintFee = 1000n + (amount * 100n) / 1_000_000n
    assert.equal(packet.outgoingRequestedChanId, virtualScid(node === 'alice' ? alice.pubkey : bob.pubkey))
    assert.equal(packet.outgoingAmountMsat, amount)
    assert.equal(packet.incomingAmountMsat, amount + hintFee)
    assert.equal(packet.outgoingExpiry, finalCltv)
    assert.equal(packet.incomingExpiry, finalCltv + 40)
    assert.equal(packet.autoFailHeight, finalCltv + 40 - 19)
    const peeled = peelOnion(packet.onionBlob, IDENTITY, packet.paymentHash)
    assert.equal(peeled.isFinal, true)
    assert.equal(peeled.payload.amtToForward, amount)
    assert.equal(peeled.payload.outgoingCltvValue, finalCltv)
    assert.deepEqual(peeled.payload.paymentData?.paymentSecret, paymentSecret)
    assert.equal(peeled.payload.paymentData?.totalMsat, 300_000n)
  }
  // Settled HTLCs moved their amounts (fees included) to the forwarding nodes.
  assert.equal(ca.balanceMsat[ca.side(alice)], 100_000n + 1010n)
  assert.equal(cb.balanceMsat[cb.side(bob)], 200_000n + 1020n)
  assert.equal(result.feeMsat, 2030n)
  assert.deepEqual(alice.finalResolution(seen.find((s) => s.node === 'alice')!.packet.incomingCircuitKey), { settled: true, offchain: true })
})

test('payer: a failure encrypted by the destination comes back wrapped once and decodes', async () => {
  const { alice, carol, ca } = cluster()
  const { invoice } = virtualInvoice([alice.pubkey], 50_000n)
  alice.switch.setInterceptor((packet) => {
    const { sharedSecret } = peelOnion(packet.onionBlob, IDENTITY, packet.paymentHash)
    const message = encodeFailureMessage({ code: FailureCode.INCORRECT_OR_UNKNOWN_PAYMENT_DETAILS, htlcMsat: packet.outgoingAmountMsat, height: 1000 })
    setImmediate(() => alice.switch.resolve({ key: packet.incomingCircuitKey, action: 'FAIL', failureMessage: createFailurePacket(sharedSecret, message) }))
  })
  const result = await payInvoice(carol, invoice)
  const [part] = result.parts
  assert.equal(part?.status, 'failed')
  assert.ok(part?.status === 'failed')
  assert.equal(part.hopIndex, 1)
  assert.deepEqual(part.failure, { code: FailureCode.INCORRECT_OR_UNKNOWN_PAYMENT_DETAILS, htlcMsat: 50_000n, height: 1000 })
  assert.equal(result.preimage, undefined)
  assert.equal(ca.balanceMsat[ca.side(carol)], 10_000_000_000n, 'failed HTLC returned to the payer')
})

test('switch: no interceptor with --requireinterceptor fails new HTLCs with temporary_channel_failure at the forwarding node', async () => {
  const { alice, carol } = cluster()
  const { invoice } = virtualInvoice([alice.pubkey], 10_000n)
  const result = await payInvoice(carol, invoice)
  const [part] = result.parts
  assert.ok(part?.status === 'failed')
  assert.equal(part.hopIndex, 0)
  assert.equal(part.failure.code, FailureCode.TEMPORARY_CHANNEL_FAILURE)
  assert.deepEqual(alice.switch.heldKeys(), [])
})

test('switch: RESUME to an unknown (virtual) scid fails with unknown_next_peer', async () => {
  const { alice, carol } = cluster()
  const { invoice } = virtualInvoice([alice.pubkey], 10_000n)
  alice.switch.setInterceptor((packet) => setImmediate(() => alice.switch.resolve({ key: packet.incomingCircuitKey, action: 'RESUME' })))
  const [part] = (await payInvoice(carol, invoice)).parts
  assert.ok(part?.status === 'failed')
  assert.equal(part.failure.code, FailureCode.UNKNOWN_NEXT_PEER)
})

test('payer: pays a simulated node\'s own invoice over two hops through an intercepting node', async () => {
  const { network, alice, bob, carol } = cluster()
  network.openChannel(alice, bob, { capacityMsat: 5_000_000_000n })
  const dave = network.addNode({ name: 'dave', secretKey: key(4) })
  const bd = network.openChannel(bob, dave, { capacityMsat: 5_000_000_000n })
  const invoice = dave.addInvoice({ valueMsat: 70_000n, memo: 'rebalance' })
  // bob is the only way to dave; its interceptor resumes what is not for its virtual scid.
  bob.switch.setInterceptor((packet) => setImmediate(() => bob.switch.resolve({ key: packet.incomingCircuitKey, action: 'RESUME' })))
  const result = await payInvoice(carol, invoice.paymentRequest)
  assert.deepEqual(result.preimage, invoice.preimage)
  assert.equal(invoice.state, 'settled')
  assert.equal(bd.balanceMsat[bd.side(dave)], 70_000n)
})

test('switch: a replay too close to expiry after a restart fails with expiry_too_soon instead of being offered', async () => {
  const { network, alice, carol } = cluster()
  const { invoice } = virtualInvoice([alice.pubkey], 10_000n)
  const offered: InterceptedPacket[] = []
  alice.switch.setInterceptor((packet) => offered.push(packet))
  const paid = payInvoice(carol, invoice)
  assert.equal(offered.length, 1)
  network.stop(alice)
  // lncfg DefaultCltvInterceptDelta = 22: one block inside that window when alice comes back.
  network.mine(offered[0]!.incomingExpiry - network.height - 21)
  network.start(alice)
  const [part] = (await paid).parts
  assert.ok(part?.status === 'failed')
  assert.equal(part.failure.code, FailureCode.EXPIRY_TOO_SOON)
  assert.deepEqual(alice.switch.heldKeys(), [])
})

test('switch: without --requireinterceptor, new HTLCs pass straight through and a disconnect releases the held set', async () => {
  const network = new SimNetwork({ clock: () => 0, random: (n) => randomBytes(n) })
  const alice = network.addNode({ name: 'alice', secretKey: key(1), requireInterceptor: false })
  const carol = network.addNode({ name: 'carol', secretKey: key(3) })
  network.openChannel(carol, alice, { capacityMsat: 1_000_000_000n })
  // No interceptor: resumed at once, so the virtual scid is an unknown next peer.
  const direct = await payInvoice(carol, virtualInvoice([alice.pubkey], 10_000n).invoice)
  assert.ok(direct.parts[0]?.status === 'failed')
  assert.equal(direct.parts[0].failure.code, FailureCode.UNKNOWN_NEXT_PEER)

  alice.switch.setInterceptor(() => {})
  const held = payInvoice(carol, virtualInvoice([alice.pubkey], 10_000n).invoice)
  assert.equal(alice.switch.heldKeys().length, 1)
  alice.switch.setInterceptor(null)
  const released = await held
  assert.ok(released.parts[0]?.status === 'failed')
  assert.equal(released.parts[0].failure.code, FailureCode.UNKNOWN_NEXT_PEER)
})

test('switch: unknown or already resolved circuit keys and unsupported codes are refused with typed errors', async () => {
  const { alice, carol } = cluster()
  const offered: InterceptedPacket[] = []
  alice.switch.setInterceptor((packet) => offered.push(packet))
  const { invoice, preimage } = virtualInvoice([alice.pubkey], 10_000n)
  const paid = payInvoice(carol, invoice)
  const key = offered[0]!.incomingCircuitKey
  assert.throws(() => alice.switch.resolve({ key, action: 'FAIL', failureCode: FailureCode.UNKNOWN_NEXT_PEER }), { code: 'unsupported_failure_code' })
  assert.throws(() => alice.switch.resolve({ key, action: 'SETTLE', preimage: randomBytes(32) }), { code: 'preimage_mismatch' })
  alice.switch.resolve({ key, action: 'SETTLE', preimage })
  assert.throws(() => alice.switch.resolve({ key, action: 'RESUME' }), { code: 'fwd_not_exists' })
  assert.deepEqual((await paid).preimage, preimage)
})

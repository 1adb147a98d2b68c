// The simulator over real gRPC (TLS + macaroon), driven with src/lnd/client.ts and raw
// HtlcInterceptor streams: lnd v0.21.2-beta's interceptor semantics, faults, final resolutions.
import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import * as grpc from '@grpc/grpc-js'
import { sha256 } from '@noble/hashes/sha2.js'
import { encodeInvoice } from '../../src/ln/bolt11.ts'
import { FailureCode, createFailurePacket, encodeFailureMessage } from '../../src/ln/failure.ts'
import { peelOnion } from '../../src/ln/onion.ts'
import { virtualScid } from '../../src/ln/scid.ts'
import { LndClient, type FinalHtlcEvent, type LndConnection } from '../../src/lnd/client.ts'
import { Router } from '../../src/lnd/proto.ts'
import { SimNetwork, type SimNode } from '../../src/sim/network.ts'
import { payInvoice, type PaymentResult } from '../../src/sim/payer.ts'
import { SimLndServer } from '../../src/sim/server.ts'
import { CLTV_REJECT_DELTA } from '../../src/sim/switch.ts'

const key = (n: number): Uint8Array => new Uint8Array(32).fill(n)
const IDENTITY = key(9)

interface Fixture {
  network: SimNetwork
  alice: SimNode
  bob: SimNode
  carol: SimNode
  servers: { alice: SimLndServer, bob: SimLndServer }
}

async function fixture (t: TestContext, opts: { storeFinal?: boolean } = {}): Promise<Fixture> {
  const network = new SimNetwork({ clock: () => Date.now(), random: (n) => randomBytes(n) })
  const alice = network.addNode({ name: 'alice', secretKey: key(1), storeFinalHtlcResolutions: opts.storeFinal ?? true })
  const bob = network.addNode({ name: 'bob', secretKey: key(2) })
  const carol = network.addNode({ name: 'carol', secretKey: key(3) })
  network.openChannel(carol, alice, { capacityMsat: 10_000_000_000n })
  network.openChannel(carol, bob, { capacityMsat: 10_000_000_000n })
  const servers = { alice: await SimLndServer.start(alice), bob: await SimLndServer.start(bob) }
  t.after(async () => { await servers.alice.close(); await servers.bob.close() })
  return { network, alice, bob, carol, servers }
}

function virtualInvoice (hintNodes: SimNode[], amountMsat: bigint) {
  const preimage = randomBytes(32)
  const invoice = encodeInvoice({
    network: 'regtest',
    amountMsat,
    timestamp: Math.floor(Date.now() / 1000),
    paymentHash: sha256(preimage),
    paymentSecret: randomBytes(32),
    description: 'sim',
    minFinalCltvExpiry: 40,
    routeHints: hintNodes.map((n) => [{ pubkey: n.pubkey, shortChannelId: virtualScid(n.pubkey), feeBaseMsat: 1000, feeProportionalMillionths: 100, cltvExpiryDelta: 40 }]),
    features: [9, 14, 17]
  }, IDENTITY)
  return { invoice, preimage }
}

function rawRouter (t: TestContext, conn: LndConnection, macaroon: Buffer | null = conn.macaroon): grpc.Client {
  let creds = grpc.credentials.createSsl(conn.tlsCert)
  if (macaroon !== null) {
    creds = grpc.credentials.combineChannelCredentials(creds, grpc.credentials.createFromMetadataGenerator((_p, cb) => {
      const md = new grpc.Metadata()
      md.add('macaroon', macaroon.toString('hex'))
      cb(null, md)
    }))
  }
  const client = new Router(conn.host, creds)
  t.after(() => client.close())
  return client
}

/** A raw HtlcInterceptor stream with a queue of received requests and its final status. */
class InterceptorStream {
  readonly call: grpc.ClientDuplexStream<any, any>
  private readonly received: any[] = []
  private waiters: Array<() => void> = []
  readonly ended: Promise<grpc.ServiceError | null>

  constructor (client: grpc.Client) {
    this.call = (client as any).HtlcInterceptor()
    this.call.on('data', (msg: any) => { this.received.push(msg); this.wake() })
    this.ended = new Promise((resolve) => {
      this.call.on('error', (err: grpc.ServiceError) => { resolve(err); this.wake() })
      this.call.on('end', () => { resolve(null); this.wake() })
    })
  }

  private wake (): void {
    const waiters = this.waiters
    this.waiters = []
    for (const w of waiters) w()
  }

  async next (): Promise<any> {
    while (this.received.length === 0) await new Promise<void>((resolve) => this.waiters.push(resolve))
    return this.received.shift()
  }

  get pending (): number {
    return this.received.length
  }

  settle (req: any, preimage: Uint8Array): void {
    this.call.write({ incoming_circuit_key: req.incoming_circuit_key, action: 'SETTLE', preimage: Buffer.from(preimage) })
  }
}

const tick = (ms = 30): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

/** Waits until the switch of `node` has an interceptor registered (the stream is open server-side). */
async function connected (node: SimNode): Promise<void> {
  while (!node.switch.hasInterceptor) await tick(5)
}

function failureCode (result: PaymentResult): number | undefined {
  const [part] = result.parts
  return part?.status === 'failed' ? part.failure.code : undefined
}

test('TLS and macaroons: GetInfo with the pinned cert and macaroon; wrong or missing macaroon refused as lnd does', async (t) => {
  const { alice, servers } = await fixture(t)
  const conn = servers.alice.connection
  const client = new LndClient(conn)
  t.after(() => client.close())
  const info = await client.getInfo()
  assert.equal(info.identityPubkey, alice.pubkeyHex)
  assert.equal(info.requireHtlcInterceptor, true)
  assert.equal(info.storeFinalHtlcResolutions, true)
  assert.deepEqual(info.chains, [{ chain: 'bitcoin', network: 'regtest' }])

  const wrong = new LndClient({ ...conn, macaroon: randomBytes(32) })
  t.after(() => wrong.close())
  await assert.rejects(wrong.getInfo(), (err: any) => err.grpcCode === grpc.status.UNKNOWN && /verification failed/.test(err.message))

  const bare = rawRouter(t, conn, null)
  const err = await new Promise<grpc.ServiceError>((resolve) => {
    (bare as any).HtlcInterceptor().on('error', resolve)
  })
  assert.equal(err.code, grpc.status.UNKNOWN)
  assert.equal(err.details, 'expected 1 macaroon, got 0')

  // Pinning another node's certificate fails the TLS handshake.
  const otherCert = new LndClient({ ...conn, tlsCert: servers.bob.connection.tlsCert }, { deadlineMs: 2000 })
  t.after(() => otherCert.close())
  await assert.rejects(otherCert.getInfo(), (e: any) => e.grpcCode === grpc.status.UNAVAILABLE)
})

test('interceptor: held while disconnected, new HTLCs failed, held set re-offered on reconnect, FinalHtlcEvent + LookupHtlcResolution', async (t) => {
  const { alice, carol, servers } = await fixture(t)
  const client = new LndClient(servers.alice.connection)
  t.after(() => client.close())
  const finals: FinalHtlcEvent[] = []
  const sub = client.subscribeFinalHtlcs((e) => finals.push(e))
  t.after(() => sub.stop())

  const router = rawRouter(t, servers.alice.connection)
  const first = new InterceptorStream(router)
  await connected(alice)
  const { invoice, preimage } = virtualInvoice([alice], 100_000n)
  const paid = payInvoice(carol, invoice)
  const offered = await first.next()
  assert.equal(offered.outgoing_requested_chan_id, String(virtualScid(alice.pubkey)))
  assert.equal(offered.auto_fail_height, offered.incoming_expiry - CLTV_REJECT_DELTA)

  first.call.cancel()
  await first.ended
  while (alice.switch.hasInterceptor) await tick(5)
  assert.equal(alice.switch.heldKeys().length, 1, 'held while no interceptor is connected')

  const other = virtualInvoice([alice], 5_000n)
  const refused = await payInvoice(carol, other.invoice)
  assert.equal(failureCode(refused), FailureCode.TEMPORARY_CHANNEL_FAILURE, 'a new HTLC is failed while disconnected')

  const second = new InterceptorStream(router)
  const again = await second.next()
  assert.deepEqual(again.incoming_circuit_key, offered.incoming_circuit_key, 're-offered on reconnect')
  assert.equal(await client.lookupHtlcResolution(BigInt(again.incoming_circuit_key.chan_id), BigInt(again.incoming_circuit_key.htlc_id)), null)
  second.settle(again, preimage)
  const result = await paid
  assert.deepEqual(result.preimage, preimage)

  const chanId = BigInt(again.incoming_circuit_key.chan_id)
  const htlcId = BigInt(again.incoming_circuit_key.htlc_id)
  assert.deepEqual(await client.lookupHtlcResolution(chanId, htlcId), { settled: true, offchain: true })
  while (!finals.some((e) => e.incomingChanId === chanId && e.incomingHtlcId === htlcId && e.settled)) await tick(5)
  assert.ok(finals.some((e) => e.incomingHtlcId !== htlcId && !e.settled), 'the refused HTLC has a final failed event')
  second.call.cancel()
})

test('interceptor: a second stream is refused while one is open', async (t) => {
  const { alice, servers } = await fixture(t)
  const router = rawRouter(t, servers.alice.connection)
  const first = new InterceptorStream(router)
  await connected(alice)
  const second = new InterceptorStream(router)
  const err = await second.ended
  assert.equal(err?.code, grpc.status.UNKNOWN)
  assert.equal(err?.details, 'interceptor already exists')
  assert.equal(alice.switch.hasInterceptor, true, 'the first stream is untouched')
  first.call.cancel()
})

test('interceptor: a bad preimage or a duplicate resolution ends the stream; the HTLC stays held until resolved once', async (t) => {
  const { alice, carol, servers } = await fixture(t)
  const router = rawRouter(t, servers.alice.connection)
  const { invoice, preimage } = virtualInvoice([alice], 20_000n)
  const s1 = new InterceptorStream(router)
  await connected(alice)
  const paid = payInvoice(carol, invoice)
  const req = await s1.next()
  s1.settle(req, randomBytes(32))
  const err1 = await s1.ended
  assert.equal(err1?.code, grpc.status.UNKNOWN)
  assert.equal(err1?.details, 'preimage does not match hash')
  assert.equal(alice.switch.heldKeys().length, 1)

  const s2 = new InterceptorStream(router)
  const replayed = await s2.next()
  s2.settle(replayed, preimage)
  s2.settle(replayed, preimage)
  const err2 = await s2.ended
  assert.equal(err2?.code, grpc.status.UNKNOWN)
  const { chan_id: chanId, htlc_id: htlcId } = replayed.incoming_circuit_key
  const scid = BigInt(chanId)
  assert.equal(err2?.details, `forward does not exist: (Chan ID=${scid >> 40n}:${(scid >> 16n) & 0xffffffn}:${scid & 0xffffn}, HTLC ID=${htlcId})`)
  assert.deepEqual((await paid).preimage, preimage, 'the first settle took effect')
})

test('interceptor: failure codes and messages accepted and refused as lnd does', async (t) => {
  const { alice, carol, servers } = await fixture(t)
  const router = rawRouter(t, servers.alice.connection)
  const { invoice } = virtualInvoice([alice], 30_000n)

  const s1 = new InterceptorStream(router)
  await connected(alice)
  const paid = payInvoice(carol, invoice)
  const req = await s1.next()
  s1.call.write({ incoming_circuit_key: req.incoming_circuit_key, action: 'FAIL', failure_code: 'UNKNOWN_NEXT_PEER' })
  const err1 = await s1.ended
  assert.equal(err1?.code, grpc.status.INVALID_ARGUMENT)
  assert.equal(err1?.details, 'unsupported failure code: UNKNOWN_NEXT_PEER')

  const s2 = new InterceptorStream(router)
  const again = await s2.next()
  s2.call.write({ incoming_circuit_key: again.incoming_circuit_key, action: 'FAIL', failure_message: Buffer.alloc(100) })
  const err2 = await s2.ended
  assert.equal(err2?.code, grpc.status.INVALID_ARGUMENT)
  assert.equal(err2?.details, 'failure message length invalid')

  // A 292-byte failure encrypted with the destination's secret reaches the payer, wrapped once by alice.
  const s3 = new InterceptorStream(router)
  const third = await s3.next()
  const { sharedSecret } = peelOnion(third.onion_blob, IDENTITY, third.payment_hash)
  const message = encodeFailureMessage({ code: FailureCode.MPP_TIMEOUT })
  s3.call.write({ incoming_circuit_key: third.incoming_circuit_key, action: 'FAIL', failure_message: Buffer.from(createFailurePacket(sharedSecret, message)) })
  const [part] = (await paid).parts
  assert.ok(part?.status === 'failed')
  assert.equal(part.hopIndex, 1)
  assert.equal(part.failure.code, FailureCode.MPP_TIMEOUT)

  // failure_code INVALID_ONION_HMAC is one lnd originates itself.
  const other = virtualInvoice([alice], 1_000n)
  const paid2 = payInvoice(carol, other.invoice)
  const fourth = await s3.next()
  s3.call.write({ incoming_circuit_key: fourth.incoming_circuit_key, action: 'FAIL', failure_code: 'INVALID_ONION_HMAC' })
  assert.equal(failureCode(await paid2), FailureCode.INVALID_ONION_HMAC)
  s3.call.cancel()
})

test('interceptor: a held HTLC fails back at auto_fail_height, even with no interceptor connected', async (t) => {
  const { network, alice, carol, servers } = await fixture(t)
  const client = new LndClient(servers.alice.connection)
  t.after(() => client.close())
  const router = rawRouter(t, servers.alice.connection)
  const s = new InterceptorStream(router)
  await connected(alice)
  const paid = payInvoice(carol, virtualInvoice([alice], 40_000n).invoice)
  const req = await s.next()
  s.call.cancel()
  while (alice.switch.hasInterceptor) await tick(5)
  network.mine(req.auto_fail_height - network.height - 1)
  await tick()
  assert.equal(alice.switch.heldKeys().length, 1, 'still held one block before auto_fail_height')
  network.mine(1)
  const result = await paid
  assert.equal(failureCode(result), FailureCode.TEMPORARY_CHANNEL_FAILURE)
  const key = req.incoming_circuit_key
  assert.deepEqual(await client.lookupHtlcResolution(BigInt(key.chan_id), BigInt(key.htlc_id)), { settled: false, offchain: true })
})

test('faults: dropped stream keeps the held HTLC; lnd restart replays it (held with no interceptor, offered on reconnect)', async (t) => {
  const { alice, carol, servers } = await fixture(t)
  const router = rawRouter(t, servers.alice.connection)
  const { invoice, preimage } = virtualInvoice([alice], 50_000n)
  const s1 = new InterceptorStream(router)
  await connected(alice)
  const paid = payInvoice(carol, invoice)
  const req = await s1.next()

  servers.alice.dropInterceptor()
  assert.equal((await s1.ended)?.code, grpc.status.UNAVAILABLE)
  assert.equal(alice.switch.heldKeys().length, 1)

  await servers.alice.restart()
  assert.equal(alice.switch.heldKeys().length, 1, 'the replayed HTLC is held while no interceptor is connected')

  const client = new LndClient(servers.alice.connection)
  t.after(() => client.close())
  assert.equal((await client.getInfo()).identityPubkey, alice.pubkeyHex, 'serving again on the same address')
  const s2 = new InterceptorStream(rawRouter(t, servers.alice.connection))
  const replayed = await s2.next()
  assert.deepEqual(replayed.incoming_circuit_key, req.incoming_circuit_key)
  assert.deepEqual(replayed.onion_blob, req.onion_blob)
  s2.settle(replayed, preimage)
  assert.deepEqual((await paid).preimage, preimage)
  s2.call.cancel()
})

test('faults: a delayed node still answers, in order', async (t) => {
  const { alice, carol, servers } = await fixture(t)
  servers.alice.delayMs = 150
  const client = new LndClient(servers.alice.connection)
  t.after(() => client.close())
  const started = Date.now()
  await client.getInfo()
  assert.ok(Date.now() - started >= 150)
  const s = new InterceptorStream(rawRouter(t, servers.alice.connection))
  await connected(alice)
  const { invoice, preimage } = virtualInvoice([alice], 60_000n)
  const paid = payInvoice(carol, invoice)
  s.settle(await s.next(), preimage)
  assert.deepEqual((await paid).preimage, preimage)
  s.call.cancel()
})

test('LookupHtlcResolution: NOT_FOUND for an unknown HTLC, UNAVAILABLE without --store-final-htlc-resolutions', async (t) => {
  const { servers } = await fixture(t, { storeFinal: false })
  const alice = new LndClient(servers.alice.connection)
  const bob = new LndClient(servers.bob.connection)
  t.after(() => { alice.close(); bob.close() })
  assert.equal(await bob.lookupHtlcResolution(1n << 40n, 7n), null)
  assert.equal((await alice.getInfo()).storeFinalHtlcResolutions, false)
  await assert.rejects(alice.lookupHtlcResolution(1n << 40n, 7n), (err: any) => err.grpcCode === grpc.status.UNAVAILABLE)
})

test('payer: MPP through two nodes, each interceptor sees its part, onions peel with the destination key', async (t) => {
  const { alice, bob, carol, servers } = await fixture(t)
  const { invoice, preimage } = virtualInvoice([alice, bob], 500_000n)
  const sa = new InterceptorStream(rawRouter(t, servers.alice.connection))
  const sb = new InterceptorStream(rawRouter(t, servers.bob.connection))
  await connected(alice)
  await connected(bob)
  const paid = payInvoice(carol, invoice, { parts: [{ amountMsat: 200_000n, hint: 0 }, { amountMsat: 300_000n, hint: 1 }] })
  const [ra, rb] = await Promise.all([sa.next(), sb.next()])
  for (const [req, amount] of [[ra, 200_000n], [rb, 300_000n]] as const) {
    const peeled = peelOnion(req.onion_blob, IDENTITY, req.payment_hash)
    assert.equal(peeled.isFinal, true)
    assert.equal(peeled.payload.amtToForward, amount)
    assert.equal(BigInt(req.outgoing_amount_msat), amount)
    assert.equal(peeled.payload.paymentData?.totalMsat, 500_000n)
    assert.equal(peeled.payload.outgoingCltvValue, req.outgoing_expiry)
  }
  sa.settle(ra, preimage)
  sb.settle(rb, preimage)
  const result = await paid
  assert.deepEqual(result.parts.map((p) => p.status), ['settled', 'settled'])
  sa.call.cancel()
  sb.call.cancel()
})

test('Lightning/Router RPCs: ListChannels, AddInvoice, DecodePayReq, SendPaymentV2 with outgoing_chan_ids and fee limit', async (t) => {
  const { network, alice, bob, servers } = await fixture(t)
  const ab = network.openChannel(alice, bob, { capacityMsat: 2_000_000_000n })
  const clientA = new LndClient(servers.alice.connection)
  const clientB = new LndClient(servers.bob.connection)
  t.after(() => { clientA.close(); clientB.close() })
  const channels = await clientA.listChannels()
  const mine = channels.find((c) => c.chanId === ab.chanId)
  assert.ok(mine)
  assert.equal(mine.remotePubkey, bob.pubkeyHex)
  assert.equal(mine.localReserveMsat, 20_000_000n)

  const added = await clientB.addInvoice({ valueMsat: 250_000n, memo: 'rebalance' })
  const decoded = await clientA.decodePayReq(added.paymentRequest)
  assert.equal(decoded.destination, bob.pubkeyHex)
  assert.equal(decoded.amountMsat, 250_000n)

  // bob's interceptor is required: RESUME everything (it is not for bob's virtual scid).
  const sb = new InterceptorStream(rawRouter(t, servers.bob.connection))
  await connected(bob)
  const payment = await clientA.sendPayment({ paymentRequest: added.paymentRequest, outgoingChanIds: [ab.chanId], feeLimitMsat: 0n, timeoutSeconds: 30 })
  assert.equal(payment.status, 'SUCCEEDED')
  assert.equal(sb.pending, 0, 'a payment to bob itself is not a forward')
  assert.equal(ab.balanceMsat[ab.side(bob)], 250_000n)

  // Through bob to dave costs bob's forwarding fee: refused under a zero fee limit, paid under 2 sat.
  const dave = network.addNode({ name: 'dave', secretKey: key(4) })
  network.openChannel(bob, dave, { capacityMsat: 2_000_000_000n })
  const far = dave.addInvoice({ valueMsat: 80_000n })
  const capped = await clientA.sendPayment({ paymentRequest: far.paymentRequest, feeLimitMsat: 0n, timeoutSeconds: 30 })
  assert.equal(capped.status, 'FAILED')
  assert.equal(capped.failureReason, 'FAILURE_REASON_NO_ROUTE')
  const dave2 = dave.addInvoice({ valueMsat: 80_000n })
  const paying = clientA.sendPayment({ paymentRequest: dave2.paymentRequest, feeLimitMsat: 2000n, timeoutSeconds: 30 })
  // bob's interceptor sees the forward to dave's real channel and resumes it, as an edge does.
  const forward = await sb.next()
  assert.notEqual(BigInt(forward.outgoing_requested_chan_id), virtualScid(bob.pubkey))
  sb.call.write({ incoming_circuit_key: forward.incoming_circuit_key, action: 'RESUME' })
  const paid = await paying
  assert.equal(paid.status, 'SUCCEEDED')
  assert.equal(paid.feeMsat, 1000n)
  assert.equal(paid.preimage, Buffer.from(dave2.preimage).toString('hex'))
  sb.call.cancel()
})

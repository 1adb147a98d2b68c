// The LND client and interceptor against real lnd (v0.21.2-beta, scripts/regtest): Alice runs
// with --requireinterceptor and --store-final-htlc-resolutions, Carol without. Carol pays an
// invoice of a made-up node whose only route is a hint through Alice's virtual channel, so the
// HTLC stops at Alice's interceptor. Needs `npm run regtest -- up` (npm run test:regtest does it).
import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { setTimeout as sleep } from 'node:timers/promises'
import { mine, readEnv } from '../../scripts/regtest/network.ts'
import { LndClient, type LndConnection, type Payment, type RawInterceptRequest } from '../../src/lnd/client.ts'
import { runStartupChecks } from '../../src/lnd/checks.ts'
import { HtlcInterceptor, type InterceptorEvent } from '../../src/lnd/interceptor.ts'
import type { InterceptedHtlc } from '../../src/lnd/circuits.ts'
import { LndError } from '../../src/lnd/errors.ts'
import { encodeInvoice } from '../../src/ln/bolt11.ts'
import { formatScid } from '../../src/ln/scid.ts'
import { secp256k1 } from '../../src/ln/secp256k1.ts'

const env = readEnv()

function connection (name: string): LndConnection {
  const node = env.nodes.find(n => n.name === name)
  if (node === undefined) throw new Error(`no node ${name} in env.json`)
  return { name, host: node.host, tlsCert: readFileSync(node.tlsCert), macaroon: readFileSync(node.macaroon), pubkey: node.pubkey }
}

function client (t: TestContext, name: string): LndClient {
  const c = new LndClient(connection(name), { backoff: { initialMs: 100, maxMs: 1000, stableMs: 5000 } })
  t.after(() => c.close())
  return c
}

const HINT = { feeBaseMsat: 1000, feeProportionalMillionths: 0, cltvExpiryDelta: 40 }
const AMOUNT_MSAT = 50_000_000n
const MIN_FINAL_CLTV = 18
// lnd's CltvRejectDelta for intercepted HTLCs (lncfg.DefaultFinalCltvRejectDelta).
const LND_CLTV_REJECT_DELTA = 19

// An invoice of a fresh virtual node reachable only through Alice's virtual channel.
function virtualInvoice (alicePubkey: string, virtualScid: bigint) {
  const key = randomBytes(32)
  const preimage = randomBytes(32)
  const paymentHash = createHash('sha256').update(preimage).digest()
  const invoice = encodeInvoice({
    network: 'regtest',
    amountMsat: AMOUNT_MSAT,
    timestamp: Math.floor(Date.now() / 1000),
    paymentHash,
    paymentSecret: randomBytes(32),
    description: 'highwire regtest',
    minFinalCltvExpiry: MIN_FINAL_CLTV,
    routeHints: [[{ pubkey: Buffer.from(alicePubkey, 'hex'), shortChannelId: virtualScid, ...HINT }]],
    features: [9, 14, 17]
  }, key)
  return { invoice, preimage, paymentHash, payee: Buffer.from(secp256k1.publicKey(key)).toString('hex') }
}

interface Watched {
  interceptor: HtlcInterceptor
  events: InterceptorEvent[]
  expect: (paymentHash: Buffer) => void
  nextHtlc: (paymentHash: Buffer) => Promise<InterceptedHtlc>
  settled: () => Promise<void>
}

const TEMPORARY_FAILURE = { action: 'fail', failureCode: 'TEMPORARY_CHANNEL_FAILURE' } as const

// An interceptor on `lnd` whose offers of expected payment hashes are queued for the test. Any
// other HTLC for the virtual channel is failed at once: lnd replays HTLCs left held by an
// interrupted earlier run (or by another suite sharing the network) on every connect.
function intercept (t: TestContext, lnd: LndClient): Watched {
  const queue: InterceptedHtlc[] = []
  const expected = new Set<string>()
  const events: Array<InterceptorEvent & { at?: number }> = []
  const interceptor: HtlcInterceptor = new HtlcInterceptor({
    client: lnd,
    onHtlc: h => {
      if (expected.has(h.paymentHash.toString('hex'))) queue.push(h)
      else interceptor.resolve(h.circuit, TEMPORARY_FAILURE)
    },
    onEvent: e => events.push({ ...e, at: Date.now() })
  })
  t.after(() => {
    for (const h of queue) interceptor.resolve(h.circuit, TEMPORARY_FAILURE)
    interceptor.stop()
  })
  const until = async <T>(what: string, f: () => T | undefined, ms = 30_000): Promise<T> => {
    const end = Date.now() + ms
    for (;;) {
      const v = f()
      if (v !== undefined) return v
      if (Date.now() > end) throw new Error(`timed out waiting for ${what}; events: ${JSON.stringify(events.slice(-12))}`)
      await sleep(50)
    }
  }
  return {
    interceptor,
    events,
    expect: (paymentHash) => { expected.add(paymentHash.toString('hex')) },
    nextHtlc: (paymentHash) => until('an intercepted HTLC', () => {
      const i = queue.findIndex(h => h.paymentHash.equals(paymentHash))
      return i === -1 ? undefined : queue.splice(i, 1)[0]
    }),
    // lnd sends no headers on this stream until it has something to offer, and refuses a second
    // interceptor (another suite may hold Alice's): wait until the latest stream has stayed
    // open for a second, which on a local node means lnd registered it.
    settled: async () => {
      await until('a registered interceptor stream', () => {
        const last = events.filter(e => e.type === 'stream_open' || e.type === 'stream_closed').at(-1)
        return last?.type === 'stream_open' && Date.now() - (last.at ?? 0) >= 1000 ? true : undefined
      }, 60_000)
    }
  }
}

test('start-up checks pass on Alice and refuse Carol, naming her', async (t) => {
  const report = await runStartupChecks(client(t, 'alice'), { network: 'regtest', allowUnsafe: false })
  assert.deepEqual(report.warnings, [])
  assert.equal(report.info.requireHtlcInterceptor, true)
  assert.equal(report.info.storeFinalHtlcResolutions, true)
  assert.deepEqual(report.info.chains, [{ chain: 'bitcoin', network: 'regtest' }])

  const carol = client(t, 'carol')
  await assert.rejects(runStartupChecks(carol, { network: 'regtest', allowUnsafe: false }),
    (e: unknown) => e instanceof LndError && e.code === 'interceptor_not_required' && e.message.startsWith('lnd carol: ') && e.message.includes('--requireinterceptor'))
  const unsafe = await runStartupChecks(carol, { network: 'regtest', allowUnsafe: true })
  assert.equal(unsafe.warnings.length, 2)
  await assert.rejects(runStartupChecks(client(t, 'alice'), { network: 'signet', allowUnsafe: false }), { code: 'network_mismatch' })
})

test('an HTLC for the virtual channel reaches the interceptor as expected and is failed cleanly', async (t) => {
  const alice = client(t, 'alice')
  const carol = client(t, 'carol')
  const w = intercept(t, alice)
  w.interceptor.start()
  await w.settled()
  const { invoice, paymentHash, payee } = virtualInvoice(alice.pubkey, w.interceptor.virtualScid)
  w.expect(paymentHash)
  const height = (await alice.getInfo()).blockHeight

  // One part: after a temporary failure with basic_mpp, lnd would otherwise retry in splits.
  const paying = carol.sendPayment({ paymentRequest: invoice, feeLimitMsat: 10_000n, timeoutSeconds: 30, maxParts: 1 })
  const htlc = await w.nextHtlc(paymentHash)
  const carolAlice = env.channels.find(c => c.from === 'carol' && c.to === 'alice')
  assert.equal(htlc.circuit.chanId, BigInt(carolAlice!.chanId))
  assert.deepEqual(htlc.paymentHash, paymentHash)
  assert.equal(htlc.outgoingRequestedChanId, w.interceptor.virtualScid)
  assert.equal(htlc.outgoingAmountMsat, AMOUNT_MSAT)
  assert.equal(htlc.incomingAmountMsat - htlc.outgoingAmountMsat, BigInt(HINT.feeBaseMsat))
  assert.equal(htlc.incomingExpiry - htlc.outgoingExpiry, HINT.cltvExpiryDelta)
  assert.ok(htlc.outgoingExpiry >= height + MIN_FINAL_CLTV, `outgoing expiry ${htlc.outgoingExpiry} at height ${height}`)
  assert.equal(htlc.autoFailHeight, htlc.incomingExpiry - LND_CLTV_REJECT_DELTA)
  assert.equal(htlc.onChain, false)
  assert.equal(htlc.onionBlob.length, 1366)
  t.diagnostic(`height ${height}, outgoing_expiry ${htlc.outgoingExpiry}, incoming_expiry ${htlc.incomingExpiry}, auto_fail_height ${htlc.autoFailHeight}, payee ${payee}`)

  assert.equal(w.interceptor.resolve(htlc.circuit, TEMPORARY_FAILURE), 'sent')
  const payment: Payment = await paying
  assert.equal(payment.status, 'FAILED')
  const attempt = payment.attempts[0]!
  t.diagnostic(`carol: failure_reason ${payment.failureReason}, attempts ${JSON.stringify(payment.attempts, (_k, v) => typeof v === 'bigint' ? v.toString() : v)}`)
  assert.equal(attempt.failureCode, 'TEMPORARY_CHANNEL_FAILURE')
  assert.equal(attempt.failureSourceIndex, 1) // Alice, Carol's first hop
  assert.equal(w.events.filter(e => e.type === 'stream_closed').length, 0, 'the stream survived the resolution')
  assert.deepEqual(await alice.lookupHtlcResolution(htlc.circuit.chanId, htlc.circuit.htlcId), { settled: false, offchain: true })
})

test('a settled HTLC pays Carol\'s invoice and lnd reports its final resolution', async (t) => {
  const alice = client(t, 'alice')
  const carol = client(t, 'carol')
  const finals: Array<{ chan: bigint, htlc: bigint, settled: boolean }> = []
  const sub = alice.subscribeFinalHtlcs(e => finals.push({ chan: e.incomingChanId, htlc: e.incomingHtlcId, settled: e.settled }))
  t.after(() => sub.stop())
  const w = intercept(t, alice)
  w.interceptor.start()
  await w.settled()
  const { invoice, preimage, paymentHash } = virtualInvoice(alice.pubkey, w.interceptor.virtualScid)
  w.expect(paymentHash)
  const paying = carol.sendPayment({ paymentRequest: invoice, feeLimitMsat: 10_000n, timeoutSeconds: 30, maxParts: 1 })
  const htlc = await w.nextHtlc(paymentHash)
  assert.equal(w.interceptor.resolve(htlc.circuit, { action: 'settle', preimage }), 'sent')
  const payment = await paying
  assert.equal(payment.status, 'SUCCEEDED')
  assert.equal(payment.preimage, preimage.toString('hex'))
  assert.equal(payment.feeMsat, BigInt(HINT.feeBaseMsat))
  for (let i = 0; i < 100 && !finals.some(f => f.htlc === htlc.circuit.htlcId); i++) await sleep(100)
  assert.deepEqual(finals.find(f => f.chan === htlc.circuit.chanId && f.htlc === htlc.circuit.htlcId), { chan: htlc.circuit.chanId, htlc: htlc.circuit.htlcId, settled: true })
  assert.deepEqual(await alice.lookupHtlcResolution(htlc.circuit.chanId, htlc.circuit.htlcId), { settled: true, offchain: true })
})

test('a held HTLC survives an interceptor disconnect and is re-offered on reconnect', async (t) => {
  const alice = client(t, 'alice')
  const carol = client(t, 'carol')
  const w = intercept(t, alice)
  w.interceptor.start()
  await w.settled()
  const { invoice, paymentHash } = virtualInvoice(alice.pubkey, w.interceptor.virtualScid)
  w.expect(paymentHash)
  const paying = carol.sendPayment({ paymentRequest: invoice, feeLimitMsat: 10_000n, timeoutSeconds: 30, maxParts: 1 })
  const htlc = await w.nextHtlc(paymentHash)
  w.interceptor.stop()
  // Decided while no stream is open: held by the tracker until lnd offers the HTLC again.
  assert.equal(w.interceptor.resolve(htlc.circuit, TEMPORARY_FAILURE), 'deferred')
  await sleep(2000) // lnd (--requireinterceptor) keeps holding it meanwhile
  w.interceptor.start()
  const payment = await paying
  assert.equal(payment.status, 'FAILED')
  assert.equal(payment.attempts[0]!.failureCode, 'TEMPORARY_CHANNEL_FAILURE')
  const circuit = `${htlc.circuit.chanId}:${htlc.circuit.htlcId}`
  assert.ok(w.events.some(e => e.type === 'htlc_replayed' && e.circuit === circuit && e.action === 'FAIL'), 'the decision went out on the re-offer')
  assert.equal(w.events.filter(e => e.type === 'stream_open').length, 2)
})

test('at auto_fail_height lnd fails a held HTLC back itself; the tracker then refuses a late decision', async (t) => {
  const alice = client(t, 'alice')
  const carol = client(t, 'carol')
  const w = intercept(t, alice)
  w.interceptor.start()
  await w.settled()
  const { invoice, paymentHash, preimage } = virtualInvoice(alice.pubkey, w.interceptor.virtualScid)
  w.expect(paymentHash)
  const paying = carol.sendPayment({ paymentRequest: invoice, feeLimitMsat: 10_000n, timeoutSeconds: 30, maxParts: 1 })
  const htlc = await w.nextHtlc(paymentHash)
  const height = (await alice.getInfo()).blockHeight
  // One block short of auto_fail_height lnd still holds it (a settle would still be accepted).
  await mine(htlc.autoFailHeight - 1 - height)
  await sleep(500)
  assert.equal((await carol.listChannels()).flatMap(c => c.pendingHtlcs).filter(h => h.hashLock.equals(paymentHash)).length, 1)
  await mine(1)
  const payment = await paying
  assert.equal(payment.status, 'FAILED')
  assert.equal(payment.attempts[0]!.failureCode, 'TEMPORARY_CHANNEL_FAILURE')
  assert.equal(payment.attempts[0]!.failureSourceIndex, 1)
  w.interceptor.setBlockHeight((await alice.getInfo()).blockHeight)
  assert.ok(w.events.some(e => e.type === 'htlc_expired' && e.circuit === `${htlc.circuit.chanId}:${htlc.circuit.htlcId}`))
  assert.throws(() => w.interceptor.resolve(htlc.circuit, { action: 'settle', preimage }), { code: 'htlc_expired' })
  assert.deepEqual(await alice.lookupHtlcResolution(htlc.circuit.chanId, htlc.circuit.htlcId), { settled: false, offchain: true })
})

// lnd's own answers to protocol violations, which the simulator (src/sim) reproduces.
test('lnd ends the interceptor stream on a second resolution and refuses a second interceptor', async (t) => {
  const alice = client(t, 'alice')
  const carol = client(t, 'carol')
  const first = alice.openHtlcInterceptor()
  const ours: RawInterceptRequest[] = []
  const ended = new Promise<Error & { code?: number, details?: string }>(resolve => { first.on('error', resolve) })
  const virtualScid = new HtlcInterceptor({ client: alice, onHtlc: () => {} }).virtualScid
  const { invoice, paymentHash } = virtualInvoice(alice.pubkey, virtualScid)
  first.on('data', (m: RawInterceptRequest) => {
    if (m.payment_hash.equals(paymentHash)) ours.push(m)
    else if (BigInt(m.outgoing_requested_chan_id) === virtualScid) first.write({ incoming_circuit_key: m.incoming_circuit_key!, action: 'FAIL', failure_code: 'TEMPORARY_CHANNEL_FAILURE' })
    else first.write({ incoming_circuit_key: m.incoming_circuit_key!, action: 'RESUME' })
  })
  t.after(() => first.cancel())
  await sleep(1000)

  const second = alice.openHtlcInterceptor()
  const refused = await new Promise<Error & { code?: number, details?: string }>(resolve => { second.on('error', resolve); second.on('data', () => {}) })
  t.diagnostic(`second interceptor: code ${refused.code} details ${JSON.stringify(refused.details)}`)
  assert.equal(refused.code, 2) // UNKNOWN: lnd returns a plain Go error
  assert.equal(refused.details, 'interceptor already exists')

  const paying = carol.sendPayment({ paymentRequest: invoice, feeLimitMsat: 10_000n, timeoutSeconds: 30, maxParts: 1 })
  for (let i = 0; i < 300 && ours.length === 0; i++) await sleep(100)
  const key = ours[0]!.incoming_circuit_key!
  first.write({ incoming_circuit_key: key, action: 'FAIL', failure_code: 'TEMPORARY_CHANNEL_FAILURE' })
  first.write({ incoming_circuit_key: key, action: 'FAIL', failure_code: 'TEMPORARY_CHANNEL_FAILURE' })
  const err = await ended
  t.diagnostic(`second resolution: code ${err.code} details ${JSON.stringify(err.details)}`)
  assert.equal(err.code, 2)
  // models.CircuitKey.String with lnwire.ShortChannelID.String ("block:tx:output").
  assert.equal(err.details, `forward does not exist: (Chan ID=${formatScid(BigInt(key.chan_id)).replaceAll('x', ':')}, HTLC ID=${key.htlc_id})`)
  assert.equal((await paying).status, 'FAILED')
})

// The regtest network itself: its env.json, the cluster flags on Alice and Bob,
// and real payments. Alice and Bob run with --requireinterceptor and no
// interceptor is attached here: that must only hold HTLCs they *forward*,
// never ones they receive as the final node.
import test from 'node:test'
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { existsSync, readFileSync } from 'node:fs'
import { env, node, channel, lncli, type NodeName } from './env.ts'
import { LndClient, type RawInterceptRequest } from '../../src/lnd/client.ts'

const PAYMENT_SAT = 10_000

const sha256Hex = (hex: string): string => createHash('sha256').update(Buffer.from(hex, 'hex')).digest('hex')

async function invoice (name: NodeName, memo: string): Promise<{ r_hash: string, payment_request: string }> {
  return await lncli(name, ['addinvoice', `--amt=${PAYMENT_SAT}`, `--memo=${memo}`])
}

async function pay (payReq: string, firstHop: string): Promise<any> {
  return await lncli('carol', ['payinvoice', '--force', '--json', '--timeout=60s', `--outgoing_chan_id=${firstHop}`, `--pay_req=${payReq}`])
}

test('env.json gives each node in the shape of lnd.nodes[] and the three channels', async () => {
  assert.deepEqual(env.nodes.map((n) => n.name), ['alice', 'bob', 'carol'])
  for (const n of env.nodes) {
    assert.deepEqual(Object.keys(n).sort(), ['host', 'macaroon', 'name', 'pubkey', 'tlsCert'])
    assert.match(n.host, /^127\.0\.0\.1:\d+$/)
    assert.ok(existsSync(n.tlsCert) && existsSync(n.macaroon), `${n.name}: cert and macaroon exist`)
    assert.equal((await lncli(n.name as NodeName, ['getinfo'])).identity_pubkey, n.pubkey)
  }
  assert.deepEqual(env.channels.map((c) => `${c.from}→${c.to}`), ['carol→alice', 'carol→bob', 'alice→bob'])
  for (const c of env.channels) {
    assert.match(c.chanId, /^\d+$/)
    const { channels } = await lncli(c.from, ['listchannels', '--active_only'])
    const live = (channels as any[]).find((x) => x.scid === c.chanId)
    assert.ok(live !== undefined, `${c.from}→${c.to} is active`)
    assert.equal(live.channel_point, c.channelPoint)
    assert.equal(live.remote_pubkey, node(c.to).pubkey)
    // The opener holds the liquidity: the cluster nodes start with inbound capacity.
    assert.ok(Number(live.local_balance) > Number(live.remote_balance))
  }
})

test('alice and bob require an interceptor and store final resolutions; carol does neither', async () => {
  for (const name of ['alice', 'bob', 'carol'] as const) {
    const info = await lncli(name, ['getinfo'])
    assert.equal(info.require_htlc_interceptor, name !== 'carol', `${name} require_htlc_interceptor`)
    assert.equal(info.store_final_htlc_resolutions, name !== 'carol', `${name} store_final_htlc_resolutions`)
    assert.equal(info.synced_to_chain, true)
  }
})

for (const payee of ['alice', 'bob'] as const) {
  test(`carol pays an invoice made by ${payee}'s own lnd (final hop, no interceptor needed)`, async () => {
    const inv = await invoice(payee, `regtest ${payee}`)
    const payment = await pay(inv.payment_request, channel('carol', payee).chanId)
    assert.equal(payment.status, 'SUCCEEDED', payment.failure_reason)
    assert.equal(sha256Hex(payment.payment_preimage), inv.r_hash)
    const route = payment.htlcs.find((h: any) => h.status === 'SUCCEEDED').route
    assert.deepEqual(route.hops.map((h: any) => h.pub_key), [node(payee).pubkey])
    const settled = await lncli(payee, ['lookupinvoice', inv.r_hash])
    assert.equal(settled.state, 'SETTLED')
    assert.equal(settled.r_preimage, payment.payment_preimage)
  })
}

test('a payment alice forwards is held until an interceptor attaches', async (t) => {
  const inv = await invoice('bob', 'regtest via alice')
  const viaAlice = channel('carol', 'alice')
  const paying = pay(inv.payment_request, viaAlice.chanId)

  // Held: the HTLC sits on carol→alice while bob never sees it.
  const deadline = Date.now() + 30_000
  let held = false
  while (!held && Date.now() < deadline) {
    const { channels } = await lncli('alice', ['listchannels'])
    const incoming = (channels as any[]).find((c) => c.scid === viaAlice.chanId)
    held = (incoming?.pending_htlcs ?? []).some((h: any) => h.hash_lock === inv.r_hash)
    if (!held) await new Promise((resolve) => setTimeout(resolve, 250))
  }
  assert.ok(held, 'alice holds the htlc')
  assert.equal((await lncli('bob', ['lookupinvoice', inv.r_hash])).state, 'OPEN')

  // lnd hands held HTLCs to the interceptor once one connects; fail them all
  // so no HTLC stays behind for later tests.
  const alice = node('alice')
  const client = new LndClient({ ...alice, tlsCert: readFileSync(alice.tlsCert), macaroon: readFileSync(alice.macaroon) })
  const call = client.openHtlcInterceptor()
  t.after(async () => {
    call.cancel()
    client.close()
    // Carol's mission control learnt that alice→bob failed; later tests start clean.
    await lncli('carol', ['resetmc'])
  })
  call.on('error', () => {}) // the cancel above ends the stream with CANCELLED
  const intercepted: RawInterceptRequest[] = []
  call.on('data', (req: RawInterceptRequest) => {
    intercepted.push(req)
    call.write({ incoming_circuit_key: req.incoming_circuit_key!, action: 'FAIL' })
  })

  const payment = await paying
  assert.equal(payment.status, 'FAILED')
  assert.ok(intercepted.length >= 1)
  const first = intercepted[0]!
  assert.equal(Buffer.from(first.payment_hash).toString('hex'), inv.r_hash)
  assert.equal(String(first.outgoing_requested_chan_id), channel('alice', 'bob').chanId)
  assert.equal((await lncli('bob', ['lookupinvoice', inv.r_hash])).state, 'OPEN')
})

// The regtest network itself: its env.json, the cluster flags on Alice and Bob,
// and real payments. Alice and Bob run with --requireinterceptor and no
// interceptor is attached here: that affects only HTLCs they *forward* (lnd
// fails new forwards at once with temporary_channel_failure while no
// interceptor is attached, htlcswitch/interceptable_switch.go forwardOffChain),
// never ones they receive as the final node, which these payments show.
import test from 'node:test'
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { existsSync } from 'node:fs'
import { env, node, channel, lncli, type NodeName } from './env.ts'

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
    // `up` opens each channel with the opener's funds (the cluster nodes start with inbound
    // capacity); other regtest tests move balances since, so only the channel's integrity is checked.
    assert.ok(Number(live.local_balance) + Number(live.remote_balance) > Number(live.capacity) * 0.9, `${c.from}→${c.to} balances`)
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

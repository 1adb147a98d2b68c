import { test } from 'node:test'
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import * as grpc from '@grpc/grpc-js'
import { Lightning, Router } from '../../src/lnd/proto.ts'
import { LndClient, toFinalHtlcEvent, toPayment, type LndConnection } from '../../src/lnd/client.ts'
import { LndError } from '../../src/lnd/errors.ts'

const PUBKEY = '02' + '11'.repeat(32)
const MACAROON = Buffer.from('0201036c6e64', 'hex')

// A self-signed certificate for localhost/127.0.0.1, as lnd makes its tls.cert.
function selfSigned (dir: string, name: string): { cert: Buffer, key: Buffer } {
  const cert = path.join(dir, `${name}.cert`)
  const key = path.join(dir, `${name}.key`)
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1'], { stdio: 'ignore' })
  return { cert: readFileSync(cert), key: readFileSync(key) }
}

async function fakeLnd (t: import('node:test').TestContext) {
  const dir = mkdtempSync(path.join(tmpdir(), 'highwire-lnd-'))
  t.after(() => rmSync(dir, { recursive: true, force: true }))
  const tls = selfSigned(dir, 'lnd')
  const other = selfSigned(dir, 'other')
  const seen: string[] = []
  const server = new grpc.Server()
  const auth = (md: grpc.Metadata): boolean => { const m = md.get('macaroon')[0]; seen.push(String(m)); return m === MACAROON.toString('hex') }
  server.addService(Lightning.service, {
    GetInfo: (call: grpc.ServerUnaryCall<unknown, unknown>, cb: grpc.sendUnaryData<unknown>) => {
      if (!auth(call.metadata)) { cb({ code: grpc.status.UNKNOWN, details: 'verification failed: signature mismatch' }); return }
      cb(null, { identity_pubkey: PUBKEY, alias: 'alice', block_height: 432, synced_to_chain: true, chains: [{ chain: 'bitcoin', network: 'regtest' }], require_htlc_interceptor: true, store_final_htlc_resolutions: true })
    },
    LookupHtlcResolution: (call: grpc.ServerUnaryCall<{ chan_id: string, htlc_index: string }, unknown>, cb: grpc.sendUnaryData<unknown>) => {
      if (call.request.htlc_index === '1') cb(null, { settled: true, offchain: true })
      else cb({ code: grpc.status.NOT_FOUND, details: 'htlc unknown' })
    },
    ListChannels: () => { /* never answers: the deadline must end the call */ }
  })
  const payment = (status: string) => ({ payment_hash: 'aa'.repeat(32), status, payment_preimage: status === 'SUCCEEDED' ? 'bb'.repeat(32) : '00'.repeat(32), value_msat: '1000', fee_msat: '0', htlcs: [] })
  server.addService(Router.service, {
    // The payment starts, then the connection fails before the end: the client must follow it.
    SendPaymentV2: (call: grpc.ServerWritableStream<unknown, unknown>) => {
      call.write(payment('IN_FLIGHT'))
      setTimeout(() => call.emit('error', { code: grpc.status.UNAVAILABLE, details: 'connection reset' }), 20)
    },
    TrackPaymentV2: (call: grpc.ServerWritableStream<{ payment_hash: Buffer }, unknown>) => {
      if (call.request.payment_hash.toString('hex') !== 'aa'.repeat(32)) { call.emit('error', { code: grpc.status.NOT_FOUND, details: 'payment isn\'t initiated' }); return }
      call.write(payment('SUCCEEDED'))
      call.end()
    }
  })
  const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createSsl(null, [{ cert_chain: tls.cert, private_key: tls.key }]), (err, p) => err ? reject(err) : resolve(p)))
  t.after(() => server.forceShutdown())
  const conn: LndConnection = { name: 'alice', host: `127.0.0.1:${port}`, tlsCert: tls.cert, macaroon: MACAROON, pubkey: PUBKEY }
  return { conn, otherCert: other.cert, seen }
}

test('calls carry the macaroon over TLS pinned to the node certificate', async (t) => {
  const { conn, otherCert, seen } = await fakeLnd(t)
  const client = new LndClient(conn, { deadlineMs: 300 })
  t.after(() => client.close())
  const info = await client.getInfo()
  assert.equal(info.identityPubkey, PUBKEY)
  assert.deepEqual(info.chains, [{ chain: 'bitcoin', network: 'regtest' }])
  assert.deepEqual(seen, [MACAROON.toString('hex')])
  assert.deepEqual(await client.lookupHtlcResolution(5n, 1n), { settled: true, offchain: true })
  assert.equal(await client.lookupHtlcResolution(5n, 2n), null)
  await assert.rejects(client.listChannels(), (e: unknown) => e instanceof LndError && e.grpcCode === grpc.status.DEADLINE_EXCEEDED && e.message.startsWith('lnd alice: ListChannels failed'))

  const wrongCert = new LndClient({ ...conn, tlsCert: otherCert }, { deadlineMs: 1000 })
  t.after(() => wrongCert.close())
  await assert.rejects(wrongCert.getInfo(), (e: unknown) => e instanceof LndError && e.grpcCode === grpc.status.UNAVAILABLE)
  const wrongMacaroon = new LndClient({ ...conn, macaroon: Buffer.from('00', 'hex') }, { deadlineMs: 1000 })
  t.after(() => wrongMacaroon.close())
  await assert.rejects(wrongMacaroon.getInfo(), /verification failed/)
})

test('a payment whose stream breaks is followed to its end with TrackPaymentV2', async (t) => {
  const { conn } = await fakeLnd(t)
  const events: string[] = []
  const client = new LndClient(conn, { onEvent: e => events.push(e.type) })
  t.after(() => client.close())
  const updates: string[] = []
  const p = await client.sendPayment({ paymentRequest: 'lnbcrt1fake', feeLimitMsat: 10n, timeoutSeconds: 5 }, u => updates.push(u.status))
  assert.equal(p.status, 'SUCCEEDED')
  assert.equal(p.preimage, 'bb'.repeat(32))
  assert.deepEqual(updates, ['IN_FLIGHT', 'SUCCEEDED'])
  assert.deepEqual(events, ['stream_open', 'stream_closed'])
  await assert.rejects(client.trackPayment('cc'.repeat(32)), (e: unknown) => e instanceof LndError && e.grpcCode === grpc.status.NOT_FOUND)
})

test('bad connection settings are refused before dialling', () => {
  const conn: LndConnection = { name: 'alice', host: '127.0.0.1:10009', tlsCert: Buffer.from('-----BEGIN CERTIFICATE-----\n'), macaroon: MACAROON, pubkey: PUBKEY }
  const refuses = (over: Partial<LndConnection>, fragment: string) =>
    assert.throws(() => new LndClient({ ...conn, ...over }), (e: unknown) => e instanceof LndError && e.code === 'bad_connection' && e.message.includes(fragment))
  refuses({ host: 'localhost' }, 'host:port')
  refuses({ tlsCert: Buffer.from('not a cert') }, 'PEM')
  refuses({ macaroon: Buffer.alloc(0) }, 'macaroon')
  refuses({ pubkey: '02' + 'AB'.repeat(32) }, 'pubkey')
  refuses({ pubkey: '04' + '11'.repeat(32) }, 'pubkey')
})

test('payment updates become typed payments; bad values are typed errors', () => {
  const raw = {
    payment_hash: 'aa'.repeat(32), status: 'SUCCEEDED', payment_preimage: 'bb'.repeat(32), value_msat: '1000000', fee_msat: '1000', failure_reason: 'FAILURE_REASON_NONE',
    htlcs: [{ attempt_id: '18446744073709551615', status: 'SUCCEEDED', route: { total_amt_msat: '1001000', total_fees_msat: '1000', hops: [{ chan_id: '123' }] }, failure: null }]
  }
  const p = toPayment(raw, 'alice')
  assert.equal(p.valueMsat, 1000000n)
  assert.deepEqual(p.attempts, [{ attemptId: 2n ** 64n - 1n, status: 'SUCCEEDED', firstHopChanId: 123n, totalAmountMsat: 1001000n, totalFeesMsat: 1000n, failureCode: null, failureSourceIndex: null }])
  assert.throws(() => toPayment({ ...raw, status: 'WEIRD' }, 'alice'), { code: 'bad_response' })
  assert.throws(() => toPayment({ ...raw, fee_msat: '-1' }, 'alice'), { code: 'bad_response' })
  assert.throws(() => toPayment({ ...raw, fee_msat: '18446744073709551616' }, 'alice'), { code: 'bad_response' })
})

test('only FinalHtlcEvents pass the HTLC event filter', () => {
  const base = { incoming_channel_id: '7', incoming_htlc_id: '3', timestamp_ns: '1700000000000000000' }
  assert.deepEqual(toFinalHtlcEvent({ ...base, event: 'final_htlc_event', final_htlc_event: { settled: false, offchain: true } }, 'alice'),
    { incomingChanId: 7n, incomingHtlcId: 3n, settled: false, offchain: true, timestampNs: 1700000000000000000n })
  assert.equal(toFinalHtlcEvent({ ...base, event: 'subscribed_event' }, 'alice'), null)
})

// The lnmux-compatible application API over real gRPC on 127.0.0.1: a client built from the vendored
// proto/lnmux/lnmux.proto exactly as a Node lnmux client would (proto-loader + grpc-js), against
// ApiServer over a small in-memory InvoiceApi that behaves like the mux for the calls it serves.
import { execFile } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import { existsSync } from 'node:fs'
import { homedir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import * as grpc from '@grpc/grpc-js'
import * as protoLoader from '@grpc/proto-loader'
import { ApiServer, ApiServerError, SUBSCRIBER_QUEUE_SIZE } from '../../src/api/server.ts'
import {
  ApiError,
  type AcceptedListener,
  type AcceptedSet,
  type AddInvoiceParams,
  type ApiInfo,
  type CreatedInvoice,
  type FinalSettlementStatus,
  type InvoiceApi,
  type ListedInvoice,
  type ListInvoicesParams
} from '../../src/api/service.ts'
import { MuxError } from '../../src/mux/types.ts'
import { selfSignedCert } from '../../src/sim/tls.ts'

const PROTO_DIR = fileURLToPath(new URL('../../proto/lnmux/', import.meta.url))

const run = promisify(execFile)

// grpcurl built with `go install github.com/fullstorydev/grpcurl/cmd/grpcurl@latest`, if present.
function findGrpcurl(): string | undefined {
  const dirs = [...(process.env.PATH ?? '').split(':'), join(process.env.GOPATH ?? join(homedir(), 'go'), 'bin')]
  return dirs.filter((dir) => dir !== '').map((dir) => join(dir, 'grpcurl')).find((path) => existsSync(path))
}

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex')
const sha256 = (b: Uint8Array) => new Uint8Array(createHash('sha256').update(b).digest())
const equal = (a: Uint8Array, b: Uint8Array) => Buffer.from(a).equals(Buffer.from(b))

// ---------------------------------------------------------------------------------------------
// In-memory facade: invoices added here, sets accepted by the test, settlement as the mux does it.

class MemoryInvoiceApi implements InvoiceApi {
  readonly info: ApiInfo = {
    pubKey: new Uint8Array(33).fill(2),
    network: 'regtest',
    nodes: [new Uint8Array(33).fill(3), new Uint8Array(33).fill(4)],
    autoSettle: false
  }
  readonly added: AddInvoiceParams[] = []
  readonly listeners = new Set<AcceptedListener>()
  readonly abortedWaits: string[] = []
  /** When set, every call throws it (a leader change, an outage). */
  failure: Error | null = null
  private readonly created = new Map<string, { preimage: Uint8Array; amountMsat: bigint }>()
  private readonly accepted = new Map<string, AcceptedSet>()
  private readonly incomplete = new Set<string>()
  private readonly cancelled = new Set<string>()
  private readonly settled = new Map<string, { setId: Uint8Array; invoice: ListedInvoice }>()
  private readonly waiters = new Map<string, Array<(status: FinalSettlementStatus) => void>>()
  private nextSequence = 1n
  private clock = 1_700_000_000

  private check(): void {
    if (this.failure) throw this.failure
  }

  async getInfo(): Promise<ApiInfo> {
    this.check()
    return this.info
  }

  async addInvoice(params: AddInvoiceParams): Promise<CreatedInvoice> {
    this.check()
    this.added.push(params)
    const preimage = new Uint8Array(randomBytes(32))
    const hash = sha256(preimage)
    this.created.set(hex(hash), { preimage, amountMsat: params.amtMsat })
    return { paymentRequest: `lnbcrt-test-${hex(hash).slice(0, 8)}`, preimage, hash }
  }

  /** Test side: HTLCs arrived for `hash`, but not yet its amount. */
  partial(hash: Uint8Array): void {
    this.incomplete.add(hex(hash))
  }

  /** Test side: the set reached the invoice amount. */
  accept(hash: Uint8Array, setId: Uint8Array = new Uint8Array(randomBytes(32))): AcceptedSet {
    const set = { hash, setId }
    this.incomplete.delete(hex(hash))
    this.accepted.set(hex(hash), set)
    for (const listener of [...this.listeners]) listener(set)
    return set
  }

  subscribeAccepted(listener: AcceptedListener): () => void {
    this.check()
    for (const set of this.accepted.values()) listener(set)
    this.listeners.add(listener)
    return () => this.listeners.delete(listener)
  }

  async settle(hash: Uint8Array, setId: Uint8Array): Promise<void> {
    this.check()
    const key = hex(hash)
    const done = this.settled.get(key)
    if (done !== undefined) {
      if (!equal(done.setId, setId)) throw new MuxError('set_id_mismatch', 'settlement was requested for another set of this invoice')
      return
    }
    if (this.incomplete.has(key)) throw new MuxError('not_accepted', 'the HTLC set has not reached the invoice amount')
    const set = this.accepted.get(key)
    const invoice = this.created.get(key)
    if (set === undefined || invoice === undefined) throw new MuxError('invoice_not_found', 'no accepted HTLC set for this hash')
    if (!equal(set.setId, setId)) throw new MuxError('set_id_mismatch', 'the accepted set has another id')
    this.accepted.delete(key)
    this.settled.set(key, {
      setId,
      invoice: {
        sequenceNumber: this.nextSequence++,
        hash,
        preimage: invoice.preimage,
        amountMsat: invoice.amountMsat,
        status: 'settle_requested',
        settleRequestedAt: this.clock++,
        finalizedAt: null
      }
    })
  }

  async cancel(hash: Uint8Array, setId?: Uint8Array): Promise<void> {
    this.check()
    const key = hex(hash)
    if (this.settled.has(key)) throw new MuxError('invoice_settled', 'settlement was already requested')
    const set = this.accepted.get(key)
    if (set !== undefined && setId !== undefined && !equal(set.setId, setId)) throw new MuxError('set_id_mismatch', 'the accepted set has another id')
    this.accepted.delete(key)
    this.cancelled.add(key)
  }

  /** Test side: LND reported the final resolution of every HTLC of the settled set. */
  finalize(hash: Uint8Array, status: FinalSettlementStatus): void {
    const key = hex(hash)
    const done = this.settled.get(key)
    assert.ok(done, 'finalize only a settled invoice')
    done.invoice = { ...done.invoice, status, finalizedAt: this.clock++ }
    for (const resolve of this.waiters.get(key) ?? []) resolve(status)
    this.waiters.delete(key)
  }

  waitForFinalStatus(hash: Uint8Array, signal: AbortSignal): Promise<FinalSettlementStatus> {
    this.check()
    const key = hex(hash)
    const done = this.settled.get(key)
    if (done === undefined) return Promise.reject(new ApiError('not_found', 'no settlement was requested for this hash'))
    const status = done.invoice.status
    if (status !== 'settle_requested') return Promise.resolve(status)
    return new Promise((resolve, reject) => {
      const list = this.waiters.get(key) ?? []
      list.push(resolve)
      this.waiters.set(key, list)
      signal.addEventListener('abort', () => {
        this.abortedWaits.push(key)
        reject(new ApiError('aborted', 'wait aborted'))
      })
    })
  }

  async listInvoices(params: ListInvoicesParams): Promise<ListedInvoice[]> {
    this.check()
    return [...this.settled.values()]
      .map((s) => s.invoice)
      .filter((i) => i.sequenceNumber >= params.sequenceStart)
      .slice(0, params.maxCount)
  }
}

// ---------------------------------------------------------------------------------------------
// An lnmux client as an application would build it from the vendored proto.

function lnmuxClientCtor(): grpc.ServiceClientConstructor {
  const def = protoLoader.loadSync('lnmux.proto', { keepCase: true, longs: String, enums: String, defaults: true, includeDirs: [PROTO_DIR] })
  return (grpc.loadPackageDefinition(def).lnmux as grpc.GrpcObject).Service as grpc.ServiceClientConstructor
}
const LnmuxClient = lnmuxClientCtor()

type Msg = Record<string, any>

function rpc(client: grpc.Client, method: string, request: Msg): Promise<Msg> {
  return new Promise((resolve, reject) => {
    const fn = (client as unknown as Record<string, Function>)[method]!
    fn.call(client, request, { deadline: Date.now() + 5000 }, (err: grpc.ServiceError | null, res: Msg) => (err ? reject(err) : resolve(res)))
  })
}

async function rpcError(promise: Promise<unknown>): Promise<grpc.ServiceError> {
  try {
    await promise
  } catch (err) {
    return err as grpc.ServiceError
  }
  assert.fail('expected the call to fail')
}

/** Read `count` messages from a server stream, or its ending error. */
function read(stream: grpc.ClientReadableStream<Msg>, count: number): Promise<{ messages: Msg[]; error?: grpc.ServiceError }> {
  return new Promise((resolve) => {
    const messages: Msg[] = []
    const done = (error?: grpc.ServiceError) => {
      stream.removeAllListeners('data')
      resolve({ messages, error })
    }
    stream.on('data', (m: Msg) => {
      messages.push(m)
      if (messages.length === count) done()
    })
    stream.once('error', (e: grpc.ServiceError) => done(e))
  })
}

function subscribe(client: grpc.Client): grpc.ClientReadableStream<Msg> {
  return (client as unknown as { SubscribeInvoiceAccepted(r: Msg): grpc.ClientReadableStream<Msg> }).SubscribeInvoiceAccepted({})
}

async function until(cond: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 200 && !cond(); i++) await new Promise((r) => setTimeout(r, 5))
  assert.ok(cond(), `timed out waiting for ${what}`)
}

async function setup(t: test.TestContext, opts: { shutdownGraceMs?: number } = {}) {
  const api = new MemoryInvoiceApi()
  const server = await ApiServer.start({ api, listen: { host: '127.0.0.1', port: 0 }, shutdownGraceMs: opts.shutdownGraceMs })
  const client = new LnmuxClient(`127.0.0.1:${server.address.port}`, grpc.credentials.createInsecure())
  t.after(async () => {
    client.close()
    await server.close()
  })
  return { api, server, client }
}

/** An invoice made through the API and an accepted set for it. */
async function acceptedInvoice(api: MemoryInvoiceApi, client: grpc.Client, amtMsat = 5000) {
  const created = await rpc(client, 'AddInvoice', { amt_msat: String(amtMsat), expiry_secs: '600' })
  const set = api.accept(new Uint8Array(created.hash))
  return { created, set }
}

// ---------------------------------------------------------------------------------------------

test('GetInfo: identity key, network, node keys and autoSettle in lnmux field order', async (t) => {
  const { api, client } = await setup(t)
  const res = await rpc(client, 'GetInfo', {})
  assert.deepEqual(new Uint8Array(res.pub_key), api.info.pubKey)
  assert.equal(res.network, 'regtest')
  assert.deepEqual(res.nodes.map((n: Msg) => hex(n.pub_key)), api.info.nodes.map(hex))
  assert.equal(res.auto_settle, false)
})

test('AddInvoice: passes the checked request to the facade and returns request, preimage and hash', async (t) => {
  const { api, client } = await setup(t)
  const res = await rpc(client, 'AddInvoice', { amt_msat: '123456789012', description: 'coffee', expiry_secs: '600' })
  assert.deepEqual(api.added[0], { amtMsat: 123456789012n, description: 'coffee', expirySecs: 600 })
  assert.match(res.payment_request, /^lnbcrt-test-/)
  assert.deepEqual(new Uint8Array(res.hash), sha256(res.preimage))

  const descriptionHash = sha256(Buffer.from('a long description'))
  await rpc(client, 'AddInvoice', { amt_msat: '1000', description_hash: Buffer.from(descriptionHash), expiry_secs: '60' })
  assert.deepEqual(api.added[1], { amtMsat: 1000n, description: '', descriptionHash, expirySecs: 60 })
})

test('AddInvoice: bad input is INVALID_ARGUMENT with the field named, and never reaches the facade', async (t) => {
  const { api, client } = await setup(t)
  const cases: Array<[Msg, RegExp]> = [
    [{ amt_msat: '0', expiry_secs: '600' }, /amt_msat not specified/],
    [{ amt_msat: '-5', expiry_secs: '600' }, /amt_msat not specified/],
    [{ amt_msat: '1000', expiry_secs: '0' }, /expiry_secs not specified/],
    [{ amt_msat: '1000', expiry_secs: '600', description_hash: Buffer.alloc(31) }, /description_hash must be 32 bytes, got 31/],
    [{ amt_msat: '1000', expiry_secs: '600', description: 'x', description_hash: Buffer.alloc(32) }, /description or description_hash, not both/]
  ]
  for (const [request, message] of cases) {
    const err = await rpcError(rpc(client, 'AddInvoice', request))
    assert.equal(err.code, grpc.status.INVALID_ARGUMENT, JSON.stringify(request))
    assert.match(err.details, message)
  }
  assert.equal(api.added.length, 0)
})

test('SubscribeInvoiceAccepted: replays sets already accepted, then streams new ones; cancel unsubscribes', async (t) => {
  const { api, client } = await setup(t)
  const first = await acceptedInvoice(api, client)
  const second = await acceptedInvoice(api, client)
  const sub = subscribe(client)
  const replay = await read(sub, 2)
  assert.deepEqual(
    replay.messages.map((m) => [hex(m.hash), hex(m.set_id)]),
    [first.set, second.set].map((s) => [hex(s.hash), hex(s.setId)])
  )
  const third = await acceptedInvoice(api, client)
  const live = await read(sub, 1)
  assert.deepEqual([hex(live.messages[0]!.hash), hex(live.messages[0]!.set_id)], [hex(third.set.hash), hex(third.set.setId)])

  sub.cancel()
  await until(() => api.listeners.size === 0, 'the server to unsubscribe')
})

test('SubscribeInvoiceAccepted: a replay larger than the queue arrives whole; a reader left behind is cut off', async (t) => {
  const { api, client } = await setup(t)
  const count = SUBSCRIBER_QUEUE_SIZE + 50
  for (let i = 0; i < count; i++) api.accept(new Uint8Array(randomBytes(32)))
  const sub = subscribe(client)
  const replay = await read(sub, count)
  assert.equal(replay.error, undefined)
  assert.equal(replay.messages.length, count)

  // A burst the server cannot hand to HTTP/2 as fast as it comes: lnmux's "buffer overflow".
  for (let i = 0; i < count; i++) api.accept(new Uint8Array(randomBytes(32)))
  const burst = await read(sub, count)
  assert.equal(burst.error?.code, grpc.status.RESOURCE_EXHAUSTED)
  assert.match(burst.error.details, /buffer overflow/)
  assert.ok(burst.messages.length <= SUBSCRIBER_QUEUE_SIZE, `${burst.messages.length} events before the cut`)
  await until(() => api.listeners.size === 0, 'the server to unsubscribe')
})

test('SettleInvoice: settles the accepted set and is idempotent', async (t) => {
  const { api, client } = await setup(t)
  const { set } = await acceptedInvoice(api, client)
  const request = { hash: Buffer.from(set.hash), set_id: Buffer.from(set.setId) }
  assert.deepEqual(await rpc(client, 'SettleInvoice', request), {})
  assert.deepEqual(await rpc(client, 'SettleInvoice', request), {})
  // Settled sets are no longer replayed to new subscribers.
  const sub = subscribe(client)
  await until(() => api.listeners.size === 1, 'the subscription')
  const next = await acceptedInvoice(api, client)
  const first = await read(sub, 1)
  assert.equal(hex(first.messages[0]!.hash), hex(next.set.hash))
  sub.cancel()
})

test('SettleInvoice and CancelInvoice: status codes for bad input and wrong states', async (t) => {
  const { api, client } = await setup(t)
  const { set } = await acceptedInvoice(api, client)
  const hash = Buffer.from(set.hash)
  const setId = Buffer.from(set.setId)
  const expect = async (method: string, request: Msg, code: grpc.status, details: RegExp) => {
    const err = await rpcError(rpc(client, method, request))
    assert.equal(err.code, code, `${method} ${details}: ${err.details}`)
    assert.match(err.details, details)
  }
  await expect('SettleInvoice', { hash: hash.subarray(1), set_id: setId }, grpc.status.INVALID_ARGUMENT, /hash must be 32 bytes, got 31/)
  await expect('SettleInvoice', { hash }, grpc.status.INVALID_ARGUMENT, /set_id must be 32 bytes, got 0/)
  await expect('CancelInvoice', { hash: Buffer.alloc(33) }, grpc.status.INVALID_ARGUMENT, /hash must be 32 bytes, got 33/)
  await expect('SettleInvoice', { hash: Buffer.alloc(32, 9), set_id: setId }, grpc.status.NOT_FOUND, /no accepted HTLC set/)
  await expect('SettleInvoice', { hash, set_id: Buffer.alloc(32, 1) }, grpc.status.FAILED_PRECONDITION, /another id/)

  const pending = await rpc(client, 'AddInvoice', { amt_msat: '9000', expiry_secs: '600' })
  api.partial(new Uint8Array(pending.hash))
  await expect('SettleInvoice', { hash: pending.hash, set_id: setId }, grpc.status.FAILED_PRECONDITION, /not reached the invoice amount/)

  await rpc(client, 'SettleInvoice', { hash, set_id: setId })
  await expect('CancelInvoice', { hash }, grpc.status.FAILED_PRECONDITION, /already requested/)

  api.failure = new ApiError('not_leader', 'no leader: this agent is a follower and the leader is unreachable')
  await expect('SettleInvoice', { hash, set_id: setId }, grpc.status.UNAVAILABLE, /no leader/)
  api.failure = new Error('disk on fire /secret/path')
  await expect('GetInfo', {}, grpc.status.INTERNAL, /^internal error$/)
})

test('CancelInvoice: cancels an accepted set, by hash alone or with its set id', async (t) => {
  const { api, client } = await setup(t)
  const a = await acceptedInvoice(api, client)
  const b = await acceptedInvoice(api, client)
  assert.deepEqual(await rpc(client, 'CancelInvoice', { hash: Buffer.from(a.set.hash) }), {})
  const wrong = await rpcError(rpc(client, 'CancelInvoice', { hash: Buffer.from(b.set.hash), set_id: Buffer.alloc(32, 7) }))
  assert.equal(wrong.code, grpc.status.FAILED_PRECONDITION)
  assert.deepEqual(await rpc(client, 'CancelInvoice', { hash: Buffer.from(b.set.hash), set_id: Buffer.from(b.set.setId) }), {})
  const settle = await rpcError(rpc(client, 'SettleInvoice', { hash: Buffer.from(a.set.hash), set_id: Buffer.from(a.set.setId) }))
  assert.equal(settle.code, grpc.status.NOT_FOUND)
})

test('WaitForInvoiceFinalStatus: resolves when the final status arrives later; NOT_FOUND before any settle request', async (t) => {
  const { api, client } = await setup(t)
  const a = await acceptedInvoice(api, client)
  const b = await acceptedInvoice(api, client)
  const notYet = await rpcError(rpc(client, 'WaitForInvoiceFinalStatus', { hash: Buffer.from(a.set.hash) }))
  assert.equal(notYet.code, grpc.status.NOT_FOUND)
  const bad = await rpcError(rpc(client, 'WaitForInvoiceFinalStatus', { hash: Buffer.alloc(5) }))
  assert.equal(bad.code, grpc.status.INVALID_ARGUMENT)

  for (const x of [a, b]) await rpc(client, 'SettleInvoice', { hash: Buffer.from(x.set.hash), set_id: Buffer.from(x.set.setId) })
  let answered = false
  const waitA = rpc(client, 'WaitForInvoiceFinalStatus', { hash: Buffer.from(a.set.hash) }).finally(() => { answered = true })
  const waitB = rpc(client, 'WaitForInvoiceFinalStatus', { hash: Buffer.from(b.set.hash) })
  await new Promise((r) => setTimeout(r, 50))
  assert.equal(answered, false, 'no answer before the final resolution')
  api.finalize(a.set.hash, 'settled')
  api.finalize(b.set.hash, 'failed')
  assert.deepEqual(await waitA, { invoice_status: 'SETTLED' })
  assert.deepEqual(await waitB, { invoice_status: 'FAILED' })
  // Already final: answered at once.
  assert.deepEqual(await rpc(client, 'WaitForInvoiceFinalStatus', { hash: Buffer.from(a.set.hash) }), { invoice_status: 'SETTLED' })
})

test('WaitForInvoiceFinalStatus: a client that gives up aborts the facade wait', async (t) => {
  const { api, client } = await setup(t)
  const { set } = await acceptedInvoice(api, client)
  await rpc(client, 'SettleInvoice', { hash: Buffer.from(set.hash), set_id: Buffer.from(set.setId) })
  const err = await new Promise<grpc.ServiceError>((resolve) => {
    const fn = (client as unknown as Record<string, Function>).WaitForInvoiceFinalStatus!
    fn.call(client, { hash: Buffer.from(set.hash) }, { deadline: Date.now() + 100 }, resolve)
  })
  assert.equal(err.code, grpc.status.DEADLINE_EXCEEDED)
  await until(() => api.abortedWaits.length === 1, 'the facade wait to be aborted')
  assert.equal(api.abortedWaits[0], hex(set.hash))
})

test('ListInvoices: pages by sequence number, hash and preimage each in their own field', async (t) => {
  const { api, client } = await setup(t)
  const empty = await rpc(client, 'ListInvoices', { sequence_start: '0', max_invoices_count: '10' })
  assert.deepEqual(empty, { invoice: [], first_sequence_number: '0', last_sequence_number: '0' })

  const amounts = [1000, 2000, 3000, 4000, 5000]
  const sets = []
  for (const amt of amounts) sets.push((await acceptedInvoice(api, client, amt)).set)
  for (const set of sets) await rpc(client, 'SettleInvoice', { hash: Buffer.from(set.hash), set_id: Buffer.from(set.setId) })
  api.finalize(sets[0]!.hash, 'settled')
  api.finalize(sets[1]!.hash, 'failed')

  const page1 = await rpc(client, 'ListInvoices', { sequence_start: '0', max_invoices_count: '2' })
  assert.equal(page1.first_sequence_number, '1')
  assert.equal(page1.last_sequence_number, '2')
  assert.deepEqual(page1.invoice.map((i: Msg) => i.status), ['SETTLED', 'FAILED'])
  const page2 = await rpc(client, 'ListInvoices', { sequence_start: String(Number(page1.last_sequence_number) + 1), max_invoices_count: '2' })
  const page3 = await rpc(client, 'ListInvoices', { sequence_start: String(Number(page2.last_sequence_number) + 1), max_invoices_count: '2' })
  assert.deepEqual([page2.first_sequence_number, page2.last_sequence_number, page3.first_sequence_number, page3.last_sequence_number], ['3', '4', '5', '5'])

  const all = [...page1.invoice, ...page2.invoice, ...page3.invoice]
  assert.deepEqual(all.map((i: Msg) => i.sequence_number), ['1', '2', '3', '4', '5'])
  assert.deepEqual(all.map((i: Msg) => i.amount_msat), amounts.map(String))
  for (const [n, invoice] of all.entries()) {
    assert.equal(hex(invoice.hash), hex(sets[n]!.hash), 'hash field holds the payment hash')
    assert.equal(hex(sha256(invoice.preimage)), hex(invoice.hash), 'preimage field holds the preimage')
    assert.ok(Number(invoice.settle_requested_at) > 0)
  }
  assert.ok(Number(all[0].finalized_at) > Number(all[0].settle_requested_at))
  assert.deepEqual(all.slice(2).map((i: Msg) => [i.status, i.finalized_at]), [['SETTLE_REQUESTED', '0'], ['SETTLE_REQUESTED', '0'], ['SETTLE_REQUESTED', '0']])

  const none = await rpcError(rpc(client, 'ListInvoices', { sequence_start: '0', max_invoices_count: '0' }))
  assert.equal(none.code, grpc.status.INVALID_ARGUMENT)
  assert.match(none.details, /max_invoices_count/)
})

test('close(): streams and waits end with UNAVAILABLE, the server stops at once', async (t) => {
  const { api, server, client } = await setup(t, { shutdownGraceMs: 5000 })
  const { set } = await acceptedInvoice(api, client)
  await rpc(client, 'SettleInvoice', { hash: Buffer.from(set.hash), set_id: Buffer.from(set.setId) })
  const sub = subscribe(client)
  await until(() => api.listeners.size === 1, 'the subscription')
  const waiting = rpcError(rpc(client, 'WaitForInvoiceFinalStatus', { hash: Buffer.from(set.hash) }))
  await new Promise((r) => setTimeout(r, 20))
  const streamEnd = read(sub, 1)
  const started = Date.now()
  await server.close()
  assert.ok(Date.now() - started < 2000, 'no wait for the grace period')
  assert.equal((await streamEnd).error?.code, grpc.status.UNAVAILABLE)
  const waitErr = await waiting
  assert.equal(waitErr.code, grpc.status.UNAVAILABLE)
  assert.match(waitErr.details, /shutting down/)
  assert.equal(api.listeners.size, 0)
  const after = await rpcError(rpc(client, 'GetInfo', {}))
  assert.equal(after.code, grpc.status.UNAVAILABLE)
})

test('listening: plaintext refused off loopback; TLS served and required when configured', async (t) => {
  const api = new MemoryInvoiceApi()
  for (const host of ['0.0.0.0', '::', '192.0.2.10']) {
    await assert.rejects(ApiServer.start({ api, listen: { host, port: 0 } }), (err: unknown) => {
      assert.ok(err instanceof ApiServerError)
      assert.equal(err.code, 'tls_required')
      assert.match(err.message, /not a loopback address/)
      return true
    })
  }

  const tls = await selfSignedCert('highwire-api')
  const server = await ApiServer.start({ api, listen: { host: '127.0.0.1', port: 0 }, tls })
  const secure = new LnmuxClient(`localhost:${server.address.port}`, grpc.credentials.createSsl(tls.cert))
  const plain = new LnmuxClient(`127.0.0.1:${server.address.port}`, grpc.credentials.createInsecure())
  t.after(async () => {
    secure.close()
    plain.close()
    await server.close()
  })
  assert.equal((await rpc(secure, 'GetInfo', {})).network, 'regtest')
  assert.equal((await rpcError(rpc(plain, 'GetInfo', {}))).code, grpc.status.UNAVAILABLE)

  await assert.rejects(ApiServer.start({ api, listen: { host: '127.0.0.1', port: server.address.port }, tls }), (err: unknown) => {
    assert.ok(err instanceof ApiServerError)
    assert.equal(err.code, 'bind_failed')
    return true
  })
})

const GRPCURL = findGrpcurl()

test('grpcurl with the vendored proto, as in lnmux\'s README: GetInfo, AddInvoice, SettleInvoice, ListInvoices', {
  skip: GRPCURL === undefined ? 'grpcurl not installed (go install github.com/fullstorydev/grpcurl/cmd/grpcurl@latest)' : false
}, async (t) => {
  const { api, server } = await setup(t)
  const grpcurl = async (method: string, body: Msg = {}): Promise<Msg> => {
    const args = ['-plaintext', '-import-path', PROTO_DIR, '-proto', 'lnmux.proto', '-d', JSON.stringify(body), `127.0.0.1:${server.address.port}`, `lnmux.Service/${method}`]
    const { stdout } = await run(GRPCURL!, args, { timeout: 10_000 })
    return JSON.parse(stdout) as Msg
  }
  const info = await grpcurl('GetInfo')
  assert.equal(Buffer.from(info.pubKey, 'base64').toString('hex'), hex(api.info.pubKey))
  assert.equal(info.network, 'regtest')
  assert.deepEqual(info.nodes.map((n: Msg) => Buffer.from(n.pubKey, 'base64').toString('hex')), api.info.nodes.map(hex))

  const created = await grpcurl('AddInvoice', { amt_msat: 20000, expiry_secs: 600 })
  assert.deepEqual(api.added[0], { amtMsat: 20000n, description: '', expirySecs: 600 })
  assert.match(created.paymentRequest, /^lnbcrt-test-/)
  const hash = Buffer.from(created.hash, 'base64')
  assert.equal(hex(sha256(Buffer.from(created.preimage, 'base64'))), hex(hash))

  const set = api.accept(new Uint8Array(hash))
  assert.deepEqual(await grpcurl('SettleInvoice', { hash: created.hash, set_id: Buffer.from(set.setId).toString('base64') }), {})
  const listed = await grpcurl('ListInvoices', { max_invoices_count: 10 })
  assert.equal(listed.invoice.length, 1)
  assert.equal(listed.invoice[0].hash, created.hash)
  assert.equal(listed.invoice[0].preimage, created.preimage)
  assert.equal(listed.invoice[0].status ?? 'SETTLE_REQUESTED', 'SETTLE_REQUESTED')
  assert.equal(listed.firstSequenceNumber, '1')
})

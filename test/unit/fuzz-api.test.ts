// Fuzzing the lnmux-compatible API over real gRPC on 127.0.0.1: recorded lnmux requests
// (test/fixtures/recorded.json) are mutated as bytes and sent as they are, below any client-side
// serializer. Every call must end with OK or a deliberate status (INVALID_ARGUMENT from the
// server's checks; INTERNAL only from grpc-js itself when protobuf cannot decode the bytes, never
// from an untyped error in our handlers, which the server logs); the facade only ever sees
// requests that passed the wire checks; and the server keeps answering a well-formed call.
// Seeded: HIGHWIRE_FUZZ_SEED=<n> replays a run.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import * as grpc from '@grpc/grpc-js'
import { ApiServer } from '../../src/api/server.ts'
import type { AddInvoiceParams, InvoiceApi, ListInvoicesParams } from '../../src/api/service.ts'
import type { Logger } from '../../src/log.ts'
import { RECORDED_PATH, type Recorded } from '../fixtures/record.ts'
import { Outcomes, fuzzSeed, mutateMany, replayHint, rng, toHex } from './fuzz-kit.ts'

const seed = fuzzSeed()
const FILE = 'test/unit/fuzz-api.test.ts'
const recorded = JSON.parse(readFileSync(RECORDED_PATH, 'utf8')) as Recorded
const requests = Object.entries(recorded.lnmux).map(([method, hex]) => ({ method, bytes: Buffer.from(hex, 'hex') }))

/** A facade that accepts anything well-formed and checks that it is. */
class CheckingApi implements InvoiceApi {
  readonly violations: string[] = []
  private expect(ok: boolean, what: string): void {
    if (!ok) this.violations.push(what)
  }
  async getInfo() {
    return { pubKey: new Uint8Array(33).fill(2), network: 'regtest', nodes: [], autoSettle: false }
  }
  async addInvoice(p: AddInvoiceParams) {
    this.expect(p.amtMsat > 0n && p.expirySecs > 0 && Number.isSafeInteger(p.expirySecs), `addInvoice ${p.amtMsat} ${p.expirySecs}`)
    this.expect(p.descriptionHash === undefined || (p.descriptionHash.length === 32 && p.description === ''), 'addInvoice description')
    return { paymentRequest: 'lnbcrt1', preimage: new Uint8Array(32), hash: new Uint8Array(32) }
  }
  subscribeAccepted() {
    return () => {}
  }
  async settle(hash: Uint8Array, setId: Uint8Array) {
    this.expect(hash.length === 32 && setId.length === 32, 'settle lengths')
  }
  async cancel(hash: Uint8Array, setId?: Uint8Array) {
    this.expect(hash.length === 32 && (setId === undefined || setId.length === 32), 'cancel lengths')
  }
  async waitForFinalStatus(hash: Uint8Array) {
    this.expect(hash.length === 32, 'wait length')
    return 'settled' as const
  }
  async listInvoices(p: ListInvoicesParams) {
    this.expect(p.maxCount >= 1 && p.maxCount <= 1000, `list count ${p.maxCount}`)
    return []
  }
}

function recordingLogger(errors: string[]): Logger {
  const log: Logger = {
    debug() {},
    info() {},
    warn() {},
    error: (message, fields) => void errors.push(`${message} ${JSON.stringify(fields, (_k, v) => (v instanceof Error ? v.stack : v))}`),
    child: () => log
  }
  return log
}

const identity = (b: Buffer): Buffer => b

function call(client: grpc.Client, method: string, bytes: Buffer): Promise<grpc.status> {
  return new Promise((resolve) => {
    client.makeUnaryRequest(`/lnmux.Service/${method}`, identity, identity, bytes, { deadline: Date.now() + 5000 }, (err) => {
      resolve(err === null ? grpc.status.OK : (err.code ?? grpc.status.UNKNOWN))
    })
  })
}

test('fuzz: lnmux.Service over gRPC with mutated recorded requests', { timeout: 30_000 }, async (t) => {
  t.diagnostic(`HIGHWIRE_FUZZ_SEED=${seed}`)
  const api = new CheckingApi()
  const errors: string[] = []
  const server = await ApiServer.start({ api, listen: { host: '127.0.0.1', port: 0 }, log: recordingLogger(errors), shutdownGraceMs: 100 })
  const client = new grpc.Client(`127.0.0.1:${server.address.port}`, grpc.credentials.createInsecure())
  t.after(async () => {
    client.close()
    await server.close()
  })
  const r = rng(seed)
  const outcomes = new Outcomes()
  const allowed = new Set([grpc.status.OK, grpc.status.INVALID_ARGUMENT, grpc.status.INTERNAL])
  for (const { method, bytes } of requests) assert.equal(await call(client, method, bytes), grpc.status.OK, `recorded ${method}`)
  for (let i = 0; i < 1500; i++) {
    const { method, bytes } = r.pick(requests)
    const input = Buffer.from(mutateMany(r, bytes, r.pick(requests).bytes))
    const status = await call(client, method, input)
    const where = `seed ${seed} (${replayHint(seed, FILE)}): ${method} ${toHex(input)}`
    assert.ok(allowed.has(status), `${where} answered ${grpc.status[status]}`)
    assert.deepEqual(errors, [], `${where}: an untyped error reached the server`)
    assert.deepEqual(api.violations, [], `${where}: the facade got a request the wire checks should have refused`)
    outcomes.add(`${method}:${grpc.status[status]}`)
  }
  t.diagnostic(outcomes.toString())
  assert.equal(await call(client, 'GetInfo', Buffer.alloc(0)), grpc.status.OK)
  assert.ok([...outcomes.counts.keys()].some((k) => k.endsWith('INVALID_ARGUMENT')), outcomes.toString())
})

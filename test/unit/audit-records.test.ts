import { test } from 'node:test'
import assert from 'node:assert/strict'
import c from 'compact-encoding'
import {
  SCHEMA, FORMAT_VERSION, MASK, AuditRecordError, encodeRecord, encodeBlock, decodeBlock, maskSecrets, configRecord,
  type AuditRecord, type FieldKind, type RecordType
} from '../../src/audit/records.ts'
import { toAuditRecord, toMuxRecord } from '../../src/audit/mux-store.ts'
import type { MuxRecord } from '../../src/mux/types.ts'
import { bytes, htlc } from './audit-helpers.ts'

// A value of each field kind, varied by `i` so that records of one type differ.
function sample(kind: FieldKind, i: number): unknown {
  switch (kind) {
    case 'uint': return 1000 + i
    case 'u64': return (1n << 63n) + BigInt(i)
    case 'str': return `reason ${i} ✓`
    case 'bool': return i % 2 === 0
    case 'bytes': return bytes(i % 5, i)
    case 'key32': return bytes(32, i)
    case 'node33': return bytes(33, i + 1)
    case 'htlcs': return [htlc(i, 7n, BigInt(i), 1_000_000n), htlc(i + 1, 8n, 0n, 1n)]
  }
}

function sampleRecord(type: RecordType, i: number): AuditRecord {
  const r: Record<string, unknown> = { type, time: 1_700_000_000_000 + i }
  for (const [name, kind] of SCHEMA[type].fields) r[name] = sample(kind, i)
  return r as AuditRecord
}

const types = Object.keys(SCHEMA) as RecordType[]

test('every record type round-trips through a block, in order', () => {
  const records = types.flatMap((t, i) => [sampleRecord(t, i), sampleRecord(t, i + 100)])
  const block = encodeBlock(records.map(encodeRecord))
  assert.deepEqual(decodeBlock(block), records)
  assert.equal(new Set(Object.values(SCHEMA).map((s) => s.tag)).size, types.length, 'tags are unique')
})

test('a record written before a field existed decodes with that field at zero (settle term, format 1)', () => {
  const settle = { ...sampleRecord('settle_requested', 4), term: 5 } as AuditRecord
  const current = encodeRecord(settle)
  assert.equal(current[0], FORMAT_VERSION)
  // Format 1: the same bytes without the trailing term (one byte for a small uint).
  const v1 = Buffer.concat([Buffer.from([1]), current.subarray(1, current.length - 1)])
  assert.deepEqual(decodeBlock(encodeBlock([v1])), [{ ...settle, term: 0 }])
  assert.throws(() => decodeBlock(encodeBlock([Buffer.concat([Buffer.from([0]), current.subarray(1)])])), { code: 'unsupported_version' })
})

test('invalid fields are refused with a typed error when encoding', () => {
  const good = sampleRecord('settle_requested', 1) as AuditRecord & { type: 'settle_requested' }
  const cases: Array<[string, unknown]> = [
    ['hash', bytes(31, 1)],
    ['amountMsat', -1n],
    ['amountMsat', 1n << 64n],
    ['htlcs', [{ circuit: { node: bytes(32, 1), chanId: 1n, htlcId: 1n }, amountMsat: 1n }]],
    ['time', 1.5]
  ]
  for (const [field, value] of cases) {
    assert.throws(() => encodeRecord({ ...good, [field]: value } as AuditRecord), (e: unknown) =>
      e instanceof AuditRecordError && e.code === 'invalid_field' && e.message.includes(field), field)
  }
  assert.throws(() => encodeRecord({ ...good, type: 'nope' } as unknown as AuditRecord), { code: 'unknown_record_type' })
})

test('malformed blocks give precise errors, never a crash', () => {
  const block = encodeBlock([encodeRecord(sampleRecord('htlc_intercepted', 3))])
  for (let cut = 0; cut < block.length; cut++) {
    assert.throws(() => decodeBlock(block.subarray(0, cut)), { name: 'AuditRecordError' })
  }
  assert.throws(() => decodeBlock(Buffer.concat([block, Buffer.from([0])])), { code: 'malformed_record' })
  const record = (version: number, tag: number): Uint8Array =>
    Buffer.concat([c.encode(c.uint, 1), c.encode(c.uint, version), c.encode(c.uint, tag), c.encode(c.uint, 0)])
  assert.throws(() => decodeBlock(record(FORMAT_VERSION + 1, 1)), { code: 'unsupported_version' })
  assert.throws(() => decodeBlock(record(FORMAT_VERSION, 9999)), { code: 'unknown_record_type' })
  assert.throws(() => decodeBlock(c.encode(c.uint, 1_000_000)), { code: 'malformed_record' })
})

test('maskSecrets masks secret-named keys at every depth and keeps everything else', () => {
  const identityKey = 'aa'.repeat(32)
  const config = {
    cluster: { secret: 'cluster-secret-value', members: ['k1'] },
    candidate: { identityKey, identity_key: identityKey },
    nodes: [
      { alias: 'alice', lnd: { macaroon: 'mac-hex', macaroonPath: '/x/admin.macaroon', tls: { certPath: '/x/tls.cert' } } },
      { alias: 'bob', lnd: { macaroon: Buffer.from('raw-mac'), deeper: [[{ privateKey: 'pk', password: 'pw' }]] } }
    ],
    extra: new Map<string, unknown>([['apiToken', 't'], ['port', 9735]]),
    preimage: 'kept on purpose',
    Secret: { nested: 'whole subtree masked' }
  }
  const masked = maskSecrets(config) as typeof config
  const json = configRecord(config, 1).json
  for (const leaked of ['cluster-secret-value', identityKey, 'mac-hex', 'admin.macaroon', 'raw-mac', '"pk"', '"pw"', 'whole subtree']) {
    assert.ok(!json.includes(leaked), `config record leaks ${leaked}`)
  }
  assert.equal(masked.cluster.secret, MASK)
  assert.deepEqual(masked.cluster.members, ['k1'])
  const at = (o: unknown, ...path: Array<string | number>): unknown =>
    path.reduce<unknown>((x, k) => (x as Record<string | number, unknown>)[k], o)
  assert.equal(at(masked, 'nodes', 1, 'lnd', 'deeper', 0, 0, 'privateKey'), MASK)
  assert.equal(at(masked, 'nodes', 0, 'lnd', 'tls', 'certPath'), '/x/tls.cert')
  assert.equal((masked.extra as Map<string, unknown>).get('apiToken'), MASK)
  assert.equal((masked.extra as Map<string, unknown>).get('port'), 9735)
  assert.equal(masked.preimage, 'kept on purpose')
  assert.equal(config.cluster.secret, 'cluster-secret-value', 'the input is not mutated')
  const cyclic: Record<string, unknown> = { a: 1 }
  cyclic.self = cyclic
  assert.deepEqual(maskSecrets(cyclic), { a: 1, self: MASK })
})

test('mux records map to audit records and back unchanged', () => {
  const hash = bytes(32, 9)
  const setId = bytes(32, 10)
  const muxRecords: MuxRecord[] = [
    { type: 'settle_requested', term: 2, hash, setId, paymentAddr: bytes(32, 11), amountMsat: 5000n, htlcs: [htlc(3, 1n, 2n, 5000n)], time: 10 },
    { type: 'cancelled', term: 3, hash, time: 11 },
    { type: 'parts_failed', term: 3, hash, time: 11 },
    { type: 'final', hash, setId, status: 'settled', time: 12 },
    { type: 'final', hash, setId, status: 'failed', time: 13 }
  ]
  const decoded = decodeBlock(encodeBlock(muxRecords.map((m) => encodeRecord(toAuditRecord(m)))))
  assert.deepEqual(decoded.map(toMuxRecord), muxRecords)
  assert.equal(toMuxRecord({ type: 'settle_final', time: 1, hash, setId, status: 'exotic' }), null)
  assert.equal(toMuxRecord({ type: 'agent_stop', time: 1, reason: 'x' }), null)
})

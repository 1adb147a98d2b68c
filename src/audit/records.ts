// Audit record schema (DESIGN.md "Audit log"): typed, versioned records, compact-encoded.
//
// Why compact-encoding rather than canonical JSON: the records carry bigint amounts and ids
// (u64 on lnd's side), 32/33-byte keys and hashes, and signed envelopes that must stay byte-exact;
// a fixed binary layout keeps them exact without hex/decimal conventions, gives one canonical byte
// string per record (what Hypercore signs), and decodes about an order of magnitude faster than
// JSON, which is what makes rebuilding a 1,000,000-invoice registry at start-up cheap. The replay
// tool turns records into JSON for people (see `recordToJSON`).
//
// Layout of one record: uint FORMAT_VERSION ‖ uint type tag ‖ uint time (unix ms) ‖ the type's
// fields in schema order. A Hypercore block holds one *batch* of records (uint count ‖ records), the
// group written by one flush of the writer. Evolution rule: a tag's fields are only ever appended
// to, under a new FORMAT_VERSION, and name the version they appeared in; a record of an older
// version decodes with those fields at their zero value. Tags are never reused.
//
// Versions: 1 the first; 2 adds `term` to settle_requested and settle_cancelled, and parts_failed.
import c from 'compact-encoding'
import { CodedError } from '../errors.ts'

export const FORMAT_VERSION = 2

export type FieldKind = 'uint' | 'u64' | 'str' | 'bool' | 'bytes' | 'key32' | 'node33' | 'htlcs'

// Same shape as the mux's SetHtlc (src/mux/types.ts), so settle records pass through unchanged.
export interface HtlcRef {
  circuit: {
    node: Uint8Array // 33-byte compressed pubkey of the real node that holds the HTLC
    chanId: bigint // incoming channel id (lnd CircuitKey.chan_id)
    htlcId: bigint // incoming htlc id (lnd CircuitKey.htlc_id)
  }
  amountMsat: bigint
}

interface FieldTypes {
  uint: number
  u64: bigint
  str: string
  bool: boolean
  bytes: Uint8Array
  key32: Uint8Array
  node33: Uint8Array
  htlcs: HtlcRef[]
}

// Tag numbers are part of the format: append only.
export const SCHEMA = {
  agent_start: { tag: 1, fields: [['software', 'str'], ['agent', 'key32']] },
  agent_stop: { tag: 2, fields: [['reason', 'str']] },
  config: { tag: 3, fields: [['json', 'str']] }, // canonical JSON of the config after maskSecrets
  peer_connect: { tag: 4, fields: [['peer', 'key32'], ['address', 'str']] },
  peer_reject: { tag: 5, fields: [['peer', 'bytes'], ['address', 'str'], ['reason', 'str']] },
  peer_disconnect: { tag: 6, fields: [['peer', 'key32'], ['reason', 'str']] },
  hello: { tag: 7, fields: [['peer', 'key32'], ['envelope', 'bytes']] },
  envelope: { tag: 8, fields: [['peer', 'key32'], ['envelope', 'bytes']] }, // any signed message, as received
  election_started: { tag: 9, fields: [['term', 'uint'], ['candidate', 'key32']] },
  vote: { tag: 10, fields: [['term', 'uint'], ['candidate', 'key32'], ['granted', 'bool'], ['reason', 'str']] },
  leader_elected: { tag: 11, fields: [['term', 'uint'], ['leader', 'key32']] },
  term_ended: { tag: 12, fields: [['term', 'uint'], ['reason', 'str']] },
  lnd_connect: { tag: 13, fields: [['node', 'node33'], ['alias', 'str']] },
  lnd_disconnect: { tag: 14, fields: [['node', 'node33'], ['reason', 'str']] },
  htlc_intercepted: {
    tag: 15,
    fields: [['node', 'node33'], ['chanId', 'u64'], ['htlcId', 'u64'], ['hash', 'key32'], ['amountMsat', 'u64'], ['expiry', 'uint']]
  },
  htlc_forwarded: {
    tag: 16,
    fields: [['node', 'node33'], ['chanId', 'u64'], ['htlcId', 'u64'], ['hash', 'key32'], ['term', 'uint'], ['leader', 'key32']]
  },
  htlc_decided: {
    tag: 17,
    fields: [['node', 'node33'], ['chanId', 'u64'], ['htlcId', 'u64'], ['hash', 'key32'], ['term', 'uint'], ['action', 'str'], ['reason', 'str']]
  },
  htlc_resolved: {
    tag: 18,
    fields: [['node', 'node33'], ['chanId', 'u64'], ['htlcId', 'u64'], ['hash', 'key32'], ['outcome', 'str'], ['reason', 'str']]
  },
  set_accepted: {
    tag: 19,
    fields: [['hash', 'key32'], ['setId', 'key32'], ['paymentAddr', 'key32'], ['amountMsat', 'u64'], ['htlcs', 'htlcs']]
  },
  // The mux's durable records (MuxRecord in src/mux/types.ts), field for field. settle_requested is
  // the write-ahead of invariant 6. It holds no preimage: a candidate re-derives it as
  // HMAC(identity key, payment_addr), and an edge keeps it in the leader's signed decision, which
  // it stores as received (an `envelope` record) before acting.
  // `term` is the writer's leadership term (MuxRecord in src/mux/types.ts): the newer term wins.
  settle_requested: {
    tag: 20,
    fields: [['hash', 'key32'], ['setId', 'key32'], ['paymentAddr', 'key32'], ['amountMsat', 'u64'], ['htlcs', 'htlcs'], ['term', 'uint', 2]]
  },
  settle_cancelled: { tag: 21, fields: [['hash', 'key32'], ['term', 'uint', 2]] },
  settle_final: { tag: 22, fields: [['hash', 'key32'], ['setId', 'key32'], ['status', 'str']] },
  rebalance_requested: { tag: 23, fields: [['chanId', 'u64'], ['requester', 'key32'], ['amountMsat', 'u64']] },
  rebalance_validated: { tag: 24, fields: [['chanId', 'u64'], ['amountMsat', 'u64'], ['accepted', 'bool'], ['reason', 'str']] },
  rebalance_paid: { tag: 25, fields: [['chanId', 'u64'], ['hash', 'key32'], ['amountMsat', 'u64']] },
  rebalance_result: {
    tag: 26,
    fields: [['chanId', 'u64'], ['hash', 'key32'], ['ok', 'bool'], ['feeMsat', 'u64'], ['reason', 'str']]
  },
  // Written instead of the records a peer was not allowed to make us write (see RateLimiter).
  rate_limited: { tag: 27, fields: [['peer', 'key32'], ['dropped', 'uint']] },
  // A leader failed HTLCs of `hash` in `term` knowing no settle record (MuxRecord parts_failed).
  parts_failed: { tag: 28, fields: [['hash', 'key32'], ['term', 'uint']] }
} as const satisfies Record<string, { tag: number; fields: ReadonlyArray<Field> }>

/** name, kind, and the FORMAT_VERSION the field appeared in (1 when absent). */
type Field = readonly [string, FieldKind] | readonly [string, FieldKind, number]

type Schema = typeof SCHEMA
export type RecordType = keyof Schema
type Fields<F> = F extends ReadonlyArray<readonly [infer N extends string, infer K extends FieldKind, ...number[]]>
  ? { [E in F[number] as E[0]]: FieldTypes[E[1]] } & { [n in N]: unknown }
  : never
export type RecordOf<T extends RecordType> = { type: T; time: number } & Fields<Schema[T]['fields']>
export type AuditRecord = { [T in RecordType]: RecordOf<T> }[RecordType]

export class AuditRecordError extends CodedError<'unknown_record_type' | 'unsupported_version' | 'malformed_record' | 'invalid_field'> {}

const node33 = c.fixed(33)

// uint count ‖ (node33 ‖ u64 chanId ‖ u64 htlcId ‖ u64 amountMsat)*
const htlcList: c.Encoding<HtlcRef[]> = {
  preencode(state, list) {
    c.uint.preencode(state, list.length)
    state.end += list.length * (33 + 8 + 8 + 8)
  },
  encode(state, list) {
    c.uint.encode(state, list.length)
    for (const h of list) {
      node33.encode(state, h.circuit.node)
      c.biguint64.encode(state, h.circuit.chanId)
      c.biguint64.encode(state, h.circuit.htlcId)
      c.biguint64.encode(state, h.amountMsat)
    }
  },
  decode(state) {
    const n = c.uint.decode(state)
    if (n * (33 + 24) > state.end - state.start) throw new AuditRecordError('malformed_record', `htlc list of ${n} overruns its block`)
    const list: HtlcRef[] = []
    for (let i = 0; i < n; i++) {
      const node = node33.decode(state)
      const chanId = c.biguint64.decode(state)
      const htlcId = c.biguint64.decode(state)
      list.push({ circuit: { node, chanId, htlcId }, amountMsat: c.biguint64.decode(state) })
    }
    return list
  }
}

// compact-encoding's `buffer` decodes an empty buffer as null; records always hold bytes.
const bytes: c.Encoding<Uint8Array> = {
  preencode: (state, b) => c.buffer.preencode(state, b),
  encode: (state, b) => c.buffer.encode(state, b),
  decode: (state) => c.buffer.decode(state) ?? new Uint8Array(0)
}

// What a field reads as in a record written before the field existed.
const ZERO: Record<FieldKind, () => unknown> = {
  uint: () => 0,
  u64: () => 0n,
  str: () => '',
  bool: () => false,
  bytes: () => new Uint8Array(0),
  key32: () => new Uint8Array(32),
  node33: () => new Uint8Array(33),
  htlcs: () => []
}

const CODECS: Record<FieldKind, c.Encoding<any>> = {
  uint: c.uint,
  u64: c.biguint64,
  str: c.string,
  bool: c.bool,
  bytes,
  key32: c.fixed32,
  node33,
  htlcs: htlcList
}

const U64_MAX = (1n << 64n) - 1n

function checkField(type: string, name: string, kind: FieldKind, v: unknown): void {
  const ok =
    kind === 'uint' ? Number.isSafeInteger(v) && (v as number) >= 0
    : kind === 'u64' ? typeof v === 'bigint' && v >= 0n && v <= U64_MAX
    : kind === 'str' ? typeof v === 'string'
    : kind === 'bool' ? typeof v === 'boolean'
    : kind === 'bytes' ? v instanceof Uint8Array
    : kind === 'key32' ? v instanceof Uint8Array && v.length === 32
    : kind === 'node33' ? v instanceof Uint8Array && v.length === 33
    : Array.isArray(v) && v.every(isHtlcRef)
  if (!ok) throw new AuditRecordError('invalid_field', `${type}.${name}: not a valid ${kind}`)
}

function isHtlcRef(h: unknown): boolean {
  if (typeof h !== 'object' || h === null) return false
  const { circuit, amountMsat } = h as HtlcRef
  if (typeof circuit !== 'object' || circuit === null) return false
  return circuit.node instanceof Uint8Array && circuit.node.length === 33 &&
    [circuit.chanId, circuit.htlcId, amountMsat].every((x) => typeof x === 'bigint' && x >= 0n && x <= U64_MAX)
}

const BY_TAG = new Map<number, RecordType>(Object.entries(SCHEMA).map(([t, s]) => [s.tag, t as RecordType]))

const record: c.Encoding<AuditRecord> = {
  preencode(state, r) {
    const s = SCHEMA[r.type]
    if (s === undefined) throw new AuditRecordError('unknown_record_type', `unknown record type ${String(r.type)}`)
    checkField(r.type, 'time', 'uint', r.time)
    c.uint.preencode(state, FORMAT_VERSION)
    c.uint.preencode(state, s.tag)
    c.uint.preencode(state, r.time)
    const fields = r as unknown as Record<string, unknown>
    for (const [name, kind] of s.fields) {
      checkField(r.type, name, kind, fields[name])
      CODECS[kind].preencode(state, fields[name])
    }
  },
  encode(state, r) {
    const s = SCHEMA[r.type]
    c.uint.encode(state, FORMAT_VERSION)
    c.uint.encode(state, s.tag)
    c.uint.encode(state, r.time)
    const fields = r as unknown as Record<string, unknown>
    for (const [name, kind] of s.fields) CODECS[kind].encode(state, fields[name])
  },
  decode(state) {
    const version = c.uint.decode(state)
    if (version < 1 || version > FORMAT_VERSION) throw new AuditRecordError('unsupported_version', `record format version ${version}`)
    const tag = c.uint.decode(state)
    const type = BY_TAG.get(tag)
    if (type === undefined) throw new AuditRecordError('unknown_record_type', `unknown record tag ${tag}`)
    const out: Record<string, unknown> = { type, time: c.uint.decode(state) }
    for (const [name, kind, since = 1] of SCHEMA[type].fields as ReadonlyArray<Field>) {
      out[name] = since <= version ? CODECS[kind].decode(state) : ZERO[kind]()
    }
    return out as AuditRecord
  }
}

// One record alone: the writer encodes each record when it is appended, so a bad record fails its
// own caller and never the batch it would have joined.
export function encodeRecord(r: AuditRecord): Uint8Array {
  return c.encode(record, r)
}

// One Hypercore block: the records of one flush, in append order (uint count ‖ records).
export function encodeBlock(encodedRecords: Uint8Array[]): Uint8Array {
  const count = c.encode(c.uint, encodedRecords.length)
  return Buffer.concat([count, ...encodedRecords])
}

export function decodeBlock(block: Uint8Array): AuditRecord[] {
  const state = c.state(0, block.byteLength, block)
  try {
    const n = c.uint.decode(state)
    if (n > state.end - state.start) throw new AuditRecordError('malformed_record', `block claims ${n} records`)
    const list: AuditRecord[] = []
    for (let i = 0; i < n; i++) list.push(record.decode(state))
    if (state.start !== state.end) throw new AuditRecordError('malformed_record', 'trailing bytes after the last record')
    return list
  } catch (err) {
    if (err instanceof AuditRecordError) throw err
    throw new AuditRecordError('malformed_record', `undecodable audit block: ${(err as Error).message}`)
  }
}

// Keys whose values never reach the audit log or a log line (docs/DEVELOPING.md): the cluster
// secret, the identity key, macaroons, and anything named like a private key, password or seed.
// `preimage` is deliberately NOT here: settle records hold none (see settle_requested), while the
// signed decisions an edge keeps must stay byte-exact to verify, and a settled preimage is the
// payer's public proof of payment anyway.
const SECRET_KEY = /secret|identity_?key|macaroon|private_?key|priv_?key|password|passphrase|seed|mnemonic|token/i
export const MASK = '***'

// A deep copy of `value` with every secret-named key's value replaced by MASK, at any depth,
// through objects, arrays and Maps. Cycles are cut (replaced by MASK) rather than followed.
export function maskSecrets(value: unknown, seen = new WeakSet<object>()): unknown {
  if (typeof value !== 'object' || value === null || value instanceof Uint8Array) return value
  if (seen.has(value)) return MASK
  seen.add(value)
  const masked = (k: unknown, v: unknown): unknown =>
    typeof k === 'string' && SECRET_KEY.test(k) ? MASK : maskSecrets(v, seen)
  let out: unknown
  if (Array.isArray(value)) out = value.map((v) => maskSecrets(v, seen))
  else if (value instanceof Map) out = new Map([...value].map(([k, v]) => [k, masked(k, v)]))
  else out = Object.fromEntries(Object.entries(value).map(([k, v]) => [k, masked(k, v)]))
  seen.delete(value)
  return out
}

// Canonical JSON (sorted keys, bigint as decimal string, bytes as hex): what a `config` record
// holds, and what the replay tool prints.
export function canonicalJSON(value: unknown): string {
  return JSON.stringify(toPlain(value))
}

function toPlain(v: unknown): unknown {
  if (typeof v === 'bigint') return v.toString()
  if (v instanceof Uint8Array) return Buffer.from(v).toString('hex')
  if (v instanceof Map) return toPlain(Object.fromEntries(v))
  if (Array.isArray(v)) return v.map(toPlain)
  if (typeof v === 'object' && v !== null) {
    const o = v as Record<string, unknown>
    return Object.fromEntries(Object.keys(o).sort().map((k) => [k, toPlain(o[k])]))
  }
  return v
}

export function configRecord(config: unknown, time: number): RecordOf<'config'> {
  return { type: 'config', time, json: canonicalJSON(maskSecrets(config)) }
}

export function recordToJSON(r: AuditRecord): Record<string, unknown> {
  return toPlain(r) as Record<string, unknown>
}

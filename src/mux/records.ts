// The durable records of the virtual node as JSON lines: bytes as hex, msat and ids as decimal
// strings, so that a record reads back exactly (bigint) and an operator can read the file. Decoding
// validates every field: a record is either exactly what was written or a MuxError 'bad_record'.
import unslab from 'unslab'
import { MuxError, type Circuit, type FinalStatus, type MuxRecord, type SetHtlc } from './types.ts'

type Json = Record<string, unknown>

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex')

function circuitJson(c: Circuit): Json {
  return { node: hex(c.node), chanId: c.chanId.toString(), htlcId: c.htlcId.toString() }
}

export function encodeRecord(record: MuxRecord): string {
  const common = { type: record.type, hash: hex(record.hash), time: record.time }
  switch (record.type) {
    case 'settle_requested':
      return JSON.stringify({
        ...common,
        term: record.term,
        setId: hex(record.setId),
        paymentAddr: hex(record.paymentAddr),
        amountMsat: record.amountMsat.toString(),
        htlcs: record.htlcs.map((h) => ({ ...circuitJson(h.circuit), amountMsat: h.amountMsat.toString() }))
      })
    case 'cancelled':
    case 'parts_failed':
      return JSON.stringify({ ...common, term: record.term })
    case 'final':
      return JSON.stringify({ ...common, setId: hex(record.setId), status: record.status })
  }
}

/** Records ownedRecord made: the ledgers that keep one record (an agent has up to three) share it. */
const OWNED = new WeakSet<MuxRecord>()

/**
 * `record` with its bytes in buffers of its own. A decoded record's fields are views of the frame,
 * audit block or pool slab they were read from (KBs, up to a replicated batch); whatever keeps the
 * record for the life of the agent (the ledger, a settled set) would keep those alive with it.
 * Records are never modified, so an owned record is its own owned copy.
 */
export function ownedRecord<R extends MuxRecord>(record: R): R {
  if (OWNED.has(record)) return record
  const owned = copyBytes(record) as R
  OWNED.add(owned)
  return owned
}

function copyBytes(record: MuxRecord): MuxRecord {
  switch (record.type) {
    case 'settle_requested': {
      const nodes = record.htlcs.map((h) => h.circuit.node)
      const [hash, setId, paymentAddr, ...owned] = unslab.all([record.hash, record.setId, record.paymentAddr, ...nodes])
      const htlcs = record.htlcs.map((h, i) => ({ ...h, circuit: { ...h.circuit, node: owned[i]! } }))
      return { ...record, hash: hash!, setId: setId!, paymentAddr: paymentAddr!, htlcs }
    }
    case 'final': {
      const [hash, setId] = unslab.all([record.hash, record.setId])
      return { ...record, hash: hash!, setId: setId! }
    }
    case 'cancelled':
    case 'parts_failed':
      return { ...record, hash: unslab(record.hash) }
  }
}

function bad(what: string): MuxError {
  return new MuxError('bad_record', `record: ${what}`)
}

function bytes(json: Json, name: string, length: number): Uint8Array {
  const v = json[name]
  if (typeof v !== 'string' || v.length !== length * 2 || !/^[0-9a-f]*$/.test(v)) throw bad(`${name} must be ${length} bytes of lowercase hex`)
  return Buffer.from(v, 'hex')
}

function u64(json: Json, name: string): bigint {
  const v = json[name]
  if (typeof v !== 'string' || !/^(0|[1-9][0-9]{0,19})$/.test(v) || BigInt(v) >= 1n << 64n) throw bad(`${name} must be a u64 decimal string`)
  return BigInt(v)
}

function term(json: Json): number {
  const v = json['term']
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw bad('term must be a non-negative integer')
  return v
}

function setHtlc(v: unknown): SetHtlc {
  if (typeof v !== 'object' || v === null) throw bad('htlcs entries must be objects')
  const json = v as Json
  return { circuit: { node: bytes(json, 'node', 33), chanId: u64(json, 'chanId'), htlcId: u64(json, 'htlcId') }, amountMsat: u64(json, 'amountMsat') }
}

export function decodeRecord(line: string): MuxRecord {
  let json: Json
  try {
    json = JSON.parse(line) as Json
  } catch {
    throw bad('not JSON')
  }
  if (typeof json !== 'object' || json === null) throw bad('not an object')
  const hash = bytes(json, 'hash', 32)
  const time = json['time']
  if (typeof time !== 'number' || !Number.isSafeInteger(time) || time < 0) throw bad('time must be milliseconds since the epoch')
  switch (json['type']) {
    case 'settle_requested': {
      const htlcs = json['htlcs']
      if (!Array.isArray(htlcs) || htlcs.length === 0) throw bad('htlcs must be a non-empty array')
      return {
        type: 'settle_requested',
        term: term(json),
        hash,
        setId: bytes(json, 'setId', 32),
        paymentAddr: bytes(json, 'paymentAddr', 32),
        amountMsat: u64(json, 'amountMsat'),
        htlcs: htlcs.map(setHtlc),
        time
      }
    }
    case 'cancelled':
      return { type: 'cancelled', term: term(json), hash, time }
    case 'parts_failed':
      return { type: 'parts_failed', term: term(json), hash, time }
    case 'final': {
      const status = json['status']
      if (status !== 'settled' && status !== 'failed') throw bad('status must be settled or failed')
      return { type: 'final', hash, setId: bytes(json, 'setId', 32), status: status as FinalStatus, time }
    }
    default:
      throw bad(`unknown type ${JSON.stringify(json['type'])}`)
  }
}

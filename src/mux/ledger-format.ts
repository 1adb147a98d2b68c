// The packed form of a mux ledger (ledger.ts): what a snapshot holds, and what a restarted agent
// serves from without turning a million settled invoices into a million sets of objects. The bytes
// stay as read; an index by payment hash finds an entry, which is decoded only when asked for.
//
// ledger = uint nodes ‖ node33*nodes ‖ uint entries ‖ uint settleEntries ‖ uint records ‖ entry*entries
// entry  = hash32 ‖ uint8 flags ‖ [settle] ‖ [final] ‖ [cancel] ‖ [partsFailed]
// settle = uint term ‖ setId32 ‖ paymentAddr32 ‖ u64 amountMsat ‖ uint time ‖ uint n ‖
//          (uint node ‖ u64 chanId ‖ u64 htlcId ‖ u64 amountMsat)*n        node = index into the node table
// final  = [setId32, unless it is the settle record's] ‖ uint8 status (0 settled, 1 failed) ‖ uint time
// cancel = uint term ‖ uint time
// partsFailed = uint term ‖ uint time
// Entries [0, settleEntries) hold a settle record and come in settlement order (settleOrder in
// ledger.ts); the others follow in any order.
import c from 'compact-encoding'
import type { FinalStatus, SetHtlc } from './types.ts'
import type { CancelRecord, FinalRecord, LedgerEntry, PartsFailedRecord, SettleRecord } from './ledger.ts'
import { CodedError } from '../errors.ts'

export const FLAG_SETTLE = 1
export const FLAG_FINAL = 2
export const FLAG_CANCEL = 4
/** The settle record derives its payment hash under the ledger's identity key (ledger.ts settlePreimage). */
export const FLAG_REDEEMABLE = 8
/** The final record names another set than the settle record (or there is none): its set id is stored. */
export const FLAG_FINAL_OWN_SET = 16
export const FLAG_PARTS_FAILED = 32

const STATUSES: readonly FinalStatus[] = ['settled', 'failed']
const NODE_BYTES = 33
const HTLC_FIXED_BYTES = 24

export class LedgerFormatError extends CodedError<'bad_ledger'> {
  constructor(message: string) {
    super('bad_ledger', message)
  }
}

const hex = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex')

export function entryFlags(entry: LedgerEntry): number {
  let flags = entry.redeemable ? FLAG_REDEEMABLE : 0
  if (entry.settle !== undefined) flags |= FLAG_SETTLE
  if (entry.cancel !== undefined) flags |= FLAG_CANCEL
  if (entry.partsFailed !== undefined) flags |= FLAG_PARTS_FAILED
  if (entry.final !== undefined) {
    flags |= FLAG_FINAL
    if (entry.settle === undefined || Buffer.compare(entry.final.setId, entry.settle.setId) !== 0) flags |= FLAG_FINAL_OWN_SET
  }
  return flags
}

// ---- encoding ----

export interface LedgerHeader {
  nodes: Uint8Array[]
  entries: number
  settleEntries: number
  records: number
}

export function encodeHeader(h: LedgerHeader): Uint8Array {
  const state = c.state()
  c.uint.preencode(state, h.nodes.length)
  state.end += h.nodes.length * NODE_BYTES
  for (const n of [h.entries, h.settleEntries, h.records]) c.uint.preencode(state, n)
  state.buffer = Buffer.allocUnsafe(state.end)
  c.uint.encode(state, h.nodes.length)
  for (const node of h.nodes) c.fixed(NODE_BYTES).encode(state, node)
  for (const n of [h.entries, h.settleEntries, h.records]) c.uint.encode(state, n)
  return state.buffer
}

/** Entries, back to back; `nodeIndex` maps a hex node key to its index in the header's table. */
export function encodeEntries(entries: LedgerEntry[], nodeIndex: Map<string, number>): Uint8Array {
  const state = c.state()
  for (const e of entries) preencodeEntry(state, e, nodeIndex)
  state.buffer = Buffer.allocUnsafe(state.end)
  for (const e of entries) encodeEntry(state, e, nodeIndex)
  return state.buffer
}

function preencodeEntry(state: c.State, e: LedgerEntry, nodeIndex: Map<string, number>): void {
  state.end += 32 + 1
  const flags = entryFlags(e)
  if (e.settle !== undefined) {
    state.end += 32 + 32 + 8
    c.uint.preencode(state, e.settle.term)
    c.uint.preencode(state, e.settle.time)
    c.uint.preencode(state, e.settle.htlcs.length)
    for (const h of e.settle.htlcs) {
      c.uint.preencode(state, nodeIndex.get(hex(h.circuit.node))!)
      state.end += HTLC_FIXED_BYTES
    }
  }
  if (e.final !== undefined) {
    state.end += (flags & FLAG_FINAL_OWN_SET ? 32 : 0) + 1
    c.uint.preencode(state, e.final.time)
  }
  for (const r of [e.cancel, e.partsFailed]) {
    if (r === undefined) continue
    c.uint.preencode(state, r.term)
    c.uint.preencode(state, r.time)
  }
}

function encodeEntry(state: c.State, e: LedgerEntry, nodeIndex: Map<string, number>): void {
  const flags = entryFlags(e)
  c.fixed32.encode(state, e.hash)
  c.uint8.encode(state, flags)
  if (e.settle !== undefined) {
    const s = e.settle
    c.uint.encode(state, s.term)
    c.fixed32.encode(state, s.setId)
    c.fixed32.encode(state, s.paymentAddr)
    c.biguint64.encode(state, s.amountMsat)
    c.uint.encode(state, s.time)
    c.uint.encode(state, s.htlcs.length)
    for (const h of s.htlcs) {
      c.uint.encode(state, nodeIndex.get(hex(h.circuit.node))!)
      c.biguint64.encode(state, h.circuit.chanId)
      c.biguint64.encode(state, h.circuit.htlcId)
      c.biguint64.encode(state, h.amountMsat)
    }
  }
  if (e.final !== undefined) {
    if (flags & FLAG_FINAL_OWN_SET) c.fixed32.encode(state, e.final.setId)
    c.uint8.encode(state, STATUSES.indexOf(e.final.status))
    c.uint.encode(state, e.final.time)
  }
  for (const r of [e.cancel, e.partsFailed]) {
    if (r === undefined) continue
    c.uint.encode(state, r.term)
    c.uint.encode(state, r.time)
  }
}

// ---- the packed ledger ----

/** An immutable packed ledger: entries decoded on demand, found by payment hash. */
export class LedgerBase {
  static readonly EMPTY = new LedgerBase(Buffer.alloc(0), [], new Uint32Array(1), new Uint8Array(0), new Float64Array(0), new Map(), 0)

  private constructor(
    private readonly bytes: Buffer,
    readonly nodes: Uint8Array[],
    /** Start of entry i; offsets[size] is the end of the last. */
    private readonly offsets: Uint32Array,
    private readonly flagsOf: Uint8Array,
    /** The settle record's time of entries [0, settleEntries): they hold one, in settlement order. */
    private readonly settleTimes: Float64Array,
    private readonly index: Map<string, number>,
    /** Records in all entries. */
    readonly records: number
  ) {}

  /** Entries [0, settleEntries) hold a settle record, in settlement order. */
  get settleEntries(): number {
    return this.settleTimes.length
  }

  get size(): number {
    return this.flagsOf.length
  }

  /** Reads the header and indexes every entry; the entries themselves stay packed. */
  static decode(bytes: Uint8Array): LedgerBase {
    const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
    const state = c.state(0, buf.byteLength, buf)
    try {
      const nodes: Uint8Array[] = []
      for (let i = 0, n = c.uint.decode(state); i < n; i++) nodes.push(c.fixed(NODE_BYTES).decode(state))
      const size = c.uint.decode(state)
      const settleEntries = c.uint.decode(state)
      const records = c.uint.decode(state)
      if (size > buf.byteLength || settleEntries > size) throw new LedgerFormatError(`${settleEntries} settle entries of ${size} do not fit ${buf.byteLength} bytes`)
      const offsets = new Uint32Array(size + 1)
      const flagsOf = new Uint8Array(size)
      const settleTimes = new Float64Array(settleEntries)
      const index = new Map<string, number>()
      let counted = 0
      for (let i = 0; i < size; i++) {
        offsets[i] = state.start
        const hash = buf.toString('hex', state.start, state.start + 32)
        state.start += 32
        const flags = c.uint8.decode(state)
        if ((i < settleEntries) !== ((flags & FLAG_SETTLE) !== 0)) throw new LedgerFormatError(`entry ${i} is out of place`)
        if (index.has(hash)) throw new LedgerFormatError(`payment hash ${hash} has two entries`)
        index.set(hash, i)
        flagsOf[i] = flags
        counted += skipEntry(state, flags, nodes.length, (time) => (settleTimes[i] = time))
      }
      offsets[size] = state.start
      if (state.start !== state.end) throw new LedgerFormatError('trailing bytes after the last entry')
      if (counted !== records) throw new LedgerFormatError(`header counts ${records} records, entries hold ${counted}`)
      return new LedgerBase(buf, nodes, offsets, flagsOf, settleTimes, index, records)
    } catch (err) {
      if (err instanceof LedgerFormatError) throw err
      throw new LedgerFormatError(`undecodable ledger: ${(err as Error).message}`)
    }
  }

  indexOf(hashHex: string): number | undefined {
    return this.index.get(hashHex)
  }

  flags(i: number): number {
    return this.flagsOf[i]!
  }

  hash(i: number): Buffer {
    return this.bytes.subarray(this.offsets[i]!, this.offsets[i]! + 32)
  }

  hashHex(i: number): string {
    return this.bytes.toString('hex', this.offsets[i]!, this.offsets[i]! + 32)
  }

  /** The settle record's time of entry i < settleEntries, without decoding the entry. */
  settleTime(i: number): number {
    return this.settleTimes[i]!
  }

  /** Entry i as stored, to copy into the next snapshot unchanged. */
  entryBytes(i: number): Buffer {
    return this.bytes.subarray(this.offsets[i]!, this.offsets[i + 1]!)
  }

  entry(i: number): LedgerEntry {
    const state = c.state(this.offsets[i]!, this.offsets[i + 1]!, this.bytes)
    const hash = c.fixed32.decode(state)
    const flags = c.uint8.decode(state)
    let settle: SettleRecord | undefined
    let final: FinalRecord | undefined
    let cancel: CancelRecord | undefined
    let partsFailed: PartsFailedRecord | undefined
    if (flags & FLAG_SETTLE) {
      const term = c.uint.decode(state)
      const setId = c.fixed32.decode(state)
      const paymentAddr = c.fixed32.decode(state)
      const amountMsat = c.biguint64.decode(state)
      const time = c.uint.decode(state)
      const htlcs: SetHtlc[] = []
      for (let n = c.uint.decode(state); n > 0; n--) {
        const node = this.nodes[c.uint.decode(state)]!
        const chanId = c.biguint64.decode(state)
        const htlcId = c.biguint64.decode(state)
        htlcs.push({ circuit: { node, chanId, htlcId }, amountMsat: c.biguint64.decode(state) })
      }
      settle = { type: 'settle_requested', term, hash, setId, paymentAddr, amountMsat, htlcs, time }
    }
    if (flags & FLAG_FINAL) {
      const setId = flags & FLAG_FINAL_OWN_SET ? c.fixed32.decode(state) : settle!.setId
      const status = STATUSES[c.uint8.decode(state)]!
      final = { type: 'final', hash, setId, status, time: c.uint.decode(state) }
    }
    if (flags & FLAG_CANCEL) cancel = { type: 'cancelled', term: c.uint.decode(state), hash, time: c.uint.decode(state) }
    if (flags & FLAG_PARTS_FAILED) partsFailed = { type: 'parts_failed', term: c.uint.decode(state), hash, time: c.uint.decode(state) }
    return { hash, settle, final, cancel, partsFailed, redeemable: (flags & FLAG_REDEEMABLE) !== 0 }
  }
}

/**
 * Moves past one entry's fields (after its hash and flags), checking what decode relies on; tells
 * its settle record's time, returns its record count.
 */
function skipEntry(state: c.State, flags: number, nodes: number, settleTime: (time: number) => void): number {
  let records = 0
  if (flags & FLAG_SETTLE) {
    c.uint.decode(state)
    state.start += 32 + 32 + 8
    settleTime(c.uint.decode(state))
    for (let n = c.uint.decode(state); n > 0; n--) {
      if (c.uint.decode(state) >= nodes) throw new LedgerFormatError('htlc names a node outside the node table')
      state.start += HTLC_FIXED_BYTES
    }
    records++
  }
  if (flags & FLAG_FINAL) {
    if (flags & FLAG_FINAL_OWN_SET) state.start += 32
    else if (!(flags & FLAG_SETTLE)) throw new LedgerFormatError('final record shares the set id of a settle record that is missing')
    if (c.uint8.decode(state) >= STATUSES.length) throw new LedgerFormatError('unknown final status')
    c.uint.decode(state)
    records++
  }
  for (const flag of [FLAG_CANCEL, FLAG_PARTS_FAILED]) {
    if (!(flags & flag)) continue
    c.uint.decode(state)
    c.uint.decode(state)
    records++
  }
  if (state.start > state.end) throw new LedgerFormatError('entry overruns the ledger')
  if (records === 0) throw new LedgerFormatError('entry holds no record')
  return records
}

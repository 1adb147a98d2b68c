// The durable records of the virtual node one member holds (DESIGN.md invariants 1, 2 and 6: the
// settle, cancel, final and parts_failed records), as a set: per payment hash at most one record of
// each type.
// Pure, like the rest of src/mux.
//
// Any order, same ledger. Records reach a member from its own core, from replicas of the others'
// cores, from a leader's notices and from the answers a new leader gathers, in no order that means
// anything. So the ledger is a fold that does not depend on it: of two different records of one
// type for one hash (a split brain wrote both, or a later leader committed it again under its term)
// the one src/cluster/supersede.ts `prevails` names is kept (the newer term, then the earlier time,
// then the encoding), and settlements are numbered by (settle request time, payment hash). Every member and every restart
// therefore holds the same ledger for the same records, and numbers settlements alike; and an
// agent may start from a snapshot of its ledger plus the records written since (src/audit/
// mux-store.ts) and serve exactly as if it had read every record.
//
// Verdicts. Whether a settle record derives its payment hash under the identity key (it can be
// redeemed) is decided once, when the record enters a ledger that has the key, and kept with it:
// restoring a mux (MuxMachine.restore) then needs no HMAC per settled invoice. A snapshot names the
// key its verdicts were made with (keyFingerprint) and is refused under another.
//
// Two tiers: an immutable packed base (ledger-format.ts, from a snapshot) and the live entries
// added since, which shadow base entries of the same hash. fork() shares the base and copies the
// live entries, so a new leader's mux gets a ledger of its own at the cost of the records written
// since the snapshot.
//
// The ledger holds what was stored, not what stands: a settle record and a cancel or parts_failed
// record of a newer term may both be in it. A new leader decides which stand (replace, with
// resolveGathered) in its fork before it restores a mux from it.
import { createHash, createHmac } from 'node:crypto'
import unslab from 'unslab'
import { statelessPreimage } from '../ln/stateless.ts'
import { prevails } from '../cluster/supersede.ts'
import { ownedRecord } from './records.ts'
import type { MuxRecord } from './types.ts'
import {
  encodeEntries,
  encodeHeader,
  entryFlags,
  FLAG_CANCEL,
  FLAG_FINAL,
  FLAG_FINAL_OWN_SET,
  FLAG_PARTS_FAILED,
  FLAG_REDEEMABLE,
  FLAG_SETTLE,
  LedgerBase
} from './ledger-format.ts'

export type SettleRecord = Extract<MuxRecord, { type: 'settle_requested' }>
export type FinalRecord = Extract<MuxRecord, { type: 'final' }>
export type CancelRecord = Extract<MuxRecord, { type: 'cancelled' }>
export type PartsFailedRecord = Extract<MuxRecord, { type: 'parts_failed' }>

/** What one member holds for one payment hash. */
export interface LedgerEntry {
  readonly hash: Uint8Array
  readonly settle?: SettleRecord
  readonly final?: FinalRecord
  readonly cancel?: CancelRecord
  readonly partsFailed?: PartsFailedRecord
  /** The settle record can be redeemed with the ledger's identity key (true in a ledger without one). */
  readonly redeemable: boolean
}

const FIELD = { settle_requested: 'settle', final: 'final', cancelled: 'cancel', parts_failed: 'partsFailed' } as const

const hex = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex')

/** The preimage a settle record stands for, or null if it does not derive the record's hash under this key. */
export function settlePreimage(identityKey: Uint8Array, settle: SettleRecord): Uint8Array | null {
  const preimage = statelessPreimage(identityKey, settle.paymentAddr)
  return createHash('sha256').update(preimage).digest().equals(settle.hash) ? preimage : null
}

/** Names the identity key a ledger's verdicts were made with, without revealing it; empty for none. */
export function keyFingerprint(identityKey: Uint8Array | null): Uint8Array {
  return identityKey === null ? new Uint8Array(0) : createHmac('sha256', identityKey).update('highwire/mux-ledger/v1').digest()
}

interface Outcome {
  settled: boolean
  /** Settled, final status unknown. */
  pending: boolean
  /** Some record of the entry is refused (a conflict). */
  refuses: boolean
  /** A settle record beside a cancel or parts_failed record: which stand is for resolveGathered. */
  contested: boolean
}

/**
 * What MuxMachine.restore makes of an entry with these flags (entryFlags): a redeemable settle
 * record settles its set; a final record applies to that same set; a cancel applies when nothing
 * settled. Every other record is refused.
 */
function outcomeOf(flags: number): Outcome {
  const settled = (flags & FLAG_SETTLE) !== 0 && (flags & FLAG_REDEEMABLE) !== 0
  const finalApplies = settled && (flags & FLAG_FINAL) !== 0 && (flags & FLAG_FINAL_OWN_SET) === 0
  const refuses = ((flags & FLAG_SETTLE) !== 0 && !settled) || ((flags & FLAG_FINAL) !== 0 && !finalApplies) || ((flags & FLAG_CANCEL) !== 0 && settled)
  const contested = (flags & FLAG_SETTLE) !== 0 && (flags & (FLAG_CANCEL | FLAG_PARTS_FAILED)) !== 0
  return { settled, pending: settled && !finalApplies, refuses, contested }
}

const OUTCOMES: readonly Outcome[] = Array.from({ length: 64 }, (_, flags) => outcomeOf(flags))

function outcome(flags: number): Outcome {
  return OUTCOMES[flags & 63]!
}

export class MuxLedger {
  private live = new Map<string, LedgerEntry>()
  private records_ = 0
  /** Live entries whose outcome is pending / refuses a record (base ones are listed by the base). */
  private livePending = new Set<string>()
  private liveRefusing = new Set<string>()
  private liveContested = new Set<string>()

  constructor(
    readonly identityKey: Uint8Array | null,
    private readonly base: LedgerBase = LedgerBase.EMPTY
  ) {
    this.records_ = base.records
  }

  static of(records: Iterable<MuxRecord>, identityKey: Uint8Array | null): MuxLedger {
    const ledger = new MuxLedger(identityKey)
    for (const record of records) ledger.add(record)
    return ledger
  }

  /** How many records the ledger holds (the member's election view counts them). */
  get size(): number {
    return this.records_
  }

  /** How many payment hashes it holds records for. */
  get invoices(): number {
    let shadowing = 0
    for (const hash of this.live.keys()) if (this.base.indexOf(hash) !== undefined) shadowing++
    return this.base.size + this.live.size - shadowing
  }

  entry(hashHex: string): LedgerEntry | undefined {
    const live = this.live.get(hashHex)
    if (live !== undefined) return live
    const i = this.base.indexOf(hashHex)
    return i === undefined ? undefined : this.base.entry(i)
  }

  get<T extends MuxRecord['type']>(type: T, hash: Uint8Array): Extract<MuxRecord, { type: T }> | undefined {
    return this.entry(hex(hash))?.[FIELD[type]] as Extract<MuxRecord, { type: T }> | undefined
  }

  /** Folds one record in; false if the ledger already held it or a copy that prevails over it. */
  add(record: MuxRecord): boolean {
    const hashHex = hex(record.hash)
    const old = this.entry(hashHex)
    const held = old?.[FIELD[record.type]]
    if (held !== undefined && !prevails(record, held)) return false
    if (held === undefined) this.records_++
    const owned = ownedRecord(record)
    this.setLive(hashHex, this.withRecord(old ?? { hash: owned.hash, redeemable: true }, owned))
    return true
  }

  /**
   * From now on the ledger holds exactly `records` for `hash` (at least one; one per type): what
   * stands of a contested hash once a new leader resolved it (resolveGathered).
   */
  replace(hash: Uint8Array, records: readonly MuxRecord[]): void {
    const hashHex = hex(hash)
    const old = this.entry(hashHex)
    let next: LedgerEntry = { hash: unslab(hash), redeemable: true }
    for (const record of records) next = this.withRecord(next, ownedRecord(record))
    this.records_ += records.length - (old === undefined ? 0 : [...recordsOf(old)].length)
    this.setLive(hashHex, next)
  }

  /** `entry` with `record` in its field; a settle record brings its verdict (redeemable). */
  private withRecord(entry: LedgerEntry, record: MuxRecord): LedgerEntry {
    const next = { ...entry, [FIELD[record.type]]: record }
    if (record.type !== 'settle_requested') return next
    return { ...next, redeemable: this.identityKey === null || settlePreimage(this.identityKey, record) !== null }
  }

  private setLive(hashHex: string, entry: LedgerEntry): void {
    this.live.set(hashHex, entry)
    const { pending, refuses, contested } = outcome(entryFlags(entry))
    setMembership(this.livePending, hashHex, pending)
    setMembership(this.liveRefusing, hashHex, refuses)
    setMembership(this.liveContested, hashHex, contested)
  }

  /** A ledger of its own with the same records (the base is shared: it never changes). */
  fork(): MuxLedger {
    const copy = new MuxLedger(this.identityKey, this.base)
    copy.live = new Map(this.live)
    copy.records_ = this.records_
    copy.livePending = new Set(this.livePending)
    copy.liveRefusing = new Set(this.liveRefusing)
    copy.liveContested = new Set(this.liveContested)
    return copy
  }

  /** Hashes whose settled set has no final status yet: the only ones final resolutions concern. */
  pending(): string[] {
    return [...this.baseHashes((flags) => outcome(flags).pending), ...this.livePending]
  }

  /** Hashes of which MuxMachine.restore refuses a record (a conflict to report). */
  refusing(): string[] {
    return [...this.baseHashes((flags) => outcome(flags).refuses), ...this.liveRefusing]
  }

  /** Hashes holding a settle record beside a cancel or parts_failed record (resolveGathered decides which stand). */
  contested(): string[] {
    return [...this.baseHashes((flags) => outcome(flags).contested), ...this.liveContested]
  }

  /** Unshadowed base entries whose flags pass `test`. Scans the flags only: no entry is decoded. */
  private *baseHashes(test: (flags: number) => boolean): Generator<string> {
    for (let i = 0; i < this.base.size; i++) {
      if (!test(this.base.flags(i))) continue
      const hash = this.base.hashHex(i)
      if (!this.live.has(hash)) yield hash
    }
  }

  /** The records held for one payment hash. */
  recordsOf(hashHex: string): MuxRecord[] {
    const entry = this.entry(hashHex)
    return entry === undefined ? [] : [...recordsOf(entry)]
  }

  /** Every record (a member's answer to a new leader that gathers). */
  *records(): Generator<MuxRecord> {
    const shadowed = this.shadowed()
    for (let i = 0; i < this.base.size; i++) if (shadowed[i] === 0) yield* recordsOf(this.base.entry(i))
    for (const entry of this.live.values()) yield* recordsOf(entry)
  }

  /** Base entries that a live entry replaces. */
  private shadowed(): Uint8Array {
    const marks = new Uint8Array(this.base.size)
    for (const hash of this.live.keys()) {
      const i = this.base.indexOf(hash)
      if (i !== undefined) marks[i] = 1
    }
    return marks
  }

  /**
   * Entries holding a settle record, in settlement order: base entries as their index, live ones as
   * the entry. A merge (the base is in that order already), lazy so that a snapshot spreads it.
   */
  private *settleEntries(shadowed: Uint8Array): Generator<number | LedgerEntry> {
    const n = this.base.settleEntries
    const live = [...this.live.values()].filter((e) => e.settle !== undefined)
    live.sort((a, b) => a.settle!.time - b.settle!.time || Buffer.compare(a.hash, b.hash))
    let i = 0
    let j = 0
    for (;;) {
      while (i < n && shadowed[i] === 1) i++
      if (i < n && (j === live.length || this.baseSettlesFirst(i, live[j]!))) yield i++
      else if (j < live.length) yield live[j++]!
      else return
    }
  }

  /** Whether base entry i comes before live entry `e` in settlement order (the hash is read only on a tie). */
  private baseSettlesFirst(i: number, e: LedgerEntry): boolean {
    const byTime = this.base.settleTime(i) - e.settle!.time
    return byTime < 0 || (byTime === 0 && Buffer.compare(this.base.hash(i), e.hash) < 0)
  }

  /** The entries without a settle record (their order means nothing). */
  private *otherEntries(shadowed: Uint8Array): Generator<number | LedgerEntry> {
    for (let i = this.base.settleEntries; i < this.base.size; i++) if (shadowed[i] === 0) yield i
    for (const entry of this.live.values()) if (entry.settle === undefined) yield entry
  }

  /** Settlement numbers of the redeemable settle records, for a mux restored from this ledger. */
  settlementOrder(): SettlementOrder {
    const refs: number[] = []
    const liveHashes: string[] = []
    for (const item of this.settleEntries(this.shadowed())) {
      if (typeof item === 'number') {
        if ((this.base.flags(item) & FLAG_REDEEMABLE) !== 0) refs.push(item)
      } else if (item.redeemable) {
        refs.push(~liveHashes.length)
        liveHashes.push(hex(item.hash))
      }
    }
    return new SettlementOrder(this.base, Int32Array.from(refs), liveHashes)
  }

  /** The ledger in its packed form (ledger-format.ts), as chunks of `chunkEntries` entries. */
  *encode(chunkEntries: number): Generator<Uint8Array> {
    const shadowed = this.shadowed()
    let baseSettles = this.base.settleEntries
    let baseEntries = this.base.size
    for (let i = 0; i < shadowed.length; i++) {
      baseEntries -= shadowed[i]!
      if (i < this.base.settleEntries) baseSettles -= shadowed[i]!
    }
    const nodes = [...this.base.nodes]
    const nodeIndex = new Map(nodes.map((node, i) => [hex(node), i]))
    let liveSettles = 0
    for (const entry of this.live.values()) {
      if (entry.settle !== undefined) liveSettles++
      for (const { circuit } of entry.settle?.htlcs ?? []) {
        const key = hex(circuit.node)
        if (!nodeIndex.has(key)) nodeIndex.set(key, nodes.push(circuit.node) - 1)
      }
    }
    yield encodeHeader({ nodes, entries: baseEntries + this.live.size, settleEntries: baseSettles + liveSettles, records: this.records_ })
    for (const items of [this.settleEntries(shadowed), this.otherEntries(shadowed)]) {
      for (let chunk = take(items, chunkEntries); chunk.length > 0; chunk = take(items, chunkEntries)) {
        yield Buffer.concat(runs(chunk, (i) => this.base.entryBytes(i), (entries) => encodeEntries(entries, nodeIndex)))
      }
    }
  }
}

/** The next `n` items (fewer at the end). */
function take<T>(items: Iterator<T>, n: number): T[] {
  const out: T[] = []
  while (out.length < n) {
    const next = items.next()
    if (next.done === true) break
    out.push(next.value)
  }
  return out
}

/** Base entries copied as stored, live ones encoded, in the order given. */
function runs(items: (number | LedgerEntry)[], copy: (i: number) => Uint8Array, encode: (entries: LedgerEntry[]) => Uint8Array): Uint8Array[] {
  const out: Uint8Array[] = []
  let pending: LedgerEntry[] = []
  for (const item of items) {
    if (typeof item !== 'number') {
      pending.push(item)
      continue
    }
    if (pending.length > 0) out.push(encode(pending))
    pending = []
    out.push(copy(item))
  }
  if (pending.length > 0) out.push(encode(pending))
  return out
}

function* recordsOf(entry: LedgerEntry): Generator<MuxRecord> {
  if (entry.settle !== undefined) yield entry.settle
  if (entry.final !== undefined) yield entry.final
  if (entry.cancel !== undefined) yield entry.cancel
  if (entry.partsFailed !== undefined) yield entry.partsFailed
}

function setMembership(set: Set<string>, key: string, member: boolean): void {
  if (member) set.add(key)
  else set.delete(key)
}

/** Settlement numbers 1, 2, ... of a ledger's redeemable settle records, both ways. */
export class SettlementOrder {
  private readonly baseRank: Int32Array
  private readonly liveRank = new Map<string, number>()

  constructor(
    private readonly base: LedgerBase,
    private readonly refs: Int32Array,
    private readonly liveHashes: string[]
  ) {
    this.baseRank = new Int32Array(base.settleEntries).fill(-1)
    refs.forEach((ref, rank) => {
      if (ref >= 0) this.baseRank[ref] = rank
      else this.liveRank.set(liveHashes[~ref]!, rank)
    })
  }

  get count(): number {
    return this.refs.length
  }

  /** The payment hash settled with number rank + 1. */
  hashAt(rank: number): string {
    const ref = this.refs[rank]!
    return ref >= 0 ? this.base.hashHex(ref) : this.liveHashes[~ref]!
  }

  /** 0-based: the settlement number minus one. */
  rankOf(hashHex: string): number | undefined {
    const live = this.liveRank.get(hashHex)
    if (live !== undefined) return live
    const i = this.base.indexOf(hashHex)
    if (i === undefined || i >= this.base.settleEntries) return undefined
    const rank = this.baseRank[i]!
    return rank < 0 ? undefined : rank
  }
}

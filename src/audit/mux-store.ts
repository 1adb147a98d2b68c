// The mux's durable store (src/mux/store.ts MuxStore) backed by the audit log: its settle,
// cancel and final records become audit records, field for field, and append resolves only after
// the RocksDB flush that covers them (the write-ahead of DESIGN.md invariant 6).
import type { MuxStore } from '../mux/store.ts'
import type { MuxRecord } from '../mux/types.ts'
import { readBlocks, type AuditLog } from './log.ts'
import type { AuditRecord } from './records.ts'

export function toAuditRecord(r: MuxRecord): AuditRecord {
  switch (r.type) {
    case 'settle_requested':
      return { ...r, type: 'settle_requested' }
    case 'cancelled':
      return { type: 'settle_cancelled', time: r.time, hash: r.hash, term: r.term }
    case 'final':
      return { type: 'settle_final', time: r.time, hash: r.hash, setId: r.setId, status: r.status }
    case 'parts_failed':
      return { type: 'parts_failed', time: r.time, hash: r.hash, term: r.term }
  }
}

// The inverse, for the mux record types; null for every other audit record, and for a
// final status the mux does not know (written by a newer or foreign agent: skipped, not fatal).
export function toMuxRecord(r: AuditRecord): MuxRecord | null {
  switch (r.type) {
    case 'settle_requested':
      return { type: 'settle_requested', term: r.term, time: r.time, hash: r.hash, setId: r.setId, paymentAddr: r.paymentAddr, amountMsat: r.amountMsat, htlcs: r.htlcs }
    case 'settle_cancelled':
      return { type: 'cancelled', term: r.term, time: r.time, hash: r.hash }
    case 'parts_failed':
      return { type: 'parts_failed', term: r.term, time: r.time, hash: r.hash }
    case 'settle_final':
      return r.status === 'settled' || r.status === 'failed'
        ? { type: 'final', time: r.time, hash: r.hash, setId: r.setId, status: r.status }
        : null
    default:
      return null
  }
}

export class AuditMuxStore implements MuxStore {
  constructor(private readonly log: AuditLog) {}

  append(record: MuxRecord): Promise<void> {
    return this.log.append(toAuditRecord(record), { durable: true })
  }

  // The own core's records in append order, then every replica's (a new leader must learn the
  // settle and cancel records of all members before it serves, DESIGN.md "Election").
  async *load(): AsyncIterable<MuxRecord> {
    for (const core of this.log.cores()) {
      for await (const { records } of readBlocks(core)) {
        for (const r of records) {
          const m = toMuxRecord(r)
          if (m !== null) yield m
        }
      }
    }
  }
}

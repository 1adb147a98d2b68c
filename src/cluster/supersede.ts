// Which of the records a new leader gathered still hold (DESIGN.md "Election", invariant 1).
//
// Members may hold records no majority ever held: a leader stores its settle record, sends the
// notices and dies before a majority acknowledges them (no preimage left: write-ahead). A later
// leader gathers the records of a majority first, so it knows every committed record; if it does
// not know this one, it may decide against it: cancel the invoice, or fail parts of the set for a
// reason of its own (a timer, a height). Those decisions are committed, in its term, as `cancelled`
// and `parts_failed` records before they take effect. Whoever gathers both the old settle record
// and such a newer record must drop the settle record, or it would settle what is left of a set
// whose other parts were failed. That is Raft's rule: of two conflicting entries, the newer term
// wins, and an entry of an older term is only committed again under the new leader's term (as that
// leader's own decision: so a settle record that stands drops the older records it outlived).
import { encodeRecord } from '../mux/records.ts'
import type { MuxRecord } from '../mux/types.ts'

export interface Resolved {
  /** One record per type and hash, ready for MuxMachine.restore: settles, finals, cancels, then the rest. */
  kept: MuxRecord[]
  /** Records that lost to a newer one: never committed, so dropping them loses no preimage. */
  superseded: MuxRecord[]
}

/** Settles first, then finals, then cancels: a settle the log keeps always wins (a preimage may have left). */
const APPLY_ORDER: Record<MuxRecord['type'], number> = { settle_requested: 0, final: 1, cancelled: 2, parts_failed: 3 }

/** Orders records for MuxMachine.restore (APPLY_ORDER). */
export function byApplyOrder(a: MuxRecord, b: MuxRecord): number {
  return APPLY_ORDER[a.type] - APPLY_ORDER[b.type]
}

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex')

/** One settle, one cancel, one final and one parts_failed record per hash. */
export function recordKey(record: MuxRecord): string {
  return `${record.type}:${hex(record.hash)}`
}

function termOf(record: MuxRecord | undefined): number {
  return record === undefined || record.type === 'final' ? -1 : record.term
}

/**
 * Of two copies of one record (one recordKey), whether `a` is kept over `b`: the newer term (a
 * record committed again by a later leader carries its term), then the earlier time, then the
 * smaller encoding, so that any order of the same records keeps the same copy (the mux ledger,
 * src/mux/ledger.ts, folds a member's records with this rule too).
 */
export function prevails(a: MuxRecord, b: MuxRecord): boolean {
  const byTerm = termOf(a) - termOf(b)
  if (byTerm !== 0) return byTerm > 0
  return a.time < b.time || (a.time === b.time && encodeRecord(a) < encodeRecord(b))
}

function sameSet(a: MuxRecord, b: MuxRecord): boolean {
  return a.type !== 'settle_requested' || b.type !== 'settle_requested' || Buffer.from(a.setId).equals(b.setId)
}

export function resolveGathered(records: Iterable<MuxRecord>): Resolved {
  const superseded: MuxRecord[] = []
  // The newest copy of each record (prevails).
  const latest = new Map<string, MuxRecord>()
  for (const record of records) {
    const key = recordKey(record)
    const held = latest.get(key)
    if (held === undefined || prevails(record, held)) {
      latest.set(key, record)
      if (held !== undefined && !sameSet(held, record)) superseded.push(held)
    } else if (!sameSet(held, record)) superseded.push(record)
  }
  const byKey = (type: MuxRecord['type'], hash: string): MuxRecord | undefined => latest.get(`${type}:${hash}`)
  for (const record of [...latest.values()]) {
    if (record.type !== 'settle_requested') continue
    const hash = hex(record.hash)
    const cancel = byKey('cancelled', hash)
    const partsFailed = byKey('parts_failed', hash)
    const final = byKey('final', hash)
    const newer = Math.max(termOf(cancel), termOf(partsFailed))
    // A final record means lnd resolved parts of this set: it took effect, whatever came later.
    const tookEffect = final?.type === 'final' && Buffer.from(final.setId).equals(record.setId)
    if (!tookEffect && newer > record.term) {
      latest.delete(recordKey(record))
      superseded.push(record)
      continue
    }
    // The settle record stands: what it outlived is dropped, so that no leader commits it again
    // under a newer term (which would make it look decided after the settlement).
    for (const older of [cancel, partsFailed]) {
      if (older === undefined) continue
      latest.delete(recordKey(older))
      superseded.push(older)
    }
  }
  const kept = [...latest.values()].sort(byApplyOrder)
  return { kept, superseded }
}

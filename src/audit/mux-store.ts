// The mux's durable records in the audit log: its settle, cancel, final and parts_failed records become audit
// records, field for field (the agent appends them durably: the write-ahead of DESIGN.md invariant 6).
//
// A restarting agent does not read them all: it opens the mux ledger (src/mux/ledger.ts) of every
// core it holds from the latest snapshot plus each core's tail (snapshot.ts), and keeps it current
// while it runs, writing the next snapshot every CHECKPOINT_EVERY records and at a clean stop. The
// snapshot also keeps the ledger's verdicts (which settle records the identity key redeems), so it
// names the key they were made with: under another key, or without one, it is refused and the
// ledger rebuilt from every record.
import c from 'compact-encoding'
import { keyFingerprint, MuxLedger } from '../mux/ledger.ts'
import { LedgerBase, LedgerFormatError } from '../mux/ledger-format.ts'
import type { MuxRecord } from '../mux/types.ts'
import type { AuditLog } from './log.ts'
import type { AuditRecord } from './records.ts'
import { CHUNK_ENTRIES, CheckpointError, CheckpointedFold, turn, type CheckpointOptions, type FoldSpec } from './snapshot.ts'

export const MUX_SNAPSHOT_FILE = 'mux.snapshot'

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

// ---- the mux ledger of a log, checkpointed ----
// body = uint n ‖ keyFingerprint (n bytes; none without a key) ‖ the packed ledger (ledger-format.ts)

function muxLedgerFold(identityKey: Uint8Array | null): FoldSpec<MuxLedger> {
  const fingerprint = keyFingerprint(identityKey)
  return {
    fileName: MUX_SNAPSHOT_FILE,
    magic: 'highwire/mux-ledger-snapshot',
    // 2: terms and parts_failed records (ledger-format.ts).
    version: 2,
    empty: () => new MuxLedger(identityKey),
    apply: (ledger, record) => {
      const mux = toMuxRecord(record)
      if (mux !== null) ledger.add(mux)
    },
    invoices: (ledger) => ledger.invoices,
    async *encode(ledger) {
      yield Buffer.concat([c.encode(c.uint, fingerprint.byteLength), fingerprint])
      for (const chunk of ledger.encode(CHUNK_ENTRIES)) {
        yield chunk
        await turn()
      }
    },
    async decode(body) {
      const state = c.state(0, body.byteLength, body)
      const length = c.uint.decode(state)
      if (Buffer.compare(body.subarray(state.start, state.start + length), fingerprint) !== 0) {
        throw new CheckpointError(identityKey === null ? 'snapshot was made with an identity key, this agent has none' : 'snapshot was made with another identity key or none')
      }
      try {
        return new MuxLedger(identityKey, LedgerBase.decode(body.subarray(state.start + length)))
      } catch (err) {
        if (err instanceof LedgerFormatError) throw new CheckpointError(err.message)
        throw err
      }
    }
  }
}

// The ledger of every mux record in `log`'s cores, verified with `identityKey` (a candidate's; null
// on other agents), from the latest snapshot plus the tails.
export function openMuxLedger(log: AuditLog, identityKey: Uint8Array | null, opts: CheckpointOptions = {}): Promise<CheckpointedFold<MuxLedger>> {
  return CheckpointedFold.open(log, muxLedgerFold(identityKey), opts)
}

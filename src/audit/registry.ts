// The settle registry rebuilt from audit records: per payment hash, the last known status of its
// settlement (DESIGN.md invariants 1 and 2). Pure: records in, state out; the caller reads cores.
import type { AuditRecord } from './records.ts'

export type SettleStatus = 'settle_requested' | 'settled' | 'failed' | 'cancelled'

export interface InvoiceEntry {
  status: SettleStatus
  setId: Uint8Array | null // a copy, so that entries do not pin the blocks they were decoded from
  amountMsat: bigint
  time: number
  writer: string // hex key of the core whose record set the status
}

export interface Conflict {
  hash: string
  writer: string
  reason: 'settle_after_cancel' | 'cancel_after_settle' | 'second_set'
}

export interface Registry {
  invoices: Map<string, InvoiceEntry>
  conflicts: Conflict[]
}

export function emptyRegistry(): Registry {
  return { invoices: new Map(), conflicts: [] }
}

const hex = (b: Uint8Array): string =>
  (Buffer.isBuffer(b) ? b : Buffer.from(b.buffer, b.byteOffset, b.byteLength)).toString('hex')
const sameId = (a: Uint8Array | null, b: Uint8Array): boolean => a !== null && Buffer.compare(a, b) === 0

// Fold one record written by `writer` into the registry. A settlement always wins over a cancel:
// once a settle record exists a preimage may have left, and every part must then be settled
// (invariant 1); the contradiction is kept in `conflicts` for the operators to see.
export function applyRecord(reg: Registry, record: AuditRecord, writer: string): void {
  switch (record.type) {
    case 'settle_requested': {
      const hash = hex(record.hash)
      const entry = reg.invoices.get(hash)
      if (entry === undefined || entry.status === 'cancelled') {
        if (entry !== undefined) reg.conflicts.push({ hash, writer, reason: 'settle_after_cancel' })
        reg.invoices.set(hash, { status: 'settle_requested', setId: Buffer.from(record.setId), amountMsat: record.amountMsat, time: record.time, writer })
      } else if (!sameId(entry.setId, record.setId)) {
        reg.conflicts.push({ hash, writer, reason: 'second_set' })
      }
      return
    }
    case 'settle_cancelled': {
      const hash = hex(record.hash)
      const entry = reg.invoices.get(hash)
      if (entry === undefined) reg.invoices.set(hash, { status: 'cancelled', setId: null, amountMsat: 0n, time: record.time, writer })
      else if (entry.status !== 'cancelled') reg.conflicts.push({ hash, writer, reason: 'cancel_after_settle' })
      return
    }
    case 'settle_final': {
      const hash = hex(record.hash)
      const entry = reg.invoices.get(hash)
      const status: SettleStatus = record.status === 'settled' ? 'settled' : 'failed'
      if (entry !== undefined && entry.status === 'cancelled' && status === 'failed') return
      if (entry === undefined || entry.status === 'cancelled') {
        if (entry !== undefined) reg.conflicts.push({ hash, writer, reason: 'settle_after_cancel' })
        reg.invoices.set(hash, { status, setId: Buffer.from(record.setId), amountMsat: 0n, time: record.time, writer })
      } else if (!sameId(entry.setId, record.setId)) {
        reg.conflicts.push({ hash, writer, reason: 'second_set' })
      } else {
        entry.status = status
        entry.time = record.time
      }
      return
    }
    default:
      return
  }
}

// The virtual node's HTLC-set state machine, modelled on lnd's invoices package and lnmux's
// InvoiceRegistry, but pure and synchronous: every input is a method call that returns the outputs
// it causes (decisions per circuit, notifications, records to persist). No IO, no timers: the clock
// is a parameter, the driver calls tick() at nextDeadline() and reports block heights.
//
// Write-ahead (DESIGN.md invariant 6): settle(hash, setId) only emits a `persist` output with the
// settle_requested record. The driver appends and flushes it, then feeds it back with
// recordPersisted(); only then are the settle decisions (the preimage) emitted.
//
// Restored from a ledger (ledger.ts) of durable records: an invoice of the ledger becomes a live
// object only when an input concerns it, so a leader with a million settled invoices starts at the
// cost of its unsettled ones. What restore needs of all of them up front is in the ledger already:
// which records it refuses (reported at once), which settled sets await their final status (their
// circuits answer final resolutions, which carry no hash), and the settlement numbers.
import unslab from 'unslab'
import { DEFAULT_VIRTUAL_CHANNEL_POLICY, type VirtualChannelPolicy } from '../ln/stateless.ts'
import { htlcSetId } from '../ln/setid.ts'
import { FailureCode } from '../ln/failure.ts'
import { checkHtlc, encryptedFailure, htlcShapeError, incorrectOrUnknown, type ValidPart } from './checks.ts'
import { MuxLedger, settlePreimage, type SettlementOrder } from './ledger.ts'
import { ownedRecord } from './records.ts'
import {
  MuxError,
  type Circuit,
  type Decision,
  type FailReason,
  type FinalStatus,
  type InterceptedHtlc,
  type InvoiceStatus,
  type MuxOutput,
  type MuxRecord,
  type SetHtlc
} from './types.ts'

export interface MuxOptions {
  /** The virtual node's 32-byte identity secret key. */
  identityKey: Uint8Array
  /** Milliseconds since the epoch; injected so tests and simulations drive time. */
  now: () => number
  /** The virtual channels' policy (route hints); lnmux's default 0 / 0 / 40. */
  policy?: VirtualChannelPolicy
  /** An incomplete set is failed with mpp_timeout this long after its first part (BOLT 4: ≥ 60 s). */
  mppTimeoutMs?: number
  /** An accepted set the application does not settle is failed after this long. */
  acceptTimeoutMs?: number
  /** lnd's DefaultFinalCltvRejectDelta (lncfg): 16 + 3 blocks. */
  finalCltvRejectDelta?: number
  /** Stop holding an HTLC this many blocks before lnd's auto_fail_height. */
  holdMarginBlocks?: number
  autoSettle?: boolean
  /** Best block height known at start; raised by HTLCs and by blockHeight(). */
  height?: number
  /** How many past decisions are remembered to answer re-offered circuits alike. */
  decisionMemory?: number
  /** The leadership term this machine decides in, stamped on its settle and cancel records. */
  term?: number
}

export const MPP_TIMEOUT_MS = 60_000
export const ACCEPT_TIMEOUT_MS = 60_000
export const FINAL_CLTV_REJECT_DELTA = 19
export const HOLD_MARGIN_BLOCKS = 3
const DECISION_MEMORY = 100_000

/** An HTLC set being collected, or complete and waiting for the application. */
interface OpenSet {
  parts: Map<string, ValidPart>
  totalMsat: bigint
  invoiceAmountMsat: bigint
  paymentAddr: Uint8Array
  preimage: Uint8Array
  mppDeadlineMs: number
  /** Set once the total reaches the invoice amount. */
  accepted?: { setId: Uint8Array; deadlineMs: number }
  /** The settle_requested record is on its way to the store: hold, never fail. */
  settlePending?: MuxRecord & { type: 'settle_requested' }
}

/** The set chosen for settlement (durable record), and what lnd reported about each of its HTLCs. */
interface SettledSet {
  /** 1, 2, ... in the order settlements were requested (lnmux ListInvoices' sequence number). */
  sequence: bigint
  setId: Uint8Array
  preimage: Uint8Array
  amountMsat: bigint
  requestedAt: number
  finalizedAt?: number
  htlcs: Map<string, SetHtlc>
  resolved: Map<string, boolean>
  final?: FinalStatus
  /** A final record was emitted and not yet acknowledged. */
  finalPending: boolean
}

interface Invoice {
  hash: Uint8Array
  open?: OpenSet
  settled?: SettledSet
  cancelled: boolean
}

/** An invoice whose settlement was requested, as ListInvoices reports it. */
export interface Settlement {
  sequence: bigint
  hash: Uint8Array
  preimage: Uint8Array
  amountMsat: bigint
  status: 'settle_requested' | FinalStatus
  /** Milliseconds since the epoch. */
  requestedAt: number
  finalizedAt: number | undefined
}

interface Remembered {
  hash: string
  decision: Decision
  reason?: FailReason
}

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex')

export function circuitId(c: Circuit): string {
  return `${hex(c.node)}:${c.chanId}:${c.htlcId}`
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.from(a).equals(Buffer.from(b))
}

export class MuxMachine {
  private readonly identityKey: Uint8Array
  private readonly now: () => number
  private readonly policy: VirtualChannelPolicy
  private readonly mppTimeoutMs: number
  private readonly acceptTimeoutMs: number
  private readonly finalCltvRejectDelta: number
  private readonly holdMarginBlocks: number
  private readonly autoSettle: boolean
  private readonly decisionMemory: number
  private readonly term: number
  private height: number
  /** The durable records this machine was restored from; read, never written. */
  private ledger: MuxLedger
  /** Settlement numbers of the ledger's settled sets. */
  private restoredOrder: SettlementOrder
  /** Invoices an input concerned since the restore (and those restore needs at hand). */
  private readonly invoices = new Map<string, Invoice>()
  /** Invoices with an open set: the only ones timers and heights concern. */
  private readonly live = new Set<Invoice>()
  /** Circuit → hash of the HTLCs of settled sets held in `invoices`, for final resolutions (which carry no hash). */
  private readonly settledCircuits = new Map<string, string>()
  private readonly decided = new Map<string, Remembered>()
  /** Invoices whose settlement was requested since the restore, in that order (numbered after the restored ones). */
  private readonly settlementOrder: Invoice[] = []

  constructor(opts: MuxOptions) {
    if (!(opts.identityKey instanceof Uint8Array) || opts.identityKey.length !== 32) throw new MuxError('bad_input', 'identityKey must be 32 bytes')
    this.identityKey = opts.identityKey
    this.now = opts.now
    this.policy = opts.policy ?? DEFAULT_VIRTUAL_CHANNEL_POLICY
    this.mppTimeoutMs = opts.mppTimeoutMs ?? MPP_TIMEOUT_MS
    this.acceptTimeoutMs = opts.acceptTimeoutMs ?? ACCEPT_TIMEOUT_MS
    this.finalCltvRejectDelta = opts.finalCltvRejectDelta ?? FINAL_CLTV_REJECT_DELTA
    this.holdMarginBlocks = opts.holdMarginBlocks ?? HOLD_MARGIN_BLOCKS
    this.autoSettle = opts.autoSettle ?? false
    this.decisionMemory = opts.decisionMemory ?? DECISION_MEMORY
    this.height = opts.height ?? 0
    this.term = opts.term ?? 0
    this.ledger = new MuxLedger(opts.identityKey)
    this.restoredOrder = this.ledger.settlementOrder()
  }

  /**
   * Rebuilds a machine from its durable records (a ledger, or records to fold into one). Per
   * payment hash its settle record applies first, then its final record, then its cancel (its
   * parts_failed record changes nothing). A record
   * that contradicts the others throws, unless `onConflict` takes it (a new leader merging several
   * members' records skips it and reports it).
   */
  static restore(opts: MuxOptions, durable: MuxLedger | Iterable<MuxRecord>, onConflict?: (record: MuxRecord, err: MuxError) => void): MuxMachine {
    const ledger = durable instanceof MuxLedger ? durable : MuxLedger.of(durable, opts.identityKey)
    if (ledger.identityKey === null || !equalBytes(ledger.identityKey, opts.identityKey)) {
      throw new MuxError('bad_input', 'the ledger was verified with another identity key')
    }
    const machine = new MuxMachine(opts)
    machine.ledger = ledger
    machine.restoredOrder = ledger.settlementOrder()
    const refuse = onConflict ?? ((_record: MuxRecord, err: MuxError) => {
      throw err
    })
    for (const hash of ledger.refusing()) machine.keep(hash, machine.restoredInvoice(hash, refuse)!)
    for (const hash of ledger.pending()) machine.find(hash)
    return machine
  }

  // -------------------------------------------------------------------------------------------
  // Inputs

  /** An HTLC intercepted for a virtual scid, first offer or replay. */
  htlc(htlc: InterceptedHtlc): MuxOutput[] {
    const shape = htlcShapeError(htlc)
    if (shape !== undefined) throw new MuxError('bad_input', `intercepted HTLC: ${shape}`)
    this.height = Math.max(this.height, htlc.currentHeight)
    const key = circuitId(htlc.circuit)
    const hashHex = hex(htlc.paymentHash)
    const invoice = this.find(hashHex)

    // Replays first, before any check that time may have changed: a part of the settled set is
    // settled again with the same preimage (invariant 1), whatever the clock says now.
    const settled = invoice?.settled
    if (settled !== undefined && settled.htlcs.has(key)) return [this.decide(htlc.circuit, htlc.paymentHash, { action: 'settle', preimage: settled.preimage })]
    if (invoice?.open?.parts.has(key)) return [] // still held: its decision comes with the set's
    const remembered = this.decided.get(key)
    if (remembered !== undefined && remembered.hash === hashHex) {
      return [{ kind: 'decision', circuit: htlc.circuit, hash: htlc.paymentHash, decision: remembered.decision, reason: remembered.reason }]
    }

    const check = checkHtlc(htlc, {
      identityKey: this.identityKey,
      policy: this.policy,
      finalCltvRejectDelta: this.finalCltvRejectDelta,
      holdMarginBlocks: this.holdMarginBlocks,
      nowMs: this.now(),
      height: this.height
    })
    if (!check.ok) return [this.decide(htlc.circuit, htlc.paymentHash, check.decision, check.reason)]
    return this.addPart(check.part)
  }

  /** The application settles the accepted set `setId` of `hash` (lnmux SettleInvoice). Idempotent. */
  settle(hash: Uint8Array, setId: Uint8Array): MuxOutput[] {
    if (this.autoSettle) throw new MuxError('auto_settle', 'settle requested while autoSettle is on')
    const invoice = this.find(hex(hash))
    if (invoice === undefined) throw new MuxError('invoice_not_found', 'no HTLC set for this payment hash')
    if (invoice.cancelled) throw new MuxError('invoice_cancelled', 'the invoice was cancelled')
    const chosen = invoice.settled?.setId ?? invoice.open?.settlePending?.setId
    if (chosen !== undefined) {
      if (!equalBytes(chosen, setId)) throw new MuxError('set_id_mismatch', 'another HTLC set was chosen for settlement')
      return []
    }
    const set = invoice.open
    if (set?.accepted === undefined) throw new MuxError('not_accepted', 'the HTLC set is not complete')
    if (!equalBytes(set.accepted.setId, setId)) throw new MuxError('set_id_mismatch', 'the accepted HTLC set has another id')
    return this.requestSettle(invoice, set)
  }

  /**
   * The application cancels `hash` (lnmux CancelInvoice). Held parts are failed at once (failing is
   * always safe); the record makes the cancel survive restarts, unlike lnmux.
   */
  cancel(hash: Uint8Array): MuxOutput[] {
    const hashHex = hex(hash)
    let invoice = this.find(hashHex)
    if (invoice?.settled !== undefined || invoice?.open?.settlePending !== undefined) {
      throw new MuxError('invoice_settled', 'settlement was already requested')
    }
    if (invoice?.cancelled) return []
    if (invoice === undefined) {
      invoice = { hash: Buffer.from(hash), cancelled: false }
      this.invoices.set(hashHex, invoice)
    }
    invoice.cancelled = true
    const outputs = invoice.open === undefined ? [] : this.failSet(invoice, 'invoice_cancelled')
    outputs.push({ kind: 'persist', record: { type: 'cancelled', term: this.term, hash: invoice.hash, time: this.now() } })
    return outputs
  }

  /** The store confirmed `record` (appended and flushed). */
  recordPersisted(record: MuxRecord): MuxOutput[] {
    const hashHex = hex(record.hash)
    const invoice = this.find(hashHex)
    switch (record.type) {
      case 'settle_requested': {
        const set = invoice?.open
        if (invoice === undefined || set?.settlePending !== record) throw new MuxError('bad_record', 'no settle request is pending for this record')
        this.apply(invoice, record)
        this.keep(hashHex, invoice)
        this.live.delete(invoice)
        invoice.open = undefined
        return [...set.parts.values()].map((part) => this.decide(part.htlc.circuit, invoice.hash, { action: 'settle', preimage: set.preimage }))
      }
      case 'final': {
        const settled = invoice?.settled
        if (settled === undefined || !settled.finalPending) throw new MuxError('bad_record', 'no final record is pending for this invoice')
        settled.finalPending = false
        settled.final = record.status
        settled.finalizedAt = record.time
        return [{ kind: 'final', hash: record.hash, setId: record.setId, status: record.status }]
      }
      case 'cancelled':
      case 'parts_failed':
        return []
    }
  }

  /**
   * The store could not persist `record`. A settle request is withdrawn (no preimage was sent): the
   * set is accepted again under its original deadline. A final record is emitted again with the
   * next resolution. A cancel stays in force in memory; the application retries it.
   */
  recordFailed(record: MuxRecord): MuxOutput[] {
    const invoice = this.find(hex(record.hash))
    if (record.type === 'settle_requested' && invoice?.open?.settlePending === record) invoice.open.settlePending = undefined
    if (record.type === 'final' && invoice?.settled?.finalPending) invoice.settled.finalPending = false
    return []
  }

  /**
   * lnd's final resolution of a settled set's HTLC (FinalHtlcEvent, or LookupHtlcResolution after a
   * restart). The invoice is SETTLED once every HTLC of the set settled, FAILED if any was lost.
   */
  htlcResolved(circuit: Circuit, settledOnChain: boolean): MuxOutput[] {
    const key = circuitId(circuit)
    const hashHex = this.settledCircuits.get(key)
    const settled = hashHex === undefined ? undefined : this.invoices.get(hashHex)?.settled
    if (settled === undefined || settled.final !== undefined || settled.finalPending) return []
    settled.resolved.set(key, settledOnChain)
    let status: FinalStatus | undefined
    if (!settledOnChain) status = 'failed'
    else if ([...settled.htlcs.keys()].every((k) => settled.resolved.get(k) === true)) status = 'settled'
    if (status === undefined) return []
    settled.finalPending = true
    const hash = this.invoices.get(hashHex!)!.hash
    return [{ kind: 'persist', record: { type: 'final', hash, setId: settled.setId, status, time: this.now() } }]
  }

  /** A new best block height: bounded holding (DESIGN.md invariant 7). */
  blockHeight(height: number): MuxOutput[] {
    if (!Number.isInteger(height) || height < 0) throw new MuxError('bad_input', 'height must be a non-negative integer')
    this.height = Math.max(this.height, height)
    const outputs: MuxOutput[] = []
    for (const invoice of [...this.live]) {
      const set = invoice.open!
      if (set.settlePending !== undefined) continue
      const expiring = [...set.parts.values()].filter((p) => this.height >= p.htlc.autoFailHeight - this.holdMarginBlocks)
      if (expiring.length === 0) continue
      // An accepted set without one of its parts can no longer be settled: fail it whole. An
      // incomplete set loses only the expiring parts; others may still arrive in time.
      if (set.accepted !== undefined) outputs.push(...this.failSet(invoice, 'hold_limit'))
      else for (const part of expiring) outputs.push(this.failPart(invoice, part, 'hold_limit'))
    }
    return outputs
  }

  /** Fires every timer that is due at now(). */
  tick(): MuxOutput[] {
    const now = this.now()
    const outputs: MuxOutput[] = []
    for (const invoice of [...this.live]) {
      const set = invoice.open!
      if (set.settlePending !== undefined) continue
      if (set.accepted === undefined && now >= set.mppDeadlineMs) outputs.push(...this.failSet(invoice, 'mpp_timeout'))
      else if (set.accepted !== undefined && now >= set.accepted.deadlineMs) outputs.push(...this.failSet(invoice, 'accept_timeout'))
    }
    return outputs
  }

  // -------------------------------------------------------------------------------------------
  // Queries

  /** When tick() next has something to do, or undefined. */
  nextDeadline(): number | undefined {
    let next: number | undefined
    for (const invoice of this.live) {
      const set = invoice.open!
      if (set.settlePending !== undefined) continue
      const due = set.accepted?.deadlineMs ?? set.mppDeadlineMs
      if (next === undefined || due < next) next = due
    }
    return next
  }

  status(hash: Uint8Array): InvoiceStatus | undefined {
    const invoice = this.peek(hex(hash))
    if (invoice === undefined) return undefined
    if (invoice.cancelled) return 'cancelled'
    if (invoice.settled !== undefined) return invoice.settled.final ?? 'settle_requested'
    if (invoice.open?.settlePending !== undefined) return 'settle_requested'
    if (invoice.open?.accepted !== undefined) return 'accepted'
    return 'open'
  }

  /** The accepted sets awaiting the application (SubscribeInvoiceAccepted replays them). */
  acceptedSets(): MuxOutput[] {
    const outputs: MuxOutput[] = []
    for (const invoice of this.live) {
      const set = invoice.open!
      if (set.accepted !== undefined && set.settlePending === undefined) outputs.push(this.acceptedOutput(invoice, set))
    }
    return outputs
  }

  /** Settlements with sequence number ≥ `from`, ascending, at most `max` (lnmux ListInvoices). */
  settlements(from: bigint, max: number): Settlement[] {
    const restored = this.restoredOrder.count
    const total = restored + this.settlementOrder.length
    const out: Settlement[] = []
    for (let rank = from <= 1n ? 0 : Number(from - 1n); rank < total && out.length < max; rank++) {
      const invoice = rank < restored ? this.peek(this.restoredOrder.hashAt(rank))! : this.settlementOrder[rank - restored]!
      const s = invoice.settled!
      out.push({
        sequence: s.sequence,
        hash: invoice.hash,
        preimage: s.preimage,
        amountMsat: s.amountMsat,
        status: s.final ?? 'settle_requested',
        requestedAt: s.requestedAt,
        finalizedAt: s.finalizedAt
      })
    }
    return out
  }

  /**
   * Settled-set HTLCs whose final resolution is still unknown, of sets whose settlement was requested
   * before `requestedBefore` (ms): look them up after a restart, or when lnd's report is overdue.
   */
  pendingResolutions(requestedBefore = Infinity): Circuit[] {
    const circuits: Circuit[] = []
    for (const invoice of this.invoices.values()) {
      const settled = invoice.settled
      if (settled === undefined || settled.final !== undefined || settled.requestedAt >= requestedBefore) continue
      for (const [key, htlc] of settled.htlcs) if (!settled.resolved.has(key)) circuits.push(htlc.circuit)
    }
    return circuits
  }

  // -------------------------------------------------------------------------------------------
  // Set logic

  private addPart(part: ValidPart): MuxOutput[] {
    const { htlc } = part
    const hashHex = hex(htlc.paymentHash)
    let invoice = this.find(hashHex)
    const unknown = (reason: FailReason): MuxOutput[] => [
      this.decide(htlc.circuit, htlc.paymentHash, incorrectOrUnknown(part.sharedSecret, htlc, this.height), reason)
    ]
    if (invoice?.cancelled) return unknown('invoice_cancelled')
    if (invoice?.settled !== undefined) return unknown('invoice_settled')
    // lnmux: a part that would take the set past the invoice amount is failed alone; so is any part
    // arriving while the complete set waits for the application.
    const set = invoice?.open
    if (set !== undefined && set.totalMsat + htlc.outgoingAmountMsat > set.invoiceAmountMsat) return unknown('overpayment')
    if (set === undefined && htlc.outgoingAmountMsat > part.invoiceAmountMsat) return unknown('overpayment')

    if (invoice === undefined) {
      invoice = { hash: unslab(htlc.paymentHash), cancelled: false }
      this.invoices.set(hashHex, invoice)
    }
    const open = set ?? this.openSet(invoice, part)
    open.parts.set(circuitId(htlc.circuit), part)
    open.totalMsat += htlc.outgoingAmountMsat
    if (open.totalMsat < open.invoiceAmountMsat) return []

    open.accepted = {
      setId: htlcSetId([...open.parts.values()].map((p) => p.htlc.circuit)),
      deadlineMs: this.now() + this.acceptTimeoutMs
    }
    const outputs: MuxOutput[] = [this.acceptedOutput(invoice, open)]
    if (this.autoSettle) outputs.push(...this.requestSettle(invoice, open))
    return outputs
  }

  private openSet(invoice: Invoice, first: ValidPart): OpenSet {
    const set: OpenSet = {
      parts: new Map(),
      totalMsat: 0n,
      invoiceAmountMsat: first.invoiceAmountMsat,
      paymentAddr: first.paymentAddr,
      preimage: first.preimage,
      // One timer per set from its first part, so later parts cannot extend it (BOLT 4), and never
      // past the invoice's expiry (lnmux).
      mppDeadlineMs: Math.min(this.now() + this.mppTimeoutMs, first.invoiceExpiryMs)
    }
    invoice.open = set
    this.live.add(invoice)
    return set
  }

  private requestSettle(invoice: Invoice, set: OpenSet): MuxOutput[] {
    // Owned bytes: the settled set keeps the record's circuits, which came in the edges' offers.
    const record = ownedRecord<MuxRecord & { type: 'settle_requested' }>({
      type: 'settle_requested',
      term: this.term,
      hash: invoice.hash,
      setId: set.accepted!.setId,
      paymentAddr: set.paymentAddr,
      amountMsat: set.invoiceAmountMsat,
      htlcs: [...set.parts.values()].map((p) => ({ circuit: p.htlc.circuit, amountMsat: p.htlc.outgoingAmountMsat })),
      time: this.now()
    })
    set.settlePending = record
    return [{ kind: 'persist', record }]
  }

  private acceptedOutput(invoice: Invoice, set: OpenSet): MuxOutput {
    return {
      kind: 'accepted',
      hash: invoice.hash,
      setId: set.accepted!.setId,
      paymentAddr: set.paymentAddr,
      amountMsat: set.invoiceAmountMsat,
      htlcs: [...set.parts.values()].map((p) => ({ circuit: p.htlc.circuit, amountMsat: p.htlc.outgoingAmountMsat }))
    }
  }

  /** Fails every part of the open set and closes it; the invoice may be paid again unless cancelled. */
  private failSet(invoice: Invoice, reason: FailReason): MuxOutput[] {
    const set = invoice.open!
    const incomplete = set.accepted === undefined && reason === 'mpp_timeout'
    const outputs = [...set.parts.values()].map((part) => this.failureOf(invoice, part, reason, incomplete))
    invoice.open = undefined
    this.live.delete(invoice)
    return outputs
  }

  /** Fails one part of an incomplete set (mpp_timeout); the others keep waiting. */
  private failPart(invoice: Invoice, part: ValidPart, reason: FailReason): MuxOutput {
    const set = invoice.open!
    set.parts.delete(circuitId(part.htlc.circuit))
    set.totalMsat -= part.htlc.outgoingAmountMsat
    if (set.parts.size === 0) {
      invoice.open = undefined
      this.live.delete(invoice)
    }
    return this.failureOf(invoice, part, reason, true)
  }

  /**
   * mpp_timeout for the parts of a set that never completed (BOLT 4 "Basic Multi-Part Payments"),
   * incorrect_or_unknown_payment_details for everything else (as lnd fails a cancelled hodl invoice).
   */
  private failureOf(invoice: Invoice, part: ValidPart, reason: FailReason, incomplete: boolean): MuxOutput {
    const decision = incomplete
      ? encryptedFailure(part.sharedSecret, { code: FailureCode.MPP_TIMEOUT })
      : incorrectOrUnknown(part.sharedSecret, part.htlc, this.height)
    return this.decide(part.htlc.circuit, invoice.hash, decision, reason)
  }

  private decide(circuit: Circuit, hash: Uint8Array, decision: Decision, reason?: FailReason): MuxOutput {
    const key = circuitId(circuit)
    this.decided.delete(key)
    this.decided.set(key, { hash: hex(hash), decision, reason })
    if (this.decided.size > this.decisionMemory) this.decided.delete(this.decided.keys().next().value!)
    return { kind: 'decision', circuit, hash, decision, reason }
  }

  // -------------------------------------------------------------------------------------------
  // Durable records

  /** The invoice for `hashHex`: one held already, else the one restore makes of the ledger's records, held from now on. */
  private find(hashHex: string): Invoice | undefined {
    const held = this.invoices.get(hashHex)
    if (held !== undefined) return held
    const restored = this.restoredInvoice(hashHex)
    if (restored !== undefined) this.keep(hashHex, restored)
    return restored
  }

  /** Like find, for queries: a restored invoice is built for the answer and not held. */
  private peek(hashHex: string): Invoice | undefined {
    return this.invoices.get(hashHex) ?? this.restoredInvoice(hashHex)
  }

  private keep(hashHex: string, invoice: Invoice): void {
    this.invoices.set(hashHex, invoice)
    for (const key of invoice.settled?.htlcs.keys() ?? []) this.settledCircuits.set(key, hashHex)
  }

  /**
   * The invoice restore makes of the ledger's records for `hashHex`: its settle record, then its
   * final record, then its cancel. A record the others contradict goes to `refused` (restore
   * reports those of ledger.refusing(); elsewhere there are none).
   */
  private restoredInvoice(hashHex: string, refused: (record: MuxRecord, err: MuxError) => void = () => {}): Invoice | undefined {
    const entry = this.ledger.entry(hashHex)
    if (entry === undefined) return undefined
    const invoice: Invoice = { hash: Buffer.from(entry.hash), cancelled: false }
    for (const record of [entry.settle, entry.final, entry.cancel]) {
      if (record === undefined) continue
      try {
        this.apply(invoice, record)
      } catch (err) {
        if (!(err instanceof MuxError) || err.code !== 'bad_record') throw err
        refused(record, err)
      }
    }
    return invoice
  }

  /**
   * Applies a durable record to an invoice (restore, and a persisted settle request). Records are
   * idempotent: a new leader may read the same record from several replicated cores. A parts_failed
   * record never comes here: the machine needs nothing from it (its leader decided with it which
   * records stand, src/cluster/supersede.ts).
   */
  private apply(invoice: Invoice, record: Exclude<MuxRecord, { type: 'parts_failed' }>): void {
    switch (record.type) {
      case 'settle_requested': {
        if (invoice.cancelled) throw new MuxError('bad_record', 'settle record for a cancelled invoice')
        if (invoice.settled !== undefined) {
          if (equalBytes(invoice.settled.setId, record.setId)) return
          throw new MuxError('bad_record', 'a second HTLC set settled for one invoice')
        }
        // A settle record this identity key cannot redeem means the wrong key or a corrupt log.
        const preimage = settlePreimage(this.identityKey, record)
        if (preimage === null) throw new MuxError('bad_record', 'settle record does not match the identity key')
        const rank = this.restoredOrder.rankOf(hex(record.hash))
        invoice.settled = {
          sequence: BigInt(rank === undefined ? this.restoredOrder.count + this.settlementOrder.push(invoice) : rank + 1),
          setId: record.setId,
          preimage,
          amountMsat: record.amountMsat,
          requestedAt: record.time,
          htlcs: new Map(record.htlcs.map((h) => [circuitId(h.circuit), h] as const)),
          resolved: new Map(),
          finalPending: false
        }
        return
      }
      case 'cancelled':
        if (invoice.settled !== undefined) throw new MuxError('bad_record', 'cancel record for a settled invoice')
        invoice.cancelled = true
        return
      case 'final':
        if (invoice.settled === undefined || !equalBytes(invoice.settled.setId, record.setId)) {
          throw new MuxError('bad_record', 'final record without its settle record')
        }
        if (invoice.settled.final !== undefined && invoice.settled.final !== record.status) {
          throw new MuxError('bad_record', 'conflicting final records')
        }
        invoice.settled.final = record.status
        invoice.settled.finalizedAt = record.time
    }
  }
}

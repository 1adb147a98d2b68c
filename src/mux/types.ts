// The vocabulary of the virtual node's HTLC-set state machine: what it is fed (intercepted HTLCs,
// application requests, final resolutions, clock and block height), what it emits (per-circuit
// decisions, notifications, records to persist) and the durable records it is rebuilt from.
import type { Decision as InterceptorDecision } from '../lnd/circuits.ts'
import { CodedError } from '../errors.ts'

/** lnd's CircuitKey, made cluster-wide by the node that holds it (lnmux's types.HtlcKey). */
export interface Circuit {
  /** 33-byte compressed pubkey of the real node whose interceptor holds the HTLC. */
  node: Uint8Array
  chanId: bigint
  htlcId: bigint
}

/** An HTLC held by a real node's interceptor for its virtual scid (routerrpc.ForwardHtlcInterceptRequest). */
export interface InterceptedHtlc {
  circuit: Circuit
  incomingAmountMsat: bigint
  outgoingAmountMsat: bigint
  incomingExpiry: number
  outgoingExpiry: number
  outgoingRequestedChanId: bigint
  /** The 1366-byte onion packet for the hop after the real node: the virtual node's layer. */
  onionBlob: Uint8Array
  paymentHash: Uint8Array
  /** Height at which lnd fails the HTLC back on its own to avoid a force close. */
  autoFailHeight: number
  /** The real node's best height when it intercepted the HTLC. */
  currentHeight: number
}

/** Why an HTLC was failed; stable strings for the audit log and the edges' logs. */
export type FailReason =
  | 'wrong_channel' // outgoing_requested_chan_id is not the holding node's virtual scid
  | 'fee_insufficient' // the virtual hop's fee is below the routing policy
  | 'incorrect_cltv_expiry' // the virtual hop's cltv delta is below the routing policy
  | 'invalid_onion_version'
  | 'invalid_onion_key'
  | 'invalid_onion_hmac'
  | 'invalid_onion_payload'
  | 'not_final' // the onion asks the virtual node to forward
  | 'final_incorrect_htlc_amount'
  | 'final_incorrect_cltv_expiry'
  | 'payment_secret_missing' // no payment_data record (MPP record)
  | 'hash_mismatch' // payment_addr does not derive the payment hash: not our invoice
  | 'invoice_expired'
  | 'total_mismatch' // total_msat differs from the amount encoded in payment_addr
  | 'expiry_too_soon' // cltv too close to the current height, or to lnd's auto-fail height
  | 'invoice_cancelled'
  | 'invoice_settled' // a part that is not in the settled set
  | 'overpayment' // the part would take the set beyond the invoice amount
  | 'mpp_timeout'
  | 'accept_timeout'
  | 'hold_limit' // lnd's auto_fail_height is about to be reached

/**
 * What the virtual node decides for one HTLC: the interceptor's resolutions other than RESUME
 * (src/lnd/circuits.ts). A failure is either the 292-byte packet encrypted by the virtual node
 * (interceptor `failure_message`) or a code the real node originates itself (`failure_code`).
 */
export type Decision = Exclude<InterceptorDecision, { action: 'resume' }>

/** One HTLC as it stands in a set and in a settle record. */
export interface SetHtlc {
  circuit: Circuit
  amountMsat: bigint
}

export type FinalStatus = 'settled' | 'failed'

/**
 * Durable records. `settle_requested` is written (and flushed) before any preimage is emitted; the
 * preimage itself is not stored, a candidate re-derives it from the payment address.
 *
 * `term` is the leadership term of the machine that wrote the record (0 for a machine outside a
 * cluster election). Where two members hold contradicting records for one hash, the newer term wins
 * (src/cluster/supersede.ts): a leader of a later term gathered the records of a majority first, so
 * an older record it contradicts never reached a majority and no preimage left for it.
 */
export type MuxRecord =
  | {
      type: 'settle_requested'
      term: number
      hash: Uint8Array
      setId: Uint8Array
      paymentAddr: Uint8Array
      amountMsat: bigint
      htlcs: SetHtlc[]
      time: number
    }
  | { type: 'cancelled'; term: number; hash: Uint8Array; time: number }
  | { type: 'final'; hash: Uint8Array; setId: Uint8Array; status: FinalStatus; time: number }
  /**
   * A leader that knew no settle record for `hash` is about to fail HTLCs of a valid invoice for a
   * reason of its own (a timer, a height, arrival order): committed before those failures leave, it
   * supersedes any older settle record a dead leader may have left on a minority (DESIGN.md
   * invariant 1). The machine itself needs nothing from it.
   */
  | { type: 'parts_failed'; term: number; hash: Uint8Array; time: number }

export type MuxOutput =
  | { kind: 'decision'; circuit: Circuit; hash: Uint8Array; decision: Decision; reason?: FailReason }
  | { kind: 'accepted'; hash: Uint8Array; setId: Uint8Array; paymentAddr: Uint8Array; amountMsat: bigint; htlcs: SetHtlc[] }
  | { kind: 'persist'; record: MuxRecord }
  | { kind: 'final'; hash: Uint8Array; setId: Uint8Array; status: FinalStatus }

export type InvoiceStatus = 'open' | 'accepted' | 'settle_requested' | 'settled' | 'failed' | 'cancelled'

export type MuxErrorCode =
  | 'invoice_not_found' // no HTLC set and no record for this hash
  | 'not_accepted' // the set is still incomplete
  | 'set_id_mismatch' // the accepted or settled set has another id
  | 'invoice_cancelled'
  | 'invoice_settled' // cancel after settlement was requested
  | 'auto_settle' // explicit settle while autoSettle is on
  | 'bad_record' // a record to restore or acknowledge is malformed or unexpected
  | 'bad_input' // an event with impossible fields
  | 'store_failed' // the store could not append; it refuses further appends

export class MuxError extends CodedError<MuxErrorCode> {}

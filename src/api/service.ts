// The facade the application API (src/api/server.ts) serves. The agent implements it over the mux
// state machine (src/mux/) on the leader, and by forwarding to the leader elsewhere; the gRPC layer
// only validates and translates wire messages. Bytes are Uint8Array, msat and sequence numbers
// bigint, times whole Unix seconds.
import { CodedError } from '../errors.ts'

/** GetInfo: the virtual node's identity and the LND nodes that carry its route hints. */
export interface ApiInfo {
  pubKey: Uint8Array // compressed identity key, 33 bytes
  network: string // "mainnet", "testnet", "signet" or "regtest" (lnmux says "testnet", never "testnet3")
  nodes: Uint8Array[] // compressed node keys, 33 bytes each
  autoSettle: boolean
}

/** AddInvoice input, already checked for shape: amtMsat > 0, expirySecs > 0, descriptionHash 32 bytes. */
export interface AddInvoiceParams {
  amtMsat: bigint
  description: string
  descriptionHash?: Uint8Array
  expirySecs: number
}

export interface CreatedInvoice {
  paymentRequest: string
  preimage: Uint8Array
  hash: Uint8Array
}

/** One HTLC set that reached the invoice amount and waits for SettleInvoice or CancelInvoice. */
export interface AcceptedSet {
  hash: Uint8Array
  setId: Uint8Array
}

/** Statuses of an invoice whose settlement was requested (lnmux's `InvoiceStatus`). */
export type SettlementStatus = 'settle_requested' | 'settled' | 'failed'
export type FinalSettlementStatus = Exclude<SettlementStatus, 'settle_requested'>

/** An invoice as ListInvoices reports it: only invoices whose settlement was requested are known. */
export interface ListedInvoice {
  sequenceNumber: bigint // > 0, strictly increasing in the order settlements were requested
  hash: Uint8Array
  preimage: Uint8Array
  amountMsat: bigint
  status: SettlementStatus
  settleRequestedAt: number
  finalizedAt: number | null // null while status is 'settle_requested'
}

export interface ListInvoicesParams {
  sequenceStart: bigint // first sequence number to return (inclusive); 0 and 1 both mean "from the start"
  maxCount: number // >= 1
}

export type AcceptedListener = (set: AcceptedSet) => void

export interface InvoiceApi {
  getInfo(): Promise<ApiInfo>
  addInvoice(params: AddInvoiceParams): Promise<CreatedInvoice>
  /**
   * Calls `listener` once for every set accepted now and not yet settled or cancelled (the replay,
   * synchronously, before returning), then for every set accepted later, until the returned
   * function is called.
   */
  subscribeAccepted(listener: AcceptedListener): () => void
  /** Idempotent: settling the set whose settlement was already requested resolves again. */
  settle(hash: Uint8Array, setId: Uint8Array): Promise<void>
  /** `setId`, when given, must name the accepted set. */
  cancel(hash: Uint8Array, setId?: Uint8Array): Promise<void>
  /** Resolves once every HTLC of the settled set has its final resolution; rejects if `signal` aborts. */
  waitForFinalStatus(hash: Uint8Array, signal: AbortSignal): Promise<FinalSettlementStatus>
  /** Invoices with sequenceNumber >= sequenceStart, ascending, at most maxCount. */
  listInvoices(params: ListInvoicesParams): Promise<ListedInvoice[]>
}

/**
 * Errors a facade raises for the caller to see. The server maps each code to a gRPC status; it also
 * maps the mux's own `MuxError` codes (src/mux/types.ts), so a facade may let those through.
 */
export type ApiErrorCode =
  | 'invalid_argument' // the request is well-formed on the wire but cannot be served as asked
  | 'not_found' // no such invoice (or no settlement requested, for waitForFinalStatus)
  | 'failed_precondition' // the invoice is not in a state that allows the call
  | 'not_leader' // this agent cannot serve the call now (no leader reachable)
  | 'aborted' // the wait was aborted (client gone or server closing)

export class ApiError extends CodedError<ApiErrorCode> {}

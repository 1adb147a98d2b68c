// Pure state machine of one node's HtlcInterceptor stream: which circuits are held, what was
// decided for each, and whether lnd awaits an answer on the current stream. No IO: the caller feeds it lnd's
// offers, the application's decisions, stream open/close and block heights, and writes the
// responses it returns. It enforces lnd v0.21's rules (lnrpc/routerrpc/forward_interceptor.go,
// htlcswitch/interceptable_switch.go, htlcswitch/held_htlc_set.go), where any rejected
// resolution ends the whole stream:
//  - each offer stands for one held entry that takes exactly one resolution: a resolution with
//    no entry waiting gets ErrFwdNotExists. lnd offers a circuit only when it adds an entry
//    (forwardOffChain skips circuits already held; on connect it replays the held set), so the
//    rule is one answer per offer. A circuit can be offered again on the same stream after we
//    answered it (a link restart replays its adds; a force close moves it on-chain); the
//    decision is then sent again, as lnd asks ("handle requests for the same circuit key
//    idempotently", router.proto);
//  - FAIL takes either a 292-byte encrypted failure_message or one of four failure codes;
//  - SETTLE's preimage must hash to the payment hash;
//  - an HTLC whose incoming channel went to chain is re-offered with auto_fail_height set to its
//    settlement deadline and accepts only SETTLE (held_htlc_set.go onChainHeld.resolve);
//  - held off-chain HTLCs are failed by lnd itself once the height reaches auto_fail_height.
import { sha256 } from '@noble/hashes/sha2.js'
import unslab from 'unslab'
import { InterceptorError } from './errors.ts'
import type { RawInterceptResponse } from './client.ts'

export interface CircuitKey {
  chanId: bigint // incoming channel
  htlcId: bigint // index of the HTLC in that channel
}

export interface InterceptedHtlc {
  circuit: CircuitKey
  incomingAmountMsat: bigint
  incomingExpiry: number
  outgoingAmountMsat: bigint
  outgoingExpiry: number
  outgoingRequestedChanId: bigint
  paymentHash: Buffer
  onionBlob: Buffer // 1366-byte onion packet for the next hop (BOLT 4)
  customRecords: Map<bigint, Buffer>
  inWireCustomRecords: Map<bigint, Buffer>
  // Off-chain: the height at which lnd fails the held HTLC back itself (incoming expiry minus
  // lnd's CltvRejectDelta of 19). On-chain: the settlement deadline (= incoming expiry).
  autoFailHeight: number
  // The incoming channel was force-closed: lnd's contract court offers the HTLC again with its
  // on-chain deadline, and only SETTLE is accepted (witness_beacon.go SubscribeUpdates).
  onChain: boolean
}

// Failure codes lnd's interceptor accepts (forward_interceptor.go resolveFromClient); any other
// code ends the stream with "unsupported failure code".
export const INTERCEPTOR_FAILURE_CODES = ['TEMPORARY_CHANNEL_FAILURE', 'INVALID_ONION_HMAC', 'INVALID_ONION_KEY', 'INVALID_ONION_VERSION'] as const
export type InterceptorFailureCode = (typeof INTERCEPTOR_FAILURE_CODES)[number]

// BOLT 4 failure onion as lnd checks it: hmac(32) ‖ u16 len ‖ failuremsg ‖ u16 pad_len ‖ pad,
// with message and padding together 256 bytes (lnwire.FailureMessageLength + 32 + 2 + 2).
export const FAILURE_MESSAGE_LENGTH = 292
const PREIMAGE_LENGTH = 32

export type Decision =
  | { action: 'settle', preimage: Uint8Array }
  | { action: 'fail', failureMessage: Uint8Array }
  | { action: 'fail', failureCode: InterceptorFailureCode }
  | { action: 'resume' }

export type OfferEffect =
  | { type: 'handle', htlc: InterceptedHtlc } // new to us (or just moved on-chain): ask the handler
  | { type: 'send', response: RawInterceptResponse } // write this now
  | { type: 'held' } // a replay of an undecided HTLC the handler already has
  | { type: 'ignore', reason: 'duplicate' | 'not_sendable_on_chain' }

export type DecideEffect =
  | { type: 'send', response: RawInterceptResponse } // write this now
  | { type: 'deferred' } // stored; goes out when lnd offers the HTLC on the next stream
  | { type: 'duplicate' } // the same decision was already taken
  | { type: 'withheld' } // on-chain HTLC and not a settle: lnd would refuse it, it times out on chain

// What the rules below read of an offer. A circuit is remembered until its incoming expiry, hours
// after it was decided: keeping the offer itself would keep its onion and, through its decoded
// fields, lnd's whole gRPC frame for as long, so the payment hash is copied out of the frame.
export type HeldTerms = Pick<InterceptedHtlc, 'circuit' | 'paymentHash' | 'incomingExpiry' | 'autoFailHeight' | 'onChain'>

function heldTerms (htlc: InterceptedHtlc): HeldTerms {
  const { circuit, paymentHash, incomingExpiry, autoFailHeight, onChain } = htlc
  return { circuit, paymentHash: unslab(paymentHash), incomingExpiry, autoFailHeight, onChain }
}

// Only HTLCs for the virtual channel are tracked: anything else gets one RESUME per offer and
// needs no memory.
interface Circuit {
  htlc: HeldTerms // of the latest offer
  decision: Decision | null
  awaitingOn: number | null // stream epoch of an offer not answered yet
  answered: boolean // the decision went out at least once
  expired: boolean // lnd failed it back at auto_fail_height
}

export function circuitId (key: CircuitKey): string {
  return `${key.chanId}:${key.htlcId}`
}

export function validateDecision (decision: Decision): void {
  const bad = (why: string): never => { throw new InterceptorError('invalid_decision', why) }
  if (typeof decision !== 'object' || decision === null) bad('decision must be an object')
  switch (decision.action) {
    case 'settle':
      if (!(decision.preimage instanceof Uint8Array) || decision.preimage.length !== PREIMAGE_LENGTH) bad('settle needs a 32-byte preimage')
      return
    case 'resume':
      return
    case 'fail': {
      const hasMessage = 'failureMessage' in decision
      const hasCode = 'failureCode' in decision
      if (hasMessage === hasCode) bad('fail needs exactly one of failureMessage and failureCode')
      if ('failureMessage' in decision) {
        if (!(decision.failureMessage instanceof Uint8Array) || decision.failureMessage.length !== FAILURE_MESSAGE_LENGTH) bad(`failureMessage must be ${FAILURE_MESSAGE_LENGTH} bytes`)
      } else if (!INTERCEPTOR_FAILURE_CODES.includes(decision.failureCode)) {
        bad(`lnd's interceptor refuses failure code ${String(decision.failureCode)}; use one of ${INTERCEPTOR_FAILURE_CODES.join(', ')}`)
      }
      return
    }
    default:
      bad(`unknown action ${String((decision as { action: unknown }).action)}`)
  }
}

function sameDecision (a: Decision, b: Decision): boolean {
  if (a.action === 'settle' && b.action === 'settle') return Buffer.from(a.preimage).equals(b.preimage)
  if (a.action === 'fail' && b.action === 'fail') {
    if ('failureMessage' in a && 'failureMessage' in b) return Buffer.from(a.failureMessage).equals(b.failureMessage)
    if ('failureCode' in a && 'failureCode' in b) return a.failureCode === b.failureCode
    return false
  }
  return a.action === b.action
}

// lnd accepts nothing but SETTLE for an on-chain HTLC.
function sendable (decision: Decision, htlc: Pick<InterceptedHtlc, 'onChain'>): boolean {
  return !htlc.onChain || decision.action === 'settle'
}

export function toResponse (key: CircuitKey, decision: Decision): RawInterceptResponse {
  const incoming_circuit_key = { chan_id: key.chanId.toString(), htlc_id: key.htlcId.toString() }
  switch (decision.action) {
    case 'settle': return { incoming_circuit_key, action: 'SETTLE', preimage: Buffer.from(decision.preimage) }
    case 'resume': return { incoming_circuit_key, action: 'RESUME' }
    case 'fail':
      return 'failureMessage' in decision
        ? { incoming_circuit_key, action: 'FAIL', failure_message: Buffer.from(decision.failureMessage) }
        : { incoming_circuit_key, action: 'FAIL', failure_code: decision.failureCode }
  }
}

const RESUME: Decision = { action: 'resume' }

export class CircuitTracker {
  readonly virtualScid: bigint
  private readonly circuits = new Map<string, Circuit>()
  private epoch = 0
  private open = false
  private height = 0

  constructor (virtualScid: bigint) {
    this.virtualScid = virtualScid
  }

  get size (): number {
    return this.circuits.size
  }

  get blockHeight (): number {
    return this.height
  }

  // A new HtlcInterceptor stream: lnd will offer again every HTLC it still holds.
  streamOpened (): void {
    this.epoch++
    this.open = true
  }

  streamClosed (): void {
    this.open = false
  }

  offer (htlc: InterceptedHtlc): OfferEffect {
    if (htlc.outgoingRequestedChanId !== this.virtualScid) {
      // lnd's own forwarding: RESUME at once, once per offer. On-chain, lnd would refuse it.
      return sendable(RESUME, htlc) ? { type: 'send', response: toResponse(htlc.circuit, RESUME) } : { type: 'ignore', reason: 'not_sendable_on_chain' }
    }
    const id = circuitId(htlc.circuit)
    const known = this.circuits.get(id)
    if (known === undefined) {
      this.circuits.set(id, { htlc: heldTerms(htlc), decision: null, awaitingOn: this.epoch, answered: false, expired: false })
      return { type: 'handle', htlc }
    }
    const promoted = htlc.onChain && !known.htlc.onChain
    // A repeat while the offer is still unanswered on this stream is the same entry of lnd's,
    // unless the HTLC just moved on-chain (addOnChain replaced the entry).
    if (known.awaitingOn === this.epoch && !promoted) {
      known.htlc = heldTerms(htlc)
      return known.decision === null ? { type: 'held' } : { type: 'ignore', reason: 'duplicate' }
    }
    const wasExpired = known.expired
    known.htlc = heldTerms(htlc)
    known.expired = false
    known.awaitingOn = this.epoch
    if (known.decision === null) return promoted || wasExpired ? { type: 'handle', htlc } : { type: 'held' }
    if (!sendable(known.decision, htlc)) return { type: 'ignore', reason: 'not_sendable_on_chain' }
    return { type: 'send', response: this.answer(known, known.decision) }
  }

  decide (key: CircuitKey, decision: Decision): DecideEffect {
    validateDecision(decision)
    const c = this.circuits.get(circuitId(key))
    if (c === undefined) throw new InterceptorError('unknown_circuit', `no held HTLC ${circuitId(key)}`)
    if (decision.action === 'settle' && !Buffer.from(sha256(decision.preimage)).equals(c.htlc.paymentHash)) {
      throw new InterceptorError('preimage_mismatch', `preimage does not hash to the payment hash of HTLC ${circuitId(key)}`)
    }
    if (c.decision !== null) {
      if (sameDecision(c.decision, decision)) return { type: 'duplicate' }
      throw new InterceptorError('already_decided', `HTLC ${circuitId(key)} was already decided: ${c.decision.action}`)
    }
    if (c.expired || (!c.htlc.onChain && this.height >= c.htlc.autoFailHeight)) {
      c.expired = true
      throw new InterceptorError('htlc_expired', `HTLC ${circuitId(key)} reached auto_fail_height ${c.htlc.autoFailHeight} at height ${this.height}: lnd has failed it back`)
    }
    c.decision = decision
    if (!sendable(decision, c.htlc)) return { type: 'withheld' }
    if (!this.open || c.awaitingOn !== this.epoch) return { type: 'deferred' }
    return { type: 'send', response: this.answer(c, decision) }
  }

  // New best block. Returns the HTLCs lnd has just failed back itself (held off-chain and still
  // unanswered at auto_fail_height: held_htlc_set.go offChainHeld.expire). Forgets circuits past
  // their incoming expiry, after which lnd can offer them in no form.
  advanceHeight (height: number): HeldTerms[] {
    if (!Number.isSafeInteger(height) || height < 0) throw new RangeError(`block height must be a non-negative integer, got ${height}`)
    if (height <= this.height) return []
    this.height = height
    const expired: HeldTerms[] = []
    for (const [id, c] of this.circuits) {
      if (height >= c.htlc.incomingExpiry) {
        this.circuits.delete(id)
      } else if (!c.htlc.onChain && !c.expired && !c.answered && height >= c.htlc.autoFailHeight) {
        c.expired = true
        expired.push(c.htlc)
      }
    }
    return expired
  }

  // The one answer to the pending offer of `c` on the current stream.
  private answer (c: Circuit, decision: Decision): RawInterceptResponse {
    c.awaitingOn = null
    c.answered = true
    return toResponse(c.htlc.circuit, decision)
  }
}

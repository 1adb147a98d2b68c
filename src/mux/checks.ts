// The per-HTLC checks of the virtual node, in the order the HTLC would meet them on a real route:
// first the real node's forwarding checks for the virtual hop (BOLT 4 "Failure Messages",
// forwarding node), then the virtual node's own onion layer (BOLT 4 "Onion Decryption") and its
// final-node checks (BOLT 4 "Payload Format" reader requirements, "Failure Messages" final node,
// "Basic Multi-Part Payments"), then the stateless invoice of DESIGN.md.
//
// Who answers a failure matters to the payer, who attributes it to the hop whose key decrypts it:
// - The virtual hop's fee and CLTV delta are the real node's forwarding policy. BOLT 4 answers them
//   with fee_insufficient / incorrect_cltv_expiry, which carry a channel_update signed by that node
//   and which a final node MUST NOT return; the agent cannot sign for the real node, and lnd's
//   interceptor lets the real node originate only a few codes. So the real node fails them with
//   temporary_channel_failure (interceptor failure_code), as lnmux does.
// - Onions that cannot be decrypted leave no shared secret: the real node answers with the BADONION
//   code (update_fail_malformed_htlc), again through failure_code.
// - Everything else is the virtual node's own answer, encrypted with the peeled shared secret.
import { createHash, timingSafeEqual } from 'node:crypto'
import { OnionError, PayloadType, peelOnion, type HopPayload } from '../ln/onion.ts'
import { FailureCode, createFailurePacket, encodeFailureMessage, type FailureMessage } from '../ln/failure.ts'
import { parsePaymentAddr, statelessPreimage, type VirtualChannelPolicy } from '../ln/stateless.ts'
import { virtualScid } from '../ln/scid.ts'
import type { InterceptorFailureCode } from '../lnd/circuits.ts'
import type { Decision, FailReason, InterceptedHtlc } from './types.ts'

export interface CheckContext {
  /** The virtual node's 32-byte identity (secret) key. */
  identityKey: Uint8Array
  policy: VirtualChannelPolicy
  /**
   * Blocks the HTLC must still have before its expiry when it arrives (lnd's and lnmux's
   * FinalCltvRejectDelta); keep it below the invoices' min_final_cltv_expiry so that a payer one or
   * two blocks behind is not refused.
   */
  finalCltvRejectDelta: number
  /** Blocks before lnd's auto_fail_height at which the virtual node stops holding an HTLC. */
  holdMarginBlocks: number
  nowMs: number
  /** Best block height known to the virtual node. */
  height: number
}

/** A part that passed every per-HTLC check; what the set logic needs to hold, settle or fail it. */
export interface ValidPart {
  htlc: InterceptedHtlc
  sharedSecret: Uint8Array
  paymentAddr: Uint8Array
  preimage: Uint8Array
  invoiceAmountMsat: bigint
  invoiceExpiryMs: number
}

export type CheckResult = { ok: true; part: ValidPart } | { ok: false; reason: FailReason; decision: Decision }

/** A failure message encrypted by the virtual node as the erring (final) node: 292 bytes. */
export function encryptedFailure(sharedSecret: Uint8Array, message: FailureMessage): Decision {
  return { action: 'fail', failureMessage: createFailurePacket(sharedSecret, encodeFailureMessage(message)) }
}

/**
 * incorrect_or_unknown_payment_details (PERM|15): htlc_msat is the amount of the HTLC the virtual
 * node received, height its best known block height (BOLT 4 "Failure Messages").
 */
export function incorrectOrUnknown(sharedSecret: Uint8Array, htlc: InterceptedHtlc, height: number): Decision {
  return encryptedFailure(sharedSecret, {
    code: FailureCode.INCORRECT_OR_UNKNOWN_PAYMENT_DETAILS,
    htlcMsat: htlc.outgoingAmountMsat,
    height: Math.max(height, htlc.currentHeight)
  })
}

function failWithCode(reason: FailReason, failureCode: InterceptorFailureCode): CheckResult {
  return { ok: false, reason, decision: { action: 'fail', failureCode } }
}

function failEncrypted(reason: FailReason, sharedSecret: Uint8Array, message: FailureMessage): CheckResult {
  return { ok: false, reason, decision: encryptedFailure(sharedSecret, message) }
}

/** BOLT 7 "HTLC Fees": fee_base_msat + amount_to_forward * fee_proportional_millionths / 1000000. */
export function virtualHopFee(policy: VirtualChannelPolicy, outgoingAmountMsat: bigint): bigint {
  return BigInt(policy.feeBaseMsat) + (outgoingAmountMsat * BigInt(policy.feeProportionalMillionths)) / 1_000_000n
}

/** The real node's forwarding checks for the virtual hop (BOLT 4, forwarding node). */
function checkVirtualHop(htlc: InterceptedHtlc, policy: VirtualChannelPolicy): CheckResult | undefined {
  // An edge forwards only HTLCs for its own node's virtual scid; anything else is not ours to take.
  if (htlc.outgoingRequestedChanId !== virtualScid(htlc.circuit.node)) {
    return failWithCode('wrong_channel', 'TEMPORARY_CHANNEL_FAILURE')
  }
  if (htlc.incomingAmountMsat < htlc.outgoingAmountMsat + virtualHopFee(policy, htlc.outgoingAmountMsat)) {
    return failWithCode('fee_insufficient', 'TEMPORARY_CHANNEL_FAILURE')
  }
  if (htlc.incomingExpiry - policy.cltvExpiryDelta < htlc.outgoingExpiry) {
    return failWithCode('incorrect_cltv_expiry', 'TEMPORARY_CHANNEL_FAILURE')
  }
  return undefined
}

/**
 * Maps an undecryptable onion to the BADONION code the real node returns. A wrong length cannot come
 * from lnd (update_add_htlc carries exactly 1366 bytes); lnd's DecodeHopIterator answers any packet
 * it cannot parse, other than a bad version, with invalid_onion_key, and so do we.
 */
const MALFORMED: Record<string, { reason: FailReason; code: InterceptorFailureCode }> = {
  invalid_version: { reason: 'invalid_onion_version', code: 'INVALID_ONION_VERSION' },
  invalid_hmac: { reason: 'invalid_onion_hmac', code: 'INVALID_ONION_HMAC' },
  invalid_key: { reason: 'invalid_onion_key', code: 'INVALID_ONION_KEY' },
  invalid_length: { reason: 'invalid_onion_key', code: 'INVALID_ONION_KEY' }
}

type Peeled = { ok: true; sharedSecret: Uint8Array; payload: HopPayload } | { ok: false; result: CheckResult }

function peel(htlc: InterceptedHtlc, identityKey: Uint8Array): Peeled {
  let peeled
  try {
    peeled = peelOnion(htlc.onionBlob, identityKey, htlc.paymentHash)
  } catch (err) {
    if (!(err instanceof OnionError)) throw err
    const malformed = MALFORMED[err.code]
    if (malformed !== undefined) return { ok: false, result: failWithCode(malformed.reason, malformed.code) }
    // invalid_payload: the HMAC checked out, so peelOnion hands over the shared secret to encrypt with.
    const sharedSecret = err.sharedSecret
    if (sharedSecret === undefined) throw err
    return {
      ok: false,
      result: failEncrypted('invalid_onion_payload', sharedSecret, {
        code: FailureCode.INVALID_ONION_PAYLOAD,
        type: err.tlvType ?? 0n,
        offset: err.offset ?? 0
      })
    }
  }
  const { sharedSecret, payload, isFinal } = peeled
  // The virtual node has no channels: an onion that goes on names a peer it cannot reach.
  if (!isFinal) return { ok: false, result: failEncrypted('not_final', sharedSecret, { code: FailureCode.UNKNOWN_NEXT_PEER }) }
  // BOLT 4 "Payload Format": the final payload MUST NOT include short_channel_id (lnd rejects it
  // as an invalid payload naming that type, offset 0).
  if (payload.shortChannelId !== undefined) {
    return {
      ok: false,
      result: failEncrypted('invalid_onion_payload', sharedSecret, { code: FailureCode.INVALID_ONION_PAYLOAD, type: PayloadType.SHORT_CHANNEL_ID, offset: 0 })
    }
  }
  return { ok: true, sharedSecret, payload }
}

/** Every per-HTLC check; the set-level rules (cancel, settle, totals, timers) are the machine's. */
export function checkHtlc(htlc: InterceptedHtlc, ctx: CheckContext): CheckResult {
  const hop = checkVirtualHop(htlc, ctx.policy)
  if (hop !== undefined) return hop
  const peeled = peel(htlc, ctx.identityKey)
  if (!peeled.ok) return peeled.result
  const { sharedSecret, payload } = peeled
  const height = Math.max(ctx.height, htlc.currentHeight)
  const unknown = (reason: FailReason): CheckResult => ({ ok: false, reason, decision: incorrectOrUnknown(sharedSecret, htlc, height) })

  // BOLT 4 final node: the HTLC it received (the virtual channel's) against its onion payload, in
  // lnd's order (htlcswitch/link.go processExitHop).
  if (htlc.outgoingAmountMsat < payload.amtToForward) {
    return failEncrypted('final_incorrect_htlc_amount', sharedSecret, { code: FailureCode.FINAL_INCORRECT_HTLC_AMOUNT, incomingHtlcAmt: htlc.outgoingAmountMsat })
  }
  if (htlc.outgoingExpiry < payload.outgoingCltvValue) {
    return failEncrypted('final_incorrect_cltv_expiry', sharedSecret, { code: FailureCode.FINAL_INCORRECT_CLTV_EXPIRY, cltvExpiry: htlc.outgoingExpiry })
  }
  // The invoices require payment_secret (feature 14): without payment_data, BOLT 4 says
  // incorrect_or_unknown_payment_details.
  if (payload.paymentData === undefined) return unknown('payment_secret_missing')
  const { paymentSecret: paymentAddr, totalMsat } = payload.paymentData

  // Stateless invoice (DESIGN.md): the payment address must derive the payment hash.
  const preimage = statelessPreimage(ctx.identityKey, paymentAddr)
  const hash = createHash('sha256').update(preimage).digest()
  if (htlc.paymentHash.length !== 32 || !timingSafeEqual(hash, htlc.paymentHash)) return unknown('hash_mismatch')
  const invoice = parsePaymentAddr(paymentAddr)
  const invoiceExpiryMs = invoice.expiryUnix * 1000
  if (ctx.nowMs > invoiceExpiryMs) return unknown('invoice_expired')
  // lnmux accepts exactly the invoiced total, no overpayment of the set.
  if (totalMsat !== invoice.amountMsat) return unknown('total_mismatch')
  // "cltv_expiry unreasonably near the present" → incorrect_or_unknown_payment_details.
  if (htlc.outgoingExpiry < height + ctx.finalCltvRejectDelta) return unknown('expiry_too_soon')
  // Bounded holding: a part lnd would auto-fail before we could decide is refused now.
  if (height >= htlc.autoFailHeight - ctx.holdMarginBlocks) return unknown('hold_limit')

  return {
    ok: true,
    part: { htlc, sharedSecret, paymentAddr: Buffer.from(paymentAddr), preimage, invoiceAmountMsat: invoice.amountMsat, invoiceExpiryMs }
  }
}

const isU64 = (v: unknown): v is bigint => typeof v === 'bigint' && v >= 0n && v < 1n << 64n
const isHeight = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v) && v >= 0 && v < 2 ** 32
const isBytes = (v: unknown, length: number): v is Uint8Array => v instanceof Uint8Array && v.length === length

/**
 * The shape of an intercepted HTLC (what compact-encoding or gRPC decoding cannot promise):
 * returns what is wrong, or undefined. The onion's own length is left to the onion checks, which
 * answer it with a BOLT 4 failure.
 */
export function htlcShapeError(htlc: InterceptedHtlc): string | undefined {
  const c = htlc?.circuit
  if (c === undefined || !isBytes(c.node, 33) || !isU64(c.chanId) || !isU64(c.htlcId)) return 'circuit must be a 33-byte node and u64 chanId/htlcId'
  if (!isU64(htlc.incomingAmountMsat) || !isU64(htlc.outgoingAmountMsat)) return 'amounts must be u64 bigints'
  if (!isHeight(htlc.incomingExpiry) || !isHeight(htlc.outgoingExpiry)) return 'expiries must be u32 block heights'
  if (!isHeight(htlc.autoFailHeight) || !isHeight(htlc.currentHeight)) return 'autoFailHeight and currentHeight must be u32 block heights'
  if (!isU64(htlc.outgoingRequestedChanId)) return 'outgoingRequestedChanId must be a u64 bigint'
  if (!isBytes(htlc.paymentHash, 32)) return 'paymentHash must be 32 bytes'
  if (!(htlc.onionBlob instanceof Uint8Array)) return 'onionBlob must be bytes'
  return undefined
}

// What a simulated node's channel link does with an HTLC it received (lnd htlcswitch/link.go, in
// short): peel its onion layer, then either receive it as the final hop (against the node's own
// invoices) or hand it to the interceptable switch for forwarding. The effects of the switch's
// decisions (resume to the next channel, settle, fail) are defined here.
import { sha256 } from '@noble/hashes/sha2.js'
import { encodeBigSize } from '../ln/bigsize.ts'
import { secp256k1 } from '../ln/secp256k1.ts'
import { OnionError, peelOnion, type PeeledOnion } from '../ln/onion.ts'
import { FailureCode, createFailurePacket, encodeFailureMessage, wrapFailurePacket, type FailureMessage } from '../ln/failure.ts'
import { CLTV_REJECT_DELTA, bytesEqual, type HeldForward, type InterceptedPacket, type LocalFailCode } from './switch.ts'
import type { HtlcOutcome, MalformedCode, SimHtlc, SimNode } from './network.ts'

/** Custom records are the TLV types at or above 2^16 (BOLT 1 / lnd record.CustomTypeStart). */
const CUSTOM_TYPE_START = 65536n

const MALFORMED_CODES: Record<string, MalformedCode> = {
  invalid_version: FailureCode.INVALID_ONION_VERSION,
  invalid_key: FailureCode.INVALID_ONION_KEY,
  invalid_hmac: FailureCode.INVALID_ONION_HMAC
}

export function processHtlc (htlc: SimHtlc, isReplay: boolean): void {
  const node = htlc.to
  let peeled: PeeledOnion
  try {
    peeled = peelOnion(htlc.onion, node.secretKey, htlc.paymentHash)
  } catch (err) {
    if (!(err instanceof OnionError)) throw err
    return failUnreadable(node, htlc, err)
  }
  if (peeled.isFinal) return receive(node, htlc, peeled)
  node.switch.forward(heldForward(node, htlc, peeled), node.network.height, isReplay)
}

/**
 * An onion this node cannot read: update_fail_malformed_htlc for a bad version/key/HMAC (BOLT 2),
 * which the previous hop turns into its own failure; a readable onion with a bad payload is
 * failed with invalid_onion_payload encrypted to the payer. lnd answers `invalid_length` the same
 * way as an HMAC failure (the packet cannot be authenticated).
 */
function failUnreadable (node: SimNode, htlc: SimHtlc, err: OnionError): void {
  const onionSha256 = sha256(htlc.onion)
  if (err.code !== 'invalid_payload') {
    const failureCode = MALFORMED_CODES[err.code] ?? FailureCode.INVALID_ONION_HMAC
    return node.finalize(htlc, { type: 'malformed', failureCode, onionSha256 })
  }
  // The packet authenticated, so its key is valid: this is the secret peelOnion derived.
  const sharedSecret = secp256k1.ecdh(htlc.onion.subarray(1, 34), node.secretKey)
  failLocal(node, htlc, sharedSecret, { code: FailureCode.INVALID_ONION_PAYLOAD, type: err.tlvType ?? 0n, offset: err.offset ?? 0 })
}

/** The final hop: settle against the node's own invoice, or fail as lnd's invoice registry does. */
function receive (node: SimNode, htlc: SimHtlc, peeled: PeeledOnion): void {
  const invoice = node.invoice(htlc.paymentHash)
  const { payload } = peeled
  const ok = invoice !== undefined &&
    invoice.state === 'open' &&
    payload.paymentData !== undefined &&
    bytesEqual(payload.paymentData.paymentSecret, invoice.paymentAddr) &&
    payload.paymentData.totalMsat === htlc.amountMsat && // the simulator receives single-part payments only
    htlc.amountMsat >= invoice.valueMsat &&
    payload.amtToForward <= htlc.amountMsat &&
    htlc.expiry >= node.network.height + invoice.cltvExpiry
  if (ok) {
    invoice.state = 'settled'
    invoice.amountPaidMsat = htlc.amountMsat
    return node.finalize(htlc, { type: 'settled', preimage: invoice.preimage })
  }
  failLocal(node, htlc, peeled.sharedSecret, {
    code: FailureCode.INCORRECT_OR_UNKNOWN_PAYMENT_DETAILS,
    htlcMsat: htlc.amountMsat,
    height: node.network.height
  })
}

/** A failure this node originates: BOLT 4 "Returning Errors", first hop encryption. */
function failLocal (node: SimNode, htlc: SimHtlc, sharedSecret: Uint8Array, message: FailureMessage): void {
  const reason = createFailurePacket(sharedSecret, encodeFailureMessage(message))
  node.finalize(htlc, { type: 'failed', reason })
}

/**
 * The message lnd's FailWithCode builds for each supported code. temporary_channel_failure and
 * expiry_too_soon carry a channel_update; the simulator sends the zero-length form lnd itself uses
 * when it has no update (lnwire FailTemporaryChannelFailure.Encode).
 */
function localFailure (code: LocalFailCode, onion: Uint8Array): FailureMessage {
  switch (code) {
    case FailureCode.INVALID_ONION_VERSION:
    case FailureCode.INVALID_ONION_HMAC:
    case FailureCode.INVALID_ONION_KEY:
      return { code, sha256OfOnion: sha256(onion) }
    case FailureCode.TEMPORARY_CHANNEL_FAILURE:
    case FailureCode.EXPIRY_TOO_SOON:
      return { code, channelUpdate: new Uint8Array(0) }
    case FailureCode.EXPIRY_TOO_FAR:
      return { code }
  }
}

function interceptedPacket (htlc: SimHtlc, peeled: PeeledOnion & { nextPacket: Uint8Array }): InterceptedPacket {
  const { payload } = peeled
  const customRecords = new Map<bigint, Uint8Array>()
  for (const record of payload.records) {
    if (record.type >= CUSTOM_TYPE_START) customRecords.set(record.type, record.value)
  }
  return {
    incomingCircuitKey: htlc.key,
    incomingAmountMsat: htlc.amountMsat,
    incomingExpiry: htlc.expiry,
    paymentHash: htlc.paymentHash,
    outgoingRequestedChanId: payload.shortChannelId ?? 0n,
    outgoingAmountMsat: payload.amtToForward,
    outgoingExpiry: payload.outgoingCltvValue,
    customRecords,
    onionBlob: peeled.nextPacket,
    autoFailHeight: htlc.expiry - CLTV_REJECT_DELTA
  }
}

function heldForward (node: SimNode, htlc: SimHtlc, peeled: PeeledOnion): HeldForward {
  if (peeled.nextPacket === undefined) throw new TypeError('heldForward: onion has no next packet')
  const packet = interceptedPacket(htlc, { ...peeled, nextPacket: peeled.nextPacket })
  const { sharedSecret } = peeled
  const failWithCode = (code: LocalFailCode): void => failLocal(node, htlc, sharedSecret, localFailure(code, htlc.onion))
  return {
    packet,
    resume: () => resume(node, htlc, packet, sharedSecret, failWithCode),
    settle: (preimage) => node.finalize(htlc, { type: 'settled', preimage }),
    // IntermediateEncrypt: the interceptor's packet is already encrypted for the payer; lnd adds
    // this hop's obfuscation layer, as for a failure coming back from a downstream peer.
    fail: (reason) => node.finalize(htlc, { type: 'failed', reason: wrapFailurePacket(sharedSecret, reason) }),
    failWithCode
  }
}

/** The switch forwards a resumed HTLC over the requested channel (lnd: by scid, or fails). */
function resume (node: SimNode, htlc: SimHtlc, packet: InterceptedPacket, sharedSecret: Uint8Array, failWithCode: (code: LocalFailCode) => void): void {
  const channel = node.network.channel(packet.outgoingRequestedChanId)
  if (channel === undefined || !channel.nodes.includes(node)) {
    return failLocal(node, htlc, sharedSecret, { code: FailureCode.UNKNOWN_NEXT_PEER })
  }
  const peer = channel.peer(node)
  if (!peer.online || channel.spendableMsat(node) < packet.outgoingAmountMsat) {
    return failWithCode(FailureCode.TEMPORARY_CHANNEL_FAILURE)
  }
  htlc.state = 'forwarded'
  const add = { amountMsat: packet.outgoingAmountMsat, expiry: packet.outgoingExpiry, paymentHash: packet.paymentHash, onion: packet.onionBlob }
  node.network.offerHtlc(node, channel, add, (outcome: HtlcOutcome) => {
    switch (outcome.type) {
      case 'settled':
        return node.finalize(htlc, outcome)
      case 'failed':
        return node.finalize(htlc, { type: 'failed', reason: wrapFailurePacket(sharedSecret, outcome.reason) })
      case 'malformed':
        // BOLT 2: the malformed code becomes this node's own failure, with the onion's SHA256.
        return failLocal(node, htlc, sharedSecret, { code: outcome.failureCode, sha256OfOnion: outcome.onionSha256 })
    }
  })
}

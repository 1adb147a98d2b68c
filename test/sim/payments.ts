// Real payments for the simulation: stateless payment addresses for the virtual node's identity key
// (DESIGN.md "Stateless invoices") and onions built by a payer for the route real node → virtual
// node, peeled by the real node as lnd would, for any number of real nodes. Every byte derives from
// the caller's seed material, so a scenario replays exactly.
import { createHash } from 'node:crypto'
import { buildOnion, encodeHopPayload, peelOnion } from '../../src/ln/onion.ts'
import { newPaymentAddr, statelessPreimage } from '../../src/ln/stateless.ts'
import { virtualScid } from '../../src/ln/scid.ts'
import { secp256k1 } from '../../src/ln/secp256k1.ts'
import type { EdgeHtlc } from '../../src/edge/edge.ts'

const sha256 = (data: string | Uint8Array): Buffer => createHash('sha256').update(data).digest()
const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex')

export const SIM_IDENTITY_KEY = sha256('highwire sim identity key')
export const SIM_VIRTUAL_NODE = secp256k1.publicKey(SIM_IDENTITY_KEY)
/** The virtual channel's default policy (DESIGN.md: fee 0/0, cltv delta 40). */
export const VIRTUAL_CLTV_DELTA = 40
/** The invoices' min_final_cltv_expiry. */
export const MIN_FINAL_CLTV = 40
/** lnd's CltvRejectDelta for forwards: a held HTLC is failed back by lnd this many blocks before its incoming expiry. */
export const LND_CLTV_REJECT_DELTA = 19

export interface SimNode {
  key: Buffer
  pubkey: string
}

/** Real node `i` of every simulated cluster (keys fixed, so circuits read alike across seeds). */
export function simNode(i: number): SimNode {
  const key = sha256(`highwire sim node ${i}`)
  return { key, pubkey: hex(secp256k1.publicKey(key)) }
}

export interface SimInvoice {
  paymentAddr: Uint8Array
  preimage: Uint8Array
  paymentHash: Buffer
  amountMsat: bigint
}

export function simInvoice(amountMsat: bigint, expiryUnix: number, random16: Uint8Array): SimInvoice {
  const paymentAddr = newPaymentAddr(expiryUnix, amountMsat, random16)
  const preimage = statelessPreimage(SIM_IDENTITY_KEY, paymentAddr)
  return { paymentAddr, preimage, paymentHash: sha256(preimage), amountMsat }
}

export interface PartSpec {
  node: SimNode
  chanId: bigint
  htlcId: bigint
  amountMsat: bigint
  /** The real node's best height when the HTLC arrives. */
  height: number
  /** Blocks the payer adds above the virtual hop's minimum (longer-lived HTLCs). */
  extraCltv: number
  sessionKey: Uint8Array
}

/**
 * One HTLC of a payment of `inv` as the real node's interceptor hands it over: the real node
 * forwards to the virtual scid with the virtual hop's cltv delta, and lnd's auto_fail_height is the
 * incoming expiry minus its CltvRejectDelta (routerrpc ForwardHtlcInterceptRequest).
 */
export function simPart(inv: SimInvoice, p: PartSpec): EdgeHtlc {
  const nodePubkey = Buffer.from(p.node.pubkey, 'hex')
  const scid = virtualScid(nodePubkey)
  const finalCltv = p.height + MIN_FINAL_CLTV + p.extraCltv
  const incomingExpiry = finalCltv + VIRTUAL_CLTV_DELTA
  const hops = [
    { pubkey: nodePubkey, payload: encodeHopPayload({ amtToForward: p.amountMsat, outgoingCltvValue: finalCltv, shortChannelId: scid }) },
    {
      pubkey: SIM_VIRTUAL_NODE,
      payload: encodeHopPayload({ amtToForward: p.amountMsat, outgoingCltvValue: finalCltv, paymentData: { paymentSecret: inv.paymentAddr, totalMsat: inv.amountMsat } })
    }
  ]
  const { packet } = buildOnion(hops, p.sessionKey, inv.paymentHash)
  const atRealNode = peelOnion(packet, p.node.key, inv.paymentHash)
  return {
    node: p.node.pubkey,
    circuit: { chanId: p.chanId, htlcId: p.htlcId },
    incomingAmountMsat: p.amountMsat,
    outgoingAmountMsat: p.amountMsat,
    incomingExpiry,
    outgoingExpiry: finalCltv,
    outgoingRequestedChanId: scid,
    paymentHash: inv.paymentHash,
    onionBlob: Buffer.from(atRealNode.nextPacket!),
    customRecords: new Map(),
    inWireCustomRecords: new Map(),
    autoFailHeight: incomingExpiry - LND_CLTV_REJECT_DELTA,
    onChain: false
  }
}

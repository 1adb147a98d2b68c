// A payer inside the simulated network, paying a BOLT 11 invoice as lnd's router would: a real
// BOLT 4 onion per part, over simulated channels to a node of the network, then (for an invoice
// with route hints, like highwire's virtual-node invoices) one more hop through the hint's
// channel to the payee. Each part's fee and CLTV budget is computed backwards from the payee
// (lnd routing/pathfind.go, newRoute), including the hint hop's fee and cltv delta.
import { decodeInvoice, type DecodedInvoice, type RouteHintHop } from '../ln/bolt11.ts'
import { FailureError, decodeFailureMessage, decodeFailurePacket, type FailureMessage } from '../ln/failure.ts'
import { buildOnion, encodeHopPayload, type HopPayload } from '../ln/onion.ts'
import { SimError } from './errors.ts'
import type { ChannelPolicy, HtlcOutcome, SimChannel, SimNode } from './network.ts'

/** lnd routing.BlockPadding: blocks added to the final CLTV so a block mined in flight does not fail it. */
export const BLOCK_PADDING = 3

export interface PaymentPartSpec {
  amountMsat: bigint
  /** Index of the route hint to go through; omitted: pay the payee directly (a simulated node). */
  hint?: number
  /** The payer's channel to leave on (SendPaymentV2 outgoing_chan_ids); omitted: any with balance. */
  firstHop?: bigint
}

export type PartResult =
  | { status: 'settled', preimage: Uint8Array }
  /** `hopIndex` counts the onion's hops from the payer's peer (0); the last hop is the payee. */
  | { status: 'failed', hopIndex: number, hopPubkey: Uint8Array, failure: FailureMessage }
  /** The part could not be sent, or its failure could not be read. */
  | { status: 'error', error: Error }

export interface PaymentResult {
  paymentHash: Uint8Array
  /** Set when any part settled: the payee revealed it. */
  preimage?: Uint8Array
  parts: PartResult[]
  /** Each part's channels, payer's first; a hint's virtual channel last. */
  routes: bigint[][]
  /** Total fees of the parts, msat. */
  feeMsat: bigint
}

interface RouteHop {
  pubkey: Uint8Array
  payload: Omit<HopPayload, 'records'>
}

interface PlannedPart {
  firstChannel: SimChannel
  route: bigint[]
  amountMsat: bigint
  expiry: number
  hops: RouteHop[]
}

function feeFor (policy: { feeBaseMsat: bigint, feeRatePpm: bigint }, amountMsat: bigint): bigint {
  return policy.feeBaseMsat + (amountMsat * policy.feeRatePpm) / 1_000_000n
}

function hintPolicy (hint: RouteHintHop): ChannelPolicy {
  return { feeBaseMsat: BigInt(hint.feeBaseMsat), feeRatePpm: BigInt(hint.feeProportionalMillionths), cltvExpiryDelta: hint.cltvExpiryDelta }
}

/**
 * Shortest path (in channels) from `payer` to `target` whose channels can carry `amountMsat`
 * (fees ignored in the capacity test), optionally through a given first channel.
 */
function findPath (payer: SimNode, target: SimNode, amountMsat: bigint, firstHop?: bigint): SimChannel[] {
  const start = payer.channels().filter((c) =>
    (firstHop === undefined || c.chanId === firstHop) && c.spendableMsat(payer) >= amountMsat)
  const queue: { node: SimNode, path: SimChannel[] }[] = start.map((c) => ({ node: c.peer(payer), path: [c] }))
  const seen = new Set<SimNode>([payer])
  while (queue.length > 0) {
    const { node, path } = queue.shift()!
    if (node === target) return path
    if (seen.has(node)) continue
    seen.add(node)
    for (const c of node.channels()) {
      if (c.spendableMsat(node) >= amountMsat && !seen.has(c.peer(node))) queue.push({ node: c.peer(node), path: [...path, c] })
    }
  }
  throw new SimError('no_route', `no route from ${payer.name} to ${target.name} for ${amountMsat} msat`)
}

/** Builds one part's hops backwards from the payee (amounts and CLTVs each hop must receive). */
function planPart (payer: SimNode, invoice: DecodedInvoice, spec: PaymentPartSpec, totalMsat: bigint): PlannedPart {
  const network = payer.network
  const finalCltv = network.height + invoice.minFinalCltvExpiry + BLOCK_PADDING
  const finalPayload = {
    amtToForward: spec.amountMsat,
    outgoingCltvValue: finalCltv,
    paymentData: { paymentSecret: invoice.paymentSecret, totalMsat }
  }
  let amountMsat = spec.amountMsat
  let expiry = finalCltv
  const hops: RouteHop[] = [{ pubkey: invoice.payee, payload: finalPayload }]
  let target: SimNode | undefined
  if (spec.hint !== undefined) {
    const hint = invoice.routeHints[spec.hint]?.[0]
    if (hint === undefined) throw new SimError('bad_invoice', `invoice has no route hint ${spec.hint}`)
    target = network.nodeByPubkey(hint.pubkey)
    // The hinted node forwards over the hint's (virtual) channel with the hint's policy.
    hops.unshift({ pubkey: hint.pubkey, payload: { amtToForward: amountMsat, outgoingCltvValue: expiry, shortChannelId: hint.shortChannelId } })
    amountMsat += feeFor(hintPolicy(hint), amountMsat)
    expiry += hint.cltvExpiryDelta
  } else {
    target = network.nodeByPubkey(invoice.payee)
  }
  if (target === undefined) throw new SimError('no_route', 'the invoice\'s route target is not a simulated node')
  const path = findPath(payer, target, amountMsat, spec.firstHop)
  const nodes = [payer]
  for (const channel of path) nodes.push(channel.peer(nodes[nodes.length - 1]!))
  // Walk the path backwards: the node before each channel forwards over it under its own policy.
  for (let i = path.length - 1; i >= 1; i--) {
    const channel = path[i]!
    const forwarder = nodes[i]!
    hops.unshift({ pubkey: forwarder.pubkey, payload: { amtToForward: amountMsat, outgoingCltvValue: expiry, shortChannelId: channel.chanId } })
    const policy = channel.policies[channel.side(forwarder)]
    amountMsat += feeFor(policy, amountMsat)
    expiry += policy.cltvExpiryDelta
  }
  const route = path.map((c) => c.chanId)
  const hint = spec.hint === undefined ? undefined : invoice.routeHints[spec.hint]![0]!
  if (hint !== undefined) route.push(hint.shortChannelId)
  return { firstChannel: path[0]!, route, amountMsat, expiry, hops }
}

/** Offers one planned part and resolves with its outcome, the failure decrypted with the route's secrets. */
function sendPart (payer: SimNode, plan: PlannedPart, paymentHash: Uint8Array): Promise<PartResult> {
  const { packet, sharedSecrets } = buildOnion(
    plan.hops.map((hop) => ({ pubkey: hop.pubkey, payload: encodeHopPayload(hop.payload) })),
    payer.network.random(32),
    paymentHash
  )
  return new Promise((resolve) => {
    const onOutcome = (outcome: HtlcOutcome): void => resolve(partResult(outcome, plan, sharedSecrets))
    try {
      payer.network.offerHtlc(payer, plan.firstChannel, { amountMsat: plan.amountMsat, expiry: plan.expiry, paymentHash, onion: packet }, onOutcome)
    } catch (err) {
      resolve({ status: 'error', error: err as Error })
    }
  })
}

function partResult (outcome: HtlcOutcome, plan: PlannedPart, sharedSecrets: Uint8Array[]): PartResult {
  switch (outcome.type) {
    case 'settled':
      return { status: 'settled', preimage: outcome.preimage }
    case 'malformed':
      // Only the first hop can answer malformed to us (later hops' are converted on the way).
      return { status: 'failed', hopIndex: 0, hopPubkey: plan.hops[0]!.pubkey, failure: { code: outcome.failureCode, sha256OfOnion: outcome.onionSha256 } }
    case 'failed':
      try {
        const { hopIndex, message } = decodeFailurePacket(sharedSecrets, outcome.reason)
        return { status: 'failed', hopIndex, hopPubkey: plan.hops[hopIndex]!.pubkey, failure: decodeFailureMessage(message) }
      } catch (err) {
        if (err instanceof FailureError) return { status: 'error', error: err }
        throw err
      }
  }
}

export interface PayOptions {
  /** The split; default: the whole amount in one part, through the first route hint if any. */
  parts?: PaymentPartSpec[]
  /** Amount for an invoice without one. */
  amountMsat?: bigint
  /** Refuse (SimError no_route) rather than pay more fees than this (SendPaymentV2 fee_limit_msat). */
  maxFeeMsat?: bigint
}

/**
 * Pays `paymentRequest` from `payer`. All parts are sent at once (a multi-part payment when
 * there are several) and the promise resolves once every part is resolved.
 */
export async function payInvoice (payer: SimNode, paymentRequest: string, opts: PayOptions = {}): Promise<PaymentResult> {
  const invoice = decodeInvoice(paymentRequest)
  const totalMsat = invoice.amountMsat ?? opts.amountMsat
  if (totalMsat === undefined || totalMsat <= 0n) throw new SimError('bad_invoice', 'invoice has no amount and none was given')
  const specs = opts.parts ?? [{ amountMsat: totalMsat, hint: invoice.routeHints.length > 0 ? 0 : undefined }]
  const sum = specs.reduce((a, p) => a + p.amountMsat, 0n)
  if (sum !== totalMsat) throw new SimError('bad_request', `parts add up to ${sum} msat, not ${totalMsat}`)
  const plans = specs.map((spec) => planPart(payer, invoice, spec, totalMsat))
  const feeMsat = plans.reduce((a, plan) => a + plan.amountMsat, 0n) - totalMsat
  if (opts.maxFeeMsat !== undefined && feeMsat > opts.maxFeeMsat) {
    throw new SimError('no_route', `fee ${feeMsat} msat exceeds the limit of ${opts.maxFeeMsat} msat`)
  }
  const parts = await Promise.all(plans.map((plan) => sendPart(payer, plan, invoice.paymentHash)))
  const settled = parts.find((p): p is Extract<PartResult, { status: 'settled' }> => p.status === 'settled')
  const routes = plans.map((plan) => plan.route)
  return { paymentHash: invoice.paymentHash, parts, routes, feeMsat, ...(settled !== undefined ? { preimage: settled.preimage } : {}) }
}

// Real payments for the mux tests: stateless invoices signed by the identity key, and onions built
// by a payer for the route real node → virtual node, peeled by the real node as lnd would, so that
// what the mux sees is exactly an interceptor's onion_blob and its failures decode at the origin.
import { createHash } from 'node:crypto'
import { buildOnion, encodeHopPayload, peelOnion } from '../../src/ln/onion.ts'
import { decodeFailureMessage, decodeFailurePacket, wrapFailurePacket, type FailureMessage } from '../../src/ln/failure.ts'
import { createStatelessInvoice, parsePaymentAddr, virtualRouteHint, type StatelessInvoice } from '../../src/ln/stateless.ts'
import { virtualScid } from '../../src/ln/scid.ts'
import { secp256k1 } from '../../src/ln/secp256k1.ts'
import { MuxMachine, type MuxOptions } from '../../src/mux/machine.ts'
import type { Decision, InterceptedHtlc, MuxOutput } from '../../src/mux/types.ts'
import type { TlvRecord } from '../../src/ln/tlv.ts'

export const IDENTITY_KEY = Buffer.alloc(32, 0x11)
export const VIRTUAL_NODE = secp256k1.publicKey(IDENTITY_KEY)
const NODE_KEYS = [Buffer.alloc(32, 0x21), Buffer.alloc(32, 0x22)]
/** Two real nodes of the cluster (e.g. Alice and Bob). */
export const NODES = NODE_KEYS.map((k) => secp256k1.publicKey(k))
export const T0 = 1_700_000_000_000
export const HEIGHT = 800_000
/** The onion's final CLTV: the invoice's min_final_cltv_expiry above the current height. */
export const FINAL_CLTV = HEIGHT + 40

export class FakeClock {
  ms = T0
  readonly now = (): number => this.ms
}

export function machine(clock: FakeClock, opts: Partial<MuxOptions> = {}): MuxMachine {
  return new MuxMachine({ identityKey: IDENTITY_KEY, now: clock.now, height: HEIGHT, ...opts })
}

let seed = 0

export function invoice(amountMsat: bigint, opts: { expirySeconds?: number; identityKey?: Uint8Array } = {}): StatelessInvoice {
  seed++
  return createStatelessInvoice({
    identityKey: opts.identityKey ?? IDENTITY_KEY,
    network: 'regtest',
    amountMsat,
    expirySeconds: opts.expirySeconds ?? 3600,
    description: 'mux test',
    routeHints: NODES.map((n) => virtualRouteHint(n)),
    minFinalCltvExpiry: 40,
    nowUnix: T0 / 1000,
    random16: Buffer.alloc(16, seed)
  })
}

export interface PartOptions {
  node?: number
  chanId?: bigint
  htlcId: bigint
  amountMsat: bigint
  /** Overrides of the virtual node's payload. */
  amtToForward?: bigint
  outgoingCltvValue?: number
  totalMsat?: bigint
  paymentSecret?: Uint8Array | null
  extraRecords?: TlvRecord[]
  /** A hop after the virtual node (an onion the virtual node would have to forward). */
  beyond?: boolean
  htlc?: Partial<InterceptedHtlc>
}

export interface Part {
  htlc: InterceptedHtlc
  /** The payer's shared secrets: real node, virtual node (, beyond). */
  sharedSecrets: Uint8Array[]
  node: number
}

/** One HTLC of a payment of `inv`, as the real node's interceptor hands it over. */
export function part(inv: StatelessInvoice, o: PartOptions): Part {
  const node = o.node ?? 0
  const nodePubkey = NODES[node]!
  const scid = virtualScid(nodePubkey)
  const paymentData =
    o.paymentSecret === null ? undefined : { paymentSecret: o.paymentSecret ?? inv.paymentAddr, totalMsat: o.totalMsat ?? parsePaymentAddr(inv.paymentAddr).amountMsat }
  const finalPayload = encodeHopPayload({
    amtToForward: o.amtToForward ?? o.amountMsat,
    outgoingCltvValue: o.outgoingCltvValue ?? FINAL_CLTV,
    paymentData,
    extraRecords: o.extraRecords
  })
  const hops = [
    { pubkey: nodePubkey, payload: encodeHopPayload({ amtToForward: o.amountMsat, outgoingCltvValue: FINAL_CLTV, shortChannelId: scid }) },
    o.beyond
      ? { pubkey: VIRTUAL_NODE, payload: encodeHopPayload({ amtToForward: o.amountMsat, outgoingCltvValue: FINAL_CLTV, shortChannelId: 1n }) }
      : { pubkey: VIRTUAL_NODE, payload: finalPayload }
  ]
  if (o.beyond) hops.push({ pubkey: NODES[1 - node]!, payload: finalPayload })
  const sessionKey = createHash('sha256').update(`session ${++seed}`).digest()
  const { packet, sharedSecrets } = buildOnion(hops, sessionKey, inv.paymentHash)
  const atRealNode = peelOnion(packet, NODE_KEYS[node]!, inv.paymentHash)
  const htlc: InterceptedHtlc = {
    circuit: { node: nodePubkey, chanId: o.chanId ?? 7n, htlcId: o.htlcId },
    incomingAmountMsat: o.amountMsat,
    outgoingAmountMsat: o.amountMsat,
    incomingExpiry: FINAL_CLTV + 40,
    outgoingExpiry: FINAL_CLTV,
    outgoingRequestedChanId: scid,
    onionBlob: atRealNode.nextPacket!,
    paymentHash: inv.paymentHash,
    autoFailHeight: FINAL_CLTV + 40 - 22,
    currentHeight: HEIGHT,
    ...o.htlc
  }
  return { htlc, sharedSecrets, node }
}

/**
 * What the payer reads from a decision encrypted by the virtual node: the real node adds its
 * ammag layer on the way back (as lnd does for an interceptor's failure_message), the payer strips
 * the layers and finds the erring hop.
 */
export function atOrigin(p: Part, decision: Decision | undefined): { hopIndex: number; message: FailureMessage } {
  if (decision === undefined || decision.action !== 'fail' || !('failureMessage' in decision)) throw new Error('not an encrypted failure')
  if (decision.failureMessage.length !== 292) throw new Error(`failure packet is ${decision.failureMessage.length} bytes`)
  const wrapped = wrapFailurePacket(p.sharedSecrets[0]!, decision.failureMessage)
  const { hopIndex, message } = decodeFailurePacket(p.sharedSecrets, wrapped)
  return { hopIndex, message: decodeFailureMessage(message) }
}

export function decisions(outputs: MuxOutput[]): (MuxOutput & { kind: 'decision' })[] {
  return outputs.filter((o): o is MuxOutput & { kind: 'decision' } => o.kind === 'decision')
}

export function only<K extends MuxOutput['kind']>(outputs: MuxOutput[], kind: K): MuxOutput & { kind: K } {
  const found = outputs.filter((o) => o.kind === kind)
  if (found.length !== 1) throw new Error(`expected one ${kind} output, got ${JSON.stringify(outputs.map((o) => o.kind))}`)
  return found[0] as MuxOutput & { kind: K }
}

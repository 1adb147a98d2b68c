// Stateless invoices, lnmux-compatible (lnmux stateless_data.go / invoice_creator.go), so that users can
// migrate with invoices outstanding:
//   payment_addr = 16 random bytes ‖ BE64(expiry unix seconds) ‖ BE64(amount msat)
//   preimage     = HMAC-SHA256(key = identity private key, payment_addr)
//   payment_hash = SHA256(preimage)
// Nothing is stored: on arrival the preimage is recomputed from the onion's payment_data.
import { createHash, createHmac } from 'node:crypto'
import { encodeInvoice, InvoiceError, type Network, type RouteHintHop } from './bolt11.ts'
import { virtualScid } from './scid.ts'

const RANDOM_BYTES = 16
const PAYMENT_ADDR_BYTES = 32
const MAX_U64 = (1n << 64n) - 1n

/**
 * BOLT 9 bits of a stateless invoice, as lnd's invoice feature set that lnmux uses: var_onion_optin
 * (optional, 9), payment_secret (required, 14: the payment_addr carries the invoice's state, so
 * payers must send it), basic_mpp (optional, 17).
 */
export const STATELESS_INVOICE_FEATURES: readonly number[] = [9, 14, 17]

/** Routing policy of a virtual channel, as advertised in its route hint. */
export interface VirtualChannelPolicy {
  feeBaseMsat: number
  feeProportionalMillionths: number
  cltvExpiryDelta: number
}

/** lnmux's hop hint policy: no fees, a CLTV delta of 40. */
export const DEFAULT_VIRTUAL_CHANNEL_POLICY: Readonly<VirtualChannelPolicy> = { feeBaseMsat: 0, feeProportionalMillionths: 0, cltvExpiryDelta: 40 }

/** The one-hop route hint through real node `nodePubkey` over its virtual channel. */
export function virtualRouteHint(nodePubkey: Uint8Array, policy: VirtualChannelPolicy = DEFAULT_VIRTUAL_CHANNEL_POLICY): RouteHintHop[] {
  return [{ pubkey: nodePubkey, shortChannelId: virtualScid(nodePubkey), ...policy }]
}

export function newPaymentAddr(expiryUnix: number, amountMsat: bigint, random16: Uint8Array): Uint8Array {
  if (!(random16 instanceof Uint8Array) || random16.length !== RANDOM_BYTES) throw new InvoiceError('invalid_argument', 'random16 must be 16 bytes')
  if (!Number.isSafeInteger(expiryUnix) || expiryUnix < 0) throw new InvoiceError('invalid_argument', 'expiryUnix must be a non-negative integer')
  if (typeof amountMsat !== 'bigint' || amountMsat < 0n || amountMsat > MAX_U64) throw new InvoiceError('invalid_argument', 'amountMsat must be a u64 bigint')
  const addr = Buffer.alloc(PAYMENT_ADDR_BYTES)
  addr.set(random16, 0)
  addr.writeBigUInt64BE(BigInt(expiryUnix), 16)
  addr.writeBigUInt64BE(amountMsat, 24)
  return addr
}

export function parsePaymentAddr(addr: Uint8Array): { expiryUnix: number; amountMsat: bigint } {
  if (!(addr instanceof Uint8Array) || addr.length !== PAYMENT_ADDR_BYTES) throw new InvoiceError('invalid_argument', 'payment_addr must be 32 bytes')
  const view = new DataView(addr.buffer, addr.byteOffset, PAYMENT_ADDR_BYTES)
  const expiry = view.getBigUint64(16)
  // An expiry past 2^53 s cannot come from our own invoices; refusing it keeps `number` exact.
  if (expiry > BigInt(Number.MAX_SAFE_INTEGER)) throw new InvoiceError('invalid_argument', 'payment_addr expiry is out of range')
  return { expiryUnix: Number(expiry), amountMsat: view.getBigUint64(24) }
}

export function statelessPreimage(identityKey: Uint8Array, paymentAddr: Uint8Array): Uint8Array {
  return createHmac('sha256', identityKey).update(paymentAddr).digest()
}

export interface StatelessInvoiceOptions {
  identityKey: Uint8Array
  network: Network
  amountMsat: bigint
  expirySeconds: number
  /** Exactly one of description and descriptionHash; neither means an empty description (as lnd writes). */
  description?: string
  descriptionHash?: Uint8Array
  routeHints: RouteHintHop[][]
  minFinalCltvExpiry: number
  nowUnix: number
  random16: Uint8Array
}

export interface StatelessInvoice {
  invoice: string
  paymentHash: Uint8Array
  preimage: Uint8Array
  paymentAddr: Uint8Array
  expiryUnix: number
}

/** Derive, sign (identity key) and encode a stateless invoice; pure, clock and randomness are parameters. */
export function createStatelessInvoice(opts: StatelessInvoiceOptions): StatelessInvoice {
  // The HTLC check requires total_msat to equal the amount in payment_addr, so an amount is mandatory.
  if (typeof opts.amountMsat !== 'bigint' || opts.amountMsat <= 0n) throw new InvoiceError('invalid_argument', 'amountMsat must be positive')
  if (!Number.isSafeInteger(opts.expirySeconds) || opts.expirySeconds <= 0) throw new InvoiceError('invalid_argument', 'expirySeconds must be a positive integer')
  const expiryUnix = opts.nowUnix + opts.expirySeconds
  const paymentAddr = newPaymentAddr(expiryUnix, opts.amountMsat, opts.random16)
  const preimage = statelessPreimage(opts.identityKey, paymentAddr)
  const paymentHash = createHash('sha256').update(preimage).digest()
  const invoice = encodeInvoice(
    {
      network: opts.network,
      amountMsat: opts.amountMsat,
      timestamp: opts.nowUnix,
      paymentHash,
      paymentSecret: paymentAddr,
      description: opts.descriptionHash === undefined ? (opts.description ?? '') : opts.description,
      descriptionHash: opts.descriptionHash,
      expiry: opts.expirySeconds,
      minFinalCltvExpiry: opts.minFinalCltvExpiry,
      routeHints: opts.routeHints,
      features: [...STATELESS_INVOICE_FEATURES]
    },
    opts.identityKey
  )
  return { invoice, paymentHash, preimage, paymentAddr, expiryUnix }
}

// `node src decode <bolt11>`: print an invoice as JSON, in the spirit of `lncli decodepayreq`
// (snake_case keys, 64-bit numbers as decimal strings, byte strings as hex).
import { decodeInvoice, InvoiceError, type DecodedInvoice } from '../ln/bolt11.ts'

const hex = (bytes: Uint8Array): string => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).toString('hex')

export function invoiceToJson(inv: DecodedInvoice): Record<string, unknown> {
  return {
    network: inv.network,
    // lncli prints "0" for an invoice without an amount; so do we.
    amount_msat: (inv.amountMsat ?? 0n).toString(),
    payment_hash: hex(inv.paymentHash),
    payment_secret: hex(inv.paymentSecret),
    ...(inv.description !== undefined ? { description: inv.description } : {}),
    ...(inv.descriptionHash !== undefined ? { description_hash: hex(inv.descriptionHash) } : {}),
    timestamp: inv.timestamp,
    expiry: inv.expiry,
    min_final_cltv_expiry: inv.minFinalCltvExpiry,
    route_hints: inv.routeHints.map((hint) =>
      hint.map((hop) => ({
        pubkey: hex(hop.pubkey),
        short_channel_id: hop.shortChannelId.toString(),
        fee_base_msat: hop.feeBaseMsat,
        fee_proportional_millionths: hop.feeProportionalMillionths,
        cltv_expiry_delta: hop.cltvExpiryDelta
      }))
    ),
    features: inv.features,
    ...(inv.paymentMetadata !== undefined ? { payment_metadata: hex(inv.paymentMetadata) } : {}),
    payee: hex(inv.payee),
    signature_valid: inv.signatureValid
  }
}

/** Returns the process exit code: 0 decoded, 1 invalid invoice, 2 usage error. */
export async function decodeCommand(args: string[], out: (line: string) => void): Promise<number> {
  if (args.length !== 1 || args[0] === undefined) {
    out('usage: decode <bolt11>')
    return 2
  }
  // Accept the BIP-21 style `lightning:` URI prefix that wallets copy along.
  const invoice = args[0].trim().replace(/^lightning:/i, '')
  try {
    out(JSON.stringify(invoiceToJson(decodeInvoice(invoice)), null, 2))
    return 0
  } catch (err) {
    if (!(err instanceof InvoiceError)) throw err
    out(`invalid invoice: ${err.message} (${err.code})`)
    return 1
  }
}

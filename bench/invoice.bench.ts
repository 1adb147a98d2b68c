// Invoice throughput: a stateless invoice with 2 route hints, derived, signed and encoded; and decoding
// (with signature recovery) of the same invoice. The raw libsecp256k1 sign rate is measured in the same
// run as the reference: signing is the floor of invoice creation.
import { randomBytes, createHash } from 'node:crypto'
import { secp256k1 } from '../src/ln/secp256k1.ts'
import { decodeInvoice } from '../src/ln/bolt11.ts'
import { createStatelessInvoice, virtualRouteHint } from '../src/ln/stateless.ts'
import { ratePerSecond } from './measure.ts'
import type { Emit } from './index.ts'

/**
 * Rate by this process's CPU time rather than wall time: on a shared machine the wall-clock rate
 * mostly measures the neighbours, so both are reported.
 */
function cpuRatePerSecond(fn: () => void, count: number): number {
  const start = process.cpuUsage()
  for (let i = 0; i < count; i++) fn()
  const used = process.cpuUsage(start)
  return count / ((used.user + used.system) / 1e6)
}

export default async function (emit: Emit): Promise<void> {
  const identityKey = randomBytes(32)
  const routeHints = [randomBytes(32), randomBytes(32)].map((k) => virtualRouteHint(secp256k1.publicKey(k)))
  const random16 = randomBytes(16)
  const create = (): string =>
    createStatelessInvoice({
      identityKey,
      network: 'mainnet',
      amountMsat: 250_000_000n,
      expirySeconds: 3600,
      description: 'highwire benchmark',
      routeHints,
      minFinalCltvExpiry: 40,
      nowUnix: 1_700_000_000,
      random16
    }).invoice
  const invoice = create()
  const digest = createHash('sha256').update(invoice).digest()
  const reference = ratePerSecond(() => secp256k1.sign(digest, identityKey), 1, 16)
  const decode = (): void => void decodeInvoice(invoice)
  emit('invoice_create_per_s', ratePerSecond(create, 1, 16), 'ops/s', {
    backend: secp256k1.backend,
    sign_per_s: Math.round(reference),
    cpu_time_per_s: Math.round(cpuRatePerSecond(create, 4000))
  })
  emit('invoice_decode_per_s', ratePerSecond(decode, 1, 16), 'ops/s', {
    backend: secp256k1.backend,
    invoice_chars: invoice.length,
    cpu_time_per_s: Math.round(cpuRatePerSecond(decode, 4000))
  })
}

// BOLT 4 onion rates: a final-hop peel of a 1366-byte packet (what the mux leader does for every
// HTLC part) and a 3-hop build (the simulator's payer), beside the raw ECDH rate they are bound by.
import { randomBytes } from 'node:crypto'
import { secp256k1 } from '../src/ln/secp256k1.ts'
import { buildOnion, encodeHopPayload, peelOnion } from '../src/ln/onion.ts'
import { ratePerSecond } from './measure.ts'
import type { Emit } from './index.ts'

export default async function (emit: Emit): Promise<void> {
  const keys = [randomBytes(32), randomBytes(32), randomBytes(32)]
  const associatedData = randomBytes(32) // the payment hash
  const forward = encodeHopPayload({ amtToForward: 100_000n, outgoingCltvValue: 800_040, shortChannelId: 0x8000_0000_0000_0001n })
  const final = encodeHopPayload({
    amtToForward: 100_000n,
    outgoingCltvValue: 800_000,
    paymentData: { paymentSecret: randomBytes(32), totalMsat: 300_000n }
  })
  const route = keys.map((key, i) => ({ pubkey: secp256k1.publicKey(key), payload: i === keys.length - 1 ? final : forward }))
  const finalOnly = buildOnion(route.slice(-1), randomBytes(32), associatedData).packet
  const finalKey = keys[keys.length - 1]!
  if (!peelOnion(finalOnly, finalKey, associatedData).isFinal) throw new Error('bench: expected a final-hop packet')

  emit('onion_peel_per_s', ratePerSecond(() => peelOnion(finalOnly, finalKey, associatedData), 1, 32), 'ops/s', { backend: secp256k1.backend })
  const sessionKey = randomBytes(32)
  emit('onion_build_per_s', ratePerSecond(() => buildOnion(route, sessionKey, associatedData), 1, 8), 'ops/s', { hops: route.length })
}

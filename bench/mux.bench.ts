// Intercepted HTLCs the virtual node can check and add to a set per second (one ECDH, the onion
// HMAC and decryption, the stateless HMAC and SHA256, the set id), with a bare onion peel measured
// beside it as the reference: the difference is the mux's own work.
import { peelOnion } from '../src/ln/onion.ts'
import { MuxMachine } from '../src/mux/machine.ts'
import { ratePerSecond } from './measure.ts'
import type { Emit } from './index.ts'
import { FakeClock, HEIGHT, IDENTITY_KEY, invoice, part } from '../test/unit/mux-fixture.ts'

export default async function (emit: Emit): Promise<void> {
  const inv = invoice(1_000_000n)
  const { htlc } = part(inv, { htlcId: 1n, amountMsat: 1_000_000n })
  const clock = new FakeClock()
  const peel = ratePerSecond(() => peelOnion(htlc.onionBlob, IDENTITY_KEY, htlc.paymentHash), 1)
  const accept = ratePerSecond(() => {
    const mux = new MuxMachine({ identityKey: IDENTITY_KEY, now: clock.now, height: HEIGHT })
    if (mux.htlc(htlc)[0]?.kind !== 'accepted') throw new Error('not accepted')
  }, 1)
  emit('mux htlc check + accept', accept, 'htlc/s', { reference: { 'onion peel only': Math.round(peel) } })
}

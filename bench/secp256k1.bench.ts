// Reference rates: raw libsecp256k1 binding and the pure-JS fallback, measured in the same run.
import { randomBytes, createHash } from 'node:crypto'
import { nativeSecp256k1, nobleSecp256k1, type Secp256k1 } from '../src/ln/secp256k1.ts'
import { ratePerSecond } from './measure.ts'
import type { Emit } from './index.ts'

export default async function (emit: Emit): Promise<void> {
  const key = randomBytes(32)
  const peer = nobleSecp256k1.publicKey(randomBytes(32))
  const digest = createHash('sha256').update('highwire').digest()
  const measure = (impl: Secp256k1, prefix: string, seconds: number): void => {
    emit(`${prefix}_sign_per_s`, ratePerSecond(() => impl.sign(digest, key), seconds, 16), 'ops/s')
    emit(`${prefix}_ecdh_per_s`, ratePerSecond(() => impl.ecdh(peer, key), seconds, 16), 'ops/s')
  }
  if (nativeSecp256k1) measure(nativeSecp256k1, 'secp256k1', 1)
  else emit('secp256k1_native_missing', 1, 'flag')
  measure(nobleSecp256k1, 'noble_secp256k1', 0.5)
}

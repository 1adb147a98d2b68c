// A fresh agent key pair (ed25519), for tests that sign envelopes.
import sodium from 'sodium-universal'
import type { AgentKeyPair } from '../../src/cluster/envelope.ts'

export function newAgentKeyPair(): AgentKeyPair {
  const publicKey = new Uint8Array(32)
  const secretKey = new Uint8Array(64)
  sodium.crypto_sign_keypair(publicKey, secretKey)
  return { publicKey, secretKey }
}

// Cluster membership proof (DESIGN.md, "Cluster protocol: topic and auth").
//
// Everything derives from the shared cluster secret with keyed BLAKE2b-256 (libsodium's
// crypto_generichash with a key is a MAC, RFC 7693 §2.5), each use under its own domain string so
// that no derived value can stand in for another:
//   topic   = BLAKE2b-256(key = secret,  "highwire/topic/v1")   what we announce on the DHT
//   authKey = BLAKE2b-256(key = secret,  "highwire/auth/v1")    never leaves the process
//   proof   = BLAKE2b-256(key = authKey, "highwire/proof/v1" ‖ handshakeHash ‖ own public key)
// The topic is public (anyone watching the DHT may learn it), so knowing it proves nothing; the proof
// binds the secret to this one Noise session (its handshake hash) and to the sender's static key, so
// it can neither be replayed on another connection nor reflected back by the other side.
import sodium from 'sodium-universal'
import { ClusterError } from './errors.ts'

export const TOPIC_DOMAIN = 'highwire/topic/v1'
export const AUTH_DOMAIN = 'highwire/auth/v1'
export const PROOF_DOMAIN = 'highwire/proof/v1'
export const PROOF_BYTES = 32
/** DESIGN.md: secrets are at least 32 random bytes. */
export const MIN_SECRET_BYTES = 32
/**
 * 32 uniformly random bytes show fewer than 16 distinct values with probability far below 2^-60,
 * while typed passphrases, repeated patterns and zero-filled defaults fall under it.
 */
const MIN_DISTINCT_SECRET_BYTES = 16

const encoder = new TextEncoder()

function mac(key: Uint8Array, ...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(32)
  sodium.crypto_generichash(out, concat(parts), key)
  return out
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0))
  let at = 0
  for (const p of parts) {
    out.set(p, at)
    at += p.byteLength
  }
  return out
}

/** Throws ClusterError `weak_secret` unless the secret looks like ≥ 32 random bytes. */
export function checkClusterSecret(secret: Uint8Array): void {
  if (secret.byteLength < MIN_SECRET_BYTES) {
    throw new ClusterError('weak_secret', `cluster secret is ${secret.byteLength} bytes, at least ${MIN_SECRET_BYTES} random bytes are required`)
  }
  if (new Set(secret).size < MIN_DISTINCT_SECRET_BYTES) {
    throw new ClusterError('weak_secret', 'cluster secret is not random (too few distinct bytes); generate one with `node src init`')
  }
}

export function deriveTopic(secret: Uint8Array): Uint8Array {
  checkClusterSecret(secret)
  return mac(secret, encoder.encode(TOPIC_DOMAIN))
}

export function deriveAuthKey(secret: Uint8Array): Uint8Array {
  checkClusterSecret(secret)
  return mac(secret, encoder.encode(AUTH_DOMAIN))
}

/** The proof a side sends on a connection whose Noise handshake hash is `handshakeHash`. */
export function secretProof(authKey: Uint8Array, handshakeHash: Uint8Array, ownPublicKey: Uint8Array): Uint8Array {
  return mac(authKey, encoder.encode(PROOF_DOMAIN), handshakeHash, ownPublicKey)
}

/** Constant-time check of the remote side's proof (it MACs its own key, i.e. our remote key). */
export function verifySecretProof(
  authKey: Uint8Array,
  handshakeHash: Uint8Array,
  remotePublicKey: Uint8Array,
  proof: Uint8Array
): boolean {
  if (proof.byteLength !== PROOF_BYTES) return false
  return sodium.sodium_memcmp(secretProof(authKey, handshakeHash, remotePublicKey), proof)
}

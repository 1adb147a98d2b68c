// The symmetric primitives shared by the BOLT 4 onion and its error packets ("Key Generation",
// "Pseudo Random Byte Stream"): keys are HMAC-SHA256(key = ASCII key type, msg = shared secret) and
// streams are ChaCha20 with an all-zero nonce. node:crypto's 'chacha20' takes a 16-byte IV made of a
// 4-byte little-endian block counter ‖ 12-byte nonce (RFC 7539); all zero here, as BOLT 4 specifies.
import { createCipheriv, createHash, createHmac, type Cipher } from 'node:crypto'

/** BOLT 4 key types: rho (routing info stream), mu (packet HMAC), um / ammag (error HMAC / stream), pad. */
export type KeyType = 'rho' | 'mu' | 'um' | 'ammag' | 'pad'

const ZERO_IV = new Uint8Array(16)

export function generateKey(keyType: KeyType, secret: Uint8Array): Buffer {
  return createHmac('sha256', keyType).update(secret).digest()
}

/**
 * A ChaCha20 keystream cipher: `update(data)` returns data XOR the next bytes of the stream, so a
 * stream can be consumed in pieces without generating it twice.
 */
export function chacha20(key: Uint8Array): Cipher {
  return createCipheriv('chacha20', key, ZERO_IV)
}

/** The first `length` bytes of the ChaCha20 stream of `key`. */
export function cipherStream(key: Uint8Array, length: number): Buffer {
  return chacha20(key).update(new Uint8Array(length))
}

export function hmacSha256(key: Uint8Array, ...parts: Uint8Array[]): Buffer {
  const mac = createHmac('sha256', key)
  for (const part of parts) mac.update(part)
  return mac.digest()
}

export function sha256(...parts: Uint8Array[]): Buffer {
  const hash = createHash('sha256')
  for (const part of parts) hash.update(part)
  return hash.digest()
}

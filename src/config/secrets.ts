// The two secrets of an agent: the cluster secret every operator shares, and the virtual node's
// identity key held by candidates. Their values never appear in an error, a log line or the audit log.
import { randomBytes } from 'node:crypto'
import { secp256k1 } from '../ln/secp256k1.ts'

/** DESIGN.md, "Topic and auth": secrets are at least 32 random bytes. */
export const MIN_SECRET_BYTES = 32
/** The placeholder in config/default.json; refused so that no cluster runs on a published secret. */
export const SECRET_PLACEHOLDER = 'run `node src init` to generate a cluster secret'
/**
 * 32 random bytes almost never hold fewer than 16 distinct values (the expected count is ~30), while
 * passwords, repeated bytes and counting sequences pass through hex or base64 with far fewer.
 */
const MIN_DISTINCT_BYTES = 16

const HEX = /^(?:[0-9a-fA-F]{2})+$/
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/

export type Parsed<T> = { value: T } | { problem: string }

/** Decode a cluster secret given as hex or base64, refusing the placeholder and weak values. */
export function parseClusterSecret(text: string): Parsed<Uint8Array> {
  if (text === SECRET_PLACEHOLDER) return { problem: 'is still the default placeholder; run `node src init` or set HIGHWIRE_SECRET' }
  const bytes = HEX.test(text) ? Buffer.from(text, 'hex') : BASE64.test(text) ? Buffer.from(text, 'base64') : null
  if (bytes === null) return { problem: 'is neither hex nor base64' }
  if (bytes.length < MIN_SECRET_BYTES) return { problem: `decodes to ${bytes.length} bytes; at least ${MIN_SECRET_BYTES} random bytes are required` }
  if (new Set(bytes).size < MIN_DISTINCT_BYTES) return { problem: 'does not look random (too few distinct bytes); generate one with `node src init`' }
  return { value: new Uint8Array(bytes) }
}

/** Decode the virtual node's identity key: 32 bytes of hex, a valid secp256k1 secret key. */
export function parseIdentityKey(text: string): Parsed<Uint8Array> {
  if (!/^[0-9a-fA-F]{64}$/.test(text)) return { problem: 'must be 64 hex characters (32 bytes)' }
  const key = new Uint8Array(Buffer.from(text, 'hex'))
  if (!secp256k1.isSecretKey(key)) return { problem: 'is not a valid secp256k1 secret key' }
  return { value: key }
}

export function newClusterSecret(): string {
  return randomBytes(MIN_SECRET_BYTES).toString('hex')
}

export function newIdentityKey(): Uint8Array {
  for (;;) {
    const key = new Uint8Array(randomBytes(32))
    if (secp256k1.isSecretKey(key)) return key
  }
}

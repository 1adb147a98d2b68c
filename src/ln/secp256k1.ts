// secp256k1 for highwire: the libsecp256k1 binding (`secp256k1` package, prebuilt) when it loads,
// `@noble/secp256k1` (pure JS, ~50x slower for ECDH) otherwise. Both expose the same small interface,
// so the benchmark can measure one against the other in the same run.
import { createRequire } from 'node:module'
import * as noble from '@noble/secp256k1'
import { hmac } from '@noble/hashes/hmac.js'
import { sha256 } from '@noble/hashes/sha2.js'

export interface RecoverableSignature {
  /** 64 bytes r ‖ s, low-S. */
  signature: Uint8Array
  /** Recovery id 0..3. */
  recovery: number
}

export interface Secp256k1 {
  readonly backend: 'libsecp256k1' | 'noble'
  /** 33-byte compressed public key of a 32-byte secret key. */
  publicKey(secretKey: Uint8Array): Uint8Array
  /** SHA256 of the compressed shared point: the shared secret of BOLT 4 and BOLT 8. */
  ecdh(publicKey: Uint8Array, secretKey: Uint8Array): Uint8Array
  /** ECDSA over a 32-byte digest (RFC 6979 nonce, low-S). */
  sign(digest: Uint8Array, secretKey: Uint8Array): RecoverableSignature
  /** Recover the compressed public key; throws on an invalid signature or recovery id. */
  recover(digest: Uint8Array, signature: Uint8Array, recovery: number): Uint8Array
  /** Verify a compact signature; high-S signatures are accepted (BOLT 11 allows them). */
  verify(digest: Uint8Array, signature: Uint8Array, publicKey: Uint8Array): boolean
  /** publicKey · tweak (BOLT 4 ephemeral key blinding). */
  publicKeyTweakMul(publicKey: Uint8Array, tweak: Uint8Array): Uint8Array
  /** secretKey · tweak mod n. */
  secretKeyTweakMul(secretKey: Uint8Array, tweak: Uint8Array): Uint8Array
  isSecretKey(secretKey: Uint8Array): boolean
  isPublicKey(publicKey: Uint8Array): boolean
}

/** The native binding's surface that we use (see the package's API.md). */
interface NativeBinding {
  privateKeyVerify(k: Uint8Array): boolean
  privateKeyTweakMul(k: Uint8Array, t: Uint8Array): Uint8Array
  publicKeyVerify(p: Uint8Array): boolean
  publicKeyCreate(k: Uint8Array, compressed?: boolean): Uint8Array
  publicKeyTweakMul(p: Uint8Array, t: Uint8Array, compressed?: boolean): Uint8Array
  signatureNormalize(sig: Uint8Array): Uint8Array
  ecdsaSign(msg: Uint8Array, k: Uint8Array): { signature: Uint8Array; recid: number }
  ecdsaVerify(sig: Uint8Array, msg: Uint8Array, p: Uint8Array): boolean
  ecdsaRecover(sig: Uint8Array, recid: number, msg: Uint8Array, compressed?: boolean): Uint8Array
  ecdh(p: Uint8Array, k: Uint8Array): Uint8Array
}

function loadNative(): Secp256k1 | null {
  let lib: NativeBinding
  try {
    // `secp256k1/bindings` throws when the compiled addon is missing (the package's own index
    // would silently fall back to elliptic, which we never want).
    lib = createRequire(import.meta.url)('secp256k1/bindings') as NativeBinding
  } catch {
    return null
  }
  return {
    backend: 'libsecp256k1',
    publicKey: (k) => lib.publicKeyCreate(k, true),
    ecdh: (p, k) => lib.ecdh(p, k),
    sign(digest, k) {
      const { signature, recid } = lib.ecdsaSign(digest, k)
      return { signature, recovery: recid }
    },
    recover: (digest, sig, recovery) => lib.ecdsaRecover(sig, recovery, digest, true),
    verify(digest, sig, p) {
      try {
        // libsecp256k1 rejects high-S; normalising first gives the BOLT 11 semantics.
        return lib.ecdsaVerify(lib.signatureNormalize(sig), digest, p)
      } catch {
        return false
      }
    },
    publicKeyTweakMul: (p, t) => lib.publicKeyTweakMul(p, t, true),
    secretKeyTweakMul: (k, t) => lib.privateKeyTweakMul(Uint8Array.from(k), t),
    isSecretKey: (k) => k.length === 32 && lib.privateKeyVerify(k),
    isPublicKey: (p) => (p.length === 33 || p.length === 65) && lib.publicKeyVerify(p)
  }
}

function loadNoble(): Secp256k1 {
  noble.hashes.sha256 = sha256
  noble.hashes.hmacSha256 = (key, msg) => hmac(sha256, key, msg)
  const { Point, Signature } = noble
  const N = Point.CURVE().n
  const scalar = (bytes: Uint8Array): bigint => {
    const n = BigInt('0x' + Buffer.from(bytes).toString('hex'))
    if (n === 0n || n >= N) throw new Error('secp256k1: scalar out of range')
    return n
  }
  const toBytes32 = (n: bigint): Uint8Array => new Uint8Array(Buffer.from(n.toString(16).padStart(64, '0'), 'hex'))
  return {
    backend: 'noble',
    publicKey: (k) => noble.getPublicKey(k, true),
    ecdh: (p, k) => sha256(noble.getSharedSecret(k, p, true)),
    sign(digest, k) {
      const sig = Signature.fromBytes(noble.sign(digest, k, { prehash: false, format: 'recovered' }), 'recovered')
      return { signature: sig.toBytes('compact'), recovery: sig.recovery ?? 0 }
    },
    recover(digest, sig, recovery) {
      const { r, s } = Signature.fromBytes(sig, 'compact')
      return noble.recoverPublicKey(new Signature(r, s, recovery).toBytes('recovered'), digest, { prehash: false })
    },
    verify(digest, sig, p) {
      try {
        return noble.verify(sig, digest, p, { prehash: false, lowS: false })
      } catch {
        return false
      }
    },
    publicKeyTweakMul: (p, t) => Point.fromBytes(p).multiply(scalar(t)).toBytes(true),
    secretKeyTweakMul: (k, t) => toBytes32((scalar(k) * scalar(t)) % N),
    isSecretKey: (k) => noble.utils.isValidSecretKey(k),
    isPublicKey: (p) => noble.utils.isValidPublicKey(p)
  }
}

/** The pure-JS implementation, always available (benchmarks compare against it). */
export const nobleSecp256k1: Secp256k1 = loadNoble()
/** The libsecp256k1 binding, or null where its prebuilt addon does not load. */
export const nativeSecp256k1: Secp256k1 | null = loadNative()
/** What highwire uses: native when available. */
export const secp256k1: Secp256k1 = nativeSecp256k1 ?? nobleSecp256k1

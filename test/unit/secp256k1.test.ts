import { test } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes, createHash } from 'node:crypto'
import { nativeSecp256k1, nobleSecp256k1, secp256k1 } from '../../src/ln/secp256k1.ts'

test('the libsecp256k1 binding loads (the pure-JS fallback is ~50x slower)', () => {
  assert.ok(nativeSecp256k1, 'secp256k1 prebuilt addon did not load')
  assert.equal(secp256k1.backend, 'libsecp256k1')
})

test('native and pure-JS backends agree on keys, ECDH, signatures, recovery and tweaks', () => {
  const native = nativeSecp256k1!
  for (let i = 0; i < 40; i++) {
    const a = randomBytes(32)
    const b = randomBytes(32)
    const digest = createHash('sha256').update(randomBytes(8)).digest()
    const A = native.publicKey(a)
    const B = nobleSecp256k1.publicKey(b)
    assert.deepEqual(nobleSecp256k1.publicKey(a), A)
    assert.deepEqual(native.ecdh(B, a), nobleSecp256k1.ecdh(B, a))
    assert.deepEqual(native.ecdh(B, a), native.ecdh(A, b))
    const n = native.sign(digest, a)
    const j = nobleSecp256k1.sign(digest, a)
    assert.deepEqual(n.signature, j.signature)
    assert.equal(n.recovery, j.recovery)
    assert.deepEqual(nobleSecp256k1.recover(digest, n.signature, n.recovery), A)
    assert.deepEqual(native.recover(digest, j.signature, j.recovery), A)
    assert.ok(native.verify(digest, j.signature, A) && nobleSecp256k1.verify(digest, n.signature, A))
    assert.deepEqual(native.publicKeyTweakMul(A, b), nobleSecp256k1.publicKeyTweakMul(A, b))
    assert.deepEqual(native.secretKeyTweakMul(a, b), nobleSecp256k1.secretKeyTweakMul(a, b))
  }
})

test('a high-S signature verifies on both backends', () => {
  const key = randomBytes(32)
  const digest = createHash('sha256').update('high-s').digest()
  const { signature } = secp256k1.sign(digest, key)
  const n = 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n
  const s = BigInt('0x' + Buffer.from(signature.subarray(32)).toString('hex'))
  const high = Buffer.concat([signature.subarray(0, 32), Buffer.from((n - s).toString(16).padStart(64, '0'), 'hex')])
  for (const impl of [nativeSecp256k1!, nobleSecp256k1]) assert.ok(impl.verify(digest, high, secp256k1.publicKey(key)))
})

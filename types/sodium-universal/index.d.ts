// The part of sodium-universal (5.x, libsodium via sodium-native) that highwire uses.
declare module 'sodium-universal' {
  namespace sodium {
    const crypto_generichash_BYTES: number
    const crypto_generichash_KEYBYTES_MIN: number
    const crypto_sign_BYTES: number
    const crypto_sign_PUBLICKEYBYTES: number
    const crypto_sign_SECRETKEYBYTES: number
    const crypto_sign_SEEDBYTES: number
    function crypto_generichash(output: Uint8Array, input: Uint8Array, key?: Uint8Array): void
    function crypto_sign_keypair(publicKey: Uint8Array, secretKey: Uint8Array): void
    function crypto_sign_seed_keypair(publicKey: Uint8Array, secretKey: Uint8Array, seed: Uint8Array): void
    function crypto_sign_detached(signature: Uint8Array, message: Uint8Array, secretKey: Uint8Array): void
    function crypto_sign_verify_detached(signature: Uint8Array, message: Uint8Array, publicKey: Uint8Array): boolean
    function sodium_memcmp(a: Uint8Array, b: Uint8Array): boolean
    function randombytes_buf(buffer: Uint8Array): void
  }
  export = sodium
}

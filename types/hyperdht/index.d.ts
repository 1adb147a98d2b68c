// The part of hyperdht (6.x) that highwire uses. https://github.com/holepunchto/hyperdht
declare module 'hyperdht' {
  import { EventEmitter } from 'node:events'
  import type { Duplex } from 'node:stream'

  /** A @hyperswarm/secret-stream: a Noise-encrypted, framed duplex stream. */
  export interface NoiseSocket extends Duplex {
    readonly publicKey: Uint8Array
    readonly remotePublicKey: Uint8Array
    /** Noise handshake hash `h`, identical on both ends of one connection (set once open). */
    readonly handshakeHash: Uint8Array
  }
  export interface KeyPair {
    publicKey: Uint8Array
    /** 64-byte ed25519 secret key (seed ‖ public key), libsodium layout. */
    secretKey: Uint8Array
  }
  export interface BootstrapNode {
    host: string
    port: number
  }
  export interface DHTOptions {
    bootstrap?: Array<BootstrapNode | string>
    host?: string
    port?: number
  }
  export default class DHT extends EventEmitter {
    constructor(opts?: DHTOptions)
    static keyPair(seed?: Uint8Array): KeyPair
    /** Dials the server listening on `publicKey`. */
    connect(publicKey: Uint8Array, opts?: { keyPair?: KeyPair }): NoiseSocket
    destroy(opts?: { force?: boolean }): Promise<void>
  }
}

declare module 'hyperdht/testnet.js' {
  import DHT, { type BootstrapNode } from 'hyperdht'
  export interface Testnet {
    nodes: DHT[]
    bootstrap: BootstrapNode[]
    destroy(): Promise<void>
  }
  export default function createTestnet(size?: number, opts?: { host?: string; port?: number }): Promise<Testnet>
}

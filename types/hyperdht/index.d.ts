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
    readonly isInitiator: boolean
    setKeepAlive(ms: number): void
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
    ephemeral?: boolean
    firewalled?: boolean
  }
  export default class DHT extends EventEmitter {
    constructor(opts?: DHTOptions)
    static keyPair(seed?: Uint8Array): KeyPair
    /** Dials the server listening on `publicKey`. */
    connect(publicKey: Uint8Array, opts?: { keyPair?: KeyPair }): NoiseSocket
    fullyBootstrapped(): Promise<void>
    destroy(opts?: { force?: boolean }): Promise<void>
    readonly destroyed: boolean
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

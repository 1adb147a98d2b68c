// The part of hyperdht (6.x) that highwire uses. https://github.com/holepunchto/hyperdht
declare module 'hyperdht' {
  import { EventEmitter } from 'node:events'
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

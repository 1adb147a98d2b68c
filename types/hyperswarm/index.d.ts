// The part of hyperswarm (4.x) that highwire uses. https://github.com/holepunchto/hyperswarm
declare module 'hyperswarm' {
  import { EventEmitter } from 'node:events'
  import type DHT from 'hyperdht'
  import type { KeyPair, NoiseSocket } from 'hyperdht'

  export type { NoiseSocket } from 'hyperdht'

  export interface PeerInfo {
    readonly publicKey: Uint8Array
    readonly client: boolean
    ban(value: boolean): void
  }

  export interface PeerDiscoverySession {
    flushed(): Promise<void>
    /** Announce and look the topic up again now. */
    refresh(opts?: { server?: boolean; client?: boolean }): Promise<void>
    destroy(): Promise<void>
  }

  export interface SwarmOptions {
    keyPair?: KeyPair
    dht?: DHT
    /** Return true to refuse the remote key (checked before the Noise handshake completes). */
    firewall?: (remotePublicKey: Uint8Array) => boolean
  }

  export default class Hyperswarm extends EventEmitter {
    constructor(opts?: SwarmOptions)
    readonly keyPair: KeyPair
    readonly connections: Set<NoiseSocket>
    readonly peers: Map<string, PeerInfo>
    join(topic: Uint8Array, opts?: { server?: boolean; client?: boolean }): PeerDiscoverySession
    joinPeer(publicKey: Uint8Array): void
    listen(): Promise<void>
    flush(): Promise<boolean>
    destroy(opts?: { force?: boolean }): Promise<void>
    on(event: 'connection', listener: (socket: NoiseSocket, info: PeerInfo) => void): this
  }
}

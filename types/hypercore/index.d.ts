// Minimal declarations for hypercore 11 (Holepunch ships no types): only what src/audit and its tests use.
declare module 'hypercore' {
  import type { EventEmitter } from 'node:events'
  import type { Duplex } from 'node:stream'

  export interface BlockEntry {
    index: number
    value: Uint8Array
  }

  export interface HypercoreStorageView {
    // Internal, used by hypercore itself (Hypercore#has, lib/audit.js): a RocksDB range scan
    // over locally stored blocks, far faster than one `get` per block.
    createBlockStream(opts: { gte: number; lt: number }): AsyncIterable<BlockEntry>
  }

  export default class Hypercore extends EventEmitter {
    readonly key: Uint8Array
    readonly discoveryKey: Uint8Array
    readonly length: number
    readonly contiguousLength: number
    readonly byteLength: number
    readonly fork: number
    readonly writable: boolean
    readonly readable: boolean
    readonly opened: boolean
    readonly closed: boolean
    readonly state: { storage: HypercoreStorageView }
    ready(): Promise<void>
    close(): Promise<void>
    append(blocks: Uint8Array | Uint8Array[]): Promise<{ length: number; byteLength: number }>
    get(index: number, opts?: { wait?: boolean; timeout?: number }): Promise<Uint8Array | null>
    has(start: number, end?: number): Promise<boolean>
    update(opts?: { wait?: boolean }): Promise<boolean>
    download(range?: { start?: number; end?: number }): { done(): Promise<void>; destroy(): void }
    treeHash(length?: number): Promise<Uint8Array>
    // Tests: a writer cutting its own log short (what a snapshot must notice).
    truncate(newLength?: number): Promise<void>
    setUserData(key: string, value: Uint8Array | null): Promise<void>
    getUserData(key: string): Promise<Uint8Array | null>
    replicate(isInitiator: boolean | Duplex, opts?: Record<string, unknown>): Duplex
  }
}

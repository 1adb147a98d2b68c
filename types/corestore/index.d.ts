// Minimal declarations for corestore 7 (Holepunch ships no types): only what src/audit uses.
declare module 'corestore' {
  import type { EventEmitter } from 'node:events'
  import type { Duplex } from 'node:stream'
  import type Hypercore from 'hypercore'

  export interface CorestoreOptions {
    readOnly?: boolean
    // Written into the CORESTORE device file and checked on every open (device-file package).
    id?: string
    wait?: boolean
  }

  export interface RocksDBSession {
    /** The database directory. */
    readonly path: string
    // rocksdb-native: DB::Flush of this column family (memtable -> fsynced SST + MANIFEST).
    flush(): Promise<void>
    /** The write-ahead log file RocksDB appends to now; `path` is relative to the database directory. */
    currentWalFile(): Promise<{ path: string; number: number; size: number }>
  }

  export default class Corestore extends EventEmitter {
    constructor(storage: string, opts?: CorestoreOptions)
    readonly readOnly: boolean
    readonly storage: { db: RocksDBSession; path: string }
    ready(): Promise<void>
    close(): Promise<void>
    get(opts: { name: string } | { key: Uint8Array; writable?: false; wait?: boolean }): Hypercore
    replicate(isInitiator: boolean | Duplex, opts?: Record<string, unknown>): Duplex
    list?(): AsyncIterable<Uint8Array>
  }
}

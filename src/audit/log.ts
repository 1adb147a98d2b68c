// The audit log of one agent (DESIGN.md "Audit log"): a Corestore under the storage path holding
// this agent's own Hypercore ('audit') and read-only replicas of every other member's core.
//
// Durability. A Hypercore append resolves once hypercore-storage has written its RocksDB write
// batch (hypercore-storage lib/tx.js -> rocksdb-native WriteBatch), and rocksdb-native passes no
// WriteOptions (binding.cc: `rocksdb_write(..., nullptr, ...)`), so the WAL is written but never
// synced: a power cut can lose it. The write itself did reach the WAL file (RocksDB write()s each
// batch to it unless manual_wal_flush is set), so fsyncing that file makes the record durable:
// rocksdb-native tells which file it is (`currentWalFile`, DB::GetCurrentWalFile). If the WAL was
// rotated between a look taken before the append (the last one, usually the previous fsync's) and
// one taken after it (beside the fsync), the record may sit in another file; then we fall back to
// `db.flush()` (DB::Flush: the memtable goes to an SST file RocksDB fsyncs, then the MANIFEST). A
// WAL fsync costs about a millisecond where a flush costs 5 to 40; rotations are rare (one per
// filled memtable).
//
// Group commit, in two stages that overlap. Writing: records appended in one turn of the event loop
// (a received envelope and the record it causes) form one Hypercore block, and records that arrive
// while a block is being written form the next. A block of lazy records only waits up to
// LAZY_LINGER_MS for more, and goes out with the first durable record appended meanwhile: every
// block is written, signed, and replicated to every member as a message and a RocksDB batch of its
// own, so an agent that writes one block per settle rather than two or three saves its peers as
// much work as itself. Syncing: as soon as a block holding a durable record is written, an fsync
// starts if none is running; blocks written during an fsync are covered by the next one, together.
// So a lazy record never waits for an fsync, and a durable one waits for at most the fsync in
// progress and its own. The price: a lazy record reaches the WAL up to LAZY_LINGER_MS later, so a
// process killed meanwhile loses it (a power cut could lose it anyway: it is not synced).
//
// Copies and forks. A Hypercore fork is two different signed histories under one key: exactly what
// two agents running from copies of one storage directory would write. Corestore guards against
// both causes (device-file package, file CORESTORE): an exclusive lock while the store is open, and
// the device file records its inode and an instance id, so a copied directory fails to open with
// code DEVICE_FILE; we turn that into AuditError 'storage_copied' and refuse to start. Should a fork
// happen anyway (the guard removed by hand), replication detects it: the second history's signed
// head contradicts the first, Hypercore emits 'conflict' and stops the core; see `forks`.
//
// Second readers. RocksDB allows read-only opens beside the writer: `AuditLog.open({readOnly})`
// sees everything appended up to its open (it replays the WAL) but not later appends; to follow a
// running agent, replicate from it instead.
import { open, type FileHandle } from 'node:fs/promises'
import { join } from 'node:path'
import Corestore from 'corestore'
import type Hypercore from 'hypercore'
import type { Duplex } from 'node:stream'
import { encodeBlock, encodeRecord, decodeBlock, type AuditRecord } from './records.ts'
import { CodedError } from '../errors.ts'

export const AUDIT_CORE_NAME = 'audit'
// Per-core user data (local, never replicated) listing the replicas to reopen at start-up.
const REPLICAS_USER_DATA = 'highwire/replicas'
// A block is one flush group; cap it so a block stays a small replication message.
export const MAX_BLOCK_RECORDS = 4096
export const MAX_BLOCK_BYTES = 1 << 20
/** How long a block of lazy records waits for a durable one to share it (see above). */
export const LAZY_LINGER_MS = 20

export type AuditErrorCode = 'storage_copied' | 'storage_locked' | 'read_only' | 'closed' | 'write_failed' | 'bad_key'

export class AuditError extends CodedError<AuditErrorCode> {}

export interface AuditLogOptions {
  path: string
  readOnly?: boolean
  // Instance id checked by the CORESTORE device file on every open (e.g. the agent's public key):
  // a storage directory handed to another agent refuses to open.
  id?: string
}

export interface FlushStats {
  blocks: number
  records: number
  /** Durability points (WAL fsyncs and RocksDB flushes) and the time they took. */
  flushes: number
  flushMs: number
  /** How many of them were WAL fsyncs (the rest fell back to a flush). */
  walSyncs: number
}

interface Pending {
  bytes: Uint8Array
  durable: boolean
  resolve: () => void
  reject: (err: Error) => void
}

/** Durable appends already written, waiting for the fsync that covers them. */
interface Unsynced {
  waiters: Pending[]
  /** The WAL file current before the first of them was written: the oldest they may sit in. */
  walNumber: number
}

export interface BlockRecords {
  index: number
  records: AuditRecord[]
}

export class AuditLog {
  readonly store: Corestore
  readonly core: Hypercore
  readonly readOnly: boolean
  readonly stats: FlushStats = { blocks: 0, records: 0, flushes: 0, flushMs: 0, walSyncs: 0 }
  // Hex keys of cores for which replication delivered a second signed history (Hypercore's
  // 'conflict'): the writer forked its log. Hypercore then stops serving that core.
  readonly forks = new Set<string>()
  private readonly replicas = new Map<string, Hypercore>()
  private queue: Pending[] = []
  private draining: Promise<void> | null = null
  private unsynced: Unsynced | null = null
  private syncing: Promise<void> | null = null
  /** The WAL file last fsynced, kept open for the next fsync. */
  private wal: { number: number; file: FileHandle } | null = null
  /**
   * The WAL file number last read. A block written after that reading sits in that file or a later
   * one, so the reading serves as the block's "WAL before" (sync) without another look.
   */
  private walSeen: number | null = null
  private closing: Promise<void> | null = null
  /** Ends the lazy block's wait at once (a durable record came, or the log closes). */
  private endLinger: (() => void) | null = null

  private constructor(store: Corestore, core: Hypercore, readOnly: boolean) {
    this.store = store
    this.core = core
    this.readOnly = readOnly
    this.watch(core)
  }

  private watch(core: Hypercore): void {
    core.on('conflict', () => this.forks.add(Buffer.from(core.key).toString('hex')))
  }

  static async open(opts: AuditLogOptions): Promise<AuditLog> {
    const readOnly = opts.readOnly === true
    const store = new Corestore(opts.path, { readOnly, ...(opts.id === undefined ? {} : { id: opts.id }) })
    try {
      await store.ready()
      const core = store.get({ name: AUDIT_CORE_NAME })
      await core.ready()
      const log = new AuditLog(store, core, readOnly)
      for (const key of await log.replicaKeys()) await log.openReplica(key, { remember: false })
      return log
    } catch (err) {
      await store.close().catch(() => {})
      throw storageError(err, opts.path)
    }
  }

  get key(): Uint8Array {
    return this.core.key
  }

  // Queue one record. `durable` (the default) resolves after the flush that covers it; otherwise
  // it resolves once the record is in the Hypercore (flushed by the next durable append or close).
  append(record: AuditRecord, { durable = true }: { durable?: boolean } = {}): Promise<void> {
    if (this.readOnly) return Promise.reject(new AuditError('read_only', 'audit log opened read-only'))
    if (this.closing !== null) return Promise.reject(new AuditError('closed', 'audit log is closed'))
    let bytes: Uint8Array
    try {
      bytes = encodeRecord(record)
    } catch (err) {
      return Promise.reject(err)
    }
    return new Promise((resolve, reject) => {
      this.queue.push({ bytes, durable, resolve, reject })
      if (durable) this.endLinger?.()
      if (this.draining === null) this.draining = this.drain()
    })
  }

  // Writes the queue out, one block per group; durable appends go on to the syncer. Starts after
  // the current turn's appends are queued, so they share the first block; a group of lazy records
  // lingers first. Clears `draining` in the same tick as it sees the queue empty, so an append made
  // by a caller resumed from this very drain starts the next one instead of waiting forever.
  private async drain(): Promise<void> {
    await Promise.resolve()
    while (this.queue.length > 0) {
      if (this.closing === null && !this.queue.some((p) => p.durable)) await this.linger()
      const group = this.takeGroup()
      const durable = group.filter((p) => p.durable)
      try {
        const walBefore = durable.length > 0 ? this.walSeen ?? (await this.currentWal()).number : null
        await this.core.append(encodeBlock(group.map((p) => p.bytes)))
        this.stats.blocks++
        this.stats.records += group.length
        for (const p of group) if (!p.durable) p.resolve()
        if (walBefore !== null) this.awaitSync(durable, walBefore)
      } catch (err) {
        const failure = new AuditError('write_failed', `audit append failed: ${(err as Error).message}`, { cause: err })
        for (const p of group) p.reject(failure)
      }
    }
    this.draining = null
  }

  /** Waits LAZY_LINGER_MS, or until a durable record is appended or the log closes. */
  private linger(): Promise<void> {
    return new Promise((resolve) => {
      const end = (): void => {
        clearTimeout(timer)
        this.endLinger = null
        resolve()
      }
      const timer = setTimeout(end, LAZY_LINGER_MS)
      this.endLinger = end
    })
  }

  private awaitSync(waiters: Pending[], walNumber: number): void {
    if (this.unsynced === null) this.unsynced = { waiters, walNumber }
    else this.unsynced.waiters.push(...waiters)
    if (this.syncing === null) this.syncing = this.syncAll()
  }

  // One fsync at a time, each covering every durable block written before it started.
  private async syncAll(): Promise<void> {
    while (this.unsynced !== null) {
      const { waiters, walNumber } = this.unsynced
      this.unsynced = null
      try {
        await this.sync(walNumber)
        for (const p of waiters) p.resolve()
      } catch (err) {
        const failure = new AuditError('write_failed', `audit sync failed: ${(err as Error).message}`, { cause: err })
        for (const p of waiters) p.reject(failure)
      }
    }
    this.syncing = null
  }

  private takeGroup(): Pending[] {
    let bytes = 0
    let n = 0
    while (n < this.queue.length && n < MAX_BLOCK_RECORDS) {
      const size = this.queue[n]!.bytes.byteLength
      if (n > 0 && bytes + size > MAX_BLOCK_BYTES) break
      bytes += size
      n++
    }
    return this.queue.splice(0, n)
  }

  /**
   * Makes everything appended so far durable: an fsync of WAL file `walNumber` (the one seen before
   * the blocks were written) if it is still the current file, or else a flush.
   */
  private async sync(walNumber: number): Promise<void> {
    const start = performance.now()
    if (await this.fsyncWal(walNumber)) this.stats.walSyncs++
    else {
      await this.flush()
      // A flush starts a new WAL file: look again, or every later fsync would see a rotation.
      await this.currentWal()
    }
    this.stats.flushes++
    this.stats.flushMs += performance.now() - start
  }

  /**
   * fsyncs WAL file `walNumber`; false if the WAL rotated since, and the blocks may sit in a later
   * file. With the file already open, the fsync and the look at the current file run together: both
   * start after the blocks were written, so the look saying `walNumber` puts them in that file.
   */
  private async fsyncWal(walNumber: number): Promise<boolean> {
    if (this.wal?.number === walNumber) {
      const [current] = await Promise.all([this.currentWal(), this.wal.file.sync()])
      return current.number === walNumber
    }
    const current = await this.currentWal()
    if (current.number !== walNumber) return false
    await (await this.walFile(current.number, join(this.store.storage.db.path, current.path))).sync()
    return true
  }

  private async currentWal(): Promise<{ number: number; path: string }> {
    const wal = await this.store.storage.db.currentWalFile()
    this.walSeen = wal.number
    return wal
  }

  /** The open handle of WAL file `number`; the previous file's handle is closed. */
  private async walFile(number: number, path: string): Promise<FileHandle> {
    if (this.wal?.number !== number) {
      await this.closeWal()
      this.wal = { number, file: await open(path, 'r') }
    }
    return this.wal.file
  }

  private async closeWal(): Promise<void> {
    const wal = this.wal
    this.wal = null
    await wal?.file.close()
  }

  // RocksDB DB::Flush on hypercore-storage's column family: fsyncs everything appended so far.
  private async flush(): Promise<void> {
    await this.store.storage.db.flush()
  }

  // Replicate all open cores (own and replicas) over a cluster connection: a Noise stream or
  // socket from src/cluster, or a boolean (initiator) for a plain stream pair in tests.
  replicate(stream: Duplex | boolean): Duplex {
    return this.store.replicate(stream)
  }

  // Open (and remember) another member's core by key, read-only, downloading it live. It is
  // served to other peers from our storage even after its writer is gone.
  async openReplica(key: Uint8Array, { remember = true }: { remember?: boolean } = {}): Promise<Hypercore> {
    if (!(key instanceof Uint8Array) || key.length !== 32) throw new AuditError('bad_key', 'replica key must be 32 bytes')
    const id = Buffer.from(key).toString('hex')
    if (id === Buffer.from(this.key).toString('hex')) return this.core
    const known = this.replicas.get(id)
    if (known !== undefined) return known
    const core = this.store.get({ key, writable: false })
    await core.ready()
    this.watch(core)
    this.replicas.set(id, core)
    if (!this.readOnly) core.download({ start: 0, end: -1 })
    if (remember && !this.readOnly) await this.core.setUserData(REPLICAS_USER_DATA, Buffer.concat([...this.replicas.values()].map((c) => c.key)))
    return core
  }

  private async replicaKeys(): Promise<Uint8Array[]> {
    const list = await this.core.getUserData(REPLICAS_USER_DATA)
    if (list === null) return []
    const keys: Uint8Array[] = []
    for (let i = 0; i + 32 <= list.byteLength; i += 32) keys.push(list.subarray(i, i + 32))
    return keys
  }

  // Own core first, then replicas.
  cores(): Hypercore[] {
    return [this.core, ...this.replicas.values()]
  }

  async close(): Promise<void> {
    if (this.closing === null) {
      this.closing = this.closeOnce()
      this.endLinger?.()
    }
    return this.closing
  }

  private async closeOnce(): Promise<void> {
    while (this.draining !== null || this.syncing !== null) await (this.draining ?? this.syncing)
    await this.closeWal()
    if (!this.readOnly && this.stats.blocks > 0) await this.flush()
    await this.store.close()
  }
}

// Blocks [start, end) of a core that are stored locally, decoded, in order; stops at the first
// block not yet downloaded. Reads with a RocksDB range scan (hypercore-storage createBlockStream,
// which Hypercore itself uses in `has` and `audit`) rather than one awaited `get` per block.
export async function* readBlocks(core: Hypercore, start = 0, end = core.length): AsyncGenerator<BlockRecords> {
  let next = start
  for await (const { index, value } of core.state.storage.createBlockStream({ gte: start, lt: end })) {
    if (index !== next) return
    next++
    yield { index, records: decodeBlock(value) }
  }
}

/**
 * The blocks of `cores` not read yet: each core's from its cursor in `cursors` (core key in hex to
 * the next block; absent, the first), which advances past every block yielded.
 */
export async function* readNewBlocks(cores: readonly Hypercore[], cursors: Map<string, number>): AsyncGenerator<BlockRecords & { core: string }> {
  for (const core of cores) {
    const key = Buffer.from(core.key).toString('hex')
    for await (const block of readBlocks(core, cursors.get(key) ?? 0)) {
      cursors.set(key, block.index + 1)
      yield { ...block, core: key }
    }
  }
}

function storageError(err: unknown, path: string): Error {
  const e = err as { code?: string; message?: string }
  if (e.code === 'DEVICE_FILE') {
    return new AuditError('storage_copied', `audit storage ${path} was copied or moved (${e.message}); refusing to fork the log`, { cause: err })
  }
  if (/could not be locked/i.test(e.message ?? '')) {
    return new AuditError('storage_locked', `audit storage ${path} is in use by another process`, { cause: err })
  }
  return err instanceof Error ? err : new Error(String(err))
}

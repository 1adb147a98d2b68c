// Registry checkpoints: a restart reads the latest snapshot plus the tail of each core, instead of
// every record ever written (the 1,000,000-settled-invoice start-up target of issue 7).
//
// Why a snapshot file beside the store, not a checkpoint record in the core: a registry of 1M
// invoices is ~80 MB, far over a block (MAX_BLOCK_BYTES) and a replication message; writing it into
// the signed log again and again would bloat every member's replica with derived data that each of
// them can compute itself. The snapshot is a local cache of a pure fold (registry.ts) and proves
// nothing; what makes it safe to trust is that it names, per core, the length it covers and the
// core's Merkle tree hash at that length (what the writer signed). At load each core must still
// have that tree hash at that length, so a snapshot of another store, of a core since truncated,
// or of a forked history is refused and the registry is rebuilt from scratch. A SHA-256 of the
// whole file catches a torn or corrupted file; it is written to a temporary name, fsynced, then
// renamed over the old one, so a crash leaves the previous snapshot intact.
//
// Fold order. A full rebuild folds each core whole, own core first; from a snapshot, the folds are
// each core's covered prefix (in the snapshot), then each core's tail. Both are valid orders of the
// same records: cores carry no order between them, and applyRecord gives the same statuses in any
// order. Only which writer is named for a status, and the order of conflicts, can differ when two
// cores contradict each other.
//
// Independent of how records were grouped into blocks: the tail is bounded by `checkpointEvery`
// records, whether an idle agent wrote them one per block or a busy one thousands per block.
import { createHash } from 'node:crypto'
import { open, readFile, rename } from 'node:fs/promises'
import { dirname } from 'node:path'
import c from 'compact-encoding'
import type Hypercore from 'hypercore'
import { readBlocks, type AuditLog } from './log.ts'
import { applyRecord, emptyRegistry, type Conflict, type InvoiceEntry, type Registry, type SettleStatus } from './registry.ts'

export const SNAPSHOT_FILE = 'registry.snapshot'
const MAGIC = 'highwire/registry-snapshot'
export const SNAPSHOT_VERSION = 1
// Records folded since the last snapshot before the next is written: bounds the tail a restart
// replays (~1 s of single-record blocks, see bench/audit.bench.ts) against the cost of rewriting
// the whole snapshot (~1 s of CPU at 1M invoices, spread over event-loop turns).
export const CHECKPOINT_EVERY = 100_000
// Entries encoded or decoded per event-loop turn, so a checkpoint never stalls the agent for long.
const CHUNK_ENTRIES = 50_000
const SHA256_BYTES = 32

const STATUSES: readonly SettleStatus[] = ['settle_requested', 'settled', 'failed', 'cancelled']
const REASONS: readonly Conflict['reason'][] = ['settle_after_cancel', 'cancel_after_settle', 'second_set']

export class CheckpointError extends Error {
  readonly code = 'bad_snapshot'
  constructor(message: string) {
    super(message)
    this.name = 'CheckpointError'
  }
}

// The part of one core a snapshot covers: blocks [0, length) with that Merkle tree hash.
export interface Coverage {
  key: Uint8Array
  length: number
  treeHash: Uint8Array
}

export interface Snapshot {
  cores: Coverage[]
  registry: Registry
}

const hex = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex')
const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve))

// ---- format ----
// header  = string MAGIC ‖ uint version ‖ uint n ‖ (key32 ‖ uint length ‖ fixed32 treeHash)*n
// entries = uint count ‖ (hash32 ‖ uint8 status ‖ bool hasSetId ‖ [fixed32 setId] ‖ u64 amount ‖
//           uint time ‖ uint writer)*count      writer = index of the writer's core in the header
// tail    = uint count ‖ (hash32 ‖ uint writer ‖ uint8 reason)*count ‖ sha256(everything before)

function encodeHeader(cores: Coverage[], invoices: number): Uint8Array {
  const state = c.state()
  c.string.preencode(state, MAGIC)
  c.uint.preencode(state, SNAPSHOT_VERSION)
  c.uint.preencode(state, cores.length)
  for (const core of cores) {
    c.uint.preencode(state, core.length)
    state.end += 64
  }
  c.uint.preencode(state, invoices)
  state.buffer = Buffer.allocUnsafe(state.end)
  c.string.encode(state, MAGIC)
  c.uint.encode(state, SNAPSHOT_VERSION)
  c.uint.encode(state, cores.length)
  for (const core of cores) {
    c.fixed32.encode(state, core.key)
    c.uint.encode(state, core.length)
    c.fixed32.encode(state, core.treeHash)
  }
  c.uint.encode(state, invoices)
  return state.buffer
}

function writerIndex(writers: Map<string, number>, writer: string): number {
  const i = writers.get(writer)
  if (i === undefined) throw new CheckpointError(`registry names writer ${writer}, which the snapshot does not cover`)
  return i
}

function encodeEntries(entries: Array<[string, InvoiceEntry]>, writers: Map<string, number>): Uint8Array {
  const state = c.state()
  for (const [, e] of entries) {
    state.end += 32 + 1 + 1 + (e.setId === null ? 0 : 32) + 8
    c.uint.preencode(state, e.time)
    c.uint.preencode(state, writerIndex(writers, e.writer))
  }
  state.buffer = Buffer.allocUnsafe(state.end)
  for (const [hash, e] of entries) {
    c.fixed32.encode(state, Buffer.from(hash, 'hex'))
    c.uint8.encode(state, STATUSES.indexOf(e.status))
    c.bool.encode(state, e.setId !== null)
    if (e.setId !== null) c.fixed32.encode(state, e.setId)
    c.biguint64.encode(state, e.amountMsat)
    c.uint.encode(state, e.time)
    c.uint.encode(state, writers.get(e.writer)!)
  }
  return state.buffer
}

function encodeConflicts(conflicts: Conflict[], writers: Map<string, number>): Uint8Array {
  const state = c.state()
  c.uint.preencode(state, conflicts.length)
  for (const k of conflicts) {
    state.end += 32 + 1
    c.uint.preencode(state, writerIndex(writers, k.writer))
  }
  state.buffer = Buffer.allocUnsafe(state.end)
  c.uint.encode(state, conflicts.length)
  for (const k of conflicts) {
    c.fixed32.encode(state, Buffer.from(k.hash, 'hex'))
    c.uint.encode(state, writers.get(k.writer)!)
    c.uint8.encode(state, REASONS.indexOf(k.reason))
  }
  return state.buffer
}

// The snapshot as a list of byte chunks (its file content, in order), yielding to the event loop
// between chunks of entries.
export async function encodeSnapshot(snapshot: Snapshot): Promise<Uint8Array[]> {
  const writers = new Map(snapshot.cores.map((core, i) => [hex(core.key), i]))
  const hash = createHash('sha256')
  const chunks: Uint8Array[] = []
  const push = (b: Uint8Array): void => {
    hash.update(b)
    chunks.push(b)
  }
  const { invoices, conflicts } = snapshot.registry
  push(encodeHeader(snapshot.cores, invoices.size))
  let batch: Array<[string, InvoiceEntry]> = []
  for (const entry of invoices) {
    batch.push(entry)
    if (batch.length === CHUNK_ENTRIES) {
      push(encodeEntries(batch, writers))
      batch = []
      await turn()
    }
  }
  push(encodeEntries(batch, writers))
  push(encodeConflicts(conflicts, writers))
  chunks.push(hash.digest())
  return chunks
}

export async function decodeSnapshot(file: Uint8Array): Promise<Snapshot> {
  if (file.byteLength < SHA256_BYTES) throw new CheckpointError('snapshot file is truncated')
  const body = file.subarray(0, file.byteLength - SHA256_BYTES)
  const sum = createHash('sha256').update(body).digest()
  if (Buffer.compare(sum, file.subarray(body.byteLength)) !== 0) throw new CheckpointError('snapshot checksum mismatch')
  const state = c.state(0, body.byteLength, body)
  try {
    if (c.string.decode(state) !== MAGIC) throw new CheckpointError('not a registry snapshot')
    const version = c.uint.decode(state)
    if (version !== SNAPSHOT_VERSION) throw new CheckpointError(`snapshot version ${version}, expected ${SNAPSHOT_VERSION}`)
    const cores: Coverage[] = []
    for (let i = 0, n = c.uint.decode(state); i < n; i++) {
      cores.push({ key: c.fixed32.decode(state), length: c.uint.decode(state), treeHash: c.fixed32.decode(state) })
    }
    const writers = cores.map((core) => hex(core.key))
    const writerAt = (i: number): string => {
      const w = writers[i]
      if (w === undefined) throw new CheckpointError(`writer index ${i} out of range`)
      return w
    }
    const registry = emptyRegistry()
    for (let i = 0, n = c.uint.decode(state); i < n; i++) {
      const hash = hex(c.fixed32.decode(state))
      const status = STATUSES[c.uint8.decode(state)]
      if (status === undefined) throw new CheckpointError('unknown status code')
      const setId = c.bool.decode(state) ? Buffer.from(c.fixed32.decode(state)) : null
      const amountMsat = c.biguint64.decode(state)
      const time = c.uint.decode(state)
      registry.invoices.set(hash, { status, setId, amountMsat, time, writer: writerAt(c.uint.decode(state)) })
      if (i % CHUNK_ENTRIES === CHUNK_ENTRIES - 1) await turn()
    }
    for (let i = 0, n = c.uint.decode(state); i < n; i++) {
      const hash = hex(c.fixed32.decode(state))
      const writer = writerAt(c.uint.decode(state))
      const reason = REASONS[c.uint8.decode(state)]
      if (reason === undefined) throw new CheckpointError('unknown conflict reason')
      registry.conflicts.push({ hash, writer, reason })
    }
    if (state.start !== state.end) throw new CheckpointError('trailing bytes in snapshot')
    return { cores, registry }
  } catch (err) {
    if (err instanceof CheckpointError) throw err
    throw new CheckpointError(`undecodable snapshot: ${(err as Error).message}`)
  }
}

// Written whole to `path`.tmp, fsynced, renamed over `path`, then the directory fsynced: a crash
// at any point leaves either the old snapshot or the new one.
export async function writeSnapshotFile(path: string, chunks: Uint8Array[]): Promise<void> {
  const tmp = `${path}.tmp`
  const file = await open(tmp, 'w')
  try {
    for (const chunk of chunks) await file.write(chunk)
    await file.sync()
  } finally {
    await file.close()
  }
  await rename(tmp, path)
  const dir = await open(dirname(path), 'r')
  try {
    await dir.sync()
  } finally {
    await dir.close()
  }
}

// ---- the registry kept current from a log ----

export interface RebuildStats {
  snapshot: 'loaded' | 'absent' | 'rejected'
  rejected?: string // why a snapshot file was not used
  snapshotInvoices: number
  tailBlocks: number // blocks folded after the snapshot (all of them without one)
  tailRecords: number
}

export interface AuditRegistryOptions {
  // Snapshot file; defaults to SNAPSHOT_FILE in the log's storage directory.
  snapshotPath?: string
  // Write a snapshot once this many records were folded since the last one (never on a read-only log).
  checkpointEvery?: number
}

// The settle registry of a log, rebuilt at open from the latest valid snapshot plus each core's
// tail, and brought up to date by `catchUp` (the agent calls it periodically and before it needs
// the registry; it also writes the next snapshot when one is due).
export class AuditRegistry {
  readonly registry: Registry
  readonly stats: RebuildStats
  private readonly folded = new Map<string, number>() // hex core key -> blocks folded
  private sinceCheckpoint = 0
  private busy: Promise<unknown> = Promise.resolve()

  private constructor(
    private readonly log: AuditLog,
    private readonly path: string,
    private readonly every: number,
    loaded: Snapshot | null,
    stats: RebuildStats
  ) {
    this.registry = loaded?.registry ?? emptyRegistry()
    for (const core of loaded?.cores ?? []) this.folded.set(hex(core.key), core.length)
    this.stats = stats
  }

  static async open(log: AuditLog, opts: AuditRegistryOptions = {}): Promise<AuditRegistry> {
    const path = opts.snapshotPath ?? `${log.store.storage.path}/${SNAPSHOT_FILE}`
    const { snapshot, stats } = await loadSnapshot(log, path)
    const reg = new AuditRegistry(log, path, opts.checkpointEvery ?? CHECKPOINT_EVERY, snapshot, stats)
    const { blocks, records } = await reg.catchUp()
    stats.tailBlocks = blocks
    stats.tailRecords = records
    return reg
  }

  // Folds every block stored since the last call, core by core; writes a snapshot when due.
  catchUp(): Promise<{ blocks: number; records: number }> {
    return this.exclusive(async () => {
      let blocks = 0
      let records = 0
      for (const core of this.log.cores()) {
        const key = hex(core.key)
        let next = this.folded.get(key) ?? 0
        for await (const block of readBlocks(core, next)) {
          for (const record of block.records) applyRecord(this.registry, record, key)
          next = block.index + 1
          blocks++
          records += block.records.length
        }
        this.folded.set(key, next)
      }
      this.sinceCheckpoint += records
      if (!this.log.readOnly && this.sinceCheckpoint >= this.every) await this.writeCheckpoint()
      return { blocks, records }
    })
  }

  // Writes a snapshot of the registry as folded so far (e.g. at a clean stop).
  checkpoint(): Promise<void> {
    return this.exclusive(() => this.writeCheckpoint())
  }

  private async writeCheckpoint(): Promise<void> {
    const cores: Coverage[] = []
    for (const core of this.log.cores()) {
      const length = this.folded.get(hex(core.key)) ?? 0
      if (length > 0) cores.push({ key: core.key, length, treeHash: await core.treeHash(length) })
    }
    await writeSnapshotFile(this.path, await encodeSnapshot({ cores, registry: this.registry }))
    this.sinceCheckpoint = 0
  }

  // catchUp and checkpoint never interleave: both read `folded` and the registry across awaits.
  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.busy.then(fn)
    this.busy = run.catch(() => undefined)
    return run
  }
}

async function loadSnapshot(log: AuditLog, path: string): Promise<{ snapshot: Snapshot | null; stats: RebuildStats }> {
  const stats = (snapshot: RebuildStats['snapshot'], rest: Partial<RebuildStats> = {}): RebuildStats =>
    ({ snapshot, snapshotInvoices: 0, tailBlocks: 0, tailRecords: 0, ...rest })
  let file: Buffer
  try {
    file = await readFile(path)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { snapshot: null, stats: stats('absent') }
    throw err
  }
  try {
    const snapshot = await decodeSnapshot(file)
    await checkCoverage(log.cores(), snapshot.cores)
    return { snapshot, stats: stats('loaded', { snapshotInvoices: snapshot.registry.invoices.size }) }
  } catch (err) {
    if (!(err instanceof CheckpointError)) throw err
    return { snapshot: null, stats: stats('rejected', { rejected: err.message }) }
  }
}

// Every covered core must be open here and hold exactly the covered history.
async function checkCoverage(open: Hypercore[], cores: Coverage[]): Promise<void> {
  const byKey = new Map(open.map((core) => [hex(core.key), core]))
  for (const covered of cores) {
    const key = hex(covered.key)
    const core = byKey.get(key)
    if (core === undefined) throw new CheckpointError(`snapshot covers core ${key}, which this store does not hold`)
    if (core.contiguousLength < covered.length) throw new CheckpointError(`core ${key} holds ${core.contiguousLength} blocks, snapshot covers ${covered.length}`)
    if (Buffer.compare(await core.treeHash(covered.length), covered.treeHash) !== 0) {
      throw new CheckpointError(`core ${key} has a different history at length ${covered.length} than the snapshot`)
    }
  }
}

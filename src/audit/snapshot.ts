// Checkpoints of a fold over the audit log (DESIGN.md "Audit log"): a restart reads the latest
// snapshot of the folded state plus the tail of each core, instead of every record ever written
// (the 1,000,000-settled-invoice start-up target of issue 7). Shared by the settle registry of the
// replay tool (checkpoint.ts) and the mux ledger a restarting agent serves from (mux-store.ts).
//
// Why a snapshot file beside the store, not a checkpoint record in the core: the folded state of
// 1M invoices is ~100 MB, far over a block (MAX_BLOCK_BYTES) and a replication message; writing it
// into the signed log again and again would bloat every member's replica with derived data that
// each of them can compute itself. A snapshot is a local cache of a pure fold and proves nothing;
// what makes it safe to trust is that it names, per core, the length it covers and the core's
// Merkle tree hash at that length (what the writer signed). At load each core must still have that
// tree hash at that length, so a snapshot of another store, of a core since truncated, or of a
// forked history is refused and the state is rebuilt from scratch. A SHA-256 of the whole file
// catches a torn or corrupted file; it is written to a temporary name, fsynced, then renamed over
// the old one, so a crash leaves the previous snapshot intact.
//
// Fold order. A full rebuild folds each core whole, own core first; from a snapshot, the folds are
// each core's covered prefix (in the snapshot), then each core's tail. Both are valid orders of the
// same records: cores carry no order between them, so a fold must give the same state in any order
// of its records (see each fold for what, if anything, may differ).
//
// Independent of how records were grouped into blocks: the tail is bounded by `checkpointEvery`
// records, whether an idle agent wrote them one per block or a busy one thousands per block.
import { createHash } from 'node:crypto'
import { open, readFile, rename } from 'node:fs/promises'
import { dirname } from 'node:path'
import c from 'compact-encoding'
import type Hypercore from 'hypercore'
import { readNewBlocks, type AuditLog } from './log.ts'
import type { AuditRecord } from './records.ts'
import { CodedError } from '../errors.ts'

// Records folded since the last snapshot before the next is written: bounds the tail a restart
// replays (~2 s of single-record blocks, bench/startup.bench.ts) against the cost of rewriting the
// whole snapshot (~1 s of CPU at 1M invoices, spread over event-loop turns).
export const CHECKPOINT_EVERY = 100_000
// Entries encoded or decoded per event-loop turn, so a checkpoint never stalls the agent for long
// (10,000 entries of the mux ledger take ~20 ms to encode, bench/startup.bench.ts).
export const CHUNK_ENTRIES = 10_000
// A running agent's periodic catch-up folds in slices of this long and rests between them, so it
// takes at most a tenth of the event loop. Folding ten seconds' blocks in one go (~3,000 at 100
// decisions/s in bench/decisions.bench.ts) kept both agents busy for ~400 ms, and the decisions
// made meanwhile took 49-62 ms (p50; max 126) against 10 ms outside; paced, ~1.3 s at 13-15 ms.
export const BACKGROUND_SLICE_MS = 1
export const BACKGROUND_REST_MS = 9
const SHA256_BYTES = 32

export class CheckpointError extends CodedError<'bad_snapshot'> {
  constructor(message: string) {
    super('bad_snapshot', message)
  }
}

// The part of one core a snapshot covers: blocks [0, length) with that Merkle tree hash.
export interface Coverage {
  key: Uint8Array
  length: number
  treeHash: Uint8Array
}

// What a fold must provide to be checkpointed: its record function, and its state's snapshot body.
export interface FoldSpec<S> {
  // The snapshot file's default name, in the log's storage directory.
  fileName: string
  // Names the file format; a file of another kind or version is refused.
  magic: string
  version: number
  empty(): S
  apply(state: S, record: AuditRecord, writer: string): void
  // How many invoices a state holds (reported in RebuildStats).
  invoices(state: S): number
  // The body after the header, as chunks; `writers` maps a covered core's hex key to its index.
  encode(state: S, writers: Map<string, number>): AsyncIterable<Uint8Array>
  // The inverse; throws CheckpointError on anything it does not accept. `writers[i]` is the hex key
  // of the i-th covered core.
  decode(body: Uint8Array, writers: string[]): Promise<S>
}

export const hex = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex')
export const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve))

// ---- file format ----
// header = string magic ‖ uint version ‖ uint n ‖ (key32 ‖ uint length ‖ fixed32 treeHash)*n
// file   = header ‖ body (FoldSpec.encode) ‖ sha256(header ‖ body)

function encodeHeader(magic: string, version: number, cores: Coverage[]): Uint8Array {
  const state = c.state()
  c.string.preencode(state, magic)
  c.uint.preencode(state, version)
  c.uint.preencode(state, cores.length)
  for (const core of cores) {
    c.uint.preencode(state, core.length)
    state.end += 64
  }
  state.buffer = Buffer.allocUnsafe(state.end)
  c.string.encode(state, magic)
  c.uint.encode(state, version)
  c.uint.encode(state, cores.length)
  for (const core of cores) {
    c.fixed32.encode(state, core.key)
    c.uint.encode(state, core.length)
    c.fixed32.encode(state, core.treeHash)
  }
  return state.buffer
}

// The snapshot file's content as chunks, in order, made as they are asked for.
export async function* encodeSnapshotFile<S>(spec: FoldSpec<S>, cores: Coverage[], state: S): AsyncGenerator<Uint8Array> {
  const writers = new Map(cores.map((core, i) => [hex(core.key), i]))
  const sum = createHash('sha256')
  const header = encodeHeader(spec.magic, spec.version, cores)
  sum.update(header)
  yield header
  for await (const chunk of spec.encode(state, writers)) {
    sum.update(chunk)
    yield chunk
  }
  yield sum.digest()
}

export async function decodeSnapshotFile<S>(spec: FoldSpec<S>, file: Uint8Array): Promise<{ cores: Coverage[]; state: S }> {
  if (file.byteLength < SHA256_BYTES) throw new CheckpointError('snapshot file is truncated')
  const content = file.subarray(0, file.byteLength - SHA256_BYTES)
  const sum = createHash('sha256').update(content).digest()
  if (Buffer.compare(sum, file.subarray(content.byteLength)) !== 0) throw new CheckpointError('snapshot checksum mismatch')
  const header = c.state(0, content.byteLength, content)
  const cores: Coverage[] = []
  try {
    if (c.string.decode(header) !== spec.magic) throw new CheckpointError(`not a ${spec.magic} file`)
    const version = c.uint.decode(header)
    if (version !== spec.version) throw new CheckpointError(`snapshot version ${version}, expected ${spec.version}`)
    for (let i = 0, n = c.uint.decode(header); i < n; i++) {
      cores.push({ key: c.fixed32.decode(header), length: c.uint.decode(header), treeHash: c.fixed32.decode(header) })
    }
  } catch (err) {
    if (err instanceof CheckpointError) throw err
    throw new CheckpointError(`undecodable snapshot header: ${(err as Error).message}`)
  }
  const state = await spec.decode(content.subarray(header.start), cores.map((core) => hex(core.key)))
  return { cores, state }
}

// Written whole to `path`.tmp as the chunks come, fsynced, renamed over `path`, then the directory
// fsynced: a crash at any point leaves either the old snapshot or the new one.
export async function writeSnapshotFile(path: string, chunks: AsyncIterable<Uint8Array>): Promise<void> {
  const tmp = `${path}.tmp`
  const file = await open(tmp, 'w')
  try {
    for await (const chunk of chunks) await file.write(chunk)
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

// ---- a fold kept current from a log ----

export interface RebuildStats {
  snapshot: 'loaded' | 'absent' | 'rejected'
  rejected?: string // why a snapshot file was not used
  snapshotInvoices: number
  tailBlocks: number // blocks folded after the snapshot (all of them without one)
  tailRecords: number
}

/** How a background catch-up measures its slices and rests between them (tests pass their own). */
export interface Pacing {
  now(): number
  rest(ms: number): Promise<void>
}

const realPacing: Pacing = {
  now: () => performance.now(),
  rest: (ms) => new Promise((resolve) => setTimeout(resolve, ms))
}

export interface CheckpointOptions {
  // Snapshot file; defaults to FoldSpec.fileName in the log's storage directory.
  snapshotPath?: string
  // Write a snapshot once this many records were folded since the last one (never on a read-only log).
  checkpointEvery?: number
}

// A fold of a log, rebuilt at open from the latest valid snapshot plus each core's tail, and brought
// up to date by `catchUp` (called periodically and before the state is needed; it also writes the
// next snapshot when one is due).
export class CheckpointedFold<S> {
  readonly state: S
  readonly stats: RebuildStats
  private readonly folded = new Map<string, number>() // hex core key -> blocks folded
  private sinceCheckpoint = 0 // records folded since the last snapshot
  private unsavedBlocks = 0 // blocks folded since the last snapshot
  private busy: Promise<unknown> = Promise.resolve()
  private flushing = false // a background catch-up stops resting

  private constructor(
    private readonly log: AuditLog,
    private readonly spec: FoldSpec<S>,
    private readonly path: string,
    private readonly every: number,
    loaded: { cores: Coverage[]; state: S } | null,
    stats: RebuildStats
  ) {
    this.state = loaded?.state ?? spec.empty()
    for (const core of loaded?.cores ?? []) this.folded.set(hex(core.key), core.length)
    this.stats = stats
  }

  static async open<S>(log: AuditLog, spec: FoldSpec<S>, opts: CheckpointOptions = {}): Promise<CheckpointedFold<S>> {
    const path = opts.snapshotPath ?? `${log.store.storage.path}/${spec.fileName}`
    const { loaded, stats } = await loadSnapshot(log, spec, path)
    const fold = new CheckpointedFold(log, spec, path, opts.checkpointEvery ?? CHECKPOINT_EVERY, loaded, stats)
    const { blocks, records } = await fold.catchUp()
    stats.tailBlocks = blocks
    stats.tailRecords = records
    return fold
  }

  // Folds every block stored since the last call, core by core; writes a snapshot when due. In the
  // background, it rests BACKGROUND_REST_MS after each BACKGROUND_SLICE_MS of folding, unless a
  // flush is waiting for it.
  catchUp({ background = false, pacing = realPacing }: { background?: boolean; pacing?: Pacing } = {}): Promise<{ blocks: number; records: number }> {
    return this.exclusive(async () => {
      let blocks = 0
      let records = 0
      let sliceStart = pacing.now()
      for await (const block of readNewBlocks(this.log.cores(), this.folded)) {
        for (const record of block.records) this.spec.apply(this.state, record, block.core)
        blocks++
        records += block.records.length
        if (background && !this.flushing && pacing.now() - sliceStart >= BACKGROUND_SLICE_MS) {
          await pacing.rest(BACKGROUND_REST_MS)
          sliceStart = pacing.now()
        }
      }
      this.sinceCheckpoint += records
      this.unsavedBlocks += blocks
      if (!this.log.readOnly && this.sinceCheckpoint >= this.every) await this.writeCheckpoint()
      return { blocks, records }
    })
  }

  // Writes a snapshot of the state as folded so far.
  checkpoint(): Promise<void> {
    return this.exclusive(() => this.writeCheckpoint())
  }

  // At a clean stop: folds what is left, then writes a snapshot unless the last one covers it all.
  async flush(): Promise<void> {
    this.flushing = true
    await this.catchUp()
    await this.exclusive(async () => {
      if (!this.log.readOnly && this.unsavedBlocks > 0) await this.writeCheckpoint()
    })
  }

  private async writeCheckpoint(): Promise<void> {
    const cores: Coverage[] = []
    for (const core of this.log.cores()) {
      const length = this.folded.get(hex(core.key)) ?? 0
      if (length > 0) cores.push({ key: core.key, length, treeHash: await core.treeHash(length) })
    }
    await writeSnapshotFile(this.path, encodeSnapshotFile(this.spec, cores, this.state))
    this.sinceCheckpoint = 0
    this.unsavedBlocks = 0
  }

  // catchUp and checkpoint never interleave: both read `folded` and the state across awaits.
  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.busy.then(fn)
    this.busy = run.catch(() => undefined)
    return run
  }
}

async function loadSnapshot<S>(log: AuditLog, spec: FoldSpec<S>, path: string): Promise<{ loaded: { cores: Coverage[]; state: S } | null; stats: RebuildStats }> {
  const stats = (snapshot: RebuildStats['snapshot'], rest: Partial<RebuildStats> = {}): RebuildStats =>
    ({ snapshot, snapshotInvoices: 0, tailBlocks: 0, tailRecords: 0, ...rest })
  let file: Buffer
  try {
    file = await readFile(path)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { loaded: null, stats: stats('absent') }
    throw err
  }
  try {
    const loaded = await decodeSnapshotFile(spec, file)
    await checkCoverage(log.cores(), loaded.cores)
    return { loaded, stats: stats('loaded', { snapshotInvoices: spec.invoices(loaded.state) }) }
  } catch (err) {
    if (!(err instanceof CheckpointError)) throw err
    return { loaded: null, stats: stats('rejected', { rejected: err.message }) }
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

// The settle registry's checkpoints (snapshot.ts): what `node src audit state` rebuilds the
// registry of a whole store from. applyRecord gives the same statuses in any order of the records;
// only which writer is named for a status, and the order of conflicts, can differ between a full
// rebuild and a snapshot plus tails when two cores contradict each other.
import c from 'compact-encoding'
import type { AuditLog } from './log.ts'
import { applyRecord, emptyRegistry, type Conflict, type InvoiceEntry, type Registry, type SettleStatus } from './registry.ts'
import {
  CHUNK_ENTRIES,
  CheckpointError,
  CheckpointedFold,
  decodeSnapshotFile,
  encodeSnapshotFile,
  hex,
  turn,
  type CheckpointOptions,
  type Coverage,
  type FoldSpec
} from './snapshot.ts'

export const SNAPSHOT_FILE = 'registry.snapshot'
export const SNAPSHOT_VERSION = 1

const STATUSES: readonly SettleStatus[] = ['settle_requested', 'settled', 'failed', 'cancelled']
const REASONS: readonly Conflict['reason'][] = ['settle_after_cancel', 'cancel_after_settle', 'second_set']

export interface Snapshot {
  cores: Coverage[]
  registry: Registry
}

// ---- body (after snapshot.ts's header) ----
// entries = uint count ‖ (hash32 ‖ uint8 status ‖ bool hasSetId ‖ [fixed32 setId] ‖ u64 amount ‖
//           uint time ‖ uint writer)*count      writer = index of the writer's core in the header
// then      uint count ‖ (hash32 ‖ uint writer ‖ uint8 reason)*count

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

// Yields to the event loop between chunks of entries.
async function* encodeRegistry(registry: Registry, writers: Map<string, number>): AsyncGenerator<Uint8Array> {
  yield c.encode(c.uint, registry.invoices.size)
  let batch: Array<[string, InvoiceEntry]> = []
  for (const entry of registry.invoices) {
    batch.push(entry)
    if (batch.length === CHUNK_ENTRIES) {
      yield encodeEntries(batch, writers)
      batch = []
      await turn()
    }
  }
  yield encodeEntries(batch, writers)
  yield encodeConflicts(registry.conflicts, writers)
}

async function decodeRegistry(body: Uint8Array, writers: string[]): Promise<Registry> {
  const state = c.state(0, body.byteLength, body)
  const writerAt = (i: number): string => {
    const w = writers[i]
    if (w === undefined) throw new CheckpointError(`writer index ${i} out of range`)
    return w
  }
  try {
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
    return registry
  } catch (err) {
    if (err instanceof CheckpointError) throw err
    throw new CheckpointError(`undecodable snapshot: ${(err as Error).message}`)
  }
}

export const REGISTRY_FOLD: FoldSpec<Registry> = {
  fileName: SNAPSHOT_FILE,
  magic: 'highwire/registry-snapshot',
  version: SNAPSHOT_VERSION,
  empty: emptyRegistry,
  apply: applyRecord,
  invoices: (registry) => registry.invoices.size,
  encode: encodeRegistry,
  decode: decodeRegistry
}

// The settle registry of a log, kept current from its latest snapshot (see CheckpointedFold).
export function openRegistry(log: AuditLog, opts: CheckpointOptions = {}): Promise<CheckpointedFold<Registry>> {
  return CheckpointedFold.open(log, REGISTRY_FOLD, opts)
}

// The snapshot file's content as chunks (tests forge and inspect snapshots with these two).
export async function encodeSnapshot(snapshot: Snapshot): Promise<Uint8Array[]> {
  const chunks: Uint8Array[] = []
  for await (const chunk of encodeSnapshotFile(REGISTRY_FOLD, snapshot.cores, snapshot.registry)) chunks.push(chunk)
  return chunks
}

export async function decodeSnapshot(file: Uint8Array): Promise<Snapshot> {
  const { cores, state } = await decodeSnapshotFile(REGISTRY_FOLD, file)
  return { cores, registry: state }
}

// Audit log: durable appends with the group-commit flush policy (reference: one append per flush,
// the cost of a RocksDB flush alone), and the start-up rebuild of a registry of settled invoices
// from a checkpoint plus its tail (reference: the same rebuild from the first record, which also
// gives the replay speed in records/s).
import { existsSync } from 'node:fs'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { AuditLog } from '../src/audit/log.ts'
import { openRegistry } from '../src/audit/checkpoint.ts'
import { CHECKPOINT_EVERY, type CheckpointOptions, type RebuildStats } from '../src/audit/snapshot.ts'
import { encodeBlock, encodeRecord, type AuditRecord } from '../src/audit/records.ts'
import type { Emit } from './index.ts'

// Bump when the record format or the fixture's shape changes, so a stale cache is not reused.
const FIXTURE_VERSION = 2
const NODE = Buffer.alloc(33, 2)
const ADDR = Buffer.alloc(32, 0xad)

function settledPair(i: number, time: number): [AuditRecord, AuditRecord] {
  const hash = Buffer.alloc(32)
  hash.writeUInt32BE(i, 28)
  const setId = Buffer.alloc(32, 0x5e)
  setId.writeUInt32BE(i, 0)
  const htlcs = [{ circuit: { node: NODE, chanId: 1n, htlcId: BigInt(i) }, amountMsat: 100_000n }]
  return [
    { type: 'settle_requested', time, term: 1, hash, setId, paymentAddr: ADDR, amountMsat: 100_000n, htlcs },
    { type: 'settle_final', time: time + 1, hash, setId, status: 'settled' }
  ]
}

const seconds = (start: number): number => (performance.now() - start) / 1000

async function durableAppends(emit: Emit): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'highwire-bench-audit-'))
  const log = await AuditLog.open({ path: dir })
  try {
    // Reference: one record per flush, each append awaited before the next.
    const single = 20
    let start = performance.now()
    for (let i = 0; i < single; i++) await log.append(settledPair(i, i)[0])
    const perFlushS = seconds(start) / single
    emit('audit_durable_append_unbatched_per_s', 1 / perFlushS, 'ops/s', { flush_ms: perFlushS * 1000 })

    // Group commit under load: a burst of concurrent durable appends.
    const burst = 50_000
    const before = { ...log.stats }
    start = performance.now()
    await Promise.all(Array.from({ length: burst }, (_, i) => log.append(settledPair(i, i)[0])))
    const elapsed = seconds(start)
    const flushes = log.stats.flushes - before.flushes
    emit('audit_durable_appends_per_s', burst / elapsed, 'ops/s', {
      records: burst,
      flushes,
      records_per_flush: Math.round(burst / flushes),
      mean_flush_ms: Number(((log.stats.flushMs - before.flushMs) / flushes).toFixed(1))
    })
  } finally {
    await log.close()
    await rm(dir, { recursive: true, force: true })
  }
}

// The start-up rebuild, in the worst layout: one record per block, as an idle agent writes them
// (HIGHWIRE_AUDIT_REBUILD_COUNT invoices, default 1,000,000, each a settle_requested and a
// settle_final: 2M blocks). The agent checkpoints every CHECKPOINT_EVERY records, so the fixture
// holds a snapshot taken CHECKPOINT_EVERY records before the end: the longest tail a restart can
// meet. The fixture is cached under the OS temp dir because building it takes minutes.
async function rebuild(emit: Emit): Promise<void> {
  const count = Number(process.env.HIGHWIRE_AUDIT_REBUILD_COUNT ?? 1_000_000)
  const dir = join(tmpdir(), `highwire-bench-audit-rebuild-v${FIXTURE_VERSION}-${count}`)
  const done = join(dir, 'fixture-complete')
  let buildS: number | undefined
  if (!existsSync(done)) {
    await rm(dir, { recursive: true, force: true })
    const start = performance.now()
    await buildFixture(dir, count)
    await writeFile(done, String(count))
    buildS = seconds(start)
  }
  const name = count === 1_000_000 ? '1m' : String(count)
  const measured = await timedRebuild(dir, {})
  if (measured.settled !== count) throw new Error(`rebuild found ${measured.settled} settled invoices, expected ${count}`)
  emit(`audit_rebuild_${name}_settled_s`, measured.wallS, 's', {
    cpu_s: Number(measured.cpuS.toFixed(2)),
    invoices: count,
    blocks: measured.blocks,
    snapshot: measured.stats.snapshot,
    tail_records: measured.stats.tailRecords,
    ...(buildS === undefined ? { fixture: 'cached' } : { fixture_build_s: Number(buildS.toFixed(1)) })
  })
  // Reference: the same store folded from its first block, as without a checkpoint.
  const full = await timedRebuild(dir, { snapshotPath: join(dir, 'no-such-snapshot') })
  emit(`audit_rebuild_${name}_settled_no_checkpoint_s`, full.wallS, 's', { cpu_s: Number(full.cpuS.toFixed(2)), blocks: full.blocks })
  emit('audit_replay_records_per_s', full.stats.tailRecords / full.wallS, 'records/s', {
    records_per_cpu_s: Math.round(full.stats.tailRecords / full.cpuS),
    records_per_block: 1
  })
}

async function buildFixture(dir: string, count: number): Promise<void> {
  const log = await AuditLog.open({ path: dir })
  try {
    const blocks = (from: number, to: number): Uint8Array[] => {
      const out: Uint8Array[] = []
      for (let i = from; i < to; i++) out.push(encodeBlock([encodeRecord(settledPair(i >> 1, 1_700_000_000_000 + i)[i & 1]!)]))
      return out
    }
    const total = count * 2
    const snapshotAt = Math.max(0, total - CHECKPOINT_EVERY)
    for (let i = 0; i < snapshotAt; i += 1000) await log.core.append(blocks(i, Math.min(snapshotAt, i + 1000)))
    await (await openRegistry(log, { checkpointEvery: Infinity })).checkpoint()
    for (let i = snapshotAt; i < total; i += 1000) await log.core.append(blocks(i, Math.min(total, i + 1000)))
  } finally {
    await log.close()
  }
}

// Open the store read-only (as a restarting agent opens it, minus the write lock) and rebuild its
// registry; the registry is dropped on return so the next measurement does not pay for its memory.
async function timedRebuild(dir: string, opts: CheckpointOptions): Promise<{ wallS: number; cpuS: number; settled: number; blocks: number; stats: RebuildStats }> {
  const start = performance.now()
  const cpu = process.cpuUsage()
  const log = await AuditLog.open({ path: dir, readOnly: true })
  try {
    const reg = await openRegistry(log, opts)
    let settled = 0
    for (const entry of reg.state.invoices.values()) if (entry.status === 'settled') settled++
    const used = process.cpuUsage(cpu)
    return { wallS: seconds(start), cpuS: (used.user + used.system) / 1e6, settled, blocks: log.core.length, stats: reg.stats }
  } finally {
    await log.close()
  }
}

export default async function (emit: Emit): Promise<void> {
  await durableAppends(emit)
  await rebuild(emit)
}

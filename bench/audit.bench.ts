// Audit log: durable appends with the group-commit flush policy (reference: one append per flush,
// the cost of a RocksDB flush alone), replay speed, and start-up rebuild of a registry of settled
// invoices (HIGHWIRE_AUDIT_REBUILD_COUNT, default 1,000,000; the fixture is cached under the OS
// temp dir because building it takes longer than reading it).
import { existsSync } from 'node:fs'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { AuditLog, readBlocks } from '../src/audit/log.ts'
import { state } from '../src/audit/replay.ts'
import { encodeBlock, encodeRecord, type AuditRecord } from '../src/audit/records.ts'
import type { Emit } from './index.ts'

// Bump when the record format or the fixture's shape changes, so a stale cache is not reused.
const FIXTURE_VERSION = 1
const NODE = Buffer.alloc(33, 2)
const ADDR = Buffer.alloc(32, 0xad)

function settledPair(i: number, time: number): [AuditRecord, AuditRecord] {
  const hash = Buffer.alloc(32)
  hash.writeUInt32BE(i, 28)
  const setId = Buffer.alloc(32, 0x5e)
  setId.writeUInt32BE(i, 0)
  const htlcs = [{ circuit: { node: NODE, chanId: 1n, htlcId: BigInt(i) }, amountMsat: 100_000n }]
  return [
    { type: 'settle_requested', time, hash, setId, paymentAddr: ADDR, amountMsat: 100_000n, htlcs },
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

// One block per record: the worst case for replay, when the agent is idle and every record is
// flushed alone.
async function replaySingleRecordBlocks(emit: Emit): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'highwire-bench-audit-'))
  const log = await AuditLog.open({ path: dir })
  try {
    const n = 20_000
    for (let i = 0; i < n; i += 1000) {
      await log.core.append(Array.from({ length: 1000 }, (_, j) => encodeBlock([encodeRecord(settledPair(i + j, i)[0])])))
    }
    const start = performance.now()
    let count = 0
    for await (const { records } of readBlocks(log.core)) count += records.length
    emit('audit_replay_single_record_blocks_per_s', count / seconds(start), 'records/s', { blocks: n })
  } finally {
    await log.close()
    await rm(dir, { recursive: true, force: true })
  }
}

async function rebuild(emit: Emit): Promise<void> {
  const count = Number(process.env.HIGHWIRE_AUDIT_REBUILD_COUNT ?? 1_000_000)
  const dir = join(tmpdir(), `highwire-bench-audit-rebuild-v${FIXTURE_VERSION}-${count}`)
  const done = join(dir, 'fixture-complete')
  let buildS: number | undefined
  if (!existsSync(done)) {
    await rm(dir, { recursive: true, force: true })
    const start = performance.now()
    const log = await AuditLog.open({ path: dir })
    // As the agent writes under load: lazy appends grouped by the writer, one flush at the end.
    const window = 20_000
    for (let i = 0; i < count; i += window / 2) {
      const writes: Promise<void>[] = []
      for (let j = i; j < Math.min(count, i + window / 2); j++) {
        for (const r of settledPair(j, 1_700_000_000_000 + j)) writes.push(log.append(r, { durable: false }))
      }
      await Promise.all(writes)
    }
    await log.close()
    await writeFile(done, String(count))
    buildS = seconds(start)
  }
  const start = performance.now()
  const log = await AuditLog.open({ path: dir, readOnly: true })
  try {
    const settled = await settledCount(log)
    const elapsed = seconds(start)
    if (settled !== count) throw new Error(`rebuild found ${settled} settled invoices, expected ${count}`)
    emit(count === 1_000_000 ? 'audit_rebuild_1m_settled_s' : `audit_rebuild_${count}_settled_s`, elapsed, 's', {
      invoices: count,
      records: count * 2,
      blocks: log.core.length,
      ...(buildS === undefined ? { fixture: 'cached' } : { fixture_build_s: Number(buildS.toFixed(1)) })
    })
    const replayStart = performance.now()
    let records = 0
    for await (const block of readBlocks(log.core)) records += block.records.length
    emit('audit_replay_records_per_s', records / seconds(replayStart), 'records/s', { records, blocks: log.core.length })
  } finally {
    await log.close()
  }
}

// The registry is dropped on return, so the replay measured next does not pay for its memory.
async function settledCount(log: AuditLog): Promise<number> {
  const reg = await state(log)
  let settled = 0
  for (const entry of reg.invoices.values()) if (entry.status === 'settled') settled++
  return settled
}

export default async function (emit: Emit): Promise<void> {
  await durableAppends(emit)
  await replaySingleRecordBlocks(emit)
  await rebuild(emit)
}

import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { AuditLog } from '../../src/audit/log.ts'
import { openRegistry, decodeSnapshot, encodeSnapshot, SNAPSHOT_FILE } from '../../src/audit/checkpoint.ts'
import { state } from '../../src/audit/replay.ts'
import { BACKGROUND_REST_MS, BACKGROUND_SLICE_MS, type Pacing } from '../../src/audit/snapshot.ts'
import type { AuditRecord } from '../../src/audit/records.ts'
import { tempDir, openLog, bytes, settle, replicateCore } from './audit-helpers.ts'

type Settle = AuditRecord & { type: 'settle_requested' }

// Invoice i: settle_requested, then settled (even i) or failed (odd i); every fifth is cancelled
// instead. Records go one per block, as an idle agent writes them.
async function writeInvoices(log: AuditLog, from: number, to: number): Promise<void> {
  for (let i = from; i < to; i++) {
    const r = settle(i, 1000 + i) as Settle
    if (i % 5 === 4) {
      await log.append({ type: 'settle_cancelled', time: 1000 + i, term: 1, hash: r.hash }, { durable: false })
      continue
    }
    await log.append(r, { durable: false })
    await log.append({ type: 'settle_final', time: 2000 + i, hash: r.hash, setId: r.setId, status: i % 2 === 0 ? 'settled' : 'failed' }, { durable: false })
  }
}

test('a restart reads the latest snapshot plus the tail and rebuilds the same registry as a full replay', async (t) => {
  const dir = await tempDir(t)
  const first = await AuditLog.open({ path: dir })
  await writeInvoices(first, 0, 30)
  const reg = await openRegistry(first, { checkpointEvery: 20 })
  assert.equal(reg.stats.snapshot, 'absent')
  assert.equal(reg.stats.tailRecords, 54, 'no snapshot: every record is folded')
  await writeInvoices(first, 30, 40) // folded by catchUp, not yet due for a snapshot
  assert.deepEqual(await reg.catchUp(), { blocks: 18, records: 18 })
  assert.deepEqual(reg.state, await state(first))
  await writeInvoices(first, 40, 45)
  await first.close()

  const again = await openLog(t, dir)
  const restarted = await openRegistry(again)
  assert.equal(restarted.stats.snapshot, 'loaded')
  assert.equal(restarted.stats.snapshotInvoices, 30)
  assert.equal(restarted.stats.tailRecords, 18 + 9, 'the records after the snapshot, and only those')
  assert.deepEqual(restarted.state, await state(again))
  assert.equal([...restarted.state.invoices.values()].filter((e) => e.status === 'cancelled').length, 9)
})

test('catchUp writes the next snapshot once checkpointEvery records were folded; never on a read-only log', async (t) => {
  const dir = await tempDir(t)
  const log = await AuditLog.open({ path: dir })
  await writeInvoices(log, 0, 10)
  const reg = await openRegistry(log, { checkpointEvery: 10 })
  const written = await readFile(join(dir, SNAPSHOT_FILE))
  await writeInvoices(log, 10, 12)
  await reg.catchUp()
  assert.deepEqual(await readFile(join(dir, SNAPSHOT_FILE)), written, '4 records: not due')
  await writeInvoices(log, 12, 16)
  await reg.catchUp()
  const next = await decodeSnapshot(await readFile(join(dir, SNAPSHOT_FILE)))
  assert.equal(next.cores[0]!.length, log.core.length)
  assert.deepEqual(next.registry, reg.state)
  await writeInvoices(log, 16, 40)
  await log.close()

  const reader = await openLog(t, dir, { readOnly: true })
  const before = await readFile(join(dir, SNAPSHOT_FILE))
  const read = await openRegistry(reader, { checkpointEvery: 1 })
  assert.equal(read.stats.snapshot, 'loaded')
  assert.deepEqual(await readFile(join(dir, SNAPSHOT_FILE)), before)
})

// A clock that moves half a slice each time it is read, and rests that the test releases.
function steppedPacing(): Pacing & { rests: number[]; release: () => void } {
  let time = 0
  let waiting: (() => void) | null = null
  const rests: number[] = []
  return {
    rests,
    now: () => (time += BACKGROUND_SLICE_MS / 2),
    rest: (ms) => {
      rests.push(ms)
      return new Promise((resolve) => { waiting = resolve })
    },
    release: () => {
      const run = waiting
      waiting = null
      run?.()
    }
  }
}

async function untilRested(pacing: { rests: number[] }, count: number): Promise<void> {
  for (let turns = 0; pacing.rests.length < count; turns++) {
    if (turns === 1000) throw new Error(`rested ${pacing.rests.length} times, expected ${count}`)
    await new Promise((resolve) => setImmediate(resolve))
  }
}

test('a background catch-up rests after each slice of folding and folds the same state; a flush makes it stop resting', async (t) => {
  const log = await openLog(t, await tempDir(t))
  const reg = await openRegistry(log)
  await writeInvoices(log, 0, 20) // 36 blocks

  const foreground = steppedPacing()
  await writeInvoices(log, 20, 21)
  assert.deepEqual(await reg.catchUp({ pacing: foreground }), { blocks: 38, records: 38 })
  assert.deepEqual(foreground.rests, [], 'a foreground catch-up never rests')

  await writeInvoices(log, 21, 40)
  const paced = steppedPacing()
  const running = reg.catchUp({ background: true, pacing: paced })
  for (let i = 1; i <= 5; i++) {
    await untilRested(paced, i)
    paced.release()
  }
  assert.deepEqual(paced.rests, Array(5).fill(BACKGROUND_REST_MS), 'one rest per two blocks')
  await untilRested(paced, 6)
  const flushed = reg.flush()
  paced.release()
  assert.deepEqual(await running, { blocks: 34, records: 34 })
  await flushed
  assert.equal(paced.rests.length, 6, 'no rest after the flush began')
  assert.deepEqual(reg.state, await state(log))
})

test('a snapshot of another store, of a different history, or corrupted is refused and the registry rebuilt in full', async (t) => {
  const dirA = await tempDir(t)
  const dirB = await tempDir(t)
  const a = await openLog(t, dirA)
  const b = await openLog(t, dirB)
  await writeInvoices(a, 0, 6)
  await writeInvoices(b, 0, 6)
  await (await openRegistry(a)).checkpoint()
  const snapshot = await readFile(join(dirA, SNAPSHOT_FILE))

  const otherPath = join(dirB, SNAPSHOT_FILE)
  await writeFile(otherPath, snapshot)
  const other = await openRegistry(b)
  assert.equal(other.stats.snapshot, 'rejected')
  assert.match(other.stats.rejected!, /^snapshot covers core [0-9a-f]{64}, which this store does not hold$/)
  assert.deepEqual(other.state, await state(b))

  // Same store, but the snapshot claims a history the core does not have at that length.
  const decoded = await decodeSnapshot(snapshot)
  decoded.cores[0]!.treeHash = bytes(32, 7)
  await writeFile(join(dirA, 'forged.snapshot'), Buffer.concat(await encodeSnapshot(decoded)))
  const forged = await openRegistry(a, { snapshotPath: join(dirA, 'forged.snapshot') })
  assert.equal(forged.stats.snapshot, 'rejected')
  assert.match(forged.stats.rejected!, /has a different history at length \d+ than the snapshot$/)

  const corrupt = Buffer.from(snapshot)
  corrupt[40] = corrupt[40]! ^ 1
  await writeFile(join(dirA, 'corrupt.snapshot'), corrupt)
  const damaged = await openRegistry(a, { snapshotPath: join(dirA, 'corrupt.snapshot') })
  assert.deepEqual([damaged.stats.snapshot, damaged.stats.rejected], ['rejected', 'snapshot checksum mismatch'])
  assert.deepEqual(damaged.state, await state(a))
})

test('snapshots round-trip conflicts, cancels and several writers, covering replicas too', async (t) => {
  const a = await openLog(t, await tempDir(t))
  const b = await openLog(t, await tempDir(t))
  const one = settle(1, 10) as Settle
  await a.append(one)
  await b.append({ ...one, setId: bytes(32, 0xee), time: 11 }) // a second set for the same invoice
  await b.append({ type: 'settle_cancelled', time: 12, term: 1, hash: one.hash }) // cancel after settle
  await b.append({ type: 'settle_cancelled', time: 13, term: 1, hash: bytes(32, 3) })
  await replicateCore(a, b)

  const reg = await openRegistry(a)
  assert.deepEqual(reg.state.conflicts.map((k) => k.reason), ['second_set', 'cancel_after_settle'])
  await reg.checkpoint()
  const snapshot = await decodeSnapshot(await readFile(join(a.store.storage.path, SNAPSHOT_FILE)))
  assert.deepEqual(snapshot.cores.map((c) => [Buffer.from(c.key).toString('hex'), c.length]), [
    [Buffer.from(a.key).toString('hex'), 1],
    [Buffer.from(b.key).toString('hex'), 3]
  ])
  assert.deepEqual(snapshot.registry, reg.state)
  assert.deepEqual(snapshot.registry, await state(a))
  assert.equal(snapshot.registry.invoices.get(Buffer.from(bytes(32, 3)).toString('hex'))!.setId, null)
})

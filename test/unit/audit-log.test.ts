import { test } from 'node:test'
import assert from 'node:assert/strict'
import { cp, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { AuditLog, LAZY_LINGER_MS, readBlocks } from '../../src/audit/log.ts'
import { toAuditRecord } from '../../src/audit/mux-store.ts'
import { PeerWriteLimiter } from '../../src/audit/limit.ts'
import { state } from '../../src/audit/replay.ts'
import type { AuditRecord } from '../../src/audit/records.ts'
import type { MuxRecord } from '../../src/mux/types.ts'
import { tempDir, openLog, defer, bytes, settle, muxRecordsOf, pipe } from './audit-helpers.ts'

async function recordsOf(log: AuditLog, core = log.core): Promise<AuditRecord[]> {
  const out: AuditRecord[] = []
  for await (const { records } of readBlocks(core)) out.push(...records)
  return out
}

test('a durable append resolves only after the WAL fsync (or flush) that covers it; concurrent appends share one', async (t) => {
  const log = await openLog(t, await tempDir(t))
  const syncsWhen: Record<string, number> = {}
  const lazy = log.append({ type: 'agent_start', time: 1, software: 'highwire', agent: bytes(32, 1) }, { durable: false })
    .then(() => (syncsWhen.lazy = log.stats.flushes))
  const durable = log.append(settle(1, 2)).then(() => (syncsWhen.durable = log.stats.flushes))
  await Promise.all([lazy, durable])
  assert.equal(syncsWhen.lazy, 0, 'a lazy append does not wait for a durability point')
  assert.equal(syncsWhen.durable, 1, 'the durable append resolved after its durability point')
  assert.equal(log.stats.walSyncs, 1, 'the WAL file was fsynced (no rotation in between)')

  const before = log.stats.flushes
  await Promise.all(Array.from({ length: 500 }, (_, i) => log.append(settle(i + 10, 3 + i))))
  const syncs = log.stats.flushes - before
  assert.ok(syncs >= 1 && syncs <= 3, `500 concurrent appends took ${syncs} durability points`)
  assert.equal((await recordsOf(log)).length, 502)
})

test('records appended in one turn of the event loop are written as one block', async (t) => {
  const log = await openLog(t, await tempDir(t))
  const lazy = log.append({ type: 'agent_start', time: 1, software: 'highwire', agent: bytes(32, 1) }, { durable: false })
  await Promise.all([lazy, log.append(settle(1, 2))])
  assert.equal(log.stats.blocks, 1)
  assert.equal(log.stats.records, 2)
})

test('lazy records appended over several turns wait for the durable one that follows and share its block; alone, they wait LAZY_LINGER_MS; a close writes them at once', async (t) => {
  const dir = await tempDir(t)
  const log = await openLog(t, dir)
  const agentStart = (time: number): AuditRecord => ({ type: 'agent_start', time, software: 'highwire', agent: bytes(32, 1) })
  const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve))
  const lazy = [log.append(agentStart(1), { durable: false })]
  await turn()
  lazy.push(log.append(agentStart(2), { durable: false }))
  await turn()
  await Promise.all([...lazy, log.append(settle(1, 2))])
  assert.deepEqual([log.stats.blocks, log.stats.records], [1, 3], 'the two lazy records went out in the durable record\'s block')

  const started = performance.now()
  await log.append(agentStart(3), { durable: false })
  // Timers may fire up to a millisecond early as performance.now() counts it.
  assert.ok(performance.now() - started >= LAZY_LINGER_MS - 1, 'a lone lazy block waited for company')
  assert.equal(log.stats.blocks, 2)

  const lingering = log.append(agentStart(4), { durable: false })
  await log.close()
  await lingering
  assert.equal(log.stats.blocks, 3)
  const reopened = await openLog(t, dir, { readOnly: true })
  assert.deepEqual((await recordsOf(reopened)).map((r) => r.time), [1, 2, 2, 3, 4])
})

// The timeout only turns a regression (the lazy append waiting for the held fsync) into a failure rather than a hang.
test('while an fsync runs, lazy appends are written without waiting for it, and durable ones share the next', { timeout: 20_000 }, async (t) => {
  const log = await openLog(t, await tempDir(t))
  const db = log.store.storage.db
  const currentWalFile = db.currentWalFile.bind(db)
  // The fsync's own look at the WAL (the second call) waits until the test lets it go.
  let release = (): void => {}
  const held = new Promise<void>((resolve) => (release = resolve))
  let calls = 0
  db.currentWalFile = async () => {
    if (++calls === 2) await held
    return currentWalFile()
  }
  let firstDurable = false
  const first = log.append(settle(1, 1)).then(() => (firstDurable = true))
  while (calls < 2) await new Promise((resolve) => setImmediate(resolve))
  await log.append({ type: 'agent_start', time: 2, software: 'highwire', agent: bytes(32, 1) }, { durable: false })
  assert.equal(firstDurable, false, 'the lazy append was written while the first fsync was still running')
  const later = [log.append(settle(2, 3)), log.append(settle(3, 4))]
  release()
  await Promise.all([first, ...later])
  assert.equal(log.stats.flushes, 2, 'the two durable appends made during the first fsync shared the second')
  assert.equal(log.stats.blocks, 3)
})

/**
 * From now on the `at`-th look at the current WAL file (counting from 1) sees the next file, as after a
 * memtable switch; returns how many RocksDB flushes have run since.
 */
function rotateWalAt(log: AuditLog, at: number): () => number {
  const db = log.store.storage.db
  const currentWalFile = db.currentWalFile.bind(db)
  let looks = 0
  db.currentWalFile = async () => {
    const wal = await currentWalFile()
    return ++looks === at ? { ...wal, number: wal.number + 1 } : wal
  }
  const flush = db.flush.bind(db)
  let flushes = 0
  db.flush = async () => {
    flushes++
    await flush()
  }
  return () => flushes
}

test('when the WAL rotates between the look before the append and the fsync, a RocksDB flush makes the record durable; the next append fsyncs the WAL again', async (t) => {
  const log = await openLog(t, await tempDir(t))
  // The second look (after the append) sees another WAL file, as after a memtable switch.
  const flushes = rotateWalAt(log, 2)
  await log.append(settle(1, 2))
  assert.equal(flushes(), 1)
  assert.equal(log.stats.walSyncs, 0)
  await log.append(settle(2, 3))
  assert.equal(flushes(), 1, 'the next durable append is an fsync of the WAL again, not another flush')
  assert.equal(log.stats.walSyncs, 1)
})

test('after the first fsync, a durable append looks at the WAL only once, beside its own fsync', async (t) => {
  const log = await openLog(t, await tempDir(t))
  const db = log.store.storage.db
  const currentWalFile = db.currentWalFile.bind(db)
  let calls = 0
  db.currentWalFile = async () => {
    calls++
    return currentWalFile()
  }
  await log.append(settle(1, 1))
  assert.equal(calls, 2, 'the first: before its append, and at its fsync')
  await log.append(settle(2, 2))
  assert.equal(calls, 3, "the second uses the first fsync's look as its look before the append")
  assert.equal(log.stats.walSyncs, 2)
  // A rotation seen by the look beside the fsync of the open file: a flush makes the record durable.
  const flushes = rotateWalAt(log, 1)
  await log.append(settle(3, 3))
  assert.equal(flushes(), 1)
  assert.equal(log.stats.walSyncs, 2)
})

test('a record that fails to encode rejects its own append only', async (t) => {
  const log = await openLog(t, await tempDir(t))
  const bad = log.append({ ...settle(1, 1), hash: bytes(3, 0) } as AuditRecord)
  const good = log.append(settle(2, 2))
  await assert.rejects(bad, { code: 'invalid_field' })
  await good
  assert.equal((await recordsOf(log)).length, 1)
})

test('a restart rebuilds the same state from the own core, through the mux store too', async (t) => {
  const dir = await tempDir(t)
  const muxRecords: MuxRecord[] = [
    { type: 'settle_requested', term: 1, hash: bytes(32, 1), setId: bytes(32, 2), paymentAddr: bytes(32, 3), amountMsat: 7n, htlcs: [], time: 1 },
    { type: 'final', hash: bytes(32, 1), setId: bytes(32, 2), status: 'settled', time: 2 },
    { type: 'cancelled', term: 1, hash: bytes(32, 4), time: 3 },
    { type: 'settle_requested', term: 1, hash: bytes(32, 5), setId: bytes(32, 6), paymentAddr: bytes(32, 3), amountMsat: 9n, htlcs: [], time: 4 }
  ]
  const first = await AuditLog.open({ path: dir })
  for (const r of muxRecords) await first.append(toAuditRecord(r))
  const before = await state(first)
  await first.close()

  const again = await openLog(t, dir)
  const after = await state(again)
  assert.deepEqual(after, before)
  assert.deepEqual([...after.invoices.values()].map((e) => e.status), ['settled', 'cancelled', 'settle_requested'])
  assert.deepEqual(await muxRecordsOf(again), muxRecords)
})

test('storage: one writer at a time, read-only readers beside it, and a copied directory refuses to open', async (t) => {
  const dir = await tempDir(t)
  const log = await AuditLog.open({ path: dir, id: 'agent-a' })
  await log.append(settle(1, 1))
  await assert.rejects(AuditLog.open({ path: dir }), { code: 'storage_locked' })

  const reader = await AuditLog.open({ path: dir, readOnly: true })
  assert.deepEqual(reader.key, log.key)
  assert.equal((await recordsOf(reader)).length, 1)
  await assert.rejects(reader.append(settle(2, 2)), { code: 'read_only' })
  await reader.close()
  await log.close()

  // Two agents running from copies would sign two histories under one key: a fork. Refuse.
  const copy = join(dir, '..', `${dir.split('/').pop()}-copy`)
  defer(t, () => rm(copy, { recursive: true, force: true }))
  await cp(dir, copy, { recursive: true })
  await assert.rejects(AuditLog.open({ path: copy, id: 'agent-a' }), { code: 'storage_copied' })
  await assert.rejects(AuditLog.open({ path: dir, id: 'agent-b' }), { code: 'storage_copied' }, 'another agent id')
  const reopened = await openLog(t, dir, { id: 'agent-a' })
  assert.equal((await recordsOf(reopened)).length, 1)
})

async function until(cond: () => boolean | Promise<boolean>, ms = 5000): Promise<void> {
  const end = Date.now() + ms
  while (!(await cond())) {
    if (Date.now() > end) throw new Error('timed out waiting for replication')
    await new Promise((r) => setTimeout(r, 20))
  }
}

test('members replicate each other, keep replicas across restarts, and serve them after the writer is gone', async (t) => {
  const [da, db, dc] = [await tempDir(t), await tempDir(t), await tempDir(t)]
  const a = await AuditLog.open({ path: da })
  const b = await AuditLog.open({ path: db })
  for (let i = 0; i < 3; i++) await a.append(settle(i, i))
  const unpipe = pipe(a, b)
  const replica = await b.openReplica(a.key)
  await until(() => replica.contiguousLength === a.core.length)
  await a.append(settle(9, 9)) // live: later appends follow
  await until(() => replica.contiguousLength === a.core.length)
  const expected = await recordsOf(a)
  unpipe()
  await a.close()
  await b.close()

  const b2 = await openLog(t, db) // remembers its replica
  assert.equal(b2.cores().length, 2)
  assert.deepEqual(await recordsOf(b2, b2.cores()[1]), expected)
  const c = await openLog(t, dc)
  defer(t, pipe(b2, c))
  const served = await c.openReplica(a.key)
  await until(() => served.contiguousLength === expected.length ? true : (served.update(), false))
  assert.deepEqual(await recordsOf(c, served), expected)
  assert.equal(served.writable, false)
})

test('a flood from one peer writes a bounded number of records', async (t) => {
  const log = await openLog(t, await tempDir(t))
  const limiter = new PeerWriteLimiter({ recordsPerSecond: 50, recordBurst: 100, bytesPerSecond: 1e6, byteBurst: 1e6, summaryIntervalMs: 1000 })
  const flooder = bytes(32, 0xf1)
  const honest = bytes(32, 0x40)
  const envelope = bytes(200, 0xee)
  const writes: Promise<void>[] = []
  let honestAdmitted = 0
  // 20,000 messages from the flooder over 2 simulated seconds, one honest message every 100 ms.
  for (let i = 0; i < 20_000; i++) {
    const now = 1_000_000 + Math.floor(i / 10)
    if (limiter.admit(flooder, envelope.length, now)) writes.push(log.append({ type: 'envelope', time: now, peer: flooder, envelope }, { durable: false }))
    const summary = limiter.summary(flooder, now)
    if (summary !== null) writes.push(log.append(summary, { durable: false }))
    if (i % 1000 === 0 && limiter.admit(honest, envelope.length, now)) {
      honestAdmitted++
      writes.push(log.append({ type: 'envelope', time: now, peer: honest, envelope }, { durable: false }))
    }
  }
  const last = limiter.summary(flooder, 1_002_500) // what is still counted once the interval has passed
  assert.ok(last !== null)
  writes.push(log.append(last, { durable: false }))
  await Promise.all(writes)
  const records = await recordsOf(log)
  const fromFlooder = records.filter((r) => r.type === 'envelope' && Buffer.from(r.peer).equals(Buffer.from(flooder))).length
  const summaries = records.filter((r) => r.type === 'rate_limited')
  assert.ok(fromFlooder <= 100 + 50 * 2 + 1, `flooder wrote ${fromFlooder} records`)
  assert.ok(summaries.length >= 2 && summaries.length <= 4, `${summaries.length} summaries`)
  const dropped = summaries.reduce((s, r) => s + (r.type === 'rate_limited' ? r.dropped : 0), 0)
  assert.equal(dropped + fromFlooder, 20_000, 'every message is either written or counted')
  assert.ok(log.core.byteLength < 64 * 1024, `core grew to ${log.core.byteLength} bytes`)
  assert.equal(honestAdmitted, 20, 'the honest peer keeps its budget')
})

test('a fork made by defeating the copy guard is detected by replication', async (t) => {
  const dir = await tempDir(t)
  const first = await AuditLog.open({ path: dir })
  await first.append(settle(1, 1))
  await first.close()
  const copy = join(dir, '..', `${dir.split('/').pop()}-fork`)
  defer(t, () => rm(copy, { recursive: true, force: true }))
  await cp(dir, copy, { recursive: true })
  await rm(join(copy, 'CORESTORE')) // what an operator must not do
  const original = await openLog(t, dir)
  const forked = await openLog(t, copy)
  assert.deepEqual(forked.key, original.key, 'same key pair: same log identity')
  await original.append(settle(2, 2))
  await forked.append(settle(3, 3)) // a different record at the same position
  await forked.append(settle(4, 4))

  const member = await openLog(t, await tempDir(t))
  defer(t, pipe(original, member))
  const replica = await member.openReplica(original.key)
  await until(() => replica.contiguousLength === 2)
  defer(t, pipe(forked, member))
  await until(() => member.forks.has(Buffer.from(original.key).toString('hex')))
})

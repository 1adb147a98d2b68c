// The mux ledger a restarting agent opens (src/audit/mux-store.ts openMuxLedger): from its snapshot
// plus each core's tail it restores a mux that decides exactly as one restored from every record of
// the own core and the replicas; a snapshot that does not fit (another store, a truncated or forked
// core, another identity key, a damaged file) is refused with its reason and everything is read
// again; a crash while a snapshot is written leaves the previous one.
import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { readFile, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { AuditLog } from '../../src/audit/log.ts'
import type { AuditRecord } from '../../src/audit/records.ts'
import { MUX_SNAPSHOT_FILE, openMuxLedger, toAuditRecord } from '../../src/audit/mux-store.ts'
import { MuxLedger } from '../../src/mux/ledger.ts'
import { encodeRecord } from '../../src/mux/records.ts'
import type { MuxRecord } from '../../src/mux/types.ts'
import { caughtUp, defer, muxRecordsOf, openLog, pipe, tempDir } from './audit-helpers.ts'
import { rng } from './fuzz-kit.ts'
import { behaviour, history, OTHER_KEY, realInvoices, restored, shuffled } from './ledger-fixture.ts'
import { IDENTITY_KEY } from './mux-fixture.ts'

/** One block per record (an idle agent), with a record the mux does not read now and then; returns how many records. */
async function write(log: AuditLog, records: MuxRecord[]): Promise<number> {
  let written = 0
  for (const [i, record] of records.entries()) {
    if (i % 7 === 0) written += await append(log, { type: 'agent_stop', time: record.time, reason: 'noise' })
    written += await append(log, toAuditRecord(record))
  }
  return written
}

async function append(log: AuditLog, record: AuditRecord): Promise<number> {
  await log.append(record, { durable: false })
  return 1
}

/** Two agents' logs, the second's core replicated into the first's store. */
async function twoLogs(t: TestContext): Promise<{ a: AuditLog; b: AuditLog; replicated: () => Promise<void> }> {
  const a = await openLog(t, await tempDir(t))
  const b = await openLog(t, await tempDir(t))
  defer(t, pipe(a, b))
  const replica = await a.openReplica(b.key)
  const replicated = (): Promise<void> => caughtUp(replica, b)
  return { a, b, replicated }
}

const contents = (ledger: MuxLedger): string[] => [...ledger.records()].map(encodeRecord).sort()

test('snapshot plus tails of the own core and a replica: the restored mux decides as one restored from every record', async (t) => {
  const real = realInvoices()
  const records = shuffled([...history(21, 120), ...real.records], rng(22))
  const quarter = Math.floor(records.length / 4)
  const { a, b, replicated } = await twoLogs(t)
  await write(a, records.slice(0, quarter))
  await write(b, records.slice(quarter, 2 * quarter))
  await replicated()
  const running = await openMuxLedger(a, IDENTITY_KEY, { checkpointEvery: Infinity })
  assert.equal(running.stats.snapshot, 'absent')
  await running.checkpoint()
  const tail = (await write(a, records.slice(2 * quarter, 3 * quarter))) + (await write(b, records.slice(3 * quarter)))
  await replicated()

  const all = await muxRecordsOf(a)
  assert.equal(all.length, records.length)
  const reference = restored(all)
  const expected = behaviour(reference.mux, reference.conflicts, records, real.payments)

  const restart = await openMuxLedger(a, IDENTITY_KEY)
  assert.equal(restart.stats.snapshot, 'loaded')
  assert.equal(restart.stats.tailRecords, tail, 'the tails, and only those')
  const fromSnapshot = restored(restart.state.fork())
  assert.deepEqual(behaviour(fromSnapshot.mux, fromSnapshot.conflicts, records, real.payments), expected)

  // The agent kept its ledger current meanwhile: the same state, and what a restart would read.
  await running.catchUp()
  assert.deepEqual(contents(running.state), contents(restart.state))
  const full = await openMuxLedger(a, IDENTITY_KEY, { snapshotPath: join(a.store.storage.path, 'none') })
  assert.deepEqual(contents(full.state), contents(restart.state))
})

test('catchUp writes a snapshot every checkpointEvery records; flush at a clean stop writes one only if blocks were read since', async (t) => {
  const log = await openLog(t, await tempDir(t))
  const path = join(log.store.storage.path, MUX_SNAPSHOT_FILE)
  const records = history(23, 30)
  await write(log, records.slice(0, 10))
  const fold = await openMuxLedger(log, IDENTITY_KEY, { checkpointEvery: 20 })
  await assert.rejects(stat(path), { code: 'ENOENT' })
  await write(log, records.slice(10))
  await fold.catchUp()
  const written = await readFile(path)
  await fold.flush()
  assert.deepEqual(await readFile(path), written, 'nothing read since the last snapshot: not written again')
  await log.append({ type: 'agent_stop', time: 1, reason: 'stop' })
  await fold.flush()
  const last = await openMuxLedger(log, IDENTITY_KEY)
  assert.deepEqual([last.stats.snapshot, last.stats.tailRecords], ['loaded', 0])
  assert.deepEqual(contents(last.state), contents((await openMuxLedger(log, IDENTITY_KEY, { snapshotPath: join(log.store.storage.path, 'none') })).state))
})

test('a snapshot of another store, of a truncated core, under another identity key, or damaged is refused: the ledger is read from every record', async (t) => {
  const { a, b, replicated } = await twoLogs(t)
  const records = history(24, 40)
  await write(a, records.slice(0, 20))
  await write(b, records.slice(20))
  await replicated()
  await (await openMuxLedger(a, IDENTITY_KEY)).checkpoint()
  const snapshot = await readFile(join(a.store.storage.path, MUX_SNAPSHOT_FILE))
  const expected = contents(MuxLedger.of(await muxRecordsOf(a), IDENTITY_KEY))
  const refusedWith = async (log: AuditLog, key: Uint8Array | null, reason: RegExp, snapshotPath?: string): Promise<MuxLedger> => {
    const fold = await openMuxLedger(log, key, snapshotPath === undefined ? {} : { snapshotPath })
    assert.equal(fold.stats.snapshot, 'rejected')
    assert.match(fold.stats.rejected!, reason)
    return fold.state
  }

  // Another agent's snapshot in this store (a copied file).
  await writeFile(join(b.store.storage.path, MUX_SNAPSHOT_FILE), snapshot)
  const other = await refusedWith(b, IDENTITY_KEY, /^snapshot covers core [0-9a-f]{64}, which this store does not hold$/)
  assert.deepEqual(contents(other), contents(MuxLedger.of(await muxRecordsOf(b), IDENTITY_KEY)))

  // Another identity key, or none (the agent is no candidate any more): the verdicts do not hold.
  await refusedWith(a, OTHER_KEY, /^snapshot was made with another identity key or none$/)
  await refusedWith(a, null, /^snapshot was made with an identity key, this agent has none$/)

  // A damaged file; a crash while the next one was written (a torn temporary file) leaves the last.
  const corrupt = Buffer.from(snapshot)
  corrupt[corrupt.length - 40] = corrupt[corrupt.length - 40]! ^ 1
  await writeFile(join(a.store.storage.path, 'corrupt.snapshot'), corrupt)
  assert.deepEqual(contents(await refusedWith(a, IDENTITY_KEY, /^snapshot checksum mismatch$/, join(a.store.storage.path, 'corrupt.snapshot'))), expected)
  await writeFile(join(a.store.storage.path, `${MUX_SNAPSHOT_FILE}.tmp`), snapshot.subarray(0, 1000))
  const afterCrash = await openMuxLedger(a, IDENTITY_KEY)
  assert.equal(afterCrash.stats.snapshot, 'loaded')
  assert.deepEqual(contents(afterCrash.state), expected)

  // The own core truncated under the snapshot, then grown again with another history.
  await a.core.truncate(a.core.length - 5)
  const truncated = await refusedWith(a, IDENTITY_KEY, /^core [0-9a-f]{64} holds \d+ blocks, snapshot covers \d+$/)
  assert.deepEqual(contents(truncated), contents(MuxLedger.of(await muxRecordsOf(a), IDENTITY_KEY)))
  await write(a, history(25, 10))
  const forked = await refusedWith(a, IDENTITY_KEY, /has a different history at length \d+ than the snapshot$/)
  assert.deepEqual(contents(forked), contents(MuxLedger.of(await muxRecordsOf(a), IDENTITY_KEY)))
})

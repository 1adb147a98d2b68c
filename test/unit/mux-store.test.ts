// The record codec and the stores: exact round trips, strict decoding, fsync'd append-only file
// that survives a torn last line and refuses corruption.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { appendFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { decodeRecord, encodeRecord } from '../../src/mux/records.ts'
import { FileMuxStore, MemoryMuxStore, type MuxStore } from '../../src/mux/store.ts'
import { MuxError, type MuxRecord } from '../../src/mux/types.ts'

const bytes = (n: number, fill: number): Buffer => Buffer.alloc(n, fill)
const RECORDS: MuxRecord[] = [
  {
    type: 'settle_requested',
    hash: bytes(32, 1),
    setId: bytes(32, 2),
    paymentAddr: bytes(32, 3),
    amountMsat: (1n << 64n) - 1n,
    htlcs: [
      { circuit: { node: bytes(33, 4), chanId: 123456789012345678n, htlcId: 0n }, amountMsat: 1n },
      { circuit: { node: bytes(33, 5), chanId: 1n, htlcId: 18446744073709551615n }, amountMsat: 2n }
    ],
    time: 1_700_000_000_000
  },
  { type: 'cancelled', hash: bytes(32, 6), time: 0 },
  { type: 'final', hash: bytes(32, 1), setId: bytes(32, 2), status: 'failed', time: 5 }
]

const isBadRecord = (err: unknown) => err instanceof MuxError && err.code === 'bad_record'

async function loadAll(store: MuxStore): Promise<MuxRecord[]> {
  const records: MuxRecord[] = []
  for await (const r of store.load()) records.push(r)
  return records
}

test('records round-trip exactly through their JSON line', () => {
  for (const r of RECORDS) {
    const line = encodeRecord(r)
    assert.ok(!line.includes('\n'))
    assert.deepEqual(decodeRecord(line), r)
  }
})

test('decoding refuses anything but a well-formed record', () => {
  const good = JSON.parse(encodeRecord(RECORDS[0]!)) as Record<string, unknown>
  const variants: unknown[] = [
    { ...good, type: 'settled' },
    { ...good, hash: 'zz'.repeat(32) },
    { ...good, hash: 'AB'.repeat(32) },
    { ...good, setId: '00' },
    { ...good, amountMsat: '18446744073709551616' },
    { ...good, amountMsat: '-1' },
    { ...good, amountMsat: '01' },
    { ...good, amountMsat: 5 },
    { ...good, htlcs: [] },
    { ...good, htlcs: [null] },
    { ...good, time: -1 },
    { ...good, time: '1' },
    { type: 'final', hash: good['hash'], setId: good['setId'], status: 'done', time: 1 },
    null,
    [1]
  ]
  for (const v of variants) assert.throws(() => decodeRecord(JSON.stringify(v)), isBadRecord, JSON.stringify(v))
  assert.throws(() => decodeRecord('{"type":'), isBadRecord)
})

test('MemoryMuxStore keeps records in order', async () => {
  const store = new MemoryMuxStore()
  for (const r of RECORDS) await store.append(r)
  assert.deepEqual(await loadAll(store), RECORDS)
})

test('FileMuxStore: durable appends, reopen, a torn last line cut off, corruption refused', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'mux-store-'))
  t.after(() => rm(dir, { recursive: true, force: true }))
  const path = join(dir, 'records.jsonl')

  let store = await FileMuxStore.open(path)
  await Promise.all(RECORDS.map((r) => store.append(r))) // concurrent appends keep their order
  assert.deepEqual(await loadAll(store), RECORDS)
  await store.close()

  // A crash mid-append leaves a partial line: reopening removes it, appends go on cleanly.
  await appendFile(path, '{"type":"cancelled","ha')
  store = await FileMuxStore.open(path)
  assert.deepEqual(await loadAll(store), RECORDS)
  await store.append(RECORDS[1]!)
  assert.deepEqual(await loadAll(store), [...RECORDS, RECORDS[1]])
  await store.close()
  assert.equal((await readFile(path, 'utf8')).split('\n').length, RECORDS.length + 2)

  // A damaged complete line is corruption, reported with its line number.
  const lines = (await readFile(path, 'utf8')).split('\n')
  lines[1] = lines[1]!.replace('"cancelled"', '"cancelld"')
  await writeFile(path, lines.join('\n'))
  store = await FileMuxStore.open(path)
  t.after(() => store.close())
  await assert.rejects(loadAll(store), (err: unknown) => isBadRecord(err) && /line 2/.test((err as Error).message))
})

// Restoring the virtual node from a ledger (src/mux/ledger.ts) whose bulk is a packed snapshot:
// the machine must decide exactly as one restored from every record. And restore itself follows
// its rules per payment hash, checked against a model written out here.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { MuxLedger } from '../../src/mux/ledger.ts'
import { LedgerBase } from '../../src/mux/ledger-format.ts'
import { MuxMachine } from '../../src/mux/machine.ts'
import { encodeRecord } from '../../src/mux/records.ts'
import { statelessPreimage } from '../../src/ln/stateless.ts'
import { MuxError, type Circuit, type InterceptedHtlc, type MuxOutput, type MuxRecord } from '../../src/mux/types.ts'
import { FakeClock, IDENTITY_KEY, invoice, part } from './mux-fixture.ts'
import { rng } from './fuzz-kit.ts'
import { history, shuffled } from './ledger-fixture.ts'

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex')
const opts = (clock: FakeClock) => ({ identityKey: IDENTITY_KEY, now: clock.now, height: 800_000 })

/** Outputs and errors in a comparable form. */
function plain(value: unknown): unknown {
  return JSON.parse(JSON.stringify(value, (_k, v: unknown) => (typeof v === 'bigint' ? `${v}n` : v instanceof Uint8Array || (v as { type?: string })?.type === 'Buffer' ? hex(Buffer.from(v as Uint8Array)) : v)))
}

function attempt(fn: () => MuxOutput[]): unknown {
  try {
    return plain(fn())
  } catch (err) {
    return err instanceof MuxError ? { error: err.code } : { thrown: String(err) }
  }
}

/**
 * Real invoices among the random records, so that a re-paid invoice gets past the onion checks to
 * the settled or cancelled rule: settled and final, settled awaiting its final status, cancelled.
 */
function realInvoices(): { records: MuxRecord[]; payments: InterceptedHtlc[] } {
  const records: MuxRecord[] = []
  const payments: InterceptedHtlc[] = []
  for (let i = 0; i < 6; i++) {
    const inv = invoice(50_000n)
    const paid = part(inv, { htlcId: 9000n + BigInt(i), amountMsat: 50_000n }).htlc
    const settle: MuxRecord = {
      type: 'settle_requested', hash: inv.paymentHash, setId: createHash('sha256').update(inv.paymentAddr).digest(),
      paymentAddr: inv.paymentAddr, amountMsat: 50_000n, htlcs: [{ circuit: paid.circuit, amountMsat: 50_000n }], time: 1_200 + i
    }
    if (i % 3 === 0) records.push(settle, { type: 'final', hash: inv.paymentHash, setId: settle.setId, status: 'settled', time: 1_300 })
    else if (i % 3 === 1) records.push(settle)
    else records.push({ type: 'cancelled', hash: inv.paymentHash, time: 1_250 })
    payments.push(paid, part(inv, { htlcId: 9100n + BigInt(i), amountMsat: 50_000n }).htlc)
  }
  return { records, payments }
}

const circuitKey = (c: Circuit): string => `${hex(c.node)}:${c.chanId}:${c.htlcId}`

/** A re-offered HTLC of every circuit some settle record names (the edges re-forward what lnd still holds). */
function reoffers(records: MuxRecord[], template: InterceptedHtlc): InterceptedHtlc[] {
  return records.flatMap((r) => (r.type === 'settle_requested' ? r.htlcs.map((h) => ({ ...template, circuit: h.circuit, paymentHash: r.hash })) : []))
}

/** Everything the machine tells or decides about `records`, given the inputs a restarted leader meets. */
function behaviour(mux: MuxMachine, conflicts: MuxRecord[], records: MuxRecord[], payments: InterceptedHtlc[]): unknown {
  const hashes = [...new Set(records.map((r) => hex(r.hash)))].sort()
  const settleIds = new Map(records.filter((r) => r.type === 'settle_requested').map((r) => [hex(r.hash), r.setId] as const))
  // Which order lnd's answers come in is lnd's business: the same order for both machines.
  const pending = mux.pendingResolutions().sort((a, b) => circuitKey(a).localeCompare(circuitKey(b)))
  return plain({
    conflicts: conflicts.map(encodeRecord).sort(),
    settlements: mux.settlements(1n, 100_000),
    statuses: hashes.map((h) => mux.status(Buffer.from(h, 'hex'))),
    pending: pending.map(circuitKey),
    replays: [...reoffers(records, payments[0]!), ...payments].map((h) => attempt(() => mux.htlc(h))),
    resolved: pending.map((c, i) => attempt(() => mux.htlcResolved(c, i % 4 !== 0))),
    settles: hashes.map((h) => attempt(() => mux.settle(Buffer.from(h, 'hex'), settleIds.get(h) ?? new Uint8Array(32)))),
    cancels: hashes.map((h) => attempt(() => mux.cancel(Buffer.from(h, 'hex')))),
    after: mux.settlements(1n, 100_000)
  })
}

function restored(ledger: MuxLedger | MuxRecord[]): { mux: MuxMachine; conflicts: MuxRecord[] } {
  const conflicts: MuxRecord[] = []
  const mux = MuxMachine.restore(opts(new FakeClock()), ledger, (record) => conflicts.push(record))
  return { mux, conflicts }
}

test('a mux restored from a packed snapshot plus the later records decides exactly as one restored from every record', () => {
  const real = realInvoices()
  for (const seed of [1, 2, 3]) {
    const random = rng(seed)
    const records = shuffled([...history(seed, 120, IDENTITY_KEY), ...real.records], random)
    const reference = restored(records)
    const expected = behaviour(reference.mux, reference.conflicts, records, real.payments)
    for (const split of [0, random.int(1, records.length), records.length]) {
      const snapshot = LedgerBase.decode(Buffer.concat([...MuxLedger.of(records.slice(0, split), IDENTITY_KEY).encode(16)]))
      const ledger = new MuxLedger(IDENTITY_KEY, snapshot)
      for (const record of records.slice(split)) ledger.add(record)
      const fromSnapshot = restored(ledger)
      assert.deepEqual(behaviour(fromSnapshot.mux, fromSnapshot.conflicts, records, real.payments), expected, `seed ${seed}, snapshot of ${split} of ${records.length} records`)
    }
  }
})

test('restore applies, per payment hash, the earliest record of each type: settle, then final, then cancel; settlements numbered by request time', () => {
  const records = shuffled(history(9, 200, IDENTITY_KEY), rng(10))
  const { mux, conflicts } = restored(records)
  // The model: per hash and type the earliest record (then the smaller encoding) counts.
  const earliest = new Map<string, MuxRecord>()
  for (const r of records) {
    const key = `${r.type}:${hex(r.hash)}`
    const held = earliest.get(key)
    if (held === undefined || r.time < held.time || (r.time === held.time && encodeRecord(r) < encodeRecord(held))) earliest.set(key, r)
  }
  const of = <T extends MuxRecord['type']>(type: T, h: string) => earliest.get(`${type}:${h}`) as Extract<MuxRecord, { type: T }> | undefined
  const expectedConflicts: MuxRecord[] = []
  const settled: Extract<MuxRecord, { type: 'settle_requested' }>[] = []
  for (const h of new Set(records.map((r) => hex(r.hash)))) {
    const settle = of('settle_requested', h)
    const final = of('final', h)
    const cancel = of('cancelled', h)
    const redeems = settle !== undefined && createHash('sha256').update(statelessPreimage(IDENTITY_KEY, settle.paymentAddr)).digest().equals(settle.hash)
    if (settle !== undefined && !redeems) expectedConflicts.push(settle)
    if (final !== undefined && !(redeems && Buffer.compare(final.setId, settle!.setId) === 0)) expectedConflicts.push(final)
    if (cancel !== undefined && redeems) expectedConflicts.push(cancel)
    const hash = Buffer.from(h, 'hex')
    const finalApplies = redeems && final !== undefined && Buffer.compare(final.setId, settle!.setId) === 0
    const status = redeems ? (finalApplies ? final!.status : 'settle_requested') : cancel !== undefined ? 'cancelled' : 'open'
    assert.equal(mux.status(hash), status, h)
    if (redeems) settled.push(settle!)
  }
  assert.deepEqual(conflicts.map(encodeRecord).sort(), expectedConflicts.map(encodeRecord).sort())
  settled.sort((a, b) => a.time - b.time || Buffer.compare(a.hash, b.hash))
  assert.deepEqual(mux.settlements(1n, 10_000).map((s) => [s.sequence, hex(s.hash), s.requestedAt]), settled.map((s, i) => [BigInt(i + 1), hex(s.hash), s.time]))
  // Paging: from a sequence number, at most max.
  assert.deepEqual(mux.settlements(5n, 3).map((s) => s.sequence), [5n, 6n, 7n])
})

// Restarting the virtual node: the machine is rebuilt from its durable records (in the agent's real
// audit store on disk) and HTLCs that lnd still holds, re-offered by the edges, reach the same decisions.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { MuxMachine } from '../../src/mux/machine.ts'
import { AuditLog } from '../../src/audit/log.ts'
import { openMuxLedger, toAuditRecord } from '../../src/audit/mux-store.ts'
import { MuxLedger } from '../../src/mux/ledger.ts'
import { MuxError, type MuxOutput, type MuxRecord } from '../../src/mux/types.ts'
import { muxRecordsOf } from './audit-helpers.ts'
import { FakeClock, IDENTITY_KEY, atOrigin, decisions, invoice, machine, only, part } from './mux-fixture.ts'
import { FailureCode } from '../../src/ln/failure.ts'

const AMOUNT = 80_000_000n

/** The driver's job: append every persist output durably, then confirm it to the machine. */
async function persist(mux: MuxMachine, log: AuditLog, outputs: MuxOutput[]): Promise<MuxOutput[]> {
  const out: MuxOutput[] = []
  for (const o of outputs) {
    out.push(o)
    if (o.kind === 'persist') {
      await log.append(toAuditRecord(o.record), { durable: true })
      out.push(...(await persist(mux, log, mux.recordPersisted(o.record))))
    }
  }
  return out
}

test('restart with held HTLCs: settled sets settle again, accepted sets re-form with the same id, cancels hold', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'mux-restart-'))
  const path = join(dir, 'audit')
  const clock = new FakeClock()
  let log = await AuditLog.open({ path })
  // The store closes before its folder goes: closing flushes into it.
  t.after(async () => {
    await log.close()
    await rm(dir, { recursive: true, force: true })
  })
  let mux = machine(clock)

  // Invoice 1: two parts through two nodes, settled; the edges have not applied the decisions yet.
  const paid = invoice(AMOUNT)
  const p1 = part(paid, { node: 0, htlcId: 1n, amountMsat: 30_000_000n })
  const p2 = part(paid, { node: 1, htlcId: 1n, amountMsat: 50_000_000n })
  mux.htlc(p1.htlc)
  const { setId } = only(mux.htlc(p2.htlc), 'accepted')
  assert.equal(decisions(await persist(mux, log, mux.settle(paid.paymentHash, setId))).length, 2)
  // Invoice 2: accepted, the application has not settled it yet.
  const waiting = invoice(AMOUNT)
  const w = part(waiting, { node: 1, htlcId: 2n, amountMsat: AMOUNT })
  const before = only(mux.htlc(w.htlc), 'accepted')
  // Invoice 3: settle requested, but the agent dies before the record is durable.
  const torn = invoice(AMOUNT)
  const t1 = part(torn, { htlcId: 3n, amountMsat: AMOUNT })
  const tornSet = only(mux.htlc(t1.htlc), 'accepted')
  only(mux.settle(torn.paymentHash, tornSet.setId), 'persist') // never appended
  // Invoice 4: cancelled.
  const cancelled = invoice(AMOUNT)
  await persist(mux, log, mux.cancel(cancelled.paymentHash))
  await log.close()

  // The agent restarts: a new machine from the log's mux ledger, as Agent.start builds it.
  log = await AuditLog.open({ path })
  mux = MuxMachine.restore({ identityKey: IDENTITY_KEY, now: clock.now }, (await openMuxLedger(log, IDENTITY_KEY)).state)
  assert.equal(mux.status(paid.paymentHash), 'settle_requested')
  assert.equal(mux.status(waiting.paymentHash), undefined)
  assert.equal(mux.pendingResolutions().length, 2)

  for (const p of [p2, p1]) assert.deepEqual(only(mux.htlc(p.htlc), 'decision').decision, { action: 'settle', preimage: paid.preimage })
  const again = only(mux.htlc(w.htlc), 'accepted')
  assert.deepEqual(again.setId, before.setId)
  assert.equal(decisions(await persist(mux, log, mux.settle(waiting.paymentHash, again.setId))).length, 1)
  // Nothing was revealed for invoice 3 before the crash; it is simply accepted again.
  assert.deepEqual(only(mux.htlc(t1.htlc), 'accepted').setId, tornSet.setId)
  const late = part(cancelled, { htlcId: 4n, amountMsat: AMOUNT })
  const refused = only(mux.htlc(late.htlc), 'decision')
  assert.equal(refused.reason, 'invoice_cancelled')
  assert.equal(atOrigin(late, refused.decision).message.code, FailureCode.INCORRECT_OR_UNKNOWN_PAYMENT_DETAILS)

  // Final resolutions after the restart (LookupHtlcResolution) close invoice 1 for good.
  const resolved: MuxOutput[] = []
  for (const c of mux.pendingResolutions().filter((c) => c.htlcId === 1n)) resolved.push(...(await persist(mux, log, mux.htlcResolved(c, true))))
  assert.deepEqual(only(resolved, 'final'), { kind: 'final', hash: paid.paymentHash, setId, status: 'settled' })
  const records = await muxRecordsOf(log)
  assert.deepEqual(
    records.map((r) => r.type),
    ['settle_requested', 'cancelled', 'settle_requested', 'final']
  )
  const third = MuxMachine.restore({ identityKey: IDENTITY_KEY, now: clock.now }, records)
  assert.equal(third.status(paid.paymentHash), 'settled')
  assert.equal(third.status(waiting.paymentHash), 'settle_requested')
  assert.deepEqual(only(third.htlc(p1.htlc), 'decision').decision, { action: 'settle', preimage: paid.preimage })
})

test('restore: duplicate records (several replicated cores) are idempotent; of two different ones the earlier is kept; contradictions are refused', () => {
  const clock = new FakeClock()
  const mux = machine(clock)
  const inv = invoice(AMOUNT)
  const { setId } = only(mux.htlc(part(inv, { htlcId: 1n, amountMsat: AMOUNT }).htlc), 'accepted')
  const { record } = only(mux.settle(inv.paymentHash, setId), 'persist')
  const opts = { identityKey: IDENTITY_KEY, now: clock.now }
  assert.equal(MuxMachine.restore(opts, [record, record]).status(inv.paymentHash), 'settle_requested')

  // A split brain wrote two sets, or two final statuses, for one invoice: every member keeps the
  // earlier record (src/mux/ledger.ts), whatever order it read them in.
  const later = { ...record, setId: new Uint8Array(32), time: record.time + 1 } as MuxRecord
  for (const records of [[record, later], [later, record]]) {
    const restored = MuxMachine.restore(opts, records)
    assert.deepEqual(restored.settle(inv.paymentHash, setId), [])
    assert.throws(() => restored.settle(inv.paymentHash, new Uint8Array(32)), (e: unknown) => e instanceof MuxError && e.code === 'set_id_mismatch')
  }
  const settled: MuxRecord = { type: 'final', hash: inv.paymentHash, setId, status: 'settled', time: 1 }
  const failed: MuxRecord = { type: 'final', hash: inv.paymentHash, setId, status: 'failed', time: 2 }
  assert.equal(MuxMachine.restore(opts, [record, failed, settled]).status(inv.paymentHash), 'settled')

  const bad = (records: MuxRecord[]) => assert.throws(() => MuxMachine.restore(opts, records), (e: unknown) => e instanceof MuxError && e.code === 'bad_record')
  const cancel: MuxRecord = { type: 'cancelled', term: 0, hash: inv.paymentHash, time: 1 }
  bad([record, cancel])
  bad([cancel, record])
  bad([settled])
  bad([record, { ...settled, setId: new Uint8Array(32) }])
  // Records another identity key wrote cannot be redeemed: refused rather than settling garbage.
  assert.throws(
    () => MuxMachine.restore({ identityKey: Buffer.alloc(32, 0x33), now: clock.now }, [record]),
    (e: unknown) => e instanceof MuxError && e.code === 'bad_record'
  )
  // A ledger verified with one key cannot restore a machine with another.
  assert.throws(
    () => MuxMachine.restore({ identityKey: Buffer.alloc(32, 0x33), now: clock.now }, MuxLedger.of([record], IDENTITY_KEY)),
    (e: unknown) => e instanceof MuxError && e.code === 'bad_input'
  )
})

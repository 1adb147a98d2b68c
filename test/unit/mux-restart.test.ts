// Restarting the virtual node: the machine is rebuilt from its durable records (in the agent's real
// audit store on disk) and HTLCs that lnd still holds, re-offered by the edges, reach the same decisions.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { MuxMachine } from '../../src/mux/machine.ts'
import type { MuxStore } from '../../src/mux/store.ts'
import { AuditLog } from '../../src/audit/log.ts'
import { AuditMuxStore } from '../../src/audit/mux-store.ts'
import { MuxError, type MuxOutput, type MuxRecord } from '../../src/mux/types.ts'
import { FakeClock, IDENTITY_KEY, atOrigin, decisions, invoice, machine, only, part } from './mux-fixture.ts'
import { FailureCode } from '../../src/ln/failure.ts'

const AMOUNT = 80_000_000n

async function loadAll(store: MuxStore): Promise<MuxRecord[]> {
  const records: MuxRecord[] = []
  for await (const r of store.load()) records.push(r)
  return records
}

/** The driver's job: append every persist output, then confirm it to the machine. */
async function persist(mux: MuxMachine, store: MuxStore, outputs: MuxOutput[]): Promise<MuxOutput[]> {
  const out: MuxOutput[] = []
  for (const o of outputs) {
    out.push(o)
    if (o.kind === 'persist') {
      await store.append(o.record)
      out.push(...(await persist(mux, store, mux.recordPersisted(o.record))))
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
  let store: MuxStore = new AuditMuxStore(log)
  let mux = machine(clock)

  // Invoice 1: two parts through two nodes, settled; the edges have not applied the decisions yet.
  const paid = invoice(AMOUNT)
  const p1 = part(paid, { node: 0, htlcId: 1n, amountMsat: 30_000_000n })
  const p2 = part(paid, { node: 1, htlcId: 1n, amountMsat: 50_000_000n })
  mux.htlc(p1.htlc)
  const { setId } = only(mux.htlc(p2.htlc), 'accepted')
  assert.equal(decisions(await persist(mux, store, mux.settle(paid.paymentHash, setId))).length, 2)
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
  await persist(mux, store, mux.cancel(cancelled.paymentHash))
  await log.close()

  // The agent restarts: a new machine from the store's records.
  log = await AuditLog.open({ path })
  store = new AuditMuxStore(log)
  mux = MuxMachine.restore({ identityKey: IDENTITY_KEY, now: clock.now }, await loadAll(store))
  assert.equal(mux.status(paid.paymentHash), 'settle_requested')
  assert.equal(mux.status(waiting.paymentHash), undefined)
  assert.equal(mux.pendingResolutions().length, 2)

  for (const p of [p2, p1]) assert.deepEqual(only(mux.htlc(p.htlc), 'decision').decision, { action: 'settle', preimage: paid.preimage })
  const again = only(mux.htlc(w.htlc), 'accepted')
  assert.deepEqual(again.setId, before.setId)
  assert.equal(decisions(await persist(mux, store, mux.settle(waiting.paymentHash, again.setId))).length, 1)
  // Nothing was revealed for invoice 3 before the crash; it is simply accepted again.
  assert.deepEqual(only(mux.htlc(t1.htlc), 'accepted').setId, tornSet.setId)
  const late = part(cancelled, { htlcId: 4n, amountMsat: AMOUNT })
  const refused = only(mux.htlc(late.htlc), 'decision')
  assert.equal(refused.reason, 'invoice_cancelled')
  assert.equal(atOrigin(late, refused.decision).message.code, FailureCode.INCORRECT_OR_UNKNOWN_PAYMENT_DETAILS)

  // Final resolutions after the restart (LookupHtlcResolution) close invoice 1 for good.
  const resolved: MuxOutput[] = []
  for (const c of mux.pendingResolutions().filter((c) => c.htlcId === 1n)) resolved.push(...(await persist(mux, store, mux.htlcResolved(c, true))))
  assert.deepEqual(only(resolved, 'final'), { kind: 'final', hash: paid.paymentHash, setId, status: 'settled' })
  const records = await loadAll(store)
  assert.deepEqual(
    records.map((r) => r.type),
    ['settle_requested', 'cancelled', 'settle_requested', 'final']
  )
  const third = MuxMachine.restore({ identityKey: IDENTITY_KEY, now: clock.now }, records)
  assert.equal(third.status(paid.paymentHash), 'settled')
  assert.equal(third.status(waiting.paymentHash), 'settle_requested')
  assert.deepEqual(only(third.htlc(p1.htlc), 'decision').decision, { action: 'settle', preimage: paid.preimage })
})

test('restore: duplicate records (several replicated cores) are idempotent; contradictions are refused', () => {
  const clock = new FakeClock()
  const mux = machine(clock)
  const inv = invoice(AMOUNT)
  const { setId } = only(mux.htlc(part(inv, { htlcId: 1n, amountMsat: AMOUNT }).htlc), 'accepted')
  const { record } = only(mux.settle(inv.paymentHash, setId), 'persist')
  const opts = { identityKey: IDENTITY_KEY, now: clock.now }
  assert.equal(MuxMachine.restore(opts, [record, record]).status(inv.paymentHash), 'settle_requested')

  const bad = (records: MuxRecord[]) => assert.throws(() => MuxMachine.restore(opts, records), (e: unknown) => e instanceof MuxError && e.code === 'bad_record')
  const cancel: MuxRecord = { type: 'cancelled', term: 0, hash: inv.paymentHash, time: 1 }
  bad([record, cancel])
  bad([cancel, record])
  bad([record, { ...record, setId: new Uint8Array(32) } as MuxRecord])
  bad([{ type: 'final', hash: inv.paymentHash, setId, status: 'settled', time: 1 }])
  bad([record, { type: 'final', hash: inv.paymentHash, setId, status: 'settled', time: 1 }, { type: 'final', hash: inv.paymentHash, setId, status: 'failed', time: 2 }])
  // Records another identity key wrote cannot be redeemed: refused rather than settling garbage.
  assert.throws(
    () => MuxMachine.restore({ identityKey: Buffer.alloc(32, 0x33), now: clock.now }, [record]),
    (e: unknown) => e instanceof MuxError && e.code === 'bad_record'
  )
})

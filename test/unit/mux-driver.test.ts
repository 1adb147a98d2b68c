// The driver keeps the write-ahead rule with a real store: no preimage before the append resolves,
// none at all when it fails.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { MuxDriver } from '../../src/mux/driver.ts'
import { MemoryMuxStore } from '../../src/mux/store.ts'
import type { MuxOutput, MuxRecord } from '../../src/mux/types.ts'
import { FakeClock, HEIGHT, IDENTITY_KEY, invoice, part } from './mux-fixture.ts'

const AMOUNT = 20_000_000n

/** A store whose appends wait for the test to release them, or fail. */
class GatedStore extends MemoryMuxStore {
  release: (() => void) | undefined
  fail = false
  override append(record: MuxRecord): Promise<void> {
    if (this.fail) return Promise.reject(new Error('disk full'))
    return new Promise((resolve) => {
      this.release = () => resolve(super.append(record))
    })
  }
}

test('settle resolves only after the record is durable, and the preimage follows it', async () => {
  const store = new GatedStore()
  const outputs: MuxOutput[] = []
  const driver = await MuxDriver.open({ identityKey: IDENTITY_KEY, now: new FakeClock().now, height: HEIGHT, store, onOutput: (o) => outputs.push(o) })
  const inv = invoice(AMOUNT)
  const p = part(inv, { htlcId: 1n, amountMsat: AMOUNT })
  await driver.htlc(p.htlc)
  const accepted = outputs.find((o) => o.kind === 'accepted')
  assert.ok(accepted?.kind === 'accepted')

  let done = false
  const settling = driver.settle(inv.paymentHash, accepted.setId).then(() => (done = true))
  await new Promise((r) => setImmediate(r))
  assert.equal(done, false)
  assert.equal(outputs.some((o) => o.kind === 'decision'), false)
  store.release!()
  await settling
  assert.deepEqual(store.records.map((r) => r.type), ['settle_requested'])
  const decision = outputs.find((o) => o.kind === 'decision')
  assert.deepEqual(decision?.kind === 'decision' && decision.decision, { action: 'settle', preimage: inv.preimage })
})

test('a failed append rejects the settle, reveals nothing, and leaves the set accepted', async () => {
  const store = new GatedStore()
  store.fail = true
  const outputs: MuxOutput[] = []
  const driver = await MuxDriver.open({ identityKey: IDENTITY_KEY, now: new FakeClock().now, height: HEIGHT, store, onOutput: (o) => outputs.push(o) })
  const inv = invoice(AMOUNT)
  await driver.htlc(part(inv, { htlcId: 1n, amountMsat: AMOUNT }).htlc)
  const accepted = outputs.find((o) => o.kind === 'accepted')
  assert.ok(accepted?.kind === 'accepted')
  await assert.rejects(driver.settle(inv.paymentHash, accepted.setId), /disk full/)
  assert.equal(outputs.some((o) => o.kind === 'decision'), false)
  assert.equal(driver.machine.status(inv.paymentHash), 'accepted')
})

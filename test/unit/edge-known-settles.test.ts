// Invariant 1 without a leader: an edge about to fail a part for want of a decision first reads the
// audit cores (its own and its replicas, on real Hypercores) for a settle decision that reached any
// edge, and settles with its preimage.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { encodeEnvelope, type AgentKeyPair } from '../../src/cluster/envelope.ts'
import type { Message } from '../../src/cluster/messages.ts'
import { Edge } from '../../src/edge/edge.ts'
import { heldHtlc, NODE } from './edge-fixture.ts'
import { SettleScanner, settlePreimages } from '../../src/edge/known-settles.ts'
import type { AuditLog } from '../../src/audit/log.ts'
import { openLog, replicateCore, tempDir } from './audit-helpers.ts'
import { newAgentKeyPair } from './key-fixture.ts'

const MARGIN = 2

function payment(): { preimage: Buffer; hash: Buffer } {
  const preimage = randomBytes(32)
  return { preimage, hash: createHash('sha256').update(preimage).digest() }
}

function decision(preimage: Uint8Array, htlcId: bigint): Message {
  return { type: 'htlc-decision', term: 4, circuit: { node: Buffer.from(NODE, 'hex'), chanId: 3n, htlcId }, resolution: { kind: 'settle', preimage }, uncommittedRecord: null }
}

/** `log` stores, as received from `leader`, one envelope carrying `messages` (batched if several). */
async function received(log: AuditLog, leader: AgentKeyPair, seq: number, messages: Message[]): Promise<void> {
  const message = messages.length === 1 ? messages[0]! : { type: 'batch' as const, messages }
  await log.append({ type: 'envelope', time: Date.now(), peer: leader.publicKey, envelope: encodeEnvelope(leader, seq, Date.now(), message) })
}

test('settlePreimages reads the settle decisions of envelope records, batched or not, and skips what it cannot decode', () => {
  const leader = newAgentKeyPair()
  const [a, b] = [payment(), payment()]
  const fail: Message = { type: 'htlc-decision', term: 4, circuit: { node: Buffer.from(NODE, 'hex'), chanId: 3n, htlcId: 9n }, resolution: { kind: 'fail-code', code: 'TEMPORARY_CHANNEL_FAILURE' }, uncommittedRecord: null }
  const found = settlePreimages([
    { type: 'envelope', time: 1, peer: leader.publicKey, envelope: encodeEnvelope(leader, 1, 1, decision(a.preimage, 1n)) },
    { type: 'envelope', time: 2, peer: leader.publicKey, envelope: randomBytes(80) },
    { type: 'envelope', time: 3, peer: leader.publicKey, envelope: encodeEnvelope(leader, 2, 3, { type: 'batch', messages: [fail, decision(b.preimage, 2n)] }) }
  ])
  assert.deepEqual(found.map((p) => Buffer.from(p).toString('hex')), [a, b].map((p) => p.preimage.toString('hex')))
})

test("without a leader, an edge settles a part at its deadline with a preimage another edge received, read from that edge's replicated core", async (t) => {
  const leader = newAgentKeyPair()
  const other = await openLog(t, await tempDir(t)) // the edge the leader's settle decision reached
  const self = await openLog(t, await tempDir(t))
  const paid = payment()
  const unpaid = payment()
  await received(other, leader, 1, [decision(paid.preimage, 1n)])

  const edge = new Edge({ self: 'me', deadlineMarginBlocks: MARGIN })
  edge.offer(heldHtlc(1n, paid.hash))
  edge.offer(heldHtlc(2n, unpaid.hash))
  assert.equal(edge.settleScanDue(277), false, 'two blocks before the deadline: nothing to look for yet')
  assert.equal(edge.settleScanDue(278), true)

  await replicateCore(self, other)
  const scanner = new SettleScanner()
  let seen = 0
  const learn = (preimage: Uint8Array): void => {
    seen++
    edge.settleKnown(preimage)
  }
  await scanner.scan(self.cores(), learn)
  assert.equal(seen, 1)
  assert.equal(edge.settleScanDue(278), true, 'the unpaid part still has no settle')

  const actions = edge.height(281 - MARGIN)
  const byHtlc = new Map(actions.map((a) => [a.type === 'record' ? a.id.split(':').pop() : '', a]))
  const settled = byHtlc.get('1')
  assert.ok(settled?.type === 'record' && settled.decision.action === 'settle' && Buffer.from(settled.decision.preimage).equals(paid.preimage))
  const failed = byHtlc.get('2')
  assert.ok(failed?.type === 'record' && failed.decision.action === 'fail', 'a part nobody settled is failed in time')

  // The next scan reads only blocks appended since.
  await scanner.scan(self.cores(), learn)
  assert.equal(seen, 1)
  const later = payment()
  await received(other, leader, 2, [decision(later.preimage, 3n)])
  await replicateCore(self, other)
  await scanner.scan(self.cores(), learn)
  assert.equal(seen, 2)
})

test('a settle preimage is kept only while an HTLC of its hash is held', () => {
  const paid = payment()
  const edge = new Edge({ self: 'me', deadlineMarginBlocks: MARGIN })
  edge.settleKnown(paid.preimage) // nothing held yet: not kept
  edge.offer(heldHtlc(1n, paid.hash))
  assert.deepEqual(edge.height(279).map((a) => a.type === 'record' && a.decision.action), ['fail'])

  const again = new Edge({ self: 'me', deadlineMarginBlocks: MARGIN })
  again.offer(heldHtlc(1n, paid.hash))
  again.settleKnown(paid.preimage)
  assert.equal(again.settleScanDue(278), false, 'a settle is known for every undecided part')
  again.resolved(`${NODE}/123:1`)
  again.offer(heldHtlc(2n, paid.hash))
  assert.equal(again.settleScanDue(278), true, 'forgotten once no HTLC of the hash was held')
})

test('an HTLC replayed to an agent that was down: rewind reads its older settle decision, even with a scan running', async (t) => {
  const leader = newAgentKeyPair()
  const log = await openLog(t, await tempDir(t))
  const [early, replayed] = [payment(), payment()]
  await received(log, leader, 1, [decision(replayed.preimage, 1n)])
  await received(log, leader, 2, [decision(early.preimage, 2n)])

  const edge = new Edge({ self: 'me', deadlineMarginBlocks: MARGIN })
  const scanner = new SettleScanner()
  const learn = (preimage: Uint8Array): void => edge.settleKnown(preimage)
  edge.offer(heldHtlc(2n, early.hash))
  await scanner.scan(log.cores(), learn) // reads both blocks; `replayed` is not held yet

  const overdue = heldHtlc(1n, replayed.hash, { autoFailHeight: 281 })
  edge.offer(overdue)
  await scanner.scan(log.cores(), learn)
  assert.equal(edge.settleScanDue(279), true, 'a plain scan starts after the blocks already read')

  const running = scanner.scan(log.cores(), learn)
  scanner.rewind() // during a scan: it makes one more pass, from the first block
  await running
  assert.equal(edge.settleScanDue(279), false)
  const actions = edge.height(279)
  assert.ok(actions.every((a) => a.type === 'record' && a.decision.action === 'settle'))
  assert.equal(actions.length, 2)

  const fresh = new Edge({ self: 'me', deadlineMarginBlocks: MARGIN })
  fresh.offer(overdue)
  scanner.rewind() // no scan running: the next one starts from the first block
  await scanner.scan(log.cores(), (preimage) => fresh.settleKnown(preimage))
  assert.deepEqual(fresh.height(279).map((a) => a.type === 'record' && a.decision.action), ['settle'])
})

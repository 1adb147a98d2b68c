// The edge state machine: forwarding by term, fencing, write-ahead, deadlines, replays.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { Edge, edgeHtlcId, type EdgeAction, type EdgeHtlc } from '../../src/edge/edge.ts'
import { heldHtlc } from './edge-fixture.ts'

const preimage = randomBytes(32)
const paymentHash = createHash('sha256').update(preimage).digest()

function htlc(htlcId: bigint, overrides: Partial<EdgeHtlc> = {}): EdgeHtlc {
  return heldHtlc(htlcId, paymentHash, overrides)
}

const types = (actions: EdgeAction[]): string[] => actions.map((a) => a.type)

test('HTLCs are held without a leader and forwarded to the leader of the current term', () => {
  const edge = new Edge({ self: 'me', deadlineMarginBlocks: 2 })
  assert.deepEqual(edge.offer(htlc(1n)), [])
  const forwarded = edge.leaderChanged(3, 'L')
  assert.deepEqual(forwarded.map((a) => a.type === 'forward' && [a.to, a.term]), [['L', 3]])
  const direct = edge.offer(htlc(2n))
  assert.equal(direct.length, 1)
  assert.ok(direct[0]!.type === 'forward' && direct[0]!.to === 'L' && direct[0]!.term === 3)
  // The same leader announced again forwards nothing twice.
  assert.deepEqual(edge.leaderChanged(3, 'L'), [])
})

test('a decision is recorded before it is applied, and applied once', () => {
  const edge = new Edge({ self: 'me', deadlineMarginBlocks: 2 })
  edge.leaderChanged(1, 'L')
  edge.offer(htlc(1n))
  const id = edgeHtlcId(htlc(1n))
  const taken = edge.decide('L', 1, id, { action: 'settle', preimage })
  assert.deepEqual(types(taken), ['record'])
  assert.deepEqual(edge.decide('L', 1, id, { action: 'settle', preimage }), [], 'a duplicate decision is ignored')
  const applied = edge.recorded(id)
  assert.deepEqual(types(applied), ['resolve'])
  assert.deepEqual(edge.recorded(id), [])
  // lnd re-offers it after a reconnect: the same decision goes out again, nothing new is recorded.
  assert.deepEqual(types(edge.offer(htlc(1n))), ['resolve'])
  edge.resolved(id)
  assert.equal(edge.held, 0)
})

test('fencing: only the leader of the term the HTLC was forwarded to may decide it', () => {
  const edge = new Edge({ self: 'me', deadlineMarginBlocks: 2 })
  edge.leaderChanged(1, 'L1')
  edge.offer(htlc(1n))
  const id = edgeHtlcId(htlc(1n))
  edge.leaderChanged(2, 'L2') // re-forwarded to the new leader
  const stale = edge.decide('L1', 1, id, { action: 'fail', failureCode: 'TEMPORARY_CHANNEL_FAILURE' })
  assert.deepEqual(stale, [{ type: 'reject', id, from: 'L1', term: 1, reason: 'wrong_term' }])
  const impostor = edge.decide('X', 2, id, { action: 'settle', preimage })
  assert.equal(impostor[0]!.type === 'reject' && impostor[0]!.reason, 'not_the_leader')
  assert.equal(edge.decide('L2', 2, 'nope', { action: 'settle', preimage })[0]!.type, 'reject')
  // Older terms never move the edge back.
  assert.deepEqual(edge.leaderChanged(1, 'L1'), [])
  assert.deepEqual(types(edge.decide('L2', 2, id, { action: 'settle', preimage })), ['record'])
})

test('a settle whose preimage does not match the hash is refused; a conflicting decision too', () => {
  const edge = new Edge({ self: 'me', deadlineMarginBlocks: 2 })
  edge.leaderChanged(1, 'L')
  edge.offer(htlc(1n))
  const id = edgeHtlcId(htlc(1n))
  const bad = edge.decide('L', 1, id, { action: 'settle', preimage: randomBytes(32) })
  assert.equal(bad[0]!.type === 'reject' && bad[0]!.reason, 'bad_preimage')
  edge.decide('L', 1, id, { action: 'settle', preimage })
  const conflict = edge.decide('L', 1, id, { action: 'fail', failureCode: 'TEMPORARY_CHANNEL_FAILURE' })
  assert.equal(conflict[0]!.type === 'reject' && conflict[0]!.reason, 'conflicting_decision')
})

test('bounded holding: without a decision, a temporary failure a margin before auto_fail_height', () => {
  const edge = new Edge({ self: 'me', deadlineMarginBlocks: 2 })
  edge.offer(htlc(1n))
  assert.deepEqual(edge.height(278), [])
  const failed = edge.height(279)
  assert.equal(failed.length, 1)
  assert.ok(failed[0]!.type === 'record' && failed[0]!.from === 'me' && failed[0]!.decision.action === 'fail')
  // One offered already past its margin (lnd replays it to an agent that was down) waits for the
  // driver's deadline check, which comes once the audit cores were read for its settle.
  const overdue = htlc(2n, { autoFailHeight: 201 })
  assert.deepEqual(edge.offer(overdue), [])
  assert.equal(edge.nearDeadline(overdue, 200), true)
  assert.equal(edge.settleScanDue(200), true)
  assert.deepEqual(types(edge.height(200)), ['record'])
})

test('at the deadline a settle seen in any audit core wins over failing; on chain only settle is sent', () => {
  const edge = new Edge({ self: 'me', deadlineMarginBlocks: 2 })
  edge.leaderChanged(1, 'L')
  edge.offer(htlc(1n))
  edge.offer(htlc(2n, { onChain: true, autoFailHeight: 400 }))
  edge.settleKnown(randomBytes(32)) // a preimage of no held HTLC is ignored
  assert.ok(edge.height(279).every((a) => a.type === 'record' && a.decision.action === 'fail'))
  const other = new Edge({ self: 'me', deadlineMarginBlocks: 2 })
  other.offer(htlc(1n))
  other.offer(htlc(2n, { onChain: true, autoFailHeight: 281 }))
  other.settleKnown(preimage)
  const settled = other.height(279)
  assert.equal(settled.length, 2)
  assert.ok(settled.every((a) => a.type === 'record' && a.decision.action === 'settle'))
  const onChainOnly = new Edge({ self: 'me', deadlineMarginBlocks: 2 })
  onChainOnly.offer(htlc(3n, { onChain: true, autoFailHeight: 281 }))
  assert.deepEqual(onChainOnly.height(281), [], 'on chain, failing is not possible: keep waiting')
})

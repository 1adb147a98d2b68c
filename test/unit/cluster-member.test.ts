// The cluster member state machines driven as whole clusters (test/sim/cluster.ts): two operators
// each holding one node, plus a witness; real onions, stateless invoices, election and mux.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { ClusterSim, type SimAgent } from '../sim/cluster.ts'
import { HEIGHT, IDENTITY_KEY, NODES, invoice, part, type Part } from './mux-fixture.ts'
import type { EdgeHtlc } from '../../src/edge/edge.ts'
import { ClusterMember, DEFAULT_TIMING, type MemberAction } from '../../src/cluster/member.ts'
import { MuxLedger } from '../../src/mux/ledger.ts'
import { LedgerBase } from '../../src/mux/ledger-format.ts'
import type { MuxRecord } from '../../src/mux/types.ts'
import { settleRecord } from './ledger-fixture.ts'
import { rng } from './fuzz-kit.ts'
import { heldHtlc } from './edge-fixture.ts'

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex')
const A = 'aa'.repeat(32)
const B = 'bb'.repeat(32)
const W = 'cc'.repeat(32)
const ALICE = hex(NODES[0]!)
const BOB = hex(NODES[1]!)

function cluster(seed: number): ClusterSim {
  const sim = new ClusterSim(
    [
      { id: A, nodes: [ALICE], candidate: true },
      { id: B, nodes: [BOB], candidate: true },
      { id: W, nodes: [], candidate: false, witness: true }
    ],
    seed,
    { identityKey: IDENTITY_KEY, mppTimeoutMs: 60_000, acceptTimeoutMs: 600_000 }
  )
  sim.mine(HEIGHT)
  sim.runUntil(() => sim.serving() !== undefined)
  assert.ok(sim.serving(), `seed ${seed}: no leader serving`)
  return sim
}

/** The interceptor's view of a fixture part, handed to the agent that holds its node. */
function edgeHtlc(p: Part): EdgeHtlc {
  const h = p.htlc
  return {
    node: hex(h.circuit.node),
    circuit: { chanId: h.circuit.chanId, htlcId: h.circuit.htlcId },
    incomingAmountMsat: h.incomingAmountMsat,
    incomingExpiry: h.incomingExpiry,
    outgoingAmountMsat: h.outgoingAmountMsat,
    outgoingExpiry: h.outgoingExpiry,
    outgoingRequestedChanId: h.outgoingRequestedChanId,
    paymentHash: Buffer.from(h.paymentHash),
    onionBlob: Buffer.from(h.onionBlob),
    customRecords: new Map(),
    inWireCustomRecords: new Map(),
    autoFailHeight: h.autoFailHeight,
    onChain: false
  }
}

/** Pays `amount` in two parts, one through Alice (agent A), one through Bob (agent B). */
function payAcrossBoth(sim: ClusterSim, amount: bigint, htlcId: bigint) {
  const inv = invoice(amount)
  const alice = part(inv, { node: 0, htlcId, amountMsat: amount - amount / 3n })
  const bob = part(inv, { node: 1, htlcId, amountMsat: amount / 3n })
  sim.offer(A, edgeHtlc(alice))
  sim.offer(B, edgeHtlc(bob))
  return { inv, parts: [alice, bob] }
}

function watchAccepted(sim: ClusterSim): { hash: Uint8Array; setId: Uint8Array; by: SimAgent }[] {
  const accepted: { hash: Uint8Array; setId: Uint8Array; by: SimAgent }[] = []
  sim.onAction = (agent, action: MemberAction) => {
    if (action.type === 'accepted') accepted.push({ hash: action.hash, setId: action.setId, by: agent })
  }
  return accepted
}

function settleOnLeader(sim: ClusterSim, hash: Uint8Array, setId: Uint8Array): void {
  const leader = sim.serving()!
  sim.apply(leader, leader.member.settle(hash, setId))
}

function settledWith(sim: ClusterSim, preimage: Uint8Array): number {
  return sim.resolutions.filter((r) => r.decision.action === 'settle' && hex(r.decision.preimage) === hex(preimage)).length
}

test('two operators receive one multi-part payment whose parts arrive through both, over many seeds', () => {
  for (let seed = 1; seed <= 20; seed++) {
    const sim = cluster(seed)
    const accepted = watchAccepted(sim)
    const { inv } = payAcrossBoth(sim, 90_000n, 1n)
    sim.runUntil(() => accepted.length > 0, 5000)
    assert.equal(accepted.length, 1, `seed ${seed}: set not accepted`)
    assert.equal(sim.resolutions.length, 0, 'nothing settles before the application asks (invariant 3)')
    settleOnLeader(sim, accepted[0]!.hash, accepted[0]!.setId)
    sim.runUntil(() => sim.resolutions.length === 2, 5000)
    assert.equal(settledWith(sim, inv.preimage), 2, `seed ${seed}`)
    assert.deepEqual(new Set(sim.resolutions.map((r) => r.agent)), new Set([A, B]), 'each operator settles its own node\'s part')
  }
})

test('a preimage leaves once the leader stored the settle record, and reaches an lnd only once a majority did (write-ahead, invariant 6)', () => {
  const sim = cluster(7)
  const accepted = watchAccepted(sim)
  const leader = sim.serving()!.spec.id
  const other = [A, B].find((id) => id !== leader)!
  const { inv } = payAcrossBoth(sim, 50_000n, 2n)
  sim.runUntil(() => accepted.length > 0, 5000)
  settleOnLeader(sim, accepted[0]!.hash, accepted[0]!.setId)
  sim.runUntil(() => sim.resolutions.length === 2, 5000)
  assert.equal(settledWith(sim, inv.preimage), 2)
  const storedAt = sim.storedAt.get(`settle_requested:${hex(inv.paymentHash)}`)!
  const committedAt = sim.log.find((l) => l.agent === leader && l.action.type === 'committed')!.at
  const decisions = sim.log.flatMap((l) => (l.action.type === 'send' && l.action.message.type === 'htlc-decision' ? [{ at: l.at, to: l.action.to, uncommitted: l.action.message.uncommittedRecord !== null }] : []))
  // The other operator's part leaves ahead of the commit, once the leader stored the record: the
  // other operator's own copy completes the majority (leader, other operator; the witness is third).
  assert.deepEqual(decisions.map((d) => [d.to, d.uncommitted]), [[other, true]], 'one decision, sent ahead, none again on commit')
  assert.ok(decisions[0]!.at >= storedAt.get(leader)! && decisions[0]!.at < committedAt)
  // It is applied once that copy is stored (a settle its own record covers); the leader's own part
  // once the record is committed.
  const resolvedAt = new Map(sim.resolutions.map((r) => [r.agent, r.at]))
  assert.ok(resolvedAt.get(other)! >= storedAt.get(other)!)
  assert.ok(resolvedAt.get(leader)! >= committedAt)
  assert.deepEqual(sim.log.flatMap((l) => (l.action.type === 'edge-record' ? [l.action.covered] : [])), [true, true])
})

test("a settle sent ahead of its commit waits at an edge without the record, goes again on commit, and waits for the edge's own fsync there (write-ahead, invariant 6)", () => {
  const sim = cluster(13)
  const accepted = watchAccepted(sim)
  const leader = sim.serving()!
  const other = [A, B].find((id) => id !== leader.spec.id)!
  const { inv } = payAcrossBoth(sim, 70_000n, 6n)
  sim.runUntil(() => accepted.length > 0, 5000)
  // The other operator never gets the record: the leader and the witness are the majority.
  sim.dropIf = (from, to, m) => from === leader.spec.id && to === other && m.type === 'record-notice'
  settleOnLeader(sim, accepted[0]!.hash, accepted[0]!.setId)
  sim.runUntil(() => sim.resolutions.length === 2, 5000)
  assert.equal(settledWith(sim, inv.preimage), 2)
  const toOther = sim.log.flatMap((l) => (l.action.type === 'send' && l.action.to === other && l.action.message.type === 'htlc-decision' ? [l.action.message.uncommittedRecord !== null] : []))
  assert.deepEqual(toOther, [true, false], 'sent ahead (the leader cannot know the notice is lost), then again once committed')
  const committedAt = sim.log.find((l) => l.agent === leader.spec.id && l.action.type === 'committed')!.at
  assert.ok(sim.resolutions.find((r) => r.agent === other)!.at >= committedAt, 'applied only once committed')
  // Only the leader's settle is covered by a settle record of its own.
  const records = sim.log.flatMap((l) => (l.action.type === 'edge-record' ? [{ agent: l.agent, covered: l.action.covered }] : []))
  assert.deepEqual(records.sort((x, y) => x.agent.localeCompare(y.agent)), [
    { agent: leader.spec.id, covered: true },
    { agent: other, covered: false }
  ].sort((x, y) => x.agent.localeCompare(y.agent)))
})

test('without a majority holding the settle record, no preimage leaves; once it reconnects, all settle', () => {
  const sim = cluster(11)
  const accepted = watchAccepted(sim)
  const leader = sim.serving()!
  const { inv } = payAcrossBoth(sim, 60_000n, 5n)
  sim.runUntil(() => accepted.length > 0, 5000)
  sim.dropIf = (from, _to, m) => from === leader.spec.id && m.type === 'record-notice'
  settleOnLeader(sim, accepted[0]!.hash, accepted[0]!.setId)
  sim.run(2000)
  assert.equal(sim.resolutions.length, 0, 'a preimage left before a majority held the settle record')
  assert.ok(!sim.log.some((l) => l.action.type === 'committed'))
  // The followers reconnect (e.g. after a network blip): the pending notice goes out again.
  sim.dropIf = () => false
  const others = [A, B, W].filter((id) => id !== leader.spec.id)
  sim.partition([leader.spec.id], others)
  sim.heal()
  sim.runUntil(() => sim.resolutions.length === 2, 5000)
  assert.equal(settledWith(sim, inv.preimage), 2)
})

test('the leader is killed with an accepted set: the new leader settles it', () => {
  for (let seed = 1; seed <= 10; seed++) {
    const sim = cluster(seed)
    const accepted = watchAccepted(sim)
    const { inv } = payAcrossBoth(sim, 70_000n, 3n)
    sim.runUntil(() => accepted.length > 0, 5000)
    const old = sim.serving()!
    sim.kill(old.spec.id)
    const took = sim.runUntil(() => sim.serving() !== undefined && sim.serving() !== old, 10_000)
    assert.ok(took <= 5000, `seed ${seed}: fail-over took ${took} ms`)
    // The dead agent's LND keeps its part held and re-offers it when the agent comes back.
    sim.restart(old.spec.id)
    sim.runUntil(() => accepted.length > 1, 10_000)
    const again = accepted[accepted.length - 1]!
    assert.notEqual(again.by, old)
    settleOnLeader(sim, again.hash, again.setId)
    sim.runUntil(() => sim.resolutions.length === 2, 5000)
    assert.equal(settledWith(sim, inv.preimage), 2, `seed ${seed}`)
  }
})

test('the leader dies after settling part of a set: every other part still settles (invariant 1)', () => {
  for (let seed = 1; seed <= 10; seed++) {
    const sim = cluster(seed)
    const accepted = watchAccepted(sim)
    const leader = sim.serving()!
    const other = leader.spec.id === A ? B : A
    // The decision for the other operator's part is lost, and the leader dies as soon as its own
    // part is settled on its LND.
    sim.dropIf = (from, to, m) => from === leader.spec.id && to === other && m.type === 'htlc-decision'
    const { inv } = payAcrossBoth(sim, 80_000n, 4n)
    sim.runUntil(() => accepted.length > 0, 5000)
    settleOnLeader(sim, accepted[0]!.hash, accepted[0]!.setId)
    sim.runUntil(() => sim.resolutions.length === 1, 5000)
    assert.equal(sim.resolutions[0]!.agent, leader.spec.id)
    sim.kill(leader.spec.id)
    sim.dropIf = () => false
    sim.runUntil(() => sim.resolutions.length === 2, 10_000)
    assert.equal(settledWith(sim, inv.preimage), 2, `seed ${seed}: the other part was left behind`)
    assert.equal(sim.resolutions[1]!.agent, other)
  }
})

test('a leader cut off in a minority decides nothing; the majority elects another', () => {
  for (let seed = 1; seed <= 10; seed++) {
    const sim = cluster(seed)
    const old = sim.serving()!
    const others = [A, B, W].filter((id) => id !== old.spec.id)
    sim.partition([old.spec.id], others)
    sim.runUntil(() => !old.member.isServing(), 5000)
    const cutAt = sim.now
    assert.equal(old.member.isServing(), false)
    // A payment part reaches the old leader's own node in the minority.
    const inv = invoice(10_000n)
    const mine = part(inv, { node: old.spec.id === A ? 0 : 1, htlcId: 9n, amountMsat: 10_000n })
    sim.offer(old.spec.id, edgeHtlc(mine))
    sim.run(4000)
    const decidedInMinority = sim.log.filter((l) => l.at >= cutAt && l.agent === old.spec.id && (l.action.type === 'resolve' || (l.action.type === 'send' && l.action.message.type === 'htlc-decision')))
    assert.deepEqual(decidedInMinority, [], `seed ${seed}`)
    const fresh = sim.serving()
    assert.ok(fresh && fresh !== old, `seed ${seed}: the majority has no leader`)
    assert.ok(fresh.member.term > old.member.term || !old.member.isServing())
  }
})

test("an edge rejects a stale leader's decision, and a leader refuses offers for nodes the sender does not hold", () => {
  const sim = cluster(3)
  const first = sim.serving()!
  sim.kill(first.spec.id)
  sim.runUntil(() => sim.serving() !== undefined && sim.serving() !== first, 10_000)
  const second = sim.serving()!
  const edgeAgent = [...sim.agents.values()].find((a) => a.alive && a.spec.nodes.length > 0)!
  const inv = invoice(5_000n)
  const p = part(inv, { node: edgeAgent.spec.nodes[0] === ALICE ? 0 : 1, htlcId: 11n, amountMsat: 5_000n })
  sim.offer(edgeAgent.spec.id, edgeHtlc(p))
  const stale = edgeAgent.member.receive(first.spec.id, { type: 'htlc-decision', term: first.member.term, circuit: p.htlc.circuit, resolution: { kind: 'settle', preimage: inv.preimage }, uncommittedRecord: null }, sim.now)
  assert.deepEqual(stale.map((a) => a.type === 'reject' && a.reason), ['wrong_term'])
  const preimageHash = createHash('sha256').update(inv.preimage).digest()
  assert.deepEqual(preimageHash, Buffer.from(inv.paymentHash))
  // An agent may only offer HTLCs of its own nodes.
  const foreign = part(inv, { node: edgeAgent.spec.nodes[0] === ALICE ? 1 : 0, htlcId: 12n, amountMsat: 5_000n })
  const refused = second.member.receive(W, { ...offerFrom(foreign), term: second.member.term }, sim.now)
  assert.deepEqual(refused.map((a) => a.type === 'reject' && a.reason), ['not_your_node'])
})

function offerFrom(p: Part) {
  const h = p.htlc
  return {
    type: 'htlc-offer' as const,
    term: 0,
    circuit: h.circuit,
    paymentHash: h.paymentHash,
    incomingMsat: h.incomingAmountMsat,
    outgoingMsat: h.outgoingAmountMsat,
    incomingExpiry: h.incomingExpiry,
    outgoingExpiry: h.outgoingExpiry,
    outgoingRequestedChanId: h.outgoingRequestedChanId,
    onion: h.onionBlob,
    autoFailHeight: h.autoFailHeight,
    currentHeight: h.currentHeight
  }
}

test("a dead leader's settle record that no majority held loses to a later leader's parts_failed record (invariant 1)", () => {
  for (let seed = 1; seed <= 5; seed++) {
    const sim = cluster(seed)
    const accepted = watchAccepted(sim)
    const first = sim.serving()!
    const other = sim.agent(first.spec.id === A ? B : A)
    const { inv, parts } = payAcrossBoth(sim, 40_000n, 6n)
    const hash = hex(inv.paymentHash)
    sim.runUntil(() => accepted.length > 0, 5000)
    // The leader stores its settle record, but none of its notices arrive: it dies holding the only copy.
    sim.dropIf = (from, _to, m) => from === first.spec.id && m.type === 'record-notice'
    settleOnLeader(sim, accepted[0]!.hash, accepted[0]!.setId)
    sim.run(100)
    assert.ok(first.storage.records.some((r) => r.type === 'settle_requested' && hex(r.hash) === hash))
    sim.kill(first.spec.id)
    sim.dropIf = () => false
    sim.runUntil(() => sim.serving() === other, 10_000)
    assert.equal(sim.serving(), other, `seed ${seed}: the other candidate does not lead`)
    // The new leader sees only its own node's part: it fails it at its hold limit, after committing
    // a parts_failed record for the hash (the other part's agent is down, its LND holds it).
    const own = parts.find((p) => hex(p.htlc.circuit.node) === (other.spec.id === A ? ALICE : BOB))!
    sim.mine(own.htlc.autoFailHeight - 3)
    sim.runUntil(() => sim.resolutions.length === 1, 5000)
    assert.equal(sim.resolutions[0]!.decision.action, 'fail', `seed ${seed}`)
    const fenced = sim.log.find((l) => l.action.type === 'committed' && l.action.record.type === 'parts_failed' && hex(l.action.record.hash) === hash)
    assert.ok(fenced && fenced.at <= sim.resolutions[0]!.at, `seed ${seed}: failed before a parts_failed record was committed`)
    // The first agent comes back (its LND, still holding its part, reconnects later), follows, and
    // leads again once the other dies: it gathers its old settle record and the newer parts_failed
    // record, drops the settle record, and fails its own part rather than settle it.
    sim.lndDown(first.spec.id)
    sim.restart(first.spec.id)
    sim.runUntil(() => first.member.leader === other.spec.id, 5000)
    sim.kill(other.spec.id)
    sim.runUntil(() => sim.serving() === first, 10_000)
    assert.equal(sim.serving(), first, `seed ${seed}: the first agent does not lead again`)
    sim.lndUp(first.spec.id)
    sim.runUntil(() => sim.resolutions.length === 2, 3000)
    const superseded = sim.log.find((l) => l.agent === first.spec.id && l.action.type === 'reject' && l.action.reason === 'superseded_record')
    assert.ok(superseded, `seed ${seed}: the stale settle record was not dropped`)
    assert.equal(settledWith(sim, inv.preimage), 0, `seed ${seed}: part of a set settled after another part failed`)
    assert.deepEqual(sim.resolutions.map((r) => r.decision.action), ['fail', 'fail'], `seed ${seed}`)
  }
})

test('with cluster.voters fixed, an agent that has met nobody never leads alone; with learnt voters it does', () => {
  const member = (voters: string[], self = A, nodes = [ALICE]) => new ClusterMember({
    self,
    nodes,
    mux: { identityKey: IDENTITY_KEY },
    witness: false,
    voters,
    priority: 0,
    timing: DEFAULT_TIMING,
    persisted: { term: 0, votedFor: null, voters: [], records: new MuxLedger(IDENTITY_KEY) },
    now: 0,
    random: () => 0.5,
    deadlineMarginBlocks: 2
  })
  const ledAlone = (m: ClusterMember): boolean => {
    for (let now = 0; now <= 20_000; now += 100) if (m.tick(now).some((a) => a.type === 'leader' && a.leader === A)) return true
    return false
  }
  assert.equal(ledAlone(member([A, B, W])), false, 'one of three configured voters is no majority')
  assert.equal(ledAlone(member([])), true, 'learnt voters: alone, it counts only itself')
  assert.throws(() => member([B, W]), /cluster.voters does not list this agent/)
  assert.throws(() => member([A, B], A, []), /cluster.voters lists this agent .* cannot vote/)
})

test('a lone voter restarting with a settle record and a parts_failed record of one hash applies the newer term (its own records only, packed or live)', () => {
  const settle = settleRecord(rng(11), IDENTITY_KEY, 1_000, 1)
  const partsFailed = (term: number): MuxRecord => ({ type: 'parts_failed', term, hash: settle.hash, time: 1_010 })
  const restart = (records: MuxRecord[], packed: boolean) => {
    const ledger = MuxLedger.of(records, IDENTITY_KEY)
    const persisted = packed ? new MuxLedger(IDENTITY_KEY, LedgerBase.decode(Buffer.concat([...ledger.encode(16)]))) : ledger
    const member = new ClusterMember({
      self: A, nodes: [ALICE], mux: { identityKey: IDENTITY_KEY }, witness: false, priority: 0, timing: DEFAULT_TIMING,
      persisted: { term: 2, votedFor: null, voters: [], records: persisted }, now: 0, random: () => 0.5, deadlineMarginBlocks: 2
    })
    const actions: MemberAction[] = []
    for (let now = 0; now <= 20_000 && member.virtualNode === null; now += 100) actions.push(...member.tick(now))
    const superseded = actions.flatMap((a) => (a.type === 'reject' && a.reason === 'superseded_record' ? [a.detail] : []))
    return { mux: member.virtualNode!, superseded }
  }
  for (const packed of [false, true]) {
    // A newer parts_failed record: the settle record never reached a majority; it is not settled.
    const newer = restart([settle, partsFailed(2)], packed)
    assert.deepEqual(newer.superseded, [`settle_requested:${hex(settle.hash)} of term 1`])
    assert.notEqual(newer.mux.status(settle.hash), 'settle_requested')
    assert.deepEqual(newer.mux.settlements(1n, 10), [])
    // One of the settle's own term: the settle stands, the parts_failed record is dropped.
    const older = restart([partsFailed(1), settle], packed)
    assert.deepEqual(older.superseded, [`parts_failed:${hex(settle.hash)} of term 1`])
    assert.equal(older.mux.status(settle.hash), 'settle_requested')
  }
})

test("a block's height rules (blockHeight) and the edge's deadlines (checkDeadlines) are separate calls: a settle learnt between them wins", () => {
  const preimage = Buffer.alloc(32, 9)
  const hash = createHash('sha256').update(preimage).digest()
  const member = () => new ClusterMember({
    self: B, nodes: [BOB], mux: null, witness: false, priority: 0, timing: DEFAULT_TIMING,
    persisted: { term: 0, votedFor: null, voters: [], records: new MuxLedger(null) }, now: 0, random: () => 0.5, deadlineMarginBlocks: 2
  })
  // No leader: the edge holds the part; its deadline is auto_fail_height 281 less a margin of 2.
  const decisions = (actions: MemberAction[]) => actions.flatMap((a) => (a.type === 'edge-record' ? [a.decision.action] : []))
  const failed = member()
  failed.htlc(heldHtlc(1n, hash, { node: BOB }))
  assert.deepEqual(decisions(failed.blockHeight(279)), [], 'the height rules alone decide no part an edge holds')
  assert.deepEqual(decisions(failed.checkDeadlines()), ['fail'])
  const settled = member()
  settled.htlc(heldHtlc(1n, hash, { node: BOB }))
  settled.blockHeight(279)
  settled.edge.settleKnown(preimage) // what a driver's scan of the audit cores found meanwhile
  assert.deepEqual(decisions(settled.checkDeadlines()), ['settle'])
})

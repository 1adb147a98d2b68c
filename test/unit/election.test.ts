// The election state machine driven through a simulated network and clock: leases never overlap,
// fail-over is fast, a stale candidate or a minority never wins.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { prng } from '../sim/cluster.ts'
import { Election, majority, type ElectionAction, type ElectionMessage, type View } from '../../src/cluster/election.ts'

const TIMING = { leaseMs: 3000, heartbeatMs: 1000, clockDriftMs: 300, electionTimeoutMs: [3000, 4500] as const }

interface Spec { name: string; candidate: boolean; voter: boolean; priority?: number; view?: View }

/** A cluster of election machines exchanging messages with a fixed delay, on a 50 ms tick. */
class Cluster {
  now = 0
  readonly random: () => number
  readonly nodes = new Map<string, Election>()
  readonly down = new Set<string>()
  /** Pairs that cannot talk (both directions). */
  readonly cut = new Set<string>()
  private queue: { at: number; from: string; to: string; message: ElectionMessage }[] = []
  readonly persisted = new Map<string, { term: number; votedFor: string | null }[]>()
  readonly leadersByTerm = new Map<number, Set<string>>()

  constructor(specs: Spec[], seed: number, readonly delayMs = 20) {
    this.random = prng(seed)
    for (const spec of specs) this.add(spec)
    const voters = specs.filter((s) => s.voter).map((s) => s.name)
    for (const node of this.nodes.values()) node.setVoters(voters)
  }

  add(spec: Spec, persisted?: { term: number; votedFor: string | null }): Election {
    const e = new Election({ self: spec.name, candidate: spec.candidate, voter: spec.voter, priority: spec.priority ?? 0, ...TIMING, persisted }, this.now, this.random)
    if (spec.view) e.setView(spec.view)
    this.nodes.set(spec.name, e)
    return e
  }

  private apply(from: string, actions: ElectionAction[]): void {
    for (const action of actions) {
      if (action.type === 'persist') {
        const log = this.persisted.get(from) ?? []
        log.push({ term: action.term, votedFor: action.votedFor })
        this.persisted.set(from, log)
      } else if (action.type === 'leader' && action.leader !== null) {
        const set = this.leadersByTerm.get(action.term) ?? new Set()
        set.add(action.leader)
        this.leadersByTerm.set(action.term, set)
      } else if (action.type === 'send') {
        this.deliver(from, action.to, action.message)
      } else if (action.type === 'broadcast') {
        for (const to of this.nodes.keys()) if (to !== from) this.deliver(from, to, action.message)
      }
    }
  }

  private deliver(from: string, to: string, message: ElectionMessage): void {
    if (this.cut.has([from, to].sort().join('|'))) return
    this.queue.push({ at: this.now + this.delayMs, from, to, message })
  }

  /** Advance time, checking after every step that no two machines hold a lease at once. */
  run(ms: number): void {
    const end = this.now + ms
    while (this.now < end) {
      this.now += 50
      const due = this.queue.filter((m) => m.at <= this.now)
      this.queue = this.queue.filter((m) => m.at > this.now)
      for (const m of due) if (!this.down.has(m.to) && !this.down.has(m.from)) this.apply(m.to, this.nodes.get(m.to)!.receive(m.from, m.message, this.now, this.random))
      for (const [name, node] of this.nodes) if (!this.down.has(name)) this.apply(name, node.tick(this.now, this.random))
      const holders = [...this.nodes].filter(([name, n]) => !this.down.has(name) && n.isLeaseHeld(this.now)).map(([name]) => name)
      assert.ok(holders.length <= 1, `two leases held at ${this.now}: ${holders}`)
    }
  }

  holder(): string | null {
    return [...this.nodes].find(([name, n]) => !this.down.has(name) && n.isLeaseHeld(this.now))?.[0] ?? null
  }

  partition(a: string[], b: string[]): void {
    for (const x of a) for (const y of b) this.cut.add([x, y].sort().join('|'))
  }
}

const twoOperators: Spec[] = [
  { name: 'A', candidate: true, voter: true },
  { name: 'B', candidate: true, voter: true },
  { name: 'W', candidate: false, voter: true }
]

test('majority of voters', () => {
  assert.deepEqual([1, 2, 3, 4, 5].map(majority), [1, 2, 2, 3, 3])
})

test('two operators and a witness elect one leader, and at most one per term, over many seeds', () => {
  for (let seed = 1; seed <= 40; seed++) {
    const c = new Cluster(twoOperators, seed)
    c.run(10_000)
    assert.ok(c.holder() === 'A' || c.holder() === 'B', `seed ${seed}: no leader`)
    for (const [term, leaders] of c.leadersByTerm) assert.equal(leaders.size, 1, `seed ${seed} term ${term}: ${[...leaders]}`)
  }
})

test('the leader dies: a new one holds the lease within 5 s, for every seed', (t) => {
  let worst = 0
  for (let seed = 1; seed <= 40; seed++) {
    const c = new Cluster(twoOperators, seed)
    c.run(10_000)
    const old = c.holder()!
    c.down.add(old)
    const diedAt = c.now
    while (c.holder() === null && c.now - diedAt < 20_000) c.run(50)
    const took = c.now - diedAt
    worst = Math.max(worst, took)
    assert.notEqual(c.holder(), old)
    assert.ok(took <= 5000, `seed ${seed}: fail-over took ${took} ms`)
  }
  assert.ok(worst > 0)
  t.diagnostic(`worst simulated fail-over over 40 seeds: ${worst} ms`)
})

test('a partitioned leader in the minority stops holding its lease before the majority elects another', () => {
  for (let seed = 1; seed <= 20; seed++) {
    const c = new Cluster(twoOperators, seed)
    c.run(10_000)
    const old = c.holder()!
    const others = ['A', 'B', 'W'].filter((n) => n !== old)
    c.partition([old], others)
    c.run(10_000) // run() asserts no overlap at every step
    assert.notEqual(c.holder(), old)
    assert.ok(c.holder() !== null)
    assert.equal(c.nodes.get(old)!.isLeaseHeld(c.now), false)
  }
})

test('a candidate with a stale view never wins, and steps aside instead of blocking the others', () => {
  // Records counts do not decide votes (a new leader gathers records); only the term seen does.
  const fresh: View = { term: 4, records: 0 }
  for (let seed = 1; seed <= 20; seed++) {
    const c = new Cluster([
      { name: 'A', candidate: true, voter: true, priority: 10, view: { term: 3, records: 99 } },
      { name: 'B', candidate: true, voter: true, view: fresh },
      { name: 'W', candidate: false, voter: true, view: fresh }
    ], seed)
    c.run(15_000)
    assert.equal(c.holder(), 'B', `seed ${seed}`)
    assert.ok(![...c.leadersByTerm.values()].some((s) => s.has('A')))
  }
})

test('a voter grants one vote per term, persists it before answering, and keeps it across a restart', () => {
  const voter = new Election({ self: 'W', candidate: false, voter: true, priority: 0, ...TIMING }, 0, () => 0.5)
  voter.setVoters(['A', 'B', 'W'])
  const view = { term: 0, records: 0 }
  const first = voter.receive('A', { type: 'vote-request', term: 1, candidate: 'A', view, priority: 0, pre: false }, 10, () => 0.5)
  const persistAt = first.findIndex((a) => a.type === 'persist' && a.votedFor === 'A')
  const replyAt = first.findIndex((a) => a.type === 'send' && a.message.type === 'vote' && a.message.granted)
  assert.ok(persistAt >= 0 && replyAt > persistAt, 'the vote is persisted before it is sent')
  const second = voter.receive('B', { type: 'vote-request', term: 1, candidate: 'B', view, priority: 0, pre: false }, 20, () => 0.5)
  assert.ok(second.some((a) => a.type === 'send' && a.message.type === 'vote' && !a.message.granted))

  const restarted = new Election({ self: 'W', candidate: false, voter: true, priority: 0, ...TIMING, persisted: { term: 1, votedFor: 'A' } }, 5000, () => 0.5)
  restarted.setVoters(['A', 'B', 'W'])
  const again = restarted.receive('B', { type: 'vote-request', term: 1, candidate: 'B', view, priority: 0, pre: false }, 5010, () => 0.5)
  assert.ok(again.some((a) => a.type === 'send' && a.message.type === 'vote' && !a.message.granted))
})

test('messages claiming another sender are ignored', () => {
  const voter = new Election({ self: 'W', candidate: false, voter: true, priority: 0, ...TIMING }, 0, () => 0.5)
  voter.setVoters(['A', 'B', 'W'])
  assert.deepEqual(voter.receive('B', { type: 'vote-request', term: 1, candidate: 'A', view: { term: 0, records: 0 }, priority: 0, pre: false }, 10, () => 0.5), [])
  assert.deepEqual(voter.receive('B', { type: 'lease', term: 9, leader: 'A', at: 10 }, 10, () => 0.5), [])
  assert.equal(voter.term, 0)
})

test('higher priority usually stands first', () => {
  let preferredWins = 0
  for (let seed = 1; seed <= 30; seed++) {
    const c = new Cluster([
      { name: 'A', candidate: true, voter: true, priority: 0 },
      { name: 'B', candidate: true, voter: true, priority: 10 },
      { name: 'W', candidate: false, voter: true }
    ], seed)
    c.run(8000)
    if (c.holder() === 'B') preferredWins++
  }
  assert.ok(preferredWins >= 25, `B won ${preferredWins} of 30`)
})

test('pre-vote: a cut-off candidate does not raise its term, and rejoining does not unseat the leader', () => {
  for (let seed = 1; seed <= 20; seed++) {
    const c = new Cluster(twoOperators, seed)
    c.run(10_000)
    const leader = c.holder()!
    const other = leader === 'A' ? 'B' : 'A'
    const termBefore = c.nodes.get(leader)!.term
    c.partition([other], [leader, 'W'])
    c.run(20_000)
    assert.equal(c.nodes.get(other)!.term, termBefore, `seed ${seed}: the cut-off candidate raised its term`)
    c.cut.clear()
    c.run(5_000)
    assert.equal(c.holder(), leader, `seed ${seed}: the leader was unseated by a rejoining member`)
    assert.equal(c.nodes.get(leader)!.term, termBefore)
  }
})

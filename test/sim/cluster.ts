// A deterministic in-memory cluster: ClusterMember state machines (the real election, edge and mux)
// joined by a simulated network and clock, with a durable store and an LND per agent that checks
// each circuit is resolved once. Faults: kill and restart (storage kept), partitions, dropped messages.
import assert from 'node:assert/strict'
import { ClusterMember, DEFAULT_TIMING, type MemberAction } from '../../src/cluster/member.ts'
import type { Hello, Message } from '../../src/cluster/messages.ts'
import { edgeHtlcId, type EdgeHtlc } from '../../src/edge/edge.ts'
import type { Decision } from '../../src/lnd/circuits.ts'
import type { MuxRecord } from '../../src/mux/types.ts'

export interface AgentSpec {
  id: string
  nodes: string[]
  candidate: boolean
  witness?: boolean
  priority?: number
}

interface Storage {
  term: number
  votedFor: string | null
  voters: string[]
  records: MuxRecord[]
}

export interface Resolution {
  agent: string
  htlc: EdgeHtlc
  decision: Decision
  at: number
}

export function prng(seed: number): () => number {
  let s = seed >>> 0
  return () => {
    s = (s + 0x6d2b79f5) >>> 0
    let t = s
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

const STEP_MS = 10
const DELAY_MS = 5
const DISK_MS = 10

export class SimAgent {
  member: ClusterMember
  alive = true
  /** HTLCs its LND holds for it, unresolved: lnd re-offers them when the agent comes back. */
  readonly held = new Map<string, EdgeHtlc>()
  readonly storage: Storage = { term: 0, votedFor: null, voters: [], records: [] }

  constructor(
    readonly spec: AgentSpec,
    private readonly cluster: ClusterSim
  ) {
    this.member = this.create()
  }

  create(): ClusterMember {
    const { spec, cluster } = this
    return new ClusterMember({
      self: spec.id,
      nodes: spec.nodes,
      mux: spec.candidate ? cluster.muxOptions : null,
      witness: spec.witness ?? false,
      priority: spec.priority ?? 0,
      timing: DEFAULT_TIMING,
      persisted: { ...this.storage, records: [...this.storage.records] },
      now: cluster.now,
      random: cluster.random,
      deadlineMarginBlocks: 2
    })
  }

  hello(): Hello {
    return {
      type: 'hello',
      agent: Buffer.from(this.spec.id, 'hex'),
      role: this.spec.candidate ? 'candidate' : this.spec.nodes.length > 0 ? 'edge' : 'witness',
      priority: this.spec.priority ?? 0,
      protocolVersion: 1,
      muxKey: null,
      nodes: this.spec.nodes.map((n) => ({ pubkey: Buffer.from(n, 'hex'), alias: n.slice(0, 8), virtualScid: 1n, inboundMsat: 0n })),
      auditCore: Buffer.alloc(32)
    }
  }
}

export class ClusterSim {
  now = 1_700_000_000_000
  readonly random: () => number
  readonly agents = new Map<string, SimAgent>()
  readonly resolutions: Resolution[] = []
  readonly log: { at: number; agent: string; action: MemberAction }[] = []
  /** Drop matching messages (fault injection); return true to drop. */
  dropIf: (from: string, to: string, message: Message) => boolean = () => false
  /** Called for every action, after the harness applied it. */
  onAction: (agent: SimAgent, action: MemberAction) => void = () => {}
  private readonly cut = new Set<string>()
  private queue: { at: number; run: () => void }[] = []

  constructor(
    specs: AgentSpec[],
    seed: number,
    readonly muxOptions: ConstructorParameters<typeof ClusterMember>[0]['mux']
  ) {
    this.random = prng(seed)
    for (const spec of specs) this.agents.set(spec.id, new SimAgent(spec, this))
    for (const a of this.agents.values()) for (const b of this.agents.values()) if (a !== b) this.apply(a, a.member.connected(b.spec.id, b.hello()))
  }

  height = 0

  /** A new block on every LND. */
  mine(height: number): void {
    this.height = height
    for (const agent of this.agents.values()) if (agent.alive) this.apply(agent, agent.member.blockHeight(height))
  }

  agent(id: string): SimAgent {
    return this.agents.get(id)!
  }

  private linked(a: string, b: string): boolean {
    return this.agent(a).alive && this.agent(b).alive && !this.cut.has([a, b].sort().join('|'))
  }

  private later(ms: number, run: () => void): void {
    this.queue.push({ at: this.now + ms, run })
  }

  private deliver(from: string, to: string, message: Message): void {
    if (!this.linked(from, to) || this.dropIf(from, to, message)) return
    this.later(DELAY_MS, () => {
      if (this.linked(from, to)) this.apply(this.agent(to), this.agent(to).member.receive(from, message, this.now))
    })
  }

  apply(agent: SimAgent, actions: MemberAction[]): void {
    const id = agent.spec.id
    for (const action of actions) {
      this.log.push({ at: this.now, agent: id, action })
      switch (action.type) {
        case 'send':
          this.deliver(id, action.to, action.message)
          break
        case 'broadcast':
          for (const to of this.agents.keys()) if (to !== id) this.deliver(id, to, action.message)
          break
        case 'persist-vote':
          agent.storage.term = action.term
          agent.storage.votedFor = action.votedFor
          break
        case 'persist-voters':
          agent.storage.voters = action.voters
          break
        case 'persist-record': {
          const member = agent.member
          this.later(DISK_MS, () => {
            if (!agent.alive || agent.member !== member) return
            agent.storage.records.push(action.record)
            this.apply(agent, member.recordPersisted(action.record))
          })
          break
        }
        case 'edge-record': {
          const member = agent.member
          this.later(DISK_MS, () => {
            if (agent.alive && agent.member === member) this.apply(agent, member.edgeRecorded(action.id))
          })
          break
        }
        case 'resolve': {
          const key = edgeHtlcId(action.htlc)
          const earlier = this.resolutions.find((r) => edgeHtlcId(r.htlc) === key)
          // lnd takes one resolution per circuit; a replay must repeat it exactly (invariant 4).
          if (earlier) assert.deepEqual(earlier.decision, action.decision, `two different resolutions for ${key}`)
          else this.resolutions.push({ agent: id, htlc: action.htlc, decision: action.decision, at: this.now })
          agent.held.delete(key)
          const member = agent.member
          this.later(DISK_MS * 2, () => {
            if (agent.alive && agent.member === member) this.apply(agent, member.htlcFinal(action.htlc, action.decision.action === 'settle'))
          })
          break
        }
      }
      this.onAction(agent, action)
    }
  }

  /** Advance the clock by `ms`, delivering messages and ticking every live member. */
  run(ms: number): void {
    const end = this.now + ms
    while (this.now < end) {
      this.now += STEP_MS
      for (;;) {
        const due = this.queue.filter((q) => q.at <= this.now)
        if (due.length === 0) break
        this.queue = this.queue.filter((q) => q.at > this.now)
        for (const q of due) q.run()
      }
      for (const agent of this.agents.values()) if (agent.alive) this.apply(agent, agent.member.tick(this.now))
    }
  }

  /** Run until `done()` or `limitMs` passes; returns the time it took. */
  runUntil(done: () => boolean, limitMs = 20_000): number {
    const start = this.now
    while (!done() && this.now - start < limitMs) this.run(STEP_MS)
    return this.now - start
  }

  serving(): SimAgent | undefined {
    return [...this.agents.values()].find((a) => a.alive && a.member.isServing())
  }

  offer(agentId: string, htlc: EdgeHtlc): void {
    const agent = this.agent(agentId)
    agent.held.set(edgeHtlcId(htlc), htlc)
    this.apply(agent, agent.member.htlc(htlc))
  }

  kill(id: string): void {
    this.agent(id).alive = false
    for (const other of this.agents.values()) if (other.spec.id !== id && other.alive) this.apply(other, other.member.disconnected(id))
  }

  restart(id: string): void {
    const agent = this.agent(id)
    agent.alive = true
    agent.member = agent.create()
    for (const other of this.agents.values()) {
      if (other === agent || !other.alive) continue
      this.apply(agent, agent.member.connected(other.spec.id, other.hello()))
      this.apply(other, other.member.connected(id, agent.hello()))
    }
    this.apply(agent, agent.member.blockHeight(this.height))
    for (const htlc of agent.held.values()) this.apply(agent, agent.member.htlc(htlc))
  }

  partition(a: string[], b: string[]): void {
    for (const x of a) for (const y of b) {
      this.cut.add([x, y].sort().join('|'))
      if (this.agent(x).alive) this.apply(this.agent(x), this.agent(x).member.disconnected(y))
      if (this.agent(y).alive) this.apply(this.agent(y), this.agent(y).member.disconnected(x))
    }
  }

  heal(): void {
    const pairs = [...this.cut]
    this.cut.clear()
    for (const pair of pairs) {
      const [x, y] = pair.split('|') as [string, string]
      if (!this.agent(x).alive || !this.agent(y).alive) continue
      this.apply(this.agent(x), this.agent(x).member.connected(y, this.agent(y).hello()))
      this.apply(this.agent(y), this.agent(y).member.connected(x, this.agent(x).hello()))
    }
  }
}

// A deterministic in-memory cluster: ClusterMember state machines (the real election, edge and mux)
// joined by a simulated network and clock, with a durable store and an LND per agent.
//
// The LND model follows lnd's interceptor (src/lnd/circuits.ts, DESIGN.md invariant 4): it holds
// each intercepted HTLC until one resolution, re-offers held HTLCs when the agent or its stream comes
// back, fails a held off-chain HTLC itself once the height reaches its auto_fail_height, and takes a
// resolution that arrives while its stream is down when the stream returns (the driver defers it).
//
// Faults: agent kill and restart (storage kept), LND stream down and up, partitions and heals,
// connections that break (in-flight messages lost, both sides told, reconnect later), and per-message
// loss, duplication, delay and reordering. Breaches of what the harness itself can see (two
// resolutions of one circuit, lnd failing an HTLC an attentive agent should have failed first) are
// recorded in `violations`; test/sim/invariants.ts checks the rest from the log after a run.
import { ClusterMember, DEFAULT_TIMING, type MemberAction } from '../../src/cluster/member.ts'
import { PROTOCOL_VERSION, type Hello, type Message } from '../../src/cluster/messages.ts'
import { edgeHtlcId, type EdgeHtlc } from '../../src/edge/edge.ts'
import type { Decision } from '../../src/lnd/circuits.ts'
import { MuxLedger } from '../../src/mux/ledger.ts'
import type { MuxRecord } from '../../src/mux/types.ts'
import { toAuditRecord } from '../../src/audit/mux-store.ts'
import { LAZY_LINGER_MS } from '../../src/audit/log.ts'
import type { AuditRecord } from '../../src/audit/records.ts'

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
  servedTerm: number
  records: MuxRecord[]
}

export interface Resolution {
  agent: string
  htlc: EdgeHtlc
  decision: Decision
  at: number
  height: number
  /** 'agent': the agent resolved it; 'lnd': lnd failed it at auto_fail_height. */
  by: 'agent' | 'lnd'
}

export interface Violation {
  invariant: string
  detail: string
}

export interface NetworkFaults {
  /** One-way latency range of a message, ms. */
  latencyMs: readonly [number, number]
  /** Per-message probabilities. */
  loss: number
  duplicate: number
  /** Deliver messages of one link in send order (a stream); false lets latency reorder them. */
  fifo: boolean
}

export const CALM_NETWORK: NetworkFaults = { latencyMs: [5, 5], loss: 0, duplicate: 0, fifo: true }

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
const DISK_MS = 10
/**
 * An audit append that waits for no fsync of its own (a final record; a settle covered by a settle
 * record): at worst its block waits LAZY_LINGER_MS for a durable record to share it.
 */
const APPEND_MS = LAZY_LINGER_MS + 1
/** lnd reports a resolution as final (FinalHtlcEvent) this long after it took it. */
const FINAL_MS = 20
/** An agent that has run this long with its LND up has had time to fail an HTLC at its margin. */
const ATTENTIVE_MS = 100
const DEADLINE_MARGIN_BLOCKS = 2

const pairKey = (a: string, b: string): string => [a, b].sort().join('|')

export class SimAgent {
  member: ClusterMember
  alive = true
  /** Its LND's interceptor stream is up. */
  lndUp = true
  /** Since when the agent has been running with its LND stream up (ms), for invariant 7. */
  attentiveSince: number
  /** HTLCs its LND holds for it, unresolved: lnd re-offers them when the agent comes back. */
  readonly held = new Map<string, EdgeHtlc>()
  /** Resolutions taken while the LND stream was down: the driver writes them on the next stream. */
  readonly deferred = new Map<string, Decision>()
  readonly storage: Storage = { term: 0, votedFor: null, voters: [], servedTerm: 0, records: [] }
  /** The agent's audit core, as src/agent/runtime.ts writes it: its nodes at each start, its mux records. */
  readonly audit: AuditRecord[] = []

  constructor(
    readonly spec: AgentSpec,
    private readonly cluster: ClusterSim
  ) {
    this.attentiveSince = cluster.now
    this.member = this.create()
  }

  create(): ClusterMember {
    const { spec, cluster } = this
    for (const node of spec.nodes) this.audit.push({ type: 'lnd_connect', time: cluster.now, node: Buffer.from(node, 'hex'), alias: node.slice(0, 8) })
    return new ClusterMember({
      self: spec.id,
      nodes: spec.nodes,
      mux: spec.candidate ? cluster.muxOptions : null,
      witness: spec.witness ?? false,
      priority: spec.priority ?? 0,
      timing: DEFAULT_TIMING,
      persisted: { ...this.storage, records: MuxLedger.of(this.storage.records, spec.candidate ? cluster.muxOptions!.identityKey : null) },
      now: cluster.now,
      random: cluster.random,
      deadlineMarginBlocks: DEADLINE_MARGIN_BLOCKS
    })
  }

  hello(): Hello {
    return {
      type: 'hello',
      agent: Buffer.from(this.spec.id, 'hex'),
      role: this.spec.candidate ? 'candidate' : this.spec.nodes.length > 0 ? 'edge' : 'witness',
      priority: this.spec.priority ?? 0,
      protocolVersion: PROTOCOL_VERSION,
      muxKey: null,
      nodes: this.spec.nodes.map((n) => ({ pubkey: Buffer.from(n, 'hex'), alias: n.slice(0, 8), virtualScid: 1n, inboundMsat: 0n })),
      auditCore: Buffer.alloc(32)
    }
  }
}

interface Queued {
  at: number
  seq: number
  run: () => void
}

export class ClusterSim {
  now = 1_700_000_000_000
  height = 0
  readonly random: () => number
  /** The network's own dice, apart from the members' (elections) so faults do not shift them. */
  private readonly dice: () => number
  readonly agents = new Map<string, SimAgent>()
  readonly resolutions: Resolution[] = []
  readonly log: { at: number; agent: string; action: MemberAction }[] = []
  readonly violations: Violation[] = []
  /** Faults injected, by kind. */
  readonly faults = new Map<string, number>()
  /** Resolutions repeated for a circuit already resolved alike (replays after re-offers). */
  replays = 0
  /** When each agent's store held each record: `${type}:${hash}` → agent → ms. */
  readonly storedAt = new Map<string, Map<string, number>>()
  network: NetworkFaults = CALM_NETWORK
  /** Drop matching messages (fault injection); return true to drop. */
  dropIf: (from: string, to: string, message: Message) => boolean = () => false
  /** Called for every action, after the harness applied it. */
  onAction: (agent: SimAgent, action: MemberAction) => void = () => {}
  /** Called when an agent's store made a record durable, before the member hears of it. */
  onStored: (agent: SimAgent, record: MuxRecord) => void = () => {}
  private readonly cut = new Set<string>()
  /** Links whose connection broke, until they reconnect. */
  private readonly broken = new Set<string>()
  /** Per link: bumped when its connection breaks, so in-flight messages are lost with it. */
  private readonly epoch = new Map<string, number>()
  /** Per directed link: when its last message is delivered (FIFO streams). */
  private readonly lastDelivery = new Map<string, number>()
  private queue: Queued[] = []
  private seq = 0

  constructor(
    specs: AgentSpec[],
    seed: number,
    readonly muxOptions: ConstructorParameters<typeof ClusterMember>[0]['mux']
  ) {
    this.random = prng(seed)
    this.dice = prng(seed ^ 0x5eed)
    for (const spec of specs) this.agents.set(spec.id, new SimAgent(spec, this))
    for (const a of this.agents.values()) for (const b of this.agents.values()) if (a !== b) this.apply(a, a.member.connected(b.spec.id, b.hello()))
  }

  agent(id: string): SimAgent {
    return this.agents.get(id)!
  }

  count(fault: string, n = 1): void {
    this.faults.set(fault, (this.faults.get(fault) ?? 0) + n)
  }

  violation(invariant: string, detail: string): void {
    this.violations.push({ invariant, detail })
  }

  // -------------------------------------------------------------------------------------------
  // Clock

  private later(ms: number, run: () => void): void {
    this.queue.push({ at: this.now + ms, seq: this.seq++, run })
  }

  /** Runs everything due at `now`, in time order. */
  private drain(): void {
    for (;;) {
      const due = this.queue.filter((q) => q.at <= this.now)
      if (due.length === 0) return
      this.queue = this.queue.filter((q) => q.at > this.now)
      due.sort((a, b) => a.at - b.at || a.seq - b.seq)
      for (const q of due) q.run()
    }
  }

  private tickAll(): void {
    for (const agent of this.agents.values()) if (agent.alive) this.apply(agent, agent.member.tick(this.now))
  }

  /** Advance the clock by `ms`, delivering messages and ticking every live member. */
  run(ms: number): void {
    const end = this.now + ms
    while (this.now < end) {
      this.now += STEP_MS
      this.drain()
      this.tickAll()
    }
  }

  /** Run until `done()` or `limitMs` passes; returns the time it took. */
  runUntil(done: () => boolean, limitMs = 20_000): number {
    const start = this.now
    while (!done() && this.now - start < limitMs) this.run(STEP_MS)
    return this.now - start
  }

  /**
   * Every clock jumps `ms` at once (a suspended host, or simply a long quiet time without the cost
   * of stepping through it): leases and timers all see the jump on their next tick.
   */
  advance(ms: number): void {
    this.now += ms
    this.drain()
    this.tickAll()
  }

  // -------------------------------------------------------------------------------------------
  // Network

  private linked(a: string, b: string): boolean {
    const key = pairKey(a, b)
    return this.agent(a).alive && this.agent(b).alive && !this.cut.has(key) && !this.broken.has(key)
  }

  private latency(): number {
    const [min, max] = this.network.latencyMs
    return min + Math.floor(this.dice() * (max - min + 1))
  }

  private deliver(from: string, to: string, message: Message): void {
    if (!this.linked(from, to) || this.dropIf(from, to, message)) return
    if (this.network.loss > 0 && this.dice() < this.network.loss) return this.count('message-lost')
    const copies = this.network.duplicate > 0 && this.dice() < this.network.duplicate ? 2 : 1
    if (copies === 2) this.count('message-duplicated')
    const key = pairKey(from, to)
    const epoch = this.epoch.get(key) ?? 0
    for (let i = 0; i < copies; i++) {
      let at = this.now + this.latency()
      const direction = `${from}>${to}`
      if (this.network.fifo) at = Math.max(at, this.lastDelivery.get(direction) ?? 0)
      else if (at < (this.lastDelivery.get(direction) ?? 0)) this.count('message-reordered')
      this.lastDelivery.set(direction, Math.max(at, this.lastDelivery.get(direction) ?? 0))
      this.later(at - this.now, () => {
        if (this.linked(from, to) && (this.epoch.get(key) ?? 0) === epoch) this.apply(this.agent(to), this.agent(to).member.receive(from, message, this.now))
      })
    }
  }

  /** Both ends learn that the connection a–b is gone; messages in flight on it are lost. */
  private sever(a: string, b: string): void {
    const key = pairKey(a, b)
    this.epoch.set(key, (this.epoch.get(key) ?? 0) + 1)
    if (this.agent(a).alive) this.apply(this.agent(a), this.agent(a).member.disconnected(b))
    if (this.agent(b).alive) this.apply(this.agent(b), this.agent(b).member.disconnected(a))
  }

  /** A fresh connection a–b: both ends send their hello. */
  private join(a: string, b: string): void {
    if (!this.linked(a, b)) return
    this.apply(this.agent(a), this.agent(a).member.connected(b, this.agent(b).hello()))
    if (this.linked(a, b)) this.apply(this.agent(b), this.agent(b).member.connected(a, this.agent(a).hello()))
  }

  /** The connection a–b breaks (in-flight messages lost); it is re-established after `reconnectMs`. */
  breakLink(a: string, b: string, reconnectMs: number): void {
    const key = pairKey(a, b)
    if (this.broken.has(key) || !this.linked(a, b)) return
    this.count('connection-broken')
    this.broken.add(key)
    this.sever(a, b)
    this.later(reconnectMs, () => {
      this.broken.delete(key)
      this.join(a, b)
    })
  }

  partition(a: string[], b: string[]): void {
    this.count('partition')
    for (const x of a) {
      for (const y of b) {
        const key = pairKey(x, y)
        if (x === y || this.cut.has(key)) continue
        this.cut.add(key)
        this.sever(x, y)
      }
    }
  }

  heal(): void {
    const pairs = [...this.cut]
    this.cut.clear()
    for (const pair of pairs) {
      const [x, y] = pair.split('|') as [string, string]
      this.join(x, y)
    }
  }

  /** No cut, no broken connection. */
  get whole(): boolean {
    return this.cut.size === 0 && this.broken.size === 0
  }

  // -------------------------------------------------------------------------------------------
  // Agents and their LNDs

  apply(agent: SimAgent, actions: MemberAction[]): void {
    const id = agent.spec.id
    const member = agent.member
    for (const action of actions) {
      // A crash in the middle of a batch: what follows never happened.
      if (!agent.alive || agent.member !== member) return
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
        case 'persist-view':
          agent.storage.servedTerm = action.servedTerm
          break
        case 'persist-record':
          this.later(action.durable ? DISK_MS : APPEND_MS, () => {
            if (!agent.alive || agent.member !== member) return
            agent.storage.records.push(action.record)
            agent.audit.push(toAuditRecord(action.record))
            const key = `${action.record.type}:${Buffer.from(action.record.hash).toString('hex')}`
            const byAgent = this.storedAt.get(key) ?? new Map<string, number>()
            if (!byAgent.has(id)) byAgent.set(id, this.now)
            this.storedAt.set(key, byAgent)
            this.onStored(agent, action.record)
            if (agent.alive && agent.member === member) this.apply(agent, member.recordPersisted(action.record))
          })
          break
        case 'edge-record':
          // A covered settle is applied already (its resolve follows); the record is for the audit.
          if (action.covered) break
          this.later(DISK_MS, () => {
            if (agent.alive && agent.member === member) this.apply(agent, member.edgeRecorded(action.id))
          })
          break
        case 'resolve':
          this.resolve(agent, action.htlc, action.decision)
          break
        case 'lookup-resolution':
          this.lookup(agent, action.node, action.circuit)
          break
      }
      this.onAction(agent, action)
    }
  }

  /** The driver hands a resolution to the agent's LND (or keeps it for the next stream). */
  private resolve(agent: SimAgent, htlc: EdgeHtlc, decision: Decision): void {
    const key = edgeHtlcId(htlc)
    if (!agent.lndUp) {
      agent.deferred.set(key, decision)
      return
    }
    const earlier = this.resolutions.find((r) => edgeHtlcId(r.htlc) === key)
    if (earlier !== undefined) {
      // lnd took one resolution per circuit; a replay must repeat it (invariant 4).
      if (earlier.by === 'lnd' && decision.action === 'settle') {
        this.violation('1-no-money-left-behind', `${key} settled at height ${this.height} after lnd failed it at its auto_fail_height ${htlc.autoFailHeight}`)
      } else if (earlier.by === 'agent' && !sameDecision(earlier.decision, decision)) {
        this.violation('4-one-resolution', `${key}: ${describe(earlier.decision)} then ${describe(decision)}`)
      } else this.replays++
      return
    }
    if (!agent.held.has(key)) return // not offered to this agent: the edge never resolves those
    this.resolutions.push({ agent: agent.spec.id, htlc, decision, at: this.now, height: this.height, by: 'agent' })
    agent.held.delete(key)
    const member = agent.member
    this.later(FINAL_MS, () => {
      if (agent.alive && agent.member === member && agent.lndUp) this.apply(agent, member.htlcFinal(htlc, decision.action === 'settle'))
    })
  }

  /** The agent asks its LND how an HTLC was finally resolved (LookupHtlcResolution). */
  private lookup(agent: SimAgent, node: string, circuit: { chanId: bigint; htlcId: bigint }): void {
    const key = edgeHtlcId({ node, circuit })
    const member = agent.member
    this.later(FINAL_MS, () => {
      const final = this.resolutions.find((r) => edgeHtlcId(r.htlc) === key && r.agent === agent.spec.id && this.now - r.at >= FINAL_MS)
      if (final !== undefined && agent.alive && agent.member === member && agent.lndUp) this.apply(agent, member.htlcFinal({ node, circuit }, final.decision.action === 'settle'))
    })
  }

  /** A new block on every LND; lnd fails held off-chain HTLCs that reached auto_fail_height. */
  mine(height: number): void {
    this.height = height
    for (const agent of this.agents.values()) {
      for (const [key, htlc] of agent.held) {
        if (htlc.onChain || height < htlc.autoFailHeight) continue
        agent.held.delete(key)
        agent.deferred.delete(key)
        this.resolutions.push({ agent: agent.spec.id, htlc, decision: { action: 'fail', failureCode: 'TEMPORARY_CHANNEL_FAILURE' }, at: this.now, height, by: 'lnd' })
        this.count('lnd-auto-fail')
        const attentive = agent.alive && agent.lndUp && this.now - agent.attentiveSince >= ATTENTIVE_MS
        if (attentive) this.violation('7-bounded-holding', `${key} held by a live agent until lnd failed it at height ${height} (auto_fail_height ${htlc.autoFailHeight})`)
        if (agent.alive && agent.lndUp) this.apply(agent, agent.member.htlcFinal(htlc, false))
      }
      if (agent.alive) this.newBlock(agent)
    }
  }

  serving(): SimAgent | undefined {
    return [...this.agents.values()].find((a) => a.alive && a.member.isServing())
  }

  /** lnd intercepts a new HTLC on one of `agentId`'s nodes. */
  offer(agentId: string, htlc: EdgeHtlc): void {
    const agent = this.agent(agentId)
    agent.held.set(edgeHtlcId(htlc), htlc)
    if (agent.alive && agent.lndUp) this.offerTo(agent, htlc)
  }

  /** As the agent runtime does: an HTLC offered within a block of its deadline is decided by a deadline check at once. */
  private offerTo(agent: SimAgent, htlc: EdgeHtlc): void {
    this.apply(agent, agent.member.htlc(htlc))
    if (agent.alive && agent.member.edge.nearDeadline(htlc, agent.member.chainHeight)) this.apply(agent, agent.member.checkDeadlines())
  }

  /** As the agent runtime does at a new block (and at a start): the member's height rules, then its deadlines. */
  private newBlock(agent: SimAgent): void {
    this.apply(agent, agent.member.blockHeight(this.height))
    if (agent.alive) this.apply(agent, agent.member.checkDeadlines())
  }

  kill(id: string): void {
    const agent = this.agent(id)
    if (!agent.alive) return
    this.count('agent-crash')
    agent.alive = false
    agent.deferred.clear() // the driver's memory goes with the process
    for (const other of this.agents.values()) if (other.spec.id !== id && other.alive) this.sever(id, other.spec.id)
  }

  restart(id: string): void {
    const agent = this.agent(id)
    if (agent.alive) return
    agent.alive = true
    agent.attentiveSince = this.now
    agent.member = agent.create()
    for (const other of this.agents.values()) if (other !== agent) this.join(id, other.spec.id)
    this.newBlock(agent)
    if (agent.lndUp) this.reoffer(agent)
  }

  /** The agent's stream to its LND breaks (lnd restarts, or the connection drops). */
  lndDown(id: string): void {
    const agent = this.agent(id)
    if (!agent.lndUp) return
    this.count('lnd-disconnect')
    agent.lndUp = false
  }

  /** The stream is back: deferred resolutions go out, then lnd re-offers every held HTLC. */
  lndUp(id: string): void {
    const agent = this.agent(id)
    if (agent.lndUp) return
    agent.lndUp = true
    agent.attentiveSince = this.now
    if (!agent.alive) return
    const deferred = [...agent.deferred]
    agent.deferred.clear()
    for (const [key, decision] of deferred) {
      const htlc = agent.held.get(key)
      if (htlc !== undefined) this.resolve(agent, htlc, decision)
    }
    this.newBlock(agent)
    this.reoffer(agent)
  }

  private reoffer(agent: SimAgent): void {
    for (const htlc of [...agent.held.values()]) if (agent.alive && agent.lndUp) this.offerTo(agent, htlc)
  }
}

export function sameDecision(a: Decision, b: Decision): boolean {
  if (a.action !== b.action) return false
  if (a.action === 'settle' && b.action === 'settle') return Buffer.from(a.preimage).equals(b.preimage)
  if (a.action === 'fail' && b.action === 'fail') {
    if ('failureCode' in a || 'failureCode' in b) return 'failureCode' in a && 'failureCode' in b && a.failureCode === b.failureCode
    return Buffer.from(a.failureMessage).equals(b.failureMessage)
  }
  return true
}

export function describe(d: Decision): string {
  if (d.action === 'settle') return 'settle'
  if (d.action === 'fail') return 'failureCode' in d ? `fail ${d.failureCode}` : 'fail (encrypted)'
  return d.action
}

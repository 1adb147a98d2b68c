// One seeded fault scenario over a whole cluster: a random topology (2–5 agents: candidates holding
// nodes, edges without the identity key, witnesses; 2–6 nodes, each held by exactly one agent),
// random multi-part payments across the nodes with an application that settles, cancels or forgets
// them, and random faults. The same seed always replays the same scenario, event for event.
//
// Phases: start (elect), faults (payments, application, faults), calm (everything healed and
// restarted, the application finishes), deadlines (blocks mined up to every held HTLC's deadline),
// then test/sim/invariants.ts checks the whole run.
import { ClusterSim, CALM_NETWORK, prng, type AgentSpec, type NetworkFaults, type SimAgent, type Violation } from './cluster.ts'
import { SIM_IDENTITY_KEY, simInvoice, simNode, simPart, type SimInvoice } from './payments.ts'
import { checkInvariants, type AppLog } from './invariants.ts'
import { NotLeaderError, type MemberAction } from '../../src/cluster/member.ts'
import { MuxError } from '../../src/mux/types.ts'
import { edgeHtlcId, type EdgeHtlc } from '../../src/edge/edge.ts'
import type { AuditRecord } from '../../src/audit/records.ts'

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex')

/** Simulated time between two rounds of the scenario's dice. */
const SLICE_MS = 100
const START_HEIGHT = 800_000
/** Blocks before auto_fail_height at which the leader stops holding (mux holdMarginBlocks). */
const HOLD_MARGIN_BLOCKS = 3

export type Plan = 'settle' | 'cancel' | 'never' | 'incomplete' | 'cancel-then-settle' | 'settle-then-cancel'

/** Where the leader dies in a settlement (DESIGN.md invariant 1: at every step). */
export type KillStep = 'none' | 'settle-requested' | 'settle-stored' | 'committed' | 'decision-sent' | 'resolved'

interface Payment {
  index: number
  inv: SimInvoice
  plan: Plan
  parts: { agent: string; htlc: EdgeHtlc }[]
  /** The latest set the cluster reported accepted for this hash. */
  setId?: Buffer
  acceptedAt?: number
  appDelayMs: number
  cancelAt: number
  nextAttempt: number
  settleCommitted: boolean
  cancelCommitted: boolean
  /** The application stopped trying (cancelled invoice, or nothing left to settle). */
  done: boolean
  payerRetries: number
}

export interface ScenarioReport {
  seed: number
  agents: number
  /** Roles in agent order: C candidate, E edge, W witness, with the nodes each holds (e.g. C2 E1 W0). */
  roles: string
  nodes: number
  payments: number
  settledPayments: number
  profile: string
  killStep: KillStep
  violations: Violation[]
  faults: Map<string, number>
  replays: number
  simulatedMs: number
  /** msat the nodes settled for the virtual node, as their LNDs resolved it. */
  settledMsat: bigint
  /** Each agent's audit core (test/sim/cluster.ts SimAgent.audit), by agent id. */
  audits: Map<string, AuditRecord[]>
}

interface Task {
  at: number
  run: () => void
}

class Scenario {
  readonly rng: () => number
  readonly sim: ClusterSim
  readonly specs: AgentSpec[]
  readonly payments: Payment[] = []
  readonly app: AppLog = { settleCalls: [], invoices: new Map() }
  readonly profile: 'stream' | 'lossy'
  readonly killStep: KillStep
  private killsLeft: number
  private decisionsSeen = 0
  private tasks: Task[] = []
  private nextHtlcId = 1n
  private readonly intensity: number
  private readonly streamNetwork: NetworkFaults
  /** Lossy windows: messages lost, duplicated and reordered one by one. */
  private readonly lossyNetwork: NetworkFaults
  private lossyUntil = 0

  constructor(
    readonly seed: number,
    options: ScenarioOptions
  ) {
    this.rng = prng(Math.imul(seed, 0x9e3779b1) ^ 0x243f6a88)
    this.specs = this.topology(options.agents)
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(this.rng() * xs.length)]!
    this.sim = new ClusterSim(this.specs, seed, {
      identityKey: SIM_IDENTITY_KEY,
      mppTimeoutMs: pick([3000, 8000, 60_000]),
      acceptTimeoutMs: pick([5000, 15_000, 600_000]),
      holdMarginBlocks: HOLD_MARGIN_BLOCKS
    })
    this.profile = this.rng() < 0.6 ? 'stream' : 'lossy'
    // Streams: each connection delivers in order, with latency up to 40 ms.
    this.streamNetwork = { latencyMs: [1, 1 + Math.floor(this.rng() * 40)], loss: 0, duplicate: 0, fifo: true }
    this.lossyNetwork = { latencyMs: [1, 80], loss: 0.01 + this.rng() * 0.04, duplicate: 0.01 + this.rng() * 0.04, fifo: false }
    this.killStep = pick(['none', 'settle-requested', 'settle-stored', 'committed', 'decision-sent', 'resolved'] as const)
    this.killsLeft = 1 + Math.floor(this.rng() * 2)
    this.intensity = 0.5 + this.rng() * 1.5
    this.sim.onAction = (agent, action) => this.observe(agent, action)
    this.sim.onStored = (agent, record) => {
      if (record.type === 'settle_requested' && this.killStep === 'settle-stored' && agent.member.leader === agent.spec.id) this.killLeaderNow(agent)
    }
  }

  /** Agent 0 is a candidate; the others are candidates, edges or witnesses; nodes go to candidates and edges. */
  private topology(count: number | undefined): AgentSpec[] {
    const drawn = 2 + Math.floor(this.rng() * 4)
    const agents = count ?? drawn
    const nodes = 2 + Math.floor(this.rng() * 5)
    const roles: ('candidate' | 'edge' | 'witness')[] = []
    for (let i = 0; i < agents; i++) {
      const r = this.rng()
      roles.push(i === 0 || r < 0.4 ? 'candidate' : r < 0.75 ? 'edge' : 'witness')
    }
    const held: string[][] = roles.map(() => [])
    const holders = roles.flatMap((role, i) => (role === 'witness' ? [] : [i]))
    const edges = holders.filter((i) => roles[i] === 'edge')
    for (let n = 0; n < nodes; n++) {
      // Every edge gets a node first (an edge without one would be a non-voting bystander).
      const holder = n < edges.length ? edges[n]! : holders[Math.floor(this.rng() * holders.length)]!
      held[holder]!.push(simNode(n).pubkey)
    }
    return roles.map((role, i) => {
      const r = role === 'edge' && held[i]!.length === 0 ? 'witness' : role
      return {
        id: (i + 1).toString(16).padStart(2, '0').repeat(32),
        nodes: held[i]!,
        candidate: r === 'candidate',
        witness: r === 'witness',
        priority: Math.floor(this.rng() * 3)
      }
    })
  }

  private int(n: number): number {
    return Math.floor(this.rng() * n)
  }

  private at(delayMs: number, run: () => void): void {
    this.tasks.push({ at: this.sim.now + delayMs, run })
  }

  private runTasksNow(): void {
    for (const t of this.tasks) t.at = Math.min(t.at, this.sim.now)
    this.runTasks()
  }

  private runTasks(): void {
    const due = this.tasks.filter((t) => t.at <= this.sim.now)
    this.tasks = this.tasks.filter((t) => t.at > this.sim.now)
    for (const t of due) t.run()
  }

  /** One slice of simulated time: tasks due, the application, then the clock. */
  private slice(faults: boolean): void {
    this.runTasks()
    if (faults) this.roll()
    this.application()
    this.sim.network = this.sim.now < this.lossyUntil ? this.lossyNetwork : this.streamNetwork
    this.sim.run(SLICE_MS)
  }

  // -------------------------------------------------------------------------------------------
  // Payments and the application

  private newPayment(): void {
    const index = this.payments.length
    const amountMsat = BigInt(1 + this.int(100)) * 1000n
    const expiryUnix = Math.floor(this.sim.now / 1000) + (this.rng() < 0.1 ? 20 : 3600)
    const random16 = Buffer.alloc(16)
    random16.writeUInt32BE(this.seed >>> 0, 0)
    random16.writeUInt32BE(index, 4)
    const inv = simInvoice(amountMsat, expiryUnix, random16)
    const r = this.rng()
    const plan: Plan = r < 0.45 ? 'settle' : r < 0.55 ? 'cancel' : r < 0.7 ? 'never' : r < 0.85 ? 'incomplete' : r < 0.93 ? 'cancel-then-settle' : 'settle-then-cancel'
    const payment: Payment = {
      index,
      inv,
      plan,
      parts: [],
      appDelayMs: this.int(2000),
      cancelAt: this.sim.now + this.int(6000),
      nextAttempt: 0,
      settleCommitted: false,
      cancelCommitted: false,
      done: false,
      payerRetries: this.rng() < 0.3 ? 1 : 0
    }
    this.payments.push(payment)
    this.app.invoices.set(hex(inv.paymentHash), { amountMsat, plan })
    this.sendParts(payment)
  }

  /** The payer splits the amount into 1–4 parts over random nodes, sent a little apart. */
  private sendParts(payment: Payment): void {
    const count = 1 + this.int(4)
    const amounts: bigint[] = []
    let left = payment.inv.amountMsat
    for (let i = 0; i < count - 1 && left > 1n; i++) {
      const a = 1n + BigInt(Math.floor(this.rng() * Number(left - 1n)))
      amounts.push(a)
      left -= a
    }
    amounts.push(left)
    // An incomplete payment never sends its last part (mpp_timeout).
    if (payment.plan === 'incomplete' && amounts.length > 1) amounts.pop()
    else if (payment.plan === 'incomplete') amounts[0] = amounts[0]! / 2n || 1n
    for (const amountMsat of amounts) {
      const nodeIndex = this.int(this.nodeCount())
      const node = simNode(nodeIndex)
      const holder = this.specs.find((s) => s.nodes.includes(node.pubkey))!
      this.at(this.int(1500), () => {
        const sessionKey = Buffer.alloc(32)
        sessionKey.writeUInt32BE(this.seed >>> 0, 0)
        sessionKey.writeUInt32BE(Number(this.nextHtlcId), 4)
        sessionKey[31] = 1
        const htlc = simPart(payment.inv, {
          node,
          chanId: BigInt(1 + this.int(3)),
          htlcId: this.nextHtlcId++,
          amountMsat,
          height: this.sim.height,
          extraCltv: this.rng() < 0.8 ? this.int(6) : 100,
          sessionKey
        })
        payment.parts.push({ agent: holder.id, htlc })
        this.sim.offer(holder.id, htlc)
      })
    }
  }

  private nodeCount(): number {
    return this.specs.reduce((n, s) => n + s.nodes.length, 0)
  }

  private observe(agent: SimAgent, action: MemberAction): void {
    switch (action.type) {
      case 'accepted': {
        const payment = this.payments.find((p) => p.inv.paymentHash.equals(action.hash))
        if (payment !== undefined) {
          payment.setId = Buffer.from(action.setId)
          payment.acceptedAt = this.sim.now
        }
        break
      }
      case 'committed':
      case 'abandoned': {
        const payment = this.payments.find((p) => p.inv.paymentHash.equals(action.record.hash))
        if (payment === undefined) break
        if (action.type === 'committed' && action.record.type === 'settle_requested') payment.settleCommitted = true
        if (action.type === 'committed' && action.record.type === 'cancelled') payment.cancelCommitted = true
        if (action.type === 'abandoned') payment.nextAttempt = this.sim.now
        if (action.type === 'committed' && action.record.type === 'settle_requested' && this.killStep === 'committed') this.killLeaderNow(agent)
        break
      }
      case 'persist-record':
        if (action.record.type === 'settle_requested' && this.killStep === 'settle-requested' && agent.member.leader === agent.spec.id) this.killLeaderNow(agent)
        break
      case 'send':
        if (action.message.type === 'htlc-decision' && action.message.resolution.kind === 'settle' && this.killStep === 'decision-sent') {
          if (++this.decisionsSeen % 2 === 1) this.killLeaderNow(agent)
        }
        break
      case 'resolve':
        if (action.decision.action === 'settle' && this.killStep === 'resolved') {
          const leader = [...this.sim.agents.values()].find((a) => a.alive && a.member.leader === a.spec.id)
          if (leader !== undefined) this.killLeaderNow(leader)
        }
        break
    }
  }

  private killLeaderNow(agent: SimAgent): void {
    if (this.killsLeft === 0 || !agent.alive) return
    this.killsLeft--
    this.sim.count(`leader-killed-at-${this.killStep}`)
    this.sim.kill(agent.spec.id)
    this.at(500 + this.int(5000), () => this.sim.restart(agent.spec.id))
  }

  /** What the application does now: settle accepted sets, cancel invoices, retry what failed. */
  private application(): void {
    const now = this.sim.now
    for (const p of this.payments) {
      if (p.done || now < p.nextAttempt) continue
      const settleWanted = p.plan === 'settle' || p.plan === 'settle-then-cancel' || (p.plan === 'cancel-then-settle' && p.cancelCommitted)
      const cancelWanted = (p.plan === 'cancel' || p.plan === 'cancel-then-settle') && now >= p.cancelAt && !p.cancelCommitted
      if (cancelWanted) this.call(p, 'cancel')
      else if (p.plan === 'settle-then-cancel' && p.settleCommitted) this.call(p, 'cancel')
      else if (settleWanted && !p.settleCommitted && p.setId !== undefined && now >= p.acceptedAt! + p.appDelayMs) this.call(p, 'settle')
      this.payerRetry(p)
    }
  }

  private call(p: Payment, what: 'settle' | 'cancel'): void {
    const leader = this.sim.serving()
    p.nextAttempt = this.sim.now + 300
    if (leader === undefined) return
    try {
      if (what === 'settle') {
        const actions = leader.member.settle(p.inv.paymentHash, p.setId!)
        this.app.settleCalls.push({ hash: hex(p.inv.paymentHash), setId: hex(p.setId!), at: this.sim.now })
        this.sim.apply(leader, actions)
        p.nextAttempt = this.sim.now + 1000
      } else {
        this.sim.apply(leader, leader.member.cancel(p.inv.paymentHash))
        p.nextAttempt = this.sim.now + 1000
      }
    } catch (err) {
      if (err instanceof NotLeaderError) return
      if (!(err instanceof MuxError)) throw err
      this.refused(p, what, err)
    }
  }

  /** A typed refusal: what the application makes of it. */
  private refused(p: Payment, what: 'settle' | 'cancel', err: MuxError): void {
    if (what === 'cancel' && err.code === 'invoice_settled') {
      // Only a settle-then-cancel application ever asked to settle before cancelling.
      if (p.plan !== 'settle-then-cancel') this.sim.violation('3-settle-only-when-asked', `payment ${p.index} (${p.plan}): cancel refused as settled, but the application never settled it`)
      p.done = true
    } else if (what === 'settle' && err.code === 'invoice_cancelled') {
      if (p.plan === 'settle' || p.plan === 'settle-then-cancel') this.sim.violation('2-one-set', `payment ${p.index} (${p.plan}): settle refused as cancelled, but nobody cancelled it`)
      p.done = true
    } else if (what === 'settle' && ['not_accepted', 'invoice_not_found', 'set_id_mismatch'].includes(err.code)) {
      // The accepted set failed (timeout, deadline) or a new leader has not seen it again yet.
      p.nextAttempt = this.sim.now + 500
    } else throw err
  }

  /** A payer whose parts all failed tries once more with new HTLCs (a second set for one hash). */
  private payerRetry(p: Payment): void {
    if (p.payerRetries === 0 || p.parts.length === 0 || p.settleCommitted) return
    const resolved = p.parts.map((part) => this.sim.resolutions.find((r) => r.agent === part.agent && r.htlc === part.htlc))
    if (resolved.some((r) => r === undefined || r.decision.action === 'settle')) return
    p.payerRetries--
    this.sim.count('payer-retry')
    this.sendParts(p)
  }

  // -------------------------------------------------------------------------------------------
  // Faults

  private chance(perSlice: number): boolean {
    return this.rng() < perSlice * this.intensity
  }

  private randomAgent(filter: (a: SimAgent) => boolean = () => true): SimAgent | undefined {
    const xs = [...this.sim.agents.values()].filter(filter)
    return xs.length === 0 ? undefined : xs[this.int(xs.length)]
  }

  private roll(): void {
    const sim = this.sim
    if (this.payments.length < this.maxPayments && this.chance(0.03)) this.newPayment()
    if (this.chance(0.008)) {
      // Half the crashes hit the leader, whichever step it is at.
      const victim = this.rng() < 0.5 ? sim.serving() : this.randomAgent((a) => a.alive)
      if (victim !== undefined) {
        sim.kill(victim.spec.id)
        this.at(300 + this.int(8000), () => sim.restart(victim.spec.id))
      }
    }
    if (this.chance(0.008)) {
      const victim = this.randomAgent((a) => a.spec.nodes.length > 0 && a.lndUp)
      if (victim !== undefined) {
        sim.lndDown(victim.spec.id)
        this.at(100 + this.int(5000), () => sim.lndUp(victim.spec.id))
      }
    }
    if (this.chance(0.02)) {
      const a = this.randomAgent()!
      const b = this.randomAgent((x) => x !== a)
      if (b !== undefined) sim.breakLink(a.spec.id, b.spec.id, 20 + this.int(2000))
    }
    if (this.chance(0.006)) {
      const ids = [...sim.agents.keys()]
      const side = ids.filter(() => this.rng() < 0.5)
      if (side.length > 0 && side.length < ids.length) {
        sim.partition(side, ids.filter((id) => !side.includes(id)))
        this.at(500 + this.int(10_000), () => sim.heal())
      }
    }
    if (this.profile === 'lossy' && this.chance(0.01)) {
      sim.count('lossy-window')
      this.lossyUntil = sim.now + 500 + this.int(4000)
    }
    if (this.chance(0.004)) {
      sim.count('clock-jump')
      sim.advance(2000 + this.int(70_000))
    }
    if (this.chance(0.04)) this.mineSafely(1)
    if (this.chance(0.004)) this.mineSafely(5 + this.int(30))
  }

  private get maxPayments(): number {
    return 1 + (this.seed % 6)
  }

  /**
   * Every node holder, its LND and the network are up and a leader serves: a deadline reached now
   * must be met by the cluster itself.
   */
  private calm(): boolean {
    const sim = this.sim
    if (!sim.whole || sim.now < this.lossyUntil || sim.serving() === undefined) return false
    return [...sim.agents.values()].every((a) => a.spec.nodes.length === 0 || (a.alive && a.lndUp))
  }

  /**
   * Mines up to `blocks` blocks, one per slice; a block that brings a held HTLC to the leader's
   * hold margin is mined only while calm (otherwise an edge cut off from every holder of a
   * preimage would have to fail a part of a settled set: not a fault the design claims to survive).
   */
  private mineSafely(blocks: number): void {
    for (let i = 0; i < blocks; i++) {
      const next = this.sim.height + 1
      const near = [...this.sim.agents.values()].some((a) => [...a.held.values()].some((h) => next >= h.autoFailHeight - HOLD_MARGIN_BLOCKS - 1))
      if (near && !this.calm()) return
      this.sim.count('block')
      this.sim.mine(next)
      this.sim.run(SLICE_MS)
    }
  }

  // -------------------------------------------------------------------------------------------
  // The run

  run(): ScenarioReport {
    const sim = this.sim
    const started = sim.now
    try {
      sim.mine(START_HEIGHT)
      sim.runUntil(() => sim.serving() !== undefined, 20_000)
      const faultMs = 15_000 + this.int(25_000)
      const end = sim.now + faultMs
      this.newPayment()
      while (sim.now < end) this.slice(true)
      this.calmDown()
      // The application finishes while everything is up.
      const settleBy = sim.now + 20_000
      while (sim.now < settleBy && this.payments.some((p) => this.busy(p))) this.slice(false)
      // Leaders may have died at settlement steps meanwhile: their restarts are due by now, and
      // no more die, so that what the application settles while deadlines pass can complete.
      this.killsLeft = 0
      this.runTasksNow()
      this.expectLeader('the application finished')
      // Let the cluster quiesce past an edge's re-forward period before deadlines are mined: a
      // decision dropped at the very end is asked for again within it.
      for (const stop = sim.now + 6_000; sim.now < stop; ) this.slice(false)
      this.deadlines()
      // Payers may retry as their first parts fail at those deadlines: the new parts are settled or
      // reach their own deadlines too, rather than the run ending in the middle of a settlement.
      for (let round = 0; round < 4; round++) {
        for (let i = 0; i < 30; i++) this.slice(false)
        if (!this.payments.some((p) => this.busy(p))) break
        for (const stop = sim.now + 20_000; sim.now < stop && this.payments.some((p) => this.busy(p)); ) this.slice(false)
        this.deadlines()
      }
      // Settled sets whose final resolutions the leader has not heard yet: it asks their holders
      // every few seconds (the audit statement counts an invoice once its final record is written).
      const unfinished = (): boolean => (sim.serving()?.member.virtualNode?.pendingResolutions().length ?? 0) > 0
      for (const stop = sim.now + 15_000; sim.now < stop && unfinished(); ) this.slice(false)
      // ... and the final records the last answers produce reach the stores.
      for (let i = 0; i < 3; i++) this.slice(false)
    } catch (err) {
      sim.violation('8-no-crash', `${(err as Error).stack ?? String(err)}`)
    }
    const violations = [...sim.violations]
    if (!violations.some((v) => v.invariant === '8-no-crash')) violations.push(...checkInvariants(sim, this.app))
    return {
      seed: this.seed,
      agents: this.specs.length,
      roles: this.specs.map((s) => `${s.candidate ? 'C' : s.witness ? 'W' : 'E'}${s.nodes.length}`).join(' '),
      nodes: this.nodeCount(),
      payments: this.payments.length,
      settledPayments: this.payments.filter((p) => p.settleCommitted).length,
      profile: this.profile,
      killStep: this.killStep,
      violations,
      faults: sim.faults,
      replays: sim.replays,
      simulatedMs: sim.now - started,
      settledMsat: sim.resolutions.reduce((sum, r) => (r.by === 'agent' && r.decision.action === 'settle' ? sum + r.htlc.outgoingAmountMsat : sum), 0n),
      audits: new Map([...sim.agents.values()].map((a) => [a.spec.id, a.audit]))
    }
  }

  /** Heal every partition and connection, restart every agent and LND, stop losing messages. */
  private calmDown(): void {
    const sim = this.sim
    this.tasks = []
    // No more leader kills: their restarts were scheduled as tasks, which calming down drops.
    this.killsLeft = 0
    this.lossyUntil = 0
    sim.network = CALM_NETWORK
    sim.heal()
    for (const a of sim.agents.values()) sim.restart(a.spec.id)
    for (const a of sim.agents.values()) sim.lndUp(a.spec.id)
    sim.runUntil(() => sim.whole, 5000)
    this.expectLeader('every agent, LND and link is back')
  }

  /** Fail-over takes under 5 s (DESIGN.md); with everything up, a leader must serve well within 20 s. */
  private expectLeader(since: string): void {
    const sim = this.sim
    const took = sim.runUntil(() => sim.serving() !== undefined, 20_000)
    const reported = sim.violations.some((v) => v.invariant === 'liveness')
    if (sim.serving() === undefined && !reported) sim.violation('liveness', `no leader serves ${took} ms after ${since}`)
  }

  private busy(p: Payment): boolean {
    if (p.done) return false
    const wantsSettle = p.plan === 'settle' || p.plan === 'settle-then-cancel'
    const held = p.parts.some((part) => this.sim.agent(part.agent).held.has(edgeHtlcId(part.htlc)))
    return (wantsSettle && !p.settleCommitted && held) || (p.settleCommitted && held)
  }

  /** Mines block by block to each held HTLC's deadline, so that everything ends resolved. */
  private deadlines(): void {
    const sim = this.sim
    for (let guard = 0; guard < 400; guard++) {
      const held = [...sim.agents.values()].flatMap((a) => [...a.held.values()])
      if (held.length === 0) return
      const next = Math.max(sim.height + 1, Math.min(...held.map((h) => h.autoFailHeight - HOLD_MARGIN_BLOCKS - 1)))
      sim.count('block')
      sim.mine(next)
      for (let i = 0; i < 3; i++) this.slice(false)
    }
  }
}

export interface ScenarioOptions {
  /** Force the number of agents (2–5); otherwise the seed draws it. */
  agents?: number
}

export function runScenario(seed: number, options: ScenarioOptions = {}): ScenarioReport {
  if (options.agents !== undefined && !(Number.isInteger(options.agents) && options.agents >= 2 && options.agents <= 5)) {
    throw new RangeError(`agents must be an integer from 2 to 5, got ${options.agents}`)
  }
  return new Scenario(seed, options).run()
}


// One agent's part in the cluster, as a pure state machine: the election, the edge for the agent's
// own LND nodes, and, while this agent leads, the virtual node's mux. Inputs are method calls
// (messages from peers, HTLCs from the agent's own nodes, durable-write acknowledgements, the clock);
// outputs are actions for the driver (send, persist, resolve on LND). No IO and no timers, so a seeded
// simulation can drive whole clusters through faults (DESIGN.md "Invariants").
//
// What the cluster adds to the single-node rules:
//  - Write-ahead to a majority (invariants 1, 2, 6): a settle or cancel record is stored by the leader
//    AND acknowledged by a majority of voters before a cancel is confirmed or a preimage reaches an
//    lnd. A preimage leaves the leader once it stored the record itself: at once to a voter whose own
//    copy completes the majority (the edge applies it only after storing that copy: settleEarly),
//    to the others on commit. A new leader wins only with a majority of votes, so at least one voter
//    it hears from while gathering holds every such record.
//  - Gathering: a new leader collects the settle, cancel and final records of every reachable member
//    before it serves; until then offers wait.
//  - Fencing (invariant 5): edges accept decisions only from the leader and term they forwarded to
//    (src/edge/edge.ts); a leader accepts offers only for the nodes the offering agent announced.
import { createHash } from 'node:crypto'
import { Election, majority, type ElectionAction, type ElectionMessage } from './election.ts'
import { MAX_CIRCUITS_PER_QUERY, type Hello, type HtlcDecision, type HtlcOffer, type Message, type Resolution } from './messages.ts'
import { Edge, edgeHtlcId, type EdgeAction, type EdgeHtlc } from '../edge/edge.ts'
import type { Decision as InterceptorDecision } from '../lnd/circuits.ts'
import { settlePreimage, type MuxLedger } from '../mux/ledger.ts'
import { MuxMachine, type MuxOptions } from '../mux/machine.ts'
import { decodeRecord, encodeRecord } from '../mux/records.ts'
import type { Circuit, Decision, FailReason, InterceptedHtlc, MuxOutput, MuxRecord } from '../mux/types.ts'
import { byApplyOrder, recordKey, resolveGathered } from './supersede.ts'
import { CodedError } from '../errors.ts'

export interface MemberTiming {
  leaseMs: number
  heartbeatMs: number
  clockDriftMs: number
  electionTimeoutMs: readonly [number, number]
  /** How long a new leader waits for members' records before serving with what it has. */
  gatherTimeoutMs: number
  /**
   * Once a majority of voters has answered, how much longer to wait for the rest. A committed record
   * is held by a majority, so any majority of answers contains it; the others may be dead peers whose
   * connections have not timed out yet.
   */
  gatherGraceMs: number
}

/**
 * Fail-over in about 3.6 s at worst: voters stay bound to the old leader's lease for 2.5 s after its
 * last renewal; a candidate stands 2.8–3.6 s after it (after the binding ended, so the first round
 * usually succeeds), within DESIGN.md's 5 s target.
 */
export const DEFAULT_TIMING: MemberTiming = {
  leaseMs: 2500,
  heartbeatMs: 600,
  clockDriftMs: 250,
  electionTimeoutMs: [2800, 3600],
  gatherTimeoutMs: 1000,
  gatherGraceMs: 150
}

/** Shorter leases for demos and tests on one machine: fail-over in about two seconds. */
export const QUICK_TIMING: MemberTiming = {
  leaseMs: 1500,
  heartbeatMs: 300,
  clockDriftMs: 150,
  electionTimeoutMs: [1700, 2300],
  gatherTimeoutMs: 1000,
  gatherGraceMs: 150
}

export interface MemberOptions {
  /** This agent's key, hex. */
  self: string
  /** The LND nodes this agent holds (33-byte pubkeys, hex). */
  nodes: string[]
  /** Present on candidates: what the mux needs, minus the clock. */
  mux: Omit<MuxOptions, 'now'> | null
  /** Witnesses vote; so does every agent that holds a node. */
  witness: boolean
  /**
   * The voters, fixed by configuration (cluster.voters); empty: learnt from hellos and persisted.
   * A fixed set lets an agent that has not met the others yet count them all, so that it never
   * elects itself alone on a first start.
   */
  voters?: readonly string[]
  priority: number
  timing: MemberTiming
  /**
   * Durable state from the previous run. `records`: the mux records it holds, verified with the
   * mux's identity key on a candidate (the member owns the ledger from now on).
   */
  persisted: { term: number; votedFor: string | null; voters: string[]; servedTerm?: number; records: MuxLedger }
  now: number
  /**
   * The mux's clock between ticks (its timers start at an HTLC's arrival); by default the time of
   * the last tick or message, which is what a simulation wants.
   */
  clock?: () => number
  random: () => number
  /** Edge: blocks before auto_fail_height at which an undecided HTLC is failed. */
  deadlineMarginBlocks: number
}

export type MemberAction =
  | { type: 'send'; to: string; message: Message }
  | { type: 'broadcast'; message: Message }
  /** Durable before the sends that follow it (Raft). */
  | { type: 'persist-vote'; term: number; votedFor: string | null }
  | { type: 'persist-voters'; voters: string[] }
  /** The highest term this member saw a leader in (its election view): durable, like the vote. */
  | { type: 'persist-view'; servedTerm: number }
  /**
   * Append, then call recordPersisted(record): durably, except a final record (`durable` false), which
   * only reports what lnd did and is looked up again on lnd should it be lost.
   */
  | { type: 'persist-record'; record: MuxRecord; durable: boolean }
  /**
   * Append the edge's decision. Durably, then call edgeRecorded(id), unless it is `covered`: a settle
   * of an HTLC that a settle record this member stored durably lists. That record is the decision's
   * write-ahead, so the decision is applied at once (a `resolve` follows) and appended for the audit.
   */
  | { type: 'edge-record'; id: string; term: number; from: string; decision: InterceptorDecision; covered: boolean }
  | { type: 'resolve'; htlc: EdgeHtlc; decision: InterceptorDecision }
  /** Ask this agent's lnd how it finally resolved the HTLC; if it did, call htlcFinal. */
  | { type: 'lookup-resolution'; node: string; circuit: { chanId: bigint; htlcId: bigint } }
  | { type: 'leader'; term: number; leader: string | null }
  | { type: 'serving'; term: number; records: number }
  | { type: 'accepted'; hash: Uint8Array; setId: Uint8Array; amountMsat: bigint; parts: number }
  | { type: 'final'; hash: Uint8Array; setId: Uint8Array; status: 'settled' | 'failed' }
  /** A settle or cancel is durable on a majority: the API call that asked for it may return. */
  | { type: 'committed'; record: MuxRecord }
  /** Leadership was lost before the record was committed: the API call fails (not leader). */
  | { type: 'abandoned'; record: MuxRecord }
  | { type: 'reject'; from: string; reason: string; detail?: string }

interface Peer {
  hello: Hello
  voter: boolean
  nodes: Set<string>
}

interface PendingCommit {
  record: MuxRecord
  /** recordBytes(record): what every notice of it carries. */
  encoded: Buffer
  stored: boolean
  acks: Set<string>
  /** Holders of the set's HTLCs sent its settle decisions before the record was committed. */
  early: Set<string>
  /** A gathered record committed again by a new leader: the mux holds it already. */
  recommit?: boolean
}

/** A settle decision that waits until this member stored the settle record it rests on. */
interface UncommittedDecision {
  from: string
  term: number
  id: string
  decision: InterceptorDecision
}

/** How often an edge sends its undecided HTLCs to the leader again. */
const REFORWARD_MS = 5000

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex')
const bytes = (h: string): Buffer => Buffer.from(h, 'hex')

export function recordBytes(record: MuxRecord): Buffer {
  return Buffer.from(encodeRecord(record))
}

function digestOf(recordBytes: Uint8Array): string {
  return createHash('sha256').update(recordBytes).digest('hex')
}

/**
 * Failures a leader decides from its own clock, height or arrival order, which an earlier leader may
 * have decided otherwise: before one leaves, a `parts_failed` record for its hash is committed, unless
 * the leader knows a settle record for that hash (src/cluster/supersede.ts). The other reasons follow
 * from the HTLC and the invoice alone, or from a record the leader holds.
 */
const FENCED_REASONS: ReadonlySet<FailReason> = new Set(['invoice_expired', 'expiry_too_soon', 'overpayment', 'mpp_timeout', 'accept_timeout', 'hold_limit'])

function toResolution(decision: Decision): Resolution {
  if (decision.action === 'settle') return { kind: 'settle', preimage: decision.preimage }
  if ('failureMessage' in decision) return { kind: 'fail', message: decision.failureMessage }
  return { kind: 'fail-code', code: decision.failureCode }
}

function toDecision(resolution: Resolution): Decision {
  if (resolution.kind === 'settle') return { action: 'settle', preimage: resolution.preimage }
  if (resolution.kind === 'fail') return { action: 'fail', failureMessage: resolution.message }
  return { action: 'fail', failureCode: resolution.code }
}

function offerOf(htlc: EdgeHtlc, term: number, height: number): HtlcOffer {
  return {
    type: 'htlc-offer',
    term,
    circuit: { node: bytes(htlc.node), chanId: htlc.circuit.chanId, htlcId: htlc.circuit.htlcId },
    paymentHash: htlc.paymentHash,
    incomingMsat: htlc.incomingAmountMsat,
    outgoingMsat: htlc.outgoingAmountMsat,
    incomingExpiry: htlc.incomingExpiry,
    outgoingExpiry: htlc.outgoingExpiry,
    outgoingRequestedChanId: htlc.outgoingRequestedChanId,
    onion: htlc.onionBlob,
    autoFailHeight: htlc.autoFailHeight,
    currentHeight: height
  }
}

/** The mux's view of an HTLC an edge offered. */
export function muxHtlcOf(offer: HtlcOffer): InterceptedHtlc {
  return {
    circuit: offer.circuit,
    incomingAmountMsat: offer.incomingMsat,
    outgoingAmountMsat: offer.outgoingMsat,
    incomingExpiry: offer.incomingExpiry,
    outgoingExpiry: offer.outgoingExpiry,
    outgoingRequestedChanId: offer.outgoingRequestedChanId,
    onionBlob: offer.onion,
    paymentHash: offer.paymentHash,
    autoFailHeight: offer.autoFailHeight,
    currentHeight: offer.currentHeight
  }
}

export class ClusterMember {
  readonly self: string
  private readonly opts: MemberOptions
  readonly election: Election
  readonly edge: Edge
  private readonly peers = new Map<string, Peer>()
  private readonly voters: Set<string>
  private readonly fixedVoters: boolean
  /** Settle, cancel, final and parts_failed records this member holds durably (the newest copy of each). */
  private readonly ledger: MuxLedger
  /** Records being stored for a leader's notice: digest → leader to acknowledge. */
  private readonly noticeAcks = new Map<string, { leader: string; term: number }>()
  /**
   * Records handed to the driver to store, until it reports them stored: record → its digest (an
   * encoding and a SHA-256 each, ~13 µs, that recordPersisted would otherwise repeat). A store that
   * fails leaves its entry, as it leaves the record without effect.
   */
  private readonly persisting = new Map<MuxRecord, string>()
  private now: number
  private height = 0
  /** Highest term in which this member saw a leader (its election view; persisted). */
  servedTerm = 0

  // Leader state, valid while this agent leads `leaderTerm`.
  private leaderTerm = 0
  private mux: MuxMachine | null = null
  private gathering: {
    term: number
    waiting: Set<string>
    answered: Set<string>
    records: MuxRecord[]
    /** Per record digest, the members that answered holding it. */
    holders: Map<string, Set<string>>
    deadline: number
  } | null = null
  /** Gathered records held by less than a majority, being committed again before we serve. */
  private readonly recommitting = new Set<string>()
  private queuedOffers: { from: string; offer: HtlcOffer }[] = []
  private readonly commits = new Map<string, PendingCommit>()
  /** Edge: settle decisions sent before their record was committed, by that record's digest. */
  private readonly uncommitted = new Map<string, UncommittedDecision[]>()
  /** Hashes whose parts_failed record this leadership committed: their failures may leave. */
  private readonly fencedHashes = new Set<string>()
  /** Failures waiting for their hash's parts_failed record, by hash: circuit key → decision. */
  private readonly fencing = new Map<string, Map<string, { circuit: Circuit; decision: Decision }>>()
  private servedRecords = 0
  private lastReforward = 0

  constructor(opts: MemberOptions) {
    this.opts = opts
    this.self = opts.self
    this.now = opts.now
    const voter = opts.nodes.length > 0 || opts.witness
    this.election = new Election(
      {
        self: opts.self,
        candidate: opts.mux !== null,
        voter,
        priority: opts.priority,
        leaseMs: opts.timing.leaseMs,
        heartbeatMs: opts.timing.heartbeatMs,
        clockDriftMs: opts.timing.clockDriftMs,
        electionTimeoutMs: opts.timing.electionTimeoutMs,
        persisted: { term: opts.persisted.term, votedFor: opts.persisted.votedFor }
      },
      opts.now,
      opts.random
    )
    this.edge = new Edge({ self: opts.self, deadlineMarginBlocks: opts.deadlineMarginBlocks })
    const fixed = opts.voters ?? []
    if (fixed.length > 0 && fixed.includes(opts.self) !== voter) {
      throw new Error(voter
        ? `cluster.voters does not list this agent (${opts.self}), which votes: it holds a node or is a witness`
        : `cluster.voters lists this agent (${opts.self}), which cannot vote: it holds no node and is no witness`)
    }
    this.fixedVoters = fixed.length > 0
    this.voters = new Set(this.fixedVoters ? fixed : opts.persisted.voters)
    if (voter) this.voters.add(opts.self)
    this.election.setVoters(this.voters)
    this.ledger = opts.persisted.records
    this.servedTerm = opts.persisted.servedTerm ?? 0
    this.updateView()
  }

  get leader(): string | null {
    return this.election.leader
  }

  get term(): number {
    return this.election.term
  }

  /** True while this agent leads, has gathered, and holds a majority lease: it may decide. */
  isServing(): boolean {
    return this.mux !== null && this.gathering === null && this.recommitting.size === 0 && this.election.isLeaseHeld(this.now)
  }

  /** The leader's mux, for queries by the API (status, accepted sets, settlements). */
  get virtualNode(): MuxMachine | null {
    return this.isServing() ? this.mux : null
  }

  knownRecords(): number {
    return this.ledger.size
  }

  voterIds(): ReadonlySet<string> {
    return this.voters
  }

  // -------------------------------------------------------------------------------------------
  // Membership

  /** A peer proved the secret and sent its hello. */
  connected(peer: string, hello: Hello): MemberAction[] {
    const voter = hello.nodes.length > 0 || hello.role === 'witness'
    this.peers.set(peer, { hello, voter, nodes: new Set(hello.nodes.map((n) => hex(n.pubkey))) })
    const out: MemberAction[] = []
    // Notices still waiting for a majority, and settles sent ahead of them, may have been lost with
    // the old connection.
    for (const commit of this.commits.values()) {
      if (commit.record.type !== 'final') out.push({ type: 'send', to: peer, message: { type: 'record-notice', term: this.leaderTerm, record: commit.encoded } })
      commit.early.delete(peer)
    }
    // Offers or decisions may have been lost with the old connection to the leader.
    if (peer === this.election.leader) out.push(...this.fromEdge(this.edge.reforward(peer)))
    if (!voter || this.voters.has(peer) || this.fixedVoters) return out
    this.voters.add(peer)
    this.election.setVoters(this.voters)
    out.push({ type: 'persist-voters', voters: [...this.voters] })
    return out
  }

  disconnected(peer: string): MemberAction[] {
    this.peers.delete(peer)
    // A member that leaves while we gather cannot answer: serve with what the others gave.
    if (this.gathering?.waiting.delete(peer) && this.gathering.waiting.size === 0) return this.finishGathering()
    return []
  }

  // -------------------------------------------------------------------------------------------
  // Inputs

  tick(now: number): MemberAction[] {
    this.now = now
    const actions = this.fromElection(this.election.tick(now, this.opts.random))
    // An offer or its decision can be lost without the connection breaking (a peer that restarted
    // its side, a dropped frame): undecided HTLCs go to the leader again now and then.
    const leader = this.election.leader
    if (now - this.lastReforward >= REFORWARD_MS && leader !== null) {
      this.lastReforward = now
      actions.push(...this.fromEdge(this.edge.reforward(leader)))
      // Likewise a leader's notices still short of a majority go again.
      for (const commit of this.commits.values()) {
        if (commit.record.type !== 'final') actions.push({ type: 'broadcast', message: { type: 'record-notice', term: this.leaderTerm, record: commit.encoded } })
      }
      // A set settled less than a period ago is most likely still on its way to lnd's final event.
      actions.push(...this.resolutionLookups(now - REFORWARD_MS))
    }
    if (this.gathering !== null && now >= this.gathering.deadline) actions.push(...this.finishGathering())
    actions.push(...this.drainQueue())
    if (this.isServing()) actions.push(...this.fromMux(this.mux!.tick()))
    return actions
  }

  /**
   * The serving leader's settled-set HTLCs whose final resolution it has not heard: its own nodes'
   * are looked up on its lnd, the others are asked of their holders (a resolution reported to a
   * previous leader, or while nobody led, is otherwise lost, and the set never recorded final).
   * Only sets whose settlement was requested before `requestedBefore` (ms), if given.
   */
  resolutionLookups(requestedBefore = Infinity): MemberAction[] {
    if (!this.isServing()) return []
    const out: MemberAction[] = []
    const byHolder = new Map<string, Circuit[]>()
    for (const circuit of this.mux!.pendingResolutions(requestedBefore)) {
      const node = hex(circuit.node)
      if (this.opts.nodes.includes(node)) {
        out.push({ type: 'lookup-resolution', node, circuit: { chanId: circuit.chanId, htlcId: circuit.htlcId } })
        continue
      }
      const holder = this.holderOf(node)
      if (holder !== undefined) byHolder.set(holder, [...(byHolder.get(holder) ?? []), circuit])
    }
    for (const [to, circuits] of byHolder) {
      for (let i = 0; i < circuits.length; i += MAX_CIRCUITS_PER_QUERY) {
        out.push({ type: 'send', to, message: { type: 'resolution-query', term: this.leaderTerm, circuits: circuits.slice(i, i + MAX_CIRCUITS_PER_QUERY) } })
      }
    }
    return out
  }

  /** An agent running without a cluster: elect itself now rather than after the election timeout. */
  standAlone(): MemberAction[] {
    return this.fromElection(this.election.standNow(this.now, this.opts.random))
  }

  /**
   * An HTLC one of this agent's own nodes intercepted for its virtual scid. The edge decides nothing
   * at offer time: one within a block of its deadline waits for the driver's checkDeadlines call.
   */
  htlc(htlc: EdgeHtlc): MemberAction[] {
    return this.fromEdge(this.edge.offer(htlc))
  }

  /** The highest block height the driver reported. */
  get chainHeight(): number {
    return this.height
  }

  /** A new best block: the leader's mux fails what its height rules out. The edge's deadlines are `checkDeadlines`. */
  blockHeight(height: number): MemberAction[] {
    this.height = Math.max(this.height, height)
    return this.isServing() ? this.fromMux(this.mux!.blockHeight(height)) : []
  }

  /**
   * The edge fails (or settles, where a settle is known) every undecided HTLC at its deadline at the
   * chain height: after each block, and after an offer within a block of its deadline. A driver that
   * reads the audit cores for settle decisions (settleScanDue) does so first.
   */
  checkDeadlines(): MemberAction[] {
    return this.fromEdge(this.edge.height(this.height))
  }

  /** The driver stored the edge's decision `id`: it may now be applied on LND. */
  edgeRecorded(id: string): MemberAction[] {
    return this.fromEdge(this.edge.recorded(id))
  }

  /** lnd's final resolution of one of this agent's HTLCs. */
  htlcFinal(htlc: { node: string; circuit: { chanId: bigint; htlcId: bigint } }, settled: boolean): MemberAction[] {
    this.edge.resolved(edgeHtlcId(htlc))
    const circuit: Circuit = { node: bytes(htlc.node), chanId: htlc.circuit.chanId, htlcId: htlc.circuit.htlcId }
    if (this.isServing()) return this.fromMux(this.mux!.htlcResolved(circuit, settled))
    const leader = this.election.leader
    if (leader === null || leader === this.self) return []
    return [{ type: 'send', to: leader, message: { type: 'htlc-resolved', term: this.term, circuit, settled } }]
  }

  /** The driver stored `record` durably (for our own leadership, or for a leader's notice). */
  recordPersisted(record: MuxRecord): MemberAction[] {
    const digest = this.persisting.get(record) ?? digestOf(recordBytes(record))
    this.persisting.delete(record)
    this.ledger.add(record)
    this.updateView()
    const actions: MemberAction[] = []
    const notice = this.noticeAcks.get(digest)
    if (notice !== undefined) {
      this.noticeAcks.delete(digest)
      actions.push({ type: 'send', to: notice.leader, message: { type: 'record-ack', term: notice.term, digest: Buffer.from(digest, 'hex') } })
    }
    const commit = this.commits.get(digest)
    if (commit !== undefined) {
      commit.stored = true
      actions.push(...this.tryCommit(digest, commit))
    }
    const waiting = this.uncommitted.get(digest)
    if (waiting !== undefined) {
      this.uncommitted.delete(digest)
      // Only in the term they came in: once we moved on, a new leader may have gathered our records
      // without this one, and the HTLCs wait for it instead.
      for (const d of waiting) if (d.term === this.term) actions.push(...this.fromEdge(this.edge.decide(d.from, d.term, d.id, d.decision)))
    }
    return actions
  }

  /** The application settles an accepted set (lnmux SettleInvoice); only the serving leader can. */
  settle(hash: Uint8Array, setId: Uint8Array): MemberAction[] {
    return this.fromMux(this.servingMux().settle(hash, setId))
  }

  cancel(hash: Uint8Array): MemberAction[] {
    return this.fromMux(this.servingMux().cancel(hash))
  }

  receive(from: string, message: Message, now: number): MemberAction[] {
    this.now = now
    switch (message.type) {
      case 'vote-request':
      case 'vote':
      case 'lease':
      case 'lease-ack':
        return this.fromElection(this.election.receive(from, this.toElection(message), now, this.opts.random)).concat(this.drainQueue())
      case 'htlc-offer':
        return this.onOffer(from, message)
      case 'htlc-decision':
        return this.onDecision(from, message)
      case 'htlc-resolved':
        if (!this.isServing() || message.term !== this.leaderTerm || !this.peers.get(from)?.nodes.has(hex(message.circuit.node))) return []
        return this.fromMux(this.mux!.htlcResolved(message.circuit, message.settled))
      case 'resolution-query':
        if (from !== this.election.leader || message.term !== this.term) return []
        return message.circuits
          .filter((c) => this.opts.nodes.includes(hex(c.node)))
          .map((c) => ({ type: 'lookup-resolution' as const, node: hex(c.node), circuit: { chanId: c.chanId, htlcId: c.htlcId } }))
      case 'record-notice':
        return this.onNotice(from, message.term, message.record)
      case 'record-ack':
        return this.onAck(from, message.term, hex(message.digest))
      case 'records-request':
        return this.onRecordsRequest(from, message.term, message.requestId)
      case 'records-reply':
        return this.onRecordsReply(from, message.term, message.records, message.done)
      default:
        return []
    }
  }

  // -------------------------------------------------------------------------------------------
  // Election

  private toElection(m: Extract<Message, { type: ElectionMessage['type'] }>): ElectionMessage {
    switch (m.type) {
      case 'vote-request':
        return { type: 'vote-request', term: m.term, candidate: hex(m.candidate), view: m.view, priority: m.priority, pre: m.pre }
      case 'vote':
        return { type: 'vote', term: m.term, voter: hex(m.voter), granted: m.granted, view: m.view, pre: m.pre }
      case 'lease':
        return { type: 'lease', term: m.term, leader: hex(m.leader), at: m.at }
      case 'lease-ack':
        return { type: 'lease-ack', term: m.term, voter: hex(m.voter), at: m.at }
    }
  }

  private toWire(m: ElectionMessage): Message {
    switch (m.type) {
      case 'vote-request':
        return { type: 'vote-request', term: m.term, candidate: bytes(m.candidate), view: m.view, priority: m.priority, pre: m.pre }
      case 'vote':
        return { type: 'vote', term: m.term, voter: bytes(m.voter), granted: m.granted, view: m.view, pre: m.pre }
      case 'lease':
        return { type: 'lease', term: m.term, leader: bytes(m.leader), at: m.at }
      case 'lease-ack':
        return { type: 'lease-ack', term: m.term, voter: bytes(m.voter), at: m.at }
    }
  }

  private fromElection(actions: ElectionAction[]): MemberAction[] {
    const out: MemberAction[] = []
    for (const action of actions) {
      switch (action.type) {
        case 'persist':
          out.push({ type: 'persist-vote', term: action.term, votedFor: action.votedFor })
          break
        case 'send':
          out.push({ type: 'send', to: action.to, message: this.toWire(action.message) })
          break
        case 'broadcast':
          out.push({ type: 'broadcast', message: this.toWire(action.message) })
          break
        case 'leader':
          out.push(...this.onLeader(action.term, action.leader))
          break
      }
    }
    return out
  }

  private onLeader(term: number, leader: string | null): MemberAction[] {
    const out: MemberAction[] = [{ type: 'leader', term, leader }]
    if (leader !== null && term > this.servedTerm) {
      this.servedTerm = term
      this.updateView()
      out.push({ type: 'persist-view', servedTerm: term })
    }
    for (const [digest, waiting] of this.uncommitted) if (waiting.every((d) => d.term < term)) this.uncommitted.delete(digest)
    if (leader !== this.self) out.push(...this.stepDown())
    else out.push(...this.startGathering(term))
    // Edges forward to a leader as soon as it is known; it queues offers until it serves.
    out.push(...this.fromEdge(this.edge.leaderChanged(term, leader)))
    return out
  }

  // -------------------------------------------------------------------------------------------
  // Leading: gather, then serve

  private startGathering(term: number): MemberAction[] {
    this.leaderTerm = term
    this.mux = null
    const waiting = new Set([...this.peers.keys()])
    this.gathering = { term, waiting, answered: new Set([this.self]), records: [], holders: new Map(), deadline: this.now + this.opts.timing.gatherTimeoutMs }
    if (waiting.size === 0) return this.finishGathering()
    return [{ type: 'broadcast', message: { type: 'records-request', term, requestId: term % 2 ** 32, after: 0 } }]
  }

  private onRecordsRequest(from: string, term: number, requestId: number): MemberAction[] {
    // Answer only the candidate that leads `term` as far as we know, or one asking for a newer term,
    // whose term we then take: a notice of an older term, stored after our answer, would be a record
    // the new leader did not gather, so such notices are refused from now on (onNotice).
    if (term < this.term) return []
    const adopted = this.fromElection(this.election.observeTerm(term))
    const pages: Uint8Array[][] = [[]]
    let size = 0
    for (const record of this.ledger.records()) {
      const encoded = recordBytes(record)
      if (size + encoded.length > 48 * 1024 || pages[pages.length - 1]!.length >= 256) {
        pages.push([])
        size = 0
      }
      pages[pages.length - 1]!.push(encoded)
      size += encoded.length
    }
    return adopted.concat(pages.map((records, i) => ({
      type: 'send' as const,
      to: from,
      message: { type: 'records-reply' as const, term, requestId, records, done: i === pages.length - 1 }
    })))
  }

  private onRecordsReply(from: string, term: number, records: Uint8Array[], done: boolean): MemberAction[] {
    const gathering = this.gathering
    // Any member's answer counts, also one we did not know to wait for (it connected meanwhile).
    if (gathering === null || gathering.term !== term || gathering.answered.has(from)) return []
    for (const encoded of records) {
      let record: MuxRecord
      try {
        record = decodeRecord(Buffer.from(encoded).toString())
      } catch (err) {
        return [{ type: 'reject', from, reason: 'bad_record', detail: (err as Error).message }]
      }
      gathering.records.push(record)
      const digest = digestOf(recordBytes(record))
      const holders = gathering.holders.get(digest) ?? new Set<string>()
      holders.add(from)
      gathering.holders.set(digest, holders)
    }
    if (!done) return []
    gathering.waiting.delete(from)
    gathering.answered.add(from)
    if (gathering.waiting.size === 0) return this.finishGathering()
    if (this.answeredVoters(gathering) >= majority(this.voters.size)) gathering.deadline = Math.min(gathering.deadline, this.now + this.opts.timing.gatherGraceMs)
    return []
  }

  private answeredVoters(gathering: NonNullable<ClusterMember['gathering']>): number {
    return [...gathering.answered].filter((id) => this.voters.has(id)).length
  }

  private finishGathering(): MemberAction[] {
    const gathering = this.gathering
    if (gathering === null) return []
    // Without answers from a majority, a committed record may be missing: keep waiting (if the
    // others are gone, our lease runs out and we step down).
    if (this.answeredVoters(gathering) < majority(this.voters.size)) {
      // Requests or answers may have been lost: ask again, and wait another round.
      gathering.deadline = this.now + this.opts.timing.gatherTimeoutMs
      for (const peer of this.peers.keys()) if (!gathering.answered.has(peer)) gathering.waiting.add(peer)
      return [{ type: 'broadcast', message: { type: 'records-request', term: gathering.term, requestId: gathering.term % 2 ** 32, after: 0 } }]
    }
    this.gathering = null
    const out: MemberAction[] = []
    // Our records and every answer's in a ledger of the mux's own (any order gives the same one: the
    // newest copy of each record), less what a newer record superseded (src/cluster/supersede.ts).
    const merged = this.ledger.fork()
    for (const record of gathering.records) merged.add(record)
    for (const record of this.supersede(gathering, merged)) {
      out.push({ type: 'reject', from: this.self, reason: 'superseded_record', detail: `${recordKey(record)} of term ${'term' in record ? record.term : '-'}` })
    }
    const rejected = new Set<string>()
    const clock = this.opts.clock ?? (() => this.now)
    this.mux = MuxMachine.restore({ ...this.opts.mux!, now: clock, height: this.height, term: gathering.term }, merged, (record) => rejected.add(recordKey(record)))
    for (const key of rejected) out.push({ type: 'reject', from: this.self, reason: 'conflicting_record', detail: key })
    // A record the mux uses that less than a majority holds may come from a leader that died before
    // committing it: commit it again, under our term, before acting on it. The rest we keep too.
    for (const record of this.recordsToConfirm(gathering, merged)) {
      if (rejected.has(recordKey(record))) continue
      const copy = record.type !== 'final' && this.heldBy(gathering, record) < majority(this.voters.size) ? { ...record, term: gathering.term } : record
      const encoded = recordBytes(copy)
      const digest = digestOf(encoded)
      const stored = this.holds(copy.type, copy.hash, digest)
      if (copy !== record) {
        this.recommitting.add(digest)
        this.commits.set(digest, { record: copy, encoded, stored, acks: new Set(), early: new Set(), recommit: true })
        out.push({ type: 'broadcast', message: { type: 'record-notice', term: gathering.term, record: encoded } })
      }
      if (!stored) out.push(this.persist(copy, digest, true))
    }
    this.servedRecords = merged.size
    if (this.recommitting.size === 0) out.push(...this.startServing())
    // Records we hold already may be committed at once (a cluster whose only voter is us).
    else for (const digest of [...this.recommitting]) out.push(...this.tryCommit(digest, this.commits.get(digest)!))
    return out
  }

  /**
   * resolveGathered for every payment hash where one record may supersede another: those the
   * answers brought records for, and those where our records hold a settle beside a cancel or
   * parts_failed record (elsewhere our records, one copy of each, supersede nothing). `merged` keeps
   * what stands; returns what was superseded.
   */
  private supersede(gathering: NonNullable<ClusterMember['gathering']>, merged: MuxLedger): MuxRecord[] {
    const answered = new Map<string, MuxRecord[]>()
    for (const record of gathering.records) {
      const key = hex(record.hash)
      const held = answered.get(key)
      if (held === undefined) answered.set(key, [record])
      else held.push(record)
    }
    for (const hashHex of merged.contested()) if (!answered.has(hashHex)) answered.set(hashHex, [])
    const superseded: MuxRecord[] = []
    for (const [hashHex, records] of answered) {
      const resolved = resolveGathered([...this.ledger.recordsOf(hashHex), ...records])
      if (resolved.superseded.length === 0) continue
      superseded.push(...resolved.superseded)
      merged.replace(Buffer.from(hashHex, 'hex'), resolved.kept)
    }
    return superseded
  }

  /**
   * The records of `merged` that finishGathering must look at: those the answers brought, and ours
   * unless we alone are a majority (then every one of ours is held by a majority: a start-up with a
   * million records costs nothing here). Settles first, then finals, then the rest.
   */
  private recordsToConfirm(gathering: NonNullable<ClusterMember['gathering']>, merged: MuxLedger): MuxRecord[] {
    const alone = this.voters.has(this.self) && majority(this.voters.size) <= 1
    const byKey = new Map<string, MuxRecord>()
    for (const record of [...(alone ? [] : this.ledger.records()), ...gathering.records]) {
      const kept = merged.get(record.type, record.hash)
      if (kept !== undefined) byKey.set(recordKey(kept), kept)
    }
    return [...byKey.values()].sort(byApplyOrder)
  }

  /** How many voters hold exactly `record`: we, and the members whose answers held it. */
  private heldBy(gathering: NonNullable<ClusterMember['gathering']>, record: MuxRecord): number {
    const digest = digestOf(recordBytes(record))
    const answers = [...(gathering.holders.get(digest) ?? [])].filter((id) => this.voters.has(id)).length
    return answers + (this.voters.has(this.self) && this.holds(record.type, record.hash, digest) ? 1 : 0)
  }

  /** Whether our own ledger's record of `type` for `hash` is exactly the one whose digest is `digest`. */
  private holds(type: MuxRecord['type'], hash: Uint8Array, digest: string): boolean {
    const own = this.ledger.get(type, hash)
    return own !== undefined && digestOf(recordBytes(own)) === digest
  }

  private startServing(): MemberAction[] {
    return [{ type: 'serving', term: this.leaderTerm, records: this.servedRecords }, ...this.drainQueue()]
  }

  /** Offers that waited for us to serve. */
  private drainQueue(): MemberAction[] {
    if (this.queuedOffers.length === 0 || !this.isServing()) return []
    const queued = this.queuedOffers
    this.queuedOffers = []
    return queued.flatMap(({ from, offer }) => this.onOffer(from, offer))
  }

  private stepDown(): MemberAction[] {
    const out: MemberAction[] = []
    for (const commit of this.commits.values()) if (!commit.recommit) out.push({ type: 'abandoned', record: commit.record })
    this.commits.clear()
    this.recommitting.clear()
    this.fencedHashes.clear()
    this.fencing.clear()
    this.mux = null
    this.gathering = null
    this.queuedOffers = []
    return out
  }

  private servingMux(): MuxMachine {
    if (!this.isServing()) throw new NotLeaderError(this.election.leader)
    return this.mux!
  }

  private onOffer(from: string, offer: HtlcOffer): MemberAction[] {
    const node = hex(offer.circuit.node)
    const owned = from === this.self ? this.opts.nodes.includes(node) : this.peers.get(from)?.nodes.has(node)
    if (!owned) return [{ type: 'reject', from, reason: 'not_your_node', detail: node }]
    if (this.mux === null && this.gathering === null) return [] // not leading: the edge re-forwards to the next leader
    if (offer.term !== this.leaderTerm) return []
    // Elected but not serving yet (gathering, re-committing, or the first lease acknowledgements
    // still on their way): the offer waits.
    if (!this.isServing()) {
      this.queuedOffers.push({ from, offer })
      return []
    }
    try {
      return this.fromMux(this.mux!.htlc(muxHtlcOf(offer)))
    } catch (err) {
      return [{ type: 'reject', from, reason: 'bad_offer', detail: (err as Error).message }]
    }
  }

  private fromMux(outputs: MuxOutput[]): MemberAction[] {
    const out: MemberAction[] = []
    for (const output of outputs) {
      switch (output.kind) {
        case 'decision':
          out.push(...(this.needsFence(output) ? this.fenceFirst(output) : this.sendDecision(output.circuit, output.decision)))
          break
        case 'accepted':
          out.push({ type: 'accepted', hash: output.hash, setId: output.setId, amountMsat: output.amountMsat, parts: output.htlcs.length })
          break
        case 'final':
          out.push({ type: 'final', hash: output.hash, setId: output.setId, status: output.status })
          break
        case 'persist':
          out.push(...this.commit(output.record))
          break
      }
    }
    return out
  }

  /** Whether this failure must wait for a parts_failed record of its hash (see FENCED_REASONS). */
  private needsFence(output: Extract<MuxOutput, { kind: 'decision' }>): boolean {
    if (output.decision.action !== 'fail' || output.reason === undefined || !FENCED_REASONS.has(output.reason)) return false
    if (this.fencedHashes.has(hex(output.hash))) return false
    const status = this.mux!.status(output.hash)
    return status !== 'settle_requested' && status !== 'settled' && status !== 'failed'
  }

  /** Holds the failure until its hash's parts_failed record is committed; commits that record once. */
  private fenceFirst({ circuit, hash, decision }: Extract<MuxOutput, { kind: 'decision' }>): MemberAction[] {
    const key = hex(hash)
    let waiting = this.fencing.get(key)
    const out: MemberAction[] = []
    if (waiting === undefined) {
      this.fencing.set(key, (waiting = new Map()))
      const clock = this.opts.clock ?? (() => this.now)
      out.push(...this.commit({ type: 'parts_failed', term: this.leaderTerm, hash, time: clock() }))
    }
    waiting.set(edgeHtlcId({ node: hex(circuit.node), circuit }), { circuit, decision })
    return out
  }

  /** A parts_failed record is held by a majority: the failures it fenced may leave. */
  private releaseFenced(hash: Uint8Array): MemberAction[] {
    const key = hex(hash)
    this.fencedHashes.add(key)
    const waiting = this.fencing.get(key)
    this.fencing.delete(key)
    return [...(waiting?.values() ?? [])].flatMap(({ circuit, decision }) => this.sendDecision(circuit, decision))
  }

  private sendDecision(circuit: Circuit, decision: Decision): MemberAction[] {
    const node = hex(circuit.node)
    if (this.opts.nodes.includes(node)) return this.fromEdge(this.edge.decide(this.self, this.leaderTerm, edgeHtlcId({ node, circuit }), decision))
    const holder = this.holderOf(node)
    if (holder !== undefined) return [{ type: 'send', to: holder, message: { type: 'htlc-decision', term: this.leaderTerm, circuit, resolution: toResolution(decision), uncommittedRecord: null } }]
    // The holder is unreachable: it keeps the HTLC until a leader reaches it, or fails it in time.
    return [{ type: 'reject', from: this.self, reason: 'holder_unreachable', detail: node }]
  }

  /** The connected member that announced node `node` (hex). */
  private holderOf(node: string): string | undefined {
    for (const [agent, peer] of this.peers) if (peer.nodes.has(node)) return agent
    return undefined
  }

  /**
   * Settle and cancel records go to a majority before they take effect; final records are ours
   * alone (they only report what lnd already did).
   */
  private commit(record: MuxRecord): MemberAction[] {
    const encoded = recordBytes(record)
    const digest = digestOf(encoded)
    this.commits.set(digest, { record, encoded, stored: false, acks: new Set(), early: new Set() })
    const out: MemberAction[] = [this.persist(record, digest, record.type !== 'final')]
    if (record.type !== 'final') out.push({ type: 'broadcast', message: { type: 'record-notice', term: this.leaderTerm, record: encoded } })
    return out
  }

  private onAck(from: string, term: number, digest: string): MemberAction[] {
    const commit = this.commits.get(digest)
    if (commit === undefined || term !== this.leaderTerm || !this.voters.has(from)) return []
    commit.acks.add(from)
    return this.tryCommit(digest, commit)
  }

  private tryCommit(digest: string, commit: PendingCommit): MemberAction[] {
    if (!commit.stored || this.mux === null) return []
    if (commit.record.type !== 'final') {
      const holders = commit.acks.size + (this.voters.has(this.self) ? 1 : 0)
      if (holders < majority(this.voters.size)) return this.settleEarly(digest, commit, holders)
    }
    this.commits.delete(digest)
    if (commit.recommit) {
      this.recommitting.delete(digest)
      return this.recommitting.size === 0 ? this.startServing() : []
    }
    // A holder that stored the record after we sent it the settle applied it then (onDecision).
    const out = this.fromMux(this.mux.recordPersisted(commit.record)).filter((a) => !(a.type === 'send' && a.message.type === 'htlc-decision' && commit.early.has(a.to) && commit.acks.has(a.to)))
    if (commit.record.type === 'parts_failed') out.push(...this.releaseFenced(commit.record.hash))
    if (commit.record.type !== 'final') out.unshift({ type: 'committed', record: commit.record })
    return out
  }

  /**
   * Our settle record is stored here, not yet on a majority: a voter holding parts of the set whose
   * own copy completes the majority gets their settle decisions now, marked with the record's digest.
   * It applies them only once it stored that copy (onDecision), so no settle reaches an lnd before a
   * majority holds the record, and the acknowledgement's round trip leaves the settle's path. Parts
   * held by our own nodes, or by members that cannot complete the majority, wait for the commit.
   */
  private settleEarly(digest: string, commit: PendingCommit, holders: number): MemberAction[] {
    const record = commit.record
    if (record.type !== 'settle_requested' || commit.recommit === true || holders + 1 < majority(this.voters.size)) return []
    const preimage = settlePreimage(this.opts.mux!.identityKey, record)
    if (preimage === null) return []
    const out: MemberAction[] = []
    const sentTo = new Set<string>()
    for (const { circuit } of record.htlcs) {
      const holder = this.holderOf(hex(circuit.node))
      if (holder === undefined || !this.voters.has(holder) || commit.acks.has(holder) || commit.early.has(holder)) continue
      sentTo.add(holder)
      out.push({ type: 'send', to: holder, message: { type: 'htlc-decision', term: this.leaderTerm, circuit, resolution: { kind: 'settle', preimage }, uncommittedRecord: bytes(digest) } })
    }
    for (const holder of sentTo) commit.early.add(holder)
    return out
  }

  /** A leader's record: store it, then acknowledge (recordPersisted sends the ack). */
  private onNotice(from: string, term: number, encoded: Uint8Array): MemberAction[] {
    // From our leader, or from a leader of a term we have not heard of yet (its lease may be on its
    // way, e.g. right after we reconnected); never from one of an older term.
    if (term < this.term || (term === this.term && this.election.leader !== null && from !== this.election.leader)) {
      return [{ type: 'reject', from, reason: 'notice_not_from_leader' }]
    }
    let record: MuxRecord
    try {
      record = decodeRecord(Buffer.from(encoded).toString())
    } catch (err) {
      return [{ type: 'reject', from, reason: 'bad_record', detail: (err as Error).message }]
    }
    const digest = digestOf(recordBytes(record))
    if (this.holds(record.type, record.hash, digest)) return [{ type: 'send', to: from, message: { type: 'record-ack', term, digest: Buffer.from(digest, 'hex') } }]
    this.noticeAcks.set(digest, { leader: from, term })
    return [this.persist(record, digest, true)]
  }

  /** Asks the driver to store `record`, whose digest recordPersisted then need not compute again. */
  private persist(record: MuxRecord, digest: string, durable: boolean): MemberAction {
    this.persisting.set(record, digest)
    return { type: 'persist-record', record, durable }
  }

  // -------------------------------------------------------------------------------------------
  // Edge

  /**
   * A decision from the leader. A settle sent before its record was committed, from the leader of
   * our term only, waits until we store exactly that record (recordPersisted), unless we hold it.
   */
  private onDecision(from: string, message: HtlcDecision): MemberAction[] {
    const id = edgeHtlcId({ node: hex(message.circuit.node), circuit: message.circuit })
    const decision = toDecision(message.resolution)
    if (message.uncommittedRecord !== null) {
      if (decision.action !== 'settle') return [{ type: 'reject', from, reason: 'uncommitted_failure', detail: id }]
      if (from !== this.election.leader || message.term !== this.term) return [{ type: 'reject', from, reason: 'uncommitted_not_from_leader', detail: id }]
      // Keyed by the held HTLC's payment hash (the edge checks the preimage against it); one we do
      // not hold goes on to the edge, which refuses it.
      const htlc = this.edge.htlc(id)
      const digest = hex(message.uncommittedRecord)
      if (htlc !== undefined && !this.holds('settle_requested', htlc.paymentHash, digest)) {
        const waiting = this.uncommitted.get(digest) ?? []
        waiting.push({ from, term: message.term, id, decision })
        this.uncommitted.set(digest, waiting)
        return []
      }
    }
    return this.fromEdge(this.edge.decide(from, message.term, id, decision))
  }

  private fromEdge(actions: EdgeAction[]): MemberAction[] {
    const out: MemberAction[] = []
    for (const action of actions) {
      switch (action.type) {
        case 'forward': {
          const offer = offerOf(action.htlc, action.term, this.height)
          if (action.to === this.self) out.push(...this.onOffer(this.self, offer))
          else out.push({ type: 'send', to: action.to, message: offer })
          break
        }
        case 'record': {
          const covered = this.settleStored(action.id, action.decision)
          out.push({ type: 'edge-record', id: action.id, term: action.term, from: action.from, decision: action.decision, covered })
          if (covered) out.push(...this.fromEdge(this.edge.recorded(action.id)))
          break
        }
        case 'resolve':
          out.push({ type: 'resolve', htlc: action.htlc, decision: action.decision })
          break
        case 'reject':
          out.push({ type: 'reject', from: action.from, reason: action.reason, detail: action.id })
          break
      }
    }
    return out
  }

  /** Whether `decision` settles an HTLC listed by a settle record in our ledger (stored durably). */
  private settleStored(id: string, decision: InterceptorDecision): boolean {
    const htlc = this.edge.htlc(id)
    if (decision.action !== 'settle' || htlc === undefined) return false
    const settle = this.ledger.get('settle_requested', htlc.paymentHash)
    return settle?.htlcs.some((h) => edgeHtlcId({ node: hex(h.circuit.node), circuit: h.circuit }) === id) === true
  }

  private updateView(): void {
    this.election.setView({ term: this.servedTerm, records: this.ledger.size })
  }
}

export class NotLeaderError extends CodedError<'not_leader'> {
  constructor(readonly leader: string | null) {
    super('not_leader', leader === null ? 'no leader is serving the virtual node right now' : 'this agent does not lead the virtual node')
  }
}

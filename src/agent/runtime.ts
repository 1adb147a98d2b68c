// The running agent: IO around one ClusterMember. It owns the agent key, the audit log, the
// member's durable election state, its LND nodes, the Hyperswarm connection to the other agents and
// the application API, and carries the member's actions out in order. An agent without peers (or
// with `swarm: false`) is a cluster of one: it elects itself and serves alone.
import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import { AuditLog } from '../audit/log.ts'
import { openMuxLedger, toAuditRecord } from '../audit/mux-store.ts'
import { configRecord, type AuditRecord } from '../audit/records.ts'
import type { CheckpointedFold } from '../audit/snapshot.ts'
import { ClusterSwarm, type LocalHello } from '../cluster/swarm.ts'
import { loadOrCreateAgentKeyPair } from '../cluster/keys.ts'
import { ClusterMember, DEFAULT_TIMING, type MemberAction, type MemberTiming } from '../cluster/member.ts'
import type { Envelope } from '../cluster/envelope.ts'
import type { Message } from '../cluster/messages.ts'
import { agentRole, type HighwireConfig } from '../config/schema.ts'
import { DEFAULT_DEADLINE_MARGIN_BLOCKS, edgeHtlcId, type EdgeHtlc } from '../edge/edge.ts'
import { SettleScanner } from '../edge/known-settles.ts'
import { ApiServer } from '../api/server.ts'
import { clusterStatusService, readAgentStatus, type ClusterStatus } from '../api/status.ts'
import type { CircuitKey, InterceptedHtlc } from '../lnd/circuits.ts'
import type { LndEvent } from '../lnd/client.ts'
import type { MuxLedger } from '../mux/ledger.ts'
import type { Logger } from '../log.ts'
import { NodeLink } from './node-link.ts'
import { loadMemberState, saveMemberState } from './member-state.ts'
import { MemberInvoiceApi, identityPubkey, type HintCandidate } from './invoice-api.ts'
import { ApiForwarder, ApiResponder } from './api-forward.ts'

export const SOFTWARE = 'highwire/0.1.0'
/** How often a hello is re-sent with fresh inbound capacities. */
const HELLO_REFRESH_MS = 30_000
/** How often own nodes' inbound capacity is read, and how old a reading may be to carry a hint. */
const INBOUND_REFRESH_MS = 10_000
const INBOUND_MAX_AGE_MS = 35_000
/** How long an invoice waits for a live inbound reading before it uses the last one. */
const INBOUND_LIVE_WAIT_MS = 1000
/** How often the mux ledger reads what the cores gained (and writes a snapshot when one is due). */
const LEDGER_CATCH_UP_MS = 10_000

export interface AgentOptions {
  log: Logger
  now?: () => number
  /** GetInfo polling interval for block heights. */
  heightPollMs?: number
  /** How often the member's clock ticks (election, timers). */
  tickMs?: number
  /** false: no Hyperswarm, a cluster of one. `host`: the DHT's bind address (tests: 127.0.0.1). */
  swarm?: false | { host?: string }
  timing?: MemberTiming
}

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex')

/** Messages whose envelopes are kept in the audit log as received (the frequent lease traffic is not). */
const AUDITED_MESSAGES: ReadonlySet<Message['type']> = new Set(['hello', 'vote-request', 'vote', 'htlc-offer', 'htlc-decision', 'record-notice'])

export class Agent {
  readonly id: string
  readonly config: HighwireConfig
  readonly audit: AuditLog
  /** The mux ledger of every core, kept for the next start (src/audit/mux-store.ts). */
  private readonly ledger: CheckpointedFold<MuxLedger>
  /** The running background catch-up of `ledger`, if any. */
  private ledgerCatchUp: Promise<unknown> | null = null
  readonly nodes: NodeLink[] = []
  readonly member: ClusterMember
  readonly invoices: MemberInvoiceApi
  private readonly responder: ApiResponder
  private readonly forwarder: ApiForwarder
  swarm: ClusterSwarm | null = null
  api: ApiServer | null = null
  private readonly log: Logger
  private readonly clock: () => number
  private readonly timers: NodeJS.Timeout[] = []
  private readonly settleScanner = new SettleScanner()
  /**
   * While a received htlc-decision is handed to the member: its HTLC and whether its envelope was
   * stored, which the edge's record of the decision waits for (recordDecision).
   */
  private receivedDecision: { id: string; envelopeStored: Promise<boolean> } | null = null
  /** The envelope stored last: the messages of a batch share one, stored once. */
  private lastStored: { bytes: Uint8Array; stored: Promise<boolean> } | null = null
  private closed = false

  private constructor(config: HighwireConfig, id: string, audit: AuditLog, ledger: CheckpointedFold<MuxLedger>, member: ClusterMember, opts: AgentOptions) {
    this.config = config
    this.id = id
    this.audit = audit
    this.ledger = ledger
    this.member = member
    this.log = opts.log
    this.clock = opts.now ?? Date.now
    const send = (to: string, message: Message): boolean => this.swarm?.send(to, message) ?? false
    this.forwarder = new ApiForwarder(send, () => member.leader)
    this.invoices = new MemberInvoiceApi({
      member,
      config,
      hintCandidates: () => this.hintCandidates(),
      muxPubkey: () => this.muxPubkey(),
      apply: (actions) => this.apply(actions),
      now: this.clock,
      forwarder: this.forwarder
    })
    this.responder = new ApiResponder(this.invoices, send)
  }

  /** Opens storage, connects and checks every LND node, joins the cluster, then serves the API. */
  static async start(config: HighwireConfig, opts: AgentOptions): Promise<Agent> {
    const storage = config.storage.path
    await mkdir(storage, { recursive: true, mode: 0o700 })
    const keys = await loadOrCreateAgentKeyPair(storage)
    const id = hex(keys.publicKey)
    const audit = await AuditLog.open({ path: join(storage, 'audit'), id })
    let agent: Agent | null = null
    const links: NodeLink[] = []
    try {
      const ledger = await openLedger(audit, config.mux.identityKey, opts.log)
      for (const node of config.lnd.nodes) {
        links.push(await NodeLink.open({
          node,
          network: config.network,
          allowUnsafe: config.lnd.allowUnsafe,
          log: opts.log.child(node.name),
          heightPollMs: opts.heightPollMs ?? 5000,
          onHtlc: (htlc) => agent?.onHtlc(link(node.name), htlc),
          onFinal: (circuit, settled) => agent?.onFinal(link(node.name), circuit, settled),
          // After a restart or a reconnect of the final-resolution stream: ask lnd what was missed.
          onFinalStreamOpen: () => agent?.apply(agent.member.resolutionLookups()),
          onHeight: (height) => agent?.onHeight(height),
          onEvent: (event) => agent?.onLndEvent(link(node.name), event)
        }))
      }
      const link = (name: string): NodeLink => links.find((l) => l.name === name)!
      const state = loadMemberState(storage)
      const member = new ClusterMember({
        self: id,
        nodes: links.map((l) => l.pubkey),
        mux: config.mux.identityKey === null ? null : {
          identityKey: config.mux.identityKey,
          policy: config.mux.routingPolicy,
          mppTimeoutMs: config.mux.mppTimeoutMs,
          acceptTimeoutMs: config.mux.acceptTimeoutMs,
          autoSettle: config.mux.autoSettle
        },
        witness: agentRole(config) === 'witness',
        voters: config.cluster.voters,
        priority: config.mux.priority,
        timing: opts.timing ?? DEFAULT_TIMING,
        persisted: { ...state, records: ledger.state.fork() },
        now: (opts.now ?? Date.now)(),
        clock: opts.now ?? Date.now,
        random: Math.random,
        deadlineMarginBlocks: DEFAULT_DEADLINE_MARGIN_BLOCKS
      })
      agent = new Agent(config, id, audit, ledger, member, opts)
      agent.nodes.push(...links)
      await agent.open(opts)
      return agent
    } catch (err) {
      if (agent) await agent.close('start failed')
      else {
        for (const l of links) l.close()
        await audit.close()
      }
      throw err
    }
  }

  private async open(opts: AgentOptions): Promise<void> {
    const time = this.clock()
    await this.record({ type: 'agent_start', time, software: SOFTWARE, agent: Buffer.from(this.id, 'hex') })
    await this.record(configRecord(this.config, time))
    for (const link of this.nodes) {
      await this.record({ type: 'lnd_connect', time, node: Buffer.from(link.pubkey, 'hex'), alias: link.alias })
      this.log.info('lnd node ready', { node: link.name, alias: link.alias, height: link.height, virtualScid: link.virtualScid })
    }
    this.log.info('agent starting', { agent: this.id, role: agentRole(this.config), records: this.member.knownRecords() })
    this.onHeight(Math.max(0, ...this.nodes.map((n) => n.height)))
    await this.refreshInbound()
    this.every(INBOUND_REFRESH_MS, () => void this.refreshInbound())
    this.every(LEDGER_CATCH_UP_MS, () => {
      if (this.ledgerCatchUp !== null) return // the last one, paced, is still folding
      this.ledgerCatchUp = this.ledger.catchUp({ background: true })
        .catch((err: Error) => this.log.warn('mux ledger catch-up failed; the next start reads a longer tail', { error: err }))
        .finally(() => { this.ledgerCatchUp = null })
    })
    // Intercept and answer the API at once: joining the DHT can take seconds, and lnd fails new
    // forwards while no interceptor is connected. HTLCs wait at the edge until a leader serves.
    for (const link of this.nodes) link.start()
    const services = [clusterStatusService(() => this.status(), this.log.child('api'))]
    this.api = await ApiServer.start({ api: this.invoices, listen: this.config.api.listen, tls: this.config.api.tls, log: this.log.child('api'), services })
    this.log.info('api listening', { address: this.api.address })
    if (opts.swarm !== false) await this.joinSwarm(opts.swarm?.host)
    else this.apply(this.member.standAlone())
    this.every(opts.tickMs ?? 50, () => this.apply(this.member.tick(this.clock())))
  }

  private async joinSwarm(host: string | undefined): Promise<void> {
    const { cluster } = this.config
    const swarm = await ClusterSwarm.open({
      secret: cluster.secret,
      storage: this.config.storage.path,
      hello: await this.localHello(),
      bootstrap: cluster.bootstrap.length > 0 ? cluster.bootstrap : undefined,
      ...(host === undefined ? {} : { host }),
      ...(cluster.members.length > 0 ? { members: cluster.members.map((m) => Buffer.from(m, 'hex')) } : {}),
      proofTimeoutMs: cluster.proofTimeoutMs
    })
    this.swarm = swarm
    swarm.on('connection', (socket, peer) => {
      this.audit.replicate(socket)
      this.log.info('peer connected', { peer })
      void this.record({ type: 'peer_connect', time: this.clock(), peer: Buffer.from(peer, 'hex'), address: '' })
    })
    swarm.on('peer', (status) => {
      if (status.hello === null) return
      void this.audit.openReplica(status.hello.auditCore).catch((err: Error) => this.log.warn('cannot replicate audit core', { peer: status.key, error: err }))
      this.apply(this.member.connected(status.key, status.hello))
    })
    swarm.on('message', (envelope: Envelope, peer: string) => this.onMessage(envelope, peer))
    swarm.on('reject', (e) => {
      this.log.warn('peer rejected', { peer: e.peer, code: e.code, reason: e.message, suppressed: e.suppressed || undefined })
      void this.record({ type: 'peer_reject', time: this.clock(), peer: Buffer.from(e.peer, 'hex'), address: '', reason: `${e.code}: ${e.message}` })
    })
    swarm.on('disconnect', (peer: string) => {
      this.log.info('peer disconnected', { peer })
      this.responder.end(peer)
      void this.record({ type: 'peer_disconnect', time: this.clock(), peer: Buffer.from(peer, 'hex'), reason: '' })
      this.apply(this.member.disconnected(peer))
    })
    this.every(HELLO_REFRESH_MS, () => void this.localHello().then((hello) => swarm.updateHello(hello)))
    this.log.info('joined the cluster topic', { agent: this.id })
  }

  private every(ms: number, run: () => void): void {
    const timer = setInterval(run, ms)
    timer.unref()
    this.timers.push(timer)
  }

  /** Reads every own node's inbound capacity; a node that does not answer is logged and skipped. */
  private async refreshInbound(): Promise<void> {
    await Promise.all(this.nodes.map((n) => n.refreshInbound(this.clock()).catch((err: Error) => {
      this.log.warn('inbound capacity unknown: no route hint through this node until it answers', { node: n.name, error: err })
    })))
  }

  private async localHello(): Promise<LocalHello> {
    const role = agentRole(this.config)
    const own = this.ownHintCandidates()
    return {
      role,
      priority: this.config.mux.priority,
      muxKey: identityPubkey(this.config.mux.identityKey),
      nodes: this.nodes.map((n) => ({
        pubkey: Buffer.from(n.pubkey, 'hex'),
        alias: n.alias.slice(0, 32),
        virtualScid: n.virtualScid,
        inboundMsat: own.find((c) => c.pubkey === n.pubkey)?.inboundMsat ?? 0n
      })),
      auditCore: this.audit.key
    }
  }

  private onMessage(envelope: Envelope, peer: string): void {
    const message = envelope.message
    const envelopeStored = AUDITED_MESSAGES.has(message.type) ? this.storeEnvelope(envelope, peer) : Promise.resolve(false)
    if (message.type === 'hello') {
      this.apply(this.member.connected(peer, message))
      return
    }
    if (message.type === 'api-forward') {
      // Only the serving leader answers; elsewhere the caller hears not_leader from its forwarder.
      if (this.member.isServing()) this.responder.onForward(peer, message)
      return
    }
    if (message.type === 'api-reply') {
      this.forwarder.onReply(peer, message)
      return
    }
    if (message.type === 'htlc-decision') this.receivedDecision = { id: edgeHtlcId({ node: hex(message.circuit.node), circuit: message.circuit }), envelopeStored }
    try {
      this.apply(this.member.receive(peer, message, this.clock()))
    } finally {
      this.receivedDecision = null
    }
  }

  /**
   * Stores a received envelope as received (DESIGN.md "Audit log"), once for all the messages of a
   * batch; false if that failed (logged).
   */
  private storeEnvelope(envelope: Envelope, peer: string): Promise<boolean> {
    if (this.lastStored?.bytes === envelope.bytes) return this.lastStored.stored
    const stored = this.record({ type: 'envelope', time: this.clock(), peer: Buffer.from(peer, 'hex'), envelope: envelope.bytes })
    this.lastStored = { bytes: envelope.bytes, stored }
    return stored
  }

  // --- the member's actions, in order ---

  apply(actions: MemberAction[]): void {
    if (this.closed) return
    for (const action of actions) {
      this.carryOut(action)
      this.invoices.observe(action)
    }
  }

  private carryOut(action: MemberAction): void {
    switch (action.type) {
      case 'send':
        this.swarm?.send(action.to, action.message)
        return
      case 'broadcast':
        this.swarm?.broadcast(action.message)
        return
      case 'persist-vote':
      case 'persist-voters':
      case 'persist-view': {
        const state = { term: this.member.election.term, votedFor: this.member.election.votedFor, voters: [...this.member.voterIds()], servedTerm: this.member.servedTerm }
        saveMemberState(this.config.storage.path, state) // synchronous: durable before the next send
        return
      }
      case 'persist-record':
        this.audit.append(toAuditRecord(action.record), { durable: action.durable }).then(
          () => this.apply(this.member.recordPersisted(action.record)),
          (err: Error) => this.log.error('could not store a mux record; it does not take effect', { type: action.record.type, hash: action.record.hash, error: err })
        )
        return
      case 'edge-record':
        void this.recordDecision(action)
        return
      case 'resolve':
        this.resolve(action.htlc, action.decision)
        return
      case 'lookup-resolution':
        void this.lookupResolution(action.node, action.circuit)
        return
      case 'leader':
        if (action.leader !== this.id) this.responder.end()
        this.log.info(action.leader === null ? 'no leader' : action.leader === this.id ? 'elected leader; gathering records' : 'following leader', { term: action.term, leader: action.leader ?? undefined })
        void this.record(action.leader === null
          ? { type: 'term_ended', time: this.clock(), term: action.term, reason: 'lease lost' }
          : { type: 'leader_elected', time: this.clock(), term: action.term, leader: Buffer.from(action.leader, 'hex') })
        return
      case 'serving':
        this.log.info('serving the virtual node', { term: action.term, records: action.records })
        return
      case 'accepted':
        this.log.info('set accepted', { hash: action.hash, setId: action.setId, amountMsat: action.amountMsat, parts: action.parts })
        return
      case 'final':
        this.log.info(`invoice ${action.status}`, { hash: action.hash, setId: action.setId })
        return
      case 'committed':
        this.log.info(`${action.record.type} record held by a majority`, { hash: action.record.hash, term: 'term' in action.record ? action.record.term : undefined })
        return
      case 'abandoned':
        this.log.warn('leadership lost before a record reached a majority', { type: action.record.type, hash: action.record.hash })
        return
      case 'reject':
        this.log.warn('refused', { from: action.from, reason: action.reason, detail: action.detail })
        return
    }
  }

  /**
   * Write-ahead for the edge (DESIGN.md invariant 6): the decision, and the leader's signed envelope
   * that carried it, are in the audit log before it is applied, and durable (an fsync of their own).
   * The envelope was queued on receipt, ahead of the decision in the same log, so the fsync that
   * makes the decision durable covers it too. A `covered` settle (a settle record this agent stored
   * durably lists the HTLC: that record is its write-ahead) was applied already; both are appended
   * for the audit.
   */
  private async recordDecision(action: Extract<MemberAction, { type: 'edge-record' }>): Promise<void> {
    const htlc = this.member.edge.htlc(action.id)
    if (!htlc) return
    const received = this.receivedDecision?.id === action.id ? this.receivedDecision : null
    const envelopeStored = received?.envelopeStored ?? Promise.resolve(true)
    try {
      const decided = this.audit.append({
        type: 'htlc_decided',
        time: this.clock(),
        node: Buffer.from(htlc.node, 'hex'),
        chanId: htlc.circuit.chanId,
        htlcId: htlc.circuit.htlcId,
        hash: htlc.paymentHash,
        term: action.term,
        action: action.decision.action,
        reason: action.from === this.id ? '' : `from ${action.from}`
      }, { durable: !action.covered })
      const [stored] = await Promise.all([envelopeStored, decided])
      if (!stored) throw new Error("the leader's envelope was not stored")
    } catch (err) {
      if (action.covered) this.log.error('could not record a settle its stored settle record covers; it is applied', { htlc: action.id, error: err as Error })
      else this.log.error('could not record a decision; it is not applied', { htlc: action.id, error: err as Error })
      return
    }
    if (!action.covered) this.apply(this.member.edgeRecorded(action.id))
  }

  private resolve(htlc: EdgeHtlc, decision: Extract<MemberAction, { type: 'resolve' }>['decision']): void {
    const link = this.nodes.find((n) => n.pubkey === htlc.node)
    if (!link) return
    try {
      const result = link.resolve(htlc.circuit, decision)
      this.log.info(`htlc ${decision.action}`, { node: link.name, chan: htlc.circuit.chanId, htlc: htlc.circuit.htlcId, result })
    } catch (err) {
      this.log.error('lnd would refuse this resolution; not sent', { node: link.name, chan: htlc.circuit.chanId, htlc: htlc.circuit.htlcId, error: err as Error })
    }
  }

  // --- LND events ---

  /** A new block: the leader's height rules at once, then the edge's deadlines (checkDeadlines). */
  private onHeight(height: number): void {
    this.apply(this.member.blockHeight(height))
    this.checkDeadlines()
  }

  /**
   * Edges fail undecided HTLCs at their deadline. From a block before one is due, the audit cores
   * are read first for a settle decision that reached any edge (known-settles.ts), which wins then.
   */
  private checkDeadlines(): void {
    if (!this.member.edge.settleScanDue(this.member.chainHeight)) return this.apply(this.member.checkDeadlines())
    this.settleScanner.scan(this.audit.cores(), (preimage) => this.member.edge.settleKnown(preimage)).catch((err: Error) => this.log.warn('could not read the audit cores for settle decisions', { error: err }))
      .finally(() => this.apply(this.member.checkDeadlines()))
  }

  private onHtlc(link: NodeLink, htlc: InterceptedHtlc): void {
    this.log.info('htlc intercepted', { node: link.name, chan: htlc.circuit.chanId, htlc: htlc.circuit.htlcId, hash: htlc.paymentHash, amountMsat: htlc.outgoingAmountMsat })
    void this.record({
      type: 'htlc_intercepted',
      time: this.clock(),
      node: Buffer.from(link.pubkey, 'hex'),
      chanId: htlc.circuit.chanId,
      htlcId: htlc.circuit.htlcId,
      hash: htlc.paymentHash,
      amountMsat: htlc.outgoingAmountMsat,
      expiry: htlc.outgoingExpiry
    })
    const held = { ...htlc, node: link.pubkey }
    this.apply(this.member.htlc(held))
    if (!this.member.edge.nearDeadline(held, this.member.chainHeight)) return
    // Offered within a block of its deadline: replayed by lnd after this agent was down, while its
    // settle decision may have gone by; read every core from the start before deciding it.
    this.settleScanner.rewind()
    this.checkDeadlines()
  }

  private onFinal(link: NodeLink, circuit: CircuitKey, settled: boolean): void {
    const htlc = this.member.edge.htlc(edgeHtlcId({ node: link.pubkey, circuit }))
    if (htlc) {
      this.log.info(`htlc final: ${settled ? 'settled' : 'failed'}`, { node: link.name, chan: circuit.chanId, htlc: circuit.htlcId })
      void this.record({
        type: 'htlc_resolved',
        time: this.clock(),
        node: Buffer.from(link.pubkey, 'hex'),
        chanId: circuit.chanId,
        htlcId: circuit.htlcId,
        hash: htlc.paymentHash,
        outcome: settled ? 'settled' : 'failed',
        reason: ''
      })
    }
    this.apply(this.member.htlcFinal({ node: link.pubkey, circuit }, settled))
  }

  /** What lnd finally did with an HTLC whose final event this agent or a leader may have missed. */
  private async lookupResolution(node: string, circuit: CircuitKey): Promise<void> {
    const link = this.nodes.find((n) => n.pubkey === node)
    if (!link) return
    try {
      const resolution = await link.lookupResolution(circuit)
      if (resolution && !this.closed) this.onFinal(link, circuit, resolution.settled)
    } catch (err) {
      this.log.warn('htlc resolution lookup failed', { node: link.name, chan: circuit.chanId, htlc: circuit.htlcId, error: err as Error })
    }
  }

  private onLndEvent(link: NodeLink, event: LndEvent): void {
    if (this.closed) return
    if (event.type === 'stream_open') this.log.info('lnd stream open', { node: link.name, stream: event.stream, attempt: event.attempt })
    else if (event.type === 'stream_closed') {
      this.log.warn('lnd stream closed', { node: link.name, stream: event.stream, error: event.error ?? undefined })
      // A node that went away must stop carrying route hints at once, not when its reading ages out.
      if (event.stream === 'HtlcInterceptor') void link.refreshInbound(this.clock()).catch(() => {})
      void this.record({ type: 'lnd_disconnect', time: this.clock(), node: Buffer.from(link.pubkey, 'hex'), reason: `${event.stream}: ${event.error ?? 'closed'}` })
    } else if (event.type !== 'stream_retry') this.log.debug(event.type, { node: link.name })
  }

  // --- the cluster's nodes, for route hints and GetInfo ---

  /** Own nodes that answered lately, with their inbound capacity; a node that is down carries no hint. */
  private ownHintCandidates(): HintCandidate[] {
    const now = this.clock()
    const candidates: HintCandidate[] = []
    for (const n of this.nodes) {
      const inboundMsat = n.inboundMsat(now, INBOUND_MAX_AGE_MS)
      if (inboundMsat !== null) candidates.push({ pubkey: n.pubkey, inboundMsat })
    }
    return candidates
  }

  /**
   * Reads own nodes live, waiting at most INBOUND_LIVE_WAIT_MS: a node that refuses is dropped at
   * once, one that is slow keeps its last reading, so an invoice never waits on a hung node.
   */
  private async liveHintCandidates(): Promise<HintCandidate[]> {
    let timer: NodeJS.Timeout | undefined
    const patience = new Promise<void>((resolve) => (timer = setTimeout(resolve, INBOUND_LIVE_WAIT_MS)))
    await Promise.race([Promise.allSettled(this.nodes.map((n) => n.refreshInbound(this.clock()))), patience])
    clearTimeout(timer)
    return this.ownHintCandidates()
  }

  /** Own nodes, and the connected peers' nodes as their hellos announce them. */
  async hintCandidates(): Promise<HintCandidate[]> {
    const candidates = await this.liveHintCandidates()
    for (const status of this.swarm?.peers.list() ?? []) {
      for (const node of status.hello?.nodes ?? []) candidates.push({ pubkey: hex(node.pubkey), inboundMsat: node.inboundMsat })
    }
    return candidates
  }

  muxPubkey(): Uint8Array | null {
    const own = identityPubkey(this.config.mux.identityKey)
    if (own !== null) return own
    return this.swarm?.peers.list().find((p) => p.hello?.muxKey)?.hello?.muxKey ?? null
  }

  /** This agent's view of the cluster, for the highwire.Cluster status RPC. */
  status(): Promise<ClusterStatus> {
    return readAgentStatus(this, SOFTWARE, this.clock)
  }

  /** Appends `record` lazily; false if that failed (logged). */
  private record(record: AuditRecord): Promise<boolean> {
    return this.audit.append(record, { durable: false }).then(
      () => true,
      (err: Error) => {
        this.log.error('audit append failed', { type: record.type, error: err })
        return false
      }
    )
  }

  async close(reason = 'stopped'): Promise<void> {
    if (this.closed) return
    this.closed = true
    for (const timer of this.timers) clearInterval(timer)
    this.invoices.close()
    await this.api?.close()
    for (const link of this.nodes) link.close()
    await this.swarm?.close()
    await this.audit.append({ type: 'agent_stop', time: this.clock(), reason }).catch(() => {})
    await this.ledger.flush().catch((err: Error) => this.log.warn('mux snapshot not written; the next start reads a longer tail', { error: err }))
    await this.audit.close()
  }
}

/**
 * The mux ledger of every core this agent holds (own and replicas: a leader learns every settle and
 * cancel record before it serves, DESIGN.md "Election"), from its snapshot plus the tails: what the
 * member starts with, instead of every record ever written (issue 7's start-up target).
 */
async function openLedger(audit: AuditLog, identityKey: Uint8Array | null, log: Logger): Promise<CheckpointedFold<MuxLedger>> {
  const start = performance.now()
  const ledger = await openMuxLedger(audit, identityKey)
  const { snapshot, rejected, snapshotInvoices, tailRecords } = ledger.stats
  const fields = { snapshot, invoices: ledger.state.invoices, records: ledger.state.size, snapshotInvoices, tailRecords, ms: Math.round(performance.now() - start) }
  if (rejected !== undefined) log.warn('mux snapshot refused; the ledger was rebuilt from every record', { ...fields, reason: rejected })
  else log.info('mux ledger loaded', fields)
  return ledger
}

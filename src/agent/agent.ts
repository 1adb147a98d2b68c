// An agent: its LND nodes (edge role), the virtual node when it holds the identity key (candidate),
// the audit log and the application API. Events flow
//   lnd interceptor → edge → leader's virtual node → decision → edge (recorded, then) → lnd
// Here the agent stands alone and leads its own single-member term; the cluster (issue 6) replaces
// the local leader with the elected one behind the same edge.
import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import { AuditLog } from '../audit/log.ts'
import { AuditMuxStore } from '../audit/mux-store.ts'
import { configRecord, type AuditRecord } from '../audit/records.ts'
import { loadOrCreateAgentKeyPair } from '../cluster/keys.ts'
import { agentRole, type HighwireConfig } from '../config/schema.ts'
import { Edge, edgeHtlcId, DEFAULT_DEADLINE_MARGIN_BLOCKS, type EdgeAction, type EdgeHtlc } from '../edge/edge.ts'
import { ApiServer } from '../api/server.ts'
import type { InterceptedHtlc as LndHtlc, CircuitKey } from '../lnd/circuits.ts'
import type { LndEvent } from '../lnd/client.ts'
import type { Circuit, InterceptedHtlc as MuxHtlc, MuxOutput } from '../mux/types.ts'
import type { Logger } from '../log.ts'
import { NodeLink } from './node-link.ts'
import { VirtualNode, type HintCandidate } from './virtual-node.ts'

export const SOFTWARE = 'highwire/0.1.0'
/** The term an agent standing alone leads. */
const STANDALONE_TERM = 1

export interface AgentOptions {
  log: Logger
  now?: () => number
  /** GetInfo polling interval for block heights. */
  heightPollMs?: number
}

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex')

/** The mux's view of an HTLC an edge forwards: circuit made cluster-wide by the node's key. */
export function toMuxHtlc(htlc: EdgeHtlc, currentHeight: number): MuxHtlc {
  return {
    circuit: { node: Buffer.from(htlc.node, 'hex'), chanId: htlc.circuit.chanId, htlcId: htlc.circuit.htlcId },
    incomingAmountMsat: htlc.incomingAmountMsat,
    outgoingAmountMsat: htlc.outgoingAmountMsat,
    incomingExpiry: htlc.incomingExpiry,
    outgoingExpiry: htlc.outgoingExpiry,
    outgoingRequestedChanId: htlc.outgoingRequestedChanId,
    onionBlob: htlc.onionBlob,
    paymentHash: htlc.paymentHash,
    autoFailHeight: htlc.autoFailHeight,
    currentHeight
  }
}

function muxCircuitId(circuit: Circuit): string {
  return edgeHtlcId({ node: hex(circuit.node), circuit })
}

export class Agent {
  readonly id: string
  readonly config: HighwireConfig
  readonly audit: AuditLog
  readonly nodes: NodeLink[] = []
  readonly virtualNode: VirtualNode | null = null
  api: ApiServer | null = null
  private readonly log: Logger
  private readonly now: () => number
  private readonly edge: Edge
  private closed = false

  private constructor(config: HighwireConfig, id: string, audit: AuditLog, opts: AgentOptions) {
    this.config = config
    this.id = id
    this.audit = audit
    this.log = opts.log
    this.now = opts.now ?? Date.now
    this.edge = new Edge({ self: id, deadlineMarginBlocks: DEFAULT_DEADLINE_MARGIN_BLOCKS })
  }

  /** Opens storage, connects and checks every LND node, rebuilds the registry, then serves. */
  static async start(config: HighwireConfig, opts: AgentOptions): Promise<Agent> {
    const role = agentRole(config)
    if (role !== 'candidate') {
      throw new Error(`this agent is a ${role}: it needs the cluster to reach a virtual node, and the cluster is not wired into \`run\` yet (set mux.identityKey to run a standalone virtual node)`)
    }
    await mkdir(config.storage.path, { recursive: true, mode: 0o700 })
    const keys = await loadOrCreateAgentKeyPair(config.storage.path)
    const id = hex(keys.publicKey)
    const audit = await AuditLog.open({ path: join(config.storage.path, 'audit'), id })
    const agent = new Agent(config, id, audit, opts)
    try {
      await agent.open(opts.heightPollMs ?? 5000)
    } catch (err) {
      await agent.close('start failed')
      throw err
    }
    return agent
  }

  private async open(heightPollMs: number): Promise<void> {
    const time = this.now()
    await this.record({ type: 'agent_start', time, software: SOFTWARE, agent: Buffer.from(this.id, 'hex') }, false)
    await this.record(configRecord(this.config, time), false)
    for (const node of this.config.lnd.nodes) {
      const link = await NodeLink.open({
        node,
        network: this.config.network,
        allowUnsafe: this.config.lnd.allowUnsafe,
        log: this.log.child(node.name),
        heightPollMs,
        onHtlc: (htlc) => this.onHtlc(link, htlc),
        onFinal: (circuit, settled) => void this.onFinal(link, circuit, settled),
        onFinalStreamOpen: () => void this.reconcile(link),
        onHeight: (height) => void this.onHeight(height),
        onEvent: (event) => this.onLndEvent(link, event)
      })
      this.nodes.push(link)
      await this.record({ type: 'lnd_connect', time: this.now(), node: Buffer.from(link.pubkey, 'hex'), alias: link.alias }, false)
      this.log.info('lnd node ready', { node: link.name, alias: link.alias, height: link.height, virtualScid: link.virtualScid })
    }
    const identityKey = this.config.mux.identityKey!
    const virtualNode = await VirtualNode.open({
      identityKey,
      network: this.config.network,
      mux: this.config.mux,
      store: new AuditMuxStore(this.audit),
      hintCandidates: () => this.hintCandidates(),
      onDecision: (output) => this.onMuxDecision(output),
      onAccepted: (output) => this.log.info('set accepted', { hash: output.hash, setId: output.setId, amountMsat: output.amountMsat, parts: output.htlcs.length }),
      now: this.now
    })
    ;(this as { virtualNode: VirtualNode | null }).virtualNode = virtualNode
    await virtualNode.blockHeight(this.height())
    this.log.info('virtual node serving', { pubkey: virtualNode.pubkey, term: STANDALONE_TERM })
    this.apply(this.edge.leaderChanged(STANDALONE_TERM, this.id))
    for (const link of this.nodes) link.start()
    this.api = await ApiServer.start({ api: virtualNode, listen: this.config.api.listen, tls: this.config.api.tls, log: this.log.child('api') })
    this.log.info('api listening', { address: this.api.address })
  }

  /**
   * The nodes that answer, with their inbound capacity. A node that is down (lnd stopped, connection
   * lost) carries no route hint, so invoices stay payable through the others.
   */
  private async hintCandidates(): Promise<HintCandidate[]> {
    const answers = await Promise.allSettled(this.nodes.map(async (n) => ({ pubkey: n.pubkey, inboundMsat: await n.inboundMsat() })))
    const candidates: HintCandidate[] = []
    answers.forEach((answer, i) => {
      if (answer.status === 'fulfilled') candidates.push(answer.value)
      else this.log.warn('inbound capacity unknown: no route hint through this node', { node: this.nodes[i]!.name, error: answer.reason as Error })
    })
    return candidates
  }

  height(): number {
    return Math.max(0, ...this.nodes.map((n) => n.height))
  }

  private onHtlc(link: NodeLink, htlc: LndHtlc): void {
    const edgeHtlc: EdgeHtlc = { ...htlc, node: link.pubkey }
    this.log.info('htlc intercepted', { node: link.name, chan: htlc.circuit.chanId, htlc: htlc.circuit.htlcId, hash: htlc.paymentHash, amountMsat: htlc.outgoingAmountMsat })
    void this.record({
      type: 'htlc_intercepted',
      time: this.now(),
      node: Buffer.from(link.pubkey, 'hex'),
      chanId: htlc.circuit.chanId,
      htlcId: htlc.circuit.htlcId,
      hash: htlc.paymentHash,
      amountMsat: htlc.outgoingAmountMsat,
      expiry: htlc.outgoingExpiry
    }, false)
    this.apply(this.edge.offer(edgeHtlc, link.height))
  }

  private onMuxDecision(output: Extract<MuxOutput, { kind: 'decision' }>): void {
    this.apply(this.edge.decide(this.id, STANDALONE_TERM, muxCircuitId(output.circuit), output.decision), output.reason)
  }

  /** Carries out the edge's actions; `reason` is the mux's reason for the decision being recorded. */
  private apply(actions: EdgeAction[], reason = ''): void {
    for (const action of actions) {
      switch (action.type) {
        case 'forward':
          // Standalone: the leader is this agent's own virtual node.
          void this.virtualNode!.htlc(toMuxHtlc(action.htlc, this.height())).catch((err: Error) => this.log.error('mux refused an HTLC', { error: err }))
          break
        case 'record': {
          const htlc = this.edge.htlc(action.id)
          if (!htlc) break
          void this.record({
            type: 'htlc_decided',
            time: this.now(),
            node: Buffer.from(htlc.node, 'hex'),
            chanId: htlc.circuit.chanId,
            htlcId: htlc.circuit.htlcId,
            hash: htlc.paymentHash,
            term: action.term,
            action: action.decision.action,
            reason
          }, true).then(
            () => this.apply(this.edge.recorded(action.id)),
            (err: Error) => this.log.error('could not record a decision; it is not applied', { htlc: action.id, error: err })
          )
          break
        }
        case 'resolve':
          this.resolve(action.htlc, action.decision)
          break
        case 'reject':
          this.log.warn('decision rejected', { htlc: action.id, from: action.from, term: action.term, reason: action.reason })
          break
      }
    }
  }

  private resolve(htlc: EdgeHtlc, decision: Parameters<NodeLink['resolve']>[1]): void {
    const link = this.nodes.find((n) => n.pubkey === htlc.node)
    if (!link) return
    try {
      const result = link.resolve(htlc.circuit, decision)
      this.log.info(`htlc ${decision.action}`, { node: link.name, chan: htlc.circuit.chanId, htlc: htlc.circuit.htlcId, result })
    } catch (err) {
      this.log.error('lnd would refuse this resolution; not sent', { node: link.name, chan: htlc.circuit.chanId, htlc: htlc.circuit.htlcId, error: err as Error })
    }
  }

  private async onFinal(link: NodeLink, circuit: CircuitKey, settled: boolean): Promise<void> {
    const id = edgeHtlcId({ node: link.pubkey, circuit })
    const htlc = this.edge.htlc(id)
    this.edge.resolved(id)
    if (htlc) {
      this.log.info(`htlc final: ${settled ? 'settled' : 'failed'}`, { node: link.name, chan: circuit.chanId, htlc: circuit.htlcId })
      await this.record({
        type: 'htlc_resolved',
        time: this.now(),
        node: Buffer.from(link.pubkey, 'hex'),
        chanId: circuit.chanId,
        htlcId: circuit.htlcId,
        hash: htlc.paymentHash,
        outcome: settled ? 'settled' : 'failed',
        reason: ''
      }, false)
    }
    await this.virtualNode?.htlcResolved({ node: Buffer.from(link.pubkey, 'hex'), ...circuit }, settled)
  }

  /** After a restart or a reconnect of the final-resolution stream: ask lnd what we may have missed. */
  private async reconcile(link: NodeLink): Promise<void> {
    for (const circuit of this.virtualNode?.pendingResolutions() ?? []) {
      if (hex(circuit.node) !== link.pubkey) continue
      try {
        const resolution = await link.lookupResolution(circuit)
        if (resolution) await this.onFinal(link, circuit, resolution.settled)
      } catch (err) {
        this.log.warn('htlc resolution lookup failed', { node: link.name, chan: circuit.chanId, htlc: circuit.htlcId, error: err as Error })
      }
    }
  }

  private async onHeight(height: number): Promise<void> {
    this.apply(this.edge.height(height))
    await this.virtualNode?.blockHeight(height)
  }

  private onLndEvent(link: NodeLink, event: LndEvent): void {
    if (this.closed) return
    if (event.type === 'stream_open') this.log.info('lnd stream open', { node: link.name, stream: event.stream, attempt: event.attempt })
    else if (event.type === 'stream_closed') {
      this.log.warn('lnd stream closed', { node: link.name, stream: event.stream, error: event.error ?? undefined })
      void this.record({ type: 'lnd_disconnect', time: this.now(), node: Buffer.from(link.pubkey, 'hex'), reason: `${event.stream}: ${event.error ?? 'closed'}` }, false)
    } else if (event.type !== 'stream_retry') this.log.debug(event.type, { node: link.name })
  }

  private record(record: AuditRecord, durable: boolean): Promise<void> {
    return this.audit.append(record, { durable }).catch((err: Error) => {
      this.log.error('audit append failed', { type: record.type, error: err })
      if (durable) throw err
    })
  }

  async close(reason = 'stopped'): Promise<void> {
    if (this.closed) return
    this.closed = true
    await this.api?.close()
    this.virtualNode?.close()
    for (const link of this.nodes) link.close()
    await this.audit.append({ type: 'agent_stop', time: this.now(), reason }).catch(() => {})
    await this.audit.close()
  }
}

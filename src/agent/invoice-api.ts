// The lnmux-compatible InvoiceApi of one agent. On the serving leader it reads and drives the
// cluster member's mux; anywhere else it answers what it can locally (invoices are stateless: any
// candidate signs them) and forwards the rest to the leader (src/agent/api-forward.ts).
import { randomBytes } from 'node:crypto'
import { createStatelessInvoice, virtualRouteHint } from '../ln/stateless.ts'
import { secp256k1 } from '../ln/secp256k1.ts'
import { NotLeaderError, type ClusterMember, type MemberAction } from '../cluster/member.ts'
import { MuxError } from '../mux/types.ts'
import type { ApiForwarder } from './api-forward.ts'
import type { HighwireConfig } from '../config/schema.ts'
import {
  ApiError,
  type AcceptedListener,
  type AddInvoiceParams,
  type ApiInfo,
  type CreatedInvoice,
  type FinalSettlementStatus,
  type InvoiceApi,
  type ListedInvoice,
  type ListInvoicesParams
} from '../api/service.ts'

/** A real node of the cluster that can carry route hints, with what peers can still push to it. */
export interface HintCandidate {
  pubkey: string
  inboundMsat: bigint
}

/** What the API needs from the running agent. */
export interface AgentHandle {
  readonly member: ClusterMember
  readonly config: HighwireConfig
  /** Every node of the cluster that answers, own and peers', with inbound capacity. */
  hintCandidates(): Promise<HintCandidate[]>
  /** The virtual node's public key as this agent knows it (own key, or the candidates' hellos). */
  muxPubkey(): Uint8Array | null
  /** Feeds the member's actions to the driver. */
  apply(actions: MemberAction[]): void
  now(): number
  /** Calls to the leader when this agent does not serve the virtual node. */
  readonly forwarder: ApiForwarder
}

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex')

/** Up to `max` nodes with the most inbound capacity, those that can carry `amountMsat` alone first. */
export function chooseHintNodes(candidates: HintCandidate[], amountMsat: bigint, max: number): HintCandidate[] {
  const byInbound = [...candidates].sort((a, b) => (a.inboundMsat === b.inboundMsat ? 0 : a.inboundMsat > b.inboundMsat ? -1 : 1))
  const carriers = byInbound.filter((c) => c.inboundMsat >= amountMsat)
  // Multi-part payments can split across nodes that cannot carry the amount alone.
  return carriers.concat(byInbound.filter((c) => c.inboundMsat < amountMsat)).slice(0, max)
}

interface Waiter {
  resolve: () => void
  reject: (err: Error) => void
}

export class MemberInvoiceApi implements InvoiceApi {
  private readonly agent: AgentHandle
  private readonly listeners = new Set<AcceptedListener>()
  private readonly finalWaiters = new Map<string, Set<(status: FinalSettlementStatus) => void>>()
  /** API calls waiting for their record to reach a majority, by `${type}:${hash}`. */
  private readonly commitWaiters = new Map<string, Waiter[]>()
  /** While another agent leads: the relayed SubscribeInvoiceAccepted stream feeding `listeners`. */
  private relay: { stop: () => void } | null = null

  constructor(agent: AgentHandle) {
    this.agent = agent
  }

  /** The driver shows the API every member action, after applying it. */
  observe(action: MemberAction): void {
    switch (action.type) {
      case 'accepted':
        for (const listener of this.listeners) listener({ hash: action.hash, setId: action.setId })
        return
      case 'final': {
        const key = hex(action.hash)
        for (const waiter of this.finalWaiters.get(key) ?? []) waiter(action.status)
        this.finalWaiters.delete(key)
        return
      }
      case 'committed':
      case 'abandoned': {
        const key = `${action.record.type}:${hex(action.record.hash)}`
        const waiters = this.commitWaiters.get(key) ?? []
        this.commitWaiters.delete(key)
        for (const w of waiters) {
          if (action.type === 'committed') w.resolve()
          else w.reject(new ApiError('not_leader', 'leadership was lost before the record reached a majority; retry'))
        }
        return
      }
      case 'leader':
        // Sets accepted under an old leader are accepted again by the next: subscribers hear them again.
        this.agent.forwarder.leaderGone()
        this.relay?.stop()
        this.relay = null
        if (action.leader !== null && action.leader !== this.agent.member.self) this.openRelay()
        return
    }
  }

  /** True when calls are answered here: this agent serves the virtual node. */
  private local(): boolean {
    return this.agent.member.isServing()
  }

  private openRelay(): void {
    if (this.listeners.size === 0 || this.relay !== null) return
    const stream = this.agent.forwarder.stream('subscribeAccepted', {}, (set: { hash: Uint8Array; setId: Uint8Array }) => {
      for (const listener of this.listeners) listener(set)
    })
    stream.done.catch(() => {})
    this.relay = stream
  }

  async getInfo(): Promise<ApiInfo> {
    const pubKey = this.agent.muxPubkey()
    if (pubKey === null) throw new ApiError('not_leader', 'no candidate has announced the virtual node key yet')
    const nodes = await this.agent.hintCandidates()
    return {
      pubKey,
      network: this.agent.config.network,
      nodes: nodes.map((n) => new Uint8Array(Buffer.from(n.pubkey, 'hex'))),
      autoSettle: this.agent.config.mux.autoSettle
    }
  }

  async addInvoice(params: AddInvoiceParams): Promise<CreatedInvoice> {
    const { mux, network } = this.agent.config
    const identityKey = mux.identityKey
    // Invoices are stateless: any candidate signs them; others ask the leader.
    if (identityKey === null) return this.agent.forwarder.call('addInvoice', params)
    const nodes = chooseHintNodes(await this.agent.hintCandidates(), params.amtMsat, mux.maxRouteHints)
    if (nodes.length === 0) throw new ApiError('failed_precondition', 'no LND node of the cluster is reachable to carry a route hint')
    const created = createStatelessInvoice({
      identityKey,
      network,
      amountMsat: params.amtMsat,
      expirySeconds: params.expirySecs,
      ...(params.descriptionHash ? { descriptionHash: params.descriptionHash } : { description: params.description }),
      routeHints: nodes.map((n) => virtualRouteHint(Buffer.from(n.pubkey, 'hex'), mux.routingPolicy)),
      minFinalCltvExpiry: mux.minFinalCltvExpiry,
      nowUnix: Math.floor(this.agent.now() / 1000),
      random16: randomBytes(16)
    })
    return { paymentRequest: created.invoice, preimage: created.preimage, hash: created.paymentHash }
  }

  subscribeAccepted(listener: AcceptedListener): () => void {
    for (const output of this.agent.member.virtualNode?.acceptedSets() ?? []) {
      if (output.kind === 'accepted') listener({ hash: output.hash, setId: output.setId })
    }
    this.listeners.add(listener)
    const leader = this.agent.member.leader
    if (!this.local() && leader !== null && leader !== this.agent.member.self) this.openRelay()
    return () => {
      this.listeners.delete(listener)
      if (this.listeners.size === 0) {
        this.relay?.stop()
        this.relay = null
      }
    }
  }

  settle(hash: Uint8Array, setId: Uint8Array): Promise<void> {
    if (!this.local()) return this.agent.forwarder.call('settle', { hash, setId })
    return this.untilCommitted('settle_requested', hash, () => this.agent.member.settle(hash, setId))
  }

  cancel(hash: Uint8Array, setId?: Uint8Array): Promise<void> {
    if (!this.local()) return this.agent.forwarder.call('cancel', { hash, setId })
    const mux = this.agent.member.virtualNode
    if (setId !== undefined && mux !== null) {
      const accepted = mux.acceptedSets().find((o) => o.kind === 'accepted' && Buffer.from(o.hash).equals(hash))
      if (accepted?.kind === 'accepted' && !Buffer.from(accepted.setId).equals(setId)) {
        return Promise.reject(new ApiError('failed_precondition', 'the accepted HTLC set has another id'))
      }
    }
    return this.untilCommitted('cancelled', hash, () => this.agent.member.cancel(hash))
  }

  waitForFinalStatus(hash: Uint8Array, signal: AbortSignal): Promise<FinalSettlementStatus> {
    if (!this.local()) return this.agent.forwarder.call('waitForFinalStatus', { hash })
    const status = this.serving().status(hash)
    if (status === 'settled' || status === 'failed') return Promise.resolve(status)
    if (status !== 'settle_requested') return Promise.reject(new ApiError('not_found', 'no settlement was requested for this invoice'))
    return new Promise((resolve, reject) => {
      const key = hex(hash)
      const waiters = this.finalWaiters.get(key) ?? new Set()
      const onFinal = (final: FinalSettlementStatus): void => {
        signal.removeEventListener('abort', onAbort)
        resolve(final)
      }
      const onAbort = (): void => {
        waiters.delete(onFinal)
        reject(new ApiError('aborted', 'the wait was aborted'))
      }
      waiters.add(onFinal)
      this.finalWaiters.set(key, waiters)
      signal.addEventListener('abort', onAbort, { once: true })
    })
  }

  async listInvoices(params: ListInvoicesParams): Promise<ListedInvoice[]> {
    if (!this.local()) return this.agent.forwarder.call('listInvoices', params)
    return this.serving().settlements(params.sequenceStart, params.maxCount).map((s) => ({
      sequenceNumber: s.sequence,
      hash: s.hash,
      preimage: s.preimage,
      amountMsat: s.amountMsat,
      status: s.status,
      settleRequestedAt: Math.floor(s.requestedAt / 1000),
      finalizedAt: s.finalizedAt === undefined ? null : Math.floor(s.finalizedAt / 1000)
    }))
  }

  close(): void {
    this.relay?.stop()
    this.listeners.clear()
    for (const waiters of this.commitWaiters.values()) for (const w of waiters) w.reject(new ApiError('aborted', 'the agent is stopping'))
    this.commitWaiters.clear()
  }

  private serving(): NonNullable<ClusterMember['virtualNode']> {
    const mux = this.agent.member.virtualNode
    if (mux === null) throw new ApiError('not_leader', 'this agent does not serve the virtual node right now')
    return mux
  }

  /**
   * Runs a settle or cancel on the member and resolves once its record is held by a majority. An
   * idempotent repeat (nothing new to record) resolves at once.
   */
  private untilCommitted(type: 'settle_requested' | 'cancelled', hash: Uint8Array, run: () => MemberAction[]): Promise<void> {
    let actions: MemberAction[]
    try {
      actions = run()
    } catch (err) {
      if (err instanceof NotLeaderError) return Promise.reject(new ApiError('not_leader', err.message))
      if (err instanceof MuxError) return Promise.reject(err)
      throw err
    }
    const recording = actions.some((a) => a.type === 'persist-record' && a.record.type === type)
    const done = recording
      ? new Promise<void>((resolve, reject) => {
          const key = `${type}:${hex(hash)}`
          this.commitWaiters.set(key, [...(this.commitWaiters.get(key) ?? []), { resolve, reject }])
        })
      : Promise.resolve()
    this.agent.apply(actions)
    return done
  }
}

export function identityPubkey(identityKey: Uint8Array | null): Uint8Array | null {
  return identityKey === null ? null : secp256k1.publicKey(identityKey)
}

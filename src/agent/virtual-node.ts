// The virtual node as the application sees it: the lnmux-compatible InvoiceApi over the mux state
// machine and its durable store. Invoices are stateless (nothing is stored until settlement is
// requested); route hints go through the real nodes with the most inbound capacity.
import { randomBytes } from 'node:crypto'
import { MuxDriver } from '../mux/driver.ts'
import type { MuxStore } from '../mux/store.ts'
import type { Circuit, InterceptedHtlc, MuxOutput } from '../mux/types.ts'
import { createStatelessInvoice, virtualRouteHint } from '../ln/stateless.ts'
import { secp256k1 } from '../ln/secp256k1.ts'
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

/** A real node that can carry route hints, with what peers can still push to it. */
export interface HintCandidate {
  pubkey: string
  inboundMsat: bigint
}

export interface VirtualNodeOptions {
  identityKey: Uint8Array
  network: HighwireConfig['network']
  mux: HighwireConfig['mux']
  store: MuxStore
  /** The cluster's real nodes and their inbound capacity, asked at each AddInvoice. */
  hintCandidates: () => Promise<HintCandidate[]>
  /** Every decision for an HTLC, to be carried to the edge that holds it. */
  onDecision: (output: Extract<MuxOutput, { kind: 'decision' }>) => void
  onAccepted?: (output: Extract<MuxOutput, { kind: 'accepted' }>) => void
  now: () => number
}

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex')

/** Up to `max` nodes with the most inbound capacity, preferring those that can carry `amountMsat` alone. */
export function chooseHintNodes(candidates: HintCandidate[], amountMsat: bigint, max: number): HintCandidate[] {
  const byInbound = [...candidates].sort((a, b) => (a.inboundMsat === b.inboundMsat ? 0 : a.inboundMsat > b.inboundMsat ? -1 : 1))
  const carriers = byInbound.filter((c) => c.inboundMsat >= amountMsat)
  // Multi-part payments can split across nodes that cannot carry the amount alone.
  return (carriers.length > 0 ? carriers.concat(byInbound.filter((c) => c.inboundMsat < amountMsat)) : byInbound).slice(0, max)
}

export class VirtualNode implements InvoiceApi {
  readonly pubkey: Uint8Array
  private readonly opts: VirtualNodeOptions
  private readonly driver: MuxDriver
  private readonly listeners = new Set<AcceptedListener>()
  private readonly finalWaiters = new Map<string, Set<(status: FinalSettlementStatus) => void>>()
  private timer: NodeJS.Timeout | null = null

  private constructor(opts: VirtualNodeOptions, driver: MuxDriver) {
    this.opts = opts
    this.driver = driver
    this.pubkey = secp256k1.publicKey(opts.identityKey)
  }

  /** Rebuilds the registry from the store, then serves. */
  static async open(opts: VirtualNodeOptions): Promise<VirtualNode> {
    let self: VirtualNode | null = null
    const driver = await MuxDriver.open({
      identityKey: opts.identityKey,
      now: opts.now,
      policy: opts.mux.routingPolicy,
      mppTimeoutMs: opts.mux.mppTimeoutMs,
      acceptTimeoutMs: opts.mux.acceptTimeoutMs,
      autoSettle: opts.mux.autoSettle,
      store: opts.store,
      onOutput: (output) => self!.onOutput(output)
    })
    self = new VirtualNode(opts, driver)
    return self
  }

  /** Settled-set HTLCs whose final resolution is unknown (look them up after a restart). */
  pendingResolutions(): Circuit[] {
    return this.driver.machine.pendingResolutions()
  }

  async htlc(htlc: InterceptedHtlc): Promise<void> {
    await this.driver.htlc(htlc)
    this.schedule()
  }

  async htlcResolved(circuit: Circuit, settled: boolean): Promise<void> {
    await this.driver.htlcResolved(circuit, settled)
  }

  async blockHeight(height: number): Promise<void> {
    await this.driver.blockHeight(height)
    this.schedule()
  }

  close(): void {
    if (this.timer) clearTimeout(this.timer)
    this.timer = null
    this.listeners.clear()
  }

  // --- InvoiceApi (lnmux.Service) ---

  async getInfo(): Promise<ApiInfo> {
    const nodes = await this.opts.hintCandidates()
    return {
      pubKey: this.pubkey,
      network: this.opts.network,
      nodes: nodes.map((n) => new Uint8Array(Buffer.from(n.pubkey, 'hex'))),
      autoSettle: this.opts.mux.autoSettle
    }
  }

  async addInvoice(params: AddInvoiceParams): Promise<CreatedInvoice> {
    const nodes = chooseHintNodes(await this.opts.hintCandidates(), params.amtMsat, this.opts.mux.maxRouteHints)
    if (nodes.length === 0) throw new ApiError('failed_precondition', 'no LND node is connected to carry a route hint')
    const created = createStatelessInvoice({
      identityKey: this.opts.identityKey,
      network: this.opts.network,
      amountMsat: params.amtMsat,
      expirySeconds: params.expirySecs,
      ...(params.descriptionHash ? { descriptionHash: params.descriptionHash } : { description: params.description }),
      routeHints: nodes.map((n) => virtualRouteHint(Buffer.from(n.pubkey, 'hex'), this.opts.mux.routingPolicy)),
      minFinalCltvExpiry: this.opts.mux.minFinalCltvExpiry,
      nowUnix: Math.floor(this.opts.now() / 1000),
      random16: randomBytes(16)
    })
    return { paymentRequest: created.invoice, preimage: created.preimage, hash: created.paymentHash }
  }

  subscribeAccepted(listener: AcceptedListener): () => void {
    for (const output of this.driver.machine.acceptedSets()) {
      if (output.kind === 'accepted') listener({ hash: output.hash, setId: output.setId })
    }
    this.listeners.add(listener)
    return () => this.listeners.delete(listener)
  }

  async settle(hash: Uint8Array, setId: Uint8Array): Promise<void> {
    await this.driver.settle(hash, setId)
    this.schedule()
  }

  async cancel(hash: Uint8Array, setId?: Uint8Array): Promise<void> {
    if (setId !== undefined) {
      const accepted = this.driver.machine.acceptedSets().find((o) => o.kind === 'accepted' && Buffer.from(o.hash).equals(hash))
      if (accepted?.kind === 'accepted' && !Buffer.from(accepted.setId).equals(setId)) {
        throw new ApiError('failed_precondition', 'the accepted HTLC set has another id')
      }
    }
    await this.driver.cancel(hash)
    this.schedule()
  }

  waitForFinalStatus(hash: Uint8Array, signal: AbortSignal): Promise<FinalSettlementStatus> {
    const status = this.driver.machine.status(hash)
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
    return this.driver.machine.settlements(params.sequenceStart, params.maxCount).map((s) => ({
      sequenceNumber: s.sequence,
      hash: s.hash,
      preimage: s.preimage,
      amountMsat: s.amountMsat,
      status: s.status,
      settleRequestedAt: Math.floor(s.requestedAt / 1000),
      finalizedAt: s.finalizedAt === undefined ? null : Math.floor(s.finalizedAt / 1000)
    }))
  }

  // --- outputs and timers ---

  private onOutput(output: MuxOutput): void {
    switch (output.kind) {
      case 'decision':
        this.opts.onDecision(output)
        return
      case 'accepted':
        this.opts.onAccepted?.(output)
        for (const listener of this.listeners) listener({ hash: output.hash, setId: output.setId })
        return
      case 'final': {
        const key = hex(output.hash)
        for (const waiter of this.finalWaiters.get(key) ?? []) waiter(output.status)
        this.finalWaiters.delete(key)
        return
      }
      case 'persist':
        return // the driver persists records itself
    }
  }

  /** Keeps one timer armed for the machine's next deadline (mpp and accept timeouts). */
  private schedule(): void {
    if (this.timer) clearTimeout(this.timer)
    this.timer = null
    const next = this.driver.machine.nextDeadline()
    if (next === undefined) return
    this.timer = setTimeout(() => {
      this.timer = null
      void this.driver.tick().then(() => this.schedule())
    }, Math.max(0, next - this.opts.now()))
    this.timer.unref()
  }
}

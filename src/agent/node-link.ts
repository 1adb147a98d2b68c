// One LND node an agent holds: the client, its start-up checks, the HtlcInterceptor stream, the
// final-resolution stream and a block-height watch. It only moves events; what they mean is decided
// by the edge and the virtual node.
import { LndClient, type LndEvent } from '../lnd/client.ts'
import { runStartupChecks } from '../lnd/checks.ts'
import { HtlcInterceptor, type ResolveResult } from '../lnd/interceptor.ts'
import type { CircuitKey, Decision, InterceptedHtlc } from '../lnd/circuits.ts'
import type { LndNodeConfig, Network } from '../config/schema.ts'
import type { Logger } from '../log.ts'

export interface NodeLinkOptions {
  node: LndNodeConfig
  network: Network
  allowUnsafe: boolean
  log: Logger
  /** How often GetInfo is polled for the best block height. */
  heightPollMs: number
  onHtlc: (htlc: InterceptedHtlc) => void
  /** lnd's final resolution of an HTLC it held for us (FinalHtlcEvent). */
  onFinal: (circuit: CircuitKey, settled: boolean) => void
  /** The final-resolution stream (re)opened: events may have been missed, look them up. */
  onFinalStreamOpen: () => void
  onHeight: (height: number) => void
  onEvent: (event: LndEvent) => void
}

export class NodeLink {
  readonly name: string
  readonly pubkey: string
  readonly client: LndClient
  readonly alias: string
  height: number
  private readonly opts: NodeLinkOptions
  private readonly interceptor: HtlcInterceptor
  private finals: { stop(): void } | null = null
  private heightTimer: NodeJS.Timeout | null = null
  /** The last inbound capacity read, so that an invoice never waits on a slow node. */
  private inbound: { msat: bigint; at: number } | null = null

  private constructor(opts: NodeLinkOptions, client: LndClient, alias: string, height: number) {
    this.opts = opts
    this.name = opts.node.name
    this.pubkey = opts.node.pubkey
    this.client = client
    this.alias = alias
    this.height = height
    this.interceptor = new HtlcInterceptor({ client, onHtlc: opts.onHtlc, onEvent: opts.onEvent })
    this.interceptor.setBlockHeight(height)
  }

  /** Connects and runs the start-up checks; throws LndError with a message naming the node. */
  static async open(opts: NodeLinkOptions): Promise<NodeLink> {
    const client = new LndClient(opts.node, {
      onEvent: (event) => {
        if (event.type === 'stream_open' && event.stream === 'SubscribeHtlcEvents') opts.onFinalStreamOpen()
        opts.onEvent(event)
      }
    })
    try {
      const { info, warnings } = await runStartupChecks(client, { network: opts.network, allowUnsafe: opts.allowUnsafe })
      for (const warning of warnings) opts.log.warn(warning)
      return new NodeLink(opts, client, info.alias, info.blockHeight)
    } catch (err) {
      client.close()
      throw err
    }
  }

  start(): void {
    this.interceptor.start()
    this.finals = this.client.subscribeFinalHtlcs((e) => this.opts.onFinal({ chanId: e.incomingChanId, htlcId: e.incomingHtlcId }, e.settled))
    this.heightTimer = setInterval(() => void this.pollHeight(), this.opts.heightPollMs)
  }

  get virtualScid(): bigint {
    return this.interceptor.virtualScid
  }

  resolve(circuit: CircuitKey, decision: Decision): ResolveResult {
    return this.interceptor.resolve(circuit, decision)
  }

  /**
   * What peers can still push to this node over its active channels (its inbound capacity), as last
   * read within `maxAgeMs`; null when the node has not answered lately (it then carries no hint).
   */
  inboundMsat(now: number, maxAgeMs: number): bigint | null {
    return this.inbound !== null && now - this.inbound.at <= maxAgeMs ? this.inbound.msat : null
  }

  /** Reads the inbound capacity from ListChannels; throws, and forgets the last reading, if the node does not answer. */
  async refreshInbound(now: number): Promise<bigint> {
    let channels
    try {
      channels = await this.client.listChannels({ activeOnly: true })
    } catch (err) {
      this.inbound = null
      throw err
    }
    let total = 0n
    for (const channel of channels) {
      const usable = channel.remoteBalanceMsat - channel.remoteReserveMsat
      if (usable > 0n) total += usable
    }
    this.inbound = { msat: total, at: now }
    return total
  }

  /** lnd's stored final resolution of an HTLC (needs --store-final-htlc-resolutions), or null. */
  lookupResolution(circuit: CircuitKey): Promise<{ settled: boolean } | null> {
    return this.client.lookupHtlcResolution(circuit.chanId, circuit.htlcId)
  }

  private async pollHeight(): Promise<void> {
    try {
      const { blockHeight } = await this.client.getInfo()
      if (blockHeight <= this.height) return
      this.height = blockHeight
      this.interceptor.setBlockHeight(blockHeight)
      this.opts.onHeight(blockHeight)
    } catch (err) {
      this.opts.log.warn('block height poll failed', { node: this.name, error: err as Error })
    }
  }

  close(): void {
    if (this.heightTimer) clearInterval(this.heightTimer)
    this.interceptor.stop()
    this.finals?.stop()
    this.client.close()
  }
}

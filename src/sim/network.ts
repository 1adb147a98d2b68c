// A pure model of a few LND nodes joined by channels, for tests and the demo: nodes with keys,
// channels with balances and reserves, HTLCs keyed by circuit key (incoming chan id, htlc id), a
// simulated chain that only advances when mined, and each node's interceptable switch (switch.ts).
// The clock is injected (event timestamps only); no IO happens here.
//
// An HTLC offered to a node goes through its "link" (link.ts: peel the onion, receive or forward)
// and, when forwarded, through its switch, exactly where lnd puts the HtlcInterceptor.
import { sha256 } from '@noble/hashes/sha2.js'
import { encodeInvoice } from '../ln/bolt11.ts'
import type { FailureCode } from '../ln/failure.ts'
import { secp256k1 } from '../ln/secp256k1.ts'
import { SimError } from './errors.ts'
import { processHtlc } from './link.ts'
import { InterceptableSwitch, circuitKeyId, type CircuitKey } from './switch.ts'

/** The codes of update_fail_malformed_htlc (BOLT 2: BADONION codes). */
export type MalformedCode =
  | typeof FailureCode.INVALID_ONION_VERSION
  | typeof FailureCode.INVALID_ONION_HMAC
  | typeof FailureCode.INVALID_ONION_KEY

/** What the offering side learns about an HTLC it offered: lnd's update_fulfill/fail(_malformed). */
export type HtlcOutcome =
  | { type: 'settled', preimage: Uint8Array }
  | { type: 'failed', reason: Uint8Array }
  | { type: 'malformed', failureCode: MalformedCode, onionSha256: Uint8Array }

export interface HtlcAdd {
  amountMsat: bigint
  expiry: number
  paymentHash: Uint8Array
  /** The 1366-byte BOLT 4 onion packet. */
  onion: Uint8Array
}

/** An HTLC in a channel, offered by `from` to `to`; its circuit key is (chanId, htlcId) at `to`. */
export interface SimHtlc extends HtlcAdd {
  key: CircuitKey
  channel: SimChannel
  from: SimNode
  to: SimNode
  /** Tells the offering side how the HTLC was resolved. */
  onOutcome: (outcome: HtlcOutcome) => void
  /** 'arrived': not yet past the switch (replayed on restart); 'forwarded': resumed downstream. */
  state: 'arrived' | 'forwarded'
}

export interface ChannelPolicy {
  feeBaseMsat: bigint
  feeRatePpm: bigint
  cltvExpiryDelta: number
}

export const DEFAULT_POLICY: ChannelPolicy = { feeBaseMsat: 1000n, feeRatePpm: 1n, cltvExpiryDelta: 40 }

export class SimChannel {
  readonly chanId: bigint
  readonly nodes: readonly [SimNode, SimNode]
  readonly capacityMsat: bigint
  /** Both sides' channel reserve (lnd: 1% of capacity by default). */
  readonly reserveMsat: bigint
  /** Forwarding policy of each direction, indexed like `nodes` (the policy of the side that forwards). */
  readonly policies: [ChannelPolicy, ChannelPolicy]
  /** Settled balance of each side, indexed like `nodes`; pending HTLCs are deducted from the offerer. */
  readonly balanceMsat: [bigint, bigint]
  /** HTLCs in flight, by circuit key id at the receiving node. */
  readonly htlcs = new Map<string, SimHtlc>()
  private readonly nextHtlcId: [bigint, bigint] = [0n, 0n]

  constructor (chanId: bigint, a: SimNode, b: SimNode, capacityMsat: bigint, pushMsat: bigint, reserveMsat: bigint, policy: ChannelPolicy) {
    this.chanId = chanId
    this.nodes = [a, b]
    this.capacityMsat = capacityMsat
    this.reserveMsat = reserveMsat
    this.policies = [{ ...policy }, { ...policy }]
    this.balanceMsat = [capacityMsat - pushMsat, pushMsat]
  }

  side (node: SimNode): 0 | 1 {
    if (this.nodes[0] === node) return 0
    if (this.nodes[1] === node) return 1
    throw new SimError('unknown_channel', `channel ${this.chanId} does not belong to ${node.name}`)
  }

  peer (node: SimNode): SimNode {
    return this.nodes[1 - this.side(node)]!
  }

  /** Balance `node` may still offer in new HTLCs: its balance above its reserve. */
  spendableMsat (node: SimNode): bigint {
    const free = this.balanceMsat[this.side(node)] - this.reserveMsat
    return free > 0n ? free : 0n
  }

  /** HTLCs in flight offered by `node` (outgoing) or to it (incoming). */
  pendingHtlcs (): SimHtlc[] {
    return [...this.htlcs.values()]
  }

  allocateHtlcId (offerer: SimNode): bigint {
    const side = this.side(offerer)
    const id = this.nextHtlcId[side]
    this.nextHtlcId[side] = id + 1n
    return id
  }
}

export interface FinalResolution {
  settled: boolean
  offchain: boolean
}

export type NodeEvent =
  | { type: 'final_htlc', key: CircuitKey, settled: boolean, offchain: boolean, timeMs: number }
  | { type: 'stopped' }
  | { type: 'started' }

/** An invoice of a simulated node (lnd's invoice registry, single-part receive only). */
export interface SimInvoice {
  paymentHash: Uint8Array
  preimage: Uint8Array
  paymentAddr: Uint8Array
  valueMsat: bigint
  memo: string
  /** Unix seconds. */
  creationDate: number
  /** Seconds. */
  expiry: number
  /** min_final_cltv_expiry, blocks. */
  cltvExpiry: number
  paymentRequest: string
  addIndex: bigint
  state: 'open' | 'settled'
  amountPaidMsat: bigint
}

export interface AddInvoiceOptions {
  valueMsat: bigint
  memo?: string
  expiry?: number
  cltvExpiry?: number
}

// lnd's defaults: invoices expire after 24 h (invoicesrpc DefaultInvoiceExpiry) and ask for the
// chain's time lock delta at the final hop (chainreg DefaultBitcoinTimeLockDelta = 80).
const DEFAULT_INVOICE_EXPIRY = 86400
const DEFAULT_FINAL_CLTV_DELTA = 80

// BOLT 9 feature bits lnd sets in its invoices: var_onion_optin (9), payment_secret (14, required),
// basic_mpp (17).
const INVOICE_FEATURES = [9, 14, 17]

export interface SimNodeOptions {
  name: string
  secretKey: Uint8Array
  /** lnd --requireinterceptor (default true, as highwire requires). */
  requireInterceptor?: boolean
  /** lnd --store-final-htlc-resolutions (default true). */
  storeFinalHtlcResolutions?: boolean
}

export class SimNode {
  readonly network: SimNetwork
  readonly name: string
  readonly secretKey: Uint8Array
  readonly pubkey: Uint8Array
  readonly storeFinalHtlcResolutions: boolean
  readonly switch: InterceptableSwitch
  online = true
  private readonly finalResolutions = new Map<string, FinalResolution>()
  private readonly invoices = new Map<string, SimInvoice>()
  private readonly listeners = new Set<(event: NodeEvent) => void>()

  constructor (network: SimNetwork, opts: SimNodeOptions) {
    if (!secp256k1.isSecretKey(opts.secretKey)) throw new SimError('bad_request', `node ${opts.name}: invalid secret key`)
    this.network = network
    this.name = opts.name
    this.secretKey = opts.secretKey
    this.pubkey = secp256k1.publicKey(opts.secretKey)
    this.storeFinalHtlcResolutions = opts.storeFinalHtlcResolutions ?? true
    this.switch = new InterceptableSwitch(opts.requireInterceptor ?? true)
  }

  get pubkeyHex (): string {
    return Buffer.from(this.pubkey).toString('hex')
  }

  channels (): SimChannel[] {
    return this.network.channelsOf(this)
  }

  subscribe (listener: (event: NodeEvent) => void): () => void {
    this.listeners.add(listener)
    return () => { this.listeners.delete(listener) }
  }

  emit (event: NodeEvent): void {
    for (const listener of [...this.listeners]) listener(event)
  }

  /** AddInvoice: a fresh preimage and payment secret, a BOLT 11 request signed by this node. */
  addInvoice (opts: AddInvoiceOptions): SimInvoice {
    if (opts.valueMsat <= 0n) throw new SimError('bad_request', 'invoice amount must be positive')
    const preimage = this.network.random(32)
    const paymentHash = sha256(preimage)
    const paymentAddr = this.network.random(32)
    const creationDate = Math.floor(this.network.clock() / 1000)
    const expiry = opts.expiry ?? DEFAULT_INVOICE_EXPIRY
    const cltvExpiry = opts.cltvExpiry ?? DEFAULT_FINAL_CLTV_DELTA
    const memo = opts.memo ?? ''
    const paymentRequest = encodeInvoice({
      network: 'regtest',
      amountMsat: opts.valueMsat,
      timestamp: creationDate,
      paymentHash,
      paymentSecret: paymentAddr,
      description: memo,
      expiry,
      minFinalCltvExpiry: cltvExpiry,
      features: INVOICE_FEATURES
    }, this.secretKey)
    const invoice: SimInvoice = {
      paymentHash, preimage, paymentAddr, valueMsat: opts.valueMsat, memo, creationDate, expiry, cltvExpiry,
      paymentRequest, addIndex: BigInt(this.invoices.size + 1), state: 'open', amountPaidMsat: 0n
    }
    this.invoices.set(Buffer.from(paymentHash).toString('hex'), invoice)
    return invoice
  }

  invoice (paymentHash: Uint8Array): SimInvoice | undefined {
    return this.invoices.get(Buffer.from(paymentHash).toString('hex'))
  }

  /** LookupHtlcResolution's view; undefined while the HTLC is unresolved or unknown. */
  finalResolution (key: CircuitKey): FinalResolution | undefined {
    return this.finalResolutions.get(circuitKeyId(key))
  }

  /**
   * The incoming HTLC `htlc` is irrevocably resolved: move the balance, tell the offerer, and
   * record and announce its final resolution (lnd's FinalHtlcEvent).
   */
  finalize (htlc: SimHtlc, outcome: HtlcOutcome): void {
    const channel = htlc.channel
    if (!channel.htlcs.delete(circuitKeyId(htlc.key))) return
    const settled = outcome.type === 'settled'
    const receiver = settled ? htlc.to : htlc.from
    channel.balanceMsat[channel.side(receiver)] += htlc.amountMsat
    if (this.storeFinalHtlcResolutions) {
      this.finalResolutions.set(circuitKeyId(htlc.key), { settled, offchain: true })
    }
    this.emit({ type: 'final_htlc', key: htlc.key, settled, offchain: true, timeMs: this.network.clock() })
    htlc.onOutcome(outcome)
  }

  /** Incoming HTLCs of this node that have not passed its switch yet. */
  arrivedHtlcs (): SimHtlc[] {
    return this.channels().flatMap((c) => c.pendingHtlcs()).filter((h) => h.to === this && h.state === 'arrived')
  }
}

export interface SimNetworkOptions {
  /** Wall clock in milliseconds, for event timestamps. */
  clock: () => number
  /** Randomness for preimages, payment secrets and session keys. */
  random: (length: number) => Uint8Array
  startHeight?: number
}

export interface OpenChannelOptions {
  capacityMsat: bigint
  pushMsat?: bigint
  reserveMsat?: bigint
  policy?: ChannelPolicy
}

export class SimNetwork {
  readonly clock: () => number
  readonly random: (length: number) => Uint8Array
  height: number
  readonly nodes = new Map<string, SimNode>()
  private readonly channels = new Map<bigint, SimChannel>()
  private nextTxIndex = 1

  constructor (opts: SimNetworkOptions) {
    this.clock = opts.clock
    this.random = opts.random
    this.height = opts.startHeight ?? 1000
  }

  addNode (opts: SimNodeOptions): SimNode {
    if (this.nodes.has(opts.name)) throw new SimError('bad_request', `node ${opts.name} already exists`)
    const node = new SimNode(this, opts)
    this.nodes.set(opts.name, node)
    return node
  }

  node (name: string): SimNode {
    const node = this.nodes.get(name)
    if (node === undefined) throw new SimError('unknown_node', `no node named ${name}`)
    return node
  }

  nodeByPubkey (pubkey: Uint8Array): SimNode | undefined {
    const hex = Buffer.from(pubkey).toString('hex')
    return [...this.nodes.values()].find((n) => n.pubkeyHex === hex)
  }

  /** Opens a channel confirmed in the current block; its scid is height:txIndex:0 (BOLT 7). */
  openChannel (a: SimNode, b: SimNode, opts: OpenChannelOptions): SimChannel {
    const pushMsat = opts.pushMsat ?? 0n
    if (a === b || pushMsat < 0n || pushMsat > opts.capacityMsat) {
      throw new SimError('bad_request', `invalid channel ${a.name}-${b.name}`)
    }
    const chanId = (BigInt(this.height) << 40n) | (BigInt(this.nextTxIndex++) << 16n)
    const reserveMsat = opts.reserveMsat ?? opts.capacityMsat / 100n
    const channel = new SimChannel(chanId, a, b, opts.capacityMsat, pushMsat, reserveMsat, opts.policy ?? DEFAULT_POLICY)
    this.channels.set(chanId, channel)
    return channel
  }

  channel (chanId: bigint): SimChannel | undefined {
    return this.channels.get(chanId)
  }

  channelsOf (node: SimNode): SimChannel[] {
    return [...this.channels.values()].filter((c) => c.nodes.includes(node))
  }

  /** Mines `blocks` blocks; every online node's switch fails held HTLCs at their auto-fail height. */
  mine (blocks = 1): number {
    this.height += blocks
    for (const node of this.nodes.values()) {
      if (node.online) node.switch.expire(this.height)
    }
    return this.height
  }

  /**
   * `from` offers an HTLC over `channel` (update_add_htlc + commitment). Throws when the offer
   * cannot be made (peer offline, balance); `onOutcome` is called once the HTLC is resolved.
   */
  offerHtlc (from: SimNode, channel: SimChannel, add: HtlcAdd, onOutcome: (outcome: HtlcOutcome) => void): SimHtlc {
    const to = channel.peer(from)
    if (!to.online) throw new SimError('node_offline', `${to.name} is offline`)
    if (add.amountMsat <= 0n || channel.spendableMsat(from) < add.amountMsat) {
      throw new SimError('insufficient_balance', `${from.name} cannot offer ${add.amountMsat} msat on ${channel.chanId}`)
    }
    channel.balanceMsat[channel.side(from)] -= add.amountMsat
    const key = { chanId: channel.chanId, htlcId: channel.allocateHtlcId(from) }
    const htlc: SimHtlc = { ...add, key, channel, from, to, onOutcome, state: 'arrived' }
    channel.htlcs.set(circuitKeyId(key), htlc)
    processHtlc(htlc, false)
    return htlc
  }

  /** lnd stops: streams end, the in-memory held set is lost; HTLCs stay in the channels. */
  stop (node: SimNode): void {
    if (!node.online) return
    node.online = false
    node.switch.reset()
    node.emit({ type: 'stopped' })
  }

  /** lnd starts: its links replay every add that had not passed the switch (isReplay = true). */
  start (node: SimNode): void {
    if (node.online) return
    node.online = true
    node.emit({ type: 'started' })
    for (const htlc of node.arrivedHtlcs()) processHtlc(htlc, true)
  }

  restart (node: SimNode): void {
    this.stop(node)
    this.start(node)
  }
}

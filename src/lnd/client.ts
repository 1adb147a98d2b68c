// gRPC client for one LND node: TLS with the node's own certificate pinned, the macaroon on every
// call, deadlines on unary calls, typed results (bigint for msat, channel and HTLC ids).
// lnd's protos are vendored in proto/lnd (v0.21.2-beta) and loaded by ./proto.ts.
import * as grpc from '@grpc/grpc-js'
import { Lightning, Router, Invoices } from './proto.ts'
import { LndError } from './errors.ts'
import type { InterceptorHtlcEvent } from './interceptor.ts'
import { ReconnectingStream, systemClock, type BackoffOptions, type Clock, type StreamEvent } from './stream.ts'

export interface LndConnection {
  name: string // operator's name for the node, used in every message and event
  host: string // host:port of lnd's gRPC listener
  tlsCert: Buffer // PEM of lnd's tls.cert: the only trusted root for this connection
  macaroon: Buffer // raw macaroon bytes; sent hex-encoded, never logged
  pubkey: string // 66 hex chars, pinned: GetInfo must return exactly this identity
}

export interface LndClientOptions {
  deadlineMs?: number // per unary call
  maxReceiveBytes?: number
  backoff?: BackoffOptions
  clock?: Clock
  random?: () => number
  onEvent?: (event: LndEvent) => void // connects, disconnects, interceptor decisions: log and audit
}

// Everything the LND layer reports about a node. Never carries a macaroon or a preimage.
export type LndEvent = StreamEvent | InterceptorHtlcEvent

// Failures of the connection rather than answers of lnd: a payment stream that ends with one
// of these is followed with TrackPaymentV2, since lnd keeps paying without us.
const TRANSPORT_FAILURES: ReadonlySet<number> = new Set([grpc.status.UNAVAILABLE, grpc.status.INTERNAL])

export const DEFAULT_DEADLINE_MS = 30_000
// ListChannels and DescribeGraph answers of a large node exceed grpc-js's 4 MiB default;
// lncli raises its limit to 200 MiB for the same reason.
export const DEFAULT_MAX_RECEIVE_BYTES = 50 * 1024 * 1024

const PUBKEY_HEX = /^0[23][0-9a-f]{64}$/
const U64_DECIMAL = /^(0|[1-9][0-9]{0,19})$/
const U64_MAX = 2n ** 64n - 1n

// --- typed results ---

export interface NodeInfo {
  identityPubkey: string
  alias: string
  version: string
  blockHeight: number
  blockHash: string
  syncedToChain: boolean
  chains: Array<{ chain: string, network: string }>
  requireHtlcInterceptor: boolean
  storeFinalHtlcResolutions: boolean
}

export interface PendingHtlc {
  incoming: boolean
  amountMsat: bigint // lnd reports whole satoshis here; this is that value × 1000
  hashLock: Buffer
  expirationHeight: number
  htlcIndex: bigint
  forwardingChannel: bigint
  forwardingHtlcIndex: bigint
  lockedIn: boolean
}

export interface ChannelInfo {
  chanId: bigint
  remotePubkey: string
  channelPoint: string
  active: boolean
  private: boolean
  initiator: boolean
  // lnd reports channel amounts in satoshis; converted exactly to msat.
  capacityMsat: bigint
  localBalanceMsat: bigint
  remoteBalanceMsat: bigint
  unsettledBalanceMsat: bigint
  commitFeeMsat: bigint
  localReserveMsat: bigint // what we must keep on our side (local_constraints.chan_reserve_sat)
  remoteReserveMsat: bigint // what the peer must keep on its side
  pendingHtlcs: PendingHtlc[]
  aliasScids: bigint[]
  peerScidAlias: bigint
}

export interface RouteHintHop {
  nodeId: string
  chanId: bigint
  feeBaseMsat: number
  feeProportionalMillionths: number
  cltvExpiryDelta: number
}

export interface DecodedPayReq {
  destination: string
  paymentHash: string
  amountMsat: bigint
  timestamp: number
  expiry: number
  description: string
  descriptionHash: string
  cltvExpiry: number
  paymentAddr: Buffer
  routeHints: RouteHintHop[][]
  features: number[]
}

export interface AddedInvoice {
  paymentHash: Buffer
  paymentRequest: string
  addIndex: bigint
  paymentAddr: Buffer
}

export interface HtlcResolution {
  settled: boolean
  offchain: boolean
}

export type PaymentStatus = 'INITIATED' | 'IN_FLIGHT' | 'SUCCEEDED' | 'FAILED'

export interface PaymentAttempt {
  attemptId: bigint
  status: 'IN_FLIGHT' | 'SUCCEEDED' | 'FAILED'
  firstHopChanId: bigint | null
  totalAmountMsat: bigint
  totalFeesMsat: bigint
  failureCode: string | null
  failureSourceIndex: number | null // hop that reported the failure: 0 is us, 1 our peer, ...
}

export interface Payment {
  paymentHash: string
  status: PaymentStatus
  preimage: string // hex; all zeros until SUCCEEDED
  valueMsat: bigint
  feeMsat: bigint
  failureReason: string
  attempts: PaymentAttempt[]
}

export interface SendPaymentRequest {
  paymentRequest?: string
  dest?: Uint8Array // with amountMsat and paymentHash, when there is no payment request
  paymentHash?: Uint8Array
  paymentAddr?: Uint8Array
  finalCltvDelta?: number
  amountMsat?: bigint
  feeLimitMsat: bigint // required: lnd's default 0 means "zero-fee routes only"
  timeoutSeconds: number // time lnd may spend trying before the first HTLC is out
  outgoingChanIds?: bigint[] // first hop restricted to these channels (rebalancing)
  lastHopPubkey?: Uint8Array
  maxParts?: number
  allowSelfPayment?: boolean
}

export interface FinalHtlcEvent {
  incomingChanId: bigint
  incomingHtlcId: bigint
  settled: boolean
  offchain: boolean
  timestampNs: bigint
}

export interface AddInvoiceRequest {
  valueMsat: bigint
  memo?: string
  expirySeconds?: number
  private?: boolean // include route hints for private channels
}

// --- raw shapes produced by proto-loader (keepCase, longs as strings, bytes as Buffer) ---

type U64 = string

interface RawGetInfo {
  identity_pubkey: string, alias: string, version: string, block_height: number, block_hash: string,
  synced_to_chain: boolean, chains: Array<{ chain: string, network: string }>,
  require_htlc_interceptor: boolean, store_final_htlc_resolutions: boolean
}
interface RawHtlc {
  incoming: boolean, amount: U64, hash_lock: Buffer, expiration_height: number, htlc_index: U64,
  forwarding_channel: U64, forwarding_htlc_index: U64, locked_in: boolean
}
interface RawConstraints { chan_reserve_sat: U64 }
interface RawChannel {
  chan_id: U64, remote_pubkey: string, channel_point: string, active: boolean, private: boolean, initiator: boolean,
  capacity: U64, local_balance: U64, remote_balance: U64, unsettled_balance: U64, commit_fee: U64,
  local_constraints: RawConstraints | null, remote_constraints: RawConstraints | null,
  pending_htlcs: RawHtlc[], alias_scids: U64[], peer_scid_alias: U64
}
interface RawHopHint { node_id: string, chan_id: U64, fee_base_msat: number, fee_proportional_millionths: number, cltv_expiry_delta: number }
interface RawPayReq {
  destination: string, payment_hash: string, num_msat: U64, timestamp: U64, expiry: U64, description: string,
  description_hash: string, cltv_expiry: U64, payment_addr: Buffer, route_hints: Array<{ hop_hints: RawHopHint[] }>,
  features: Record<string, unknown>
}
interface RawAttempt {
  attempt_id: U64, status: string, route: { total_amt_msat: U64, total_fees_msat: U64, hops: Array<{ chan_id: U64 }> } | null,
  failure: { code: string, failure_source_index: number } | null
}
interface RawPayment {
  payment_hash: string, status: string, payment_preimage: string, value_msat: U64, fee_msat: U64,
  failure_reason: string, htlcs: RawAttempt[]
}
interface RawHtlcEvent {
  incoming_channel_id: U64, incoming_htlc_id: U64, timestamp_ns: U64, event: string | null,
  final_htlc_event?: { settled: boolean, offchain: boolean }
}

// The interceptor stream's messages, shared with ./interceptor.ts.
export interface RawCircuitKey { chan_id: U64, htlc_id: U64 }
export interface RawInterceptRequest {
  incoming_circuit_key: RawCircuitKey | null
  incoming_amount_msat: U64
  incoming_expiry: number
  payment_hash: Buffer
  outgoing_requested_chan_id: U64
  outgoing_amount_msat: U64
  outgoing_expiry: number
  custom_records: Record<string, Buffer>
  onion_blob: Buffer
  auto_fail_height: number
  in_wire_custom_records: Record<string, Buffer>
  outgoing_requested_node_id: Buffer
}
export interface RawInterceptResponse {
  incoming_circuit_key: RawCircuitKey
  action: 'SETTLE' | 'FAIL' | 'RESUME'
  preimage?: Buffer
  failure_message?: Buffer
  failure_code?: string
}
export type InterceptorCall = grpc.ClientDuplexStream<RawInterceptResponse, RawInterceptRequest>

// --- conversions: every value from the wire is checked before it becomes a typed field ---

export function parseU64 (value: unknown, node: string, field: string): bigint {
  if (typeof value !== 'string' || !U64_DECIMAL.test(value)) throw new LndError('bad_response', node, `${field} is not a uint64: ${String(value)}`)
  const n = BigInt(value)
  if (n > U64_MAX) throw new LndError('bad_response', node, `${field} exceeds uint64: ${value}`)
  return n
}

// int64 satoshi amounts (never negative for balances) to msat.
function satToMsat (value: unknown, node: string, field: string): bigint {
  return parseU64(value, node, field) * 1000n
}

function parseInt32 (value: unknown, node: string, field: string): number {
  const n = typeof value === 'string' ? Number(value) : value
  if (typeof n !== 'number' || !Number.isSafeInteger(n)) throw new LndError('bad_response', node, `${field} is not an integer: ${String(value)}`)
  return n
}

export function toNodeInfo (raw: RawGetInfo): NodeInfo {
  return {
    identityPubkey: raw.identity_pubkey,
    alias: raw.alias,
    version: raw.version,
    blockHeight: raw.block_height,
    blockHash: raw.block_hash,
    syncedToChain: raw.synced_to_chain,
    chains: raw.chains.map(c => ({ chain: c.chain, network: c.network })),
    requireHtlcInterceptor: raw.require_htlc_interceptor,
    storeFinalHtlcResolutions: raw.store_final_htlc_resolutions
  }
}

function toChannel (raw: RawChannel, node: string): ChannelInfo {
  const f = (name: keyof RawChannel): bigint => satToMsat(raw[name], node, `channel ${raw.chan_id} ${name}`)
  return {
    chanId: parseU64(raw.chan_id, node, 'chan_id'),
    remotePubkey: raw.remote_pubkey,
    channelPoint: raw.channel_point,
    active: raw.active,
    private: raw.private,
    initiator: raw.initiator,
    capacityMsat: f('capacity'),
    localBalanceMsat: f('local_balance'),
    remoteBalanceMsat: f('remote_balance'),
    unsettledBalanceMsat: f('unsettled_balance'),
    commitFeeMsat: f('commit_fee'),
    localReserveMsat: satToMsat(raw.local_constraints?.chan_reserve_sat ?? '0', node, 'local chan_reserve_sat'),
    remoteReserveMsat: satToMsat(raw.remote_constraints?.chan_reserve_sat ?? '0', node, 'remote chan_reserve_sat'),
    pendingHtlcs: raw.pending_htlcs.map(h => ({
      incoming: h.incoming,
      amountMsat: satToMsat(h.amount, node, 'htlc amount'),
      hashLock: h.hash_lock,
      expirationHeight: h.expiration_height,
      htlcIndex: parseU64(h.htlc_index, node, 'htlc_index'),
      forwardingChannel: parseU64(h.forwarding_channel, node, 'forwarding_channel'),
      forwardingHtlcIndex: parseU64(h.forwarding_htlc_index, node, 'forwarding_htlc_index'),
      lockedIn: h.locked_in
    })),
    aliasScids: raw.alias_scids.map(s => parseU64(s, node, 'alias_scids')),
    peerScidAlias: parseU64(raw.peer_scid_alias, node, 'peer_scid_alias')
  }
}

function toPayReq (raw: RawPayReq, node: string): DecodedPayReq {
  return {
    destination: raw.destination,
    paymentHash: raw.payment_hash,
    amountMsat: parseU64(raw.num_msat, node, 'num_msat'),
    timestamp: parseInt32(raw.timestamp, node, 'timestamp'),
    expiry: parseInt32(raw.expiry, node, 'expiry'),
    description: raw.description,
    descriptionHash: raw.description_hash,
    cltvExpiry: parseInt32(raw.cltv_expiry, node, 'cltv_expiry'),
    paymentAddr: raw.payment_addr,
    routeHints: raw.route_hints.map(r => r.hop_hints.map(h => ({
      nodeId: h.node_id,
      chanId: parseU64(h.chan_id, node, 'hop hint chan_id'),
      feeBaseMsat: h.fee_base_msat,
      feeProportionalMillionths: h.fee_proportional_millionths,
      cltvExpiryDelta: h.cltv_expiry_delta
    }))),
    features: Object.keys(raw.features).map(Number).sort((a, b) => a - b)
  }
}

const PAYMENT_STATUSES: readonly PaymentStatus[] = ['INITIATED', 'IN_FLIGHT', 'SUCCEEDED', 'FAILED']
const ATTEMPT_STATUSES: ReadonlyArray<PaymentAttempt['status']> = ['IN_FLIGHT', 'SUCCEEDED', 'FAILED']

export function toPayment (raw: RawPayment, node: string): Payment {
  const status = PAYMENT_STATUSES.find(s => s === raw.status)
  if (status === undefined) throw new LndError('bad_response', node, `unknown payment status ${raw.status}`)
  return {
    paymentHash: raw.payment_hash,
    status,
    preimage: raw.payment_preimage,
    valueMsat: parseU64(raw.value_msat, node, 'value_msat'),
    feeMsat: parseU64(raw.fee_msat, node, 'fee_msat'),
    failureReason: raw.failure_reason,
    attempts: raw.htlcs.map(a => {
      const attemptStatus = ATTEMPT_STATUSES.find(s => s === a.status)
      if (attemptStatus === undefined) throw new LndError('bad_response', node, `unknown HTLC attempt status ${a.status}`)
      const firstHop = a.route?.hops[0]
      return {
        attemptId: parseU64(a.attempt_id, node, 'attempt_id'),
        status: attemptStatus,
        firstHopChanId: firstHop === undefined ? null : parseU64(firstHop.chan_id, node, 'hop chan_id'),
        totalAmountMsat: parseU64(a.route?.total_amt_msat ?? '0', node, 'total_amt_msat'),
        totalFeesMsat: parseU64(a.route?.total_fees_msat ?? '0', node, 'total_fees_msat'),
        failureCode: a.failure?.code ?? null,
        failureSourceIndex: a.failure?.failure_source_index ?? null
      }
    })
  }
}

function isFinal (p: Payment): boolean {
  return p.status === 'SUCCEEDED' || p.status === 'FAILED'
}

export function toFinalHtlcEvent (raw: RawHtlcEvent, node: string): FinalHtlcEvent | null {
  if (raw.event !== 'final_htlc_event' || raw.final_htlc_event === undefined) return null
  return {
    incomingChanId: parseU64(raw.incoming_channel_id, node, 'incoming_channel_id'),
    incomingHtlcId: parseU64(raw.incoming_htlc_id, node, 'incoming_htlc_id'),
    settled: raw.final_htlc_event.settled,
    offchain: raw.final_htlc_event.offchain,
    timestampNs: parseU64(raw.timestamp_ns, node, 'timestamp_ns')
  }
}

function validateConnection (conn: LndConnection): void {
  const bad = (what: string): never => { throw new LndError('bad_connection', conn.name, what) }
  if (typeof conn.name !== 'string' || conn.name === '') bad('node name is empty')
  if (typeof conn.host !== 'string' || !/^[^\s/]+:\d{1,5}$/.test(conn.host)) bad(`host must be host:port, got ${JSON.stringify(conn.host)}`)
  if (!Buffer.isBuffer(conn.tlsCert) || !conn.tlsCert.includes('-----BEGIN CERTIFICATE-----')) bad('tlsCert is not a PEM certificate')
  if (!Buffer.isBuffer(conn.macaroon) || conn.macaroon.length === 0) bad('macaroon is empty')
  if (typeof conn.pubkey !== 'string' || !PUBKEY_HEX.test(conn.pubkey)) bad('pubkey must be 66 lowercase hex chars of a compressed key')
}

type Callback<T> = (err: grpc.ServiceError | null, res: T) => void
type UnaryMethod = (req: unknown, metadata: grpc.Metadata, options: grpc.CallOptions, cb: Callback<unknown>) => grpc.ClientUnaryCall
type StreamMethod = (req?: unknown, options?: grpc.CallOptions) => grpc.ClientReadableStream<unknown>

export class LndClient {
  readonly name: string
  readonly pubkey: string
  readonly lightning: grpc.Client
  readonly router: grpc.Client
  readonly invoices: grpc.Client
  readonly clock: Clock
  readonly random: () => number
  readonly backoff: BackoffOptions | undefined
  readonly onEvent: (event: LndEvent) => void
  private readonly deadlineMs: number

  constructor (conn: LndConnection, opts: LndClientOptions = {}) {
    validateConnection(conn)
    this.name = conn.name
    this.pubkey = conn.pubkey
    this.deadlineMs = opts.deadlineMs ?? DEFAULT_DEADLINE_MS
    this.clock = opts.clock ?? systemClock
    this.random = opts.random ?? Math.random
    this.backoff = opts.backoff
    this.onEvent = opts.onEvent ?? (() => {})
    // lnd authenticates each call by the macaroon in the `macaroon` metadata, hex-encoded
    // (lnd/macaroons/service.go). Call credentials attach it to unary calls and streams alike.
    const macaroonHex = conn.macaroon.toString('hex')
    const macaroonCreds = grpc.credentials.createFromMetadataGenerator((_params, cb) => {
      const md = new grpc.Metadata()
      md.add('macaroon', macaroonHex)
      cb(null, md)
    })
    // lnd's certificate is self-signed: it is its own root, and nothing else is trusted.
    const creds = grpc.credentials.combineChannelCredentials(grpc.credentials.createSsl(conn.tlsCert), macaroonCreds)
    const options: grpc.ChannelOptions = { 'grpc.max_receive_message_length': opts.maxReceiveBytes ?? DEFAULT_MAX_RECEIVE_BYTES }
    this.lightning = new Lightning(conn.host, creds, options)
    // The three clients share one connection: grpc-js's global subchannel pool reuses a
    // subchannel for the same address, credentials object and options.
    this.router = new Router(conn.host, creds, options)
    this.invoices = new Invoices(conn.host, creds, options)
  }

  close (): void {
    this.lightning.close()
    this.router.close()
    this.invoices.close()
  }

  // A failed call, named after the node and method; gRPC status kept in `grpcCode`.
  rpcError (method: string, err: grpc.ServiceError): LndError {
    return new LndError('rpc_failed', this.name, `${method} failed: ${err.details || err.message}`, err.code)
  }

  private unary<T> (client: grpc.Client, method: string, req: unknown): Promise<T> {
    const fn = (client as unknown as Record<string, UnaryMethod>)[method]
    if (fn === undefined) return Promise.reject(new LndError('bad_connection', this.name, `no RPC method ${method}`))
    return new Promise((resolve, reject) => {
      // A gRPC deadline is an absolute wall-clock time, whatever clock drives our timers.
      fn.call(client, req, new grpc.Metadata(), { deadline: Date.now() + this.deadlineMs }, (err, res) => {
        if (err !== null) reject(this.rpcError(method, err))
        else resolve(res as T)
      })
    })
  }

  private serverStream<T> (client: grpc.Client, method: string, req: unknown): grpc.ClientReadableStream<T> {
    const fn = (client as unknown as Record<string, StreamMethod>)[method]
    if (fn === undefined) throw new LndError('bad_connection', this.name, `no RPC method ${method}`)
    return fn.call(client, req) as grpc.ClientReadableStream<T>
  }

  async getInfo (): Promise<NodeInfo> {
    return toNodeInfo(await this.unary<RawGetInfo>(this.lightning, 'GetInfo', {}))
  }

  async listChannels (opts: { activeOnly?: boolean, peer?: Uint8Array } = {}): Promise<ChannelInfo[]> {
    const res = await this.unary<{ channels: RawChannel[] }>(this.lightning, 'ListChannels', {
      active_only: opts.activeOnly ?? false,
      peer: opts.peer === undefined ? Buffer.alloc(0) : Buffer.from(opts.peer)
    })
    return res.channels.map(c => toChannel(c, this.name))
  }

  async addInvoice (req: AddInvoiceRequest): Promise<AddedInvoice> {
    const res = await this.unary<{ r_hash: Buffer, payment_request: string, add_index: U64, payment_addr: Buffer }>(this.lightning, 'AddInvoice', {
      value_msat: req.valueMsat.toString(),
      memo: req.memo ?? '',
      expiry: String(req.expirySeconds ?? 0),
      private: req.private ?? false
    })
    return { paymentHash: res.r_hash, paymentRequest: res.payment_request, addIndex: parseU64(res.add_index, this.name, 'add_index'), paymentAddr: res.payment_addr }
  }

  async decodePayReq (payReq: string): Promise<DecodedPayReq> {
    return toPayReq(await this.unary<RawPayReq>(this.lightning, 'DecodePayReq', { pay_req: payReq }), this.name)
  }

  // The final outcome lnd stored for an incoming HTLC, or null if lnd has none (still pending
  // or unknown: gRPC NOT_FOUND). Needs lnd's --store-final-htlc-resolutions (rpcserver.go).
  async lookupHtlcResolution (chanId: bigint, htlcIndex: bigint): Promise<HtlcResolution | null> {
    try {
      const res = await this.unary<{ settled: boolean, offchain: boolean }>(this.lightning, 'LookupHtlcResolution', { chan_id: chanId.toString(), htlc_index: htlcIndex.toString() })
      return { settled: res.settled, offchain: res.offchain }
    } catch (err) {
      if (err instanceof LndError && err.grpcCode === grpc.status.NOT_FOUND) return null
      throw err
    }
  }

  // Pays and resolves with the final payment (SUCCEEDED or FAILED; a FAILED payment is a
  // result, not an exception). If the stream breaks before the end, the payment is followed
  // with TrackPaymentV2, since lnd keeps paying without us.
  async sendPayment (req: SendPaymentRequest, onUpdate?: (p: Payment) => void): Promise<Payment> {
    const raw = {
      payment_request: req.paymentRequest ?? '',
      dest: Buffer.from(req.dest ?? []),
      payment_hash: Buffer.from(req.paymentHash ?? []),
      payment_addr: Buffer.from(req.paymentAddr ?? []),
      final_cltv_delta: req.finalCltvDelta ?? 0,
      amt_msat: (req.amountMsat ?? 0n).toString(),
      fee_limit_msat: req.feeLimitMsat.toString(),
      timeout_seconds: req.timeoutSeconds,
      outgoing_chan_ids: (req.outgoingChanIds ?? []).map(id => id.toString()),
      last_hop_pubkey: Buffer.from(req.lastHopPubkey ?? []),
      max_parts: req.maxParts ?? 0,
      allow_self_payment: req.allowSelfPayment ?? false
    }
    let hash = req.paymentHash === undefined ? null : Buffer.from(req.paymentHash).toString('hex')
    try {
      return await this.followOnce('SendPaymentV2', raw, (p) => { hash = p.paymentHash; onUpdate?.(p) })
    } catch (err) {
      if (!(err instanceof LndError) || err.grpcCode === undefined || !TRANSPORT_FAILURES.has(err.grpcCode)) throw err
      if (hash === null && req.paymentRequest !== undefined) hash = (await this.decodePayReq(req.paymentRequest)).paymentHash
      if (hash === null) throw err
      return await this.trackPayment(hash, onUpdate)
    }
  }

  // Follows a payment to its final state, reopening the stream with backoff on failures.
  // Rejects with NOT_FOUND if lnd never started this payment.
  trackPayment (paymentHash: string, onUpdate?: (p: Payment) => void): Promise<Payment> {
    return new Promise((resolve, reject) => {
      const hash = Buffer.from(paymentHash, 'hex')
      const stream: ReconnectingStream<RawPayment, grpc.ClientReadableStream<RawPayment>> = new ReconnectingStream({
        node: this.name,
        stream: `TrackPaymentV2 ${paymentHash}`,
        open: () => this.serverStream<RawPayment>(this.router, 'TrackPaymentV2', { payment_hash: hash, no_inflight_updates: false }),
        onMessage: (raw) => {
          const p = toPayment(raw, this.name)
          onUpdate?.(p)
          if (isFinal(p)) { stream.stop(); resolve(p) }
        },
        onEvent: (e) => {
          this.onEvent(e)
          if (e.type === 'stream_closed' && e.grpcCode === grpc.status.NOT_FOUND) {
            stream.stop()
            reject(new LndError('rpc_failed', this.name, `TrackPaymentV2 failed: ${e.error ?? 'payment not found'}`, e.grpcCode))
          }
        },
        backoff: this.backoff,
        clock: this.clock,
        random: this.random
      })
      stream.start()
    })
  }

  private followOnce (method: string, req: unknown, onUpdate: (p: Payment) => void): Promise<Payment> {
    return new Promise((resolve, reject) => {
      const call = this.serverStream<RawPayment>(this.router, method, req)
      let done = false
      const finish = (err: Error | null, p?: Payment): void => {
        if (done) return
        done = true
        if (err !== null) reject(err)
        else if (p !== undefined) resolve(p)
      }
      call.on('data', (raw: RawPayment) => {
        try {
          const p = toPayment(raw, this.name)
          onUpdate(p)
          if (isFinal(p)) finish(null, p)
        } catch (err) {
          call.cancel()
          finish(err as Error)
        }
      })
      call.on('error', (err: grpc.ServiceError) => finish(this.rpcError(method, err)))
      call.on('end', () => finish(new LndError('rpc_failed', this.name, `${method} ended before the payment was final`, grpc.status.UNAVAILABLE)))
    })
  }

  // FinalHtlcEvent of every HTLC lnd resolves for good (settled or failed, off- or on-chain),
  // on a stream reopened with backoff. Events missed while disconnected are not replayed by
  // lnd: callers reconcile with lookupHtlcResolution after each `stream_open`.
  subscribeFinalHtlcs (onFinal: (e: FinalHtlcEvent) => void): ReconnectingStream<RawHtlcEvent, grpc.ClientReadableStream<RawHtlcEvent>> {
    const stream = new ReconnectingStream<RawHtlcEvent, grpc.ClientReadableStream<RawHtlcEvent>>({
      node: this.name,
      stream: 'SubscribeHtlcEvents',
      open: () => this.serverStream<RawHtlcEvent>(this.router, 'SubscribeHtlcEvents', {}),
      onMessage: (raw) => {
        const e = toFinalHtlcEvent(raw, this.name)
        if (e !== null) onFinal(e)
      },
      onEvent: this.onEvent,
      backoff: this.backoff,
      clock: this.clock,
      random: this.random
    })
    stream.start()
    return stream
  }

  openHtlcInterceptor (): InterceptorCall {
    const fn = (this.router as unknown as Record<string, () => InterceptorCall>).HtlcInterceptor
    if (fn === undefined) throw new LndError('bad_connection', this.name, 'no RPC method HtlcInterceptor')
    return fn.call(this.router)
  }
}

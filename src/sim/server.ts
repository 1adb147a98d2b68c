// A gRPC server for one simulated node, speaking lnd's own protos (src/lnd/proto.ts) over TLS with
// a macaroon check, so the real client (src/lnd/client.ts) talks to it as to lnd. It serves the
// subset highwire uses: GetInfo, ListChannels, AddInvoice, DecodePayReq, LookupHtlcResolution,
// SendPaymentV2/TrackPaymentV2, SubscribeHtlcEvents (FinalHtlcEvent) and HtlcInterceptor, with
// lnd v0.21.2-beta's error codes and messages (lnrpc/routerrpc/forward_interceptor.go,
// router_server.go, rpcserver.go, macaroons/service.go).
//
// Faults: `delayMs` delays every answer, stream message and resolution; `dropInterceptor()` ends
// the interceptor stream as a broken connection would; `restart()` stops and starts the node.
import { randomBytes } from 'node:crypto'
import * as grpc from '@grpc/grpc-js'
import { sha256 } from '@noble/hashes/sha2.js'
import { decodeInvoice } from '../ln/bolt11.ts'
import { FailureCode } from '../ln/failure.ts'
import type { LndConnection } from '../lnd/client.ts'
import { Lightning, Router } from '../lnd/proto.ts'
import { SimError } from './errors.ts'
import type { NodeEvent, SimChannel, SimNode } from './network.ts'
import { payInvoice, type PaymentPartSpec, type PaymentResult } from './payer.ts'
import type { InterceptedPacket, LocalFailCode, Resolution } from './switch.ts'
import { selfSignedCert, type TlsIdentity } from './tls.ts'

/** lnwire.FailureMessageLength (256) + HMAC (32) + two u16 lengths: forward_interceptor.go. */
const INTERCEPT_FAILURE_MESSAGE_LENGTH = 292

type Metadata = grpc.Metadata
type AnyCall = { metadata: Metadata }
type Unary = (call: grpc.ServerUnaryCall<any, any>, callback: grpc.sendUnaryData<any>) => void
type ServerStream = (call: grpc.ServerWritableStream<any, any>) => void
type Duplex = (call: grpc.ServerDuplexStream<any, any>) => void

/** A gRPC status error, as lnd's status.Error(...) or a plain Go error (code Unknown) reaches the wire. */
function status (code: grpc.status, details: string): grpc.ServiceError {
  return Object.assign(new Error(details), { code, details, metadata: new grpc.Metadata() })
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

const hex = (bytes: Uint8Array): string => Buffer.from(bytes).toString('hex')

/** lnrpc.Failure.FailureCode names the interceptor may use, mapped as forward_interceptor.go does. */
const INTERCEPT_FAILURE_CODES: Record<string, LocalFailCode> = {
  RESERVED: FailureCode.TEMPORARY_CHANNEL_FAILURE, // 0: "Default to TemporaryChannelFailure."
  TEMPORARY_CHANNEL_FAILURE: FailureCode.TEMPORARY_CHANNEL_FAILURE,
  INVALID_ONION_HMAC: FailureCode.INVALID_ONION_HMAC,
  INVALID_ONION_KEY: FailureCode.INVALID_ONION_KEY,
  INVALID_ONION_VERSION: FailureCode.INVALID_ONION_VERSION
}

interface SimPayment {
  raw: Record<string, unknown>
  listeners: Set<(raw: Record<string, unknown>) => void>
}

export interface SimServerOptions {
  /** The macaroon clients must present (default: 32 random bytes). */
  macaroon?: Uint8Array
}

export class SimLndServer {
  readonly node: SimNode
  readonly macaroon: Buffer
  /** Fault: milliseconds added before every answer, stream message and applied resolution. */
  delayMs = 0
  private readonly tls: TlsIdentity
  private server: grpc.Server | null = null
  private port = 0
  private interceptorCall: grpc.ServerDuplexStream<any, any> | null = null
  private readonly streams = new Set<grpc.ServerWritableStream<any, any> | grpc.ServerDuplexStream<any, any>>()
  private readonly payments = new Map<string, SimPayment>()
  private paymentIndex = 0n
  private readonly unsubscribe: () => void

  private constructor (node: SimNode, tls: TlsIdentity, macaroon: Uint8Array) {
    this.node = node
    this.tls = tls
    this.macaroon = Buffer.from(macaroon)
    this.unsubscribe = node.subscribe((event) => this.onNodeEvent(event))
  }

  /** Generates the node's TLS certificate and listens on 127.0.0.1, port chosen by the OS. */
  static async start (node: SimNode, opts: SimServerOptions = {}): Promise<SimLndServer> {
    const server = new SimLndServer(node, await selfSignedCert(node.name), opts.macaroon ?? randomBytes(32))
    await server.listen()
    return server
  }

  /** The connection settings a client needs, in src/lnd/client.ts's shape. */
  get connection (): LndConnection {
    return { name: this.node.name, host: `127.0.0.1:${this.port}`, tlsCert: this.tls.cert, macaroon: this.macaroon, pubkey: this.node.pubkeyHex }
  }

  private async listen (): Promise<void> {
    const server = new grpc.Server()
    server.addService(Lightning.service, this.lightningService())
    server.addService(Router.service, this.routerService())
    const credentials = grpc.ServerCredentials.createSsl(null, [{ cert_chain: this.tls.cert, private_key: this.tls.key }], false)
    this.port = await new Promise<number>((resolve, reject) => {
      server.bindAsync(`127.0.0.1:${this.port}`, credentials, (err, port) => (err === null ? resolve(port) : reject(err)))
    })
    this.server = server
  }

  private shutdown (): void {
    for (const call of this.streams) call.destroy()
    this.streams.clear()
    this.interceptorCall = null
    this.server?.forceShutdown()
    this.server = null
  }

  /** Fault: lnd restarts. Streams break, held HTLCs are lost from memory and replayed on start. */
  async restart (): Promise<void> {
    this.node.network.stop(this.node)
    await this.listen()
    this.node.network.start(this.node)
  }

  /** Fault: the interceptor stream breaks (the client sees UNAVAILABLE), as when lnd drops the connection. */
  dropInterceptor (): void {
    const call = this.interceptorCall
    if (call === null) return
    this.endInterceptor(call, status(grpc.status.UNAVAILABLE, 'simulated connection drop'))
  }

  async close (): Promise<void> {
    this.unsubscribe()
    this.node.network.stop(this.node)
    this.shutdown()
  }

  private onNodeEvent (event: NodeEvent): void {
    if (event.type === 'stopped') this.shutdown()
  }

  // --- macaroons ---------------------------------------------------------------------------

  /**
   * lnd's macaroon check (macaroons/service.go): exactly one hex `macaroon` metadata value that
   * verifies. Its failures are plain Go errors, so they reach the client with code UNKNOWN.
   */
  private checkMacaroon (call: AnyCall): grpc.ServiceError | null {
    const values = call.metadata.get('macaroon')
    if (values.length !== 1) return status(grpc.status.UNKNOWN, `expected 1 macaroon, got ${values.length}`)
    const value = String(values[0])
    if (!/^([0-9a-fA-F]{2})*$/.test(value)) return status(grpc.status.UNKNOWN, 'encoding/hex: invalid byte in macaroon')
    if (!Buffer.from(value, 'hex').equals(this.macaroon)) {
      return status(grpc.status.UNKNOWN, 'verification failed: signature mismatch after caveat verification')
    }
    return null
  }

  private unary (handler: (request: any) => unknown): Unary {
    return (call, callback) => {
      const denied = this.checkMacaroon(call)
      if (denied !== null) return callback(denied)
      void (async () => {
        await this.faultDelay()
        try {
          callback(null, handler(call.request))
        } catch (err) {
          callback(toStatus(err))
        }
      })()
    }
  }

  private serverStream (handler: (call: grpc.ServerWritableStream<any, any>) => void): ServerStream {
    return (call) => {
      const denied = this.checkMacaroon(call)
      if (denied !== null) {
        endWithStatus(call, denied)
        return
      }
      this.streams.add(call)
      call.on('close', () => this.streams.delete(call))
      call.on('cancelled', () => this.streams.delete(call))
      try {
        handler(call)
      } catch (err) {
        endWithStatus(call, toStatus(err))
      }
    }
  }

  /**
   * The fault delay, if one is set. Without one nothing waits for a timer: a timer costs at least a
   * millisecond, and the interceptor's resolutions, applied in order, would each wait for one.
   */
  private async faultDelay (): Promise<void> {
    if (this.delayMs > 0) await sleep(this.delayMs)
  }

  /** Writes after the fault delay; a write on a stream that ended meanwhile is dropped. */
  private write (call: grpc.ServerWritableStream<any, any> | grpc.ServerDuplexStream<any, any>, message: unknown): void {
    const send = (): void => { if (this.streams.has(call)) call.write(message) }
    if (this.delayMs === 0) return send()
    setTimeout(send, this.delayMs)
  }

  // --- Lightning ---------------------------------------------------------------------------

  private lightningService (): grpc.UntypedServiceImplementation {
    const node = this.node
    const network = node.network
    return {
      GetInfo: this.unary(() => ({
        identity_pubkey: node.pubkeyHex,
        alias: node.name,
        version: '0.21.2-beta highwire-sim',
        num_active_channels: node.channels().length,
        block_height: network.height,
        block_hash: hex(sha256(new TextEncoder().encode(`block ${network.height}`))),
        synced_to_chain: true,
        synced_to_graph: true,
        chains: [{ chain: 'bitcoin', network: 'regtest' }],
        require_htlc_interceptor: node.switch.requireInterceptor,
        store_final_htlc_resolutions: node.storeFinalHtlcResolutions
      })),
      ListChannels: this.unary(() => ({ channels: node.channels().map((c) => this.rpcChannel(c)) })),
      AddInvoice: this.unary((req) => {
        const valueMsat = BigInt(req.value_msat) > 0n ? BigInt(req.value_msat) : BigInt(req.value) * 1000n
        const invoice = node.addInvoice({ valueMsat, memo: req.memo, ...(Number(req.expiry) > 0 ? { expiry: Number(req.expiry) } : {}) })
        return { r_hash: Buffer.from(invoice.paymentHash), payment_request: invoice.paymentRequest, add_index: String(invoice.addIndex), payment_addr: Buffer.from(invoice.paymentAddr) }
      }),
      DecodePayReq: this.unary((req) => {
        const inv = decodeInvoice(req.pay_req)
        return {
          destination: hex(inv.payee),
          payment_hash: hex(inv.paymentHash),
          num_satoshis: String((inv.amountMsat ?? 0n) / 1000n),
          num_msat: String(inv.amountMsat ?? 0n),
          timestamp: String(inv.timestamp),
          expiry: String(inv.expiry),
          description: inv.description ?? '',
          description_hash: inv.descriptionHash === undefined ? '' : hex(inv.descriptionHash),
          cltv_expiry: String(inv.minFinalCltvExpiry),
          payment_addr: Buffer.from(inv.paymentSecret),
          route_hints: inv.routeHints.map((route) => ({
            hop_hints: route.map((h) => ({
              node_id: hex(h.pubkey), chan_id: String(h.shortChannelId), fee_base_msat: h.feeBaseMsat,
              fee_proportional_millionths: h.feeProportionalMillionths, cltv_expiry_delta: h.cltvExpiryDelta
            }))
          })),
          features: Object.fromEntries(inv.features.map((bit) => [bit, { name: '', is_required: bit % 2 === 0, is_known: true }]))
        }
      }),
      LookupHtlcResolution: this.unary((req) => {
        // rpcserver.go LookupHtlcResolution.
        if (!node.storeFinalHtlcResolutions) {
          throw status(grpc.status.UNAVAILABLE, 'cannot lookup with flag --store-final-htlc-resolutions=false')
        }
        const resolution = node.finalResolution({ chanId: BigInt(req.chan_id), htlcId: BigInt(req.htlc_index) })
        if (resolution === undefined) throw status(grpc.status.NOT_FOUND, 'htlc unknown')
        return resolution
      })
    }
  }

  private rpcChannel (c: SimChannel): Record<string, unknown> {
    const node = this.node
    const side = c.side(node)
    const sat = (msat: bigint): string => String(msat / 1000n)
    const pending = c.pendingHtlcs()
    return {
      active: c.peer(node).online,
      remote_pubkey: c.peer(node).pubkeyHex,
      channel_point: `${hex(sha256(new TextEncoder().encode(String(c.chanId))))}:0`,
      chan_id: String(c.chanId),
      capacity: sat(c.capacityMsat),
      local_balance: sat(c.balanceMsat[side]),
      remote_balance: sat(c.balanceMsat[1 - side]!),
      unsettled_balance: sat(pending.reduce((a, h) => a + h.amountMsat, 0n)),
      initiator: side === 0,
      private: false,
      local_constraints: { chan_reserve_sat: sat(c.reserveMsat) },
      remote_constraints: { chan_reserve_sat: sat(c.reserveMsat) },
      pending_htlcs: pending.map((h) => ({
        incoming: h.to === node,
        amount: sat(h.amountMsat),
        hash_lock: Buffer.from(h.paymentHash),
        expiration_height: h.expiry,
        htlc_index: String(h.key.htlcId),
        locked_in: true
      }))
    }
  }

  // --- Router ------------------------------------------------------------------------------

  private routerService (): grpc.UntypedServiceImplementation {
    return {
      SendPaymentV2: this.serverStream((call) => this.sendPayment(call)),
      TrackPaymentV2: this.serverStream((call) => {
        const payment = this.payments.get(hex(call.request.payment_hash))
        if (payment === undefined) throw status(grpc.status.NOT_FOUND, 'payment isn\'t initiated')
        this.follow(call, payment, call.request.no_inflight_updates === true)
      }),
      SubscribeHtlcEvents: this.serverStream((call) => {
        // router_server.go: a SubscribedEvent first, so the client knows it is subscribed.
        this.write(call, { subscribed_event: {} })
        const stop = this.node.subscribe((event) => {
          if (event.type !== 'final_htlc') return
          this.write(call, {
            incoming_channel_id: String(event.key.chanId),
            incoming_htlc_id: String(event.key.htlcId),
            timestamp_ns: String(BigInt(event.timeMs) * 1_000_000n),
            event_type: 'UNKNOWN',
            final_htlc_event: { settled: event.settled, offchain: event.offchain }
          })
        })
        call.on('close', stop)
        call.on('cancelled', stop)
      }),
      HtlcInterceptor: (call: grpc.ServerDuplexStream<any, any>) => this.interceptor(call)
    } satisfies Record<string, ServerStream | Duplex>
  }

  private follow (call: grpc.ServerWritableStream<any, any>, payment: SimPayment, noInflight: boolean): void {
    const update = (raw: Record<string, unknown>): void => {
      if (noInflight && raw.status === 'IN_FLIGHT') return
      this.write(call, raw)
      if (raw.status !== 'IN_FLIGHT') {
        payment.listeners.delete(update)
        setTimeout(() => call.end(), this.delayMs)
      }
    }
    payment.listeners.add(update)
    call.on('cancelled', () => payment.listeners.delete(update))
    update(payment.raw)
  }

  /**
   * SendPaymentV2 through the payer: one part, leaving on outgoing_chan_ids[0] when given, through
   * the route hint of last_hop_pubkey when given (else the first hint, or straight to a simulated
   * payee), failed with FAILURE_REASON_NO_ROUTE when the fee would exceed the fee limit.
   */
  private sendPayment (call: grpc.ServerWritableStream<any, any>): void {
    const req = call.request
    const invoice = decodeInvoice(req.payment_request)
    const paymentHash = hex(invoice.paymentHash)
    if (this.payments.has(paymentHash)) throw status(grpc.status.ALREADY_EXISTS, 'invoice is already paid')
    const amountMsat = invoice.amountMsat ?? BigInt(req.amt_msat)
    const lastHop = hex(req.last_hop_pubkey ?? Buffer.alloc(0))
    const hint = lastHop === ''
      ? (invoice.routeHints.length > 0 && this.node.network.nodeByPubkey(invoice.payee) === undefined ? 0 : undefined)
      : invoice.routeHints.findIndex((r) => hex(r[0]!.pubkey) === lastHop)
    if (hint === -1) throw status(grpc.status.INVALID_ARGUMENT, 'last_hop_pubkey is not a route hint of the invoice')
    const firstHop = (req.outgoing_chan_ids as string[]).length > 0 ? BigInt(req.outgoing_chan_ids[0]) : undefined
    const part: PaymentPartSpec = { amountMsat, ...(hint !== undefined ? { hint } : {}), ...(firstHop !== undefined ? { firstHop } : {}) }
    // lnd: fee_limit_msat and fee_limit_sat unset means a fee limit of zero (zero-fee routes only).
    const maxFeeMsat = BigInt(req.fee_limit_msat) + BigInt(req.fee_limit_sat) * 1000n
    const payment: SimPayment = {
      raw: {
        payment_hash: paymentHash, value_msat: String(amountMsat), fee_msat: '0', status: 'IN_FLIGHT', payment_preimage: '',
        failure_reason: 'FAILURE_REASON_NONE', payment_index: String(++this.paymentIndex),
        creation_time_ns: String(BigInt(this.node.network.clock()) * 1_000_000n), htlcs: []
      },
      listeners: new Set()
    }
    this.payments.set(paymentHash, payment)
    this.follow(call, payment, req.no_inflight_updates === true)
    const finish = (raw: Record<string, unknown>): void => {
      payment.raw = { ...payment.raw, ...raw }
      for (const listener of [...payment.listeners]) listener(payment.raw)
    }
    payInvoice(this.node, req.payment_request, { parts: [part], amountMsat, maxFeeMsat })
      .then((result) => finish(paymentOutcome(result, amountMsat)))
      .catch((err: unknown) => {
        const reason = err instanceof SimError && err.code === 'no_route' ? 'FAILURE_REASON_NO_ROUTE' : 'FAILURE_REASON_ERROR'
        finish({ status: 'FAILED', failure_reason: reason })
      })
  }

  // --- HtlcInterceptor ---------------------------------------------------------------------

  private interceptor (call: grpc.ServerDuplexStream<any, any>): void {
    const denied = this.checkMacaroon(call)
    if (denied !== null) {
      endWithStatus(call, denied)
      return
    }
    // router_server.go: one interceptor at a time; ErrInterceptorAlreadyExists is a plain error.
    if (this.interceptorCall !== null) {
      endWithStatus(call, status(grpc.status.UNKNOWN, 'interceptor already exists'))
      return
    }
    this.interceptorCall = call
    this.streams.add(call)
    const switch_ = this.node.switch
    switch_.setInterceptor((packet) => this.write(call, rpcInterceptRequest(packet)))
    // Resolutions are applied one at a time, in order, each after the fault delay.
    let queue = Promise.resolve()
    call.on('data', (response: any) => {
      queue = queue.then(async () => {
        await this.faultDelay()
        if (this.interceptorCall !== call) return
        try {
          switch_.resolve(toResolution(response))
        } catch (err) {
          // forward_interceptor.go run(): any resolve error ends the stream.
          this.endInterceptor(call, toStatus(err))
        }
      })
    })
    const gone = (): void => this.endInterceptor(call, null)
    call.on('end', gone)
    call.on('cancelled', gone)
    call.on('error', gone)
  }

  /** The stream ends (with `error`, or quietly when the client left): the switch loses its interceptor. */
  private endInterceptor (call: grpc.ServerDuplexStream<any, any>, error: grpc.ServiceError | null): void {
    if (this.interceptorCall !== call) return
    this.interceptorCall = null
    this.streams.delete(call)
    this.node.switch.setInterceptor(null)
    if (error !== null) endWithStatus(call, error)
    else call.end()
  }
}

/** grpc-js sends a server stream's 'error' as its final status (destroy would just drop it). */
function endWithStatus (call: grpc.ServerWritableStream<any, any> | grpc.ServerDuplexStream<any, any>, error: grpc.ServiceError): void {
  call.emit('error', error)
}

function toStatus (err: unknown): grpc.ServiceError {
  if (typeof err === 'object' && err !== null && 'code' in err && typeof (err as grpc.ServiceError).code === 'number') return err as grpc.ServiceError
  return status(grpc.status.UNKNOWN, err instanceof Error ? err.message : String(err))
}

function rpcInterceptRequest (p: InterceptedPacket): Record<string, unknown> {
  return {
    incoming_circuit_key: { chan_id: String(p.incomingCircuitKey.chanId), htlc_id: String(p.incomingCircuitKey.htlcId) },
    incoming_amount_msat: String(p.incomingAmountMsat),
    incoming_expiry: p.incomingExpiry,
    payment_hash: Buffer.from(p.paymentHash),
    outgoing_requested_chan_id: String(p.outgoingRequestedChanId),
    outgoing_amount_msat: String(p.outgoingAmountMsat),
    outgoing_expiry: p.outgoingExpiry,
    custom_records: Object.fromEntries([...p.customRecords].map(([type, value]) => [String(type), Buffer.from(value)])),
    onion_blob: Buffer.from(p.onionBlob),
    auto_fail_height: p.autoFailHeight
  }
}

/** forward_interceptor.go resolveFromClient: validation, then the switch's resolution. */
function toResolution (res: any): Resolution {
  if (res.incoming_circuit_key === null || res.incoming_circuit_key === undefined) {
    throw status(grpc.status.INVALID_ARGUMENT, 'CircuitKey missing from ForwardHtlcInterceptResponse')
  }
  const key = { chanId: BigInt(res.incoming_circuit_key.chan_id), htlcId: BigInt(res.incoming_circuit_key.htlc_id) }
  switch (res.action) {
    case 'RESUME':
      return { key, action: 'RESUME' }
    case 'SETTLE': {
      const preimage: Buffer = res.preimage
      // Go's proto3 decoding makes empty bytes nil: ErrMissingPreimage.
      if (preimage.length === 0) throw status(grpc.status.UNKNOWN, 'missing preimage')
      if (preimage.length !== 32) throw status(grpc.status.UNKNOWN, `invalid preimage length of ${preimage.length}, want 32`)
      return { key, action: 'SETTLE', preimage }
    }
    case 'FAIL': {
      const message: Buffer = res.failure_message
      if (message.length > 0) {
        if (res.failure_code !== 'RESERVED') {
          throw status(grpc.status.INVALID_ARGUMENT, 'failure message and failure code are mutually exclusive')
        }
        if (message.length !== INTERCEPT_FAILURE_MESSAGE_LENGTH) throw status(grpc.status.INVALID_ARGUMENT, 'failure message length invalid')
        return { key, action: 'FAIL', failureMessage: message }
      }
      const code = INTERCEPT_FAILURE_CODES[res.failure_code]
      if (code === undefined) throw status(grpc.status.INVALID_ARGUMENT, `unsupported failure code: ${res.failure_code}`)
      return { key, action: 'FAIL', failureCode: code }
    }
    default:
      // RESUME_MODIFIED (amount/record changes) is not modelled; highwire never sends it.
      throw status(grpc.status.INVALID_ARGUMENT, `unrecognized resolve action ${res.action}`)
  }
}

/** The final lnrpc.Payment of a SendPaymentV2 call. */
function paymentOutcome (result: PaymentResult, amountMsat: bigint): Record<string, unknown> {
  const [part] = result.parts
  const attempt = {
    attempt_id: '1',
    status: result.preimage !== undefined ? 'SUCCEEDED' : 'FAILED',
    route: {
      total_amt_msat: String(amountMsat + result.feeMsat),
      total_fees_msat: String(result.feeMsat),
      hops: result.routes[0]!.map((chanId) => ({ chan_id: String(chanId) }))
    },
    failure: part?.status === 'failed' ? { code: failureName(part.failure.code), failure_source_index: part.hopIndex + 1 } : null
  }
  if (result.preimage !== undefined) {
    return { status: 'SUCCEEDED', payment_preimage: hex(result.preimage), fee_msat: String(result.feeMsat), htlcs: [attempt] }
  }
  const reason = part?.status === 'failed' && part.failure.code === FailureCode.INCORRECT_OR_UNKNOWN_PAYMENT_DETAILS
    ? 'FAILURE_REASON_INCORRECT_PAYMENT_DETAILS'
    : 'FAILURE_REASON_NO_ROUTE'
  return { status: 'FAILED', failure_reason: reason, htlcs: [attempt] }
}

/** lnrpc.Failure.FailureCode's name for a BOLT 4 code (the enum spells the BOLT names). */
function failureName (code: number): string {
  const entry = Object.entries(FailureCode).find(([, value]) => value === code)
  return entry?.[0] ?? 'UNKNOWN_FAILURE'
}

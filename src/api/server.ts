// The application API: lnmux's `lnmux.Service` (proto/lnmux/lnmux.proto) over gRPC, served from an
// InvoiceApi facade (./service.ts). This layer checks wire shapes, translates messages and maps
// errors to gRPC status codes; every decision about invoices belongs to the facade.
//
// Behaviour kept from lnmux (cmd/lnmuxd/server.go): AddInvoice and ListInvoices reject missing
// amounts/expiries/counts with INVALID_ARGUMENT, a subscriber that falls 100 events behind is
// disconnected with RESOURCE_EXHAUSTED "buffer overflow", settling while autoSettle is on is
// UNAVAILABLE, cancelling after a settle request is FAILED_PRECONDITION. Changed on purpose: a bad
// hash or set id length is INVALID_ARGUMENT (lnmux returns an untyped error, i.e. UNKNOWN), and
// ListInvoices puts the hash in `hash` and the preimage in `preimage` (lnmux swaps them).
import * as grpc from '@grpc/grpc-js'
import { isLoopback, type HostPort } from '../config/schema.ts'
import type { Logger } from '../log.ts'
import { MuxError, type MuxErrorCode } from '../mux/types.ts'
import { LnmuxService } from './proto.ts'
import { ApiError, type AcceptedSet, type ApiErrorCode, type InvoiceApi, type ListedInvoice, type SettlementStatus } from './service.ts'
import { CodedError } from '../errors.ts'

export const DEFAULT_API_LISTEN: HostPort = { host: '127.0.0.1', port: 19090 }

/** lnmux's subscriberQueueSize: events a SubscribeInvoiceAccepted client may have unread. */
export const SUBSCRIBER_QUEUE_SIZE = 100

/** Most invoices one ListInvoices answer carries; clients page on from last_sequence_number + 1. */
export const MAX_INVOICES_PER_PAGE = 1000

/** How long close() lets in-flight unary calls finish before cutting connections. */
export const SHUTDOWN_GRACE_MS = 2000

const HASH_BYTES = 32
const SET_ID_BYTES = 32
const INT64_MAX = 2n ** 63n - 1n

// Requests are a few hundred bytes (a BOLT 11 description is at most 639 bytes); refuse big ones early.
const MAX_REQUEST_BYTES = 64 * 1024

export type ApiServerErrorCode = 'tls_required' | 'bind_failed'

export class ApiServerError extends CodedError<ApiServerErrorCode> {}

export interface ApiServerOptions {
  api: InvoiceApi
  listen?: HostPort
  tls?: { cert: Buffer; key: Buffer } | null
  log?: Logger
  shutdownGraceMs?: number
  /** Further services on the same listener (highwire.Cluster, src/api/status.ts). */
  services?: { service: grpc.ServiceDefinition; handlers: grpc.UntypedServiceImplementation }[]
}

// The status each typed facade or mux error is answered with.
const STATUS_OF: Record<ApiErrorCode | MuxErrorCode, grpc.status> = {
  invalid_argument: grpc.status.INVALID_ARGUMENT,
  not_found: grpc.status.NOT_FOUND,
  failed_precondition: grpc.status.FAILED_PRECONDITION,
  not_leader: grpc.status.UNAVAILABLE,
  aborted: grpc.status.CANCELLED,
  invoice_not_found: grpc.status.NOT_FOUND,
  not_accepted: grpc.status.FAILED_PRECONDITION,
  set_id_mismatch: grpc.status.FAILED_PRECONDITION,
  invoice_cancelled: grpc.status.FAILED_PRECONDITION,
  invoice_settled: grpc.status.FAILED_PRECONDITION,
  auto_settle: grpc.status.UNAVAILABLE,
  bad_record: grpc.status.INTERNAL,
  bad_input: grpc.status.INVALID_ARGUMENT,
  store_failed: grpc.status.UNAVAILABLE
}

const STATUS_NAME: Record<SettlementStatus, string> = {
  settle_requested: 'SETTLE_REQUESTED',
  settled: 'SETTLED',
  failed: 'FAILED'
}

/** A request the server itself refuses, with the status to answer. */
class StatusError extends Error {
  readonly status: grpc.status

  constructor(status: grpc.status, message: string) {
    super(message)
    this.status = status
  }
}

function invalid(message: string): StatusError {
  return new StatusError(grpc.status.INVALID_ARGUMENT, message)
}

function fixedBytes(value: Uint8Array, length: number, field: string): Uint8Array {
  if (value.length !== length) throw invalid(`${field} must be ${length} bytes, got ${value.length}`)
  return new Uint8Array(value)
}

/** proto-loader hands 64-bit fields over as decimal strings (longs: String). */
function wireInteger(text: string, field: string): bigint {
  if (!/^-?\d{1,20}$/.test(text)) throw invalid(`${field} is not an integer`)
  return BigInt(text)
}

function positiveInt64(text: string, field: string, max: bigint): bigint {
  const value = wireInteger(text, field)
  if (value <= 0n) throw invalid(`${field} not specified (must be positive)`)
  if (value > max) throw invalid(`${field} ${value} exceeds ${max}`)
  return value
}

interface AddInvoiceRequest { amt_msat: string; description: string; description_hash: Buffer; expiry_secs: string }
interface HashRequest { hash: Buffer }
interface SetRequest { hash: Buffer; set_id: Buffer }
interface ListInvoicesRequest { sequence_start: string; max_invoices_count: string }

function parseAddInvoice(req: AddInvoiceRequest) {
  const amtMsat = positiveInt64(req.amt_msat, 'amt_msat', INT64_MAX)
  const expirySecs = Number(positiveInt64(req.expiry_secs, 'expiry_secs', BigInt(Number.MAX_SAFE_INTEGER)))
  if (req.description_hash.length === 0) return { amtMsat, description: req.description, expirySecs }
  // BOLT 11: a payment request carries exactly one `d` or one `h` field, never both.
  if (req.description !== '') throw invalid('set description or description_hash, not both')
  const descriptionHash = fixedBytes(req.description_hash, HASH_BYTES, 'description_hash')
  return { amtMsat, description: '', descriptionHash, expirySecs }
}

function parseList(req: ListInvoicesRequest) {
  const sequenceStart = wireInteger(req.sequence_start, 'sequence_start')
  const count = wireInteger(req.max_invoices_count, 'max_invoices_count')
  if (count === 0n) throw invalid("should provide 'max_invoices_count' field")
  return { sequenceStart, maxCount: count > BigInt(MAX_INVOICES_PER_PAGE) ? MAX_INVOICES_PER_PAGE : Number(count) }
}

function invoiceMessage(invoice: ListedInvoice) {
  return {
    hash: Buffer.from(invoice.hash),
    preimage: Buffer.from(invoice.preimage),
    amount_msat: invoice.amountMsat.toString(),
    status: STATUS_NAME[invoice.status],
    settle_requested_at: String(invoice.settleRequestedAt),
    finalized_at: String(invoice.finalizedAt ?? 0),
    sequence_number: invoice.sequenceNumber.toString()
  }
}

function hostPortText(at: HostPort): string {
  return at.host.includes(':') ? `[${at.host}]:${at.port}` : `${at.host}:${at.port}`
}

export class ApiServer {
  private readonly server: grpc.Server
  private readonly api: InvoiceApi
  private readonly log: Logger | undefined
  private readonly graceMs: number
  // Open streams and waits, each with the function that ends it when the server closes.
  private readonly open = new Set<() => void>()
  private closing: Promise<void> | null = null
  private bound: HostPort | null = null

  private constructor(server: grpc.Server, opts: ApiServerOptions) {
    this.server = server
    this.api = opts.api
    this.log = opts.log
    this.graceMs = opts.shutdownGraceMs ?? SHUTDOWN_GRACE_MS
  }

  /**
   * Listen on `opts.listen` (default 127.0.0.1:19090; port 0 picks a free one). Plaintext is
   * allowed on loopback only: config validation already refuses the rest, this is the second lock.
   */
  static async start(opts: ApiServerOptions): Promise<ApiServer> {
    const listen = opts.listen ?? DEFAULT_API_LISTEN
    const tls = opts.tls ?? null
    if (tls === null && !isLoopback(listen.host)) {
      throw new ApiServerError('tls_required', `refusing to serve the API in plaintext on ${hostPortText(listen)}: not a loopback address; set api.tls`)
    }
    const credentials = tls === null
      ? grpc.ServerCredentials.createInsecure()
      : grpc.ServerCredentials.createSsl(null, [{ cert_chain: tls.cert, private_key: tls.key }], false)
    const server = new grpc.Server({ 'grpc.max_receive_message_length': MAX_REQUEST_BYTES })
    const api = new ApiServer(server, opts)
    // The service is in place before the port opens: no call can meet UNIMPLEMENTED.
    server.addService(LnmuxService.service, api.handlers())
    for (const extra of opts.services ?? []) server.addService(extra.service, extra.handlers)
    const port = await new Promise<number>((resolve, reject) => {
      server.bindAsync(hostPortText(listen), credentials, (err, port) => {
        if (err === null) return resolve(port)
        server.forceShutdown()
        reject(new ApiServerError('bind_failed', `cannot listen on ${hostPortText(listen)}: ${err.message}`))
      })
    })
    api.bound = { host: listen.host, port }
    return api
  }

  /** Where the server listens (the actual port when 0 was asked for). */
  get address(): HostPort {
    if (this.bound === null) throw new Error('ApiServer: not listening yet')
    return this.bound
  }

  /**
   * End every stream and wait with UNAVAILABLE (so clients retry elsewhere or later), let unary
   * calls finish for the grace period, then cut the rest.
   */
  close(): Promise<void> {
    if (this.closing) return this.closing
    this.closing = new Promise<void>((resolve) => {
      for (const end of [...this.open]) end()
      const force = setTimeout(() => {
        this.server.forceShutdown()
        resolve()
      }, this.graceMs)
      this.server.tryShutdown(() => {
        clearTimeout(force)
        resolve()
      })
    })
    return this.closing
  }

  private handlers(): grpc.UntypedServiceImplementation {
    return {
      GetInfo: this.unary(async () => {
        const info = await this.api.getInfo()
        return {
          pub_key: Buffer.from(info.pubKey),
          network: info.network,
          nodes: info.nodes.map((key) => ({ pub_key: Buffer.from(key) })),
          auto_settle: info.autoSettle
        }
      }),
      AddInvoice: this.unary(async (req: AddInvoiceRequest) => {
        const created = await this.api.addInvoice(parseAddInvoice(req))
        return { payment_request: created.paymentRequest, preimage: Buffer.from(created.preimage), hash: Buffer.from(created.hash) }
      }),
      SubscribeInvoiceAccepted: (call: grpc.ServerWritableStream<unknown, unknown>) => this.subscribeAccepted(call),
      WaitForInvoiceFinalStatus: (call: grpc.ServerUnaryCall<HashRequest, unknown>, callback: grpc.sendUnaryData<unknown>) =>
        this.waitForFinalStatus(call, callback),
      SettleInvoice: this.unary(async (req: SetRequest) => {
        await this.api.settle(fixedBytes(req.hash, HASH_BYTES, 'hash'), fixedBytes(req.set_id, SET_ID_BYTES, 'set_id'))
        return {}
      }),
      CancelInvoice: this.unary(async (req: SetRequest) => {
        const hash = fixedBytes(req.hash, HASH_BYTES, 'hash')
        await this.api.cancel(hash, req.set_id.length === 0 ? undefined : fixedBytes(req.set_id, SET_ID_BYTES, 'set_id'))
        return {}
      }),
      ListInvoices: this.unary(async (req: ListInvoicesRequest) => {
        const invoices = await this.api.listInvoices(parseList(req))
        return {
          invoice: invoices.map(invoiceMessage),
          first_sequence_number: (invoices[0]?.sequenceNumber ?? 0n).toString(),
          last_sequence_number: (invoices.at(-1)?.sequenceNumber ?? 0n).toString()
        }
      })
    }
  }

  private unary<Req>(handle: (req: Req) => Promise<unknown>): grpc.handleUnaryCall<Req, unknown> {
    return (call, callback) => {
      if (this.closing) return callback(this.shuttingDown())
      handle(call.request).then((res) => callback(null, res), (err: unknown) => callback(this.toStatus(err, call.getPath())))
    }
  }

  // Events are written as they come. `unread` counts live events not yet handed to HTTP/2; the
  // replay of sets accepted before the call may be larger than the queue, so it is not counted.
  private subscribeAccepted(call: grpc.ServerWritableStream<unknown, unknown>): void {
    if (this.closing) return void call.emit('error', this.shuttingDown())
    let unread = 0
    let replaying = true
    let ended = false
    let unsubscribe: (() => void) | undefined
    const finish = (status?: Partial<grpc.StatusObject>) => {
      if (ended) return
      ended = true
      this.open.delete(shutdown)
      unsubscribe?.()
      if (status) call.emit('error', status)
      else call.end()
    }
    const shutdown = () => finish(this.shuttingDown())
    this.open.add(shutdown)
    call.on('cancelled', () => finish())
    const send = (set: AcceptedSet) => {
      if (ended) return
      const message = { hash: Buffer.from(set.hash), set_id: Buffer.from(set.setId) }
      if (replaying) return void call.write(message)
      if (unread >= SUBSCRIBER_QUEUE_SIZE) {
        finish({ code: grpc.status.RESOURCE_EXHAUSTED, details: `buffer overflow: more than ${SUBSCRIBER_QUEUE_SIZE} accepted events unread` })
        return
      }
      unread++
      call.write(message, () => { unread-- })
    }
    try {
      unsubscribe = this.api.subscribeAccepted(send)
    } catch (err) {
      finish(this.toStatus(err, call.getPath()))
      return
    }
    replaying = false
  }

  private waitForFinalStatus(call: grpc.ServerUnaryCall<HashRequest, unknown>, callback: grpc.sendUnaryData<unknown>): void {
    if (this.closing) return callback(this.shuttingDown())
    let hash: Uint8Array
    try {
      hash = fixedBytes(call.request.hash, HASH_BYTES, 'hash')
    } catch (err) {
      return callback(this.toStatus(err, call.getPath()))
    }
    const abort = new AbortController()
    const stop = () => abort.abort()
    this.open.add(stop)
    call.on('cancelled', stop)
    this.api.waitForFinalStatus(hash, abort.signal).then(
      (status) => callback(null, { invoice_status: STATUS_NAME[status] }),
      (err: unknown) => callback(this.closing ? this.shuttingDown() : this.toStatus(err, call.getPath()))
    ).finally(() => this.open.delete(stop))
  }

  private shuttingDown(): Partial<grpc.StatusObject> {
    return { code: grpc.status.UNAVAILABLE, details: 'the API server is shutting down' }
  }

  private toStatus(err: unknown, method: string): Partial<grpc.StatusObject> {
    if (err instanceof StatusError) return { code: err.status, details: err.message }
    if (err instanceof ApiError || err instanceof MuxError) return { code: STATUS_OF[err.code], details: err.message }
    // An untyped failure is a bug or an outage below the facade: log it, tell the client little.
    this.log?.error('api call failed', { method, err: err instanceof Error ? err : String(err) })
    return { code: grpc.status.INTERNAL, details: 'internal error' }
  }
}

// The application API across the cluster: an agent that does not serve the virtual node forwards
// calls to the leader (api-forward) and relays its answers (api-reply), so an application can talk
// to whichever agent is local to it. Payloads are JSON with bytes as hex and integers as strings.
import { ApiError, type ApiErrorCode, type InvoiceApi } from '../api/service.ts'
import { MuxError, type MuxErrorCode } from '../mux/types.ts'
import type { ApiForward, ApiReply, Message } from '../cluster/messages.ts'

export type ForwardedMethod = 'addInvoice' | 'settle' | 'cancel' | 'waitForFinalStatus' | 'listInvoices' | 'subscribeAccepted'
const METHODS: ReadonlySet<string> = new Set<ForwardedMethod>(['addInvoice', 'settle', 'cancel', 'waitForFinalStatus', 'listInvoices', 'subscribeAccepted'])

const API_CODES: ReadonlySet<string> = new Set<ApiErrorCode>(['invalid_argument', 'not_found', 'failed_precondition', 'not_leader', 'aborted'])
/** gRPC status sent in api-reply: 0 ok, 2 (UNKNOWN) for an error whose code is in the payload. */
const OK = 0
const FAILED = 2

export function encodePayload(value: unknown): Uint8Array {
  return Buffer.from(JSON.stringify(value, (_k, v: unknown) => {
    if (typeof v === 'bigint') return { $n: v.toString() }
    if (v instanceof Uint8Array) return { $b: Buffer.from(v).toString('hex') }
    if (v && typeof v === 'object' && (v as { type?: unknown }).type === 'Buffer' && Array.isArray((v as { data?: unknown }).data)) {
      return { $b: Buffer.from((v as { data: number[] }).data).toString('hex') }
    }
    return v
  }))
}

export function decodePayload(bytes: Uint8Array): any {
  return JSON.parse(Buffer.from(bytes).toString(), (_k, v: unknown) => {
    if (v && typeof v === 'object') {
      const o = v as { $n?: unknown; $b?: unknown }
      if (typeof o.$n === 'string' && /^-?\d+$/.test(o.$n)) return BigInt(o.$n)
      if (typeof o.$b === 'string' && /^(?:[0-9a-f]{2})*$/.test(o.$b)) return new Uint8Array(Buffer.from(o.$b, 'hex'))
    }
    return v
  })
}

function errorPayload(err: unknown): Uint8Array {
  if (err instanceof ApiError || err instanceof MuxError) return encodePayload({ code: err.code, message: err.message })
  return encodePayload({ code: 'internal', message: 'internal error' })
}

function errorFrom(payload: Uint8Array): Error {
  const { code, message } = decodePayload(payload) as { code: string; message: string }
  if (API_CODES.has(code)) return new ApiError(code as ApiErrorCode, message)
  return new MuxError(code as MuxErrorCode, message)
}

interface Pending {
  to: string
  resolve: (value: any) => void
  reject: (err: Error) => void
  onEvent?: (value: any) => void
}

/** The forwarding side: calls to the leader, matched to replies by request id. */
export class ApiForwarder {
  private nextId = 1
  private readonly pending = new Map<number, Pending>()

  constructor(
    private readonly send: (to: string, message: Message) => boolean,
    private readonly leader: () => string | null
  ) {}

  call(method: ForwardedMethod, params: unknown): Promise<any> {
    return this.start(method, params)
  }

  /** A server stream (subscribeAccepted): `onEvent` per event until `stop` or the leader goes. */
  stream(method: ForwardedMethod, params: unknown, onEvent: (value: any) => void): { done: Promise<void>; stop: () => void } {
    let id = 0
    const done = this.start(method, params, onEvent, (requestId) => (id = requestId))
    return { done, stop: () => this.fail(id, new ApiError('aborted', 'unsubscribed')) }
  }

  private start(method: ForwardedMethod, params: unknown, onEvent?: (value: any) => void, onId?: (id: number) => void): Promise<any> {
    const leader = this.leader()
    if (leader === null) return Promise.reject(new ApiError('not_leader', 'no leader is serving the virtual node right now'))
    const requestId = this.nextId++ % 2 ** 32
    onId?.(requestId)
    return new Promise((resolve, reject) => {
      this.pending.set(requestId, { to: leader, resolve, reject, onEvent })
      const sent = this.send(leader, { type: 'api-forward', requestId, method, payload: encodePayload(params) })
      if (!sent) this.fail(requestId, new ApiError('not_leader', 'the leader is not reachable'))
    })
  }

  onReply(from: string, reply: ApiReply): void {
    const pending = this.pending.get(reply.requestId)
    if (pending === undefined || pending.to !== from) return
    if (reply.status !== OK) return this.fail(reply.requestId, errorFrom(reply.payload))
    const value = reply.payload.length === 0 ? undefined : decodePayload(reply.payload)
    if (!reply.done) {
      pending.onEvent?.(value)
      return
    }
    this.pending.delete(reply.requestId)
    pending.resolve(value)
  }

  /** The leader changed or left: calls in flight cannot be answered by it any more. */
  leaderGone(): void {
    for (const id of [...this.pending.keys()]) this.fail(id, new ApiError('not_leader', 'the leader changed; retry'))
  }

  private fail(id: number, err: Error): void {
    const pending = this.pending.get(id)
    if (pending === undefined) return
    this.pending.delete(id)
    pending.reject(err)
  }
}

/** The leader's side: runs forwarded calls on its local API and answers. */
export class ApiResponder {
  private readonly streams = new Map<string, () => void>()

  constructor(
    private readonly api: InvoiceApi,
    private readonly send: (to: string, message: Message) => boolean
  ) {}

  onForward(from: string, forward: ApiForward): void {
    const reply = (status: number, payload: Uint8Array, done: boolean): void => {
      this.send(from, { type: 'api-reply', requestId: forward.requestId, status, message: '', payload, done })
    }
    if (!METHODS.has(forward.method)) return reply(FAILED, encodePayload({ code: 'invalid_argument', message: `unknown method ${forward.method}` }), true)
    let params: any
    try {
      params = decodePayload(forward.payload)
    } catch {
      return reply(FAILED, encodePayload({ code: 'invalid_argument', message: 'undecodable payload' }), true)
    }
    const method = forward.method as ForwardedMethod
    if (method === 'subscribeAccepted') {
      const key = `${from}/${forward.requestId}`
      const unsubscribe = this.api.subscribeAccepted((set) => reply(OK, encodePayload(set), false))
      this.streams.set(key, unsubscribe)
      return
    }
    const controller = new AbortController()
    const run = (): Promise<unknown> => {
      switch (method) {
        case 'addInvoice':
          return this.api.addInvoice(params)
        case 'settle':
          return this.api.settle(params.hash, params.setId)
        case 'cancel':
          return this.api.cancel(params.hash, params.setId)
        case 'waitForFinalStatus':
          return this.api.waitForFinalStatus(params.hash, controller.signal)
        case 'listInvoices':
          return this.api.listInvoices(params)
      }
    }
    Promise.resolve()
      .then(run)
      .then(
        (value) => reply(OK, value === undefined ? new Uint8Array(0) : encodePayload(value), true),
        (err: unknown) => reply(FAILED, errorPayload(err), true)
      )
  }

  /** A peer left or leadership moved: end the streams served to it. */
  end(peer?: string): void {
    for (const [key, unsubscribe] of this.streams) {
      if (peer !== undefined && !key.startsWith(`${peer}/`)) continue
      unsubscribe()
      this.streams.delete(key)
    }
  }
}

// The edge's hands on one node: a single HtlcInterceptor stream (lnd allows one at a time:
// router_server.go ErrInterceptorAlreadyExists), reopened with backoff. HTLCs for this node's
// virtual channel go to `onHtlc`; everything else is RESUMEd at once. All resolution rules live
// in the pure CircuitTracker (./circuits.ts); this file only moves messages.
import { virtualScid } from '../ln/scid.ts'
import { CircuitTracker, circuitId, type CircuitKey, type Decision, type HeldTerms, type InterceptedHtlc, type OfferEffect } from './circuits.ts'
import { parseU64, type InterceptorCall, type LndClient, type RawInterceptRequest, type RawInterceptResponse } from './client.ts'
import { LndError } from './errors.ts'
import { ReconnectingStream, type StreamEvent } from './stream.ts'

export type InterceptorHtlcEvent =
  | { type: 'htlc_bad_request', node: string, error: string } // unparseable offer, left unanswered
  | { type: 'htlc_resumed', node: string, circuit: string }
  | { type: 'htlc_replayed', node: string, circuit: string, action: RawInterceptResponse['action'] }
  | { type: 'htlc_withheld', node: string, circuit: string, reason: 'not_sendable_on_chain' | 'duplicate' }
  | { type: 'htlc_expired', node: string, circuit: string, autoFailHeight: number }

export type InterceptorEvent = StreamEvent | InterceptorHtlcEvent

export interface InterceptorOptions {
  client: LndClient
  onHtlc: (htlc: InterceptedHtlc) => void
  // lnd failed a held HTLC back by itself (auto_fail_height reached before a decision went out).
  onExpired?: (htlc: HeldTerms) => void
  onEvent?: (event: InterceptorEvent) => void // default: the client's onEvent
}

export type ResolveResult = 'sent' | 'deferred' | 'duplicate' | 'withheld'

// protobufjs decodes a map<uint64, _> key into an 8-character "long hash" string (the
// little-endian bytes as char codes: decoder.js `util.longToHash(k)`), not a decimal string as
// longs: String suggests — real lnd sends in_wire_custom_records {106823: …} (the experimental
// endorsement signal) and it arrives as "G\xa1\x01\0\0\0\0\0". Encoding, protobufjs takes
// decimal strings.
export function mapKeyU64 (key: string, node: string, field: string): bigint {
  if (key.length !== 8) return parseU64(key, node, field)
  let n = 0n
  for (let i = 7; i >= 0; i--) {
    const byte = key.charCodeAt(i)
    if (byte > 0xff) throw new LndError('bad_response', node, `${field} key is not a uint64`)
    n = (n << 8n) | BigInt(byte)
  }
  return n
}

function records (raw: Record<string, Buffer>, node: string, field: string): Map<bigint, Buffer> {
  return new Map(Object.entries(raw).map(([k, v]) => [mapKeyU64(k, node, field), v]))
}

export function parseInterceptRequest (raw: RawInterceptRequest, node: string): InterceptedHtlc {
  const key = raw.incoming_circuit_key
  if (key === null) throw new LndError('bad_response', node, 'intercepted HTLC without incoming_circuit_key')
  if (raw.payment_hash.length !== 32) throw new LndError('bad_response', node, `intercepted HTLC payment_hash is ${raw.payment_hash.length} bytes`)
  return {
    circuit: { chanId: parseU64(key.chan_id, node, 'chan_id'), htlcId: parseU64(key.htlc_id, node, 'htlc_id') },
    incomingAmountMsat: parseU64(raw.incoming_amount_msat, node, 'incoming_amount_msat'),
    incomingExpiry: raw.incoming_expiry,
    outgoingAmountMsat: parseU64(raw.outgoing_amount_msat, node, 'outgoing_amount_msat'),
    outgoingExpiry: raw.outgoing_expiry,
    outgoingRequestedChanId: parseU64(raw.outgoing_requested_chan_id, node, 'outgoing_requested_chan_id'),
    paymentHash: raw.payment_hash,
    onionBlob: raw.onion_blob,
    customRecords: records(raw.custom_records, node, 'custom_records'),
    inWireCustomRecords: records(raw.in_wire_custom_records, node, 'in_wire_custom_records'),
    autoFailHeight: raw.auto_fail_height,
    // Off-chain offers carry incoming_expiry - CltvRejectDelta; the contract court's on-chain
    // offers carry the HTLC's refund timeout itself (witness_beacon.go). No other field tells.
    onChain: raw.auto_fail_height >= raw.incoming_expiry
  }
}

export class HtlcInterceptor {
  readonly node: string
  readonly tracker: CircuitTracker
  private readonly opts: InterceptorOptions
  private readonly stream: ReconnectingStream<RawInterceptRequest, InterceptorCall>
  private readonly emit: (event: InterceptorEvent) => void

  constructor (opts: InterceptorOptions) {
    const { client } = opts
    this.opts = opts
    this.node = client.name
    this.tracker = new CircuitTracker(virtualScid(Buffer.from(client.pubkey, 'hex')))
    this.emit = opts.onEvent ?? client.onEvent
    this.stream = new ReconnectingStream<RawInterceptRequest, InterceptorCall>({
      node: this.node,
      stream: 'HtlcInterceptor',
      open: () => client.openHtlcInterceptor(),
      onOpen: () => this.tracker.streamOpened(),
      onClose: () => this.tracker.streamClosed(),
      onMessage: (raw, call) => this.onRequest(raw, call),
      onEvent: (e) => this.emit(e),
      backoff: client.backoff,
      clock: client.clock,
      random: client.random
    })
  }

  get virtualScid (): bigint {
    return this.tracker.virtualScid
  }

  start (): void {
    this.stream.start()
  }

  stop (): void {
    this.stream.stop()
  }

  // Applies a decision for a held HTLC. 'deferred': no stream is open, it goes out when lnd
  // re-offers the HTLC on the next one; 'withheld': the HTLC is on-chain and lnd accepts only a
  // settle. Throws InterceptorError for an unknown, expired or already differently decided
  // circuit or a decision lnd would refuse, so that lnd never ends our stream over it.
  resolve (circuit: CircuitKey, decision: Decision): ResolveResult {
    const effect = this.tracker.decide(circuit, decision)
    if (effect.type !== 'send') return effect.type
    const call = this.stream.current
    // decide() only returns 'send' while a stream is open, and the tracker hears of a close
    // synchronously from the stream: `call` is that stream.
    if (call === null) throw new Error('unreachable: tracker open without a stream')
    call.write(effect.response)
    return 'sent'
  }

  // Feed the best block height (from the agent's chain watch, e.g. GetInfo.block_height).
  setBlockHeight (height: number): void {
    for (const htlc of this.tracker.advanceHeight(height)) {
      this.emit({ type: 'htlc_expired', node: this.node, circuit: circuitId(htlc.circuit), autoFailHeight: htlc.autoFailHeight })
      this.opts.onExpired?.(htlc)
    }
  }

  private onRequest (raw: RawInterceptRequest, call: InterceptorCall): void {
    let htlc: InterceptedHtlc
    try {
      htlc = parseInterceptRequest(raw, this.node)
    } catch (err) {
      // Without a valid circuit key there is nothing to answer; lnd keeps holding it and
      // replays it on the next stream.
      this.emit({ type: 'htlc_bad_request', node: this.node, error: (err as Error).message })
      return
    }
    this.apply(this.tracker.offer(htlc), htlc, call)
  }

  private apply (effect: OfferEffect, htlc: InterceptedHtlc, call: InterceptorCall): void {
    const circuit = circuitId(htlc.circuit)
    switch (effect.type) {
      case 'handle':
        this.opts.onHtlc(htlc)
        return
      case 'held':
        return
      case 'ignore':
        this.emit({ type: 'htlc_withheld', node: this.node, circuit, reason: effect.reason })
        return
      case 'send':
        call.write(effect.response)
        this.emit(htlc.outgoingRequestedChanId === this.tracker.virtualScid
          ? { type: 'htlc_replayed', node: this.node, circuit, action: effect.response.action }
          : { type: 'htlc_resumed', node: this.node, circuit })
    }
  }
}

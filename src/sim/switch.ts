// The interceptable switch of one simulated LND node: a faithful model of lnd v0.21.2-beta
// htlcswitch/interceptable_switch.go and held_htlc_set.go (off-chain flow only). It decides what
// is offered to the HtlcInterceptor stream, what is held while no interceptor is connected, what is
// failed back, and applies the interceptor's resolutions.
//
// Pure: the height is passed in, the effects (resume, settle, fail) go through the `HeldForward`
// each packet carries, and the interceptor is a callback.
import { sha256 } from '@noble/hashes/sha2.js'
import { FailureCode } from '../ln/failure.ts'
import { SimError } from './errors.ts'

// lncfg/config.go: DefaultIncomingBroadcastDelta = 16,
// DefaultFinalCltvRejectDelta = 16 + 3, DefaultCltvInterceptDelta = DefaultFinalCltvRejectDelta + 3.
export const CLTV_REJECT_DELTA = 19
export const CLTV_INTERCEPT_DELTA = 22

const MAX_INT32 = 2 ** 31 - 1

// The failure codes lnd's FailWithCode can originate (interceptable_switch.go); any other code is
// ErrUnsupportedFailureCode. The RPC layer maps the interceptor's lnrpc.Failure codes onto these.
export type LocalFailCode =
  | typeof FailureCode.INVALID_ONION_VERSION
  | typeof FailureCode.INVALID_ONION_HMAC
  | typeof FailureCode.INVALID_ONION_KEY
  | typeof FailureCode.TEMPORARY_CHANNEL_FAILURE
  | typeof FailureCode.EXPIRY_TOO_SOON
  | typeof FailureCode.EXPIRY_TOO_FAR

const LOCAL_FAIL_CODES: ReadonlySet<number> = new Set<LocalFailCode>([
  FailureCode.INVALID_ONION_VERSION,
  FailureCode.INVALID_ONION_HMAC,
  FailureCode.INVALID_ONION_KEY,
  FailureCode.TEMPORARY_CHANNEL_FAILURE,
  FailureCode.EXPIRY_TOO_SOON,
  FailureCode.EXPIRY_TOO_FAR
])

export interface CircuitKey {
  chanId: bigint
  htlcId: bigint
}

export function circuitKeyId (key: CircuitKey): string {
  return `${key.chanId}:${key.htlcId}`
}

/** lnd formats a short channel id as block:tx:output (lnwire/short_channel_id.go). */
export function lndScidString (scid: bigint): string {
  return `${scid >> 40n}:${(scid >> 16n) & 0xffffffn}:${scid & 0xffffn}`
}

/** models.CircuitKey.String() in lnd, used in its error messages. */
export function formatCircuitKey (key: CircuitKey): string {
  return `(Chan ID=${lndScidString(key.chanId)}, HTLC ID=${key.htlcId})`
}

/** What the HtlcInterceptor stream shows of a held forward (routerrpc ForwardHtlcInterceptRequest). */
export interface InterceptedPacket {
  incomingCircuitKey: CircuitKey
  incomingAmountMsat: bigint
  incomingExpiry: number
  paymentHash: Uint8Array
  outgoingRequestedChanId: bigint
  outgoingAmountMsat: bigint
  outgoingExpiry: number
  customRecords: Map<bigint, Uint8Array>
  /** The onion packet for the next hop (1366 bytes). */
  onionBlob: Uint8Array
  autoFailHeight: number
}

/** The node's handle on one forward: the link-side effects of each resolution. */
export interface HeldForward {
  packet: InterceptedPacket
  resume(): void
  settle(preimage: Uint8Array): void
  /** Fail with a failure packet the interceptor encrypted (lnd obfuscates it once more). */
  fail(reason: Uint8Array): void
  /** Fail with a failure this node originates. */
  failWithCode(code: LocalFailCode): void
}

export type Resolution =
  | { key: CircuitKey, action: 'RESUME' }
  | { key: CircuitKey, action: 'SETTLE', preimage: Uint8Array }
  | { key: CircuitKey, action: 'FAIL', failureMessage: Uint8Array }
  | { key: CircuitKey, action: 'FAIL', failureCode: number }

export type Interceptor = (packet: InterceptedPacket) => void

export class InterceptableSwitch {
  readonly requireInterceptor: boolean
  private interceptor: Interceptor | null = null
  private readonly held = new Map<string, HeldForward>()

  constructor (requireInterceptor: boolean) {
    this.requireInterceptor = requireInterceptor
  }

  get hasInterceptor (): boolean {
    return this.interceptor !== null
  }

  /** Circuit keys currently held, in arrival order. */
  heldKeys (): CircuitKey[] {
    return [...this.held.values()].map((fwd) => fwd.packet.incomingCircuitKey)
  }

  /**
   * A packet the link wants forwarded (interceptForward + forwardOffChain). `isReplay` is true when
   * the link re-forwards adds from its forwarding package after a restart or reconnect.
   */
  forward (fwd: HeldForward, height: number, isReplay: boolean): void {
    if (this.handleExpired(fwd, height)) return
    const id = circuitKeyId(fwd.packet.incomingCircuitKey)
    if (this.held.has(id)) return // "Ignore already held htlcs."
    if (this.interceptor === null) {
      if (!this.requireInterceptor) return fwd.resume()
      // A new packet was never seen by an interceptor: failing it back is safe and bounds the
      // backlog. A replay may already have been decided by the interceptor: hold it.
      if (!isReplay) return fwd.failWithCode(FailureCode.TEMPORARY_CHANNEL_FAILURE)
      this.held.set(id, fwd)
      return
    }
    this.held.set(id, fwd)
    this.interceptor(fwd.packet)
  }

  /** handleExpired: too far in the future (auto-fail height not an int32) or too close to expiry. */
  private handleExpired (fwd: HeldForward, height: number): boolean {
    const incomingExpiry = fwd.packet.incomingExpiry
    if (incomingExpiry - CLTV_REJECT_DELTA > MAX_INT32) {
      fwd.failWithCode(FailureCode.EXPIRY_TOO_FAR)
      return true
    }
    if (incomingExpiry >= height + CLTV_INTERCEPT_DELTA) return false
    fwd.failWithCode(FailureCode.EXPIRY_TOO_SOON)
    return true
  }

  /**
   * setInterceptor: a connecting interceptor is offered the whole held set; on disconnect the held
   * set is kept when an interceptor is required, released (resumed) otherwise.
   */
  setInterceptor (interceptor: Interceptor | null): void {
    this.interceptor = interceptor
    if (interceptor !== null) {
      for (const fwd of this.held.values()) interceptor(fwd.packet)
      return
    }
    if (this.requireInterceptor) return
    const released = [...this.held.values()]
    this.held.clear()
    for (const fwd of released) fwd.resume()
  }

  /**
   * heldHtlcSet.resolve: throws (and keeps the entry) when the key is unknown, the preimage does
   * not match or the failure code is unsupported; the RPC layer ends the stream on any throw.
   */
  resolve (res: Resolution): void {
    const id = circuitKeyId(res.key)
    const fwd = this.held.get(id)
    if (fwd === undefined) {
      throw new SimError('fwd_not_exists', `forward does not exist: ${formatCircuitKey(res.key)}`)
    }
    switch (res.action) {
      case 'RESUME':
        this.held.delete(id)
        return fwd.resume()
      case 'SETTLE':
        if (!bytesEqual(sha256(res.preimage), fwd.packet.paymentHash)) {
          throw new SimError('preimage_mismatch', 'preimage does not match hash')
        }
        this.held.delete(id)
        return fwd.settle(res.preimage)
      case 'FAIL':
        if ('failureMessage' in res) {
          this.held.delete(id)
          return fwd.fail(res.failureMessage)
        }
        if (!LOCAL_FAIL_CODES.has(res.failureCode)) {
          throw new SimError('unsupported_failure_code', 'unsupported failure code')
        }
        this.held.delete(id)
        return fwd.failWithCode(res.failureCode as LocalFailCode)
    }
  }

  /** failExpiredHtlcs on each new block: held forwards at their auto-fail height fail back. */
  expire (height: number): void {
    for (const [id, fwd] of this.held) {
      if (fwd.packet.autoFailHeight > height) continue
      this.held.delete(id)
      fwd.failWithCode(FailureCode.TEMPORARY_CHANNEL_FAILURE)
    }
  }

  /** An lnd restart loses the in-memory held set; the link replays the adds afterwards. */
  reset (): void {
    this.interceptor = null
    this.held.clear()
  }
}

export function bytesEqual (a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false
  let diff = 0
  for (let i = 0; i < a.length; i++) diff |= a[i]! ^ b[i]!
  return diff === 0
}

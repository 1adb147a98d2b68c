// Defences against a peer that knows the secret but misbehaves: rate limits, bans, replay checks,
// and a cap on how many rejections we report (so that a flood of bad peers cannot flood the log).
// Pure: every decision takes `now` (unix ms) from the caller.
import { decodeEnvelope, unbatch, verifyEnvelope, type Envelope, type SignedEnvelope } from './envelope.ts'
import { EnvelopeError, PeerError } from './errors.ts'
import { claimedSender } from './messages.ts'

const hex = (key: Uint8Array): string => Buffer.from(key).toString('hex')

/** A token bucket: `rate` tokens per second, holding at most `burst`. */
export class TokenBucket {
  private tokens: number
  private updated: number
  constructor(
    private readonly rate: number,
    private readonly burst: number,
    now: number
  ) {
    this.tokens = burst
    this.updated = now
  }

  /** Takes `cost` tokens if available. */
  take(cost: number, now: number): boolean {
    this.tokens = Math.min(this.burst, this.tokens + (Math.max(0, now - this.updated) * this.rate) / 1000)
    this.updated = now
    if (this.tokens < cost) return false
    this.tokens -= cost
    return true
  }
}

export interface RateLimits {
  messagesPerSecond: number
  messageBurst: number
  bytesPerSecond: number
  byteBurst: number
}

/**
 * Sized for the target of ≥ 2,000 HTLC decisions/s through one edge, with headroom; what a
 * peer can make us verify and append to the audit log is bounded by these.
 */
export const DEFAULT_RATE_LIMITS: RateLimits = {
  messagesPerSecond: 10_000,
  messageBurst: 20_000,
  bytesPerSecond: 16 * 1024 * 1024,
  byteBurst: 32 * 1024 * 1024
}

/** Agent keys (hex) banned until a time. */
export class BanList {
  private readonly until = new Map<string, number>()

  /** At most `capacity` keys are banned at once, so a flood of fresh keys cannot grow the list. */
  constructor(readonly capacity = 10_000) {}

  /** Bans `key` until `until`; returns the key whose ban was dropped to make room, if any. */
  ban(key: string, until: number): string | null {
    const previous = this.until.get(key)
    this.until.delete(key)
    this.until.set(key, Math.max(until, previous ?? 0))
    if (this.until.size <= this.capacity) return null
    const oldest = this.until.keys().next().value as string
    this.until.delete(oldest)
    return oldest
  }

  isBanned(key: string, now: number): boolean {
    const until = this.until.get(key)
    return until !== undefined && until > now
  }

  /** Forgets expired bans and returns their keys. */
  expire(now: number): string[] {
    const expired: string[] = []
    for (const [key, until] of this.until) {
      if (until <= now) {
        this.until.delete(key)
        expired.push(key)
      }
    }
    return expired
  }
}

/** Lets through at most `max` reports per `windowMs`; counts what it held back. */
export class ReportLimiter {
  private windowStart = -Infinity
  private sent = 0
  private suppressed = 0
  constructor(
    private readonly max: number,
    private readonly windowMs: number
  ) {}

  /** Returns the number of reports suppressed since the last one let through, or null to drop this one. */
  admit(now: number): number | null {
    if (now - this.windowStart >= this.windowMs) {
      this.windowStart = now
      this.sent = 0
    }
    if (this.sent >= this.max) {
      this.suppressed++
      return null
    }
    this.sent++
    const suppressed = this.suppressed
    this.suppressed = 0
    return suppressed
  }
}

export interface InboundOptions {
  limits: RateLimits
  /** Envelopes timestamped further than this from our clock are rejected. */
  maxClockSkewMs: number
}

/**
 * The checks an envelope from one connection goes through, cheapest first: rate, size and shape,
 * sender = the connection's authenticated key (and = the author each message names), signature,
 * clock skew, then the per-sender sequence. A batch counts as its messages against the rate.
 * The last-seen sequence numbers are shared by all connections (`lastSeq`), so a reconnect does not
 * reopen the replay window. Throws PeerError; a peer that fails any check is disconnected.
 */
export class InboundGate {
  private readonly messages: TokenBucket
  private readonly bytes: TokenBucket
  constructor(
    private readonly remoteKey: string,
    private readonly lastSeq: Map<string, number>,
    private readonly options: InboundOptions,
    now: number
  ) {
    const { limits } = options
    this.messages = new TokenBucket(limits.messagesPerSecond, limits.messageBurst, now)
    this.bytes = new TokenBucket(limits.bytesPerSecond, limits.byteBurst, now)
  }

  /** The envelope's messages (one, or a batch's), each as an envelope of its own. */
  check(data: Uint8Array, now: number): Envelope[] {
    if (!this.messages.take(1, now) || !this.bytes.take(data.byteLength, now)) {
      throw new PeerError('rate_limited', 'peer exceeded its message or byte rate')
    }
    let envelope: SignedEnvelope
    try {
      envelope = decodeEnvelope(data)
    } catch (err) {
      if (err instanceof EnvelopeError) throw new PeerError(err.code, err.message)
      throw err
    }
    const delivered = unbatch(envelope)
    if (!this.messages.take(delivered.length - 1, now)) throw new PeerError('rate_limited', 'peer exceeded its message rate')
    const from = hex(envelope.from)
    if (from !== this.remoteKey) throw new PeerError('wrong_sender', `envelope from ${from} on the connection of ${this.remoteKey}`)
    for (const { message } of delivered) {
      const claimed = claimedSender(message)
      if (claimed !== null && hex(claimed) !== from) {
        throw new PeerError('wrong_sender', `${message.type} names ${hex(claimed)} as its author, sent by ${from}`)
      }
    }
    if (!verifyEnvelope(envelope)) throw new PeerError('bad_signature', `${envelope.message.type} envelope signature does not verify`)
    if (Math.abs(envelope.time - now) > this.options.maxClockSkewMs) {
      throw new PeerError('clock_skew', `envelope time is ${envelope.time - now} ms from ours`)
    }
    const last = this.lastSeq.get(from) ?? -1
    if (envelope.seq <= last) throw new PeerError('replay', `seq ${envelope.seq} is not above the last seen ${last}`)
    this.lastSeq.set(from, envelope.seq)
    return delivered
  }
}

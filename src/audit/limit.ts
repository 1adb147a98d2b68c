// Bounds what a peer can make us write (DESIGN.md "Messages": rate-limit what a misbehaving peer
// can make us write). Records written because of a peer's message pass through `admit`; past the
// peer's budget they are dropped and counted, and the count is written as one `rate_limited`
// record per peer per summary interval, so a flood costs a bounded number of records and bytes.
// Pure: the caller passes `now` (unix ms).
import { TokenBucket } from '../cluster/guard.ts'
import type { RecordOf } from './records.ts'

export interface PeerWriteLimits {
  recordsPerSecond: number
  recordBurst: number
  bytesPerSecond: number
  byteBurst: number
  summaryIntervalMs: number
}

export const DEFAULT_PEER_WRITE_LIMITS: PeerWriteLimits = {
  recordsPerSecond: 10_000, // the cluster's message rate (src/cluster/guard.ts DEFAULT_RATE_LIMITS)
  recordBurst: 20_000,
  bytesPerSecond: 16 * 1024 * 1024,
  byteBurst: 32 * 1024 * 1024,
  summaryIntervalMs: 10_000
}

// Peers beyond this many share one budget, so the limiter's own memory is bounded too.
export const MAX_TRACKED_PEERS = 1024
const OVERFLOW = 'overflow'

interface PeerBudget {
  records: TokenBucket
  bytes: TokenBucket
  dropped: number
  lastSummary: number
}

export class PeerWriteLimiter {
  private readonly peers = new Map<string, PeerBudget>()

  constructor(private readonly limits: PeerWriteLimits = DEFAULT_PEER_WRITE_LIMITS) {}

  // May a record of `size` bytes caused by `peer` be written now?
  admit(peer: Uint8Array, size: number, now: number): boolean {
    const budget = this.budget(peer, now)
    if (budget.records.take(1, now) && budget.bytes.take(size, now)) return true
    budget.dropped++
    return false
  }

  // The `rate_limited` record to write for `peer` now, if it dropped anything since the last one
  // and the summary interval has passed.
  summary(peer: Uint8Array, now: number): RecordOf<'rate_limited'> | null {
    const budget = this.peers.get(this.id(peer))
    if (budget === undefined || budget.dropped === 0 || now - budget.lastSummary < this.limits.summaryIntervalMs) return null
    const record: RecordOf<'rate_limited'> = { type: 'rate_limited', time: now, peer, dropped: budget.dropped }
    budget.dropped = 0
    budget.lastSummary = now
    return record
  }

  private id(peer: Uint8Array): string {
    const id = Buffer.from(peer).toString('hex')
    return this.peers.has(id) || this.peers.size < MAX_TRACKED_PEERS ? id : OVERFLOW
  }

  private budget(peer: Uint8Array, now: number): PeerBudget {
    const id = this.id(peer)
    let budget = this.peers.get(id)
    if (budget === undefined) {
      const { recordsPerSecond, recordBurst, bytesPerSecond, byteBurst } = this.limits
      budget = {
        records: new TokenBucket(recordsPerSecond, recordBurst, now),
        bytes: new TokenBucket(bytesPerSecond, byteBurst, now),
        dropped: 0,
        lastSummary: -Infinity
      }
      this.peers.set(id, budget)
    }
    return budget
  }
}

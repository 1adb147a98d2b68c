// The edge: an agent's bridge between the HTLCs its own LND nodes intercept for the virtual node and
// the leader that decides them. A pure state machine fed by events (offers, leader changes, decisions,
// durable-record acknowledgements, block heights); IO stays in the driver. It enforces DESIGN.md's
// invariants on this side of the wire:
//  - fencing (5): a decision counts only from the leader, and for the term, the HTLC was forwarded to;
//  - write-ahead (6): every decision is recorded before it is applied: durably, by an fsync of its
//    own, or, for a settle of an HTLC that a settle record the member stored lists, by that record
//    (see the member's `edge-record` action);
//  - bounded holding (7): without a decision, an HTLC is failed with a temporary failure a margin
//    before lnd's auto_fail_height, so the payer retries another route;
//  - no money left behind (1): at that deadline a settle decision learned from any member's audit core
//    (the preimage it carried) wins over failing, and a settle is never replaced by anything else.
import { createHash } from 'node:crypto'
import { circuitId, type Decision, type InterceptedHtlc } from '../lnd/circuits.ts'

/** An intercepted HTLC and the node (33-byte pubkey, hex) that holds it. */
export interface EdgeHtlc extends InterceptedHtlc {
  node: string
}

export type EdgeAction =
  | { type: 'forward'; to: string; term: number; htlc: EdgeHtlc }
  | { type: 'record'; id: string; term: number; from: string; decision: Decision }
  | { type: 'resolve'; id: string; node: string; htlc: EdgeHtlc; decision: Decision }
  | { type: 'reject'; id: string; from: string; term: number; reason: EdgeRejectReason }

export type EdgeRejectReason = 'unknown_htlc' | 'wrong_term' | 'not_the_leader' | 'bad_preimage' | 'conflicting_decision'

interface Entry {
  htlc: EdgeHtlc
  /** Term and leader the HTLC was last forwarded to; decisions from anyone else are refused. */
  forwarded: { term: number; to: string } | null
  /** The decision being recorded or applied. */
  decision: Decision | null
  recorded: boolean
}

export interface EdgeOptions {
  /** This agent's key (the `from` of decisions it takes itself at a deadline). */
  self: string
  /** Blocks before auto_fail_height at which an undecided HTLC is failed (lnd fails it at the height). */
  deadlineMarginBlocks: number
}

export const DEFAULT_DEADLINE_MARGIN_BLOCKS = 2

/** The circuit id of an HTLC across the cluster: node ‖ incoming channel ‖ htlc index. */
export function edgeHtlcId(htlc: { node: string; circuit: InterceptedHtlc['circuit'] }): string {
  return `${htlc.node}/${circuitId(htlc.circuit)}`
}

function preimageMatches(preimage: Uint8Array, paymentHash: Uint8Array): boolean {
  return createHash('sha256').update(preimage).digest().equals(paymentHash)
}

function hashHex(entry: Entry): string {
  return Buffer.from(entry.htlc.paymentHash).toString('hex')
}

function sameDecision(a: Decision, b: Decision): boolean {
  if (a.action !== b.action) return false
  if (a.action === 'settle' && b.action === 'settle') return Buffer.from(a.preimage).equals(b.preimage)
  return true
}

export class Edge {
  private readonly opts: EdgeOptions
  private readonly entries = new Map<string, Entry>()
  /** Preimages of settle decisions seen in any member's audit core, by payment hash (hex). */
  private readonly knownSettles = new Map<string, Uint8Array>()
  /** How many entries there are of each payment hash (hex). */
  private readonly heldHashes = new Map<string, number>()
  private leader: { term: number; id: string } | null = null
  private term = 0

  constructor(opts: EdgeOptions) {
    this.opts = opts
  }

  get held(): number {
    return this.entries.size
  }

  htlc(id: string): EdgeHtlc | undefined {
    return this.entries.get(id)?.htlc
  }

  /** lnd offered an HTLC for the virtual channel (new, or replayed after a reconnect or restart). */
  offer(htlc: EdgeHtlc): EdgeAction[] {
    const id = edgeHtlcId(htlc)
    const existing = this.entries.get(id)
    if (existing) {
      existing.htlc = htlc
      // A replay of a decided HTLC: the interceptor re-sends the same decision on the new stream.
      return existing.recorded && existing.decision ? [this.resolveAction(id, existing)] : []
    }
    const entry: Entry = { htlc, forwarded: null, decision: null, recorded: false }
    this.entries.set(id, entry)
    const hash = hashHex(entry)
    this.heldHashes.set(hash, (this.heldHashes.get(hash) ?? 0) + 1)
    // One offered at or past its deadline (replayed by lnd after this agent was down) is decided by
    // the next `height` call: the member's checkDeadlines, which the driver makes once it read the
    // audit cores for its settle (settleScanDue).
    return this.forward(entry)
  }

  /** The election settled on a leader for `term`, or lost it (`leader` null). */
  leaderChanged(term: number, leader: string | null): EdgeAction[] {
    if (term < this.term) return []
    // Back in touch with a leader after losing it: what we sent it may have been lost meanwhile.
    const regained = this.leader === null
    this.term = term
    this.leader = leader === null ? null : { term, id: leader }
    const actions: EdgeAction[] = []
    for (const entry of this.entries.values()) actions.push(...this.forward(entry, regained))
    return actions
  }

  /**
   * The connection to the leader was re-established: offers (or their decisions) may have been lost
   * with the old one, so every undecided HTLC forwarded to it in this term goes again. The leader
   * answers a part it already decided with the same decision, and ignores one it still holds.
   */
  reforward(leader: string): EdgeAction[] {
    if (this.leader === null || this.leader.id !== leader) return []
    const actions: EdgeAction[] = []
    for (const entry of this.entries.values()) {
      if (entry.decision === null && entry.forwarded?.term === this.leader.term && entry.forwarded.to === leader) {
        actions.push({ type: 'forward', to: leader, term: this.leader.term, htlc: entry.htlc })
      }
    }
    return actions
  }

  /** A decision arrived from the cluster, signed by `from`. */
  decide(from: string, term: number, id: string, decision: Decision): EdgeAction[] {
    const entry = this.entries.get(id)
    const reject = (reason: EdgeRejectReason): EdgeAction[] => [{ type: 'reject', id, from, term, reason }]
    if (!entry) return reject('unknown_htlc')
    if (!entry.forwarded || entry.forwarded.term !== term) return reject('wrong_term')
    if (entry.forwarded.to !== from) return reject('not_the_leader')
    if (decision.action === 'settle' && !preimageMatches(decision.preimage, entry.htlc.paymentHash)) return reject('bad_preimage')
    if (entry.decision) return sameDecision(entry.decision, decision) ? [] : reject('conflicting_decision')
    return this.take(id, entry, term, from, decision)
  }

  /** The decision for `id` is recorded (durably, or covered by a settle record the member stored): now it may be applied. */
  recorded(id: string): EdgeAction[] {
    const entry = this.entries.get(id)
    if (!entry || !entry.decision || entry.recorded) return []
    entry.recorded = true
    return [this.resolveAction(id, entry)]
  }

  /** lnd confirmed the resolution (or failed the HTLC itself): forget it. */
  resolved(id: string): void {
    const entry = this.entries.get(id)
    this.entries.delete(id)
    if (entry === undefined) return
    const hash = hashHex(entry)
    const left = this.heldHashes.get(hash)! - 1
    if (left > 0) return void this.heldHashes.set(hash, left)
    this.heldHashes.delete(hash)
    this.knownSettles.delete(hash)
  }

  /**
   * Whether to look for settle decisions in the audit cores now: an undecided HTLC without a known
   * settle is a block away from its deadline (or past it, and kept only because it is on chain).
   */
  settleScanDue(height: number): boolean {
    for (const entry of this.entries.values()) {
      if (entry.decision === null && this.nearDeadline(entry.htlc, height) && !this.knownSettles.has(hashHex(entry))) return true
    }
    return false
  }

  /** Whether `htlc` is a block or less from its deadline at `height`, or past it. */
  nearDeadline(htlc: EdgeHtlc, height: number): boolean {
    return height + 1 >= this.deadline(htlc)
  }

  /**
   * A settle decision's preimage was seen in some member's audit core (known-settles.ts): kept, under
   * the payment hash it hashes to, while an HTLC of that hash is held.
   */
  settleKnown(preimage: Uint8Array): void {
    const hash = createHash('sha256').update(preimage).digest('hex')
    if (this.heldHashes.has(hash)) this.knownSettles.set(hash, preimage)
  }

  /**
   * A new block, or a deadline check after an offer: fail (or settle, where a settle is known) every
   * undecided HTLC at its deadline.
   */
  height(height: number): EdgeAction[] {
    const actions: EdgeAction[] = []
    for (const [id, entry] of this.entries) actions.push(...this.checkDeadline(id, entry, height))
    return actions
  }

  private forward(entry: Entry, again = false): EdgeAction[] {
    if (entry.decision || !this.leader) return []
    if (!again && entry.forwarded && entry.forwarded.term === this.leader.term && entry.forwarded.to === this.leader.id) return []
    entry.forwarded = { term: this.leader.term, to: this.leader.id }
    return [{ type: 'forward', to: this.leader.id, term: this.leader.term, htlc: entry.htlc }]
  }

  /** The height at which an undecided HTLC is failed: a margin before lnd's auto_fail_height. */
  private deadline(htlc: EdgeHtlc): number {
    return htlc.autoFailHeight - this.opts.deadlineMarginBlocks
  }

  private checkDeadline(id: string, entry: Entry, height: number): EdgeAction[] {
    if (entry.decision || height < this.deadline(entry.htlc)) return []
    const preimage = this.knownSettles.get(hashHex(entry))
    if (preimage) return this.take(id, entry, this.term, this.opts.self, { action: 'settle', preimage })
    // On chain only SETTLE is accepted (lnd held_htlc_set.go): keep waiting for a decision.
    if (entry.htlc.onChain) return []
    return this.take(id, entry, this.term, this.opts.self, { action: 'fail', failureCode: 'TEMPORARY_CHANNEL_FAILURE' })
  }

  private take(id: string, entry: Entry, term: number, from: string, decision: Decision): EdgeAction[] {
    entry.decision = decision
    return [{ type: 'record', id, term, from, decision }]
  }

  private resolveAction(id: string, entry: Entry): EdgeAction {
    return { type: 'resolve', id, node: entry.htlc.node, htlc: entry.htlc, decision: entry.decision! }
  }
}

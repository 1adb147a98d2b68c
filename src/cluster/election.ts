// Leader election for the virtual node: term-numbered leases granted by a majority of the voters,
// with Raft's voting rule (one vote per term, only for a candidate whose view is at least as recent
// as the voter's; Ongaro & Ousterhout, "In Search of an Understandable Consensus Algorithm", §5.2 and
// §5.4.1). A pure state machine: time and randomness come in as arguments, messages go out as actions,
// and (term, votedFor) must be made durable by the driver before any message that follows a `persist`.
// A candidate first runs a pre-vote round (Ongaro's thesis §9.6, PreVote): it raises its term only
// once a majority says it would vote for it, so a member that was cut off or is behind cannot
// inflate terms and keep everyone else from electing a leader.

/**
 * What a member knows of the cluster's history. Votes compare only `term` (Raft's "last log term"):
 * a new leader collects every committed record from a majority before it serves, so the record
 * count is informative only, and comparing it would let a member that missed notices during a
 * partition block every election.
 */
export interface View {
  /** Highest term in which this member saw a leader (persisted: a restart must not forget it). */
  term: number
  /** Settle and cancel records known (own core plus replicas). */
  records: number
}

export type ElectionMessage =
  | { type: 'vote-request'; term: number; candidate: string; view: View; priority: number; pre: boolean }
  | { type: 'vote'; term: number; voter: string; granted: boolean; view: View; pre: boolean }
  | { type: 'lease'; term: number; leader: string; at: number }
  | { type: 'lease-ack'; term: number; voter: string; at: number }

export type ElectionAction =
  | { type: 'persist'; term: number; votedFor: string | null }
  | { type: 'send'; to: string; message: ElectionMessage }
  | { type: 'broadcast'; message: ElectionMessage }
  | { type: 'leader'; term: number; leader: string | null }

export interface ElectionOptions {
  self: string
  /** Holds the identity key: may stand for election. */
  candidate: boolean
  /** Holds an LND node or is a witness: its vote counts. */
  voter: boolean
  /** Higher wins ties: its election timeout is shorter. */
  priority: number
  /**
   * How long a voter stays bound to the leader (or candidate) it last acknowledged. The leader counts
   * each acknowledgement from the moment it sent the lease (the `at` echoed back), minus
   * `clockDriftMs`, so its lease always ends before the voters' promises do.
   */
  leaseMs: number
  clockDriftMs: number
  /** Time between lease renewals. */
  heartbeatMs: number
  /** Randomised election timeout range after the last lease heard. */
  electionTimeoutMs: readonly [number, number]
  /** Durable state from the previous run. */
  persisted?: { term: number; votedFor: string | null }
}

export function compareViews(a: View, b: View): number {
  return a.term - b.term
}

export function majority(voterCount: number): number {
  return Math.floor(voterCount / 2) + 1
}

export class Election {
  private readonly opts: ElectionOptions
  private voters = new Set<string>()
  private view: View = { term: 0, records: 0 }
  term: number
  votedFor: string | null
  role: 'follower' | 'candidate' | 'leader' = 'follower'
  leader: string | null = null
  /** Leader: per voter, when we sent the lease it last acknowledged. */
  private acks = new Map<string, number>()
  /** Candidate: voters that granted us their vote in the current term. */
  private votes = new Set<string>()
  /** Pre-vote round: the term we would stand for, and who said they would vote for us. */
  private preTerm = 0
  private preVotes = new Set<string>()
  /** Leader: when we won; the first lease acknowledgements have until `leaseMs` after it to arrive. */
  private wonAt = 0
  /** Voter: the leader or candidate we promised not to undermine, and until when. */
  private promisedTo: string | null = null
  private promiseUntil = 0
  private electionDeadline: number
  private nextHeartbeat = 0
  /** A voter refused us for a stale view: do not stand again before this (let the others win). */
  private standDownUntil = 0

  constructor(opts: ElectionOptions, now: number, random: () => number) {
    this.opts = opts
    this.term = opts.persisted?.term ?? 0
    this.votedFor = opts.persisted?.votedFor ?? null
    this.electionDeadline = now + this.timeout(random)
  }

  /** The members whose votes count (ourselves included if we are a voter). */
  setVoters(voters: Iterable<string>): void {
    this.voters = new Set(voters)
    if (this.opts.voter) this.voters.add(this.opts.self)
  }

  setView(view: View): void {
    this.view = view
  }

  /** Skips the randomised wait: an agent that knows it is alone (no cluster) stands at once. */
  standNow(now: number, random: () => number): ElectionAction[] {
    this.electionDeadline = now
    return this.tick(now, random)
  }

  /** True while we lead and a majority acknowledged our lease within `leaseMs`. */
  isLeaseHeld(now: number): boolean {
    return this.role === 'leader' && this.liveAcks(now) >= majority(this.voters.size)
  }

  tick(now: number, random: () => number): ElectionAction[] {
    if (this.role === 'leader') {
      if (!this.isLeaseHeld(now) && now - this.wonAt >= this.opts.leaseMs) return this.stepDown(now, random)
      if (now < this.nextHeartbeat) return []
      return [this.renewLease(now)]
    }
    if (now < this.electionDeadline) return []
    const actions: ElectionAction[] = []
    if (this.leader !== null) {
      this.leader = null
      actions.push({ type: 'leader', term: this.term, leader: null })
    }
    this.electionDeadline = now + this.timeout(random)
    if (!this.opts.candidate || now < this.standDownUntil) return actions
    return actions.concat(this.preVote(now))
  }

  /** Asks whether a majority would vote for us in the next term, without changing any state. */
  private preVote(now: number): ElectionAction[] {
    this.preTerm = this.term + 1
    this.preVotes = new Set(this.opts.voter ? [this.opts.self] : [])
    const actions: ElectionAction[] = [{
      type: 'broadcast',
      message: { type: 'vote-request', term: this.preTerm, candidate: this.opts.self, view: this.view, priority: this.opts.priority, pre: true }
    }]
    return actions.concat(this.maybeStand(now))
  }

  private maybeStand(now: number): ElectionAction[] {
    if (this.preTerm !== this.term + 1 || this.role === 'leader') return []
    if ([...this.preVotes].filter((v) => this.voters.has(v)).length < majority(this.voters.size)) return []
    this.preTerm = 0
    return this.campaign(now)
  }

  receive(from: string, message: ElectionMessage, now: number, random: () => number): ElectionAction[] {
    switch (message.type) {
      case 'vote-request':
        return from === message.candidate ? this.onVoteRequest(message, now, random) : []
      case 'vote':
        return from === message.voter ? this.onVote(message, now) : []
      case 'lease':
        return from === message.leader ? this.onLease(message, now, random) : []
      case 'lease-ack':
        return from === message.voter ? this.onLeaseAck(message, now) : []
    }
  }

  private campaign(now: number): ElectionAction[] {
    this.term += 1
    this.role = 'candidate'
    this.leader = null
    this.acks = new Map()
    this.votes = new Set(this.opts.voter ? [this.opts.self] : [])
    this.votedFor = this.opts.voter ? this.opts.self : null
    const actions: ElectionAction[] = [{ type: 'persist', term: this.term, votedFor: this.votedFor }]
    actions.push({
      type: 'broadcast',
      message: { type: 'vote-request', term: this.term, candidate: this.opts.self, view: this.view, priority: this.opts.priority, pre: false }
    })
    return actions.concat(this.maybeWin(now))
  }

  private onVoteRequest(req: Extract<ElectionMessage, { type: 'vote-request' }>, now: number, random: () => number): ElectionAction[] {
    if (!this.opts.voter) return []
    const actions: ElectionAction[] = []
    // A live lease is a promise to its leader: no vote for anyone else until it runs out. (A vote
    // binds nothing: a candidate that loses must not keep its voters from the next one.)
    // A leader holding its lease is bound to itself (etcd raft's leader lease does the same): a
    // member rejoining before it heard the first renewal must not unseat it.
    const bound = (this.promisedTo !== null && this.promisedTo !== req.candidate && now < this.promiseUntil) ||
      (this.role === 'leader' && this.isLeaseHeld(now))
    if (req.pre) {
      // Would we vote for it in that term? Answered without changing anything.
      const would = !bound && req.term > this.term && compareViews(req.view, this.view) >= 0
      // A refusal carries our own term, so a candidate that is behind catches up (etcd raft does the same).
      return [{ type: 'send', to: req.candidate, message: { type: 'vote', term: would ? req.term : this.term, voter: this.opts.self, granted: would, view: this.view, pre: true } }]
    }
    if (req.term > this.term && !bound) actions.push(...this.adoptTerm(req.term))
    const granted =
      !bound &&
      req.term === this.term &&
      (this.votedFor === null || this.votedFor === req.candidate) &&
      compareViews(req.view, this.view) >= 0
    if (granted && this.votedFor !== req.candidate) {
      this.votedFor = req.candidate
      actions.push({ type: 'persist', term: this.term, votedFor: this.votedFor })
    }
    // Raft: granting a vote restarts the election timer, so that a voter does not stand itself the
    // moment after it voted, before the candidate it voted for could announce its win.
    if (granted) this.electionDeadline = now + this.timeout(random)
    actions.push({ type: 'send', to: req.candidate, message: { type: 'vote', term: this.term, voter: this.opts.self, granted, view: this.view, pre: false } })
    return actions
  }

  private onVote(vote: Extract<ElectionMessage, { type: 'vote' }>, now: number): ElectionAction[] {
    if (vote.pre) {
      if (!vote.granted && compareViews(vote.view, this.view) > 0) this.standDownUntil = now + 2 * this.opts.electionTimeoutMs[1]
      if (!vote.granted && vote.term > this.term && this.role !== 'leader') return this.adoptTerm(vote.term)
      if (vote.term !== this.preTerm || !vote.granted || !this.voters.has(vote.voter)) return []
      this.preVotes.add(vote.voter)
      return this.maybeStand(now)
    }
    if (vote.term > this.term) return this.adoptTerm(vote.term)
    if (!vote.granted && compareViews(vote.view, this.view) > 0) {
      // Our view is stale: a candidate that standing first (priority) would keep refusing the
      // others' requests by voting for itself; step aside for a few election rounds.
      this.standDownUntil = now + 2 * this.opts.electionTimeoutMs[1]
    }
    if (this.role !== 'candidate' || vote.term !== this.term || !vote.granted || !this.voters.has(vote.voter)) return []
    this.votes.add(vote.voter)
    return this.maybeWin(now)
  }

  private maybeWin(now: number): ElectionAction[] {
    if (this.role !== 'candidate' || [...this.votes].filter((v) => this.voters.has(v)).length < majority(this.voters.size)) return []
    // Elected; the lease (what lets us decide) starts once a majority acknowledges it.
    this.role = 'leader'
    this.leader = this.opts.self
    this.wonAt = now
    return [{ type: 'leader', term: this.term, leader: this.opts.self }, this.renewLease(now)]
  }

  private renewLease(now: number): ElectionAction {
    this.nextHeartbeat = now + this.opts.heartbeatMs
    return { type: 'broadcast', message: { type: 'lease', term: this.term, leader: this.opts.self, at: now } }
  }

  private promise(to: string, now: number): void {
    this.promisedTo = to
    this.promiseUntil = now + this.opts.leaseMs
  }

  private onLease(lease: Extract<ElectionMessage, { type: 'lease' }>, now: number, random: () => number): ElectionAction[] {
    if (lease.term < this.term) {
      // We moved to a newer term (a campaign that failed) and can never follow this leader's: tell
      // it, so that it steps down and an election in a term we can take part in follows (etcd raft
      // answers a stale leader's heartbeat the same way). Without it we would stay leaderless.
      if (!this.opts.voter) return []
      return [{ type: 'send', to: lease.leader, message: { type: 'lease-ack', term: this.term, voter: this.opts.self, at: lease.at } }]
    }
    const actions: ElectionAction[] = []
    if (lease.term > this.term) actions.push(...this.adoptTerm(lease.term))
    if (this.role === 'leader' && lease.leader !== this.opts.self) return actions // impossible with one vote per term
    if (this.role === 'candidate') this.role = 'follower'
    if (this.leader !== lease.leader) {
      this.leader = lease.leader
      actions.push({ type: 'leader', term: this.term, leader: lease.leader })
    }
    this.promise(lease.leader, now)
    // Following a leader brings our view up to date: no more reason to step aside.
    this.standDownUntil = 0
    this.electionDeadline = now + this.timeout(random)
    if (this.opts.voter) {
      actions.push({ type: 'send', to: lease.leader, message: { type: 'lease-ack', term: this.term, voter: this.opts.self, at: lease.at } })
    }
    return actions
  }

  private onLeaseAck(ack: Extract<ElectionMessage, { type: 'lease-ack' }>, now: number): ElectionAction[] {
    if (ack.term > this.term) return this.adoptTerm(ack.term)
    const previous = this.acks.get(ack.voter) ?? -Infinity
    if (this.role === 'leader' && ack.term === this.term && this.voters.has(ack.voter) && ack.at <= now) {
      this.acks.set(ack.voter, Math.max(previous, ack.at))
    }
    return []
  }

  /**
   * A leader of `term` asked for our records (Raft: any request of a higher term moves us to it), so
   * we no longer take part in older terms, whose notices we then refuse.
   */
  observeTerm(term: number): ElectionAction[] {
    return term > this.term ? this.adoptTerm(term) : []
  }

  /** A higher term was seen: follow it, forgetting any vote and leadership of the old one. */
  private adoptTerm(term: number): ElectionAction[] {
    const wasLeading = this.leader !== null
    this.term = term
    this.votedFor = null
    this.role = 'follower'
    this.leader = null
    this.acks = new Map()
    const actions: ElectionAction[] = [{ type: 'persist', term, votedFor: null }]
    if (wasLeading) actions.push({ type: 'leader', term, leader: null })
    return actions
  }

  private stepDown(now: number, random: () => number): ElectionAction[] {
    this.role = 'follower'
    this.leader = null
    this.acks = new Map()
    this.electionDeadline = now + this.timeout(random)
    return [{ type: 'leader', term: this.term, leader: null }]
  }

  /** Voters bound to us right now; a voting leader or candidate always counts itself. */
  private liveAcks(now: number): number {
    const horizon = this.opts.leaseMs - this.opts.clockDriftMs
    let live = this.opts.voter ? 1 : 0
    for (const [voter, at] of this.acks) if (voter !== this.opts.self && this.voters.has(voter) && now - at < horizon) live++
    return live
  }

  private timeout(random: () => number): number {
    const [min, max] = this.opts.electionTimeoutMs
    // Priority shortens the wait so that preferred candidates usually stand first.
    const spread = (max - min) / (1 + Math.max(0, this.opts.priority))
    return min + Math.floor(random() * spread)
  }
}

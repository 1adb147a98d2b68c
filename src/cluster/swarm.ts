// The cluster transport (DESIGN.md, "Cluster protocol"): Hyperswarm on the secret-derived topic, a
// secret proof bound to each Noise session, then one protomux channel of signed envelopes.
//
// Connection lifecycle:
//   1. Hyperswarm's firewall refuses keys outside `members` and keys we banned, before the Noise
//      handshake completes.
//   2. Both sides open the "highwire/v1" channel with their proof as the channel handshake. A peer
//      whose proof is wrong is disconnected, banned and reported; one whose proof does not come
//      within proofTimeoutMs is disconnected and reported.
//   3. Once the remote proof checks, the socket is offered to 'connection' listeners (the audit log
//      replicates its cores over the same muxer) and we send our hello.
//   4. Every frame then goes through the InboundGate (rate, shape, sender, signature, skew, replay);
//      the first message must be the peer's hello. Any failure disconnects and bans the peer.
//
// Sending: messages are queued per peer and sent together, what was queued for a peer as one
// envelope (a batch when there are several, messages.ts), so that under load one signature and one
// verification cover many decisions, notices or acks. An idle agent sends as soon as the code that
// queued a message is done (a microtask); a busy one (its last send was a batch) waits for the rest
// of the event loop's turn, to batch what that turn's I/O brings too.
//
// hyperdht is pinned at 6.32.0. In 6.33.0-6.34.0 the client's LAN shortcut races the holepuncher
// (holepunchto/hyperdht#304): between two agents on one host or behind one NAT, the dialler sees its
// connection open while the other side has already dropped it. Each such half-open connection held
// a pair apart until the proof timeout closed it: after a restart, every pair talked again after
// 5.7-12.3 s in 5 runs (on 6.32.0: 2.6 s median, 3.1 s max in 9), and a leader killed a second
// after a follower's restart took 5.6 s median, 6.2 s max to replace (on 6.32.0: 3.1 s, 3.3 s;
// bench/failover.bench.ts). What 6.32.0 lacks is 6.33's fallback (holepunchto/hyperdht#259): two
// agents behind one NAT whose hosts refuse each other's UDP on the LAN cannot connect.
import { EventEmitter } from 'node:events'
import Hyperswarm, { type NoiseSocket, type PeerDiscoverySession, type PeerInfo } from 'hyperswarm'
import DHT, { type BootstrapNode } from 'hyperdht'
import Protomux, { type Channel, type Message as MuxMessage } from 'protomux'
import c from 'compact-encoding'
import { deriveAuthKey, deriveTopic, secretProof, verifySecretProof } from './auth.ts'
import { batchMessages, encodeEnvelope, outgoingMessage, type AgentKeyPair, type Envelope, type OutgoingMessage } from './envelope.ts'
import { PeerError, type PeerErrorCode } from './errors.ts'
import { BanList, DEFAULT_RATE_LIMITS, InboundGate, ReportLimiter, type RateLimits } from './guard.ts'
import { loadOrCreateAgentKeyPair } from './keys.ts'
import { PROTOCOL_VERSION, type Hello, type Message, type WireMessage } from './messages.ts'
import { PeerTable, type PeerStatus } from './peers.ts'
import { SequenceAllocator } from './sequence.ts'

/** Protomux protocol name of the cluster channel; the version is the envelope protocol's. */
export const CHANNEL_PROTOCOL = 'highwire/v1'

export const DEFAULT_PROOF_TIMEOUT_MS = 5_000
export const DEFAULT_BAN_MS = 10 * 60_000
export const DEFAULT_MAX_CLOCK_SKEW_MS = 5 * 60_000
export const DEFAULT_PING_INTERVAL_MS = 1_000
/** At most this many reject reports per minute; the rest are counted in the next report. */
const MAX_REJECT_REPORTS = 20
const REJECT_REPORT_WINDOW_MS = 60_000
/**
 * Rejections that disconnect without a ban: a proof that never came is more likely a dying link
 * than an attack, and banning a member for it would keep it out of the next election.
 */
const UNBANNED: ReadonlySet<PeerErrorCode> = new Set(['proof_timeout'])

/** What this agent says about itself in its hello (the agent key and version are filled in). */
export type LocalHello = Pick<Hello, 'role' | 'priority' | 'muxKey' | 'nodes' | 'auditCore'>

export interface ClusterSwarmOptions {
  /** The cluster secret (≥ 32 random bytes). */
  secret: Uint8Array
  /** Directory holding the agent key pair and the envelope sequence mark. */
  storage: string
  hello: LocalHello
  /** DHT bootstrap nodes of a private DHT; the public one when absent. */
  bootstrap?: Array<BootstrapNode | string>
  /** Address the DHT node binds (tests: 127.0.0.1). */
  host?: string
  /** Allow-list of agent public keys; anyone with the secret when absent. */
  members?: Uint8Array[]
  now?: () => number
  proofTimeoutMs?: number
  banMs?: number
  maxClockSkewMs?: number
  limits?: RateLimits
  pingIntervalMs?: number
}

export interface RejectEvent {
  /** Remote agent key, hex. */
  peer: string
  code: PeerErrorCode
  message: string
  /** Reports dropped by the rate limit since the previous one. */
  suppressed: number
}

export interface ClusterSwarm {
  /** A connection whose secret proof checked: attach replication to this socket's muxer. */
  on(event: 'connection', listener: (socket: NoiseSocket, peer: string) => void): this
  /** A peer's first hello. */
  on(event: 'peer', listener: (status: PeerStatus) => void): this
  /** Every accepted envelope except pings and pongs, hellos included. */
  on(event: 'message', listener: (envelope: Envelope, peer: string) => void): this
  on(event: 'reject', listener: (event: RejectEvent) => void): this
  /** The authenticated connection of a peer ended (and no newer one replaced it). */
  on(event: 'disconnect', listener: (peer: string) => void): this
}

const hex = (key: Uint8Array): string => Buffer.from(key).toString('hex')
const REDISCOVER_FIRST_MS = 1000
/**
 * A peer that answered none of this many pings in a row (nothing accepted from it since) is hung up
 * on: a killed agent's stream may otherwise look open until TCP gives up. Counted in pings, not in
 * milliseconds, so a clock that jumps (suspend, tests) does not cut healthy peers.
 */
const SILENT_PINGS = 4
const REDISCOVER_MAX_MS = 60_000

export class ClusterSwarm extends EventEmitter {
  readonly publicKey: Uint8Array
  private readonly keyPair: AgentKeyPair
  readonly peers = new PeerTable()
  private readonly swarm: Hyperswarm
  private readonly authKey: Uint8Array
  private readonly topic: Uint8Array
  private readonly members: Set<string> | null
  private readonly bans = new BanList()
  private readonly reports = new ReportLimiter(MAX_REJECT_REPORTS, REJECT_REPORT_WINDOW_MS)
  /** Last sequence number accepted per sender, across all of its connections. */
  private readonly lastSeq = new Map<string, number>()
  private readonly connections = new Map<string, Connection>()
  /** Messages queued since the last flush, per connection, in the order they were sent. */
  private readonly outbox = new Map<Connection, OutgoingMessage[]>()
  /** How many messages the last flush sent: more than one means busy (see "Sending" above). */
  private lastFlushCount = 0
  private readonly timer: NodeJS.Timeout
  private discovery: PeerDiscoverySession | null = null
  /**
   * Hyperswarm looks the topic up again only every few minutes, so two agents that joined while
   * each other's announcement was still propagating would stay apart. Look again on a doubling
   * schedule (1 s … 60 s), restarted whenever a peer leaves.
   */
  private rediscoverMs = REDISCOVER_FIRST_MS
  private nextRediscover = 0
  private hello: LocalHello
  private readonly seq: SequenceAllocator
  private closing = false
  private readonly now: () => number
  private readonly options: Required<Pick<ClusterSwarmOptions, 'proofTimeoutMs' | 'banMs' | 'maxClockSkewMs' | 'limits'>>

  private constructor(opts: ClusterSwarmOptions, keyPair: AgentKeyPair, seq: SequenceAllocator) {
    super()
    this.keyPair = keyPair
    this.publicKey = keyPair.publicKey
    this.now = opts.now ?? Date.now
    this.topic = deriveTopic(opts.secret)
    this.authKey = deriveAuthKey(opts.secret)
    this.members = opts.members ? new Set(opts.members.map(hex)) : null
    this.hello = opts.hello
    this.seq = seq
    this.options = {
      proofTimeoutMs: opts.proofTimeoutMs ?? DEFAULT_PROOF_TIMEOUT_MS,
      banMs: opts.banMs ?? DEFAULT_BAN_MS,
      maxClockSkewMs: opts.maxClockSkewMs ?? DEFAULT_MAX_CLOCK_SKEW_MS,
      limits: opts.limits ?? DEFAULT_RATE_LIMITS
    }
    const dht = new DHT({ bootstrap: opts.bootstrap, host: opts.host })
    this.swarm = new Hyperswarm({ keyPair, dht, firewall: (key) => this.firewall(key) })
    this.swarm.on('connection', (socket, info) => this.onConnection(socket, info))
    this.timer = setInterval(() => this.tick(), opts.pingIntervalMs ?? DEFAULT_PING_INTERVAL_MS)
    this.timer.unref()
  }

  /** Loads (or creates) the agent key pair under `storage`, listens, and joins the cluster topic. */
  static async open(opts: ClusterSwarmOptions): Promise<ClusterSwarm> {
    const keyPair = await loadOrCreateAgentKeyPair(opts.storage)
    const swarm = new ClusterSwarm(opts, keyPair, SequenceAllocator.open(opts.storage))
    try {
      await swarm.swarm.listen()
    } catch (err) {
      await swarm.close()
      throw err
    }
    swarm.discovery = swarm.swarm.join(swarm.topic, { server: true, client: true })
    swarm.nextRediscover = swarm.now() + swarm.rediscoverMs
    return swarm
  }

  /** Resolves once the topic is announced and the peers found so far have been dialled. */
  async flush(): Promise<void> {
    await this.swarm.flush()
  }

  /** Dials an agent directly by its key (it still has to prove the secret). */
  joinPeer(publicKey: Uint8Array): void {
    this.swarm.joinPeer(publicKey)
  }

  /** Replaces our hello (nodes or capacities changed) and sends it to every connected peer. */
  updateHello(hello: LocalHello): void {
    this.hello = hello
    this.broadcast(this.host.hello())
  }

  /**
   * Queues `message` for one authenticated peer (sent, signed, when this turn ends); false if it is
   * not connected. Throws RangeError at once for a malformed or oversized message.
   * Frames are queued without backpressure: callers bound what they send (one offer per HTLC).
   */
  send(peer: string, message: Message): boolean {
    const conn = this.connections.get(peer)
    if (conn === undefined || !conn.isOpen()) return false
    this.enqueue(conn, outgoingMessage(message))
    return true
  }

  /** Queues `message` for every authenticated peer; returns how many. */
  broadcast(message: Message): number {
    const open = [...this.connections.values()].filter((conn) => conn.isOpen())
    if (open.length === 0) return 0
    const queued = outgoingMessage(message)
    for (const conn of open) this.enqueue(conn, queued)
    return open.length
  }

  private enqueue(conn: Connection, queued: OutgoingMessage): void {
    const messages = this.outbox.get(conn)
    if (messages !== undefined) return void messages.push(queued)
    if (this.outbox.size === 0) {
      const later = this.lastFlushCount > 1 ? setImmediate : queueMicrotask
      later(() => this.flushOutbox())
    }
    this.outbox.set(conn, [queued])
  }

  /**
   * Sends what was queued: per peer, its messages in order, batched. A message that goes alone to
   * several peers (a broadcast) is signed once, as one envelope for all of them.
   */
  private flushOutbox(): void {
    const outbox = [...this.outbox]
    this.outbox.clear()
    this.lastFlushCount = 0
    if (this.closing) return
    const sealed = new Map<WireMessage, Uint8Array>()
    for (const [conn, queued] of outbox) {
      this.lastFlushCount += queued.length
      for (const message of batchMessages(queued)) {
        let bytes = sealed.get(message)
        if (bytes === undefined) sealed.set(message, (bytes = this.seal(message)))
        conn.sendBytes(bytes)
      }
    }
  }

  /** Envelope for one send: a fresh sequence number and our clock. */
  private seal(message: WireMessage): Uint8Array {
    return encodeEnvelope(this.keyPair, this.seq.next(), this.now(), message)
  }

  isBanned(peer: string): boolean {
    return this.bans.isBanned(peer, this.now())
  }

  async close(): Promise<void> {
    if (this.closing) return
    this.closing = true
    clearInterval(this.timer)
    for (const socket of this.swarm.connections) socket.destroy()
    await this.swarm.destroy()
  }

  private report(peer: string, err: PeerError): void {
    const suppressed = this.reports.admit(this.now())
    if (suppressed === null) return
    const event: RejectEvent = { peer, code: err.code, message: err.message, suppressed }
    this.emit('reject', event)
  }

  private firewall(remotePublicKey: Uint8Array): boolean {
    const peer = hex(remotePublicKey)
    if (this.members !== null && !this.members.has(peer)) {
      // Hyperswarm bans a firewalled key for the life of the swarm, so this is reported once.
      this.report(peer, new PeerError('not_member', 'agent key is not in cluster.members'))
      return true
    }
    return this.bans.isBanned(peer, this.now())
  }

  private onConnection(socket: NoiseSocket, info: PeerInfo): void {
    socket.on('error', () => {}) // disconnects surface as errors; 'close' does the bookkeeping
    if (this.closing) socket.destroy()
    else Connection.attach(this.host, socket, info.client)
  }

  /** What a Connection may use of the swarm. */
  private readonly host: ConnectionHost = {
    now: () => this.now(),
    proofTimeoutMs: () => this.options.proofTimeoutMs,
    peers: this.peers,
    seal: (message) => this.seal(message),
    hello: () => ({ type: 'hello', agent: this.publicKey, protocolVersion: PROTOCOL_VERSION, ...this.hello }),
    proofFor: (socket) => secretProof(this.authKey, socket.handshakeHash, this.publicKey),
    proofChecks: (socket, proof) => verifySecretProof(this.authKey, socket.handshakeHash, socket.remotePublicKey, proof),
    newGate: (peer) => new InboundGate(peer, this.lastSeq, this.options, this.now()),
    checkHello: (hello) => this.checkHello(hello),
    authenticated: (conn, socket) => {
      this.connections.set(conn.peer, conn)
      this.emit('connection', socket, conn.peer)
    },
    helloReceived: (status) => this.emit('peer', status),
    message: (envelope, peer) => {
      // A listener's bug must not become the peer's fault, nor escape into protomux.
      try {
        this.emit('message', envelope, peer)
      } catch (err) {
        process.emitWarning(`highwire: a cluster message handler failed: ${(err as Error).stack ?? String(err)}`)
      }
    },
    reject: (peer, err, socket) => {
      // Disconnect and ban a misbehaving peer, and say why (rate-limited).
      if (!UNBANNED.has(err.code)) {
        // Strangers can make a fresh key per attempt: the list is capped, the oldest ban goes first.
        const evicted = this.bans.ban(peer, this.now() + this.options.banMs)
        if (evicted !== null) this.swarm.peers.get(evicted)?.ban(false)
      }
      socket.destroy()
      this.report(peer, err)
    },
    closed: (conn) => {
      // Hyperswarm may replace a connection with a newer one; only the current one's end counts.
      if (this.connections.get(conn.peer) !== conn) return
      this.connections.delete(conn.peer)
      this.rediscoverMs = REDISCOVER_FIRST_MS
      this.nextRediscover = this.now() + this.rediscoverMs
      this.emit('disconnect', conn.peer)
    }
  }

  /** Hello checks beyond the envelope's (which made sure hello.agent is the sender). */
  private checkHello(hello: Hello): void {
    if (hello.protocolVersion !== PROTOCOL_VERSION) {
      throw new PeerError('protocol_version', `peer speaks protocol ${hello.protocolVersion}, we speak ${PROTOCOL_VERSION}`)
    }
    const ours = this.hello.muxKey
    if (ours !== null && hello.muxKey !== null && hex(ours) !== hex(hello.muxKey)) {
      throw new PeerError('mux_key_mismatch', `peer expects virtual node ${hex(hello.muxKey)}, we expect ${hex(ours)}`)
    }
  }

  /** Pings every peer (RTT, liveness) and lifts expired bans, including Hyperswarm's own. */
  private tick(): void {
    const now = this.now()
    for (const peer of this.bans.expire(now)) this.swarm.peers.get(peer)?.ban(false)
    for (const conn of this.connections.values()) {
      if (conn.unanswered >= SILENT_PINGS) conn.hangUp()
      else conn.ping()
    }
    if (now >= this.nextRediscover && this.discovery !== null && !this.closing) {
      this.rediscoverMs = Math.min(this.rediscoverMs * 2, REDISCOVER_MAX_MS)
      this.nextRediscover = now + this.rediscoverMs
      this.discovery.refresh({ server: true, client: true }).catch(() => {})
    }
  }
}

interface ConnectionHost {
  now(): number
  proofTimeoutMs(): number
  peers: PeerTable
  seal(message: Message): Uint8Array
  hello(): Hello
  proofFor(socket: NoiseSocket): Uint8Array
  proofChecks(socket: NoiseSocket, proof: Uint8Array): boolean
  newGate(peer: string): InboundGate
  checkHello(hello: Hello): void
  authenticated(conn: Connection, socket: NoiseSocket): void
  helloReceived(status: PeerStatus): void
  message(envelope: Envelope, peer: string): void
  reject(peer: string, err: PeerError, socket: NoiseSocket): void
  closed(conn: Connection): void
}

/** One Noise connection: proof, then the envelope stream of one peer. */
class Connection {
  readonly peer: string
  private readonly status: PeerStatus
  private readonly gate: InboundGate
  private channel: Channel | null = null
  private frames: MuxMessage<Uint8Array> | null = null
  private proofTimer: NodeJS.Timeout | null = null
  private authenticated = false
  private pingNonce = 0
  private pingSentAt: number | null = null

  private constructor(
    private readonly host: ConnectionHost,
    private readonly socket: NoiseSocket,
    initiator: boolean
  ) {
    this.peer = hex(socket.remotePublicKey)
    this.status = host.peers.connected(this.peer, initiator, host.now())
    this.gate = host.newGate(this.peer)
    socket.on('close', () => this.onClose())
  }

  static attach(host: ConnectionHost, socket: NoiseSocket, initiator: boolean): void {
    const conn = new Connection(host, socket, initiator)
    const channel = Protomux.from(socket).createChannel<Uint8Array>({
      protocol: CHANNEL_PROTOCOL,
      handshake: c.raw,
      onopen: (proof) => conn.onProof(proof),
      onclose: () => {
        // A peer that closes the channel before proving the secret is reported like a bad proof.
        if (!conn.authenticated) conn.fail(new PeerError('bad_proof', 'cluster channel closed before a proof'))
        socket.destroy()
      }
    })
    // null: the stream is already closing.
    if (channel === null) return void socket.destroy()
    conn.channel = channel
    conn.frames = channel.addMessage({ encoding: c.raw, onmessage: (data) => conn.onFrame(data) })
    conn.proofTimer = setTimeout(
      () => conn.fail(new PeerError('proof_timeout', 'no secret proof in time')),
      host.proofTimeoutMs()
    )
    channel.open(host.proofFor(socket))
  }

  /** True while the channel is open to an authenticated peer. */
  isOpen(): boolean {
    return this.authenticated && this.channel !== null && this.frames !== null && !this.channel.closed
  }

  /** Queues one envelope; false when the channel is not (or no longer) open to an authenticated peer. */
  sendBytes(bytes: Uint8Array): boolean {
    if (!this.isOpen()) return false
    // send() answers whether the stream is drained, not whether the frame was queued: it was.
    this.frames!.send(bytes)
    return true
  }

  /** Pings sent since anything was last accepted from this peer. */
  unanswered = 0

  hangUp(): void {
    this.socket.destroy()
  }

  ping(): void {
    this.unanswered++
    this.pingSentAt = this.host.now()
    this.pingNonce = (this.pingNonce + 1) >>> 0
    this.sendBytes(this.host.seal({ type: 'ping', nonce: this.pingNonce }))
  }

  private onProof(proof: Uint8Array): void {
    if (this.proofTimer !== null) clearTimeout(this.proofTimer)
    if (!this.host.proofChecks(this.socket, proof)) {
      this.fail(new PeerError('bad_proof', 'secret proof does not check'))
      return
    }
    this.authenticated = true
    this.host.authenticated(this, this.socket)
    this.sendBytes(this.host.seal(this.host.hello()))
  }

  private onFrame(data: Uint8Array): void {
    if (this.socket.destroyed) return
    try {
      if (!this.authenticated) throw new PeerError('bad_proof', 'message before a valid proof')
      const now = this.host.now()
      const delivered = this.gate.check(data, now)
      this.status.lastSeen = now
      this.unanswered = 0
      for (const envelope of delivered) this.handle(envelope)
    } catch (err) {
      if (!(err instanceof PeerError)) throw err
      this.fail(err)
    }
  }

  private handle(envelope: Envelope): void {
    const { message } = envelope
    if (message.type === 'hello') {
      this.host.checkHello(message)
      const first = this.status.hello === null
      this.status.hello = message
      if (first) this.host.helloReceived(this.status)
    } else if (this.status.hello === null) {
      // Our side sends its hello before anything else, so an honest peer does too.
      throw new PeerError('hello_expected', `${message.type} before hello`)
    }
    if (message.type === 'ping') {
      this.sendBytes(this.host.seal({ type: 'pong', nonce: message.nonce }))
    } else if (message.type === 'pong') {
      if (this.pingSentAt !== null && message.nonce === this.pingNonce) {
        this.status.rttMs = this.host.now() - this.pingSentAt
        this.pingSentAt = null
      }
    } else {
      this.host.message(envelope, this.peer)
    }
  }

  private fail(err: PeerError): void {
    if (!this.socket.destroyed) this.host.reject(this.peer, err, this.socket)
  }

  private onClose(): void {
    if (this.proofTimer !== null) clearTimeout(this.proofTimer)
    this.host.peers.disconnected(this.status)
    if (this.authenticated) this.host.closed(this)
  }
}

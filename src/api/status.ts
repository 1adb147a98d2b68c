// The cluster-status RPC (proto/highwire/cluster.proto, `highwire.Cluster`), served beside
// lnmux.Service on the API listener, and its client for `node src status`. The answer is one
// agent's view: its election standing, every member it knows (connected peers from the swarm's
// peer table, voters remembered from earlier runs) with the nodes their hellos announced, and its
// own LND nodes probed live. Nothing here changes state.
import { fileURLToPath } from 'node:url'
import * as grpc from '@grpc/grpc-js'
import * as protoLoader from '@grpc/proto-loader'
import type { Agent } from '../agent/runtime.ts'
import type { Role } from '../cluster/messages.ts'
import type { PeerStatus } from '../cluster/peers.ts'
import { agentRole } from '../config/schema.ts'
import type { Logger } from '../log.ts'
import { CodedError } from '../errors.ts'

export const HIGHWIRE_PROTO_DIR = fileURLToPath(new URL('../../proto/highwire/', import.meta.url))
export const CLUSTER_PROTO_FILE = 'cluster.proto'

/** How long GetStatus waits for each own LND node's GetInfo before calling it unreachable. */
export const LND_PROBE_MS = 2000

/** The client's deadline for GetStatus: the LND probes plus slack. */
export const STATUS_DEADLINE_MS = LND_PROBE_MS + 3000

// Same loader options as the lnmux API (src/api/proto.ts): snake_case, 64-bit as decimal strings.
const LOADER_OPTIONS: protoLoader.Options = { keepCase: true, longs: String, enums: String, defaults: true, oneofs: true, includeDirs: [HIGHWIRE_PROTO_DIR] }
const root = grpc.loadPackageDefinition(protoLoader.loadSync(CLUSTER_PROTO_FILE, LOADER_OPTIONS))
const ctor = (root.highwire as grpc.GrpcObject | undefined)?.Cluster
if (typeof ctor !== 'function') throw new Error(`highwire proto: service highwire.Cluster not found in ${HIGHWIRE_PROTO_DIR}`)

/** Client constructor; its `.service` is what `server.addService` takes. */
export const ClusterService = ctor as grpc.ServiceClientConstructor

export type StatusRole = Role | 'unknown'
export type Standing = 'follower' | 'electing' | 'leader'

export interface StatusNode {
  pubkey: Uint8Array
  alias: string
  virtualScid: bigint
  inboundMsat: bigint
}

export interface StatusMember {
  agent: Uint8Array
  role: StatusRole
  self: boolean
  voter: boolean
  leader: boolean
  connected: boolean
  initiator: boolean
  connectedAtMs: number
  lastSeenMs: number
  rttMs: number | null
  priority: number
  nodes: StatusNode[]
}

export interface StatusLnd {
  name: string
  pubkey: Uint8Array
  host: string
  reachable: boolean
  blockHeight: number
  syncedToChain: boolean
  error: string
}

export interface ClusterStatus {
  agent: Uint8Array
  role: Role
  standing: Standing
  term: number
  leader: Uint8Array | null
  serving: boolean
  knownRecords: number
  muxPubkey: Uint8Array | null
  blockHeight: number
  software: string
  timeMs: number
  members: StatusMember[]
  lnd: StatusLnd[]
}

// --- the agent's side: what the runtime exposes, read into a ClusterStatus ---

/** One own LND node as the runtime holds it (src/agent/node-link.ts). */
export interface StatusLink {
  name: string
  pubkey: string
  alias: string
  virtualScid: bigint
  host: string
  height: number
  getInfo(): Promise<{ blockHeight: number; syncedToChain: boolean }>
  inboundMsat(): Promise<bigint>
}

/** The parts of a running agent (src/agent/runtime.ts) the status is read from. */
export interface StatusSource {
  id: string
  role: Role
  software: string
  member: {
    election: { role: 'follower' | 'candidate' | 'leader' }
    term: number
    leader: string | null
    isServing(): boolean
    knownRecords(): number
    voterIds(): ReadonlySet<string>
  }
  priority: number
  peers: PeerStatus[]
  links: StatusLink[]
  muxPubkey: Uint8Array | null
}

const STANDING: Record<StatusSource['member']['election']['role'], Standing> = { follower: 'follower', candidate: 'electing', leader: 'leader' }

const bytes = (h: string): Uint8Array => new Uint8Array(Buffer.from(h, 'hex'))

/** Rejects after `ms` if `promise` has not settled: a hung lnd must not hang the status call. */
function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not answer within ${ms} ms`)), ms)
  })
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer))
}

interface LinkProbe {
  lnd: StatusLnd
  node: StatusNode
}

async function probeLink(link: StatusLink, probeMs: number): Promise<LinkProbe> {
  const node: StatusNode = { pubkey: bytes(link.pubkey), alias: link.alias, virtualScid: link.virtualScid, inboundMsat: 0n }
  const lnd: StatusLnd = { name: link.name, pubkey: node.pubkey, host: link.host, reachable: false, blockHeight: link.height, syncedToChain: false, error: '' }
  try {
    const [info, inbound] = await within(Promise.all([link.getInfo(), link.inboundMsat()]), probeMs, `lnd ${link.name}`)
    return { node: { ...node, inboundMsat: inbound }, lnd: { ...lnd, reachable: true, blockHeight: info.blockHeight, syncedToChain: info.syncedToChain } }
  } catch (err) {
    return { node, lnd: { ...lnd, error: err instanceof Error ? err.message : String(err) } }
  }
}

function peerMember(peer: PeerStatus, source: StatusSource): StatusMember {
  const hello = peer.hello
  return {
    agent: bytes(peer.key),
    role: hello?.role ?? 'unknown',
    self: false,
    voter: source.member.voterIds().has(peer.key),
    leader: source.member.leader === peer.key,
    connected: true,
    initiator: peer.initiator,
    connectedAtMs: peer.connectedAt,
    lastSeenMs: peer.lastSeen,
    rttMs: peer.rttMs,
    priority: hello?.priority ?? 0,
    nodes: (hello?.nodes ?? []).map((n) => ({ pubkey: n.pubkey, alias: n.alias, virtualScid: n.virtualScid, inboundMsat: n.inboundMsat }))
  }
}

/** A voter this agent remembers (it counts towards the majority) but is not connected to now. */
function absentVoter(key: string, source: StatusSource): StatusMember {
  return {
    agent: bytes(key),
    role: 'unknown',
    self: false,
    voter: true,
    leader: source.member.leader === key,
    connected: false,
    initiator: false,
    connectedAtMs: 0,
    lastSeenMs: 0,
    rttMs: null,
    priority: 0,
    nodes: []
  }
}

/**
 * The agent's view once its own LND nodes were probed (in parallel, each for at most `probeMs`): its
 * time is read after the probes, as the peers' last-seen times are, which messages may move meanwhile.
 */
export async function readStatus(source: StatusSource, clock: () => number, probeMs = LND_PROBE_MS): Promise<ClusterStatus> {
  const probes = await Promise.all(source.links.map((link) => probeLink(link, probeMs)))
  const nowMs = clock()
  const { member } = source
  const self: StatusMember = {
    agent: bytes(source.id),
    role: source.role,
    self: true,
    voter: member.voterIds().has(source.id),
    leader: member.leader === source.id,
    connected: true,
    initiator: false,
    connectedAtMs: 0,
    lastSeenMs: nowMs,
    rttMs: 0,
    priority: source.priority,
    nodes: probes.map((p) => p.node)
  }
  const peers = source.peers.map((p) => peerMember(p, source))
  const seen = new Set([source.id, ...source.peers.map((p) => p.key)])
  const absent = [...member.voterIds()].filter((key) => !seen.has(key)).sort().map((key) => absentVoter(key, source))
  return {
    agent: self.agent,
    role: source.role,
    standing: STANDING[member.election.role],
    term: member.term,
    leader: member.leader === null ? null : bytes(member.leader),
    serving: member.isServing(),
    knownRecords: member.knownRecords(),
    muxPubkey: source.muxPubkey,
    blockHeight: Math.max(0, ...probes.map((p) => p.lnd.blockHeight)),
    software: source.software,
    timeMs: nowMs,
    members: [self, ...peers.sort((a, b) => Buffer.compare(a.agent, b.agent)), ...absent],
    lnd: probes.map((p) => p.lnd)
  }
}

/** The running agent's view (the runtime's status() hook). */
export function readAgentStatus(agent: Agent, software: string, clock: () => number): Promise<ClusterStatus> {
  const hosts = new Map(agent.config.lnd.nodes.map((n) => [n.name, n.host]))
  return readStatus({
    id: agent.id,
    role: agentRole(agent.config),
    software,
    member: agent.member,
    priority: agent.config.mux.priority,
    peers: agent.swarm?.peers.list() ?? [],
    links: agent.nodes.map((link) => ({
      name: link.name,
      pubkey: link.pubkey,
      alias: link.alias,
      virtualScid: link.virtualScid,
      host: hosts.get(link.name) ?? '',
      height: link.height,
      getInfo: () => link.client.getInfo(),
      inboundMsat: () => link.refreshInbound(clock())
    })),
    muxPubkey: agent.muxPubkey()
  }, clock)
}

// --- the wire: ClusterStatus <-> highwire.ClusterStatus as proto-loader hands it over ---

const ROLE_WIRE: Record<StatusRole, string> = { unknown: 'ROLE_UNKNOWN', candidate: 'CANDIDATE', edge: 'EDGE', witness: 'WITNESS' }
const STANDING_WIRE: Record<Standing, string> = { follower: 'FOLLOWER', electing: 'ELECTING', leader: 'LEADER' }

const buf = (b: Uint8Array | null): Buffer => (b === null ? Buffer.alloc(0) : Buffer.from(b))

export function statusToWire(s: ClusterStatus): object {
  return {
    agent: buf(s.agent),
    role: ROLE_WIRE[s.role],
    standing: STANDING_WIRE[s.standing],
    term: String(s.term),
    leader: buf(s.leader),
    serving: s.serving,
    known_records: String(s.knownRecords),
    mux_pubkey: buf(s.muxPubkey),
    block_height: s.blockHeight,
    software: s.software,
    time_ms: String(s.timeMs),
    members: s.members.map((m) => ({
      agent: buf(m.agent),
      role: ROLE_WIRE[m.role],
      self: m.self,
      voter: m.voter,
      leader: m.leader,
      connected: m.connected,
      initiator: m.initiator,
      connected_at_ms: String(m.connectedAtMs),
      last_seen_ms: String(m.lastSeenMs),
      rtt_ms: String(m.rttMs ?? -1),
      priority: m.priority,
      nodes: m.nodes.map((n) => ({ pubkey: buf(n.pubkey), alias: n.alias, virtual_scid: n.virtualScid.toString(), inbound_msat: n.inboundMsat.toString() }))
    })),
    lnd: s.lnd.map((l) => ({
      name: l.name,
      pubkey: buf(l.pubkey),
      host: l.host,
      reachable: l.reachable,
      block_height: l.blockHeight,
      synced_to_chain: l.syncedToChain,
      error: l.error
    }))
  }
}

/** An answer that does not have the shape of highwire.ClusterStatus. */
export class StatusError extends CodedError<'bad_status' | 'unreachable'> {}

type Wire = Record<string, unknown>

function wireBytes(w: Wire, field: string, length: number): Uint8Array | null {
  const v = w[field]
  if (!Buffer.isBuffer(v)) throw new StatusError('bad_status', `${field} is not bytes`)
  if (v.length === 0) return null
  if (v.length !== length) throw new StatusError('bad_status', `${field} is ${v.length} bytes, expected ${length}`)
  return new Uint8Array(v)
}

function requiredBytes(w: Wire, field: string, length: number): Uint8Array {
  const v = wireBytes(w, field, length)
  if (v === null) throw new StatusError('bad_status', `${field} is empty`)
  return v
}

function wireU64(w: Wire, field: string): bigint {
  const v = w[field]
  if (typeof v !== 'string' || !/^-?\d{1,20}$/.test(v)) throw new StatusError('bad_status', `${field} is not an integer`)
  return BigInt(v)
}

function wireCount(w: Wire, field: string): number {
  const v = wireU64(w, field)
  if (v < -1n || v > BigInt(Number.MAX_SAFE_INTEGER)) throw new StatusError('bad_status', `${field} ${v} is out of range`)
  return Number(v)
}

function wireEnum<T extends string>(w: Wire, field: string, names: Record<T, string>): T {
  const found = (Object.keys(names) as T[]).find((k) => names[k] === w[field])
  if (found === undefined) throw new StatusError('bad_status', `${field} ${String(w[field])} is not known`)
  return found
}

function wireList(w: Wire, field: string): Wire[] {
  const v = w[field]
  if (!Array.isArray(v)) throw new StatusError('bad_status', `${field} is not a list`)
  return v as Wire[]
}

const AGENT_KEY_BYTES = 32
const NODE_KEY_BYTES = 33

export function statusFromWire(w: Wire): ClusterStatus {
  const role = wireEnum(w, 'role', ROLE_WIRE)
  if (role === 'unknown') throw new StatusError('bad_status', 'the answering agent has no role')
  return {
    agent: requiredBytes(w, 'agent', AGENT_KEY_BYTES),
    role,
    standing: wireEnum(w, 'standing', STANDING_WIRE),
    term: wireCount(w, 'term'),
    leader: wireBytes(w, 'leader', AGENT_KEY_BYTES),
    serving: w.serving === true,
    knownRecords: wireCount(w, 'known_records'),
    muxPubkey: wireBytes(w, 'mux_pubkey', NODE_KEY_BYTES),
    blockHeight: Number(w.block_height),
    software: String(w.software),
    timeMs: wireCount(w, 'time_ms'),
    members: wireList(w, 'members').map((m) => {
      const rtt = wireCount(m, 'rtt_ms')
      return {
        agent: requiredBytes(m, 'agent', AGENT_KEY_BYTES),
        role: wireEnum(m, 'role', ROLE_WIRE),
        self: m.self === true,
        voter: m.voter === true,
        leader: m.leader === true,
        connected: m.connected === true,
        initiator: m.initiator === true,
        connectedAtMs: wireCount(m, 'connected_at_ms'),
        lastSeenMs: wireCount(m, 'last_seen_ms'),
        rttMs: rtt < 0 ? null : rtt,
        priority: Number(m.priority),
        nodes: wireList(m, 'nodes').map((n) => ({
          pubkey: requiredBytes(n, 'pubkey', NODE_KEY_BYTES),
          alias: String(n.alias),
          virtualScid: wireU64(n, 'virtual_scid'),
          inboundMsat: wireU64(n, 'inbound_msat')
        }))
      }
    }),
    lnd: wireList(w, 'lnd').map((l) => ({
      name: String(l.name),
      pubkey: requiredBytes(l, 'pubkey', NODE_KEY_BYTES),
      host: String(l.host),
      reachable: l.reachable === true,
      blockHeight: Number(l.block_height),
      syncedToChain: l.synced_to_chain === true,
      error: String(l.error)
    }))
  }
}

// --- serving and calling ---

/** The service and handlers ApiServer adds beside lnmux.Service. */
export function clusterStatusService(status: () => Promise<ClusterStatus>, log?: Logger): { service: grpc.ServiceDefinition; handlers: grpc.UntypedServiceImplementation } {
  const GetStatus: grpc.handleUnaryCall<unknown, unknown> = (_call, callback) => {
    status().then(
      (s) => callback(null, statusToWire(s)),
      (err: unknown) => {
        log?.error('status failed', { error: err instanceof Error ? err : String(err) })
        callback({ code: grpc.status.INTERNAL, details: 'internal error' })
      }
    )
  }
  return { service: ClusterService.service, handlers: { GetStatus } }
}

/** Asks the agent listening at `target` ("host:port") for its status. */
export function fetchStatus(target: string, credentials: grpc.ChannelCredentials, deadlineMs = STATUS_DEADLINE_MS): Promise<ClusterStatus> {
  const client = new ClusterService(target, credentials)
  return new Promise<ClusterStatus>((resolve, reject) => {
    const call = (client as unknown as { GetStatus: Function }).GetStatus
    call.call(client, {}, { deadline: Date.now() + deadlineMs }, (err: grpc.ServiceError | null, res: Wire) => {
      if (err) return reject(new StatusError('unreachable', `${target}: ${err.details || err.message}`))
      try {
        resolve(statusFromWire(res))
      } catch (e) {
        reject(e)
      }
    })
  }).finally(() => client.close())
}

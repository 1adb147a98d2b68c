// The cluster's message bodies, all in one place so the wire format has a single definition
// (DESIGN.md, "Cluster protocol: messages"). Each travels inside a signed envelope (envelope.ts)
// whose header carries the wire type id below; the logic that uses a message may live elsewhere
// (election, edge, api) but its bytes are defined here.
import c from 'compact-encoding'
import {
  array,
  bigU64,
  bool,
  bytes,
  enumeration,
  fixedBytes,
  optional,
  string,
  struct,
  u32,
  u64,
  uint,
  type Encoding
} from './codec.ts'
import { INTERCEPTOR_FAILURE_CODES, type InterceptorFailureCode } from '../lnd/circuits.ts'

/**
 * 2: batches (a new message type, which a version 1 agent would take for an attack). 3: a settle
 * decision may be sent before its record is committed (htlc-decision's uncommittedRecord).
 */
export const PROTOCOL_VERSION = 3

/** BOLT 4: the onion routing packet is 1366 bytes (version, ephemeral key, 1300 payload, HMAC). */
export const ONION_PACKET_BYTES = 1366
/** BOLT 7: node aliases are 32 bytes. */
export const MAX_ALIAS_BYTES = 32
/** More nodes than this per agent is a configuration we do not expect; it bounds a hello. */
export const MAX_NODES_PER_AGENT = 64
/** lnd's interceptor failure_message is the 292-byte BOLT 4 failure packet; leave room, cap it. */
export const MAX_FAILURE_MESSAGE_BYTES = 1024
/** Records travel in pages; MAX_ENVELOPE_BYTES bounds a page's total size. */
export const MAX_RECORDS_PER_REPLY = 256
export const MAX_RECORD_BYTES = 16 * 1024
/** Circuits per resolution-query (each 49 bytes on the wire). */
export const MAX_CIRCUITS_PER_QUERY = 256
export const MAX_API_METHOD_BYTES = 64
export const MAX_API_PAYLOAD_BYTES = 32 * 1024
export const MAX_API_STATUS_MESSAGE_BYTES = 256
/** At most this many messages in one batch (each counts against the sender's message rate). */
export const MAX_BATCH_MESSAGES = 1024

const key32 = fixedBytes(32)
const key33 = fixedBytes(33)

/**
 * An agent's main role (DESIGN.md, "Roles"): `candidate` if it holds the identity key, else `edge` if
 * it holds nodes, else `witness`. The rest follows from the hello: an agent with nodes is an edge for
 * each of them whatever its role, and the voters are the agents with nodes plus the witnesses.
 */
export type Role = 'candidate' | 'edge' | 'witness'
export const ROLES: readonly Role[] = ['candidate', 'edge', 'witness']

/** One LND node an agent holds, as advertised in its hello. */
export interface NodeInfo {
  /** 33-byte compressed node public key. */
  pubkey: Uint8Array
  alias: string
  /** The node's virtual short channel id (lnmux-compatible, DESIGN.md). */
  virtualScid: bigint
  /** Inbound capacity, for choosing route hints. */
  inboundMsat: bigint
}

/**
 * How recent an agent's knowledge is, compared (term, then records) like Raft's last log term and
 * index (election.ts, `View`): the highest term in which it saw a leader serve, and how many settle
 * and cancel records it holds.
 */
export interface RecordView {
  term: number
  records: number
}

/** An HTLC's identity on the node that holds it (lnd's CircuitKey plus the node). */
export interface Circuit {
  node: Uint8Array
  chanId: bigint
  htlcId: bigint
}

export type Resolution =
  | { kind: 'settle'; preimage: Uint8Array }
  /** A BOLT 4 failure message the edge hands to lnd as the interceptor's failure_message. */
  | { kind: 'fail'; message: Uint8Array }
  /** One of the four failure codes lnd's interceptor lets the real node originate. */
  | { kind: 'fail-code'; code: InterceptorFailureCode }

export interface Hello {
  type: 'hello'
  /** Must equal the envelope's sender. */
  agent: Uint8Array
  role: Role
  /** mux.priority: operators prefer candidates with a higher value. */
  priority: number
  protocolVersion: number
  /** The 33-byte virtual node key this agent expects (candidates: theirs), or none configured. */
  muxKey: Uint8Array | null
  nodes: NodeInfo[]
  /** The agent's audit Hypercore key, so others replicate it. */
  auditCore: Uint8Array
}

export interface Ping {
  type: 'ping'
  nonce: number
}

export interface Pong {
  type: 'pong'
  nonce: number
}

// Election messages mirror election.ts's ElectionMessage, with agent keys as bytes. A key naming
// the sender (voter, leader, candidate) must equal the envelope's `from` (see claimedSender).

export interface VoteRequest {
  type: 'vote-request'
  term: number
  candidate: Uint8Array
  view: RecordView
  /** mux.priority of the candidate. */
  priority: number
  /** A pre-vote (Raft PreVote): would you vote for me in `term`? Changes nothing at the voter. */
  pre: boolean
}

export interface Vote {
  type: 'vote'
  term: number
  voter: Uint8Array
  granted: boolean
  /** The voter's view, so that a candidate refused for a stale one steps aside. */
  view: RecordView
  /** An answer to a pre-vote. */
  pre: boolean
}

export interface Lease {
  type: 'lease'
  term: number
  leader: Uint8Array
  /** The leader's clock when it sent the lease, echoed by acknowledgements. */
  at: number
}

export interface LeaseAck {
  type: 'lease-ack'
  term: number
  voter: Uint8Array
  at: number
}

export interface HtlcOffer {
  type: 'htlc-offer'
  term: number
  circuit: Circuit
  paymentHash: Uint8Array
  incomingMsat: bigint
  outgoingMsat: bigint
  incomingExpiry: number
  outgoingExpiry: number
  outgoingRequestedChanId: bigint
  onion: Uint8Array
  autoFailHeight: number
  currentHeight: number
}

export interface HtlcDecision {
  type: 'htlc-decision'
  term: number
  circuit: Circuit
  resolution: Resolution
  /**
   * Set on a settle the leader sends as soon as it stored the settle record itself, before a
   * majority acknowledged it: the digest of that record, which the edge must store durably before
   * it applies the decision (its copy completes the majority). Null once the record is committed.
   */
  uncommittedRecord: Uint8Array | null
}

export interface HtlcResolved {
  type: 'htlc-resolved'
  term: number
  circuit: Circuit
  settled: boolean
}

/**
 * The leader asks the holder of a settled set's HTLCs how lnd finally resolved them (the holder
 * looks them up and answers each with htlc-resolved): a resolution reported to a leader that died
 * would otherwise never reach the next one, and the set would never be recorded as final.
 */
export interface ResolutionQuery {
  type: 'resolution-query'
  term: number
  circuits: Circuit[]
}

export interface RecordsRequest {
  type: 'records-request'
  term: number
  requestId: number
  /** Resume after this record index (0: from the start). */
  after: number
}

export interface RecordsReply {
  type: 'records-reply'
  term: number
  requestId: number
  /** Audit records exactly as stored (their schema belongs to src/audit). */
  records: Uint8Array[]
  done: boolean
}

/**
 * The leader's durable record (settle requested, cancelled, final) sent to every member, which
 * stores it and acknowledges: the leader releases preimages, or confirms a cancel, only once a
 * majority of voters holds the record, so that any later leader finds it while gathering.
 */
export interface RecordNotice {
  type: 'record-notice'
  term: number
  /** The mux record (src/mux/records.ts encoding). */
  record: Uint8Array
}

export interface RecordAck {
  type: 'record-ack'
  term: number
  /** SHA256 of the acknowledged record's bytes. */
  digest: Uint8Array
}

export interface ApiForward {
  type: 'api-forward'
  requestId: number
  /** lnmux.Service method name, e.g. "AddInvoice". */
  method: string
  /** The protobuf-encoded request. */
  payload: Uint8Array
}

export interface ApiReply {
  type: 'api-reply'
  requestId: number
  /** gRPC status code, 0 = OK. */
  status: number
  message: string
  payload: Uint8Array
  /** False while a server stream (SubscribeInvoiceAccepted) has more to send. */
  done: boolean
}

/**
 * Several messages to one peer under one signature: what the swarm queued for a peer in one turn of
 * the event loop (swarm.ts), so that a burst of decisions, notices or acknowledgements costs one
 * signature and one verification, not one per message. Each message inside is handled as if it
 * had come in an envelope of its own with the batch's sender, sequence number and time. At least
 * two (one message travels as itself, so that it has one encoding), never a batch.
 */
export interface Batch {
  type: 'batch'
  messages: Message[]
}

export type Message =
  | Hello
  | Ping
  | Pong
  | VoteRequest
  | Vote
  | Lease
  | LeaseAck
  | HtlcOffer
  | HtlcDecision
  | HtlcResolved
  | ResolutionQuery
  | RecordsRequest
  | RecordsReply
  | RecordNotice
  | RecordAck
  | ApiForward
  | ApiReply

/** What an envelope carries: one message, or a batch of them. */
export type WireMessage = Message | Batch

export type MessageType = WireMessage['type']
type Body<K extends MessageType> = Omit<Extract<WireMessage, { type: K }>, 'type'>

const nodeInfo = struct<NodeInfo>({
  pubkey: key33,
  alias: string(MAX_ALIAS_BYTES),
  virtualScid: bigU64,
  inboundMsat: bigU64
})

const recordView = struct<RecordView>({ term: u64, records: u64 })

const circuit = struct<Circuit>({ node: key33, chanId: bigU64, htlcId: bigU64 })

const RESOLUTION_KINDS = ['settle', 'fail', 'fail-code'] as const
const resolutionKind = enumeration(RESOLUTION_KINDS)
const preimage = fixedBytes(32)
const failureMessage = bytes(MAX_FAILURE_MESSAGE_BYTES)
const failureCode = enumeration(INTERCEPTOR_FAILURE_CODES)

const resolution: Encoding<Resolution> = {
  preencode(state, r) {
    resolutionKind.preencode(state, r.kind)
    if (r.kind === 'settle') preimage.preencode(state, r.preimage)
    else if (r.kind === 'fail') failureMessage.preencode(state, r.message)
    else failureCode.preencode(state, r.code)
  },
  encode(state, r) {
    resolutionKind.encode(state, r.kind)
    if (r.kind === 'settle') preimage.encode(state, r.preimage)
    else if (r.kind === 'fail') failureMessage.encode(state, r.message)
    else failureCode.encode(state, r.code)
  },
  decode(state) {
    const kind = resolutionKind.decode(state)
    if (kind === 'settle') return { kind, preimage: preimage.decode(state) }
    if (kind === 'fail') return { kind, message: failureMessage.decode(state) }
    return { kind, code: failureCode.decode(state) }
  }
}

/** The wire type id, as the envelope header and a batch carry it. */
export const typeIdEncoding = uint(0xffff)

/** One message inside a batch: its wire type id, then its body. */
const batchedMessage: Encoding<Message> = {
  preencode(state, message) {
    const { type, ...body } = message
    typeIdEncoding.preencode(state, messageTypeId(type))
    bodyEncoding(type).preencode(state, body as never)
  },
  encode(state, message) {
    const { type, ...body } = message
    typeIdEncoding.encode(state, messageTypeId(type))
    bodyEncoding(type).encode(state, body as never)
  },
  decode(state) {
    const id = typeIdEncoding.decode(state)
    const type = messageTypeOf(id)
    if (type === undefined || type === 'batch') throw new RangeError(`batch holds a message of type ${id}`)
    return { type, ...bodyEncoding(type).decode(state) } as Message
  }
}

/** Wire type ids are part of the protocol: never renumber, only append (and raise PROTOCOL_VERSION). */
const BODIES: { [K in MessageType]: { id: number; encoding: Encoding<Body<K>> } } = {
  hello: {
    id: 1,
    encoding: struct<Body<'hello'>>({
      agent: key32,
      role: enumeration(ROLES),
      priority: u32,
      protocolVersion: u32,
      muxKey: optional(key33),
      nodes: array(nodeInfo, MAX_NODES_PER_AGENT),
      auditCore: key32
    })
  },
  ping: { id: 2, encoding: struct<Body<'ping'>>({ nonce: u32 }) },
  pong: { id: 3, encoding: struct<Body<'pong'>>({ nonce: u32 }) },
  'vote-request': {
    id: 4,
    encoding: struct<Body<'vote-request'>>({ term: u64, candidate: key32, view: recordView, priority: u32, pre: bool })
  },
  vote: { id: 5, encoding: struct<Body<'vote'>>({ term: u64, voter: key32, granted: bool, view: recordView, pre: bool }) },
  lease: { id: 6, encoding: struct<Body<'lease'>>({ term: u64, leader: key32, at: u64 }) },
  'lease-ack': { id: 7, encoding: struct<Body<'lease-ack'>>({ term: u64, voter: key32, at: u64 }) },
  'htlc-offer': {
    id: 8,
    encoding: struct<Body<'htlc-offer'>>({
      term: u64,
      circuit,
      paymentHash: fixedBytes(32),
      incomingMsat: bigU64,
      outgoingMsat: bigU64,
      incomingExpiry: u32,
      outgoingExpiry: u32,
      outgoingRequestedChanId: bigU64,
      onion: fixedBytes(ONION_PACKET_BYTES),
      autoFailHeight: u32,
      currentHeight: u32
    })
  },
  'htlc-decision': {
    id: 9,
    encoding: struct<Body<'htlc-decision'>>({ term: u64, circuit, resolution, uncommittedRecord: optional(fixedBytes(32)) })
  },
  'htlc-resolved': {
    id: 10,
    encoding: struct<Body<'htlc-resolved'>>({ term: u64, circuit, settled: bool })
  },
  'records-request': {
    id: 11,
    encoding: struct<Body<'records-request'>>({ term: u64, requestId: u32, after: u64 })
  },
  'records-reply': {
    id: 12,
    encoding: struct<Body<'records-reply'>>({
      term: u64,
      requestId: u32,
      records: array(bytes(MAX_RECORD_BYTES), MAX_RECORDS_PER_REPLY),
      done: bool
    })
  },
  'api-forward': {
    id: 13,
    encoding: struct<Body<'api-forward'>>({
      requestId: u32,
      method: string(MAX_API_METHOD_BYTES),
      payload: bytes(MAX_API_PAYLOAD_BYTES)
    })
  },
  'api-reply': {
    id: 14,
    encoding: struct<Body<'api-reply'>>({
      requestId: u32,
      status: u32,
      message: string(MAX_API_STATUS_MESSAGE_BYTES),
      payload: bytes(MAX_API_PAYLOAD_BYTES),
      done: bool
    })
  },
  'record-notice': {
    id: 15,
    encoding: struct<Body<'record-notice'>>({ term: u64, record: bytes(MAX_RECORD_BYTES) })
  },
  'record-ack': {
    id: 16,
    encoding: struct<Body<'record-ack'>>({ term: u64, digest: fixedBytes(32) })
  },
  'resolution-query': {
    id: 17,
    encoding: struct<Body<'resolution-query'>>({ term: u64, circuits: array(circuit, MAX_CIRCUITS_PER_QUERY) })
  },
  batch: {
    id: 18,
    encoding: struct<Body<'batch'>>({ messages: array(batchedMessage, MAX_BATCH_MESSAGES, 2) })
  }
}

const BY_ID = new Map<number, MessageType>(
  (Object.keys(BODIES) as MessageType[]).map((type) => [BODIES[type].id, type])
)

export function messageTypeId(type: MessageType): number {
  return BODIES[type].id
}

/** The message type of a wire id, or undefined for an id this version does not know. */
export function messageTypeOf(id: number): MessageType | undefined {
  return BY_ID.get(id)
}

/** The encoding of a message's body (its fields without `type`). */
export function bodyEncoding<K extends MessageType>(type: K): Encoding<Body<K>> {
  return BODIES[type].encoding
}


/** Bytes `message` takes inside a batch (type id and body); throws RangeError if it is malformed. */
export function batchedSize(message: Message): number {
  const state = c.state()
  batchedMessage.preencode(state, message)
  return state.end
}

/** The key a message claims as its author, which must be the envelope's sender; null if none. */
export function claimedSender(message: Message): Uint8Array | null {
  switch (message.type) {
    case 'hello':
      return message.agent
    case 'vote-request':
      return message.candidate
    case 'vote':
    case 'lease-ack':
      return message.voter
    case 'lease':
      return message.leader
    default:
      return null
  }
}

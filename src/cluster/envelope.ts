// Signed envelopes: every cluster message is `{from, seq, time, body}` signed by the sender's ed25519
// agent key (DESIGN.md, "Cluster protocol: messages"), so the audit log can store what a peer said
// exactly as received and anyone holding those bytes can check who said it, later and offline.
//
//   wire    = from (32) ‖ uint seq ‖ uint time (unix ms) ‖ uint type ‖ body ‖ signature (64)
//   signed  = "highwire/envelope/v1" ‖ wire without the signature
//
// `uint` is compact-encoding's variable-length uint. The domain tag keeps these signatures from
// being valid for anything else signed with the same key (the same key is the Noise static key).
// Decoding is strict: the bytes must be the canonical encoding of what they decode to, so that one
// message has one byte string and a stored envelope means one thing.
import sodium from 'sodium-universal'
import c from 'compact-encoding'
import { decodeExact, u64, encode, type Encoding } from './codec.ts'
import { EnvelopeError } from './errors.ts'
import { MAX_BATCH_MESSAGES, batchedSize, bodyEncoding, messageTypeId, messageTypeOf, typeIdEncoding, type Message, type WireMessage } from './messages.ts'

export const ENVELOPE_DOMAIN = 'highwire/envelope/v1'
/** Largest envelope we accept or send; the biggest message (a page of records) is sized under it. */
export const MAX_ENVELOPE_BYTES = 64 * 1024
export const SIGNATURE_BYTES = 64
export const AGENT_KEY_BYTES = 32
/** Bytes of an envelope besides its body, at most: sender, seq and time (9 each), type id, signature. */
const ENVELOPE_OVERHEAD = AGENT_KEY_BYTES + 9 + 9 + 3 + SIGNATURE_BYTES
/** What the messages of one batch may take together (their count takes at most 3 more bytes). */
const BATCH_BUDGET = MAX_ENVELOPE_BYTES - ENVELOPE_OVERHEAD - 3

const DOMAIN_BYTES = new TextEncoder().encode(ENVELOPE_DOMAIN)

export interface AgentKeyPair {
  publicKey: Uint8Array
  /** 64-byte libsodium ed25519 secret key (seed ‖ public key). */
  secretKey: Uint8Array
}

/** A decoded envelope: one message, or a batch (see unbatch). */
export interface SignedEnvelope {
  from: Uint8Array
  seq: number
  time: number
  message: WireMessage
  /** The envelope exactly as received or sent: store these bytes, re-verify them any time. */
  bytes: Uint8Array
}

/** One message as delivered: alone in its envelope, or one of a batch (all sharing `bytes`). */
export interface Envelope extends SignedEnvelope {
  message: Message
}

interface Header {
  from: Uint8Array
  seq: number
  time: number
  typeId: number
}

const header: Encoding<Header> = {
  preencode(state, h) {
    state.end += AGENT_KEY_BYTES
    u64.preencode(state, h.seq)
    u64.preencode(state, h.time)
    typeIdEncoding.preencode(state, h.typeId)
  },
  encode(state, h) {
    c.fixed32.encode(state, h.from)
    u64.encode(state, h.seq)
    u64.encode(state, h.time)
    typeIdEncoding.encode(state, h.typeId)
  },
  decode(state) {
    return {
      from: c.fixed32.decode(state),
      seq: u64.decode(state),
      time: u64.decode(state),
      typeId: typeIdEncoding.decode(state)
    }
  }
}
function signedBytes(payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(DOMAIN_BYTES.byteLength + payload.byteLength)
  out.set(DOMAIN_BYTES)
  out.set(payload, DOMAIN_BYTES.byteLength)
  return out
}

/**
 * Signs an already-encoded body under a wire type id. encodeEnvelope is the typed entry point;
 * this layer exists on its own so that a body can be relayed or produced by a newer version.
 */
export function sealEnvelope(
  keyPair: AgentKeyPair,
  seq: number,
  time: number,
  typeId: number,
  body: Uint8Array
): Uint8Array {
  const head = encode(header, { from: keyPair.publicKey, seq, time, typeId })
  const out = new Uint8Array(head.byteLength + body.byteLength + SIGNATURE_BYTES)
  out.set(head)
  out.set(body, head.byteLength)
  const payload = out.subarray(0, head.byteLength + body.byteLength)
  sodium.crypto_sign_detached(out.subarray(payload.byteLength), signedBytes(payload), keyPair.secretKey)
  return out
}

/** Encodes and signs `message` as sent by `keyPair`; throws RangeError on a malformed message. */
export function encodeEnvelope(keyPair: AgentKeyPair, seq: number, time: number, message: WireMessage): Uint8Array {
  const bytes = sealEnvelope(keyPair, seq, time, messageTypeId(message.type), encodeBody(message))
  if (bytes.byteLength > MAX_ENVELOPE_BYTES) {
    throw new RangeError(`${message.type} envelope is ${bytes.byteLength} bytes, over ${MAX_ENVELOPE_BYTES}`)
  }
  return bytes
}

/** A message checked for sending, with the bytes it takes inside a batch. */
export interface OutgoingMessage {
  message: Message
  size: number
}

/** Checks a message before it is queued: throws RangeError if it is malformed or too big to send. */
export function outgoingMessage(message: Message): OutgoingMessage {
  const size = batchedSize(message)
  if (size > BATCH_BUDGET) throw new RangeError(`${message.type} takes ${size} bytes, over what one envelope carries`)
  return { message, size }
}

/**
 * The messages queued for one peer, in order, as few envelopes' worth as fit: consecutive messages
 * that fit one envelope together form a batch, a message that shares with none is sent as itself.
 */
export function batchMessages(queued: readonly OutgoingMessage[]): WireMessage[] {
  const out: WireMessage[] = []
  let run: Message[] = []
  let size = 0
  const close = (): void => {
    if (run.length === 1) out.push(run[0]!)
    else if (run.length > 1) out.push({ type: 'batch', messages: run })
    run = []
    size = 0
  }
  for (const q of queued) {
    if (size + q.size > BATCH_BUDGET || run.length === MAX_BATCH_MESSAGES) close()
    run.push(q.message)
    size += q.size
  }
  close()
  return out
}

/** The messages an envelope carries, each as an envelope of its own with the batch's sender, seq, time and bytes. */
export function unbatch(envelope: SignedEnvelope): Envelope[] {
  const { message } = envelope
  if (message.type === 'batch') return message.messages.map((m) => ({ ...envelope, message: m }))
  return [{ ...envelope, message }]
}

function encodeBody(message: WireMessage): Uint8Array {
  const { type, ...body } = message
  return encode(bodyEncoding(type) as Encoding<typeof body>, body)
}

/**
 * Parses an envelope without checking its signature (see verifyEnvelope). Throws EnvelopeError
 * with code oversize, malformed, unknown_type, malformed_body or non_canonical. The result owns a
 * copy of the bytes.
 */
export function decodeEnvelope(data: Uint8Array): SignedEnvelope {
  if (data.byteLength > MAX_ENVELOPE_BYTES) {
    throw new EnvelopeError('oversize', `envelope is ${data.byteLength} bytes, over ${MAX_ENVELOPE_BYTES}`)
  }
  const bytes = new Uint8Array(data)
  const payload = bytes.subarray(0, Math.max(0, bytes.byteLength - SIGNATURE_BYTES))
  const state = c.state(0, payload.byteLength, payload)
  let head: Header
  try {
    if (bytes.byteLength < AGENT_KEY_BYTES + SIGNATURE_BYTES) throw new RangeError(`only ${bytes.byteLength} bytes`)
    head = header.decode(state)
  } catch (err) {
    throw new EnvelopeError('malformed', `envelope header: ${(err as Error).message}`)
  }
  const type = messageTypeOf(head.typeId)
  if (type === undefined) throw new EnvelopeError('unknown_type', `unknown message type ${head.typeId}`)
  let message: WireMessage
  try {
    message = { type, ...decodeExact(bodyEncoding(type), payload.subarray(state.start)) } as WireMessage
  } catch (err) {
    throw new EnvelopeError('malformed_body', `${type}: ${(err as Error).message}`)
  }
  const canonical =
    equalBytes(encode(header, head), payload.subarray(0, state.start)) &&
    equalBytes(encodeBody(message), payload.subarray(state.start))
  if (!canonical) throw new EnvelopeError('non_canonical', `${type} envelope is not canonically encoded`)
  return { from: head.from, seq: head.seq, time: head.time, message, bytes }
}

/** True when the envelope's signature is valid for its sender under the envelope domain. */
export function verifyEnvelope(envelope: Pick<SignedEnvelope, 'from' | 'bytes'>): boolean {
  const { bytes } = envelope
  const payload = bytes.subarray(0, bytes.byteLength - SIGNATURE_BYTES)
  const signature = bytes.subarray(bytes.byteLength - SIGNATURE_BYTES)
  return sodium.crypto_sign_verify_detached(signature, signedBytes(payload), envelope.from)
}

/** Byte equality in native code (a batch of offers is tens of kilobytes). */
function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(b)
}

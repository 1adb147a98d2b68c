// Typed errors of the cluster layer. `code` is stable: the reject events and the audit log carry it.
import { CodedError } from '../errors.ts'

export type ClusterErrorCode =
  | 'weak_secret'
  | 'bad_key_file'
  | 'insecure_key_file'
  | 'bad_sequence_file'

/** Configuration or storage problems found while setting the swarm up. */
export class ClusterError extends CodedError<ClusterErrorCode> {}

export type EnvelopeErrorCode =
  | 'oversize'
  | 'malformed'
  | 'non_canonical'
  | 'unknown_type'
  | 'malformed_body'
  | 'bad_signature'

/** An envelope that cannot be decoded or verified; thrown by decodeEnvelope and the inbound gate. */
export class EnvelopeError extends CodedError<EnvelopeErrorCode> {}

export type PeerErrorCode =
  | EnvelopeErrorCode
  | 'not_member'
  | 'bad_proof'
  | 'proof_timeout'
  | 'rate_limited'
  | 'wrong_sender'
  | 'clock_skew'
  | 'replay'
  | 'hello_expected'
  | 'protocol_version'
  | 'mux_key_mismatch'

/** Why a peer was refused or disconnected; reported through the swarm's `reject` event. */
export class PeerError extends CodedError<PeerErrorCode> {}

// Typed errors of the cluster layer. `code` is stable: the reject events and the audit log carry it.

export type ClusterErrorCode =
  | 'weak_secret'
  | 'bad_key_file'
  | 'insecure_key_file'
  | 'bad_sequence_file'

/** Configuration or storage problems found while setting the swarm up. */
export class ClusterError extends Error {
  readonly code: ClusterErrorCode
  constructor(code: ClusterErrorCode, message: string) {
    super(message)
    this.name = 'ClusterError'
    this.code = code
  }
}

export type EnvelopeErrorCode =
  | 'oversize'
  | 'malformed'
  | 'non_canonical'
  | 'unknown_type'
  | 'malformed_body'
  | 'bad_signature'

/** An envelope that cannot be decoded or verified; thrown by decodeEnvelope and the inbound gate. */
export class EnvelopeError extends Error {
  readonly code: EnvelopeErrorCode
  constructor(code: EnvelopeErrorCode, message: string) {
    super(message)
    this.name = 'EnvelopeError'
    this.code = code
  }
}

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
export class PeerError extends Error {
  readonly code: PeerErrorCode
  constructor(code: PeerErrorCode, message: string) {
    super(message)
    this.name = 'PeerError'
    this.code = code
  }
}

// Errors of the LND layer. Callers tell them apart by `code`; `node` names the LND node
// (its configured name) so that an operator running several nodes knows which one is wrong.
import { CodedError } from '../errors.ts'

export type LndErrorCode =
  | 'rpc_failed' // a gRPC call failed (status code in `grpcCode`)
  | 'bad_response' // lnd answered with a value we cannot use
  | 'bad_connection' // the connection settings are unusable (cert, macaroon, pubkey)
  | 'pubkey_mismatch' // GetInfo identity_pubkey differs from the pinned pubkey
  | 'network_mismatch' // chain or network differ from the configuration
  | 'interceptor_not_required' // lnd runs without --requireinterceptor
  | 'final_resolutions_not_stored' // lnd runs without --store-final-htlc-resolutions

export class LndError extends CodedError<LndErrorCode> {
  readonly node: string
  readonly grpcCode: number | undefined

  constructor (code: LndErrorCode, node: string, message: string, grpcCode?: number) {
    super(code, `lnd ${node}: ${message}`)
    this.node = node
    this.grpcCode = grpcCode
  }
}

export type InterceptorErrorCode =
  | 'unknown_circuit' // no HTLC with this circuit key is held
  | 'already_decided' // a different decision was already made for this circuit
  | 'invalid_decision' // the decision is malformed (preimage, failure message, failure code)
  | 'preimage_mismatch' // SHA256(preimage) differs from the HTLC's payment hash
  | 'htlc_expired' // lnd has failed the HTLC back already (auto_fail_height reached)

export class InterceptorError extends CodedError<InterceptorErrorCode> {}

// Errors of the LND simulator that a caller must tell apart.
import { CodedError } from '../errors.ts'

export type SimErrorCode =
  | 'fwd_not_exists'
  | 'preimage_mismatch'
  | 'unsupported_failure_code'
  | 'unknown_node'
  | 'unknown_channel'
  | 'node_offline'
  | 'insufficient_balance'
  | 'no_route'
  | 'bad_invoice'
  | 'bad_request'

export class SimError extends CodedError<SimErrorCode> {}

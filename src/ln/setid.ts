// HTLC set id, lnmux-compatible: SHA256 over the set's HTLC keys sorted by (node, chan_id, htlc_id),
// each serialised as node(33) ‖ BE64 chan_id ‖ BE64 htlc_id. Because every part is fixed-width
// big-endian, sorting the serialised keys bytewise is the same order.
import { createHash } from 'node:crypto'
import { CodedError } from '../errors.ts'

export interface HtlcKey {
  /** 33-byte public key of the real node that holds the HTLC. */
  node: Uint8Array
  chanId: bigint
  htlcId: bigint
}

export class SetIdError extends CodedError<'invalid_htlc_key'> {
  constructor(message: string) {
    super('invalid_htlc_key', message)
  }
}

const KEY_BYTES = 33 + 8 + 8
const isU64 = (v: unknown): v is bigint => typeof v === 'bigint' && v >= 0n && v < 1n << 64n

function serialiseKey(key: HtlcKey): Buffer {
  if (!(key.node instanceof Uint8Array) || key.node.length !== 33) throw new SetIdError('HTLC key node must be a 33-byte public key')
  if (!isU64(key.chanId) || !isU64(key.htlcId)) throw new SetIdError('HTLC key chanId and htlcId must be u64 bigints')
  const out = Buffer.alloc(KEY_BYTES)
  out.set(key.node, 0)
  out.writeBigUInt64BE(key.chanId, 33)
  out.writeBigUInt64BE(key.htlcId, 41)
  return out
}

export function htlcSetId(keys: HtlcKey[]): Uint8Array {
  const hash = createHash('sha256')
  for (const bytes of keys.map(serialiseKey).sort(Buffer.compare)) hash.update(bytes)
  return hash.digest()
}

// Short channel ids (BOLT 7: block height 3 bytes ‖ transaction index 3 bytes ‖ output index 2 bytes)
// and the virtual channel id that route hints use to reach the virtual node through a real node.
import { CodedError } from '../errors.ts'

export class ScidError extends CodedError<'invalid_pubkey' | 'invalid_scid'> {}

const MAX_SCID = (1n << 64n) - 1n
const MAX_BLOCK = 0xffffff
const MAX_TX = 0xffffff
const MAX_OUTPUT = 0xffff

/**
 * lnmux `virtualChannelFromNode`: the last 8 bytes of the node's 33-byte compressed public key read
 * big-endian, with the top bit forced to 1 so that it cannot collide with a real channel (that would
 * need a block height of 2^23 and more).
 */
export function virtualScid(nodePubkey: Uint8Array): bigint {
  if (!(nodePubkey instanceof Uint8Array) || nodePubkey.length !== 33) throw new ScidError('invalid_pubkey', 'node public key must be 33 bytes')
  const view = new DataView(nodePubkey.buffer, nodePubkey.byteOffset + 25, 8)
  return view.getBigUint64(0) | (1n << 63n)
}

/** "BLOCKxTXxOUTPUT", as lncli and BOLT 11's examples print it. */
export function formatScid(scid: bigint): string {
  if (typeof scid !== 'bigint' || scid < 0n || scid > MAX_SCID) throw new ScidError('invalid_scid', 'short channel id must be a u64 bigint')
  return `${scid >> 40n}x${(scid >> 16n) & 0xffffffn}x${scid & 0xffffn}`
}

/** Inverse of formatScid; each part must be a decimal number in its field's range. */
export function parseScid(text: string): bigint {
  const m = /^(\d{1,8})x(\d{1,8})x(\d{1,5})$/.exec(text)
  const [block, tx, output] = m === null ? [NaN, NaN, NaN] : [Number(m[1]), Number(m[2]), Number(m[3])]
  if (!(block <= MAX_BLOCK && tx <= MAX_TX && output <= MAX_OUTPUT))
    throw new ScidError('invalid_scid', `"${String(text).slice(0, 32)}" is not a short channel id of the form BLOCKxTXxOUTPUT`)
  return (BigInt(block) << 40n) | (BigInt(tx) << 16n) | BigInt(output)
}

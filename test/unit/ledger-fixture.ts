// Mux record histories for the ledger and restore tests: what a cluster's cores may hold, copies
// and split-brain contradictions included.
import { createHash } from 'node:crypto'
import { statelessPreimage } from '../../src/ln/stateless.ts'
import type { MuxRecord } from '../../src/mux/types.ts'
import { rng, type Rng } from './fuzz-kit.ts'

export const KEY = Buffer.alloc(32, 0x11)
export const OTHER_KEY = Buffer.alloc(32, 0x33)
const NODES = [Buffer.alloc(33, 2), Buffer.alloc(33, 3), Buffer.alloc(33, 4)]

type Settle = Extract<MuxRecord, { type: 'settle_requested' }>

export function settleRecord(random: Rng, key: Uint8Array, time: number): Settle {
  const paymentAddr = Buffer.from(Array.from({ length: 32 }, () => random.int(0, 256)))
  const hash = createHash('sha256').update(statelessPreimage(key, paymentAddr)).digest()
  const htlcs = Array.from({ length: 1 + random.int(0, 3) }, () => ({
    circuit: { node: NODES[random.int(0, NODES.length)]!, chanId: BigInt(random.int(0, 1000)), htlcId: BigInt(random.int(0, 1_000_000)) },
    amountMsat: BigInt(1 + random.int(0, 100_000))
  }))
  const setId = createHash('sha256').update(paymentAddr).update(String(time)).digest()
  return { type: 'settle_requested', hash, setId, paymentAddr, amountMsat: htlcs.reduce((s, h) => s + h.amountMsat, 0n), htlcs, time }
}

/**
 * Records of `invoices` payment hashes as a cluster's cores may hold them: most settled and final,
 * some awaiting their final status, some cancelled; and the contradictions of a split brain (a
 * second set, a second final status, a cancel of a settled invoice, a settle another key wrote),
 * each record possibly in several copies.
 */
export function history(seed: number, invoices: number, key: Uint8Array = KEY): MuxRecord[] {
  const random = rng(seed)
  const records: MuxRecord[] = []
  for (let i = 0; i < invoices; i++) {
    const time = 1_000 + random.int(0, 500) // ties in settlement time are common
    const roll = random.int(0, 100)
    const settle = settleRecord(random, roll < 3 ? OTHER_KEY : key, time)
    const final = (status: 'settled' | 'failed', setId = settle.setId): MuxRecord => ({ type: 'final', hash: settle.hash, setId, status, time: time + 1 + random.int(0, 5) })
    const cancel: MuxRecord = { type: 'cancelled', hash: settle.hash, time: time + random.int(0, 5) }
    if (roll < 10) records.push(cancel)
    else if (roll < 12) records.push(cancel, settle)
    else if (roll < 14) records.push(settle, { ...settle, setId: Buffer.alloc(32, i % 256), time: settle.time + random.int(0, 2) })
    else if (roll < 16) records.push(settle, final('settled'), final('failed'))
    else if (roll < 18) records.push(final('settled', Buffer.alloc(32, 9)))
    else if (roll < 30) records.push(settle)
    else records.push(settle, final(random.int(0, 10) === 0 ? 'failed' : 'settled'))
    if (random.int(0, 10) === 0) records.push(records[records.length - 1]!) // a copy from another core
  }
  return records
}

export function shuffled<T>(items: T[], random: Rng): T[] {
  const out = [...items]
  for (let i = out.length - 1; i > 0; i--) {
    const j = random.int(0, i + 1)
    ;[out[i], out[j]] = [out[j]!, out[i]!]
  }
  return out
}


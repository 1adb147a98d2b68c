// Mux record histories for the ledger and restore tests: what a cluster's cores may hold, copies
// and split-brain contradictions included.
import { createHash } from 'node:crypto'
import { statelessPreimage } from '../../src/ln/stateless.ts'
import { MuxLedger } from '../../src/mux/ledger.ts'
import { MuxMachine } from '../../src/mux/machine.ts'
import { encodeRecord } from '../../src/mux/records.ts'
import { MuxError, type Circuit, type InterceptedHtlc, type MuxOutput, type MuxRecord } from '../../src/mux/types.ts'
import { FakeClock, IDENTITY_KEY, invoice, part } from './mux-fixture.ts'
import { rng, type Rng } from './fuzz-kit.ts'

export const OTHER_KEY = Buffer.alloc(32, 0x33)
const NODES = [Buffer.alloc(33, 2), Buffer.alloc(33, 3), Buffer.alloc(33, 4)]

type Settle = Extract<MuxRecord, { type: 'settle_requested' }>

export function settleRecord(random: Rng, key: Uint8Array, time: number, term = random.int(0, 4)): Settle {
  const paymentAddr = Buffer.from(Array.from({ length: 32 }, () => random.int(0, 256)))
  const hash = createHash('sha256').update(statelessPreimage(key, paymentAddr)).digest()
  const htlcs = Array.from({ length: 1 + random.int(0, 3) }, () => ({
    circuit: { node: NODES[random.int(0, NODES.length)]!, chanId: BigInt(random.int(0, 1000)), htlcId: BigInt(random.int(0, 1_000_000)) },
    amountMsat: BigInt(1 + random.int(0, 100_000))
  }))
  const setId = createHash('sha256').update(paymentAddr).update(String(time)).digest()
  return { type: 'settle_requested', term, hash, setId, paymentAddr, amountMsat: htlcs.reduce((s, h) => s + h.amountMsat, 0n), htlcs, time }
}

/**
 * Records of `invoices` payment hashes as a cluster's cores may hold them: most settled and final,
 * some awaiting their final status, some cancelled; and the contradictions of a split brain (a
 * second set, a second final status, a cancel of a settled invoice, a settle another key wrote),
 * records of several terms (a parts_failed record older or newer than the settle, a settle or cancel
 * committed again by a later leader), each record possibly in several copies.
 */
export function history(seed: number, invoices: number, key: Uint8Array = IDENTITY_KEY): MuxRecord[] {
  const random = rng(seed)
  const records: MuxRecord[] = []
  for (let i = 0; i < invoices; i++) {
    const time = 1_000 + random.int(0, 500) // ties in settlement time are common
    const roll = random.int(0, 100)
    const settle = settleRecord(random, roll < 3 ? OTHER_KEY : key, time)
    const final = (status: 'settled' | 'failed', setId = settle.setId): MuxRecord => ({ type: 'final', hash: settle.hash, setId, status, time: time + 1 + random.int(0, 5) })
    const cancel: MuxRecord = { type: 'cancelled', term: random.int(0, 4), hash: settle.hash, time: time + random.int(0, 5) }
    const partsFailed: MuxRecord = { type: 'parts_failed', term: random.int(0, 6), hash: settle.hash, time: time + random.int(0, 5) }
    if (roll < 10) records.push(cancel)
    else if (roll < 12) records.push(cancel, settle, { ...cancel, term: cancel.term + 1 })
    else if (roll < 14) records.push(settle, { ...settle, setId: Buffer.alloc(32, i % 256), time: settle.time + random.int(0, 2) })
    else if (roll < 16) records.push(settle, final('settled'), final('failed'))
    else if (roll < 18) records.push(final('settled', Buffer.alloc(32, 9)))
    else if (roll < 21) records.push(settle, partsFailed)
    else if (roll < 24) records.push(settle, { ...settle, term: settle.term + 1 + random.int(0, 2) }, final('settled'))
    else if (roll < 26) records.push(partsFailed)
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

// ---- restored machines, compared by everything they tell and decide ----

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex')
const opts = (clock: FakeClock) => ({ identityKey: IDENTITY_KEY, now: clock.now, height: 800_000 })

/** Outputs and errors in a comparable form. */
function plain(value: unknown): unknown {
  return JSON.parse(JSON.stringify(value, (_k, v: unknown) => (typeof v === 'bigint' ? `${v}n` : v instanceof Uint8Array || (v as { type?: string })?.type === 'Buffer' ? hex(Buffer.from(v as Uint8Array)) : v)))
}

function attempt(fn: () => MuxOutput[]): unknown {
  try {
    return plain(fn())
  } catch (err) {
    return err instanceof MuxError ? { error: err.code } : { thrown: String(err) }
  }
}

/**
 * Real invoices among the random records, so that a re-paid invoice gets past the onion checks to
 * the settled or cancelled rule: settled and final, settled awaiting its final status, cancelled.
 */
export function realInvoices(): { records: MuxRecord[]; payments: InterceptedHtlc[] } {
  const records: MuxRecord[] = []
  const payments: InterceptedHtlc[] = []
  for (let i = 0; i < 6; i++) {
    const inv = invoice(50_000n)
    const paid = part(inv, { htlcId: 9000n + BigInt(i), amountMsat: 50_000n }).htlc
    const settle: Settle = {
      type: 'settle_requested', term: 1, hash: inv.paymentHash, setId: createHash('sha256').update(inv.paymentAddr).digest(),
      paymentAddr: inv.paymentAddr, amountMsat: 50_000n, htlcs: [{ circuit: paid.circuit, amountMsat: 50_000n }], time: 1_200 + i
    }
    if (i % 3 === 0) records.push(settle, { type: 'final', hash: inv.paymentHash, setId: settle.setId, status: 'settled', time: 1_300 })
    else if (i % 3 === 1) records.push(settle)
    else records.push({ type: 'cancelled', term: 1, hash: inv.paymentHash, time: 1_250 })
    payments.push(paid, part(inv, { htlcId: 9100n + BigInt(i), amountMsat: 50_000n }).htlc)
  }
  return { records, payments }
}

const circuitKey = (c: Circuit): string => `${hex(c.node)}:${c.chanId}:${c.htlcId}`

/** A re-offered HTLC of every circuit some settle record names (the edges re-forward what lnd still holds). */
function reoffers(records: MuxRecord[], template: InterceptedHtlc): InterceptedHtlc[] {
  return records.flatMap((r) => (r.type === 'settle_requested' ? r.htlcs.map((h) => ({ ...template, circuit: h.circuit, paymentHash: r.hash })) : []))
}

/** Everything the machine tells or decides about `records`, given the inputs a restarted leader meets. */
export function behaviour(mux: MuxMachine, conflicts: MuxRecord[], records: MuxRecord[], payments: InterceptedHtlc[]): unknown {
  const hashes = [...new Set(records.map((r) => hex(r.hash)))].sort()
  const settleIds = new Map(records.filter((r) => r.type === 'settle_requested').map((r) => [hex(r.hash), r.setId] as const))
  // Which order lnd's answers come in is lnd's business: the same order for both machines.
  const pending = mux.pendingResolutions().sort((a, b) => circuitKey(a).localeCompare(circuitKey(b)))
  return plain({
    conflicts: conflicts.map(encodeRecord).sort(),
    settlements: mux.settlements(1n, 100_000),
    statuses: hashes.map((h) => mux.status(Buffer.from(h, 'hex'))),
    pending: pending.map(circuitKey),
    replays: [...reoffers(records, payments[0]!), ...payments].map((h) => attempt(() => mux.htlc(h))),
    resolved: pending.map((c, i) => attempt(() => mux.htlcResolved(c, i % 4 !== 0))),
    settles: hashes.map((h) => attempt(() => mux.settle(Buffer.from(h, 'hex'), settleIds.get(h) ?? new Uint8Array(32)))),
    cancels: hashes.map((h) => attempt(() => mux.cancel(Buffer.from(h, 'hex')))),
    after: mux.settlements(1n, 100_000)
  })
}

export function restored(ledger: MuxLedger | MuxRecord[]): { mux: MuxMachine; conflicts: MuxRecord[] } {
  const conflicts: MuxRecord[] = []
  const mux = MuxMachine.restore(opts(new FakeClock()), ledger, (record) => conflicts.push(record))
  return { mux, conflicts }
}

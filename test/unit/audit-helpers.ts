// Shared fixtures for the audit tests: temp storage that is always removed, and sample records.
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { TestContext } from 'node:test'
import type Hypercore from 'hypercore'
import { AuditLog, readBlocks } from '../../src/audit/log.ts'
import { toMuxRecord } from '../../src/audit/mux-store.ts'
import type { AuditRecord, HtlcRef } from '../../src/audit/records.ts'
import type { MuxRecord } from '../../src/mux/types.ts'

// Cleanups run last-registered first, so stores close before their directories are removed
// (node:test runs `t.after` hooks in registration order).
const stacks = new WeakMap<TestContext, Array<() => unknown>>()
export function defer(t: TestContext, fn: () => unknown): void {
  let stack = stacks.get(t)
  if (stack === undefined) {
    const fresh: Array<() => unknown> = []
    stacks.set(t, (stack = fresh))
    t.after(async () => {
      while (fresh.length > 0) await fresh.pop()!()
    })
  }
  stack.push(fn)
}

export async function tempDir(t: TestContext): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'highwire-audit-'))
  defer(t, () => rm(dir, { recursive: true, force: true }))
  return dir
}

export async function openLog(t: TestContext, path: string, opts: { readOnly?: boolean; id?: string } = {}): Promise<AuditLog> {
  const log = await AuditLog.open({ path, ...opts })
  defer(t, () => log.close())
  return log
}

/** Connects two stores for replication (`a` initiates), as a cluster connection does; returns what disconnects them. */
export function pipe(a: AuditLog, b: AuditLog): () => void {
  const s1 = a.replicate(true)
  const s2 = b.replicate(false)
  s1.pipe(s2).pipe(s1)
  s1.on('error', () => {})
  s2.on('error', () => {})
  return () => {
    s1.destroy()
    s2.destroy()
  }
}

/** Waits until `replica` holds every block `source` has now. */
export async function caughtUp(replica: Hypercore, source: AuditLog): Promise<void> {
  while (replica.contiguousLength < source.core.length) await new Promise((r) => setTimeout(r, 10))
}

/** `into` replicates the whole of `from`'s core over a connection of their own, closed after. */
export async function replicateCore(into: AuditLog, from: AuditLog): Promise<Hypercore> {
  const unpipe = pipe(into, from)
  try {
    const replica = await into.openReplica(from.key)
    await caughtUp(replica, from)
    return replica
  } finally {
    unpipe()
  }
}

// Buffers, as compact-encoding decodes bytes to Buffers (deepEqual compares prototypes).
export const bytes = (n: number, fill: number): Uint8Array => Buffer.alloc(n, fill)

export function htlc(nodeFill: number, chanId: bigint, htlcId: bigint, amountMsat: bigint): HtlcRef {
  return { circuit: { node: bytes(33, nodeFill), chanId, htlcId }, amountMsat }
}

export function settle(i: number, time: number, htlcs: HtlcRef[] = [htlc(2, 1n, BigInt(i), 1000n)]): AuditRecord {
  const hash = Buffer.alloc(32)
  hash.writeUInt32BE(i, 28)
  const setId = Buffer.alloc(32, 0x5e)
  setId.writeUInt32BE(i, 0)
  const amountMsat = htlcs.reduce((s, h) => s + h.amountMsat, 0n)
  return { type: 'settle_requested', time, term: 1, hash, setId, paymentAddr: bytes(32, 0xad), amountMsat, htlcs }
}

/** Every mux record of the log's cores, own core first, in append order: what a full fold reads. */
export async function muxRecordsOf(log: AuditLog): Promise<MuxRecord[]> {
  const out: MuxRecord[] = []
  for (const core of log.cores()) {
    for await (const { records } of readBlocks(core)) {
      for (const record of records) {
        const mux = toMuxRecord(record)
        if (mux !== null) out.push(mux)
      }
    }
  }
  return out
}

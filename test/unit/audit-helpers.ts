// Shared fixtures for the audit tests: temp storage that is always removed, and sample records.
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { TestContext } from 'node:test'
import { AuditLog } from '../../src/audit/log.ts'
import type { AuditRecord, HtlcRef } from '../../src/audit/records.ts'

export async function tempDir(t: TestContext): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'highwire-audit-'))
  t.after(() => rm(dir, { recursive: true, force: true }))
  return dir
}

// Opens a log and closes it after the test (before the temp dir is removed: t.after runs LIFO).
export async function openLog(t: TestContext, path: string, opts: { readOnly?: boolean; id?: string } = {}): Promise<AuditLog> {
  const log = await AuditLog.open({ path, ...opts })
  t.after(() => log.close())
  return log
}

export const bytes = (n: number, fill: number): Uint8Array => new Uint8Array(n).fill(fill)

export function htlc(nodeFill: number, chanId: bigint, htlcId: bigint, amountMsat: bigint): HtlcRef {
  return { circuit: { node: bytes(33, nodeFill), chanId, htlcId }, amountMsat }
}

export function settle(i: number, time: number, htlcs: HtlcRef[] = [htlc(2, 1n, BigInt(i), 1000n)]): AuditRecord {
  const hash = Buffer.alloc(32)
  hash.writeUInt32BE(i, 28)
  const setId = Buffer.alloc(32, 0x5e)
  setId.writeUInt32BE(i, 0)
  const amountMsat = htlcs.reduce((s, h) => s + h.amountMsat, 0n)
  return { type: 'settle_requested', time, hash, setId, paymentAddr: bytes(32, 0xad), amountMsat, htlcs }
}

// The replay library behind `node src audit` (DESIGN.md "Audit log"): verify, timeline, state,
// statement. Each function reads an opened AuditLog (own storage, or a copy opened read-only) and
// returns data; printing and exit codes belong to the CLI.
import Corestore from 'corestore'
import type Hypercore from 'hypercore'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { readBlocks, type AuditLog } from './log.ts'
import { applyRecord, emptyRegistry, type Registry } from './registry.ts'
import { AuditRecordError, type AuditRecord, type RecordType } from './records.ts'

const hex = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex')

export interface Located {
  core: string // hex key of the core that holds the record (its writer)
  block: number
  index: number // position in the block
  record: AuditRecord
}

export interface CoreBlock {
  core: string // hex key of the core that holds the block (its writer)
  block: number
  records: AuditRecord[]
}

// Every locally stored block of `cores` (default: every core, own core first), in log order per
// core. Callers loop over a block's records synchronously: one await per block, not per record.
export async function* allBlocks(log: AuditLog, cores: Hypercore[] = log.cores()): AsyncGenerator<CoreBlock> {
  for (const core of cores) {
    const key = hex(core.key)
    for await (const { index, records } of readBlocks(core)) yield { core: key, block: index, records }
  }
}

// ---- verify ----

// Checks a stored signed envelope (DESIGN.md "Messages"); injected so the audit log does not
// depend on the cluster's envelope format. Returns false or throws for a bad signature.
export type EnvelopeVerifier = (envelope: Uint8Array, peer: Uint8Array) => boolean

export interface CoreCheck {
  key: string
  length: number
  ok: boolean
  error?: string
}

export interface EnvelopeFailure {
  core: string
  block: number
  index: number
  error: string
}

export interface VerifyReport {
  ok: boolean
  cores: CoreCheck[]
  envelopes: { checked: number; failed: EnvelopeFailure[] }
}

// Replicates every core into a fresh Corestore, where Hypercore checks each block against the
// writer's signed Merkle tree (a tampered block is rejected with a verification error), then
// compares lengths and tree hashes; then checks every stored envelope with `verifyEnvelope`.
export async function verify(
  log: AuditLog,
  { verifyEnvelope, timeoutMs = 10_000, cores: selected = log.cores() }: { verifyEnvelope: EnvelopeVerifier; timeoutMs?: number; cores?: Hypercore[] }
): Promise<VerifyReport> {
  const dir = await mkdtemp(join(tmpdir(), 'highwire-verify-'))
  const fresh = new Corestore(dir)
  const checks: CoreCheck[] = []
  try {
    for (const core of selected) checks.push(await verifyCore(log, fresh, core, timeoutMs))
  } finally {
    await fresh.close()
    await rm(dir, { recursive: true, force: true })
  }
  // A core that failed its check has untrustworthy blocks: its envelopes are not read.
  const envelopes = await verifyEnvelopes(selected.filter((_core, i) => checks[i]!.ok), verifyEnvelope)
  return { ok: checks.every((c) => c.ok) && envelopes.failed.length === 0, cores: checks, envelopes }
}

// One replication stream per core: a read-only store, whose replicas are not downloading, did not
// answer for a second core on a stream it had already served one core on (seen with corestore 7).
async function verifyCore(log: AuditLog, fresh: Corestore, source: Hypercore, timeoutMs: number): Promise<CoreCheck> {
  const key = hex(source.key)
  const length = source.contiguousLength
  const a = log.replicate(true)
  const b = fresh.replicate(false)
  a.pipe(b).pipe(a)
  const swallow = (): void => {}
  a.on('error', swallow)
  b.on('error', swallow)
  const copy = fresh.get({ key: source.key, writable: false })
  let timer: NodeJS.Timeout | undefined
  let onError: ((err: Error) => void) | undefined
  try {
    await copy.ready()
    if (length === 0) return { key, length, ok: true }
    const failed = new Promise<never>((_resolve, reject) => {
      onError = (err) => reject(new Error(`verification failed: ${err.message}`))
      copy.on('verification-error', onError)
      timer = setTimeout(() => reject(new Error(`timed out after ${timeoutMs} ms`)), timeoutMs)
    })
    await Promise.race([copy.download({ start: 0, end: length }).done(), failed])
    const [mine, theirs] = await Promise.all([source.treeHash(length), copy.treeHash(length)])
    if (Buffer.compare(mine, theirs) !== 0) return { key, length, ok: false, error: 'tree hash differs' }
    return { key, length, ok: true }
  } catch (err) {
    return { key, length, ok: false, error: (err as Error).message }
  } finally {
    clearTimeout(timer)
    a.destroy()
    b.destroy()
    if (onError !== undefined) copy.off('verification-error', onError)
    await copy.close()
  }
}

// Every stored envelope of `cores`; a block its own writer signed but that does not decode is a
// failure too (index -1), reported rather than thrown.
async function verifyEnvelopes(cores: Hypercore[], check: EnvelopeVerifier): Promise<VerifyReport['envelopes']> {
  const failed: EnvelopeFailure[] = []
  let checked = 0
  for (const source of cores) {
    const core = hex(source.key)
    let block = 0
    try {
      for await (const { index, records } of readBlocks(source)) {
        block = index + 1
        records.forEach((record, at) => {
          if (record.type !== 'hello' && record.type !== 'envelope') return
          checked++
          let error = 'bad signature'
          let ok = false
          try {
            ok = check(record.envelope, record.peer)
          } catch (err) {
            error = (err as Error).message
          }
          if (!ok) failed.push({ core, block: index, index: at, error })
        })
      }
    } catch (err) {
      if (!(err instanceof AuditRecordError)) throw err
      failed.push({ core, block, index: -1, error: err.message })
    }
  }
  return { checked, failed }
}

// ---- timeline ----

export interface TimelineFilter {
  from?: number // unix ms, inclusive
  to?: number // unix ms, exclusive
  types?: ReadonlySet<RecordType>
  hash?: string // hex payment hash
  node?: string // hex key: a writer core, agent, peer or LND node named in the record
}

export async function timeline(log: AuditLog, filter: TimelineFilter = {}, cores: Hypercore[] = log.cores()): Promise<Located[]> {
  const out: Located[] = []
  for await (const { core, block, records } of allBlocks(log, cores)) {
    records.forEach((record, index) => {
      const entry = { core, block, index, record }
      if (matches(entry, filter)) out.push(entry)
    })
  }
  return out.sort(byTime)
}

// Time order; records of one instant keep their log order within a core.
export function byTime(x: Located, y: Located): number {
  return x.record.time - y.record.time || x.core.localeCompare(y.core) || x.block - y.block || x.index - y.index
}

const NODE_FIELDS = ['node', 'peer', 'agent', 'leader', 'candidate', 'requester'] as const

export function matches({ core, record }: Located, f: TimelineFilter): boolean {
  if (f.from !== undefined && record.time < f.from) return false
  if (f.to !== undefined && record.time >= f.to) return false
  if (f.types !== undefined && !f.types.has(record.type)) return false
  const fields = record as unknown as Record<string, unknown>
  if (f.hash !== undefined && !(fields.hash instanceof Uint8Array && hex(fields.hash) === f.hash)) return false
  if (f.node !== undefined) {
    const named = NODE_FIELDS.some((k) => fields[k] instanceof Uint8Array && hex(fields[k] as Uint8Array) === f.node)
    const inSet = record.type === 'settle_requested' || record.type === 'set_accepted'
      ? record.htlcs.some((h) => hex(h.circuit.node) === f.node)
      : false
    if (core !== f.node && !named && !inSet) return false
  }
  return true
}

// ---- state ----

// The registry over the own core and every replica (or `cores`), folded from the first record: the
// reference for openRegistry (checkpoint.ts), which a restarting agent uses instead.
export async function state(log: AuditLog, cores: Hypercore[] = log.cores()): Promise<Registry> {
  const reg = emptyRegistry()
  for await (const { core, records } of allBlocks(log, cores)) for (const record of records) applyRecord(reg, record, core)
  return reg
}

// ---- statement ----

export interface NodeLine {
  htlcs: number
  msat: bigint
  invoices: Map<string, { htlcs: number; msat: bigint }> // by hex payment hash
}

export interface Statement {
  from: number
  to: number
  // operator (hex key of the agent core that announced the node with lnd_connect; 'unknown' if
  // none did) -> node (hex 33-byte pubkey) -> what that node took for the virtual node
  operators: Map<string, Map<string, NodeLine>>
  total: { htlcs: number; msat: bigint; invoices: number }
}

// Per operator and per node: HTLCs and msat settled for the virtual node, per invoice and in
// total, for invoices whose final status `settled` was recorded in [from, to). Amounts are the
// intercepted amounts of the parts in the settled set, i.e. what each node received.
export async function statement(
  log: AuditLog,
  { from = 0, to = Number.MAX_SAFE_INTEGER, cores = log.cores() }: { from?: number; to?: number; cores?: Hypercore[] } = {}
): Promise<Statement> {
  const fold = new StatementFold(from, to)
  for await (const { core, records } of allBlocks(log, cores)) for (const record of records) fold.add(core, record)
  return fold.result()
}

// The statement as a pure fold over records, each with the core that holds it (log order within a
// core; cores in any order, replicas included: a record held by several cores counts once).
export class StatementFold {
  private readonly operatorOf = new Map<string, string>()
  private readonly sets = new Map<string, AuditRecord & { type: 'settle_requested' }>() // by hash+setId
  private readonly settled = new Set<string>()

  constructor(
    private readonly from = 0,
    private readonly to = Number.MAX_SAFE_INTEGER
  ) {}

  add(core: string, record: AuditRecord): void {
    if (record.type === 'lnd_connect') this.operatorOf.set(hex(record.node), core)
    else if (record.type === 'settle_requested') this.sets.set(hex(record.hash) + hex(record.setId), record)
    else if (record.type === 'settle_final' && record.status === 'settled' && record.time >= this.from && record.time < this.to) {
      this.settled.add(hex(record.hash) + hex(record.setId))
    }
  }

  result(): Statement {
    const operators = new Map<string, Map<string, NodeLine>>()
    const total = { htlcs: 0, msat: 0n, invoices: 0 }
    for (const id of this.settled) {
      const set = this.sets.get(id)
      if (set === undefined) continue
      const hash = hex(set.hash)
      total.invoices++
      for (const { circuit, amountMsat } of set.htlcs) {
        const node = hex(circuit.node)
        const operator = this.operatorOf.get(node) ?? 'unknown'
        let nodes = operators.get(operator)
        if (nodes === undefined) operators.set(operator, (nodes = new Map()))
        let line = nodes.get(node)
        if (line === undefined) nodes.set(node, (line = { htlcs: 0, msat: 0n, invoices: new Map() }))
        const inv = line.invoices.get(hash) ?? { htlcs: 0, msat: 0n }
        line.invoices.set(hash, { htlcs: inv.htlcs + 1, msat: inv.msat + amountMsat })
        line.htlcs++
        line.msat += amountMsat
        total.htlcs++
        total.msat += amountMsat
      }
    }
    return { from: this.from, to: this.to, operators, total }
  }
}

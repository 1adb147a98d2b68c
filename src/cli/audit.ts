// `node src audit <verify|timeline|state|statement>`: the replay tool (DESIGN.md "Audit log").
// Opens the audit storage read-only, so it runs beside a live agent, and never needs the cluster
// secret: the storage path comes from `--storage` or the raw config's `storage.path`.
// Exit codes: 0 done, 1 verification failed or the storage could not be read, 2 bad arguments.
import { existsSync } from 'node:fs'
import type Hypercore from 'hypercore'
import { AuditLog, readBlocks } from '../audit/log.ts'
import { openRegistry } from '../audit/checkpoint.ts'
import { byTime, matches, state, statement, timeline, verify, type Located, type Statement, type TimelineFilter } from '../audit/replay.ts'
import { SCHEMA, recordToJSON, type FieldKind, type HtlcRef, type RecordType } from '../audit/records.ts'
import type { Registry } from '../audit/registry.ts'
import { decodeEnvelope, verifyEnvelope } from '../cluster/envelope.ts'
import { loadRawConfig } from '../config/load.ts'
import { ConfigError, isTree } from '../config/reader.ts'
import { parseDuration } from '../config/duration.ts'
import { expandPath } from '../config/schema.ts'
import { CodedError } from '../errors.ts'

export const AUDIT_USAGE =
  'usage: audit <verify|timeline|state|statement> [--storage PATH] [--core KEY|--all] [--json] ' +
  '[--since T] [--until T] [--type T[,T]] [--hash H] [--node N] [--follow]'

const COMMANDS = ['verify', 'timeline', 'state', 'statement'] as const
type Command = (typeof COMMANDS)[number]

const VALUE_OPTIONS = ['storage', 'core', 'since', 'until', 'type', 'hash', 'node'] as const
const FLAG_OPTIONS = ['all', 'json', 'follow'] as const
type Option = (typeof VALUE_OPTIONS)[number] | (typeof FLAG_OPTIONS)[number]

// What each command accepts; anything else is a usage error rather than silently ignored.
const ACCEPTS: Record<Command, readonly Option[]> = {
  verify: ['storage', 'core', 'all', 'json'],
  timeline: ['storage', 'core', 'all', 'json', 'since', 'until', 'type', 'hash', 'node', 'follow'],
  state: ['storage', 'core', 'all', 'json'],
  statement: ['storage', 'core', 'all', 'json', 'since', 'until']
}

// How often `--follow` reopens the storage read-only: a read-only RocksDB open sees what the
// writer had appended at that moment, and nothing after (see log.ts "Second readers").
export const FOLLOW_INTERVAL_MS = 500

export class UsageError extends CodedError<'usage'> {
  constructor(message: string) {
    super('usage', message)
  }
}

export interface AuditArgs {
  command: Command
  storage?: string
  core?: string // hex key
  json: boolean
  follow: boolean
  filter: TimelineFilter
}

const HEX32 = /^[0-9a-f]{64}$/
const HEX33 = /^[0-9a-f]{66}$/
const ISO_TIME = /^\d{4}-\d{2}-\d{2}(T[\d:.]+(Z|[+-]\d{2}:?\d{2})?)?$/

// A time bound: an ISO 8601 time, or a duration ("1h", "30m") meaning that long before `now`.
export function parseTime(option: string, text: string, now: number): number {
  if (ISO_TIME.test(text)) {
    const ms = Date.parse(text)
    if (Number.isFinite(ms)) return ms
  }
  const ago = parseDuration(text)
  if ('ms' in ago) return now - ago.ms
  throw new UsageError(`--${option}: "${text}" is neither an ISO time (2024-05-01T12:00:00Z) nor a duration ago (1h, 30m)`)
}

function parseHex(option: string, text: string, lengths: readonly RegExp[], what: string): string {
  const lower = text.toLowerCase()
  if (!lengths.some((re) => re.test(lower))) throw new UsageError(`--${option}: "${text}" is not ${what}`)
  return lower
}

function parseTypes(text: string): Set<RecordType> {
  const types = new Set<RecordType>()
  for (const name of text.split(',')) {
    if (!Object.hasOwn(SCHEMA, name)) throw new UsageError(`--type: unknown record type "${name}" (known: ${Object.keys(SCHEMA).join(', ')})`)
    types.add(name as RecordType)
  }
  return types
}

export function parseAuditArgs(args: string[], now: number): AuditArgs {
  const [command, ...rest] = args
  if (command === undefined || !(COMMANDS as readonly string[]).includes(command)) {
    throw new UsageError(`audit: ${command === undefined ? 'missing command' : `unknown command "${command}"`}; ${AUDIT_USAGE}`)
  }
  const cmd = command as Command
  const seen = new Map<Option, string | true>()
  const types = new Set<RecordType>()
  for (let i = 0; i < rest.length; i++) {
    const arg = rest[i]!
    const m = /^--([a-z]+)(?:=(.*))?$/s.exec(arg)
    if (m === null) throw new UsageError(`audit ${cmd}: unexpected argument "${arg}"`)
    const name = m[1] as Option
    const isValue = (VALUE_OPTIONS as readonly string[]).includes(name)
    if (!isValue && !(FLAG_OPTIONS as readonly string[]).includes(name)) throw new UsageError(`audit ${cmd}: unknown option --${m[1]}`)
    if (!ACCEPTS[cmd].includes(name)) throw new UsageError(`audit ${cmd}: --${name} does not apply (accepts ${ACCEPTS[cmd].map((o) => '--' + o).join(' ')})`)
    let value: string | true = true
    if (isValue) {
      const next = m[2] ?? rest[++i]
      if (next === undefined || next === '') throw new UsageError(`--${name}: missing value`)
      value = next
    } else if (m[2] !== undefined) {
      throw new UsageError(`--${name} takes no value`)
    }
    if (name === 'type') for (const t of parseTypes(value as string)) types.add(t)
    else if (seen.has(name)) throw new UsageError(`--${name} given twice`)
    seen.set(name, value)
  }
  if (seen.has('core') && seen.has('all')) throw new UsageError('--core and --all exclude each other')
  const str = (o: Option): string | undefined => seen.get(o) as string | undefined
  const filter: TimelineFilter = {}
  if (str('since') !== undefined) filter.from = parseTime('since', str('since')!, now)
  if (str('until') !== undefined) filter.to = parseTime('until', str('until')!, now)
  if (filter.from !== undefined && filter.to !== undefined && filter.from >= filter.to) throw new UsageError('--since must be before --until')
  if (types.size > 0) filter.types = types
  if (str('hash') !== undefined) filter.hash = parseHex('hash', str('hash')!, [HEX32], 'a 32-byte payment hash in hex')
  if (str('node') !== undefined) filter.node = parseHex('node', str('node')!, [HEX32, HEX33], 'a 32-byte agent key or 33-byte node pubkey in hex')
  return {
    command: cmd,
    ...(str('storage') === undefined ? {} : { storage: str('storage') }),
    ...(str('core') === undefined ? {} : { core: parseHex('core', str('core')!, [HEX32], 'a 32-byte core key in hex') }),
    json: seen.has('json'),
    follow: seen.has('follow'),
    filter
  }
}

// Only `storage.path` is read: the replay tool must work where the cluster secret is absent.
async function storagePath(args: AuditArgs): Promise<string> {
  if (args.storage !== undefined) return expandPath(args.storage)
  const raw = await loadRawConfig()
  const path = isTree(raw) && isTree(raw.storage) ? raw.storage.path : undefined
  if (typeof path !== 'string' || path.length === 0) throw new UsageError('config storage.path: must be a non-empty string (or pass --storage PATH)')
  return expandPath(path)
}

const hex = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex')
const iso = (ms: number): string => new Date(ms).toISOString()

// The cluster's envelope check (src/cluster/envelope.ts): canonical decoding, the ed25519 signature
// under the envelope domain, and the signer being the peer it was stored as received from.
export function verifyClusterEnvelope(bytes: Uint8Array, peer: Uint8Array): boolean {
  const envelope = decodeEnvelope(bytes)
  if (Buffer.compare(envelope.from, peer) !== 0) throw new Error(`signed by ${hex(envelope.from)}, stored as received from ${hex(peer)}`)
  return verifyEnvelope(envelope)
}

type Out = (line: string) => void

export async function auditCommand(args: string[], out: Out, err: Out): Promise<number> {
  let parsed: AuditArgs
  let path: string
  try {
    parsed = parseAuditArgs(args, Date.now())
    path = await storagePath(parsed)
  } catch (e) {
    if (!(e instanceof UsageError) && !(e instanceof ConfigError)) throw e
    err(e instanceof UsageError ? e.message : e.message.split('\n')[0]!)
    return 2
  }
  if (!existsSync(path)) {
    err(`audit: no audit storage at ${path}`)
    return 1
  }
  let log: AuditLog
  try {
    log = await AuditLog.open({ path, readOnly: true })
  } catch (e) {
    err(`audit: cannot open ${path}: ${(e as Error).message}`)
    return 1
  }
  let code: number
  let follow: Map<string, number> | null = null
  try {
    const cores = selectCores(log, parsed.core)
    if (cores === null) {
      err(`--core: no core ${parsed.core} in ${path} (cores: ${log.cores().map((c) => hex(c.key)).join(', ')})`)
      return 2
    }
    code = await run(parsed, log, cores, out, err)
    if (parsed.follow) follow = new Map(cores.map((c) => [hex(c.key), c.contiguousLength]))
  } finally {
    await log.close()
  }
  if (follow !== null) await followTimeline(path, parsed, follow, out)
  return code
}

function selectCores(log: AuditLog, key: string | undefined): Hypercore[] | null {
  if (key === undefined) return log.cores()
  const core = log.cores().find((c) => hex(c.key) === key)
  return core === undefined ? null : [core]
}

async function run(args: AuditArgs, log: AuditLog, cores: Hypercore[], out: Out, err: Out): Promise<number> {
  switch (args.command) {
    case 'verify':
      return printVerify(await verify(log, { verifyEnvelope: verifyClusterEnvelope, cores }), log, args.json, out, err)
    case 'timeline':
      for (const entry of await timeline(log, args.filter, cores)) out(timelineLine(entry, args.json))
      return 0
    case 'state': {
      // The whole store: the checkpointed registry, as the agent rebuilds it. One core: folded alone.
      const registry = args.core === undefined ? (await openRegistry(log)).state : await state(log, cores)
      printState(registry, args.json, out)
      return 0
    }
    case 'statement':
      printStatement(await statement(log, { from: args.filter.from, to: args.filter.to, cores }), args.json, out)
      return 0
  }
}

// ---- verify ----

function printVerify(report: Awaited<ReturnType<typeof verify>>, log: AuditLog, json: boolean, out: Out, err: Out): number {
  if (json) {
    out(JSON.stringify(report))
  } else {
    const own = hex(log.key)
    for (const c of report.cores) {
      const line = `core ${c.key} (${c.key === own ? 'own' : 'replica'}) ${c.length} blocks: ${c.ok ? 'ok' : 'FAILED: ' + c.error}`
      if (c.ok) out(line)
      else err(line)
    }
    out(`envelopes: ${report.envelopes.checked} checked, ${report.envelopes.failed.length} failed`)
    for (const f of report.envelopes.failed) err(`envelope in core ${f.core} block ${f.block} record ${f.index}: FAILED: ${f.error}`)
  }
  ;(report.ok ? out : err)(report.ok ? 'verify: ok' : 'verify: FAILED')
  return report.ok ? 0 : 1
}

// ---- timeline ----

export function timelineLine({ core, block, index, record }: Located, json: boolean): string {
  if (json) return JSON.stringify({ core, block, index, ...recordToJSON(record) })
  const fields = record as unknown as Record<string, unknown>
  const parts = SCHEMA[record.type].fields.map(([name, kind]) => `${name}=${formatField(name, kind, fields[name])}`)
  return `${iso(record.time)}  ${core.slice(0, 8)}  ${record.type}  ${parts.join(' ')}`
}

function formatField(name: string, kind: FieldKind, v: unknown): string {
  switch (kind) {
    case 'str':
      return JSON.stringify(v)
    case 'bytes':
      // A stored envelope is binary; its bytes are in --json.
      return name === 'envelope' ? `<${(v as Uint8Array).byteLength} bytes>` : hex(v as Uint8Array)
    case 'key32':
    case 'node33':
      return hex(v as Uint8Array)
    case 'htlcs':
      return '[' + (v as HtlcRef[]).map((h) =>
        `${hex(h.circuit.node).slice(0, 8)}:${h.circuit.chanId}:${h.circuit.htlcId}=${h.amountMsat}msat`).join(',') + ']'
    default:
      return String(v)
  }
}

// Tails the storage: every FOLLOW_INTERVAL_MS, reopen it read-only and print the records stored
// since, in time order per poll. Ends cleanly on SIGINT or SIGTERM.
async function followTimeline(path: string, args: AuditArgs, folded: Map<string, number>, out: Out): Promise<void> {
  let stop: () => void = () => {}
  let stopped = false
  const stopped$ = new Promise<void>((resolve) => {
    stop = () => {
      stopped = true
      resolve()
    }
  })
  process.once('SIGINT', stop)
  process.once('SIGTERM', stop)
  try {
    while (!stopped) {
      await Promise.race([stopped$, new Promise((r) => setTimeout(r, FOLLOW_INTERVAL_MS))])
      if (stopped) break
      const log = await AuditLog.open({ path, readOnly: true })
      try {
        const fresh: Located[] = []
        for (const core of log.cores()) {
          const key = hex(core.key)
          if (args.core !== undefined && key !== args.core) continue
          let next = folded.get(key) ?? 0
          for await (const { index, records } of readBlocks(core, next)) {
            records.forEach((record, i) => {
              const entry = { core: key, block: index, index: i, record }
              if (matches(entry, args.filter)) fresh.push(entry)
            })
            next = index + 1
          }
          folded.set(key, next)
        }
        for (const entry of fresh.sort(byTime)) out(timelineLine(entry, args.json))
      } finally {
        await log.close()
      }
    }
  } finally {
    process.off('SIGINT', stop)
    process.off('SIGTERM', stop)
  }
}

// ---- state ----

function printState(reg: Registry, json: boolean, out: Out): void {
  const entries = [...reg.invoices].sort(([, a], [, b]) => a.time - b.time)
  if (json) {
    for (const [hash, e] of entries) {
      out(JSON.stringify({ hash, status: e.status, amount_msat: e.amountMsat.toString(), set_id: e.setId === null ? null : hex(e.setId), time: e.time, writer: e.writer }))
    }
    for (const k of reg.conflicts) out(JSON.stringify({ conflict: k.reason, hash: k.hash, writer: k.writer }))
    return
  }
  const counts = new Map<string, number>()
  for (const [, e] of entries) counts.set(e.status, (counts.get(e.status) ?? 0) + 1)
  out(`${entries.length} invoices: ${['settled', 'settle_requested', 'failed', 'cancelled'].map((s) => `${counts.get(s) ?? 0} ${s}`).join(', ')}; ${reg.conflicts.length} conflicts`)
  for (const [hash, e] of entries) {
    out(`${hash}  ${e.status.padEnd(16)}  ${e.amountMsat.toString().padStart(15)} msat  set ${e.setId === null ? '-'.padEnd(64) : hex(e.setId)}  ${iso(e.time)}  by ${e.writer.slice(0, 8)}`)
  }
  for (const k of reg.conflicts) out(`CONFLICT ${k.reason}  ${k.hash}  by ${k.writer}`)
}

// ---- statement ----

function statementJSON(s: Statement): Record<string, unknown> {
  return {
    from: s.from,
    to: s.to,
    operators: [...s.operators].map(([operator, nodes]) => {
      const lines = [...nodes.values()]
      return {
        operator,
        htlcs: lines.reduce((n, l) => n + l.htlcs, 0),
        msat: lines.reduce((n, l) => n + l.msat, 0n).toString(),
        nodes: [...nodes].map(([node, line]) => ({
          node,
          htlcs: line.htlcs,
          msat: line.msat.toString(),
          invoices: [...line.invoices].map(([hash, v]) => ({ hash, htlcs: v.htlcs, msat: v.msat.toString() }))
        }))
      }
    }),
    total: { invoices: s.total.invoices, htlcs: s.total.htlcs, msat: s.total.msat.toString() }
  }
}

// "    invoice " and a 64-hex payment hash, the longest label of the sheet.
const LABEL_WIDTH = 76

// A sheet to settle accounts with: per operator, per node, per invoice, then the totals.
function printStatement(s: Statement, json: boolean, out: Out): void {
  if (json) {
    out(JSON.stringify(statementJSON(s)))
    return
  }
  const from = s.from === 0 ? 'the beginning' : iso(s.from)
  const to = s.to === Number.MAX_SAFE_INTEGER ? 'now' : iso(s.to)
  out(`statement: HTLCs settled for the virtual node, invoices with final status settled from ${from} until ${to}`)
  const row = (label: string, htlcs: number, msat: bigint): string => `${label.padEnd(LABEL_WIDTH)} ${String(htlcs).padStart(7)} ${msat.toString().padStart(18)}`
  out(`${''.padEnd(LABEL_WIDTH)} ${'htlcs'.padStart(7)} ${'msat'.padStart(18)}`)
  for (const [operator, nodes] of [...s.operators].sort(([a], [b]) => a.localeCompare(b))) {
    out(`operator ${operator}`)
    let htlcs = 0
    let msat = 0n
    for (const [node, line] of [...nodes].sort(([a], [b]) => a.localeCompare(b))) {
      out(`  node ${node}`)
      for (const [hash, v] of line.invoices) out(row(`    invoice ${hash}`, v.htlcs, v.msat))
      out(row(`  node total`, line.htlcs, line.msat))
      htlcs += line.htlcs
      msat += line.msat
    }
    out(row(`operator total`, htlcs, msat))
  }
  out(row(`TOTAL (${s.total.invoices} invoices)`, s.total.htlcs, s.total.msat))
}

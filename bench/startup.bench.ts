// Agent start-up with 1,000,000 settled invoices (issue 7: ≤ 10 s): Agent.start, from opening the
// storage until the agent serves the virtual node, in a fresh process (startup-process.ts), on a
// real Hypercore on disk with one simulated lnd node (an agent without nodes is no voter and never
// leads alone) and no swarm. The agent reads
// its mux ledger from the snapshot plus the tail (src/audit/mux-store.ts); the fixture's snapshot
// was taken CHECKPOINT_EVERY records before the end, the longest tail a restart can meet, in the
// worst block layout (one record per block, as an idle agent writes them). Reference, same run: the
// same start-up without the snapshot, the ledger folded from the first record. Also: the snapshot's
// size, the time to write it, and the longest the event loop waited meanwhile.
// HIGHWIRE_STARTUP_INVOICES changes the count; the fixture is cached under the OS temp dir, as
// building it takes minutes.
import { spawn } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import { once } from 'node:events'
import { existsSync } from 'node:fs'
import { copyFile, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { monitorEventLoopDelay } from 'node:perf_hooks'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { AuditLog } from '../src/audit/log.ts'
import { MUX_SNAPSHOT_FILE, openMuxLedger, toAuditRecord } from '../src/audit/mux-store.ts'
import { encodeBlock, encodeRecord } from '../src/audit/records.ts'
import { CHECKPOINT_EVERY } from '../src/audit/snapshot.ts'
import { configWithDefaults } from '../src/config/defaults.ts'
import { newPaymentAddr, statelessPreimage } from '../src/ln/stateless.ts'
import type { MuxRecord } from '../src/mux/types.ts'
import { SimNetwork } from '../src/sim/network.ts'
import { SimLndServer } from '../src/sim/server.ts'
import { configToJson } from './config-json.ts'
import type { Emit } from './index.ts'

// Bump when the record format or the fixture's shape changes, so a stale cache is not reused.
const FIXTURE_VERSION = 2
const IDENTITY_KEY = Buffer.alloc(32, 0x17)
const NODE = Buffer.alloc(33, 2)
const AMOUNT_MSAT = 100_000n
const TARGET_S = 10
const RUNS = 3
const START_SCRIPT = fileURLToPath(new URL('./startup-process.ts', import.meta.url))

const seconds = (start: number): number => (performance.now() - start) / 1000
const mb = (bytes: number): number => Math.round(bytes / 1e6)

// Invoice i, settled: its settle request and its final record, as the leader writes them.
function settledInvoice(i: number, time: number): [MuxRecord, MuxRecord] {
  const random16 = Buffer.alloc(16)
  random16.writeUInt32BE(i)
  const paymentAddr = newPaymentAddr(2_000_000_000, AMOUNT_MSAT, random16)
  const hash = createHash('sha256').update(statelessPreimage(IDENTITY_KEY, paymentAddr)).digest()
  const setId = createHash('sha256').update(paymentAddr).digest()
  const htlcs = [{ circuit: { node: NODE, chanId: 1n, htlcId: BigInt(i) }, amountMsat: AMOUNT_MSAT }]
  return [
    { type: 'settle_requested', term: 1, time, hash, setId, paymentAddr, amountMsat: AMOUNT_MSAT, htlcs },
    { type: 'final', time: time + 1, hash, setId, status: 'settled' }
  ]
}

async function buildFixture(dir: string, invoices: number): Promise<void> {
  const log = await AuditLog.open({ path: join(dir, 'audit') })
  try {
    const total = invoices * 2
    const append = async (from: number, to: number): Promise<void> => {
      for (let i = from; i < to; i += 1000) {
        const blocks: Uint8Array[] = []
        for (let r = i; r < Math.min(to, i + 1000); r++) {
          blocks.push(encodeBlock([encodeRecord(toAuditRecord(settledInvoice(r >> 1, 1_700_000_000_000 + r)[r & 1]!))]))
        }
        await log.core.append(blocks)
      }
    }
    const snapshotAt = Math.max(0, total - CHECKPOINT_EVERY)
    await append(0, snapshotAt)
    await (await openMuxLedger(log, IDENTITY_KEY, { checkpointEvery: Infinity })).checkpoint()
    await append(snapshotAt, total)
  } finally {
    await log.close()
  }
  // Every start ends with a snapshot of its own (a clean stop): each timed start begins from this copy.
  await copyFile(join(dir, 'audit', MUX_SNAPSHOT_FILE), join(dir, 'fixture.snapshot'))
}

interface Start {
  serveS: number
  closeS: number
  rssMb: number
  heapMb: number
  ledger: string
}

// One start-up and clean stop of the agent on `dir`, in a process of its own.
async function timedStart(dir: string): Promise<Start> {
  const network = new SimNetwork({ clock: Date.now, random: (n) => randomBytes(n) })
  const server = await SimLndServer.start(network.addNode({ name: 'alice', secretKey: randomBytes(32) }))
  const config = configWithDefaults({
    mux: { identityKey: IDENTITY_KEY },
    storage: { path: dir },
    api: { listen: { host: '127.0.0.1', port: 0 } },
    lnd: { nodes: [server.connection] }
  })
  try {
    const child = spawn(process.execPath, ['--import', 'tsx', START_SCRIPT, configToJson(config)], { stdio: ['ignore', 'pipe', 'pipe'] })
    const stderr: string[] = []
    createInterface({ input: child.stderr! }).on('line', (line) => stderr.push(line))
    const exited = once(child, 'exit')
    const failed = exited.then(() => {
      throw new Error(`the agent process ended without a result: ${stderr.slice(-5).join(' | ')}`)
    })
    const [line] = (await Promise.race([once(createInterface({ input: child.stdout! }), 'line'), failed])) as [string]
    await exited
    return JSON.parse(line) as Start
  } finally {
    await server.close()
  }
}

const field = (line: string, name: string): string | undefined => new RegExp(`${name}=(\\S+)`).exec(line)?.[1]

// The snapshot written by a running agent: size, time, and the event loop's longest wait meanwhile.
async function snapshotWrite(emit: Emit, dir: string, invoices: number): Promise<void> {
  const log = await AuditLog.open({ path: join(dir, 'audit') })
  try {
    const ledger = await openMuxLedger(log, IDENTITY_KEY)
    const delay = monitorEventLoopDelay({ resolution: 10 })
    delay.enable()
    const start = performance.now()
    await ledger.checkpoint()
    const writeS = seconds(start)
    delay.disable()
    const { size } = await stat(join(dir, 'audit', MUX_SNAPSHOT_FILE))
    emit('mux_snapshot_write_s', writeS, 's', { invoices, bytes: size, mb: mb(size), longest_event_loop_wait_ms: Math.round(delay.max / 1e6) })
  } finally {
    await log.close()
  }
}

export default async function (emit: Emit): Promise<void> {
  const invoices = Number(process.env.HIGHWIRE_STARTUP_INVOICES ?? 1_000_000)
  const dir = join(tmpdir(), `highwire-bench-startup-v${FIXTURE_VERSION}-${invoices}`)
  const done = join(dir, 'fixture-complete')
  let buildS: number | undefined
  if (!existsSync(done)) {
    await rm(dir, { recursive: true, force: true })
    const start = performance.now()
    await buildFixture(dir, invoices)
    await writeFile(done, String(invoices))
    buildS = seconds(start)
  }
  const name = invoices === 1_000_000 ? '1m' : String(invoices)
  const snapshot = join(dir, 'audit', MUX_SNAPSHOT_FILE)

  const starts: Start[] = []
  for (let i = 0; i < RUNS; i++) {
    await copyFile(join(dir, 'fixture.snapshot'), snapshot)
    starts.push(await timedStart(dir))
  }
  const median = [...starts].sort((a, b) => a.serveS - b.serveS)[Math.floor(RUNS / 2)]!
  emit(`agent_start_${name}_settled_s`, median.serveS, 's', {
    target_s: TARGET_S,
    runs_s: starts.map((s) => Number(s.serveS.toFixed(2))),
    snapshot: field(median.ledger, 'snapshot'),
    tail_records: Number(field(median.ledger, 'tailRecords')),
    rss_mb: median.rssMb,
    heap_mb: median.heapMb,
    clean_stop_s: Number(median.closeS.toFixed(2)),
    ...(buildS === undefined ? { fixture: 'cached' } : { fixture_build_s: Number(buildS.toFixed(1)) })
  })

  await copyFile(join(dir, 'fixture.snapshot'), snapshot)
  await snapshotWrite(emit, dir, invoices)

  // Reference: the same start-up folding every record (no snapshot, or one refused).
  await rm(snapshot)
  const full = await timedStart(dir)
  emit(`agent_start_${name}_settled_no_snapshot_s`, full.serveS, 's', {
    snapshot: field(full.ledger, 'snapshot'),
    tail_records: Number(field(full.ledger, 'tailRecords')),
    rss_mb: full.rssMb,
    heap_mb: full.heapMb
  })
  await copyFile(join(dir, 'fixture.snapshot'), snapshot)
}

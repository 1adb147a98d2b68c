// The replay tool as an operator runs it: a separate process over an audit store, configured by
// a config folder (NODE_CONFIG_DIR) whose storage.path names the store.
//
// The child runs src/cli/audit.ts's auditCommand through tsx, as `node src audit` does once
// src/cli/main.ts routes the `audit` command to it. Spawning costs a second or more per run on a
// loaded machine, so filters and argument errors are also checked by calling auditCommand here,
// with --storage (the `config` package reads NODE_CONFIG_DIR once per process).
import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { spawn, spawnSync } from 'node:child_process'
import { copyFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type Hypercore from 'hypercore'
import { AuditLog } from '../../src/audit/log.ts'
import { auditCommand } from '../../src/cli/audit.ts'
import { configRecord, type AuditRecord, type HtlcRef } from '../../src/audit/records.ts'
import { encodeEnvelope, type AgentKeyPair } from '../../src/cluster/envelope.ts'
import { tempDir, bytes, htlc, settle, replicateCore } from './audit-helpers.ts'
import { newAgentKeyPair } from './key-fixture.ts'

const root = fileURLToPath(new URL('../..', import.meta.url))
/** `node src audit …`, as an operator runs it. */
const nodeArgs = (args: string[]): string[] => [join(root, 'src'), 'audit', ...args]

interface Result { status: number | null; stdout: string; stderr: string }

function audit(cwd: string, ...args: string[]): Result {
  const r = spawnSync(process.execPath, nodeArgs(args), { cwd, env: { PATH: process.env.PATH ?? '', NODE_CONFIG_DIR: cwd }, encoding: 'utf8', timeout: 60_000 })
  return { status: r.status, stdout: r.stdout, stderr: r.stderr }
}

async function inProcess(...args: string[]): Promise<Result> {
  let stdout = ''
  let stderr = ''
  const status = await auditCommand(args, (l) => (stdout += l + '\n'), (l) => (stderr += l + '\n'))
  return { status, stdout, stderr }
}

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex')
const lines = (s: string): string[] => s.split('\n').filter((l) => l !== '')
const jsonLines = (s: string): Array<Record<string, any>> => lines(s).map((l) => JSON.parse(l))

const BASE = Date.parse('2024-05-01T00:00:00Z')
const HOUR = 3_600_000
const SECRET = 'c0ffee'.repeat(10) + 'abcd'
const NODES = { n1: 0x11, n2: 0x12, n3: 0x13 }

interface Scenario {
  dir: string // A's storage: its own core and a replica of B's
  config: string // config folder whose storage.path is `dir`
  a: string
  b: string
  hashes: string[]
  // What each node received for invoices settled in [BASE, BASE + 1 h), tallied from the parts.
  received: Map<string, { operator: string; htlcs: number; msat: bigint }>
  peer: AgentKeyPair
}

// Operator A holds n1 and n2; operator B holds n3 and is the leader that writes the settle records.
// A keeps B's core as a replica, a hello B signed, and its own config record (secret masked).
async function scenario(t: TestContext): Promise<Scenario> {
  const dir = await tempDir(t)
  const config = await tempDir(t)
  copyFileSync(join(root, 'config', 'default.json'), join(config, 'default.json'))
  writeFileSync(join(config, 'local.json'), JSON.stringify({ cluster: { secret: SECRET }, storage: { path: dir } }))
  const a = await AuditLog.open({ path: dir })
  const b = await AuditLog.open({ path: await tempDir(t) })
  const peer = newAgentKeyPair()
  await a.append(configRecord({ cluster: { secret: SECRET }, storage: { path: dir } }, BASE))
  await a.append({ type: 'lnd_connect', time: BASE, node: bytes(33, NODES.n1), alias: 'n1' }, { durable: false })
  await a.append({ type: 'lnd_connect', time: BASE, node: bytes(33, NODES.n2), alias: 'n2' }, { durable: false })
  await b.append({ type: 'lnd_connect', time: BASE, node: bytes(33, NODES.n3), alias: 'n3' }, { durable: false })
  const hello = encodeEnvelope(peer, 1, BASE + 1, { type: 'ping', nonce: 7 })
  await a.append({ type: 'hello', time: BASE + 1, peer: peer.publicKey, envelope: hello })
  await a.append({ type: 'settle_cancelled', time: BASE + 2, term: 1, hash: bytes(32, 0x99) })

  const parts: HtlcRef[][] = [
    [htlc(NODES.n1, 5n, 1n, 1000n), htlc(NODES.n3, 6n, 1n, 2000n)],
    [htlc(NODES.n2, 7n, 1n, 500n)],
    [htlc(NODES.n1, 5n, 2n, 700n)],
    [htlc(NODES.n3, 6n, 2n, 300n)]
  ]
  const outcome = ['settled', 'settled', 'failed', 'settled']
  const finalAt = [BASE + 10, BASE + 20, BASE + 30, BASE + 2 * HOUR] // the last settles after the period
  const hashes: string[] = []
  const received = new Map<string, { operator: string; htlcs: number; msat: bigint }>()
  for (let i = 0; i < parts.length; i++) {
    const r = settle(i, BASE + 5 + i, parts[i]) as AuditRecord & { type: 'settle_requested' }
    hashes.push(hex(r.hash))
    await b.append(r, { durable: false })
    await b.append({ type: 'settle_final', time: finalAt[i]!, hash: r.hash, setId: r.setId, status: outcome[i]! }, { durable: false })
    if (outcome[i] !== 'settled' || finalAt[i]! >= BASE + HOUR) continue
    for (const { circuit, amountMsat } of parts[i]!) {
      const node = hex(circuit.node)
      const tally = received.get(node) ?? { operator: hex(circuit.node[0] === NODES.n3 ? b.key : a.key), htlcs: 0, msat: 0n }
      received.set(node, { ...tally, htlcs: tally.htlcs + 1, msat: tally.msat + amountMsat })
    }
  }
  await b.append({ type: 'agent_stop', time: BASE + 3 * HOUR, reason: 'done' })

  await replicateCore(a, b)
  const scenario = { dir, config, a: hex(a.key), b: hex(b.key), hashes, received, peer }
  await a.close()
  await b.close()
  return scenario
}

test('state and timeline read the store named by the config, with filters, readable and --json', async (t) => {
  const s = await scenario(t)

  const st = audit(s.config, 'state')
  assert.equal(st.status, 0, st.stderr)
  assert.match(st.stdout, /^5 invoices: 3 settled, 0 settle_requested, 1 failed, 1 cancelled; 0 conflicts$/m)
  const json = audit(s.config, 'timeline', '--json')
  assert.equal(json.status, 0, json.stderr)
  const all = jsonLines(json.stdout)
  assert.equal(all.length, 15) // A: config, 2 lnd_connect, hello, cancel; B: lnd_connect, 4 settles and finals, stop
  assert.deepEqual(all.map((e) => e.time), [...all.map((e) => e.time)].sort((x, y) => x - y), 'time order')
  const everything = st.stdout + json.stdout + (await inProcess('timeline', '--storage', s.dir)).stdout
  assert.ok(!everything.includes(SECRET), 'the cluster secret is never printed')
  assert.match(everything, /secret\\":\\"\*\*\*\\"/, 'the config record shows it masked')

  const byHash = new Map(jsonLines((await inProcess('state', '--json', '--storage', s.dir)).stdout).map((e) => [e.hash, e]))
  assert.deepEqual(s.hashes.map((h) => byHash.get(h)?.status), ['settled', 'settled', 'failed', 'settled'])
  assert.equal(byHash.get(hex(bytes(32, 0x99)))?.status, 'cancelled')
  assert.equal(byHash.get(s.hashes[0]!)?.amount_msat, '3000')
  assert.equal(byHash.get(s.hashes[0]!)?.writer, s.b)

  const types = async (...args: string[]): Promise<string[]> =>
    jsonLines((await inProcess('timeline', '--json', '--storage', s.dir, ...args)).stdout).map((e) => e.type)
  assert.deepEqual(await types('--type', 'settle_final,agent_stop', '--since', '2024-05-01T00:00:00.025Z'), ['settle_final', 'settle_final', 'agent_stop'])
  assert.deepEqual(await types('--hash', s.hashes[1]!), ['settle_requested', 'settle_final'])
  assert.deepEqual(await types('--node', hex(bytes(33, NODES.n3)), '--until', '2024-05-01T01:00:00Z'), ['lnd_connect', 'settle_requested', 'settle_requested'])
  assert.deepEqual(await types('--core', s.a, '--type=lnd_connect'), ['lnd_connect', 'lnd_connect'])
  assert.deepEqual(await types('--since', '1h'), [], 'durations count back from now')

  const readable = lines((await inProcess('timeline', '--storage', s.dir, '--hash', s.hashes[0]!, '--type', 'settle_requested')).stdout)
  assert.equal(readable.length, 1)
  assert.match(readable[0]!, new RegExp(`^2024-05-01T00:00:00\\.005Z  ${s.b.slice(0, 8)}  settle_requested  hash=${s.hashes[0]} .*amountMsat=3000 htlcs=\\[11111111:5:1=1000msat,13131313:6:1=2000msat\\] term=1$`))
})

test('statement: per operator, node and invoice for a period, matching what each node received', async (t) => {
  const s = await scenario(t)
  const period = ['--storage', s.dir, '--since', '2024-05-01T00:00:00Z', '--until', '2024-05-01T01:00:00Z']
  const r = await inProcess('statement', '--json', ...period)
  assert.equal(r.status, 0, r.stderr)
  const sheet = JSON.parse(r.stdout)
  const got = new Map<string, { operator: string; htlcs: number; msat: bigint }>()
  for (const op of sheet.operators) {
    for (const n of op.nodes) {
      got.set(n.node, { operator: op.operator, htlcs: n.htlcs, msat: BigInt(n.msat) })
      assert.equal(n.invoices.reduce((sum: bigint, i: { msat: string }) => sum + BigInt(i.msat), 0n), BigInt(n.msat))
    }
  }
  assert.deepEqual(got, s.received)
  const totalMsat = [...s.received.values()].reduce((sum, n) => sum + n.msat, 0n)
  assert.deepEqual(sheet.total, { invoices: 2, htlcs: 3, msat: totalMsat.toString() })

  const table = (await inProcess('statement', ...period)).stdout
  assert.match(table, new RegExp(`^operator ${s.a}$`, 'm'))
  assert.match(table, new RegExp(`^    invoice ${s.hashes[0]} +1 +1000$`, 'm'))
  assert.match(table, new RegExp(`^TOTAL \\(2 invoices\\) +3 +${totalMsat}$`, 'm'))
  const later = JSON.parse((await inProcess('statement', '--json', '--storage', s.dir, '--since', '2024-05-01T01:00:00Z')).stdout)
  assert.deepEqual(later.total, { invoices: 1, htlcs: 1, msat: '300' }, 'the invoice settled after the period')
})

// Overwrites a stored block behind Hypercore's back, as a disk fault or an editing operator would.
async function tamper(core: Hypercore, index: number): Promise<void> {
  const block = Buffer.from((await core.get(index))!)
  block[block.length - 1] = block[block.length - 1]! ^ 0xff
  const storage = core.state.storage as unknown as { write(): { putBlock(i: number, b: Uint8Array): void; flush(): Promise<unknown> } }
  const tx = storage.write()
  tx.putBlock(index, block)
  await tx.flush()
}

test('verify: ok on an honest store, exit 1 naming a forged envelope and a tampered block', async (t) => {
  const s = await scenario(t)
  const ok = audit(s.config, 'verify')
  assert.equal(ok.status, 0, ok.stderr)
  assert.match(ok.stdout, new RegExp(`^core ${s.a} \\(own\\) \\d+ blocks: ok$`, 'm'))
  assert.match(ok.stdout, new RegExp(`^core ${s.b} \\(replica\\) \\d+ blocks: ok$`, 'm'))
  assert.match(ok.stdout, /^envelopes: 1 checked, 0 failed$/m)
  assert.match(ok.stdout, /^verify: ok$/m)

  const log = await AuditLog.open({ path: s.dir })
  const forged = encodeEnvelope(s.peer, 2, BASE + 50, { type: 'ping', nonce: 8 })
  forged[forged.length - 70] = forged[forged.length - 70]! ^ 1 // the body, after signing
  await log.append({ type: 'envelope', time: BASE + 50, peer: s.peer.publicKey, envelope: forged })
  const stranger = newAgentKeyPair() // validly signed, but not by the peer it is stored as received from
  await log.append({ type: 'envelope', time: BASE + 51, peer: s.peer.publicKey, envelope: encodeEnvelope(stranger, 1, BASE + 51, { type: 'ping', nonce: 9 }) })
  const forgedAt = log.core.length - 2
  await log.close()
  const bad = audit(s.config, 'verify')
  assert.equal(bad.status, 1)
  assert.match(bad.stdout, /^envelopes: 3 checked, 2 failed$/m)
  assert.match(bad.stderr, new RegExp(`^envelope in core ${s.a} block ${forgedAt} record 0: FAILED: bad signature$`, 'm'))
  assert.match(bad.stderr, new RegExp(`^envelope in core ${s.a} block ${forgedAt + 1} record 0: FAILED: signed by ${hex(stranger.publicKey)}`, 'm'))
  assert.match(bad.stderr, /^verify: FAILED$/m)

  const again = await AuditLog.open({ path: s.dir })
  await tamper(again.core, 1)
  await again.close()
  const tampered = audit(s.config, 'verify', '--core', s.a, '--json')
  assert.equal(tampered.status, 1)
  const report = JSON.parse(lines(tampered.stdout)[0]!)
  assert.equal(report.cores.length, 1)
  assert.equal(report.cores[0].ok, false)
  assert.match(report.cores[0].error, /verification failed/)
})

test('--follow tails records appended by a running writer and ends cleanly on SIGINT', async (t) => {
  const s = await scenario(t)
  const log = await AuditLog.open({ path: s.dir }) // the agent, still writing
  t.after(() => log.close())
  const child = spawn(process.execPath, nodeArgs(['timeline', '--follow', '--json', '--type', 'agent_stop,peer_disconnect']), {
    cwd: s.config,
    env: { PATH: process.env.PATH ?? '', NODE_CONFIG_DIR: s.config }
  })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (d) => (stdout += d))
  child.stderr.on('data', (d) => (stderr += d))
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)))
  const seen = async (n: number): Promise<void> => {
    const end = Date.now() + 30_000
    while (jsonLines(stdout).length < n) {
      assert.ok(Date.now() < end, `timed out waiting for ${n} lines: ${stdout} ${stderr}`)
      await new Promise((r) => setTimeout(r, 50))
    }
  }
  await seen(1) // B's agent_stop, from the store as it was
  await log.append({ type: 'peer_disconnect', time: BASE + 4 * HOUR, peer: bytes(32, 7), reason: 'gone' })
  await log.append({ type: 'lnd_connect', time: BASE + 4 * HOUR, node: bytes(33, 1), alias: 'filtered out' })
  await seen(2)
  child.kill('SIGINT')
  assert.equal(await exited, 0, stderr)
  assert.deepEqual(jsonLines(stdout).map((e) => [e.type, e.core]), [['agent_stop', s.b], ['peer_disconnect', s.a]])
  // Close the writer before the folder goes: its closing flush writes to it.
  await log.close()
})

test('bad arguments: one precise line and exit 2; a missing store: exit 1', async (t) => {
  const s = await scenario(t)
  const spawned = audit(s.config, 'timeline', '--since', 'yesterday')
  assert.equal(spawned.status, 2)
  assert.deepEqual(lines(spawned.stderr), ['--since: "yesterday" is neither an ISO time (2024-05-01T12:00:00Z) nor a duration ago (1h, 30m)'])
  const cases: Array<[string[], RegExp]> = [
    [[], /^audit: missing command; usage: audit </],
    [['replay'], /^audit: unknown command "replay"/],
    [['state', '--since', '1h'], /^audit state: --since does not apply/],
    [['timeline', '--since', '2024-05-02T00:00:00Z', '--until', '2024-05-01T00:00:00Z'], /^--since must be before --until$/],
    [['timeline', '--hash', 'abc'], /^--hash: "abc" is not a 32-byte payment hash in hex$/],
    [['timeline', '--type', 'settle_requested,bogus'], /^--type: unknown record type "bogus"/],
    [['verify', '--core', s.a, '--all'], /^--core and --all exclude each other$/],
    [['verify', '--json=yes'], /^--json takes no value$/],
    [['timeline', '--node'], /^--node: missing value$/],
    [['timeline', '--json', '--json'], /^--json given twice$/],
    [['state', 'extra'], /^audit state: unexpected argument "extra"$/],
    [['state', '--core', 'ab'.repeat(32), '--storage', s.dir], /^--core: no core abab/]
  ]
  for (const [args, message] of cases) {
    const r = await inProcess(...args)
    assert.equal(r.status, 2, `${args.join(' ')}: ${r.stderr}`)
    assert.equal(lines(r.stderr).length, 1, r.stderr)
    assert.match(r.stderr.trimEnd(), message)
    assert.equal(r.stdout, '')
  }
  const missing = await inProcess('state', '--storage', join(s.dir, 'nowhere'))
  assert.equal(missing.status, 1)
  assert.deepEqual(lines(missing.stderr), [`audit: no audit storage at ${join(s.dir, 'nowhere')}`])
})

import { test } from 'node:test'
import assert from 'node:assert/strict'
import { generateKeyPairSync, sign, verify as edVerify, createPublicKey, type KeyObject } from 'node:crypto'
import type Hypercore from 'hypercore'
import { AuditLog } from '../../src/audit/log.ts'
import { verify, timeline, statement, state, type EnvelopeVerifier } from '../../src/audit/replay.ts'
import type { AuditRecord, HtlcRef } from '../../src/audit/records.ts'
import { tempDir, openLog, defer, bytes, htlc, settle, pipe } from './audit-helpers.ts'

// Test envelopes: signature(64) ‖ message, ed25519 by the peer's raw 32-byte public key.
const SPKI_ED25519_PREFIX = Buffer.from('302a300506032b6570032100', 'hex')
function peerKeys(): { raw: Uint8Array; priv: KeyObject } {
  const { publicKey, privateKey } = generateKeyPairSync('ed25519')
  return { raw: publicKey.export({ format: 'der', type: 'spki' }).subarray(12), priv: privateKey }
}
const seal = (priv: KeyObject, msg: string): Uint8Array => {
  const body = Buffer.from(msg)
  return Buffer.concat([sign(null, body, priv), body])
}
const verifier: EnvelopeVerifier = (envelope, peer) => {
  const key = createPublicKey({ key: Buffer.concat([SPKI_ED25519_PREFIX, peer]), format: 'der', type: 'spki' })
  return edVerify(null, envelope.subarray(64), key, envelope.subarray(0, 64))
}

async function until(cond: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out')
    await new Promise((r) => setTimeout(r, 20))
  }
}

test('verify passes an honest log with a replica, and fails a forged envelope', async (t) => {
  const a = await openLog(t, await tempDir(t))
  const b = await openLog(t, await tempDir(t))
  const peer = peerKeys()
  await a.append({ type: 'hello', time: 1, peer: peer.raw, envelope: seal(peer.priv, 'hello from b') })
  for (let i = 0; i < 5; i++) await b.append(settle(i, 10 + i))
  defer(t, pipe(a, b))
  const replica = await a.openReplica(b.key)
  await until(() => replica.contiguousLength === b.core.length)

  const ok = await verify(a, { verifyEnvelope: verifier })
  assert.equal(ok.ok, true, JSON.stringify(ok))
  assert.deepEqual(ok.cores.map((c) => c.length), [a.core.length, b.core.length])
  assert.equal(ok.envelopes.checked, 1)

  const forged = seal(peer.priv, 'vote for me')
  forged[70] = forged[70]! ^ 1 // a received message altered after signing
  await a.append({ type: 'envelope', time: 2, peer: peer.raw, envelope: forged })
  await a.append({ type: 'envelope', time: 3, peer: peer.raw, envelope: bytes(3, 0) }) // too short to parse
  const bad = await verify(a, { verifyEnvelope: verifier })
  assert.equal(bad.ok, false)
  assert.equal(bad.envelopes.checked, 3)
  assert.deepEqual(bad.envelopes.failed.map((f) => [f.block, f.index]), [[1, 0], [2, 0]])
  assert.ok(bad.cores.every((c) => c.ok))
})

// Overwrites a stored block behind Hypercore's back, as a disk fault or an editing operator would.
async function tamper(core: Hypercore, index: number, block: Uint8Array): Promise<void> {
  const storage = core.state.storage as unknown as { write(): { putBlock(i: number, b: Uint8Array): void; flush(): Promise<unknown> } }
  const tx = storage.write()
  tx.putBlock(index, block)
  await tx.flush()
}

test('verify fails a core whose stored block was altered', async (t) => {
  const dir = await tempDir(t)
  const log = await openLog(t, dir)
  for (let i = 0; i < 4; i++) await log.append(settle(i, i))
  assert.equal((await verify(log, { verifyEnvelope: verifier })).ok, true)
  const original = await log.core.get(2)
  assert.ok(original !== null)
  const altered = Buffer.from(original)
  altered[altered.length - 1] = altered[altered.length - 1]! ^ 0xff // e.g. an amount changed
  await tamper(log.core, 2, altered)
  const report = await verify(log, { verifyEnvelope: verifier, timeoutMs: 3000 })
  assert.equal(report.ok, false)
  assert.equal(report.cores[0]!.ok, false)
  assert.match(report.cores[0]!.error ?? '', /verification failed/)
})

test('timeline filters by time, type, hash and node', async (t) => {
  const log = await openLog(t, await tempDir(t))
  const nodeA = bytes(33, 0xa1)
  await log.append({ type: 'lnd_connect', time: 100, node: nodeA, alias: 'alice' }, { durable: false })
  await log.append(settle(1, 200, [htlc(0xa1, 5n, 1n, 10n)]), { durable: false })
  await log.append(settle(2, 300, [htlc(0xb2, 5n, 2n, 10n)]), { durable: false })
  await log.append({ type: 'agent_stop', time: 400, reason: 'SIGTERM' })
  const types = (entries: Array<{ record: AuditRecord }>): string[] => entries.map((e) => `${e.record.type}@${e.record.time}`)
  assert.deepEqual(types(await timeline(log)), ['lnd_connect@100', 'settle_requested@200', 'settle_requested@300', 'agent_stop@400'])
  assert.deepEqual(types(await timeline(log, { from: 200, to: 400 })), ['settle_requested@200', 'settle_requested@300'])
  assert.deepEqual(types(await timeline(log, { types: new Set(['agent_stop', 'lnd_connect'] as const) })), ['lnd_connect@100', 'agent_stop@400'])
  const hash2 = Buffer.from((settle(2, 0) as AuditRecord & { type: 'settle_requested' }).hash).toString('hex')
  assert.deepEqual(types(await timeline(log, { hash: hash2 })), ['settle_requested@300'])
  assert.deepEqual(types(await timeline(log, { node: Buffer.from(nodeA).toString('hex') })), ['lnd_connect@100', 'settle_requested@200'])
  assert.equal((await timeline(log, { node: Buffer.from(log.key).toString('hex') })).length, 4, 'the writer core names every record')
})

// A simulated two-operator cluster: operator A holds nodes n1 and n2, operator B holds n3 and is
// the leader. Payments split across nodes; each node's receipts are tallied as the parts are made,
// independently of the audit records the statement is computed from.
test('the statement matches what each simulated node received, per operator, node and invoice', async (t) => {
  const a = await openLog(t, await tempDir(t))
  const b = await openLog(t, await tempDir(t))
  const nodes = { n1: 0x11, n2: 0x12, n3: 0x13 }
  await a.append({ type: 'lnd_connect', time: 1, node: bytes(33, nodes.n1), alias: 'n1' })
  await a.append({ type: 'lnd_connect', time: 1, node: bytes(33, nodes.n2), alias: 'n2' })
  await b.append({ type: 'lnd_connect', time: 1, node: bytes(33, nodes.n3), alias: 'n3' })

  let seed = 7
  const rand = (n: number): number => (seed = (seed * 1103515245 + 12345) % 2 ** 31) % n
  const received = new Map<string, { htlcs: number; msat: bigint }>() // node hex -> tally
  const names = Object.values(nodes)
  let htlcId = 0n
  for (let i = 0; i < 12; i++) {
    const parts: HtlcRef[] = []
    for (let p = 0, n = 1 + rand(3); p < n; p++) parts.push(htlc(names[rand(3)]!, 100n, htlcId++, BigInt(1000 + rand(50_000))))
    const record = settle(i, 1000 + i, parts) as AuditRecord & { type: 'settle_requested' }
    await b.append(record, { durable: false })
    const outcome = i % 4 === 3 ? 'failed' : 'settled' // every fourth set never settles
    const finalTime = i < 10 ? 2000 + i : 9000 // the last two settle after the period
    await b.append({ type: 'settle_final', time: finalTime, hash: record.hash, setId: record.setId, status: outcome }, { durable: false })
    if (outcome !== 'settled' || finalTime >= 5000) continue
    for (const { circuit, amountMsat } of parts) {
      const key = Buffer.from(circuit.node).toString('hex')
      const tally = received.get(key) ?? { htlcs: 0, msat: 0n }
      received.set(key, { htlcs: tally.htlcs + 1, msat: tally.msat + amountMsat })
    }
  }
  await b.append({ type: 'agent_stop', time: 9999, reason: 'done' })
  defer(t, pipe(a, b))
  const replica = await a.openReplica(b.key)
  await until(() => replica.contiguousLength === b.core.length)

  const sheet = await statement(a, { from: 0, to: 5000 })
  const hexKey = (k: Uint8Array): string => Buffer.from(k).toString('hex')
  const byNode = new Map<string, { operator: string; htlcs: number; msat: bigint }>()
  for (const [operator, lines] of sheet.operators) for (const [node, line] of lines) byNode.set(node, { operator, htlcs: line.htlcs, msat: line.msat })
  for (const [node, tally] of received) {
    const line = byNode.get(node)
    assert.ok(line !== undefined, `node ${node} missing`)
    assert.equal(line.htlcs, tally.htlcs)
    assert.equal(line.msat, tally.msat)
    assert.equal(line.operator, hexKey(node === hexKey(bytes(33, nodes.n3)) ? b.key : a.key))
  }
  assert.equal(byNode.size, received.size)
  const totalMsat = [...received.values()].reduce((s, r) => s + r.msat, 0n)
  assert.equal(sheet.total.msat, totalMsat)
  assert.equal(sheet.total.invoices, 8) // 10 in the period, minus i = 3 and 7 which failed
  for (const lines of sheet.operators.values()) {
    for (const line of lines.values()) {
      const perInvoice = [...line.invoices.values()].reduce((s, v) => s + v.msat, 0n)
      assert.equal(perInvoice, line.msat, 'per-invoice lines add up to the node total')
    }
  }

  const reg = await state(a)
  assert.equal([...reg.invoices.values()].filter((e) => e.status === 'settled').length, 9)
  assert.equal([...reg.invoices.values()].filter((e) => e.status === 'failed').length, 3)
  assert.deepEqual(reg.conflicts, [])
})

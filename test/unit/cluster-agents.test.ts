// Two operators and a witness as real agents: Hyperswarm on a local DHT testnet (127.0.0.1), the
// LND simulator over gRPC, the lnmux API. Each operator holds only its own node's credentials.
import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import * as grpc from '@grpc/grpc-js'
import type { Agent } from '../../src/agent/runtime.ts'
import { LnmuxService } from '../../src/api/proto.ts'
import { createLogger } from '../../src/log.ts'
import { DEFAULT_DEADLINE_MARGIN_BLOCKS } from '../../src/edge/edge.ts'
import { CLTV_REJECT_DELTA } from '../../src/sim/switch.ts'
import { SettleScanner } from '../../src/edge/known-settles.ts'
import { decodeInvoice } from '../../src/ln/bolt11.ts'
import { payInvoice } from '../../src/sim/payer.ts'
import { SimOperators } from '../../src/sim/operators.ts'

const SAT = 1000n
const log = createLogger({ level: process.env.HIGHWIRE_TEST_LOG === '1' ? 'debug' : 'error' })

async function fixture(t: TestContext): Promise<SimOperators> {
  const ops = await SimOperators.open({ log })
  t.after(() => ops.close())
  return ops
}

async function until(check: () => boolean, limitMs = 15_000): Promise<number> {
  const started = Date.now()
  while (!check()) {
    if (Date.now() - started > limitMs) throw new Error(`timed out after ${limitMs} ms waiting for ${check.toString().slice(0, 120)}`)
    await new Promise((r) => setTimeout(r, 20))
  }
  return Date.now() - started
}

function client(t: TestContext, agent: Agent): grpc.Client & Record<string, any> {
  const { host, port } = agent.api!.address
  const c = new LnmuxService(`${host}:${port}`, grpc.credentials.createInsecure()) as grpc.Client & Record<string, any>
  t.after(() => c.close())
  return c
}

function call(c: Record<string, any>, method: string, request: object): Promise<any> {
  return new Promise((resolve, reject) => c[method](request, (err: Error | null, res: unknown) => (err ? reject(err) : resolve(res))))
}

function acceptedOn(c: Record<string, any>): { next: () => Promise<{ hash: Buffer; set_id: Buffer }>; cancel: () => void } {
  const queue: { hash: Buffer; set_id: Buffer }[] = []
  const waiting: ((v: { hash: Buffer; set_id: Buffer }) => void)[] = []
  const stream = c.SubscribeInvoiceAccepted({})
  stream.on('data', (d: { hash: Buffer; set_id: Buffer }) => (waiting.length > 0 ? waiting.shift()!(d) : queue.push(d)))
  stream.on('error', () => {})
  return {
    next: () => (queue.length > 0 ? Promise.resolve(queue.shift()!) : new Promise((r) => waiting.push(r))),
    cancel: () => stream.cancel()
  }
}

const serving = (f: SimOperators): Agent | undefined => f.leader()?.[1]

test('two operators receive one multi-part payment through both nodes; a follower\'s API forwards to the leader', async (t) => {
  const f = await fixture(t)
  await Promise.all([f.start('A'), f.start('B'), f.start('W')])
  await until(() => serving(f) !== undefined)
  const leader = serving(f)!
  const follower = [f.agents.get('A')!, f.agents.get('B')!].find((a) => a !== leader)!
  const app = client(t, follower)
  await until(() => follower.member.leader === leader.id)
  await until(() => [...f.agents.values()].every((a) => a.swarm!.peers.list().length === 2))

  const invoice = await call(app, 'AddInvoice', { amt_msat: String(1_500_000n * SAT), description: 'two operators', expiry_secs: 600 })
  const accepted = acceptedOn(app)
  t.after(() => accepted.cancel())
  const payment = payInvoice(f.carol, invoice.payment_request, { parts: [{ amountMsat: 800_000n * SAT, hint: 0 }, { amountMsat: 700_000n * SAT, hint: 1 }] })
  const set = await accepted.next()
  assert.deepEqual(set.hash, invoice.hash)
  await call(app, 'SettleInvoice', { hash: set.hash, set_id: set.set_id })
  const result = await payment
  assert.deepEqual(result.parts.map((p) => p.status), ['settled', 'settled'])
  assert.deepEqual(Buffer.from(result.preimage!), invoice.preimage)
  const final = await call(app, 'WaitForInvoiceFinalStatus', { hash: invoice.hash })
  assert.equal(final.invoice_status, 'SETTLED')
})

test('the leader dies with an accepted set: a new leader serves within 5 s and settles it after the node comes back', async (t) => {
  const f = await fixture(t)
  await Promise.all([f.start('A'), f.start('B'), f.start('W')])
  await until(() => serving(f) !== undefined)
  await until(() => [...f.agents.values()].every((a) => a.swarm!.peers.list().length === 2))
  const leader = serving(f)!
  const leaderName = [...f.agents].find(([, a]) => a === leader)![0] as 'A' | 'B'
  const survivor = f.agents.get(leaderName === 'A' ? 'B' : 'A')!
  const app = client(t, survivor)
  const invoice = await call(app, 'AddInvoice', { amt_msat: String(1_200_000n * SAT), description: 'fail-over', expiry_secs: 600 })
  const accepted = acceptedOn(app)
  t.after(() => accepted.cancel())
  const payment = payInvoice(f.carol, invoice.payment_request, { parts: [{ amountMsat: 600_000n * SAT, hint: 0 }, { amountMsat: 600_000n * SAT, hint: 1 }] })
  await accepted.next()

  await f.stop(leaderName, 'killed by the test')
  const failover = await until(() => survivor.member.isServing(), 10_000)
  t.diagnostic(`fail-over: ${failover} ms`)
  assert.ok(failover <= 5000, `fail-over took ${failover} ms`)

  // The dead operator's node keeps its part held; its agent restarts and lnd re-offers it.
  await f.start(leaderName)
  const again = await accepted.next()
  assert.deepEqual(again.hash, invoice.hash)
  await call(app, 'SettleInvoice', { hash: again.hash, set_id: again.set_id })
  const result = await payment
  assert.deepEqual(result.parts.map((p) => p.status), ['settled', 'settled'])
  assert.deepEqual(Buffer.from(result.preimage!), invoice.preimage)
})

/** Settle preimages carried by the decision envelopes stored in `agent`'s own audit core. */
async function storedSettles(agent: Agent): Promise<string[]> {
  const found: string[] = []
  await new SettleScanner().scan([agent.audit.core], (preimage) => found.push(Buffer.from(preimage).toString('hex')))
  return found
}

test('an edge restarted a block before its part\'s deadline, with no leader, settles it from the decision in its audit core (invariant 1)', async (t) => {
  const f = await fixture(t)
  await Promise.all([f.start('A'), f.start('B'), f.start('W')])
  await until(() => serving(f) !== undefined)
  await until(() => [...f.agents.values()].every((a) => a.swarm!.peers.list().length === 2))
  const [leaderName, leader] = f.leader()!
  const edgeName = leaderName === 'A' ? 'B' : 'A'
  const edgeNode = edgeName === 'A' ? f.nodes.alice : f.nodes.bob
  const app = client(t, leader)
  // Route hints through both nodes: the leader has the other operator's hello with its node.
  let invoice = await call(app, 'AddInvoice', { amt_msat: String(1_000_000n * SAT), description: 'deadline', expiry_secs: 600 })
  for (const started = Date.now(); decodeInvoice(invoice.payment_request).routeHints.length < 2; ) {
    assert.ok(Date.now() - started < 10_000, 'the leader hints through both nodes')
    await new Promise((r) => setTimeout(r, 20))
    invoice = await call(app, 'AddInvoice', { amt_msat: String(1_000_000n * SAT), description: 'deadline', expiry_secs: 600 })
  }
  const accepted = acceptedOn(app)
  t.after(() => accepted.cancel())
  const payment = payInvoice(f.carol, invoice.payment_request, { parts: [{ amountMsat: 500_000n * SAT, hint: 0 }, { amountMsat: 500_000n * SAT, hint: 1 }] })
  const set = await accepted.next()

  // The edge's lnd goes down before the decision: the edge stores the leader's signed decision
  // but cannot resolve the part. Then the edge's agent, the leader and the witness all stop.
  f.network.stop(edgeNode)
  await call(app, 'SettleInvoice', { hash: set.hash, set_id: set.set_id })
  const edge = f.agents.get(edgeName)!
  const preimage = Buffer.from(invoice.preimage).toString('hex')
  const started = Date.now()
  while (!(await storedSettles(edge)).includes(preimage)) {
    assert.ok(Date.now() - started < 10_000, 'the edge stores the settle decision it received')
    await new Promise((r) => setTimeout(r, 20))
  }
  for (const name of ['A', 'B', 'W'] as const) await f.stop(name)

  // Blocks go by until the held part is a block before the edge's deadline (lnd replays an HTLC
  // only up to then: interceptable_switch.go handleExpired); lnd comes back and replays it to the
  // restarted edge, which finds no leader. At the next block it settles rather than fails.
  const [part] = edgeNode.arrivedHtlcs()
  const deadline = part!.expiry - CLTV_REJECT_DELTA - DEFAULT_DEADLINE_MARGIN_BLOCKS
  f.network.mine(deadline - 1 - f.network.height)
  await f.servers[edgeName === 'A' ? 'alice' : 'bob'].restart()
  const restarted = await f.start(edgeName)
  await until(() => restarted.member.edge.held === 1)
  f.network.mine(1)
  const result = await payment
  assert.deepEqual(result.parts.map((p) => p.status), ['settled', 'settled'])
  assert.equal(restarted.member.leader, null)
})

// The virtual node on real LND (issue 5's proof): one agent holds Alice and Bob (both run with
// --requireinterceptor --store-final-htlc-resolutions) and the virtual node's identity key; Carol, a
// plain lnd, pays its invoices with `lncli payinvoice`. Through Alice, through Bob, split by lnd
// across both, with Alice's lnd stopped, and across a SIGKILL of the agent (a child process) with a
// set accepted. Each payment must be SUCCEEDED in Carol's `lncli listpayments` with the preimage the
// API returned.
// Needs `npm run regtest -- up` (npm run test:regtest does it).
import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { setTimeout as sleep } from 'node:timers/promises'
import * as grpc from '@grpc/grpc-js'
import { LnmuxService } from '../../src/api/proto.ts'
import { newIdentityKey } from '../../src/config/secrets.ts'
import { decodeInvoice } from '../../src/ln/bolt11.ts'
import { AcceptedStream, LogCapture, lnmuxCall } from '../unit/agent-helpers.ts'
import { channel, env, lncli, node, startNode, stopNode, type NodeName } from './env.ts'

const AGENT_SCRIPT = fileURLToPath(new URL('./mux-agent.ts', import.meta.url))

const SMALL_SAT = 20_000n
// lnd registers the interceptor a moment after the stream is opened, and until then fails new
// forwards with temporary_channel_failure (requireinterceptor); the client cannot see when.
const INTERCEPTOR_SETTLE_MS = 1000
const PAY_TIMEOUT = '90s'

interface Created {
  payment_request: string
  preimage: Buffer
  hash: Buffer
}

/** The agent as a child process (mux-agent.ts) with its own storage and identity key. */
class RegtestAgent {
  // HIGHWIRE_TEST_LOG=1 echoes the agent's log to stderr.
  readonly log = new LogCapture(process.env.HIGHWIRE_TEST_LOG ? (line) => process.stderr.write(line + '\n') : undefined)
  child: ChildProcess | null = null
  client: grpc.Client | null = null
  private readonly streams = new Set<AcceptedStream>()

  constructor(readonly storage: string, readonly identityKey: Uint8Array) {}

  async start(): Promise<void> {
    const child = spawn(process.execPath, ['--import', 'tsx', AGENT_SCRIPT, this.storage, Buffer.from(this.identityKey).toString('hex')], {
      stdio: ['ignore', 'pipe', 'pipe']
    })
    this.child = child
    createInterface({ input: child.stderr! }).on('line', (line) => this.log.add(line))
    const [first] = (await once(createInterface({ input: child.stdout! }), 'line')) as [string]
    const { port } = JSON.parse(first) as { port: number }
    this.client = new LnmuxService(`127.0.0.1:${port}`, grpc.credentials.createInsecure())
    await sleep(INTERCEPTOR_SETTLE_MS)
  }

  /** SIGKILL: the streams to lnd are cut mid-flight and nothing more is decided or settled. */
  async kill(): Promise<void> {
    for (const stream of this.streams) stream.close()
    this.streams.clear()
    this.client?.close()
    this.client = null
    const child = this.child
    this.child = null
    if (child === null || child.exitCode !== null) return
    const exited = once(child, 'exit')
    child.kill('SIGKILL')
    await exited
  }

  call(method: string, request: object): Promise<any> {
    return lnmuxCall(this.client!, method, request)
  }

  subscribeAccepted(): AcceptedStream {
    const stream = new AcceptedStream(this.client!)
    this.streams.add(stream)
    return stream
  }

  addInvoice(amountSat: bigint): Promise<Created> {
    return this.call('AddInvoice', { amt_msat: String(amountSat * 1000n), description: 'highwire regtest', expiry_secs: 3600 })
  }

  /** Log lines of the HTLCs intercepted for `hash` since line `from`: which nodes they came through. */
  interceptedVia(hash: Buffer, from: number): string[] {
    const hex = hash.toString('hex')
    return this.log.lines.slice(from).filter((l) => l.includes('htlc intercepted') && l.includes(`hash=${hex}`)).map((l) => /node=(\w+)/.exec(l)![1]!)
  }
}

/** Carol pays in the background; the promise settles when lncli returns (the payment is final). */
function carolPays(paymentRequest: string, args: string[] = []): Promise<unknown> {
  const paying = lncli('carol', ['payinvoice', '--force', '--json', `--timeout=${PAY_TIMEOUT}`, '--fee_limit=1000', ...args, `--pay_req=${paymentRequest}`])
  paying.catch(() => {}) // awaited by the test; a failure there is the assertion
  return paying
}

/** Carol's own record of the payment: SUCCEEDED, with the preimage the lnmux API returned. */
async function assertCarolSucceeded(created: Created): Promise<any> {
  const { payments } = await lncli('carol', ['listpayments', '--include_incomplete', '--max_payments=50'])
  const payment = (payments as any[]).filter((p) => p.payment_hash === created.hash.toString('hex')).pop()
  assert.ok(payment !== undefined, 'Carol has the payment')
  assert.equal(payment.status, 'SUCCEEDED')
  assert.equal(payment.payment_preimage, created.preimage.toString('hex'))
  return payment
}

/** Carol's spendable balance towards a cluster node: what one payment part can carry at most. */
async function carolSpendableSat(to: NodeName): Promise<bigint> {
  const { channels } = await lncli('carol', ['listchannels', '--active_only'])
  const c = (channels as any[]).find((ch) => ch.remote_pubkey === node(to).pubkey)
  if (c === undefined) return 0n
  return BigInt(c.local_balance) - BigInt(c.local_constraints.chan_reserve_sat)
}

/**
 * Starts Alice's lnd again. Carol opened the channel but does not reconnect to a restarted Alice
 * within startNode's 60 s wait (lnd's persistent-peer reconnection backs off), so Carol is told to
 * connect while Alice starts.
 */
async function restartAlice(): Promise<void> {
  let started = false
  const starting = startNode('alice').finally(() => { started = true })
  const alice = `${node('alice').pubkey}@${env.lnd.alice!.p2p}`
  while (!started) {
    await lncli('carol', ['connect', alice]).catch(() => {}) // refused while Alice starts; "already connected" after
    await sleep(2000)
  }
  await starting
}

/**
 * Every run moves about a million sat from Carol to Alice and Bob; they pay it back first, each over
 * its own channel with Carol (they are the senders: requireinterceptor does not apply).
 */
async function refundCarol(): Promise<void> {
  for (const from of ['alice', 'bob'] as const) {
    const { channels } = await lncli(from, ['listchannels', '--active_only'])
    const c = (channels as any[]).find((ch) => ch.remote_pubkey === node('carol').pubkey)
    if (c === undefined) continue
    // Keep the reserve and a margin for the commitment fee and anchors.
    const amount = BigInt(c.local_balance) - BigInt(c.local_constraints.chan_reserve_sat) - 20_000n
    if (amount < 50_000n) continue
    const { payment_request } = await lncli('carol', ['addinvoice', `--amt=${amount}`, '--memo=refund'])
    await lncli(from, ['payinvoice', '--force', '--json', '--timeout=60s', `--outgoing_chan_id=${channel('carol', from).chanId}`, `--pay_req=${payment_request}`])
  }
}

async function settleNext(a: RegtestAgent, accepted: AcceptedStream, created: Created): Promise<void> {
  const set = await accepted.next(60_000)
  assert.ok(set.hash.equals(created.hash), 'the accepted set is this invoice\'s')
  await a.call('SettleInvoice', { hash: set.hash, set_id: set.set_id })
}

async function finalStatus(a: RegtestAgent, created: Created): Promise<string> {
  return (await a.call('WaitForInvoiceFinalStatus', { hash: created.hash })).invoice_status
}

async function startCluster(t: TestContext): Promise<RegtestAgent> {
  const storage = await mkdtemp(join(tmpdir(), 'highwire-regtest-mux-'))
  const a = new RegtestAgent(storage, newIdentityKey())
  t.after(async () => {
    await a.kill()
    await rm(storage, { recursive: true, force: true })
  })
  await a.start()
  return a
}

test('one agent holding Alice and Bob receives Carol\'s payments as one virtual node', { timeout: 600_000 }, async (t) => {
  await refundCarol()
  const a = await startCluster(t)
  const accepted = a.subscribeAccepted()

  for (const via of ['alice', 'bob'] as const) {
    await t.test(`Carol pays an invoice through ${via}`, async () => {
      const created = await a.addInvoice(SMALL_SAT)
      const from = a.log.lines.length
      const paying = carolPays(created.payment_request, [`--outgoing_chan_id=${channel('carol', via).chanId}`, `--last_hop=${node(via).pubkey}`])
      await settleNext(a, accepted, created)
      await paying
      assert.deepEqual([...new Set(a.interceptedVia(created.hash, from))], [via])
      await assertCarolSucceeded(created)
      assert.equal(await finalStatus(a, created), 'SETTLED')
    })
  }

  await t.test('Carol pays more than either of her channels can carry: lnd splits it across Alice and Bob, one set settles', async () => {
    const [toAlice, toBob] = [await carolSpendableSat('alice'), await carolSpendableSat('bob')]
    const [larger, smaller] = toAlice > toBob ? [toAlice, toBob] : [toBob, toAlice]
    // Leave room for commitment fees and anchors on the smaller side.
    const headroom = smaller / 2n < 100_000n ? smaller / 2n : 100_000n
    assert.ok(headroom > 10_000n, `Carol's channels are too depleted (${toAlice}, ${toBob} sat): \`npm run regtest -- down && npm run regtest -- up\``)
    const created = await a.addInvoice(larger + headroom)
    const from = a.log.lines.length
    const paying = carolPays(created.payment_request)
    await settleNext(a, accepted, created)
    await paying
    const via = a.interceptedVia(created.hash, from)
    assert.ok(via.includes('alice') && via.includes('bob'), `parts arrived through both nodes: ${via.join(', ')}`)
    const payment = await assertCarolSucceeded(created)
    const succeeded = (payment.htlcs as any[]).filter((h) => h.status === 'SUCCEEDED')
    assert.ok(succeeded.length >= 2, `lnd split the payment (${succeeded.length} parts settled)`)
    assert.equal(await finalStatus(a, created), 'SETTLED')
    const listed = await a.call('ListInvoices', { sequence_start: '1', max_invoices_count: '10' })
    assert.equal(listed.invoice.length, 3)
    assert.equal(listed.invoice[2].amount_msat, String((larger + headroom) * 1000n))
  })

  await t.test('Alice\'s lnd is stopped: Carol pays a fresh invoice and one issued before the stop, through Bob', async () => {
    const before = await a.addInvoice(SMALL_SAT)
    assert.equal(decodeInvoice(before.payment_request).routeHints.length, 2)
    await stopNode('alice')
    t.after(() => restartAlice())
    const fresh = await a.addInvoice(SMALL_SAT)
    assert.deepEqual(decodeInvoice(fresh.payment_request).routeHints.map((r) => Buffer.from(r[0]!.pubkey).toString('hex')), [node('bob').pubkey])
    for (const created of [fresh, before]) {
      const from = a.log.lines.length
      const paying = carolPays(created.payment_request)
      await settleNext(a, accepted, created)
      await paying
      assert.deepEqual([...new Set(a.interceptedVia(created.hash, from))], ['bob'])
      await assertCarolSucceeded(created)
      assert.equal(await finalStatus(a, created), 'SETTLED')
    }
    await restartAlice()
  })

  await t.test('the agent is killed (SIGKILL) while a set is accepted; restarted, it settles every part', async () => {
    const created = await a.addInvoice(SMALL_SAT)
    const paying = carolPays(created.payment_request)
    const set = await accepted.next(60_000)
    assert.ok(set.hash.equals(created.hash))
    await a.kill()
    // lnd holds the HTLCs (requireinterceptor) and re-offers them to the next interceptor.
    await sleep(2000)
    await a.start()
    const again = a.subscribeAccepted()
    const replayed = await again.next(60_000)
    assert.ok(replayed.set_id.equals(set.set_id), 'the same set, collected again from lnd')
    await a.call('SettleInvoice', { hash: replayed.hash, set_id: replayed.set_id })
    await paying
    await assertCarolSucceeded(created)
    assert.equal(await finalStatus(a, created), 'SETTLED')
  })
})

// `node src demo`: a two-operator cluster on one machine, with no other setup. Operator A runs
// Alice's LND, operator B runs Bob's (each agent holds only its own node's credentials), and a
// witness gives the pair a safe majority. LND is simulated (src/sim/) behind real gRPC, the agents
// meet on a private Hyperswarm DHT on 127.0.0.1. Carol pays one invoice in two parts, one through
// each node; the application settles it through the lnmux API; then the leader's agent is killed
// while a second payment waits, another agent takes over, and the payment still completes.
import * as grpc from '@grpc/grpc-js'
import type { Agent } from '../agent/runtime.ts'
import { LnmuxService } from '../api/proto.ts'
import { createLogger, type Logger } from '../log.ts'
import type { SimNode } from '../sim/network.ts'
import { payInvoice, type PaymentResult } from '../sim/payer.ts'
import { OPERATOR_CHANNEL_MSAT, SimOperators, type OperatorName } from '../sim/operators.ts'
import { decodeInvoice } from '../ln/bolt11.ts'

const SAT = 1000n

type Lnmux = grpc.Client & Record<string, any>

function call(client: Lnmux, method: string, request: object): Promise<any> {
  return new Promise((resolve, reject) => client[method](request, (err: Error | null, res: unknown) => (err ? reject(err) : resolve(res))))
}

function nextAccepted(client: Lnmux): Promise<{ hash: Buffer; set_id: Buffer }> {
  return new Promise((resolve, reject) => {
    const stream = client.SubscribeInvoiceAccepted({})
    stream.on('data', (set: { hash: Buffer; set_id: Buffer }) => {
      stream.cancel()
      resolve(set)
    })
    stream.on('error', (err: grpc.ServiceError) => (err.code === grpc.status.CANCELLED ? undefined : reject(err)))
  })
}

async function until(check: () => boolean, limitMs: number): Promise<number> {
  const started = Date.now()
  while (!check()) {
    if (Date.now() - started > limitMs) throw new Error('the demo timed out')
    await new Promise((r) => setTimeout(r, 20))
  }
  return Date.now() - started
}

/** The index of the invoice's route hint through `node`: hints are ordered by inbound capacity. */
function hintThrough(paymentRequest: string, node: SimNode): number {
  return decodeInvoice(paymentRequest).routeHints.findIndex((hint) => Buffer.from(hint[0]!.pubkey).equals(node.pubkey))
}

function describe(result: PaymentResult): string {
  return result.parts.map((p) => p.status).join(' + ') + (result.preimage ? `; preimage ${Buffer.from(result.preimage).toString('hex').slice(0, 16)}...` : '')
}

export async function demoCommand(_args: string[], out: (line: string) => void): Promise<number> {
  const say = (line: string): void => out(`\n== ${line}`)
  const log: Logger = createLogger({ level: 'info', write: (line) => out('   ' + line.replace(/^\S+ /, '')) })
  const clients: Lnmux[] = []
  const lnmux = (agent: Agent): Lnmux => {
    const { host, port } = agent.api!.address
    const client = new LnmuxService(`${host}:${port}`, grpc.credentials.createInsecure()) as Lnmux
    clients.push(client)
    return client
  }
  say('simulated LND: alice (operator A), bob (operator B), carol (a payer)')
  const ops = await SimOperators.open({ log, heightPollMs: 500 })
  const { carol, nodes: { alice, bob } } = ops
  out(`   channels carol→alice and carol→bob, ${OPERATOR_CHANNEL_MSAT / SAT} sat each, all on carol's side`)
  try {
    say('three agents join one cluster: A holds alice, B holds bob, W is a witness; A and B may lead')
    await Promise.all((['A', 'B', 'W'] as OperatorName[]).map((name) => ops.start(name)))
    await until(() => ops.leader() !== undefined && [...ops.agents.values()].every((a) => (a.swarm?.peers.list().length ?? 0) === 2), 30_000)
    const [leaderName] = ops.leader()!
    const other: OperatorName = leaderName === 'A' ? 'B' : 'A'
    out(`   agent ${leaderName} is the virtual node; the application talks to agent ${other}'s API, which forwards`)
    const app = lnmux(ops.agents.get(other)!)

    say('the application asks for an invoice of 1500000 sat: more than either channel can carry')
    const first = await call(app, 'AddInvoice', { amt_msat: String(1_500_000n * SAT), description: 'highwire demo', expiry_secs: 600 })
    out(`   ${first.payment_request.slice(0, 64)}...`)
    say('carol pays it in two parts: 800000 sat through alice, 700000 sat through bob')
    const accepted = nextAccepted(app)
    const payment = payInvoice(carol, first.payment_request, {
      parts: [{ amountMsat: 800_000n * SAT, hint: hintThrough(first.payment_request, alice) }, { amountMsat: 700_000n * SAT, hint: hintThrough(first.payment_request, bob) }]
    })
    const set = await accepted
    say('the set is complete; the application settles it')
    await call(app, 'SettleInvoice', { hash: set.hash, set_id: set.set_id })
    const paid = await payment
    say(`carol's payment: ${describe(paid)}`)
    out(`   WaitForInvoiceFinalStatus: ${(await call(app, 'WaitForInvoiceFinalStatus', { hash: first.hash })).invoice_status}`)

    say(`fail-over: carol pays a second invoice, and agent ${leaderName} (the leader) is killed before it is settled`)
    const second = await call(app, 'AddInvoice', { amt_msat: String(300_000n * SAT), description: 'fail-over', expiry_secs: 600 })
    const secondAccepted = nextAccepted(app)
    const secondPayment = payInvoice(carol, second.payment_request, {
      parts: [{ amountMsat: 150_000n * SAT, hint: hintThrough(second.payment_request, alice) }, { amountMsat: 150_000n * SAT, hint: hintThrough(second.payment_request, bob) }]
    })
    await secondAccepted
    await ops.stop(leaderName, 'killed by the demo')
    const took = await until(() => ops.agents.get(other)!.member.isServing(), 15_000)
    say(`agent ${other} serves the virtual node ${took} ms after the leader died`)
    say(`agent ${leaderName} restarts (its LND held its part meanwhile) and the new leader sees the set again`)
    const again = nextAccepted(app)
    await ops.start(leaderName)
    const set2 = await again
    await call(app, 'SettleInvoice', { hash: set2.hash, set_id: set2.set_id })
    const paid2 = await secondPayment
    say(`carol's second payment: ${describe(paid2)}`)
    const ok = paid.preimage !== undefined && paid2.preimage !== undefined && paid.parts.concat(paid2.parts).every((p) => p.status === 'settled')
    say(ok ? 'done: two invoices, two operators, one leader fail-over, every part settled' : 'something went wrong: see the log above')
    return ok ? 0 : 1
  } finally {
    for (const client of clients) client.close()
    await ops.close()
  }
}

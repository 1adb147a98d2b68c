// `node src demo`: a two-operator cluster on one machine, with no other setup. Operator A runs
// Alice's LND, operator B runs Bob's (each agent holds only its own node's credentials), and a
// witness gives the pair a safe majority. LND is simulated (src/sim/) behind real gRPC, the agents
// meet on a private Hyperswarm DHT on 127.0.0.1. Carol pays one invoice in two parts, one through
// each node; the application settles it through the lnmux API; then the leader's agent is killed
// while a second payment waits, another agent takes over, and the payment still completes.
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { randomBytes } from 'node:crypto'
import * as grpc from '@grpc/grpc-js'
import createTestnet from 'hyperdht/testnet.js'
import { Agent } from '../agent/runtime.ts'
import { LnmuxService } from '../api/proto.ts'
import { newClusterSecret, newIdentityKey } from '../config/secrets.ts'
import { configWithDefaults } from '../config/defaults.ts'
import { createLogger, type Logger } from '../log.ts'
import { SimNetwork, type SimNode } from '../sim/network.ts'
import { SimLndServer } from '../sim/server.ts'
import { payInvoice, type PaymentResult } from '../sim/payer.ts'
import { QUICK_TIMING } from '../cluster/member.ts'
import { decodeInvoice } from '../ln/bolt11.ts'

const SAT = 1000n
const CHANNEL_MSAT = 1_000_000n * SAT

type Lnmux = grpc.Client & Record<string, any>
type Name = 'A' | 'B' | 'W'

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
  const testnet = await createTestnet(3, { host: '127.0.0.1' })
  const network = new SimNetwork({ clock: Date.now, random: (n) => randomBytes(n) })
  const nodes = new Map<string, SimNode>(['carol', 'alice', 'bob'].map((name) => [name, network.addNode({ name, secretKey: randomBytes(32), requireInterceptor: name !== 'carol' })]))
  const carol = nodes.get('carol')!
  const servers = new Map<string, SimLndServer>()
  const agents = new Map<Name, Agent>()
  const clients: Lnmux[] = []
  const dirs = new Map<Name, string>()
  const secret = Buffer.from(newClusterSecret(), 'hex')
  const identityKey = newIdentityKey()

  const start = async (name: Name): Promise<Agent> => {
    if (!dirs.has(name)) dirs.set(name, await mkdtemp(join(tmpdir(), `highwire-demo-${name}-`)))
    const node = name === 'A' ? 'alice' : name === 'B' ? 'bob' : null
    const config = configWithDefaults({
      cluster: { secret, bootstrap: testnet.bootstrap.map((b) => ({ host: b.host, port: b.port })) },
      mux: { identityKey: node === null ? null : identityKey },
      lnd: { nodes: node === null ? [] : [servers.get(node)!.connection] },
      storage: { path: dirs.get(name)! },
      api: { listen: { host: '127.0.0.1', port: 0 } }
    })
    const agent = await Agent.start(config, { log: log.child(name), heightPollMs: 500, tickMs: 20, swarm: { host: '127.0.0.1' }, timing: QUICK_TIMING })
    agents.set(name, agent)
    return agent
  }
  const lnmux = (agent: Agent): Lnmux => {
    const { host, port } = agent.api!.address
    const client = new LnmuxService(`${host}:${port}`, grpc.credentials.createInsecure()) as Lnmux
    clients.push(client)
    return client
  }
  const leader = (): [Name, Agent] | undefined => [...agents].find(([, a]) => a.member.isServing())

  try {
    say('simulated LND: alice (operator A), bob (operator B), carol (a payer)')
    network.openChannel(carol, nodes.get('alice')!, { capacityMsat: CHANNEL_MSAT })
    network.openChannel(carol, nodes.get('bob')!, { capacityMsat: CHANNEL_MSAT })
    out(`   channels carol→alice and carol→bob, ${CHANNEL_MSAT / SAT} sat each, all on carol's side`)
    for (const name of ['alice', 'bob']) servers.set(name, await SimLndServer.start(nodes.get(name)!))

    say('three agents join one cluster: A holds alice, B holds bob, W is a witness; A and B may lead')
    await Promise.all((['A', 'B', 'W'] as Name[]).map(start))
    await until(() => leader() !== undefined && [...agents.values()].every((a) => (a.swarm?.peers.list().length ?? 0) === 2), 30_000)
    const [leaderName] = leader()!
    const other: Name = leaderName === 'A' ? 'B' : 'A'
    out(`   agent ${leaderName} is the virtual node; the application talks to agent ${other}'s API, which forwards`)
    const app = lnmux(agents.get(other)!)

    say('the application asks for an invoice of 1500000 sat: more than either channel can carry')
    const first = await call(app, 'AddInvoice', { amt_msat: String(1_500_000n * SAT), description: 'highwire demo', expiry_secs: 600 })
    out(`   ${first.payment_request.slice(0, 64)}...`)
    say('carol pays it in two parts: 800000 sat through alice, 700000 sat through bob')
    const accepted = nextAccepted(app)
    const [alice, bob] = [nodes.get('alice')!, nodes.get('bob')!]
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
    await agents.get(leaderName)!.close('killed by the demo')
    agents.delete(leaderName)
    const took = await until(() => agents.get(other)!.member.isServing(), 15_000)
    say(`agent ${other} serves the virtual node ${took} ms after the leader died`)
    say(`agent ${leaderName} restarts (its LND held its part meanwhile) and the new leader sees the set again`)
    const again = nextAccepted(app)
    await start(leaderName)
    const set2 = await again
    await call(app, 'SettleInvoice', { hash: set2.hash, set_id: set2.set_id })
    const paid2 = await secondPayment
    say(`carol's second payment: ${describe(paid2)}`)
    const ok = paid.preimage !== undefined && paid2.preimage !== undefined && paid.parts.concat(paid2.parts).every((p) => p.status === 'settled')
    say(ok ? 'done: two invoices, two operators, one leader fail-over, every part settled' : 'something went wrong: see the log above')
    return ok ? 0 : 1
  } finally {
    for (const client of clients) client.close()
    for (const agent of agents.values()) await agent.close('demo finished')
    for (const server of servers.values()) await server.close()
    await testnet.destroy()
    for (const dir of dirs.values()) await rm(dir, { recursive: true, force: true })
  }
}

// `node src demo`: the whole receive path on simulated LND nodes, with no other setup. Carol pays a
// virtual-node invoice in two parts, one through Alice and one through Bob; an lnmux client (over the
// real gRPC API) sees the set accepted and settles it; Carol gets the preimage.
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { randomBytes } from 'node:crypto'
import * as grpc from '@grpc/grpc-js'
import { Agent } from '../agent/runtime.ts'
import { LnmuxService } from '../api/proto.ts'
import { newClusterSecret, newIdentityKey } from '../config/secrets.ts'
import type { HighwireConfig } from '../config/schema.ts'
import { createLogger } from '../log.ts'
import { SimNetwork } from '../sim/network.ts'
import { SimLndServer } from '../sim/server.ts'
import { payInvoice } from '../sim/payer.ts'

const SAT = 1000n
const CHANNEL_MSAT = 1_000_000n * SAT
const INVOICE_MSAT = 1_500_000n * SAT

type Call = (method: string, request: object) => Promise<any>

function unary(client: grpc.Client): Call {
  return (method, request) =>
    new Promise((resolve, reject) => {
      const fn = (client as unknown as Record<string, Function>)[method]!
      fn.call(client, request, (err: grpc.ServiceError | null, res: unknown) => (err ? reject(err) : resolve(res)))
    })
}

export async function demoCommand(_args: string[], out: (line: string) => void): Promise<number> {
  const say = (line: string): void => out(`\n== ${line}`)
  const log = createLogger({ level: 'info', write: (line) => out('   ' + line.replace(/^\S+ /, '')) })
  const storage = await mkdtemp(join(tmpdir(), 'highwire-demo-'))
  const network = new SimNetwork({ clock: Date.now, random: (n) => randomBytes(n) })
  const [carol, alice, bob] = ['carol', 'alice', 'bob'].map((name) => network.addNode({ name, secretKey: randomBytes(32), requireInterceptor: name !== 'carol' }))
  const servers: SimLndServer[] = []
  let agent: Agent | null = null
  let client: grpc.Client | null = null
  try {
    say('simulated LND: alice and bob (the cluster\'s nodes, --requireinterceptor) and carol (a payer)')
    network.openChannel(carol!, alice!, { capacityMsat: CHANNEL_MSAT })
    network.openChannel(carol!, bob!, { capacityMsat: CHANNEL_MSAT })
    out(`   channels carol→alice and carol→bob, ${CHANNEL_MSAT / SAT} sat each, all on carol's side`)
    for (const node of [alice!, bob!]) servers.push(await SimLndServer.start(node))

    say('one agent holds both nodes and the virtual node\'s identity key')
    const config: HighwireConfig = {
      network: 'regtest',
      cluster: { secret: Buffer.from(newClusterSecret(), 'hex'), members: [], bootstrap: [], proofTimeoutMs: 5000 },
      mux: {
        identityKey: newIdentityKey(),
        routingPolicy: { feeBaseMsat: 0, feeProportionalMillionths: 0, cltvExpiryDelta: 40 },
        maxRouteHints: 3,
        minFinalCltvExpiry: 18,
        mppTimeoutMs: 60_000,
        acceptTimeoutMs: 600_000,
        autoSettle: false,
        priority: 0
      },
      lnd: { nodes: servers.map((s) => s.connection), allowUnsafe: false },
      storage: { path: storage },
      api: { listen: { host: '127.0.0.1', port: 0 }, tls: null },
      log: { level: 'info' }
    }
    agent = await Agent.start(config, { log, heightPollMs: 500, swarm: false })
    const { host, port } = agent.api!.address
    client = new LnmuxService(`${host}:${port}`, grpc.credentials.createInsecure())
    const call = unary(client)

    say(`the application asks the lnmux API for an invoice of ${INVOICE_MSAT / SAT} sat (more than either channel)`)
    const invoice = await call('AddInvoice', { amt_msat: String(INVOICE_MSAT), description: 'highwire demo', expiry_secs: 600 })
    out(`   ${invoice.payment_request.slice(0, 60)}...`)
    out(`   payment hash ${Buffer.from(invoice.hash).toString('hex')}; route hints through alice and bob`)

    say('carol pays in two parts: 800000 sat through alice, 700000 sat through bob')
    const subscription = (client as unknown as { SubscribeInvoiceAccepted: (req: object) => grpc.ClientReadableStream<{ hash: Buffer; set_id: Buffer }> }).SubscribeInvoiceAccepted({})
    const acceptedSet = new Promise<{ hash: Buffer; set_id: Buffer }>((resolve, reject) => {
      subscription.on('data', resolve)
      subscription.on('error', (err: grpc.ServiceError) => (err.code === grpc.status.CANCELLED ? undefined : reject(err)))
    })
    const payment = payInvoice(carol!, invoice.payment_request, {
      parts: [
        { amountMsat: 800_000n * SAT, hint: 0 },
        { amountMsat: 700_000n * SAT, hint: 1 }
      ]
    })

    const set = await acceptedSet
    say(`the application sees the set accepted (set id ${set.set_id.toString('hex').slice(0, 16)}...) and settles it`)
    await call('SettleInvoice', { hash: set.hash, set_id: set.set_id })
    subscription.cancel()

    const result = await payment
    const preimage = result.preimage ? Buffer.from(result.preimage).toString('hex') : null
    say(`carol's payment: ${result.parts.map((p) => p.status).join(' + ')}; preimage ${preimage}`)
    const status = await call('WaitForInvoiceFinalStatus', { hash: invoice.hash })
    out(`   WaitForInvoiceFinalStatus: ${status.invoice_status}`)
    const ok = preimage === Buffer.from(invoice.preimage).toString('hex') && status.invoice_status === 'SETTLED'
    say(ok ? 'done: one invoice, two nodes, one settled set' : 'something went wrong: see the log above')
    return ok ? 0 : 1
  } finally {
    client?.close()
    await agent?.close('demo finished')
    for (const server of servers) await server.close()
    await rm(storage, { recursive: true, force: true })
  }
}

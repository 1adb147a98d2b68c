// A whole agent on simulated LND, for the agent tests: Carol (a payer without the cluster flags)
// with one channel into each cluster node, a SimLndServer per cluster node speaking lnd's gRPC, an
// Agent over them with temporary storage, and an lnmux client built from the vendored proto, exactly
// as an application would use it. Parts can be sent with a crafted final payload (sendPart) to reach
// each failure path of the virtual node.
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { randomBytes } from 'node:crypto'
import type { TestContext } from 'node:test'
import * as grpc from '@grpc/grpc-js'
import { Agent } from '../../src/agent/runtime.ts'
import { LnmuxService } from '../../src/api/proto.ts'
import type { HighwireConfig } from '../../src/config/schema.ts'
import { configWithDefaults } from '../../src/config/defaults.ts'
import { newIdentityKey } from '../../src/config/secrets.ts'
import { decodeInvoice } from '../../src/ln/bolt11.ts'
import { decodeFailureMessage, decodeFailurePacket, type FailureMessage } from '../../src/ln/failure.ts'
import { buildOnion, encodeHopPayload } from '../../src/ln/onion.ts'
import { createLogger, type Logger } from '../../src/log.ts'
import { SimNetwork, type HtlcOutcome, type SimNode } from '../../src/sim/network.ts'
import { BLOCK_PADDING, payInvoice, type PaymentResult } from '../../src/sim/payer.ts'
import { SimLndServer } from '../../src/sim/server.ts'

export const SAT = 1000n
const DEFAULT_CHANNEL_MSAT = 1_000_000n * SAT
/** Block height polling of the agent under test: short, so new blocks reach the mux quickly. */
export const HEIGHT_POLL_MS = 50

type Mux = HighwireConfig['mux']

export interface HarnessOptions {
  /** Cluster nodes and the capacity of Carol's channel to each (all on Carol's side). */
  nodes?: { name: string; channelMsat?: bigint }[]
  mux?: Partial<Omit<Mux, 'identityKey'>>
}

export interface AcceptedEvent {
  hash: Buffer
  set_id: Buffer
}

/** A unary call of an lnmux client (fields as in the .proto); rejects with the grpc ServiceError. */
export function lnmuxCall(client: grpc.Client, method: string, request: object): Promise<any> {
  return new Promise((resolve, reject) => {
    const fn = (client as unknown as Record<string, Function>)[method]!
    fn.call(client, request, (err: grpc.ServiceError | null, res: unknown) => (err ? reject(err) : resolve(res)))
  })
}

/** A SubscribeInvoiceAccepted stream read as a queue. */
export class AcceptedStream {
  private readonly events: AcceptedEvent[] = []
  private readonly waiters: ((event: AcceptedEvent) => void)[] = []
  readonly call: grpc.ClientReadableStream<AcceptedEvent>

  constructor(client: grpc.Client) {
    this.call = (client as unknown as { SubscribeInvoiceAccepted(req: object): grpc.ClientReadableStream<AcceptedEvent> }).SubscribeInvoiceAccepted({})
    this.call.on('data', (event: AcceptedEvent) => {
      const waiter = this.waiters.shift()
      if (waiter) waiter(event)
      else this.events.push(event)
    })
    this.call.on('error', () => {}) // cancelled when the test or agent closes it
  }

  /** The next accepted set, or a rejection after `timeoutMs`. */
  next(timeoutMs = 5000): Promise<AcceptedEvent> {
    const queued = this.events.shift()
    if (queued) return Promise.resolve(queued)
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters.splice(this.waiters.indexOf(onEvent), 1)
        reject(new Error('no accepted set within ' + timeoutMs + ' ms'))
      }, timeoutMs)
      const onEvent = (event: AcceptedEvent): void => {
        clearTimeout(timer)
        resolve(event)
      }
      this.waiters.push(onEvent)
    })
  }

  /** Events received and not read. */
  get pending(): number {
    return this.events.length
  }

  close(): void {
    this.call.cancel()
  }
}

export class AgentHarness {
  readonly network: SimNetwork
  readonly carol: SimNode
  readonly nodes: SimNode[]
  readonly servers: SimLndServer[]
  readonly config: HighwireConfig
  /** Every log line of every agent started, in order. */
  readonly log = new LogCapture()
  /** Added to the wall clock the agent sees: lets a test age invoices. */
  clockOffsetMs = 0
  agent: Agent | null = null
  client: grpc.Client | null = null
  private readonly streams = new Set<AcceptedStream>()

  private constructor(network: SimNetwork, carol: SimNode, nodes: SimNode[], servers: SimLndServer[], config: HighwireConfig) {
    this.network = network
    this.carol = carol
    this.nodes = nodes
    this.servers = servers
    this.config = config
  }

  /** Builds the network and an agent holding every cluster node; everything is closed in t.after. */
  static async start(t: TestContext, opts: HarnessOptions = {}): Promise<AgentHarness> {
    const network = new SimNetwork({ clock: Date.now, random: (n) => randomBytes(n) })
    const carol = network.addNode({ name: 'carol', secretKey: randomBytes(32), requireInterceptor: false })
    const specs = opts.nodes ?? [{ name: 'alice' }, { name: 'bob' }]
    const nodes = specs.map((spec) => {
      const node = network.addNode({ name: spec.name, secretKey: randomBytes(32) })
      network.openChannel(carol, node, { capacityMsat: spec.channelMsat ?? DEFAULT_CHANNEL_MSAT })
      return node
    })
    const servers: SimLndServer[] = []
    const storage = await mkdtemp(join(tmpdir(), 'highwire-agent-test-'))
    const config = configWithDefaults({
      mux: {
        identityKey: newIdentityKey(),
        routingPolicy: { feeBaseMsat: 1000, feeProportionalMillionths: 100, cltvExpiryDelta: 40 },
        minFinalCltvExpiry: 40,
        acceptTimeoutMs: 60_000,
        ...opts.mux
      },
      storage: { path: storage },
      api: { listen: { host: '127.0.0.1', port: 0 } }
    })
    const harness = new AgentHarness(network, carol, nodes, servers, config)
    t.after(async () => {
      await harness.stopAgent()
      for (const server of servers) await server.close()
      await rm(storage, { recursive: true, force: true })
    })
    for (const node of nodes) servers.push(await SimLndServer.start(node))
    config.lnd.nodes = servers.map((s) => s.connection)
    await harness.startAgent()
    return harness
  }

  node(name: string): SimNode {
    return this.network.node(name)
  }

  server(name: string): SimLndServer {
    return this.servers.find((s) => s.node.name === name)!
  }

  /** Starts (or restarts, on the same storage and identity key) the agent and connects a client. */
  async startAgent(): Promise<Agent> {
    this.agent = await Agent.start(this.config, { log: this.log.logger, heightPollMs: HEIGHT_POLL_MS, now: () => Date.now() + this.clockOffsetMs, swarm: false })
    const { host, port } = this.agent.api!.address
    this.client = new LnmuxService(`${host}:${port}`, grpc.credentials.createInsecure())
    // Agent.start returns once the interceptor streams are asked for; lnd registers them a moment
    // later, and until then it fails new forwards (requireinterceptor). Wait for every online node.
    await until(() => this.nodes.every((node) => !node.online || node.switch.hasInterceptor), 'interceptors registered')
    return this.agent
  }

  /** Closes the client, its streams and the agent, without settling anything (a crash, as lnd sees it). */
  async stopAgent(): Promise<void> {
    for (const stream of this.streams) stream.close()
    this.streams.clear()
    this.client?.close()
    this.client = null
    await this.agent?.close('test stop')
    this.agent = null
  }

  async restartAgent(): Promise<void> {
    await this.stopAgent()
    await this.startAgent()
  }

  /** A unary lnmux call on the running agent's API. */
  call(method: string, request: object): Promise<any> {
    if (this.client === null) throw new Error('no agent running')
    return lnmuxCall(this.client, method, request)
  }

  subscribeAccepted(): AcceptedStream {
    const stream = new AcceptedStream(this.client!)
    this.streams.add(stream)
    return stream
  }

  async addInvoice(amountMsat: bigint, expirySecs = 3600): Promise<{ payment_request: string; preimage: Buffer; hash: Buffer }> {
    return this.call('AddInvoice', { amt_msat: String(amountMsat), description: 'agent test', expiry_secs: expirySecs })
  }

  /** Index of the invoice's route hint through `node`. */
  hintOf(paymentRequest: string, node: SimNode): number {
    const index = decodeInvoice(paymentRequest).routeHints.findIndex((route) => Buffer.from(route[0]!.pubkey).equals(node.pubkey))
    if (index === -1) throw new Error(`invoice has no route hint through ${node.name}`)
    return index
  }

  /** Carol pays `paymentRequest` in the given parts, each through the named node's route hint. */
  pay(paymentRequest: string, parts: { amountMsat: bigint; via: string }[]): Promise<PaymentResult> {
    return payInvoice(this.carol, paymentRequest, {
      parts: parts.map((p) => ({ amountMsat: p.amountMsat, hint: this.hintOf(paymentRequest, this.node(p.via)) }))
    })
  }

  /** See LogCapture.waitFor. */
  waitForLine(pattern: RegExp, from = 0, timeoutMs = 5000): Promise<string> {
    return this.log.waitFor(pattern, from, timeoutMs)
  }
}

/** An agent's log lines kept in memory, with a way to wait for one. */
export class LogCapture {
  readonly lines: string[] = []
  readonly logger: Logger = createLogger({ level: 'info', write: (line) => this.add(line) })
  private readonly waiters = new Set<{ pattern: RegExp; resolve: (line: string) => void }>()

  /** `echo` also gets every line (to follow a long test as it runs). */
  constructor(private readonly echo?: (line: string) => void) {}

  /** The first line matching `pattern` at index `from` or later (default: any). */
  waitFor(pattern: RegExp, from = 0, timeoutMs = 5000): Promise<string> {
    const found = this.lines.slice(from).find((line) => pattern.test(line))
    if (found !== undefined) return Promise.resolve(found)
    return new Promise((resolve, reject) => {
      const waiter = {
        pattern,
        resolve: (line: string) => {
          clearTimeout(timer)
          resolve(line)
        }
      }
      const timer = setTimeout(() => {
        this.waiters.delete(waiter)
        reject(new Error(`no log line ${pattern} within ${timeoutMs} ms; log:\n${this.lines.join('\n')}`))
      }, timeoutMs)
      this.waiters.add(waiter)
    })
  }

  /** Takes a line written elsewhere (another process's log). */
  add(line: string): void {
    this.lines.push(line)
    this.echo?.(line)
    for (const waiter of this.waiters) {
      if (waiter.pattern.test(line)) {
        this.waiters.delete(waiter)
        waiter.resolve(line)
      }
    }
  }
}

/** Polls `condition` every 10 ms until it holds, or throws after `timeoutMs`. */
export async function until(condition: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
}

export type PartOutcome =
  | { status: 'settled'; preimage: Uint8Array }
  /** hopIndex 0 is the cluster node, 1 the virtual node. */
  | { status: 'failed'; hopIndex: number; failure: FailureMessage }
  | { status: 'malformed'; failureCode: number }

export interface CraftedPart {
  /** The cluster node whose route hint the part goes through (Carol has a channel to it). */
  via: SimNode
  amountMsat: bigint
  /** MPP record total (default: the invoice amount). */
  totalMsat?: bigint
  /** amt_to_forward in the virtual node's payload (default: amountMsat). */
  amtToForward?: bigint
  /** Final CLTV above the current height (default: the invoice's min_final_cltv_expiry + padding). */
  finalCltvDelta?: number
  /** The HTLC's payment hash (default: the invoice's); the onion is bound to it. */
  paymentHash?: Uint8Array
  /** Pay the cluster node this much less than the hint's fee. */
  underpayFeeMsat?: bigint
}

/**
 * Carol sends one part of a payment of `paymentRequest` over her channel to `via`, then the hint's
 * virtual channel, with a final payload she may get wrong on purpose, as a buggy or hostile payer
 * would. The fee and CLTV delta of the hint hop are honoured, so the virtual node's own checks are
 * what decides. Resolves with the part's outcome, its failure decrypted with the route's secrets.
 */
export function sendPart(payer: SimNode, paymentRequest: string, part: CraftedPart): Promise<PartOutcome> {
  const invoice = decodeInvoice(paymentRequest)
  const hint = invoice.routeHints.find((route) => Buffer.from(route[0]!.pubkey).equals(part.via.pubkey))?.[0]
  if (hint === undefined) throw new Error(`invoice has no route hint through ${part.via.name}`)
  const channel = payer.channels().find((c) => c.peer(payer) === part.via)
  if (channel === undefined) throw new Error(`${payer.name} has no channel to ${part.via.name}`)
  const paymentHash = part.paymentHash ?? invoice.paymentHash
  const finalCltv = payer.network.height + (part.finalCltvDelta ?? invoice.minFinalCltvExpiry + BLOCK_PADDING)
  const { packet, sharedSecrets } = buildOnion(
    [
      { pubkey: hint.pubkey, payload: encodeHopPayload({ amtToForward: part.amountMsat, outgoingCltvValue: finalCltv, shortChannelId: hint.shortChannelId }) },
      {
        pubkey: invoice.payee,
        payload: encodeHopPayload({
          amtToForward: part.amtToForward ?? part.amountMsat,
          outgoingCltvValue: finalCltv,
          paymentData: { paymentSecret: invoice.paymentSecret, totalMsat: part.totalMsat ?? invoice.amountMsat! }
        })
      }
    ],
    randomBytes(32),
    paymentHash
  )
  // BOLT 7 fee of the hint hop, charged by the cluster node.
  const feeMsat = BigInt(hint.feeBaseMsat) + (part.amountMsat * BigInt(hint.feeProportionalMillionths)) / 1_000_000n - (part.underpayFeeMsat ?? 0n)
  const add = { amountMsat: part.amountMsat + feeMsat, expiry: finalCltv + hint.cltvExpiryDelta, paymentHash, onion: packet }
  return new Promise((resolve) => {
    payer.network.offerHtlc(payer, channel, add, (outcome: HtlcOutcome) => {
      if (outcome.type === 'settled') return resolve({ status: 'settled', preimage: outcome.preimage })
      if (outcome.type === 'malformed') return resolve({ status: 'malformed', failureCode: outcome.failureCode })
      const { hopIndex, message } = decodeFailurePacket(sharedSecrets, outcome.reason)
      resolve({ status: 'failed', hopIndex, failure: decodeFailureMessage(message) })
    })
  })
}

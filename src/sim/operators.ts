// Two operators and a witness on one machine, for the demo and the tests: simulated LND (Carol
// paying; Alice and Bob with --requireinterceptor) behind real gRPC, a private Hyperswarm DHT on
// 127.0.0.1, and agents A (holding only Alice), B (only Bob) and W (a witness). A and B hold the
// virtual node's identity key. An agent restarted by name keeps its storage.
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { randomBytes } from 'node:crypto'
import createTestnet, { type Testnet } from 'hyperdht/testnet.js'
import { Agent } from '../agent/runtime.ts'
import { loadOrCreateAgentKeyPair } from '../cluster/keys.ts'
import { QUICK_TIMING } from '../cluster/member.ts'
import { configWithDefaults } from '../config/defaults.ts'
import { newClusterSecret, newIdentityKey } from '../config/secrets.ts'
import type { Logger } from '../log.ts'
import { SimNetwork, type SimNode } from './network.ts'
import { SimLndServer } from './server.ts'

export type OperatorName = 'A' | 'B' | 'W'

/** Each of Carol's channels, all on her side: the cluster's nodes start with inbound capacity only. */
export const OPERATOR_CHANNEL_MSAT = 1_000_000_000n

const NODE_OF: Record<OperatorName, 'alice' | 'bob' | null> = { A: 'alice', B: 'bob', W: null }

export interface SimOperatorsOptions {
  log: Logger
  /** mux.priority per agent (default 0). */
  priority?: (name: OperatorName) => number
  heightPollMs?: number
}

export class SimOperators {
  readonly agents = new Map<OperatorName, Agent>()
  private readonly dirs = new Map<OperatorName, string>()
  private readonly secret = Buffer.from(newClusterSecret(), 'hex')
  private readonly identityKey = newIdentityKey()
  private votersOnce: Promise<string[]> | null = null

  private constructor(
    private readonly opts: SimOperatorsOptions,
    private readonly testnet: Testnet,
    readonly network: SimNetwork,
    readonly carol: SimNode,
    readonly nodes: { alice: SimNode; bob: SimNode },
    readonly servers: { alice: SimLndServer; bob: SimLndServer }
  ) {}

  /** The simulated network and the DHT; agents are started with `start(name)`. */
  static async open(opts: SimOperatorsOptions): Promise<SimOperators> {
    const testnet = await createTestnet(3, { host: '127.0.0.1' })
    const network = new SimNetwork({ clock: Date.now, random: (n) => randomBytes(n) })
    const [carol, alice, bob] = ['carol', 'alice', 'bob'].map((name) => network.addNode({ name, secretKey: randomBytes(32), requireInterceptor: name !== 'carol' })) as [SimNode, SimNode, SimNode]
    network.openChannel(carol, alice, { capacityMsat: OPERATOR_CHANNEL_MSAT })
    network.openChannel(carol, bob, { capacityMsat: OPERATOR_CHANNEL_MSAT })
    const servers = { alice: await SimLndServer.start(alice), bob: await SimLndServer.start(bob) }
    return new SimOperators(opts, testnet, network, carol, { alice, bob }, servers)
  }

  /**
   * Every agent's storage and key, made before the first start: the voters (all three hold a node
   * or witness) are configured, as operators forming a cluster would (cluster.voters).
   */
  private voters(): Promise<string[]> {
    this.votersOnce ??= (async () => {
      for (const name of Object.keys(NODE_OF) as OperatorName[]) this.dirs.set(name, await mkdtemp(join(tmpdir(), `highwire-operator-${name}-`)))
      const keys = await Promise.all([...this.dirs.values()].map((dir) => loadOrCreateAgentKeyPair(dir)))
      return keys.map((k) => Buffer.from(k.publicKey).toString('hex'))
    })()
    return this.votersOnce
  }

  /** Starts (or restarts, with its storage) one agent. */
  async start(name: OperatorName): Promise<Agent> {
    const voters = await this.voters()
    const node = NODE_OF[name]
    const config = configWithDefaults({
      cluster: { secret: this.secret, voters, bootstrap: this.testnet.bootstrap.map((b) => ({ host: b.host, port: b.port })) },
      mux: { identityKey: node === null ? null : this.identityKey, priority: this.opts.priority?.(name) ?? 0 },
      lnd: { nodes: node === null ? [] : [this.servers[node].connection] },
      storage: { path: this.dirs.get(name)! },
      api: { listen: { host: '127.0.0.1', port: 0 } }
    })
    const agent = await Agent.start(config, {
      log: this.opts.log.child(name),
      heightPollMs: this.opts.heightPollMs ?? 200,
      tickMs: 20,
      swarm: { host: '127.0.0.1' },
      timing: QUICK_TIMING
    })
    this.agents.set(name, agent)
    return agent
  }

  /** Stops an agent (its LND keeps what it holds for it). */
  async stop(name: OperatorName, reason = 'stopped'): Promise<void> {
    await this.agents.get(name)?.close(reason)
    this.agents.delete(name)
  }

  /** The agent serving the virtual node now, if any. */
  leader(): [OperatorName, Agent] | undefined {
    return [...this.agents].find(([, agent]) => agent.member.isServing())
  }

  async close(): Promise<void> {
    for (const agent of this.agents.values()) await agent.close('finished')
    this.agents.clear()
    for (const server of Object.values(this.servers)) await server.close()
    await this.testnet.destroy()
    for (const dir of this.dirs.values()) await rm(dir, { recursive: true, force: true })
  }
}

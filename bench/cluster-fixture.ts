// The cluster the decision and fail-over benchmarks run: a simulated lightning network (Carol paying,
// Alice and Bob with --requireinterceptor, served over lnd's gRPC by SimLndServer) and a local DHT
// testnet on 127.0.0.1 in this process; each agent a child process (agent-process.ts) holding only
// its own node's credentials. Agents are asked for their standing over the highwire.Cluster RPC.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { readFileSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { randomBytes } from 'node:crypto'
import { fileURLToPath } from 'node:url'
import * as grpc from '@grpc/grpc-js'
import createTestnet from 'hyperdht/testnet.js'
import { fetchStatus, type ClusterStatus } from '../src/api/status.ts'
import { DEFAULT_TIMING, type MemberTiming } from '../src/cluster/member.ts'
import { newClusterSecret, newIdentityKey } from '../src/config/secrets.ts'
import type { HighwireConfig } from '../src/config/schema.ts'
import { configWithDefaults } from '../src/config/defaults.ts'
import { SimNetwork, type SimNode } from '../src/sim/network.ts'
import { SimLndServer } from '../src/sim/server.ts'
import { configToJson } from './config-json.ts'

const AGENT_SCRIPT = fileURLToPath(new URL('./agent-process.ts', import.meta.url))
export const CHANNEL_MSAT = 10n ** 12n

export interface AgentSpec {
  name: string
  /** The simulated node it holds, or none (a witness). */
  node: 'alice' | 'bob' | null
  candidate: boolean
  autoSettle?: boolean
}

export class BenchAgent {
  child: ChildProcess | null = null
  id = ''
  address = ''
  stderr: string[] = []

  constructor(readonly spec: AgentSpec, readonly config: HighwireConfig, readonly timing: MemberTiming) {}

  async start(): Promise<void> {
    const child = spawn(process.execPath, ['--import', 'tsx', AGENT_SCRIPT, configToJson(this.config), JSON.stringify(this.timing)], { stdio: ['ignore', 'pipe', 'pipe'] })
    this.child = child
    createInterface({ input: child.stderr! }).on('line', (line) => this.stderr.push(line))
    const exited = once(child, 'exit').then(() => { throw new Error(`agent ${this.spec.name} exited at start: ${this.stderr.slice(-5).join(' | ')}`) })
    const [first] = (await Promise.race([once(createInterface({ input: child.stdout! }), 'line'), exited])) as [string]
    const { id, port } = JSON.parse(first) as { id: string; port: number }
    this.id = id
    this.address = `127.0.0.1:${port}`
  }

  pid(): number {
    if (this.child?.pid === undefined) throw new Error(`agent ${this.spec.name} is not running`)
    return this.child.pid
  }

  status(): Promise<ClusterStatus> {
    return fetchStatus(this.address, grpc.credentials.createInsecure(), 1000)
  }

  /** SIGKILL: no goodbye to peers, no close of streams; the others notice by silence. */
  async kill(): Promise<void> {
    const child = this.child
    this.child = null
    if (child === null || child.exitCode !== null) return
    const exited = once(child, 'exit')
    child.kill('SIGKILL')
    await exited
  }
}

/** Clock ticks per second of /proc/<pid>/stat's CPU times. */
const CLOCK_TICKS_PER_S = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim())

/** CPU ms process `pid` has used so far, every thread of it (Linux: user and system time, proc(5)). */
export function cpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  // Fields after the command name (in parentheses, which may hold spaces): utime is the 14th field.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLOCK_TICKS_PER_S
}

export class SimCluster {
  readonly agents: BenchAgent[] = []
  private constructor(
    readonly network: SimNetwork,
    readonly carol: SimNode,
    readonly nodes: Map<'alice' | 'bob', SimNode>,
    readonly servers: SimLndServer[],
    private readonly testnet: { bootstrap: { host: string; port: number }[]; destroy(): Promise<void> },
    private readonly dirs: string[],
    readonly identityKey: Uint8Array
  ) {}

  static async start(specs: AgentSpec[], timing: MemberTiming = DEFAULT_TIMING): Promise<SimCluster> {
    const testnet = await createTestnet(3, { host: '127.0.0.1' })
    const network = new SimNetwork({ clock: Date.now, random: (n) => randomBytes(n) })
    const carol = network.addNode({ name: 'carol', secretKey: randomBytes(32), requireInterceptor: false })
    const nodes = new Map<'alice' | 'bob', SimNode>()
    const servers: SimLndServer[] = []
    for (const name of ['alice', 'bob'] as const) {
      const node = network.addNode({ name, secretKey: randomBytes(32), requireInterceptor: true })
      network.openChannel(carol, node, { capacityMsat: CHANNEL_MSAT })
      nodes.set(name, node)
    }
    const dirs = await Promise.all(specs.map((s) => mkdtemp(join(tmpdir(), `highwire-bench-${s.name}-`))))
    const cluster = new SimCluster(network, carol, nodes, servers, testnet, dirs, newIdentityKey())
    try {
      const used = new Map<string, SimLndServer>()
      for (const name of new Set(specs.flatMap((s) => (s.node === null ? [] : [s.node])))) used.set(name, await SimLndServer.start(nodes.get(name)!))
      servers.push(...used.values())
      const secret = Buffer.from(newClusterSecret(), 'hex')
      specs.forEach((spec, i) => cluster.agents.push(new BenchAgent(spec, cluster.config(spec, secret, dirs[i]!, spec.node === null ? null : used.get(spec.node)!), timing)))
      await Promise.all(cluster.agents.map((a) => a.start()))
      return cluster
    } catch (err) {
      await cluster.close()
      throw err
    }
  }

  private config(spec: AgentSpec, secret: Uint8Array, storage: string, server: SimLndServer | null): HighwireConfig {
    return configWithDefaults({
      cluster: { secret, bootstrap: this.testnet.bootstrap.map((b) => ({ host: b.host, port: b.port })) },
      mux: { identityKey: spec.candidate ? this.identityKey : null, autoSettle: spec.autoSettle ?? false },
      lnd: { nodes: server === null ? [] : [server.connection] },
      storage: { path: storage },
      api: { listen: { host: '127.0.0.1', port: 0 } }
    })
  }

  agent(name: string): BenchAgent {
    return this.agents.find((a) => a.spec.name === name)!
  }

  /**
   * Waits until one agent serves and every running agent follows it, talking with every other: a
   * connection counts once the peer was heard on it, as a half-open one (its dialler sees it open,
   * the other side never took it up: hyperdht 6.33-6.34's LAN race, see src/cluster/swarm.ts) only
   * ends at the secret proof's timeout, seconds later.
   */
  async settled(limitMs = 30_000): Promise<BenchAgent> {
    const started = Date.now()
    const talking = (s: ClusterStatus): number => s.members.filter((m) => m.connected && m.lastSeenMs > m.connectedAtMs).length
    for (;;) {
      const running = this.agents.filter((a) => a.child !== null)
      const statuses = await Promise.all(running.map((a) => a.status().catch(() => null)))
      const leader = running.find((_, i) => statuses[i]?.serving === true)
      const agreed = statuses.every((s) => s !== null && leader !== undefined && Buffer.from(s.leader ?? []).toString('hex') === leader.id && talking(s) === running.length)
      if (leader !== undefined && agreed) return leader
      if (Date.now() - started > limitMs) {
        const views = statuses.map((s, i) => `${running[i]!.spec.name}: ${s === null ? 'no answer' : `term ${s.term} ${s.standing}${s.serving ? ' serving' : ''}, talking with ${talking(s)} of ${running.length} (itself included)`}`)
        throw new Error(`no settled leader within ${limitMs} ms (${views.join('; ')})`)
      }
      await new Promise((r) => setTimeout(r, 50))
    }
  }

  async close(): Promise<void> {
    for (const agent of this.agents) await agent.kill()
    for (const server of this.servers) await server.close()
    await this.testnet.destroy()
    for (const dir of this.dirs) await rm(dir, { recursive: true, force: true })
  }
}

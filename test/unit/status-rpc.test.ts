// The cluster-status RPC over real gRPC: two operators (A holding Alice, B holding Bob) and a witness
// on a local DHT testnet with the LND simulator, each asked for its view; then `node src status`
// against a running agent, from the config and with --api.
import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import * as grpc from '@grpc/grpc-js'
import type { Agent } from '../../src/agent/runtime.ts'
import { fetchStatus, type ClusterStatus } from '../../src/api/status.ts'
import { statusCommand } from '../../src/cli/status.ts'
import { createLogger } from '../../src/log.ts'
import { OPERATOR_CHANNEL_MSAT, SimOperators } from '../../src/sim/operators.ts'

const log = createLogger({ level: process.env.HIGHWIRE_TEST_LOG === '1' ? 'debug' : 'error' })
const hex = (b: Uint8Array | null): string | null => (b === null ? null : Buffer.from(b).toString('hex'))

type Name = 'A' | 'B' | 'W'

/** A prefers to lead (priority 1), so that who leads is known. */
async function cluster(t: TestContext): Promise<SimOperators> {
  const ops = await SimOperators.open({ log, priority: (name) => (name === 'A' ? 1 : 0) })
  t.after(() => ops.close())
  return ops
}

async function until(check: () => boolean | Promise<boolean>, limitMs = 15_000): Promise<void> {
  const started = Date.now()
  while (!(await check())) {
    if (Date.now() - started > limitMs) throw new Error(`timed out after ${limitMs} ms waiting for ${check.toString().slice(0, 120)}`)
    await new Promise((r) => setTimeout(r, 25))
  }
}

const address = (agent: Agent): string => `${agent.api!.address.host}:${agent.api!.address.port}`
const ask = (agent: Agent): Promise<ClusterStatus> => fetchStatus(address(agent), grpc.credentials.createInsecure())

async function settled(c: SimOperators): Promise<Agent> {
  const all = [...c.agents.values()]
  await until(() => all.some((a) => a.member.isServing()) && all.every((a) => a.swarm!.peers.ready().length === all.length - 1 && a.member.leader !== null))
  const leader = all.find((a) => a.member.isServing())!
  await until(() => all.every((a) => a.member.leader === leader.id))
  return leader
}

test('each agent reports the same term and leader, every member with its nodes and health, and its own lnd live', async (t) => {
  const c = await cluster(t)
  const [a, b, w] = await Promise.all([c.start('A'), c.start('B'), c.start('W')])
  const leader = await settled(c)
  // Round-trip times come with the first pongs (the swarm pings every second).
  await until(() => [a, b, w].every((x) => x.swarm!.peers.ready().every((p) => p.rttMs !== null)))
  const statuses = new Map<Name, ClusterStatus>([['A', await ask(a)], ['B', await ask(b)], ['W', await ask(w)]])

  for (const [name, s] of statuses) {
    const agent = c.agents.get(name)!
    assert.equal(hex(s.agent), agent.id)
    assert.equal(s.term, leader.member.term, `${name} is in the leader's term`)
    assert.equal(hex(s.leader), leader.id)
    assert.equal(s.serving, agent === leader)
    assert.equal(s.standing, agent === leader ? 'leader' : 'follower')
    assert.equal(hex(s.muxPubkey), hex(a.muxPubkey()), `${name} knows the virtual node's key`)
    assert.match(s.software, /^highwire\//)
    // Itself first, then both peers, all connected voters; exactly one member is the leader.
    assert.deepEqual(s.members.map((m) => hex(m.agent)).sort(), [a.id, b.id, w.id].sort())
    assert.equal(hex(s.members[0]!.agent), agent.id)
    assert.ok(s.members[0]!.self)
    assert.ok(s.members.every((m) => m.connected && m.voter))
    assert.deepEqual(s.members.filter((m) => m.leader).map((m) => hex(m.agent)), [leader.id])
    for (const m of s.members.filter((m) => !m.self)) {
      assert.ok(m.rttMs !== null && m.rttMs >= 0 && m.rttMs < 1000, `rtt of a loopback peer: ${m.rttMs}`)
      assert.ok(m.lastSeenMs > s.timeMs - 5000 && m.lastSeenMs <= s.timeMs, 'heard from within the last seconds')
    }
  }

  // Roles and nodes as the hellos announced them, with the virtual scid each agent's interceptor uses.
  const fromA = statuses.get('A')!
  const role = (s: ClusterStatus, agent: Agent) => s.members.find((m) => hex(m.agent) === agent.id)!
  assert.deepEqual([role(fromA, a).role, role(fromA, b).role, role(fromA, w).role], ['candidate', 'candidate', 'witness'])
  assert.equal(role(fromA, a).priority, 1)
  const bobSeenByA = role(fromA, b).nodes
  assert.equal(bobSeenByA.length, 1)
  assert.equal(hex(bobSeenByA[0]!.pubkey), b.nodes[0]!.pubkey)
  assert.equal(bobSeenByA[0]!.virtualScid, b.nodes[0]!.virtualScid)
  assert.equal(bobSeenByA[0]!.alias, b.nodes[0]!.alias)
  assert.ok(bobSeenByA[0]!.inboundMsat > 0n && bobSeenByA[0]!.inboundMsat <= OPERATOR_CHANNEL_MSAT, `Bob's inbound as announced: ${bobSeenByA[0]!.inboundMsat}`)
  assert.equal(role(fromA, w).nodes.length, 0)
  // Own nodes are probed live: Alice answers, synced, at the height the agent follows.
  assert.deepEqual(fromA.lnd.map((l) => [l.name, hex(l.pubkey), l.reachable, l.syncedToChain, l.error]), [['alice', a.nodes[0]!.pubkey, true, true, '']])
  assert.equal(fromA.lnd[0]!.host, c.servers.alice.connection.host)
  assert.equal(fromA.lnd[0]!.blockHeight, a.nodes[0]!.height)
  assert.equal(role(fromA, a).nodes[0]!.inboundMsat, await a.nodes[0]!.refreshInbound(Date.now()))
  assert.deepEqual(statuses.get('W')!.lnd, [])
  assert.equal(statuses.get('W')!.role, 'witness')
})

test('a member that left stays listed as a voter, not connected; an lnd that is down is reported unreachable', async (t) => {
  const c = await cluster(t)
  const [a, b] = await Promise.all([c.start('A'), c.start('B'), c.start('W')])
  await settled(c)
  await c.stop('B', 'stopped by the test')
  await until(async () => {
    const s = await ask(a)
    const gone = s.members.find((m) => hex(m.agent) === b.id)
    return gone !== undefined && !gone.connected
  })
  const s = await ask(a)
  const gone = s.members.find((m) => hex(m.agent) === b.id)!
  assert.deepEqual({ role: gone.role, voter: gone.voter, rtt: gone.rttMs, nodes: gone.nodes.length }, { role: 'unknown', voter: true, rtt: null, nodes: 0 })
  assert.equal(hex(s.members.at(-1)!.agent), b.id, 'absent voters come after the connected peers')

  await c.servers.alice.close()
  const down = await ask(a)
  assert.equal(down.lnd.length, 1)
  assert.equal(down.lnd[0]!.reachable, false)
  assert.ok(down.lnd[0]!.error.length > 0, 'says why')
})

test('node src status prints the view of the agent named by the config, or by --api; --json for scripts', async (t) => {
  const c = await cluster(t)
  const [a] = await Promise.all([c.start('A'), c.start('B'), c.start('W')])
  const leader = await settled(c)
  const run = async (args: string[]) => {
    const out: string[] = []
    const err: string[] = []
    const code = await statusCommand(args, (l) => out.push(l), (l) => err.push(l))
    return { code, out: out.join('\n'), err: err.join('\n') }
  }

  // From the config: only api.listen is read, the placeholder secret does not matter.
  const dir = await mkdtemp(join(tmpdir(), 'highwire-status-config-'))
  t.after(() => rm(dir, { recursive: true, force: true }))
  await writeFile(join(dir, 'default.json'), JSON.stringify({ cluster: { secret: 'not needed here' }, api: { listen: address(a), tls: null } }))
  const saved = process.env.NODE_CONFIG_DIR
  process.env.NODE_CONFIG_DIR = dir
  t.after(() => (saved === undefined ? delete process.env.NODE_CONFIG_DIR : (process.env.NODE_CONFIG_DIR = saved)))
  const text = await run([])
  assert.equal(text.code, 0, text.err)
  assert.match(text.out, new RegExp(`^agent   ${a.id} \\(candidate, highwire/`))
  assert.match(text.out, new RegExp(`^term    ${leader.member.term}: `, 'm'))
  assert.match(text.out, /^members \(3, 3 connected\):$/m)
  assert.match(text.out, new RegExp(`^  \\* ${leader.id}  candidate, voter, LEADER`, 'm'))
  assert.match(text.out, new RegExp(`virtual scid \\d+x\\d+x\\d+  inbound [\\d,]+ sat`))
  assert.match(text.out, /^  alice 127\.0\.0\.1:\d+ [0-9a-f]{66}  ok, height \d+, synced$/m)

  const json = await run(['--json', '--api', address(leader)])
  assert.equal(json.code, 0, json.err)
  const parsed = JSON.parse(json.out)
  assert.equal(parsed.agent, leader.id)
  assert.equal(parsed.serving, true)
  assert.equal(parsed.members.length, 3)
  assert.match(parsed.members[0].nodes[0].virtualScid, /^\d+$/)

  assert.equal((await run(['--verbose'])).code, 2)
  assert.equal((await run(['--api', 'nowhere'])).code, 2)
  const closed = await run(['--api', '127.0.0.1:1'])
  assert.equal(closed.code, 1)
  assert.match(closed.err, /^status: no agent answered at 127\.0\.0\.1:1/)
})

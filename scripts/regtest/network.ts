// The regtest network: btcd plus three lnd nodes, brought up, inspected,
// mined on, restarted node by node, and brought down.
//
// Topology (see README.md):   Carol ──1M──► Alice ──1M──► Bob
//                               └─────────1M──────────────►┘
// Carol funds every channel she is in, so Alice and Bob (the cluster) start
// with inbound capacity; Alice→Bob is the channel rebalancing moves funds over.
import { existsSync, readFileSync, writeFileSync, mkdirSync, rmSync } from 'node:fs'
import { randomBytes } from 'node:crypto'
import path from 'node:path'
import { REGTEST_DIR, ENV_FILE, STATE_FILE, binaries, readVersions, type Binaries } from './paths.ts'
import { RegtestError, startDaemon, stopDaemon, isRunning, assertPortsFree, logTail, waitFor, type Daemon } from './proc.ts'
import { btcdArgs, btcctl, btcdRpcCert, btcdDebugLog, type BtcdSpec } from './btcd.ts'
import { lndArgs, lncli as runLncli, lndTlsCert, lndMacaroon, lndDebugLog, lndHost, type LndSpec } from './lnd.ts'
import { build, isBuilt, formatSeconds } from './build.ts'

export const NODE_NAMES = ['alice', 'bob', 'carol'] as const
export type NodeName = typeof NODE_NAMES[number]

// Big enough that a payment of more than one channel but less than both must
// split across Carol→Alice and Carol→Bob (multi-part through the cluster).
export const CHANNEL_SAT = 1_000_000
// Given by Carol to Alice and Bob: opening fees, anchor reserves, later tests.
const FUNDING_SAT = 50_000_000
// btcd activates segwit on regtest through BIP 9 (window 144 blocks): started
// at 144, locked in at 288, active at 432. Until then it rejects the witness
// transactions lnd makes. By then hundreds of Carol's coinbases have matured.
const SEGWIT_ACTIVE_HEIGHT = 432
const INITIAL_BLOCKS = SEGWIT_ACTIVE_HEIGHT + 8
// lnd announces a channel at 6 confirmations (BOLT 7 announcement_signatures).
const ANNOUNCE_CONFS = 6
const DEFAULT_PORT_BASE = 29700

const CHANNELS: Array<{ from: NodeName, to: NodeName }> = [
  { from: 'carol', to: 'alice' },
  { from: 'carol', to: 'bob' },
  { from: 'alice', to: 'bob' }
]

// ---- state: what we started (private) and env.json (what tests and users read)

interface State {
  btcd: BtcdSpec
  nodes: LndSpec[]
  daemons: Record<string, Daemon>
}

export interface LndNodeConfig { name: string, host: string, tlsCert: string, macaroon: string, pubkey: string }
export interface ChannelInfo { from: NodeName, to: NodeName, chanId: string, channelPoint: string, capacitySat: number }
export interface RegtestEnv {
  network: 'regtest'
  // Exactly the shape of `lnd.nodes[]` in highwire's config.
  nodes: LndNodeConfig[]
  lnd: Record<string, { p2p: string, lnddir: string, debugLog: string, cluster: boolean }>
  channels: ChannelInfo[]
  btcd: { rpc: string, rpcUser: string, rpcPass: string, rpcCert: string, p2p: string, miningAddress: string, debugLog: string }
  binaries: Binaries
  versions: { lnd: string, btcd: string }
}

function readState (): State | undefined {
  return existsSync(STATE_FILE) ? JSON.parse(readFileSync(STATE_FILE, 'utf8')) as State : undefined
}

function writeState (state: State): void {
  writeFileSync(STATE_FILE, JSON.stringify(state, null, 2) + '\n')
}

export function readEnv (): RegtestEnv {
  if (!existsSync(ENV_FILE)) throw new RegtestError('not_up', `no ${ENV_FILE}: run \`npm run regtest -- up\``)
  return JSON.parse(readFileSync(ENV_FILE, 'utf8')) as RegtestEnv
}

function portBase (): number {
  const raw = process.env.HIGHWIRE_REGTEST_PORT_BASE
  if (raw === undefined) return DEFAULT_PORT_BASE
  const base = Number(raw)
  if (!Number.isInteger(base) || base < 1024 || base > 65_000) {
    throw new RegtestError('bad_port_base', `HIGHWIRE_REGTEST_PORT_BASE must be an integer in 1024..65000, got ${raw}`)
  }
  return base
}

function plan (base: number): State {
  return {
    btcd: {
      dir: path.join(REGTEST_DIR, 'btcd'),
      p2pPort: base,
      rpcPort: base + 1,
      rpcUser: 'highwire',
      rpcPass: randomBytes(12).toString('hex')
    },
    nodes: NODE_NAMES.map((name, i) => ({
      name,
      dir: path.join(REGTEST_DIR, name),
      grpcPort: base + 10 * (i + 1),
      p2pPort: base + 10 * (i + 1) + 1,
      cluster: name !== 'carol'
    })),
    daemons: {}
  }
}

function spec (state: State, name: string): LndSpec {
  const s = state.nodes.find((n) => n.name === name)
  if (s === undefined) throw new RegtestError('unknown_node', `unknown node ${name}; expected one of ${NODE_NAMES.join(', ')}`)
  return s
}

function requireState (): State {
  const state = readState()
  if (state === undefined) throw new RegtestError('not_up', 'the regtest network was never started: run `npm run regtest -- up`')
  return state
}

// ---- processes

function died (d: Daemon, debugLog: string): RegtestError {
  return new RegtestError('daemon_died', `${d.name} (pid ${d.pid}) exited during start. ` +
    `Output (${d.log}):\n${logTail(d.log, 20)}\nDebug log (${debugLog}):\n${logTail(debugLog)}`)
}

// Waits for `probe`, failing at once with the log tail if the daemon exits.
async function waitAlive<T> (d: Daemon, debugLog: string, what: string, probe: () => Promise<T | undefined>, timeoutMs: number): Promise<T> {
  try {
    return await waitFor(what, async () => {
      if (!isRunning(d)) throw died(d, debugLog)
      return await probe()
    }, timeoutMs, 250, (err) => err instanceof RegtestError && err.code === 'daemon_died')
  } catch (err) {
    if (err instanceof RegtestError && err.code === 'timeout') {
      throw new RegtestError('start_timeout', `${err.message}\nDebug log of ${d.name} (${debugLog}):\n${logTail(debugLog)}`)
    }
    throw err
  }
}

async function startBtcd (state: State, bins: Binaries): Promise<void> {
  mkdirSync(state.btcd.dir, { recursive: true })
  await assertPortsFree([{ what: 'btcd p2p', port: state.btcd.p2pPort }, { what: 'btcd rpc', port: state.btcd.rpcPort }])
  const d = startDaemon('btcd', bins.btcd, btcdArgs(state.btcd), path.join(state.btcd.dir, 'stdout.log'))
  state.daemons.btcd = d
  writeState(state)
  await waitAlive(d, btcdDebugLog(state.btcd), 'btcd rpc', async () => await btcctl(bins.btcctl, state.btcd, ['getblockcount']), 30_000)
}

async function startLnd (state: State, name: string, bins: Binaries): Promise<void> {
  const s = spec(state, name)
  mkdirSync(s.dir, { recursive: true })
  await assertPortsFree([{ what: `${name} grpc`, port: s.grpcPort }, { what: `${name} p2p`, port: s.p2pPort }])
  const d = startDaemon(name, bins.lnd, lndArgs(s, state.btcd), path.join(s.dir, 'stdout.log'))
  state.daemons[name] = d
  writeState(state)
  await waitAlive(d, lndDebugLog(s), `${name} rpc`, async () => {
    if (!existsSync(lndMacaroon(s))) return undefined
    return await runLncli(bins.lncli, s, ['getinfo'])
  }, 60_000)
}

async function stopByName (state: State, name: string): Promise<string> {
  const d = state.daemons[name]
  if (d === undefined) return 'not started'
  const result = await stopDaemon(d)
  delete state.daemons[name]
  writeState(state)
  return result
}

// ---- chain

async function blockCount (state: State, bins: Binaries): Promise<number> {
  return Number(await btcctl(bins.btcctl, state.btcd, ['getblockcount']))
}

async function waitSynced (state: State, bins: Binaries, names: readonly string[], height: number): Promise<void> {
  await Promise.all(names.map(async (name) => {
    const s = spec(state, name)
    const d = state.daemons[name]
    if (d === undefined) return
    await waitAlive(d, lndDebugLog(s), `${name} synced to height ${height}`, async () => {
      const info = await runLncli(bins.lncli, s, ['getinfo'])
      return info.synced_to_chain === true && info.block_height >= height ? true : undefined
    }, 60_000)
  }))
}

async function mineOn (state: State, bins: Binaries, blocks: number): Promise<string[]> {
  const hashes = JSON.parse(await btcctl(bins.btcctl, state.btcd, ['generate', String(blocks)])) as string[]
  const running = state.nodes.map((n) => n.name).filter((n) => state.daemons[n] !== undefined && isRunning(state.daemons[n]))
  await waitSynced(state, bins, running, await blockCount(state, bins))
  return hashes
}

// ---- public operations

export function isUp (): boolean {
  const state = readState()
  if (state === undefined || !existsSync(ENV_FILE)) return false
  return ['btcd', ...NODE_NAMES].every((n) => state.daemons[n] !== undefined && isRunning(state.daemons[n]))
}

export interface DaemonStatus { name: string, pid: number | null, running: boolean }

export function status (): { up: boolean, daemons: DaemonStatus[] } {
  const state = readState()
  const daemons = ['btcd', ...NODE_NAMES].map((name) => {
    const d = state?.daemons[name]
    return { name, pid: d?.pid ?? null, running: d !== undefined && isRunning(d) }
  })
  return { up: isUp(), daemons }
}

export async function down (log: (line: string) => void = console.log): Promise<void> {
  const state = readState()
  if (state === undefined) {
    log('nothing to stop')
    return
  }
  // lnd first, so none of them sees its chain backend vanish mid-shutdown.
  const results = await Promise.all(NODE_NAMES.map(async (n) => `${n}: ${await stopByName(state, n)}`))
  results.push(`btcd: ${await stopByName(state, 'btcd')}`)
  log(results.join(', '))
}

type Lncli = (name: string, args: string[]) => Promise<any>

async function fundNodes (state: State, bins: Binaries, lncli: Lncli): Promise<void> {
  await waitFor('carol to see mature coinbase outputs', async () => {
    const bal = await lncli('carol', ['walletbalance'])
    return Number(bal.confirmed_balance) >= 2 * FUNDING_SAT + 2 * CHANNEL_SAT ? true : undefined
  }, 60_000)
  const outputs: Record<string, number> = {}
  for (const name of ['alice', 'bob']) {
    outputs[(await lncli(name, ['newaddress', 'p2wkh'])).address] = FUNDING_SAT
  }
  await lncli('carol', ['sendmany', JSON.stringify(outputs)])
  await mineOn(state, bins, 1)
  for (const name of ['alice', 'bob']) {
    await waitFor(`${name} confirmed balance`, async () => {
      const bal = await lncli(name, ['walletbalance'])
      return Number(bal.confirmed_balance) >= FUNDING_SAT ? true : undefined
    }, 60_000)
  }
}

async function openChannels (state: State, bins: Binaries, lncli: Lncli, pubkeys: Record<string, string>): Promise<void> {
  for (const { from, to } of CHANNELS) {
    const target = `${pubkeys[to]}@127.0.0.1:${spec(state, to).p2pPort}`
    await lncli(from, ['connect', target]).catch((err: Error) => {
      if (!/already connected/.test(err.message)) throw err
    })
    // lnd refuses to open while the peer handshake or its chain view is
    // settling; retry the open itself rather than guessing which.
    await waitFor(`channel ${from}→${to}`, async () =>
      await lncli(from, ['openchannel', `--node_key=${pubkeys[to]}`, `--local_amt=${CHANNEL_SAT}`]), 30_000, 500)
  }
  await mineOn(state, bins, ANNOUNCE_CONFS)
}

async function waitNetworkReady (lncli: Lncli, pubkeys: Record<string, string>): Promise<ChannelInfo[]> {
  const channels: ChannelInfo[] = []
  for (const { from, to } of CHANNELS) {
    const ch = await waitFor(`channel ${from}→${to} active`, async () => {
      const { channels: list } = await lncli(from, ['listchannels', '--active_only'])
      return (list as any[]).find((c) => c.remote_pubkey === pubkeys[to])
    }, 60_000)
    // lncli ≥ 0.21 prints `chan_id` as the 32-byte channel id and the short
    // channel id (gRPC's uint64 `chan_id`) as `scid`.
    channels.push({ from, to, chanId: String(ch.scid), channelPoint: ch.channel_point, capacitySat: Number(ch.capacity) })
  }
  // Usable graph: every node knows every channel with both directions' policies,
  // so Carol can route to Bob via Alice and Alice can route to Bob directly.
  for (const name of NODE_NAMES) {
    await waitFor(`${name} to see the full graph`, async () => {
      const { edges } = await lncli(name, ['describegraph'])
      const known = (edges as any[]).filter((e) => e.node1_policy != null && e.node2_policy != null &&
        channels.some((c) => c.chanId === String(e.channel_id)))
      return known.length === channels.length ? true : undefined
    }, 120_000, 500)
  }
  return channels
}

function writeEnv (state: State, bins: Binaries, pubkeys: Record<string, string>, channels: ChannelInfo[]): RegtestEnv {
  const versions = readVersions()
  const env: RegtestEnv = {
    network: 'regtest',
    nodes: state.nodes.map((s) => ({ name: s.name, host: lndHost(s), tlsCert: lndTlsCert(s), macaroon: lndMacaroon(s), pubkey: pubkeys[s.name] ?? '' })),
    lnd: Object.fromEntries(state.nodes.map((s) => [s.name, { p2p: `127.0.0.1:${s.p2pPort}`, lnddir: s.dir, debugLog: lndDebugLog(s), cluster: s.cluster }])),
    channels,
    btcd: {
      rpc: `127.0.0.1:${state.btcd.rpcPort}`,
      rpcUser: state.btcd.rpcUser,
      rpcPass: state.btcd.rpcPass,
      rpcCert: btcdRpcCert(state.btcd),
      p2p: `127.0.0.1:${state.btcd.p2pPort}`,
      miningAddress: state.btcd.miningAddress ?? '',
      debugLog: btcdDebugLog(state.btcd)
    },
    binaries: bins,
    versions: { lnd: versions.lnd.version, btcd: versions.btcd.version }
  }
  writeFileSync(ENV_FILE, JSON.stringify(env, null, 2) + '\n')
  return env
}

async function bringUp (state: State, bins: Binaries, log: (line: string) => void): Promise<void> {
  const step = async (what: string, fn: () => Promise<void>): Promise<void> => {
    const t = Date.now()
    await fn()
    log(`  ${what} (${formatSeconds((Date.now() - t) / 1000)})`)
  }
  const lncli: Lncli = async (name, args) => await runLncli(bins.lncli, spec(state, name), args)

  // btcd can only mine to an address fixed at start and has no
  // generatetoaddress, so Carol's wallet is created first (lnd serves RPCs
  // before the chain is synced), then btcd restarts paying her.
  await step('mining address from carol\'s wallet', async () => {
    await startBtcd(state, bins)
    await startLnd(state, 'carol', bins)
    state.btcd.miningAddress = (await lncli('carol', ['newaddress', 'p2wkh'])).address
    await stopByName(state, 'carol')
    await stopByName(state, 'btcd')
  })
  await step(`btcd up, ${INITIAL_BLOCKS} blocks mined`, async () => {
    await startBtcd(state, bins)
    await btcctl(bins.btcctl, state.btcd, ['generate', String(INITIAL_BLOCKS)])
  })
  await step('alice, bob, carol up and synced', async () => {
    await Promise.all(NODE_NAMES.map(async (n) => await startLnd(state, n, bins)))
    await waitSynced(state, bins, NODE_NAMES, INITIAL_BLOCKS)
  })
  const pubkeys: Record<string, string> = {}
  for (const n of NODE_NAMES) pubkeys[n] = (await lncli(n, ['getinfo'])).identity_pubkey
  await step('alice and bob funded', async () => await fundNodes(state, bins, lncli))
  await step('channels opened and confirmed', async () => await openChannels(state, bins, lncli, pubkeys))
  let channels: ChannelInfo[] = []
  await step('channels active, graph complete', async () => { channels = await waitNetworkReady(lncli, pubkeys) })
  writeEnv(state, bins, pubkeys, channels)
}

export async function up (log: (line: string) => void = console.log): Promise<void> {
  if (isUp()) {
    log(`regtest network already up (${ENV_FILE})`)
    return
  }
  if (!isBuilt()) throw new RegtestError('not_built', 'binaries are not built: run `npm run regtest -- build`')
  // Anything half-started earlier is stopped and its data discarded: `up`
  // always yields the same fresh network.
  if (readState() !== undefined) await down(log)
  rmSync(REGTEST_DIR, { recursive: true, force: true })
  mkdirSync(REGTEST_DIR, { recursive: true })

  const started = Date.now()
  const state = plan(portBase())
  writeState(state)
  const bins = binaries()
  const ports = [
    { what: 'btcd p2p', port: state.btcd.p2pPort },
    { what: 'btcd rpc', port: state.btcd.rpcPort },
    ...state.nodes.flatMap((n) => [{ what: `${n.name} grpc`, port: n.grpcPort }, { what: `${n.name} p2p`, port: n.p2pPort }])
  ]
  await assertPortsFree(ports)
  log(`starting regtest network in ${REGTEST_DIR}`)
  try {
    await bringUp(state, bins, log)
  } catch (err) {
    log('start failed; stopping what was started (data and logs stay in .regtest/)')
    await down(log)
    throw err
  }
  log(`regtest network up in ${formatSeconds((Date.now() - started) / 1000)}; env: ${ENV_FILE}`)
}

export async function ensure (log: (line: string) => void = console.log): Promise<void> {
  await build(log)
  await up(log)
}

// ---- helpers for tests: chain and single-node control

export async function lncli (name: string, args: string[]): Promise<any> {
  return await runLncli(binaries().lncli, spec(requireState(), name), args)
}

export async function mine (blocks: number): Promise<string[]> {
  return await mineOn(requireState(), binaries(), blocks)
}

export async function stopNode (name: NodeName): Promise<void> {
  const state = requireState()
  spec(state, name)
  await stopByName(state, name)
}

// Starts a stopped node with its original flags and waits until it is synced
// and every channel it has in env.json is active again.
export async function startNode (name: NodeName): Promise<void> {
  const state = requireState()
  const bins = binaries()
  const d = state.daemons[name]
  if (d !== undefined && isRunning(d)) return
  await startLnd(state, name, bins)
  await waitSynced(state, bins, [name], await blockCount(state, bins))
  const env = readEnv()
  const mine = env.channels.filter((c) => c.from === name || c.to === name)
  await waitFor(`${name}'s channels active`, async () => {
    const { channels } = await runLncli(bins.lncli, spec(state, name), ['listchannels', '--active_only'])
    const active = new Set((channels as any[]).map((c) => String(c.scid)))
    return mine.every((c) => active.has(c.chanId)) ? true : undefined
  }, 60_000, 500)
}

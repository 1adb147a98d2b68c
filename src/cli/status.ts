// `node src status [--json] [--api HOST:PORT]`: asks the running agent for its view of the cluster
// over the highwire.Cluster RPC and prints it. The API address (and its TLS certificate) come from
// the same config as `node src run`, read raw so that the secret is not needed: an operator's shell
// may see the config without the secrets the agent gets from its environment.
import { readFileSync } from 'node:fs'
import * as grpc from '@grpc/grpc-js'
import { loadRawConfig } from '../config/load.ts'
import { isLoopback, parseHostPort, type HostPort } from '../config/schema.ts'
import { formatScid } from '../ln/scid.ts'
import { fetchStatus, StatusError, type ClusterStatus, type StatusMember } from '../api/status.ts'

export const STATUS_USAGE = 'usage: node src status [--json] [--api HOST:PORT]'

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex')

interface Target {
  address: string
  credentials: grpc.ChannelCredentials
}

/** An agent listening on every interface is asked on loopback. */
function dialHost(host: string): string {
  if (host === '0.0.0.0') return '127.0.0.1'
  if (host === '::') return '[::1]'
  return host.includes(':') ? `[${host}]` : host
}

function targetOf(listen: HostPort, certPath: string | null): Target {
  const address = `${dialHost(listen.host)}:${listen.port}`
  if (certPath === null) return { address, credentials: grpc.credentials.createInsecure() }
  return { address, credentials: grpc.credentials.createSsl(readFileSync(certPath)) }
}

/** `api.listen` and `api.tls.cert` from the raw config tree; null with a reason when unusable. */
function configuredTarget(raw: unknown): Target | string {
  const api = (raw as { api?: { listen?: unknown; tls?: { cert?: unknown } | null } } | null)?.api
  const listen = typeof api?.listen === 'string' ? parseHostPort(api.listen) : null
  if (listen === null) return `api.listen is not host:port in the config: ${JSON.stringify(api?.listen)}`
  const cert = api?.tls?.cert
  if (api?.tls && typeof cert !== 'string') return 'api.tls is set without a cert path'
  if (typeof cert !== 'string' && !isLoopback(listen.host) && listen.host !== '0.0.0.0' && listen.host !== '::') return `api.listen ${api!.listen} is not loopback and api.tls is not set`
  return targetOf(listen, typeof cert === 'string' ? cert : null)
}

function ago(ms: number): string {
  if (ms < 1000) return `${ms} ms ago`
  if (ms < 120_000) return `${(ms / 1000).toFixed(1)} s ago`
  return `${Math.round(ms / 60_000)} min ago`
}

const sat = (msat: bigint): string => `${(msat / 1000n).toLocaleString('en-US')} sat`

function memberLines(m: StatusMember, now: number): string[] {
  const marks = [m.role, m.voter ? 'voter' : null, m.leader ? 'LEADER' : null, m.self ? 'this agent' : null].filter((x) => x !== null)
  const health = m.self ? '' : !m.connected ? 'not connected' : `connected${m.initiator ? ' (dialled)' : ''}, rtt ${m.rttMs === null ? '?' : `${m.rttMs} ms`}, last seen ${ago(Math.max(0, now - m.lastSeenMs))}`
  const lines = [`  ${m.connected ? (m.leader ? '*' : '+') : '-'} ${hex(m.agent)}  ${marks.join(', ')}${health ? `  ${health}` : ''}`]
  for (const n of m.nodes) lines.push(`      node ${n.alias || '(no alias)'} ${hex(n.pubkey)}  virtual scid ${formatScid(n.virtualScid)}  inbound ${sat(n.inboundMsat)}`)
  return lines
}

/** The status as an operator reads it. */
export function formatStatus(s: ClusterStatus): string[] {
  const standing = s.serving ? 'leader, serving' : s.standing === 'leader' ? 'leader, not serving yet' : s.standing
  const leader = s.leader === null ? 'none' : s.leader.every((b, i) => b === s.agent[i]) ? 'this agent' : hex(s.leader)
  const lines = [
    `agent   ${hex(s.agent)} (${s.role}, ${s.software})`,
    `term    ${s.term}: ${standing}; leader ${leader}`,
    `mux     ${s.muxPubkey === null ? 'unknown (no candidate seen)' : hex(s.muxPubkey)}`,
    `records ${s.knownRecords} settle/cancel/final held; block height ${s.blockHeight}`,
    `members (${s.members.length}, ${s.members.filter((m) => m.connected).length} connected):`,
    ...s.members.flatMap((m) => memberLines(m, s.timeMs))
  ]
  lines.push(s.lnd.length === 0 ? 'lnd     none held by this agent' : 'lnd:')
  for (const l of s.lnd) {
    const state = l.reachable ? `ok, height ${l.blockHeight}${l.syncedToChain ? ', synced' : ', NOT synced to chain'}` : `UNREACHABLE: ${l.error}`
    lines.push(`  ${l.name} ${l.host} ${hex(l.pubkey)}  ${state}`)
  }
  return lines
}

/** JSON for scripts: keys in hex, amounts and scids as decimal strings (they exceed 2^53). */
export function statusJson(s: ClusterStatus): string {
  return JSON.stringify(s, (_key, v: unknown) => {
    if (v instanceof Uint8Array) return hex(v)
    if (typeof v === 'bigint') return v.toString()
    return v
  }, 2)
}

export async function statusCommand(args: string[], out: (line: string) => void, err: (line: string) => void): Promise<number> {
  let json = false
  let apiFlag: string | null = null
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!
    if (arg === '--json') json = true
    else if (arg === '--api' && i + 1 < args.length) apiFlag = args[++i]!
    else {
      err(`status: unexpected argument ${JSON.stringify(arg)}`)
      err(STATUS_USAGE)
      return 2
    }
  }
  let target: Target | string
  if (apiFlag !== null) {
    const listen = parseHostPort(apiFlag)
    target = listen === null ? `--api ${JSON.stringify(apiFlag)} is not host:port` : targetOf(listen, null)
  } else {
    try {
      target = configuredTarget(await loadRawConfig())
    } catch (e) {
      target = `cannot read the config: ${(e as Error).message}`
    }
  }
  if (typeof target === 'string') {
    err(`status: ${target}`)
    return 2
  }
  try {
    const status = await fetchStatus(target.address, target.credentials)
    if (json) out(statusJson(status))
    else formatStatus(status).forEach((line) => out(line))
    return 0
  } catch (e) {
    if (!(e instanceof StatusError)) throw e
    err(`status: ${e.code === 'unreachable' ? 'no agent answered at ' : 'bad answer: '}${e.message}`)
    return 1
  }
}

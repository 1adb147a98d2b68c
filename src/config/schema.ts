// The whole config tree, validated at start-up. Every problem is collected and reported with its key
// path, what is wrong and an example; nothing starts while any remain.
import { existsSync, readFileSync } from 'node:fs'
import { homedir } from 'node:os'
import { isIP } from 'node:net'
import { resolve } from 'node:path'
import { ConfigReader, ConfigError, isTree } from './reader.ts'
import { parseClusterSecret, parseIdentityKey } from './secrets.ts'
import { secp256k1 } from '../ln/secp256k1.ts'
import type { VirtualChannelPolicy } from '../ln/stateless.ts'

export const NETWORKS = ['mainnet', 'testnet', 'signet', 'regtest'] as const
export type Network = (typeof NETWORKS)[number]
export const LOG_LEVELS = ['debug', 'info', 'warn', 'error'] as const
export type LogLevel = (typeof LOG_LEVELS)[number]

export interface HostPort {
  host: string
  port: number
}

/** One LND node this agent holds, with its credentials read into memory. */
export interface LndNodeConfig {
  name: string
  /** gRPC `host:port`. */
  host: string
  /** PEM bytes of the node's TLS certificate (pinned). */
  tlsCert: Buffer
  /** Raw macaroon bytes. */
  macaroon: Buffer
  /** 33-byte compressed public key, hex; checked against GetInfo at start-up. */
  pubkey: string
}

export interface HighwireConfig {
  network: Network
  cluster: {
    secret: Uint8Array
    /** Allow-list of agent public keys (hex); empty allows every holder of the secret. */
    members: string[]
    /**
     * The agents that vote (hold a node or are witnesses), fixed; empty learns them from hellos,
     * which leaves an agent that has not met the others yet counting only itself.
     */
    voters: string[]
    /** DHT bootstrap nodes; empty uses Hyperswarm's public bootstrap. */
    bootstrap: HostPort[]
    proofTimeoutMs: number
  }
  mux: {
    /** Present on candidates only. */
    identityKey: Uint8Array | null
    /** The virtual channels' policy in route hints (config keys feeBaseMsat, feeRateppm, cltvDelta). */
    routingPolicy: VirtualChannelPolicy
    maxRouteHints: number
    minFinalCltvExpiry: number
    mppTimeoutMs: number
    acceptTimeoutMs: number
    autoSettle: boolean
    priority: number
  }
  lnd: {
    nodes: LndNodeConfig[]
    allowUnsafe: boolean
  }
  storage: { path: string }
  api: {
    listen: HostPort
    tls: { cert: Buffer; key: Buffer } | null
  }
  log: { level: LogLevel }
}

/** The role DESIGN.md gives an agent with this config. */
export function agentRole(config: HighwireConfig): 'candidate' | 'edge' | 'witness' {
  if (config.mux.identityKey) return 'candidate'
  return config.lnd.nodes.length > 0 ? 'edge' : 'witness'
}

const NODE_NAME = /^[a-z0-9][a-z0-9_-]{0,31}$/

export function parseHostPort(text: string): HostPort | null {
  const match = /^(\[[0-9a-fA-F:.]+\]|[^:\s]+):(\d{1,5})$/.exec(text)
  if (!match) return null
  const port = Number(match[2])
  if (port < 1 || port > 65535) return null
  return { host: match[1]!.replace(/^\[|\]$/g, ''), port }
}

export function isLoopback(host: string): boolean {
  if (host === 'localhost') return true
  if (isIP(host) === 4) return host.startsWith('127.')
  return host === '::1'
}

/** A configured path: `~/` is the home folder, relative paths are from the working directory. */
export function expandPath(path: string): string {
  return resolve(path.startsWith('~/') ? homedir() + path.slice(1) : path)
}

function readFile(r: ConfigReader, path: string, file: string, example: string): Buffer | undefined {
  const full = expandPath(file)
  try {
    return readFileSync(full)
  } catch (err) {
    r.report(path, `cannot read file ${full}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, example)
    return undefined
  }
}

const PEM_CERT = '-----BEGIN CERTIFICATE-----'

/** `tlsCert`: PEM text, base64 of the PEM, or a file path. */
function readTlsCert(r: ConfigReader, value: unknown, path: string): Buffer | undefined {
  const example = '"/home/op/.lnd/tls.cert"'
  const text = r.string(value, path, example)
  if (text === undefined) return undefined
  if (text.startsWith(PEM_CERT)) return Buffer.from(text)
  const decoded = Buffer.from(text, 'base64')
  if (decoded.subarray(0, PEM_CERT.length).toString() === PEM_CERT) return decoded
  const pem = readFile(r, path, text, example)
  if (pem && !pem.includes(PEM_CERT)) {
    r.report(path, `file ${expandPath(text)} is not a PEM certificate`, example)
    return undefined
  }
  return pem
}

/** `macaroon`: hex, base64 or a file path. Its value is never echoed. */
function readMacaroon(r: ConfigReader, value: unknown, path: string): Buffer | undefined {
  const example = '"/home/op/.lnd/data/chain/bitcoin/mainnet/admin.macaroon"'
  if (typeof value !== 'string' || value.length === 0) {
    r.report(path, 'must be a file path, hex or base64', example)
    return undefined
  }
  if (/^(?:[0-9a-fA-F]{2}){20,}$/.test(value)) return Buffer.from(value, 'hex')
  if (existsSync(expandPath(value))) return readFile(r, path, value, example)
  const decoded = Buffer.from(value, 'base64')
  // Macaroons v2 start with version byte 2 (lnd uses gopkg.in/macaroon.v2 binary format).
  if (/^[A-Za-z0-9+/]+={0,2}$/.test(value) && decoded.length >= 20 && decoded[0] === 0x02) return decoded
  r.report(path, 'is not hex, not base64 of a macaroon, and no such file exists', example)
  return undefined
}

function readPubkey(r: ConfigReader, value: unknown, path: string): string | undefined {
  return r.string(value, path, '"02a3c1...(66 hex characters)"', (s) =>
    !/^0[23][0-9a-fA-F]{64}$/.test(s)
      ? 'must be a 33-byte compressed public key as 66 hex characters'
      : !secp256k1.isPublicKey(Buffer.from(s, 'hex'))
        ? 'is not a point on secp256k1'
        : null
  )?.toLowerCase()
}

function readLndNode(r: ConfigReader, raw: unknown, path: string): LndNodeConfig | undefined {
  const node = r.section(raw, path, ['name', 'host', 'tlsCert', 'macaroon', 'pubkey'], '{"name": "alice", "host": "127.0.0.1:10009", ...}')
  const name = r.string(node.name, `${path}.name`, '"alice"', (s) => (NODE_NAME.test(s) ? null : 'must be 1-32 of a-z, 0-9, - and _'))
  const host = r.string(node.host, `${path}.host`, '"127.0.0.1:10009"', (s) => (parseHostPort(s) ? null : 'must be host:port'))
  const tlsCert = readTlsCert(r, node.tlsCert, `${path}.tlsCert`)
  const macaroon = readMacaroon(r, node.macaroon, `${path}.macaroon`)
  const pubkey = readPubkey(r, node.pubkey, `${path}.pubkey`)
  if (name === undefined || host === undefined || !tlsCert || !macaroon || pubkey === undefined) return undefined
  return { name, host, tlsCert, macaroon, pubkey }
}

function readSecret(r: ConfigReader, value: unknown): Uint8Array | undefined {
  const path = 'cluster.secret'
  const example = '64 hex characters from `node src init`'
  if (typeof value !== 'string') {
    r.report(path, 'must be a string (hex or base64); set it in config/local.json or HIGHWIRE_SECRET', example)
    return undefined
  }
  const parsed = parseClusterSecret(value.trim())
  if ('problem' in parsed) r.report(path, parsed.problem, example)
  return 'value' in parsed ? parsed.value : undefined
}

function readIdentityKey(r: ConfigReader, value: unknown): Uint8Array | null | undefined {
  if (value === undefined || value === null || value === '') return null
  const example = '64 hex characters from `node src init --candidate`'
  if (typeof value !== 'string') {
    r.report('mux.identityKey', 'must be a hex string or null', example)
    return undefined
  }
  const parsed = parseIdentityKey(value.trim())
  if ('problem' in parsed) r.report('mux.identityKey', parsed.problem, example)
  return 'value' in parsed ? parsed.value : undefined
}

function readHostPortList(r: ConfigReader, value: unknown, path: string): HostPort[] {
  const list: HostPort[] = []
  r.array(value, path, '["127.0.0.1:49737"]').forEach((item, i) => {
    const text = r.string(item, `${path}[${i}]`, '"127.0.0.1:49737"', (s) => (parseHostPort(s) ? null : 'must be host:port'))
    if (text !== undefined) list.push(parseHostPort(text)!)
  })
  return list
}

// A list of agent keys; `problem` may refuse a well-formed key, given the keys accepted before it.
function readAgentKeys(r: ConfigReader, value: unknown, path: string, problem: (key: string, before: string[]) => string | null = () => null): string[] {
  const keys: string[] = []
  r.array(value, path, '["<64-hex agent key>"]').forEach((item, i) => {
    const key = r.string(item, `${path}[${i}]`, '"<64-hex agent key from `node src status`>"', (s) =>
      /^[0-9a-fA-F]{64}$/.test(s) ? problem(s.toLowerCase(), keys) : 'must be a 32-byte agent public key as 64 hex characters'
    )
    if (key !== undefined) keys.push(key.toLowerCase())
  })
  return keys
}

function readVoters(r: ConfigReader, value: unknown, members: string[]): string[] {
  return readAgentKeys(r, value, 'cluster.voters', (key, before) =>
    before.includes(key) ? `${key} is listed twice`
    : members.length > 0 && !members.includes(key) ? `${key} is not in cluster.members`
    : null)
}

function readApi(r: ConfigReader, raw: unknown): HighwireConfig['api'] | undefined {
  const api = r.section(raw, 'api', ['listen', 'tls'])
  const listenText = r.string(api.listen, 'api.listen', '"127.0.0.1:19090"', (s) => (parseHostPort(s) ? null : 'must be host:port'))
  let tls: HighwireConfig['api']['tls'] = null
  if (api.tls !== undefined && api.tls !== null) {
    const t = r.section(api.tls, 'api.tls', ['cert', 'key'], '{"cert": "/path/api.crt", "key": "/path/api.key"}')
    const certPath = r.string(t.cert, 'api.tls.cert', '"/etc/highwire/api.crt"')
    const keyPath = r.string(t.key, 'api.tls.key', '"/etc/highwire/api.key"')
    const cert = certPath === undefined ? undefined : readFile(r, 'api.tls.cert', certPath, '"/etc/highwire/api.crt"')
    const key = keyPath === undefined ? undefined : readFile(r, 'api.tls.key', keyPath, '"/etc/highwire/api.key"')
    if (cert && key) tls = { cert, key }
  }
  if (listenText === undefined) return undefined
  const listen = parseHostPort(listenText)!
  if (!isLoopback(listen.host) && tls === null) {
    r.report('api.listen', `${listenText} is not a loopback address; set api.tls to listen there (plaintext is loopback-only)`, '"127.0.0.1:19090"')
    return undefined
  }
  return { listen, tls }
}

/**
 * Validate a raw config tree (defaults already merged, environment overrides applied).
 * Throws ConfigError listing every problem.
 */
export function validateConfig(raw: unknown): HighwireConfig {
  const r = new ConfigReader()
  const root = r.section(raw, '', ['network', 'cluster', 'mux', 'lnd', 'storage', 'api', 'log'])
  const network = r.oneOf(root.network, 'network', NETWORKS)

  const cluster = r.section(root.cluster, 'cluster', ['secret', 'members', 'voters', 'bootstrap', 'proofTimeout'])
  const secret = readSecret(r, cluster.secret)
  const members = readAgentKeys(r, cluster.members, 'cluster.members')
  const voters = readVoters(r, cluster.voters, members)
  const bootstrap = readHostPortList(r, cluster.bootstrap, 'cluster.bootstrap')
  const proofTimeoutMs = r.durationMs(cluster.proofTimeout, 'cluster.proofTimeout', '"5s"', 1)

  const mux = r.section(root.mux, 'mux', [
    'identityKey', 'routingPolicy', 'maxRouteHints', 'minFinalCltvExpiry', 'mppTimeout', 'acceptTimeout', 'autoSettle', 'priority'
  ])
  const identityKey = readIdentityKey(r, mux.identityKey)
  const policy = r.section(mux.routingPolicy, 'mux.routingPolicy', ['feeBaseMsat', 'feeRateppm', 'cltvDelta'])
  const feeBaseMsat = r.integer(policy.feeBaseMsat, 'mux.routingPolicy.feeBaseMsat', '0', 0, 2 ** 32 - 1)
  const feeRateppm = r.integer(policy.feeRateppm, 'mux.routingPolicy.feeRateppm', '0', 0, 2 ** 32 - 1)
  const cltvDelta = r.integer(policy.cltvDelta, 'mux.routingPolicy.cltvDelta', '40', 1, 2016)
  const maxRouteHints = r.integer(mux.maxRouteHints, 'mux.maxRouteHints', '3', 1, 20)
  const minFinalCltvExpiry = r.integer(mux.minFinalCltvExpiry, 'mux.minFinalCltvExpiry', '18', 1, 2016)
  const mppTimeoutMs = r.durationMs(mux.mppTimeout, 'mux.mppTimeout', '"60s"', 1000)
  const acceptTimeoutMs = r.durationMs(mux.acceptTimeout, 'mux.acceptTimeout', '"10m"', 1000)
  const autoSettle = r.boolean(mux.autoSettle, 'mux.autoSettle')
  const priority = r.integer(mux.priority, 'mux.priority', '0', 0, 1000)

  const lnd = r.section(root.lnd, 'lnd', ['nodes', 'allowUnsafe'])
  const nodes: LndNodeConfig[] = []
  r.array(lnd.nodes, 'lnd.nodes', '[{"name": "alice", ...}]').forEach((raw, i) => {
    const node = readLndNode(r, raw, `lnd.nodes[${i}]`)
    if (!node) return
    const clash = nodes.find((n) => n.name === node.name || n.pubkey === node.pubkey)
    if (clash) r.report(`lnd.nodes[${i}]`, `repeats the name or pubkey of node "${clash.name}"`, 'one entry per node')
    else nodes.push(node)
  })
  const allowUnsafe = r.boolean(lnd.allowUnsafe, 'lnd.allowUnsafe')

  const storage = r.section(root.storage, 'storage', ['path'])
  const storagePath = r.string(storage.path, 'storage.path', '"./storage"')
  const api = readApi(r, root.api)
  const log = r.section(root.log, 'log', ['level'])
  const level = r.oneOf(log.level, 'log.level', LOG_LEVELS)

  if (r.issues.length > 0) throw new ConfigError(r.issues)
  return {
    network: network!,
    cluster: { secret: secret!, members, voters, bootstrap, proofTimeoutMs: proofTimeoutMs! },
    mux: {
      identityKey: identityKey!,
      routingPolicy: { feeBaseMsat: feeBaseMsat!, feeProportionalMillionths: feeRateppm!, cltvExpiryDelta: cltvDelta! },
      maxRouteHints: maxRouteHints!,
      minFinalCltvExpiry: minFinalCltvExpiry!,
      mppTimeoutMs: mppTimeoutMs!,
      acceptTimeoutMs: acceptTimeoutMs!,
      autoSettle: autoSettle!,
      priority: priority!
    },
    lnd: { nodes, allowUnsafe: allowUnsafe! },
    storage: { path: expandPath(storagePath!) },
    api: api!,
    log: { level: level! }
  }
}

export { ConfigError, isTree }

// `node src init [--candidate] [--secret HEX] [--regtest]`: writes config/local.json with a fresh
// cluster secret (or the one the other operators shared), for a candidate a fresh identity key, and
// with --regtest the cluster nodes of `npm run regtest -- up` (Alice and Bob). Never overwrites.
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { configDir } from '../config/load.ts'
import { newClusterSecret, newIdentityKey, parseClusterSecret } from '../config/secrets.ts'
import { secp256k1 } from '../ln/secp256k1.ts'

export interface InitOptions {
  candidate: boolean
  secret: string | null
  regtest: boolean
}

/** Written by `npm run regtest -- up` (HIGHWIRE_REGTEST_DIR moves it): each node in the shape of `lnd.nodes[]`. */
function regtestEnvPath(): string {
  return join(process.env.HIGHWIRE_REGTEST_DIR ?? fileURLToPath(new URL('../../.regtest', import.meta.url)), 'env.json')
}
/** The regtest network's cluster nodes; Carol is the payer. */
const REGTEST_CLUSTER_NODES = ['alice', 'bob']

export function parseInitArgs(args: string[]): InitOptions | { problem: string } {
  const opts: InitOptions = { candidate: false, secret: null, regtest: false }
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]
    if (arg === '--candidate') opts.candidate = true
    else if (arg === '--regtest') opts.regtest = true
    else if (arg === '--secret' && i + 1 < args.length) opts.secret = args[++i]!
    else return { problem: `init: unknown argument ${JSON.stringify(arg)} (usage: init [--candidate] [--secret HEX] [--regtest])` }
  }
  return opts
}

export function initCommand(args: string[], out: (line: string) => void): number {
  const opts = parseInitArgs(args)
  if ('problem' in opts) {
    out(opts.problem)
    return 2
  }
  const file = join(configDir(), 'local.json')
  if (existsSync(file)) {
    out(`init: ${file} exists; refusing to overwrite it (move it away first if you really mean to start over)`)
    return 1
  }
  if (opts.secret !== null) {
    const parsed = parseClusterSecret(opts.secret)
    if ('problem' in parsed) {
      out(`init: --secret ${parsed.problem}`)
      return 2
    }
  }
  const local: { network?: string; cluster: { secret: string }; mux?: { identityKey: string }; lnd?: { nodes: unknown[] } } = {
    cluster: { secret: opts.secret ?? newClusterSecret() }
  }
  if (opts.regtest) {
    let env: { nodes: { name: string }[] }
    try {
      env = JSON.parse(readFileSync(regtestEnvPath(), 'utf8'))
    } catch {
      out(`init: --regtest needs ${regtestEnvPath()}; run \`npm run regtest -- up\` first`)
      return 1
    }
    local.network = 'regtest'
    local.lnd = { nodes: env.nodes.filter((n) => REGTEST_CLUSTER_NODES.includes(n.name)) }
  }
  let muxPubkey: string | null = null
  if (opts.candidate) {
    const key = newIdentityKey()
    local.mux = { identityKey: Buffer.from(key).toString('hex') }
    muxPubkey = Buffer.from(secp256k1.publicKey(key)).toString('hex')
  }
  writeFileSync(file, JSON.stringify(local, null, 2) + '\n', { mode: 0o600, flag: 'wx' })
  out(`wrote ${file} (mode 0600)`)
  if (local.lnd) out(`lnd nodes: ${local.lnd.nodes.map((n) => (n as { name: string }).name).join(', ')} from ${regtestEnvPath()}`)
  out(opts.secret === null
    ? 'cluster secret: new; give it to the other operators over a secure channel (they run `node src init --secret ...`)'
    : 'cluster secret: the one given with --secret')
  if (muxPubkey) {
    out(`identity key: new; this agent is a candidate for the virtual node ${muxPubkey}`)
    out('every candidate of one cluster must hold the same identity key: copy mux.identityKey to the others')
  }
  return 0
}

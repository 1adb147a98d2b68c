// One lnd node on regtest, loopback only, and lncli against it.
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import path from 'node:path'
import { btcdRpcCert, type BtcdSpec } from './btcd.ts'

const run = promisify(execFile)

export interface LndSpec {
  name: string
  dir: string
  grpcPort: number
  p2pPort: number
  // Alice and Bob are cluster nodes: every forwarded HTLC must wait for an
  // interceptor, and final resolutions are kept for LookupHtlcResolution.
  // Carol is a plain payer, so highwire's startup checks can be seen refusing her.
  cluster: boolean
}

export const CLUSTER_FLAGS = ['--requireinterceptor', '--store-final-htlc-resolutions']

export const lndTlsCert = (spec: LndSpec): string => path.join(spec.dir, 'tls.cert')
export const lndMacaroon = (spec: LndSpec): string =>
  path.join(spec.dir, 'data', 'chain', 'bitcoin', 'regtest', 'admin.macaroon')
export const lndDebugLog = (spec: LndSpec): string =>
  path.join(spec.dir, 'logs', 'bitcoin', 'regtest', 'lnd.log')
export const lndHost = (spec: LndSpec): string => `127.0.0.1:${spec.grpcPort}`

export function lndArgs (spec: LndSpec, btcd: BtcdSpec): string[] {
  return [
    `--lnddir=${spec.dir}`,
    `--alias=${spec.name}`,
    // Wallet created unencrypted-by-default-passphrase and unlocked at start.
    '--noseedbackup',
    '--bitcoin.regtest',
    '--bitcoin.node=btcd',
    `--btcd.rpchost=127.0.0.1:${btcd.rpcPort}`,
    `--btcd.rpcuser=${btcd.rpcUser}`,
    `--btcd.rpcpass=${btcd.rpcPass}`,
    `--btcd.rpccert=${btcdRpcCert(btcd)}`,
    `--rpclisten=${lndHost(spec)}`,
    `--listen=127.0.0.1:${spec.p2pPort}`,
    '--norest',
    '--debuglevel=debug',
    // Gossip in milliseconds rather than the default 90 s trickle, so Carol
    // sees the whole graph right after the channels confirm.
    '--trickledelay=50',
    ...(spec.cluster ? CLUSTER_FLAGS : [])
  ]
}

export class LncliError extends Error {
  readonly code = 'lncli_failed'
  readonly stderr: string
  constructor (node: string, args: string[], stderr: string) {
    super(`lncli ${node} ${args[0] ?? ''}: ${stderr.trim().split('\n').slice(-1)[0] ?? ''}`)
    this.stderr = stderr
  }
}

export function lncliArgs (spec: LndSpec): string[] {
  return [
    `--rpcserver=${lndHost(spec)}`,
    `--tlscertpath=${lndTlsCert(spec)}`,
    `--macaroonpath=${lndMacaroon(spec)}`
  ]
}

// lncli prints JSON for every RPC we use; parsed here so callers compare fields.
export async function lncli (lncliBin: string, spec: LndSpec, args: string[]): Promise<any> {
  try {
    const { stdout } = await run(lncliBin, [...lncliArgs(spec), ...args], { maxBuffer: 64 * 1024 * 1024 })
    return stdout.trim() === '' ? {} : JSON.parse(stdout)
  } catch (err) {
    const e = err as { stderr?: string, stdout?: string, message: string }
    throw new LncliError(spec.name, args, e.stderr || e.stdout || e.message)
  }
}
